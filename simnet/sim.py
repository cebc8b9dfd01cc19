"""The simulation: real sync engines on virtual links, driven by the kernel.

Every honest hub is a :class:`~craftnet.protocol.engine.SyncEngine` with its own key,
an in-memory block store and reconcile items. The simulation executes the engines'
commands as node/ does with libp2p: ``Send`` travels a virtual stream (delay, jitter,
uplink queueing, loss turned into retransmission delay, in order), ``Publish`` enters
a gossip layer that stands in for GossipSub (each new announcement is forwarded to at
most ``mesh_degree`` connected neighbours, once per hub, after the announcement's
signature checks), ``SetTimer`` becomes a kernel event, ``StoreBlocks`` writes the
store. On top: partitions, churn, scheduled outages, peer sampling and adversaries.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, assert_never

from craftnet.archive.alliance import certificate_of
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.blocks import BlockConfig
from craftnet.protocol.engine import EngineConfig, SyncEngine
from craftnet.protocol.errors import ProtocolError
from craftnet.protocol.events import (
    Ban,
    BlocksStored,
    CancelTimer,
    Command,
    ConnectionClosed,
    DataReceived,
    Dial,
    DialFailed,
    Disconnect,
    Event,
    GossipReceived,
    GossipVerdict,
    MembershipChanged,
    PeerConnected,
    PeerDisconnected,
    PeerId,
    PeerSynced,
    Publish,
    ReconcileFinished,
    RecordsAdded,
    Send,
    SetTimer,
    StoreBlocks,
    StoredBlock,
    TimerFired,
    TimerId,
    Validation,
)
from craftnet.protocol.framing import FrameCache, decode_frame, encode_frame, frame_cache
from craftnet.protocol.gossip import Reannounce
from craftnet.protocol.members import EVERYONE, Members
from craftnet.protocol.messages import Announce
from craftnet.protocol.policy import DEFAULT_POLICY, Policy
from craftnet.protocol.scoring import Thresholds
from craftnet.simnet import topology
from craftnet.simnet.alliance import SimAlliance, SimMembers
from craftnet.simnet.items import ItemTable
from craftnet.simnet.kernel import Kernel
from craftnet.simnet.metrics import Metrics
from craftnet.simnet.scenario import Scenario
from craftnet.simnet.stores import HubStore, open_store
from craftnet.simnet.verify import SharedVerifier, VerdictCache

ALLIANCE = "Global Micro-manufacturing Alliance"
BASE_TS = 1_760_000_000_000  # ms; record clocks are BASE_TS + simulated ms
HONEST = "honest"
TIMER_BUCKET_S = 2.0  # timers due later than this are parked by the second first
# How each gossip model re-announces what a hub fetched (the engine decides which).
REANNOUNCE_MODES = {
    "reannounce": Reannounce.ALL,
    "store_forward": Reannounce.UNANNOUNCED,
    "relay": Reannounce.NONE,
}


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


@dataclass
class RunResult:
    """What a finished run hands to the writers and the plots."""

    scenario: Scenario
    seed: int
    metrics: Metrics
    wall_s: float
    events: int


@contextmanager
def _long_lived_heap() -> Iterator[None]:
    """Spare the cyclic collector the run's long-lived objects while the run lasts.

    A run holds millions of objects (engines, stores, events) that live to its end; the
    collector's full passes over them cost a quarter of a 10,000-hub run. Freezing what
    exists, and collecting the young generation less often, leaves only new garbage to
    scan. Refcounting still frees almost everything at once; cycles are found at the end.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _key_for(index: int, generation: int = 0) -> PrivateKey:
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


