"""The gossip layer's relaying: copies that certainly arrive second cost no event."""

from __future__ import annotations

from simnet_helpers import scenario

from craftnet.simnet.sim import Simulation

FLOOD = """
name = "flood"
hubs = 60
max_time_s = 120
verify = "shared"
[topology]
kind = "random_regular"
degree = 6
[workload]
records = 20
start_s = 1
window_s = 10
"""

# Four hubs in a ring: a message published at one reaches the opposite hub twice, once
# through each neighbour.
RING = """
name = "ring"
hubs = 4
max_time_s = 60
[topology]
kind = "random_regular"
degree = 2
[workload]
records = 1
start_s = 1
window_s = 1
"""


def test_every_copy_is_taken_once_or_counted_as_a_duplicate() -> None:
    sim = Simulation(scenario(FLOOD), 1)
    result = sim.run()
    stats = sim.stats
    taken = sum(sum(seen) for seen in sim.mesh.seen)
    published = len(sim.mesh.data)
    assert result.metrics.summary()["records_everywhere"] == 20
    # Each hub took each message once (its publisher holds it without a copy).
    assert taken == published * 60
    assert stats["gossip_messages"] == (taken - published) + stats["gossip_duplicates"]
    assert stats["gossip_duplicates"] > stats["gossip_messages"] // 3
    # The duplicates never became events: fewer events ran than copies were sent.
    assert sim.kernel.events < stats["gossip_messages"]


def _second_copy_in_flight(sim: Simulation) -> tuple[int, int, object]:
    """Run until some hub has a copy on its way with a later copy queued behind it."""
    while sim.kernel.now < 30:
        for mid, copies in enumerate(sim.mesh._flight):
            for index, copy in enumerate(copies):
                if copy is not None and copy.later:
                    return mid, index, copy
        sim.kernel.run(sim.kernel.now + 0.001)
    raise AssertionError("no message reached a hub twice")


def test_a_duplicate_is_delivered_when_the_copy_ahead_of_it_is_lost_with_its_link() -> None:
    sim = Simulation(scenario(RING), 3)
    mid, index, copy = _second_copy_in_flight(sim)
    target = sim.hubs[index]
    # The connection the first copy travels on closes before it arrives.
    conn = copy.conn
    sender = sim.hubs[conn.a if conn.b == index else conn.b]
    due = max(when for when, *_ in copy.later)
    sim.network.close(sender, target)
    # The copy behind it arrives when it was due, not at a later redial or reconcile.
    sim.kernel.run(due)
    assert sim.mesh.seen[mid][index] == 1
    assert sim.stats["gossip_duplicates"] == 0
