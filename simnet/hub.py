"""A simulated hub and a connection between two: what the network layer keeps of each.

The hub's decisions are its :class:`~craftnet.protocol.engine.SyncEngine`'s; a
:class:`SimHub` only adds what the simulated network needs to know (its links, its
uplink, its timers, whether its process is running). Keys and record clocks are
derived from the hub's index, so a run never depends on anything but its seed.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from craftnet.archive.cid import Cid
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.engine import SyncEngine
from craftnet.protocol.events import PeerId, TimerId
from craftnet.simnet.alliance import SimMembers
from craftnet.simnet.stores import HubStore

HONEST: Final = "honest"
BASE_TS: Final = 1_760_000_000_000  # ms; record clocks are BASE_TS + simulated ms


class Conn:
    """One live connection (sync stream and gossip) between two hubs."""

    __slots__ = ("a", "b", "epoch", "last_ab", "last_ba", "latency")

    def __init__(self, a: int, b: int, epoch: int, latency: float) -> None:
        self.a = a
        self.b = b
        self.epoch = epoch
        self.latency = latency
        self.last_ab = 0.0
        self.last_ba = 0.0


class SimHub:
    """A simulated hub: the real engine plus what the network layer needs to know."""

    __slots__ = (
        "backlog",
        "bans",
        "bw",
        "bytes_in",
        "bytes_out",
        "conns",
        "engine",
        "hellos",
        "index",
        "key",
        "kind",
        "loss",
        "members",
        "msgs_out",
        "off",
        "out",
        "paused",
        "peer",
        "pending",
        "recent",
        "region",
        "store",
        "timers",
        "uplink_free",
    )

    def __init__(self, index: int, peer: PeerId, key: PrivateKey, kind: str) -> None:
        self.index = index
        self.peer = peer
        self.key = key
        self.kind = kind
        self.engine: SyncEngine
        self.store: HubStore
        self.region = 0
        self.off = 0  # reasons to be offline (churn, outages); online when 0
        self.out: list[int] = []  # hubs this one dials
        self.conns: dict[int, Conn] = {}
        self.timers: dict[TimerId, int] = {}
        self.bans: dict[PeerId, float] = {}
        self.uplink_free = 0.0
        self.bw = 0.0
        self.loss = 0.0
        self.bytes_out = 0
        self.bytes_in = 0
        self.msgs_out = 0
        self.hellos: set[int] = set()
        self.pending: dict[Cid, tuple[int, int]] = {}  # record -> (gossip id, hops)
        self.members: SimMembers | None = None
        self.paused = False  # its process is stopped: what arrives waits in the backlog
        self.backlog: list[tuple[Callable[[Any], None], Any]] = []
        # The gossip it sent lately, (time, message id): handed to a newly admitted peer.
        self.recent: deque[tuple[float, int]] = deque()

    @property
    def online(self) -> bool:
        """True when nothing keeps the hub offline."""
        return self.off == 0


def key_for(index: int, generation: int = 0) -> PrivateKey:
    """The key of hub ``index`` (a new one for each key rotation, ``generation``)."""
    return PrivateKey.from_seed((0x5EED << 200 | generation << 64 | index).to_bytes(32, "big"))


def hlc(at: float) -> int:
    """The HLC time of simulated second ``at`` (record clocks start at BASE_TS)."""
    return (BASE_TS + int(at * 1000)) << 16


def sample_mean(rng: random.Random, dist: str, mean: float, shape: float) -> float:
    """A draw with the given mean: exponential, pareto (tail ``shape``) or lognormal."""
    if dist == "exponential":
        return rng.expovariate(1.0 / mean)
    if dist == "pareto":
        return mean * (shape - 1) / shape * rng.paretovariate(shape)
    if dist == "lognormal":
        return rng.lognormvariate(math.log(mean) - shape * shape / 2, shape)
    if dist == "uniform":
        return mean * (0.5 + rng.random())
    return mean