class Simulation:
    """One run of one scenario with one seed."""

    def __init__(self, scenario: Scenario, seed: int, policy: Policy | None = None) -> None:
        self.s = scenario
        self.seed = seed
        # The engines' peer policy: the one real hubs run, unless a study asks for another.
        self.policy = policy or DEFAULT_POLICY
        self.kernel = Kernel()
        self.rng = random.Random(f"craftnet-simnet/{seed}")
        self.net_rng = random.Random(self.rng.getrandbits(64))
        self.cache = VerdictCache()
        # Shared signature verdicts are handed to every engine; real checks otherwise.
        self.verifier = SharedVerifier(self.cache) if scenario.verify == "shared" else None
        self._verdict: Validation | None = None
        self.frames = FrameCache()
        self.items_table = ItemTable()
        self.blocks_table: dict[Cid, tuple[Cid, bytes]] = {}
        self.hubs: list[SimHub] = []
        self.by_peer: dict[PeerId, SimHub] = {}
        self.conns: dict[int, Conn] = {}
        self.epoch = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._tokens = 0
        self._generation = 0
        self._parked: dict[int, list[tuple[float, SimHub, TimerId, int]]] = {}
        self._open_sides: dict[int, bytearray] = {}
        jitter = scenario.latency.jitter_ms
        self._jitter_rate = 1000.0 / jitter if jitter else 0.0
        self._dialled_cache: dict[int, list[int]] | None = None
        self._admission = scenario.network.admission_queue if scenario.network.gossip else 0
        self.gossip_data: list[bytes] = []
        self.gossip_forwarded: list[bytearray] = []
        self.gossip_records: list[tuple[Cid, ...]] = []  # the CIDs each names
        self.partitions: list[bytearray] = []
        self.gossip_ids: dict[bytes, int] = {}
        self.gossip_seen: list[bytearray] = []
        self.gossip_hops: list[int] = []
        self.region_names = scenario.region_names()
        self.honest = scenario.hubs
        self.metrics = Metrics(scenario, self)
        self.stats: dict[str, int] = {
            "sends": 0,
            "publishes": 0,
            "send_bytes": 0,
            "gossip_messages": 0,
            "gossip_duplicates": 0,
            "gossip_lost": 0,
            "retransmits": 0,
            "connects": 0,
            "disconnects": 0,
            "dials_failed": 0,
            "reconciles": 0,
            "reconcile_bytes": 0,
            "bans": 0,
            "records_stored": 0,
            "engine_events": 0,
        }
        self.disconnect_reasons: dict[str, int] = {}
        self.alliance: SimAlliance | None = None
        self._config: EngineConfig
        with _long_lived_heap():
            self._build()

    # ------------------------------------------------------------------ build

    def _engine_config(self, rewiring: bool) -> EngineConfig:
        e = self.s.engine
        return EngineConfig(
            alliance=ALLIANCE,
            reconcile_interval=e.reconcile_interval_s,
            reconcile_timeout=e.reconcile_timeout_s,
            hello_timeout=e.hello_timeout_s,
            blocks=BlockConfig(timeout=e.block_timeout_s),
            thresholds=Thresholds(),
            policy=replace(self.policy, redial_max=e.redial_max_s),
            seen_announcements=e.seen_announcements,
            redial=not rewiring,
            push_blocks=e.push_blocks,
            reannounce=REANNOUNCE_MODES[self.s.network.gossip_mode],
        )

    def _make_hub(self, index: int, peer: str, kind: str, config: EngineConfig) -> SimHub:
        hub = SimHub(index, PeerId(peer), _key_for(index), kind)
        folder = None
        if self.s.store == "lmdb":
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="simnet-lmdb-")
            folder = Path(self._tmp.name) / peer
        hub.store = open_store(self.s.store, self.items_table, self.blocks_table, folder)
        self._config = config
        hub.engine = self._new_engine(hub)
        self.hubs.append(hub)
        self.by_peer[hub.peer] = hub
        return hub

    def _new_engine(self, hub: SimHub, generation: int = 0) -> SyncEngine:
        """The hub's engine, as a process starting up (again) would make it."""
        members: Members = hub.members if hub.members is not None else EVERYONE
        return SyncEngine(
            key=hub.key,
            peer_id=hub.peer,
            items=hub.store.items,
            blocks=hub.store.source,
            config=self._config,
            rng=random.Random(f"{self.seed}/engine/{hub.index}/{generation}"),
            members=members,
            verifier=self.verifier,
        )

    def _build(self) -> None:
        s = self.s
        config = self._engine_config(s.network.rewire_interval_s > 0)
        shares = {name: spec.share for name, spec in s.regions.items()} or {"all": 1.0}
        regions = topology.assign_regions(s.hubs, shares, self.rng)
        for i in range(s.hubs):
            hub = self._make_hub(i, f"hub-{i:05d}", HONEST, config)
            hub.region = regions[i]
            self._set_link_caps(hub)
        graph = topology.build(s.topology, s.hubs, regions, self.rng)
        for a, b in topology.oriented(graph, self.rng):
            self.hubs[a].out.append(b)
        adversary_index = 0
        honest_ids = list(range(s.hubs))
        for spec in s.adversaries:
            targets = self.rng.sample(honest_ids, spec.targets) if spec.kind == "eclipse" else []
            for _ in range(spec.count):
                index = len(self.hubs)
                hub = self._make_hub(index, f"adv-{adversary_index:03d}", spec.kind, config)
                adversary_index += 1
                hub.region = self.rng.randrange(len(self.region_names))
                self._set_link_caps(hub)
                hub.out = list(targets) or self.rng.sample(honest_ids, min(spec.degree, s.hubs))
                self.metrics.adversary(hub, spec, targets)
        for p in s.partitions:
            self.kernel.at(p.start_s, self._partition_open, p)
            self.kernel.at(p.heal_s, self._partition_heal, p)
        self._schedule_churn()
        self._schedule_faults()
        if s.alliance.enabled:
            self._build_alliance()
        self._schedule_workload()
        for spec in s.adversaries:
            if spec.kind in ("spam", "invalid", "fake", "fake_silent"):
                for hub in self.hubs[s.hubs :]:
                    if hub.kind == spec.kind:
                        self.kernel.at(spec.start_s, self._adversary_tick, (hub, spec))
        if s.network.rewire_interval_s > 0:
            self.kernel.at(s.network.rewire_interval_s, self._rewire, None)
        self.kernel.at(0.0, self._connect_all, None)

    def _set_link_caps(self, hub: SimHub) -> None:
        net = self.s.network
        spec = self.s.regions.get(self.region_names[hub.region])
        kbps = spec.bandwidth_kbps if spec and spec.bandwidth_kbps > 0 else net.bandwidth_kbps
        hub.bw = kbps * 1000 / 8 if kbps > 0 else 0.0
        hub.loss = spec.loss if spec and spec.loss >= 0 else net.loss

    # ------------------------------------------------------------ connections

    def _pair(self, a: int, b: int) -> int:
        return a * 1_000_003 + b if a < b else b * 1_000_003 + a

    def reachable(self, a: int, b: int) -> bool:
        """No open partition separates hubs ``a`` and ``b``."""
        return all(side[a] == side[b] for side in self.partitions)

    def _latency(self, a: SimHub, b: SimHub) -> float:
        lat = self.s.latency
        ra, rb = self.region_names[a.region], self.region_names[b.region]
        row = lat.matrix_ms.get(ra, {})
        mean = row.get(rb, lat.matrix_ms.get(rb, {}).get(ra, lat.mean_ms))
        return sample_mean(self.net_rng, lat.dist, mean, lat.sigma) / 1000.0

    def _can_connect(self, a: SimHub, b: SimHub) -> bool:
        # Bans are the engines' to enforce: a banned peer's connection is refused by
        # its engine (with a bye), as a real hub refuses it.
        return (
            a.online
            and b.online
            and self._pair(a.index, b.index) not in self.conns
            and self.reachable(a.index, b.index)
        )

    def connect(self, dialer: SimHub, listener: SimHub) -> bool:
        """Open a connection now; both engines hear of it one round trip later."""
        if not self._can_connect(dialer, listener):
            return False
        self.epoch += 1
        conn = Conn(dialer.index, listener.index, self.epoch, self._latency(dialer, listener))
        self.conns[self._pair(dialer.index, listener.index)] = conn
        dialer.conns[listener.index] = conn
        listener.conns[dialer.index] = conn
        self.stats["connects"] += 1
        self.kernel.after(2 * conn.latency, self._opened, (conn, dialer, listener))
        return True

    def _opened(self, arg: tuple[Conn, SimHub, SimHub]) -> None:
        conn, dialer, listener = arg
        if dialer.conns.get(listener.index) is not conn:
            return
        self.deliver(listener, PeerConnected(dialer.peer, outbound=False))
        if dialer.conns.get(listener.index) is conn:
            self.deliver(dialer, PeerConnected(listener.peer, outbound=True))
        if self._admission and dialer.conns.get(listener.index) is conn:
            # Once the hellos are through, each side is admitted to the other's gossip.
            self.kernel.after(2 * conn.latency, self._admitted, arg)

    def _admitted(self, arg: tuple[Conn, SimHub, SimHub]) -> None:
        """py-libp2p hands a newly admitted peer what it queued for it, all at once: the
        messages it sent lately that the peer has not seen (up to admission_queue)."""
        conn, a, b = arg
        if a.conns.get(b.index) is not conn:
            return
        since = self.kernel.now - self.s.network.admission_window_s
        for src, dst in ((a, b), (b, a)):
            for at, mid in list(src.recent):
                if at < since or self.gossip_seen[mid][dst.index]:
                    continue
                size = len(self.gossip_data[mid])
                arrive = self._transmit(src, conn, size)
                self.kernel.at(arrive, self._gossip_arrive, (conn, dst, src.peer, mid, 1))
                self.stats["gossip_messages"] += 1

    def close(self, a: SimHub, b: SimHub, tell_a: bool = True) -> None:
        """Drop the connection between ``a`` and ``b``; their engines hear of it."""
        conn = self.conns.pop(self._pair(a.index, b.index), None)
        if conn is None:
            return
        del a.conns[b.index]
        del b.conns[a.index]
        a.hellos.discard(b.index)
        b.hellos.discard(a.index)
        self.stats["disconnects"] += 1
        if tell_a:
            self.deliver(a, PeerDisconnected(b.peer))
        self.deliver(b, PeerDisconnected(a.peer))

    def _connect_all(self, _: Any) -> None:
        for hub in self.hubs:
            for other in hub.out:
                self.connect(hub, self.hubs[other])

    def _reconnect(self, hub: SimHub) -> None:
        """A hub came back (or a cut healed): restore its topology links that can be."""
        for other in hub.out:
            self.connect(hub, self.hubs[other])
        for other in self._dialled_by.get(hub.index, ()):
            self.connect(self.hubs[other], hub)

    @property
    def _dialled_by(self) -> dict[int, list[int]]:
        cached = self._dialled_cache
        if cached is None:
            cached = {}
            for hub in self.hubs:
                for other in hub.out:
                    cached.setdefault(other, []).append(hub.index)
            self._dialled_cache = cached
        return cached

    # ------------------------------------------------------------- the engine

    def deliver(self, hub: SimHub, event: Event) -> None:
        """Hand one event to a hub's engine and execute what it asks."""
        if hub.paused:
            hub.backlog.append((self._deliver_late, (hub, event)))
            return
        self.stats["engine_events"] += 1
        commands = hub.engine.handle(event, self.kernel.now)
        if hub.kind != HONEST and hub.kind in ("drop", "eclipse", "fake_silent"):
            commands = self._black_hole(hub, commands)
        self.execute(hub, commands)

    def _deliver_late(self, arg: tuple[SimHub, Event]) -> None:
        self.deliver(*arg)

    def _black_hole(self, hub: SimHub, commands: list[Command]) -> list[Command]:
        """Drop-everything adversaries: the hello goes out, nothing else ever does."""
        kept: list[Command] = []
        for cmd in commands:
            if isinstance(cmd, Send):
                other = self.by_peer.get(cmd.peer)
                if other is None or other.index in hub.hellos:
                    continue
                hub.hellos.add(other.index)
                kept.append(cmd)
            elif isinstance(cmd, SetTimer | CancelTimer | Disconnect | Dial):
                kept.append(cmd)
        return kept

    def execute(self, hub: SimHub, commands: list[Command]) -> None:
        """Do what an engine asked, as node/ does with libp2p and the store."""
        for cmd in commands:
            # Most frequent first; no positional captures (see SyncEngine.handle).
            match cmd:
                case GossipVerdict():
                    self._verdict = cmd.validation
                case StoreBlocks():
                    self._store(hub, cmd)
                case SetTimer():
                    self._set_timer(hub, cmd)
                case CancelTimer():
                    hub.timers.pop(cmd.timer, None)
                case Send():
                    self._send(hub, cmd)
                case Publish():
                    self.stats["publishes"] += 1
                    self._publish(hub, cmd.data)
                case Disconnect():
                    other = self.by_peer.get(cmd.peer)
                    kind = cmd.reason.split(" (")[0].split(":")[0]
                    self.disconnect_reasons[kind] = self.disconnect_reasons.get(kind, 0) + 1
                    if other is not None:
                        self.close(hub, other, tell_a=False)
                case ConnectionClosed():
                    if cmd.punished:
                        self.metrics.punished(hub, cmd.peer, self.kernel.now)
                case Ban():
                    hub.bans[cmd.peer] = cmd.until
                    self.stats["bans"] += 1
                    self.metrics.banned(hub, cmd.peer, self.kernel.now)
                case Dial():
                    other = self.by_peer.get(cmd.peer)
                    if other is None or not self.connect(hub, other):
                        self.stats["dials_failed"] += 1
                        self.kernel.after(0.0, self._dial_failed, (hub, cmd.peer))
                case ReconcileFinished():
                    self.stats["reconciles"] += 1
                    self.stats["reconcile_bytes"] += cmd.bytes_sent
                case PeerSynced():
                    pass  # a simulated hub keeps no delta-bundle knowledge of its peers
                case _:
                    assert_never(cmd)

    def _dial_failed(self, arg: tuple[SimHub, PeerId]) -> None:
        hub, peer = arg
        self.deliver(hub, DialFailed(peer, "unreachable"))

    def _set_timer(self, hub: SimHub, cmd: SetTimer) -> None:
        # A timer set again replaces the earlier one: only the newest token fires.
        self._tokens += 1
        token = self._tokens
        hub.timers[cmd.timer] = token
        at = cmd.at
        if at - self.kernel.now < TIMER_BUCKET_S:
            self.kernel.at(at, self._fire, (hub, cmd.timer, token))
            return
        # Far timers (request and reconcile deadlines) are nearly always cancelled or
        # replaced first: park them by the second and put only the live ones on the heap.
        second = int(at)
        parked = self._parked.get(second)
        if parked is None:
            parked = self._parked[second] = []
            self.kernel.at(float(second), self._unpark, second)
        parked.append((at, hub, cmd.timer, token))

    def _unpark(self, second: int) -> None:
        for at, hub, timer, token in self._parked.pop(second):
            if hub.timers.get(timer) == token:
                self.kernel.at(at, self._fire, (hub, timer, token))

    def _fire(self, arg: tuple[SimHub, TimerId, int]) -> None:
        hub, timer, token = arg
        if hub.timers.get(timer) != token:
            return
        del hub.timers[timer]
        self.deliver(hub, TimerFired(timer))

    def _store(self, hub: SimHub, cmd: StoreBlocks) -> None:
        store = hub.store
        new = [(b.ts, b.cid) for b in cmd.blocks if b.ts is not None and not store.has(b.cid)]
        store.put([(b.cid, b.data, b.ts) for b in cmd.blocks])
        if hub.members is not None and new:
            self._learn(hub, [b for b in cmd.blocks if b.ts is not None])
        for _, cid in new:
            self.stats["records_stored"] += 1
            self.metrics.stored(hub, cid, self.kernel.now)
        self._stored(hub, tuple(b.cid for b in cmd.blocks), tuple(new))

    def _stored(
        self, hub: SimHub, cids: tuple[Cid, ...], records: tuple[tuple[int, Cid], ...]
    ) -> None:
        """The write is done (as the node's writer reports it): the engine hears of it,
        and announcements waiting for these records are relayed."""
        if hub.kind != HONEST:
            self.deliver(hub, BlocksStored(cids, records))
        else:
            self.stats["engine_events"] += 1
            commands = hub.engine.handle(BlocksStored(cids, records), self.kernel.now)
            if commands:  # mostly none: this path runs once per stored block
                self.execute(hub, commands)
        if hub.pending:
            for _, cid in records:
                waiting = hub.pending.pop(cid, None)
                if waiting is not None:
                    mid, hops = waiting
                    self._forward(hub, mid, self.gossip_data[mid], hops)

    # ------------------------------------------------------------------ links

    def _transmit(self, src: SimHub, conn: Conn, size: int) -> float:
        """When ``size`` bytes sent now by ``src`` on ``conn`` arrive at the other end."""
        now = self.kernel.now
        start = src.uplink_free if src.uplink_free > now else now
        done = start + (size / src.bw if src.bw else 0.0)
        src.uplink_free = done
        arrive = done + conn.latency
        if self._jitter_rate:
            arrive += self.net_rng.expovariate(self._jitter_rate)
        if src.loss:
            while self.net_rng.random() < src.loss:
                self.stats["retransmits"] += 1
                arrive += self.s.network.retransmit_s
        # A stream delivers in order: nothing overtakes what was sent before it.
        if conn.a == src.index:
            if arrive < conn.last_ab:
                arrive = conn.last_ab
            conn.last_ab = arrive
        else:
            if arrive < conn.last_ba:
                arrive = conn.last_ba
            conn.last_ba = arrive
        src.bytes_out += size
        src.msgs_out += 1
        return arrive

    def _send(self, hub: SimHub, cmd: Send) -> None:
        other = self.by_peer.get(cmd.peer)
        if other is None:
            return
        conn = hub.conns.get(other.index)
        if conn is None:
            return
        self.stats["sends"] += 1
        self.stats["send_bytes"] += len(cmd.data)
        at = self._transmit(hub, conn, len(cmd.data))
        self.kernel.at(at, self._arrive, (conn, other, hub.peer, cmd.data))

    def _arrive(self, arg: tuple[Conn, SimHub, PeerId, bytes]) -> None:
        conn, dst, src, data = arg
        if dst.conns.get(conn.a if conn.b == dst.index else conn.b) is not conn:
            return  # the connection went down while the bytes travelled
        dst.bytes_in += len(data)
        self.deliver(dst, DataReceived(src, data))

    # ----------------------------------------------------------------- gossip

    def _publish(self, hub: SimHub, data: bytes) -> None:
        mid = self.gossip_ids.get(data)
        if mid is None:
            mid = self.gossip_ids[data] = len(self.gossip_data)
            self.gossip_seen.append(bytearray(len(self.hubs)))
            self.gossip_records.append(_announced(data))
            self.gossip_forwarded.append(bytearray(len(self.hubs)))
            self.gossip_hops.append(0)
            self.gossip_data.append(data)
        self.gossip_seen[mid][hub.index] = 1
        self._forward(hub, mid, data, 0)

    def _forward(self, hub: SimHub, mid: int, data: bytes, hops: int) -> None:
        if not self.s.network.gossip or self.gossip_forwarded[mid][hub.index]:
            return
        self.gossip_forwarded[mid][hub.index] = 1
        if self._admission:
            recent = hub.recent
            recent.append((self.kernel.now, mid))
            if len(recent) > self._admission:
                recent.popleft()
        seen = self.gossip_seen[mid]
        conns = hub.conns
        targets = [i for i in conns if not seen[i]]
        net = self.s.network
        if len(targets) > net.mesh_degree:
            targets.sort()
            targets = self.net_rng.sample(targets, net.mesh_degree)
        delay = net.relay_delay_s if hops else 0.0
        size = len(data)
        hubs = self.hubs
        schedule = self.kernel.at
        arrive = self._gossip_arrive
        sent = 0
        transmit = self._transmit
        peer = hub.peer
        for i in targets:
            conn = conns[i]
            if hub.loss and self.net_rng.random() < hub.loss:
                self.stats["gossip_lost"] += 1
                continue
            sent += 1
            schedule(
                transmit(hub, conn, size) + delay, arrive, (conn, hubs[i], peer, mid, hops + 1)
            )
        self.stats["gossip_messages"] += sent

    def _gossip_arrive(self, arg: tuple[Conn, SimHub, PeerId, int, int]) -> None:
        conn, dst, src, mid, hops = arg
        if dst.paused:
            dst.backlog.append((self._gossip_arrive, arg))
            return
        index = dst.index
        if dst.conns.get(conn.a if conn.b == index else conn.b) is not conn:
            return
        seen = self.gossip_seen[mid]
        if seen[index]:
            self.stats["gossip_duplicates"] += 1
            return
        seen[index] = 1
        if hops > self.gossip_hops[mid]:
            self.gossip_hops[mid] = hops
        data = self.gossip_data[mid]
        dst.bytes_in += len(data)
        self._verdict = None
        self.deliver(dst, GossipReceived(src, data))
        # As a GossipSub validator does: relay only what the engine accepted.
        if self._verdict is not Validation.ACCEPT or dst.kind != HONEST:
            return
        if self.s.network.gossip_mode == "store_forward":
            # Relay once the records are held (those pushed inline are, already), so
            # that whoever hears it from this hub can fetch them here.
            has = dst.store.has
            lacking = [cid for cid in self.gossip_records[mid] if not has(cid)]
            if lacking:
                for cid in lacking:
                    dst.pending[cid] = (mid, hops)
                return
        self._forward(dst, mid, data, hops)

    # ---------------------------------------------------------------- workload

    def _schedule_workload(self) -> None:
        w = self.s.workload
        rng = random.Random(self.rng.getrandbits(64))
        segments: list[tuple[float, float, float]] = []  # start, end, rate factor
        edges = {w.start_s, w.start_s + w.window_s}
        for b in w.bursts:
            for t in (b.start_s, b.start_s + b.duration_s):
                if w.start_s < t < w.start_s + w.window_s:
                    edges.add(t)
        points = sorted(edges)
        for lo, hi in itertools.pairwise(points):
            factor = 1.0
            for b in w.bursts:
                if b.start_s <= lo < b.start_s + b.duration_s:
                    factor *= b.factor
            segments.append((lo, hi, factor))
        mass = sum((hi - lo) * f for lo, hi, f in segments)
        times = []
        for _ in range(w.records):
            if mass <= 0:
                times.append(w.start_s)
                continue
            u = rng.random() * mass
            for lo, hi, f in segments:
                if u <= (hi - lo) * f:
                    times.append(lo + u / f)
                    break
                u -= (hi - lo) * f
            else:
                times.append(w.start_s + w.window_s)
        times.sort()
        publishers = list(range(self.s.hubs))
        if w.publishers:
            publishers = sorted(rng.sample(publishers, w.publishers))
        parent: Cid | None = None
        for n, t in enumerate(times):
            origin = self.hubs[w.origin if w.origin >= 0 else rng.choice(publishers)]
            edit = w.edit_share > 0 and rng.random() < w.edit_share
            chunk = rng.randbytes(w.file_bytes) if w.file_bytes else b""
            text = rng.randbytes(w.body_bytes // 2).hex() if w.body_bytes else ""
            if edit and parent is None:
                parent = _make_record(origin.key, n, t, text, None, "technique").cid
                edit = False
            self.kernel.at(
                t, self._publish_record, (origin, n, text, chunk, parent if edit else None)
            )
        self.metrics.expect_records(w.records)

    def _publish_record(self, arg: tuple[SimHub, int, str, bytes, Cid | None]) -> None:
        hub, n, text, chunk, parent = arg
        links: list[Cid] = []
        if parent is not None:
            links.append(parent)
        if chunk:
            cid = Cid.of(chunk, RAW)
            hub.store.put([(cid, chunk, None)])
            links.append(cid)
        record = _make_record(
            hub.key,
            n,
            self.kernel.now,
            text,
            tuple(links),
            "edit" if parent is not None else "technique",
        )
        hub.store.put([(record.cid, record.block, record.ts)])
        self.metrics.published(hub, record.cid, self.kernel.now)
        self.deliver(hub, RecordsAdded(((record.ts, record.cid),)))

    # -------------------------------------------------------------- adversaries

    def _adversary_tick(self, arg: tuple[SimHub, Any]) -> None:
        hub, spec = arg
        now = self.kernel.now
        if now > self.s.max_time_s:
            return
        if spec.kind in ("spam", "fake", "fake_silent"):
            # Validly signed announcements of blocks nobody has, straight to the
            # neighbours (GossipSub's own scoring, not simulated, would stop them on the
            # mesh); spam adds a garbage frame on every sync stream. A fake hub answers
            # the wants they bring as its engine does (it has nothing); a silent one
            # never answers.
            fake = tuple(Cid.of(self.net_rng.randbytes(16), RAW) for _ in range(4))
            data = encode_frame(Announce.create(hub.key, 0, fake))
            for i, conn in list(hub.conns.items()):
                other = self.hubs[i]
                at = self._transmit(hub, conn, len(data))
                self.kernel.at(at, self._spam_arrive, (conn, other, hub.peer, data))
                if spec.kind == "spam":
                    self._send(hub, Send(other.peer, b"\x04\xff\xff\xff\xff"))
        elif spec.kind == "invalid":
            record = _make_record(hub.key, 10**6 + int(now * 1000), now, "forged", (), "technique")
            block = _forge(record)
            cid = Cid.of(block, DAG_CBOR)
            hub.store.put([(cid, block, record.ts)])
            self.deliver(hub, RecordsAdded(((record.ts, cid),)))
        self.kernel.after(1.0 / spec.rate_per_s, self._adversary_tick, arg)

    def _spam_arrive(self, arg: tuple[Conn, SimHub, PeerId, bytes]) -> None:
        conn, dst, src, data = arg
        if dst.conns.get(conn.a if conn.b == dst.index else conn.b) is not conn:
            return
        dst.bytes_in += len(data)
        self.deliver(dst, GossipReceived(src, data))

    # ------------------------------------------------------ restarts and pauses

    def _schedule_faults(self) -> None:
        for restart in self.s.restarts:
            hub = self.hubs[restart.hub]
            self.kernel.at(restart.at_s, self._restart_down, hub)
            self.kernel.at(restart.at_s + restart.down_s, self._restart_up, hub)
        for pause in self.s.pauses:
            hub = self.hubs[pause.hub]
            self.kernel.at(pause.at_s, self._pause, hub)
            self.kernel.at(pause.at_s + pause.duration_s, self._resume, hub)

    def _restart_down(self, hub: SimHub) -> None:
        self._go_offline(hub)
        self.metrics.event("restart", self.kernel.now)

    def _restart_up(self, hub: SimHub) -> None:
        self._fresh_engine(hub)
        self._go_online(hub)

    def _fresh_engine(self, hub: SimHub) -> None:
        """The hub's process starts again: a new engine (scores, seen announcements,
        timers gone) on the same store, with the want list it saved when it stopped.
        GossipSub's seen cache is gone too: messages it saw may reach it again."""
        saved = hub.engine.export_wants()
        hub.timers.clear()
        hub.pending.clear()
        hub.recent.clear()
        self._generation += 1
        hub.engine = self._new_engine(hub, self._generation)
        hub.engine.import_wants(saved)
        index = hub.index
        for seen in self.gossip_seen:
            seen[index] = 0
        for forwarded in self.gossip_forwarded:
            forwarded[index] = 0

    def _pause(self, hub: SimHub) -> None:
        hub.paused = True
        self.metrics.event("pause", self.kernel.now)

    def _resume(self, hub: SimHub) -> None:
        """SIGCONT: everything that arrived meanwhile is handled at once, in order."""
        hub.paused = False
        backlog, hub.backlog = hub.backlog, []
        for handler, arg in backlog:
            handler(arg)

    # ----------------------------------------------------------------- alliance

    def _build_alliance(self) -> None:
        """Founders, a certificate for every hub that is a member from the start, and the
        joins and rotations the scenario schedules."""
        spec = self.s.alliance
        founders = [self.hubs[i].key for i in range(spec.founders)]
        alliance = SimAlliance(founders, hlc(0.0) - 1)
        self.alliance = alliance
        joining = {j.hub for j in spec.joins}
        initial: list[Record] = []
        for hub in self.hubs:
            if hub.index >= spec.founders and hub.index not in joining:
                initial.append(alliance.certify(founders[0], hub.key.did, hlc(0.0)))
        alliance.initial = [certificate_of(r) for r in initial]
        for hub in self.hubs:
            if hub.index not in joining:
                # Members from the start hold the alliance's records, and sync them as
                # any records (a joiner fetches the certificates it lacks by reconcile).
                hub.store.put([(r.cid, r.block, r.ts) for r in [alliance.genesis_record, *initial]])
            hub.members = SimMembers(
                alliance,
                hub.key.did,
                self._hlc_now,
                proofs=spec.proofs,
                knows_members=hub.index not in joining,
            )
            hub.engine = self._new_engine(hub)
        for join in spec.joins:
            hub = self.hubs[join.hub]
            hub.off += 1  # not in the alliance yet: nowhere to connect
            self.kernel.at(join.at_s, self._join, (hub, self.hubs[join.issuer]))
        for rotation in spec.rotations:
            hub = self.hubs[rotation.hub]
            self.kernel.at(rotation.at_s, self._go_offline, hub)
            self.kernel.at(rotation.at_s + rotation.down_s, self._rotate, hub)

    def _hlc_now(self) -> int:
        return hlc(self.kernel.now)

    def _join(self, arg: tuple[SimHub, SimHub]) -> None:
        """``issuer`` admits ``hub`` (publishes its certificate); ``hub`` joins with the
        token (genesis, certificate, the issuer's proof) and comes online."""
        hub, issuer = arg
        assert self.alliance is not None
        cert = self.alliance.certify(issuer.key, hub.key.did, self._hlc_now())
        self._keep_records(issuer, [cert])
        self.deliver(issuer, RecordsAdded(((cert.ts, cert.cid),)))
        # The token: the genesis, its certificate and the issuer's proof.
        self._keep_records(hub, [self.alliance.genesis_record, *self.alliance.proofs[hub.key.did]])
        self.metrics.event("join", self.kernel.now)
        self._go_online(hub)

    def _rotate(self, hub: SimHub) -> None:
        """``craftnet id rotate`` while the hub was stopped: a new key, a succession
        record signed by the old one, and the hub back with a fresh engine."""
        assert self.alliance is not None and hub.members is not None
        self._generation += 1
        new = _key_for(hub.index, self._generation)
        succession = self.alliance.rotate(hub.key, new, self._hlc_now())
        hub.key = new
        hub.members.did = new.did
        self._keep_records(hub, [succession])
        self._fresh_engine(hub)
        self.deliver(hub, RecordsAdded(((succession.ts, succession.cid),)))
        self.metrics.event("rotation", self.kernel.now)
        self._go_online(hub)

    def _keep_records(self, hub: SimHub, records: list[Record]) -> None:
        """Records a hub writes itself (not fetched): stored, and learned if membership."""
        hub.store.put([(r.cid, r.block, r.ts) for r in records])
        if hub.members is not None:
            for record in records:
                hub.members.learn(record)

    def _learn(self, hub: SimHub, blocks: list[StoredBlock]) -> None:
        """A hub stored records: membership records change what it knows (the node's hub
        re-reads membership when they arrive and tells its engine)."""
        assert hub.members is not None
        changed = False
        for block in blocks:
            try:
                record = Record.from_block(block.data, block.cid)
            except ArchiveError:
                continue
            changed = hub.members.learn(record) or changed
        if changed:
            self.kernel.after(0.0, self._membership_changed, hub)

    def _membership_changed(self, hub: SimHub) -> None:
        self.deliver(hub, MembershipChanged())

    # ---------------------------------------------------- partitions and churn

    def _partition_open(self, spec: Any) -> None:
        side = bytearray(len(self.hubs))
        if spec.split == "halves":
            for i in range(self.s.hubs // 2, len(self.hubs)):
                side[i] = 1
        else:
            region = self.region_names.index(spec.region)
            for hub in self.hubs:
                side[hub.index] = 1 if hub.region == region else 0
        self.partitions.append(side)
        self._open_sides[id(spec)] = side
        for conn in list(self.conns.values()):
            if side[conn.a] != side[conn.b]:
                self.close(self.hubs[conn.a], self.hubs[conn.b])
        self.metrics.event("partition", self.kernel.now)

    def _partition_heal(self, spec: Any) -> None:
        side = self._open_sides.pop(id(spec))
        self.partitions.remove(side)
        for hub in self.hubs:
            for other in hub.out:
                self.connect(hub, self.hubs[other])
        self.metrics.event("heal", self.kernel.now)

    def _go_offline(self, hub: SimHub) -> None:
        hub.off += 1
        if hub.off == 1:
            for other in list(hub.conns):
                self.close(hub, self.hubs[other])
            self.metrics.online_changed(hub, False, self.kernel.now)

    def _go_online(self, hub: SimHub) -> None:
        hub.off -= 1
        if hub.off == 0:
            self.metrics.online_changed(hub, True, self.kernel.now)
            self._reconnect(hub)

    def _schedule_churn(self) -> None:
        c = self.s.churn
        rng = random.Random(self.rng.getrandbits(64))
        self.churn_rng = rng
        if c.share > 0:
            count = round(self.s.hubs * c.share)
            for i in sorted(rng.sample(range(self.s.hubs), count)):
                first = (
                    c.start_s + sample_mean(rng, c.dist, c.online_mean_s, c.shape) * rng.random()
                )
                self.kernel.at(first, self._churn_down, self.hubs[i])
        for o in c.outages:
            pool = [
                h.index
                for h in self.hubs[: self.s.hubs]
                if not o.region or self.region_names[h.region] == o.region
            ]
            chosen = sorted(rng.sample(pool, max(1, round(len(pool) * o.share))))
            for i in chosen:
                self.kernel.at(o.start_s, self._outage_start, self.hubs[i])
                self.kernel.at(o.start_s + o.duration_s, self._outage_end, self.hubs[i])

    def _churn_down(self, hub: SimHub) -> None:
        c = self.s.churn
        self._go_offline(hub)
        self.kernel.after(
            sample_mean(self.churn_rng, c.dist, c.offline_mean_s, c.shape), self._churn_up, hub
        )

    def _churn_up(self, hub: SimHub) -> None:
        c = self.s.churn
        self._go_online(hub)
        self.kernel.after(
            sample_mean(self.churn_rng, c.dist, c.online_mean_s, c.shape), self._churn_down, hub
        )

    def _outage_start(self, hub: SimHub) -> None:
        self._go_offline(hub)

    def _outage_end(self, hub: SimHub) -> None:
        self._go_online(hub)

    def _rewire(self, _: Any) -> None:
        """Peer sampling: every online hub swaps its links for ``degree`` random hubs."""
        degree = self.s.topology.degree
        online = [h.index for h in self.hubs[: self.s.hubs] if h.online]
        for conn in list(self.conns.values()):
            self.close(self.hubs[conn.a], self.hubs[conn.b])
        for i in online:
            hub = self.hubs[i]
            hub.out = [
                j for j in self.net_rng.sample(online, min(degree + 1, len(online))) if j != i
            ][:degree]
            for j in hub.out:
                self.connect(hub, self.hubs[j])
        self._dialled_cache = None
        self.kernel.after(self.s.network.rewire_interval_s, self._rewire, None)

    # -------------------------------------------------------------------- run

    def run(
        self,
        progress: Callable[[float, int], None] | None = None,
    ) -> RunResult:
        """Run to convergence or ``max_time_s``; returns the collected metrics."""
        started = time.perf_counter()
        step = self.s.sample_interval_s
        # Every hub decodes the same frames: decode each distinct body once (transparent).
        with frame_cache(self.frames), _long_lived_heap():
            t = 0.0
            while True:
                t = min(t + step, self.s.max_time_s)
                self._run_until(t)
                done = self.metrics.sample(t)
                if progress is not None:
                    progress(t, self.kernel.events)
                if t >= self.s.max_time_s or (done and self.s.stop_when_converged):
                    break
        wall = time.perf_counter() - started
        self.metrics.finish(self.kernel.now)
        self.metrics.freeze()
        self.close_stores()
        return RunResult(self.s, self.seed, self.metrics, wall, self.kernel.events)

    def close_stores(self) -> None:
        """Close the hubs' stores (LMDB files are removed)."""
        if self._tmp is None:
            return
        for hub in self.hubs:
            hub.store.close()
        self._tmp.cleanup()
        self._tmp = None

    def _run_until(self, until: float) -> None:
        self.kernel.run(until)


def _announced(data: bytes) -> tuple[Cid, ...]:
    """The CIDs an announcement names (none if it is not one); whether it is any good is
    each engine's verdict."""
    try:
        message = decode_frame(data)
    except ProtocolError:
        return ()
    return message.records + message.heads if isinstance(message, Announce) else ()


def _make_record(
    key: PrivateKey, n: int, at: float, text: str, links: tuple[Cid, ...] | None, kind: str
) -> Record:
    body = {"title": f"Neo-Vernacular joinery, variant {n}", "text": text}
    ts = ((BASE_TS + int(at * 1000)) << 16) | (n & 0xFFFF)
    return Record.create(key, kind, body, links or (), ts=ts)


def _forge(record: Record) -> bytes:
    """The record's block with one bit of its signature flipped."""
    at = record.block.index(record.sig)
    return record.block[:at] + bytes([record.sig[0] ^ 1]) + record.block[at + 1 :]


def run(
    scenario: Scenario, seed: int, progress: Callable[[float, int], None] | None = None
) -> RunResult:
    """Build and run one simulation."""
    return Simulation(scenario, seed).run(progress)
