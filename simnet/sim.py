"""The simulation: real sync engines on virtual links, driven by the kernel.

Every honest hub is a :class:`~craftnet.protocol.engine.SyncEngine` with its own key
and a store. A run is put together from parts that each own one thing:

* :mod:`~craftnet.simnet.hub`: a hub and a connection, as the network sees them;
* :mod:`~craftnet.simnet.links`: the network model (connections, delay, jitter, uplink
  queueing, loss, partitions' cuts);
* :mod:`~craftnet.simnet.mesh`: the gossip layer that stands in for GossipSub;
* :mod:`~craftnet.simnet.executor`: the command interpreter (node/p2p's driver here);
* :mod:`~craftnet.simnet.workload`: the records published;
* :mod:`~craftnet.simnet.faults`: partitions, churn, outages, restarts, pauses, peer
  sampling;
* :mod:`~craftnet.simnet.membership`: the alliance's founders, joins and rotations;
* :mod:`~craftnet.simnet.adversaries`: the misbehaving peers.

:class:`Simulation` builds the hubs and their engines, wires the parts together and
runs the kernel to convergence, sampling the metrics as it goes.
"""

from __future__ import annotations

import gc
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from craftnet.archive.cid import Cid
from craftnet.protocol.blocks import BlockConfig
from craftnet.protocol.engine import EngineConfig, SyncEngine
from craftnet.protocol.events import PeerId
from craftnet.protocol.framing import FrameCache, frame_cache
from craftnet.protocol.gossip import Reannounce
from craftnet.protocol.members import EVERYONE, Members
from craftnet.protocol.policy import DEFAULT_POLICY, Policy
from craftnet.protocol.scoring import Thresholds
from craftnet.simnet import topology
from craftnet.simnet.adversaries import Adversaries
from craftnet.simnet.counters import Counters
from craftnet.simnet.executor import Executor
from craftnet.simnet.faults import Faults
from craftnet.simnet.hub import HONEST, SimHub, key_for
from craftnet.simnet.items import ItemTable
from craftnet.simnet.kernel import Kernel
from craftnet.simnet.links import Network
from craftnet.simnet.membership import Membership
from craftnet.simnet.mesh import Mesh
from craftnet.simnet.metrics import Metrics
from craftnet.simnet.scenario import Scenario
from craftnet.simnet.stores import SharedBlock, open_store
from craftnet.simnet.verify import SharedVerifier, VerdictCache
from craftnet.simnet.workload import Workload

ALLIANCE: Final = "Global Micro-manufacturing Alliance"
# How each gossip model re-announces what a hub fetched (the engine decides which).
REANNOUNCE_MODES: Final = {
    "reannounce": Reannounce.ALL,
    "store_forward": Reannounce.UNANNOUNCED,
    "relay": Reannounce.NONE,
}


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
    The young generation is collected every million net allocations: at 10,000 hubs x
    100 records (compiled, load 1) that took the collector's time from 3.2-3.4 s to
    1.5-1.7 s of the run's 53-64 s (the same objects freed either way), as more of the
    in-flight copies and events die before a pass walks them.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(1_000_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


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
        self.frames = FrameCache()
        self.items_table = ItemTable()
        self.blocks_table: dict[Cid, SharedBlock] = {}
        self.hubs: list[SimHub] = []
        self.by_peer: dict[PeerId, SimHub] = {}
        self.generation = 0  # engines and keys made since the start (restarts, rotations)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.region_names = scenario.region_names()
        self.honest = scenario.hubs
        self.stats = Counters()
        self.network = Network(self)
        self.mesh = Mesh(self)
        self.executor = Executor(self)
        self.faults = Faults(self)
        self.membership = Membership(self)
        self.workload = Workload(self)
        self.adversaries = Adversaries(self)
        self.metrics = Metrics(scenario, self)
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
        hub = SimHub(index, PeerId(peer), key_for(index), kind)
        folder = None
        if self.s.store == "lmdb":
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="simnet-lmdb-")
            folder = Path(self._tmp.name) / peer
        hub.store = open_store(self.s.store, self.items_table, self.blocks_table, folder)
        self._config = config
        hub.engine = self.new_engine(hub)
        self.hubs.append(hub)
        self.by_peer[hub.peer] = hub
        return hub

    def new_engine(self, hub: SimHub, generation: int = 0) -> SyncEngine:
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

    def fresh_engine(self, hub: SimHub) -> None:
        """The hub's process starts again: a new engine (scores, seen announcements,
        timers gone) on the same store, with the want list it saved when it stopped.
        GossipSub's seen cache is gone too: messages it saw may reach it again."""
        saved = hub.engine.export_wants()
        hub.timers.clear()
        hub.pending.clear()
        hub.recent.clear()
        self.generation += 1
        hub.engine = self.new_engine(hub, self.generation)
        hub.engine.import_wants(saved)
        self.mesh.forget_hub(hub.index)

    def _build(self) -> None:
        s = self.s
        network = self.network
        config = self._engine_config(s.network.rewire_interval_s > 0)
        shares = {name: spec.share for name, spec in s.regions.items()} or {"all": 1.0}
        regions = topology.assign_regions(s.hubs, shares, self.rng)
        for i in range(s.hubs):
            hub = self._make_hub(i, f"hub-{i:05d}", HONEST, config)
            hub.region = regions[i]
            network.set_link_caps(hub)
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
                network.set_link_caps(hub)
                hub.out = list(targets) or self.rng.sample(honest_ids, min(spec.degree, s.hubs))
                self.metrics.adversary(hub, spec, targets)
        self.faults.schedule_partitions()
        self.faults.schedule_churn()
        self.faults.schedule_restarts_and_pauses()
        if s.alliance.enabled:
            self.membership.build()
        self.workload.schedule()
        self.adversaries.schedule()
        self.faults.schedule_rewiring()
        self.kernel.at(0.0, network.connect_all, None)

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
                self.kernel.run(t)
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


def run(
    scenario: Scenario, seed: int, progress: Callable[[float, int], None] | None = None
) -> RunResult:
    """Build and run one simulation."""
    return Simulation(scenario, seed).run(progress)
