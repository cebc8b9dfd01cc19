"""What every part of a run (network, mesh, faults) reads from its simulation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from craftnet.simnet.sim import Simulation


class Part:
    """A part of one run: the simulation and the pieces of it every part uses, bound once
    (the hot paths read them for every event)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.s = sim.s
        self.kernel = sim.kernel
        self.hubs = sim.hubs
        self.stats = sim.stats
        self.net_rng = sim.net_rng
