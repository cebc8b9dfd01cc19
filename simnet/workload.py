"""The workload: records published over the run, where the artisans work.

``records`` records over ``window_s`` seconds from ``start_s``, as a Poisson process
whose rate the scenario's bursts multiply (a Maker's Fair), each at a random hub (or
one of ``publishers``, or hub ``origin``). A record may link a file chunk, or, for
``edit_share`` of them, be an edit of one shared parent record.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

from craftnet.archive.cid import RAW, Cid
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.events import RecordsAdded
from craftnet.simnet.hub import BASE_TS, SimHub

if TYPE_CHECKING:
    from craftnet.simnet.sim import Simulation


def make_record(
    key: PrivateKey, n: int, at: float, text: str, links: tuple[Cid, ...] | None, kind: str
) -> Record:
    """Record ``n`` of the run, signed by ``key`` at simulated second ``at``."""
    body = {"title": f"Neo-Vernacular joinery, variant {n}", "text": text}
    ts = ((BASE_TS + int(at * 1000)) << 16) | (n & 0xFFFF)
    return Record.create(key, kind, body, links or (), ts=ts)


class Workload:
    """Schedules the run's publishing and publishes each record at its hub."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.kernel = sim.kernel

    def schedule(self) -> None:
        """Draw when and where every record is published; tell the metrics how many."""
        sim = self.sim
        w = sim.s.workload
        rng = random.Random(sim.rng.getrandbits(64))
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
        publishers = list(range(sim.s.hubs))
        if w.publishers:
            publishers = sorted(rng.sample(publishers, w.publishers))
        parent: Cid | None = None
        for n, t in enumerate(times):
            origin = sim.hubs[w.origin if w.origin >= 0 else rng.choice(publishers)]
            edit = w.edit_share > 0 and rng.random() < w.edit_share
            chunk = rng.randbytes(w.file_bytes) if w.file_bytes else b""
            text = rng.randbytes(w.body_bytes // 2).hex() if w.body_bytes else ""
            if edit and parent is None:
                parent = make_record(origin.key, n, t, text, None, "technique").cid
                edit = False
            self.kernel.at(t, self._publish, (origin, n, text, chunk, parent if edit else None))
        sim.metrics.expect_records(w.records)

    def _publish(self, arg: tuple[SimHub, int, str, bytes, Cid | None]) -> None:
        hub, n, text, chunk, parent = arg
        links: list[Cid] = []
        if parent is not None:
            links.append(parent)
        if chunk:
            cid = Cid.of(chunk, RAW)
            hub.store.put([(cid, chunk, None)])
            links.append(cid)
        now = self.kernel.now
        kind = "edit" if parent is not None else "technique"
        record = make_record(hub.key, n, now, text, tuple(links), kind)
        hub.store.put([(record.cid, record.block, record.ts)])
        self.sim.metrics.published(hub, record.cid, now)
        self.sim.executor.deliver(hub, RecordsAdded(((record.ts, record.cid),)))
