"""The lab: real ``craftnet serve`` processes on 127.0.0.1, driven by a scenario.

A lab starts hubs as separate processes of a given ``craftnet`` executable (so another
branch's build can be put through the same scenario), each in its own temporary home
with its own ports, and does to them what hubs live through: joins via any member,
restarts, ``kill -9`` in the middle of a sync, SIGSTOP pauses (a starved CPU), key
rotations, partitions (hubs stopped while the others publish), publishes from the CLI,
the HTTP API and bundles, and a hostile member flooding fake announcements. It then
reports per hub what the hubs' own logs and APIs say: bans and graylists of honest
peers, records held against the expected set (count and digest), time to converge,
whether members connect, whether a rotated hub still syncs.

* :mod:`.scenario` reads TOML scenarios (``docs/lab.md`` is their manual);
* :mod:`.ports`, :mod:`.proc` and :mod:`.logs`: ports held for a whole run, one hub's
  processes, and what its log lines mean;
* :mod:`.lab` is the Python API (one method per event), :mod:`.runner` plays a
  scenario on it, :mod:`.report` judges and prints the outcome;
* :mod:`.records` makes bulk records for bundle publishes; ``flooder.py`` is the
  hostile member's program (run by the tested installation's own Python).
"""
