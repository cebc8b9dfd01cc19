"""What happens to the network on schedule: partitions, churn, outages, restarts, pauses
and peer sampling.

* A partition closes every connection across its cut at ``start_s`` and refuses dials
  across it until ``heal_s``, when the topology's links across it are dialled again.
* Churn takes hubs offline and back with heavy-tailed session lengths; outages take a
  share of a region offline for a fixed time. An offline hub's connections close; its
  engine keeps its state and timers; back online, it dials its topology links again.
* A restart is a process stopped and started again: a fresh engine on the same store.
  A pause (SIGSTOP) closes nothing: what arrives waits, and is handled at once, in
  order, when the hub resumes.
* Peer sampling swaps every online hub's links for random ones every interval.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from craftnet.simnet.hub import SimHub, sample_mean
from craftnet.simnet.part import Part

if TYPE_CHECKING:
    from craftnet.simnet.scenario import PartitionSpec
    from craftnet.simnet.sim import Simulation


class Faults(Part):
    """Schedules and carries out a run's partitions, churn, restarts and pauses."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self._open_sides: dict[int, bytearray] = {}
        self.churn_rng = random.Random(0)  # replaced by a seeded one in schedule_churn

    # ------------------------------------------------------------- partitions

    def schedule_partitions(self) -> None:
        """Open and heal every partition on time."""
        for p in self.s.partitions:
            self.kernel.at(p.start_s, self._partition_open, p)
            self.kernel.at(p.heal_s, self._partition_heal, p)

    def _partition_open(self, spec: PartitionSpec) -> None:
        sim = self.sim
        side = bytearray(len(self.hubs))
        if spec.split == "halves":
            for i in range(self.s.hubs // 2, len(self.hubs)):
                side[i] = 1
        else:
            region = sim.region_names.index(spec.region)
            for hub in self.hubs:
                side[hub.index] = 1 if hub.region == region else 0
        network = sim.network
        network.partitions.append(side)
        self._open_sides[id(spec)] = side
        for conn in list(network.conns.values()):
            if side[conn.a] != side[conn.b]:
                network.close(self.hubs[conn.a], self.hubs[conn.b])
        sim.metrics.event("partition", self.kernel.now)

    def _partition_heal(self, spec: PartitionSpec) -> None:
        network = self.sim.network
        side = self._open_sides.pop(id(spec))
        network.partitions.remove(side)
        for hub in self.hubs:
            for other in hub.out:
                network.connect(hub, self.hubs[other])
        self.sim.metrics.event("heal", self.kernel.now)

    # ------------------------------------------------------- offline and back

    def go_offline(self, hub: SimHub) -> None:
        """One more reason for ``hub`` to be offline; its connections close at the first."""
        hub.off += 1
        if hub.off == 1:
            for other in list(hub.conns):
                self.sim.network.close(hub, self.hubs[other])
            self.sim.metrics.online_changed(hub, False, self.kernel.now)

    def go_online(self, hub: SimHub) -> None:
        """One reason fewer; at none, ``hub`` is back and dials its links again."""
        hub.off -= 1
        if hub.off == 0:
            self.sim.metrics.online_changed(hub, True, self.kernel.now)
            self.sim.network.reconnect(hub)

    def schedule_churn(self) -> None:
        """Draw the churning hubs' first departures and the outages."""
        c = self.s.churn
        rng = random.Random(self.sim.rng.getrandbits(64))
        self.churn_rng = rng
        if c.share > 0:
            count = round(self.s.hubs * c.share)
            for i in sorted(rng.sample(range(self.s.hubs), count)):
                first = (
                    c.start_s + sample_mean(rng, c.dist, c.online_mean_s, c.shape) * rng.random()
                )
                self.kernel.at(first, self._churn_down, self.hubs[i])
        names = self.sim.region_names
        for o in c.outages:
            pool = [
                h.index
                for h in self.hubs[: self.s.hubs]
                if not o.region or names[h.region] == o.region
            ]
            chosen = sorted(rng.sample(pool, max(1, round(len(pool) * o.share))))
            for i in chosen:
                self.kernel.at(o.start_s, self.go_offline, self.hubs[i])
                self.kernel.at(o.start_s + o.duration_s, self.go_online, self.hubs[i])

    def _churn_down(self, hub: SimHub) -> None:
        c = self.s.churn
        self.go_offline(hub)
        self.kernel.after(
            sample_mean(self.churn_rng, c.dist, c.offline_mean_s, c.shape), self._churn_up, hub
        )

    def _churn_up(self, hub: SimHub) -> None:
        c = self.s.churn
        self.go_online(hub)
        self.kernel.after(
            sample_mean(self.churn_rng, c.dist, c.online_mean_s, c.shape), self._churn_down, hub
        )

    # ------------------------------------------------------ restarts and pauses

    def schedule_restarts_and_pauses(self) -> None:
        """Stop and start (or pause and resume) the hubs the scenario names."""
        for restart in self.s.restarts:
            hub = self.hubs[restart.hub]
            self.kernel.at(restart.at_s, self._restart_down, hub)
            self.kernel.at(restart.at_s + restart.down_s, self._restart_up, hub)
        for pause in self.s.pauses:
            hub = self.hubs[pause.hub]
            self.kernel.at(pause.at_s, self._pause, hub)
            self.kernel.at(pause.at_s + pause.duration_s, self._resume, hub)

    def _restart_down(self, hub: SimHub) -> None:
        self.go_offline(hub)
        self.sim.metrics.event("restart", self.kernel.now)

    def _restart_up(self, hub: SimHub) -> None:
        self.sim.fresh_engine(hub)
        self.go_online(hub)

    def _pause(self, hub: SimHub) -> None:
        hub.paused = True
        self.sim.metrics.event("pause", self.kernel.now)

    def _resume(self, hub: SimHub) -> None:
        """SIGCONT: everything that arrived meanwhile is handled at once, in order."""
        hub.paused = False
        backlog, hub.backlog = hub.backlog, []
        for handler, arg in backlog:
            handler(arg)

    # ----------------------------------------------------------- peer sampling

    def schedule_rewiring(self) -> None:
        """Turn peer sampling on if the scenario asks for it."""
        interval = self.s.network.rewire_interval_s
        if interval > 0:
            self.kernel.at(interval, self._rewire, None)

    def _rewire(self, _: object) -> None:
        """Peer sampling: every online hub swaps its links for ``degree`` random hubs."""
        sim = self.sim
        network = sim.network
        degree = self.s.topology.degree
        online = [h.index for h in self.hubs[: self.s.hubs] if h.online]
        for conn in list(network.conns.values()):
            network.close(self.hubs[conn.a], self.hubs[conn.b])
        for i in online:
            hub = self.hubs[i]
            hub.out = [
                j for j in sim.net_rng.sample(online, min(degree + 1, len(online))) if j != i
            ][:degree]
            for j in hub.out:
                network.connect(hub, self.hubs[j])
        network.topology_changed()
        self.kernel.after(self.s.network.rewire_interval_s, self._rewire, None)
