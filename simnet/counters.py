"""The traffic counters of one run (sends, gossip copies, engine events ...).

A slotted object rather than a dict of names: the mesh and the executor count several
things for every delivered record, and in the compiled mode an attribute is a field
of a C struct where a dict entry was a look-up, an int object made and one freed.
Read them by name as before (``stats["sends"]``) or all at once with :meth:`items`.
"""

from __future__ import annotations

from typing import Final

# Every counter's name, in order.
NAMES: Final = (
    "bans",
    "connects",
    "dials_failed",
    "disconnects",
    "engine_events",
    "gossip_duplicates",
    "gossip_lost",
    "gossip_messages",
    "publishes",
    "reconcile_bytes",
    "reconciles",
    "records_stored",
    "retransmits",
    "send_bytes",
    "sends",
)


class Counters:
    """How much of each kind of traffic a run has seen so far."""

    __slots__ = NAMES

    def __init__(self) -> None:
        self.bans = 0
        self.connects = 0
        self.dials_failed = 0
        self.disconnects = 0
        self.engine_events = 0
        self.gossip_duplicates = 0
        self.gossip_lost = 0
        self.gossip_messages = 0
        self.publishes = 0
        self.reconcile_bytes = 0
        self.reconciles = 0
        self.records_stored = 0
        self.retransmits = 0
        self.send_bytes = 0
        self.sends = 0

    def __getitem__(self, name: str) -> int:
        """The counter called ``name`` (KeyError for a name that is not one)."""
        if name not in NAMES:
            raise KeyError(name)
        value: int = getattr(self, name)
        return value

    def items(self) -> list[tuple[str, int]]:
        """Every counter's name and value, in name order."""
        return [(name, self[name]) for name in NAMES]

