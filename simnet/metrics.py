"""What a run measures: deliveries, holders over time, convergence, bytes, adversaries.

Everything here is a pure function of the simulated run (no wall clock), so the same
seed and scenario give byte-identical ``metrics.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

from craftnet.archive.cid import Cid
from craftnet.protocol.events import PeerId

if TYPE_CHECKING:
    from craftnet.simnet.hub import SimHub
    from craftnet.simnet.scenario import AdversarySpec, Scenario
    from craftnet.simnet.sim import Simulation


class Adversary:
    """One misbehaving peer and how the honest hubs it touched judge it."""

    # A plain class, not a dataclass: compiled with mypyc (simnet's compiled mode), a
    # dataclass's field annotations are evaluated when the module is imported, and
    # SimHub (imported for type checking only) then read as a null type object: the
    # interpreter crashed on a run that imported this module before simnet/hub.py.
    def __init__(self, hub: SimHub, kind: str, targets: list[int]) -> None:
        self.hub = hub
        self.kind = kind
        self.targets = targets
        self.first_ban_s: float | None = None
        self.banned_by: set[int] = set()
        # first cut off (graylisted or banned) by an honest hub
        self.first_cut_s: float | None = None
        self.cut_off_by: set[int] = set()
        self.scores: list[float] = []


def quantiles(values: Any, qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """``p50``, ``p90``, ... ``max`` and ``mean`` of ``values`` (empty: {})."""
    data: Any
    if isinstance(values, array) and values.typecode == "d":
        # The delivery latencies (10 M at scale): sorted as one float array, not a list.
        data = np.sort(np.frombuffer(values, dtype=np.float64))
        total = float(data.sum())
    else:
        data = sorted(values)
        total = sum(data)
    n = len(data)
    if not n:
        return {}
    out = {f"p{round(q * 100)}": _r(data[min(n - 1, int(q * n))]) for q in qs}
    out["max"] = _r(data[-1])
    out["mean"] = _r(total / n)
    return out


def _r(x: float) -> float:
    return round(float(x), 6)


class Metrics:
    """Collects as the simulation runs; samples every ``sample_interval_s``."""

    def __init__(self, scenario: Scenario, sim: Simulation) -> None:
        self.s = scenario
        self.sim = sim
        self.index: dict[Cid, int] = {}
        self.published_at = array("d")
        self.origin = array("l")
        self.holders = array("l")
        self.full_at = array("d")
        self.held: array[int] = array("l")
        self.latencies = array("d")
        self.expected = 0
        self.online = scenario.hubs
        self.adversaries: list[Adversary] = []
        self.adv_by_peer: dict[PeerId, Adversary] = {}
        self.honest_bans = 0
        self.honest_cut_offs = 0
        self.events: list[tuple[str, float]] = []
        self.lines: list[dict[str, Any]] = []
        self.snapshots: list[tuple[float, array[int]]] = []
        self.converged_at: float | None = None
        self.heal_converged: list[dict[str, float | None]] = []
        self.end = 0.0
        self._held_online: tuple[int, int] | None = None

    # ----------------------------------------------------------- collecting

    def expect_records(self, n: int) -> None:
        """The workload will publish ``n`` records."""
        self.expected = n
        self.held = array("l", bytes(8 * self.s.hubs))

    def adversary(self, hub: SimHub, spec: AdversarySpec, targets: list[int]) -> None:
        """Track an adversary."""
        adv = Adversary(hub, spec.kind, targets)
        self.adversaries.append(adv)
        self.adv_by_peer[hub.peer] = adv

    def published(self, hub: SimHub, cid: Cid, now: float) -> None:
        """A record appeared at its origin."""
        self.index[cid] = len(self.published_at)
        self.published_at.append(now)
        self.origin.append(hub.index)
        self.holders.append(1)
        self.full_at.append(-1.0)
        self.held[hub.index] += 1
        self._maybe_full(len(self.holders) - 1, now)

    def stored(self, hub: SimHub, cid: Cid, now: float) -> None:
        """A hub stored a record block."""
        idx = self.index.get(cid)
        if idx is None or hub.index >= self.s.hubs:
            return
        self.held[hub.index] += 1
        holders = self.holders
        holders[idx] += 1
        self.latencies.append(now - self.published_at[idx])
        if holders[idx] == self.s.hubs:  # _maybe_full, inlined: once per delivery
            self.full_at[idx] = now

    def _maybe_full(self, idx: int, now: float) -> None:
        if self.holders[idx] == self.s.hubs:
            self.full_at[idx] = now

    def banned(self, hub: SimHub, peer: PeerId, now: float) -> None:
        """``hub`` banned ``peer``."""
        adv = self.adv_by_peer.get(peer)
        if adv is None:
            if hub.index < self.s.hubs:
                self.honest_bans += 1
            return
        if hub.index < self.s.hubs:
            adv.banned_by.add(hub.index)
            if adv.first_ban_s is None:
                adv.first_ban_s = now

    def punished(self, hub: SimHub, peer: PeerId, now: float) -> None:
        """``hub`` cut ``peer`` off for its score (graylisted or banned)."""
        if hub.index >= self.s.hubs:
            return
        adv = self.adv_by_peer.get(peer)
        if adv is None:
            self.honest_cut_offs += 1
            return
        adv.cut_off_by.add(hub.index)
        if adv.first_cut_s is None:
            adv.first_cut_s = now

    def online_changed(self, hub: SimHub, online: bool, now: float) -> None:
        """A hub went on or offline."""
        if hub.index < self.s.hubs:
            self.online += 1 if online else -1

    def event(self, kind: str, now: float) -> None:
        """Something happened to the network: a partition opened or healed, a hub restarted,
        paused, joined or rotated its key."""
        self.events.append((kind, now))
        if kind == "heal":
            self.heal_converged.append({"heal_s": _r(now), "converged_after_s": None})

    # -------------------------------------------------------------- sampling

    def _adversary_score(self, adv: Adversary, now: float) -> tuple[float, int, int]:
        """Mean score the honest hubs it dialled give it; how many graylist and ban it."""
        total, n, gray, banned = 0.0, 0, 0, 0
        for i in adv.hub.out:
            engine = self.sim.hubs[i].engine
            limits = engine.config.thresholds
            standing = engine.standing(adv.hub.peer, now)
            if standing.banned:
                banned += 1
                total += limits.disconnect
                n += 1
                continue
            if standing.score is None:  # never penalised: counted as 0, its score unread
                total += 0.0
                n += 1
                continue
            total += standing.score
            n += 1
            if standing.score < limits.graylist:
                gray += 1
        return (total / n if n else 0.0), gray, banned

    def sample(self, t: float) -> bool:
        """Take one sample at simulated time ``t``; True once the run has converged."""
        sim = self.sim
        published = len(self.published_at)
        missing_online = 0
        complete = 0
        for hub in sim.hubs[: self.s.hubs]:
            lack = published - self.held[hub.index]
            if hub.online:
                missing_online += lack
            if lack == 0:
                complete += 1
        pairs = published * self.s.hubs
        delivered = sum(self.holders)
        line: dict[str, Any] = {
            "t": _r(t),
            "published": published,
            "online": self.online,
            "hubs_complete": complete,
            "delivered_fraction": _r(delivered / pairs) if pairs else 1.0,
            "missing_online": missing_online,
            "records_everywhere": sum(1 for x in self.full_at if x >= 0),
            "events": sim.kernel.events,
            "sends": sim.stats["sends"],
            "gossip_messages": sim.stats["gossip_messages"],
            "bytes": sim.stats["send_bytes"],
            "reconciles": sim.stats["reconciles"],
            "partitioned": bool(sim.network.partitions),
        }
        if self.adversaries:
            advs = []
            for adv in self.adversaries:
                score, gray, banned = self._adversary_score(adv, t)
                adv.scores.append(_r(score))
                advs.append(
                    {"peer": adv.hub.peer, "score": _r(score), "graylisted": gray, "banned": banned}
                )
            line["adversaries"] = advs
        self.lines.append(line)
        self.snapshots.append((t, array("l", self.holders)))
        converged = (
            published == self.expected
            and missing_online == 0
            and not sim.network.partitions
            and t >= self._last_scheduled()
        )
        if missing_online == 0 and not sim.network.partitions:
            for heal in self.heal_converged:
                if heal["converged_after_s"] is None and heal["heal_s"] is not None:
                    heal["converged_after_s"] = _r(t - heal["heal_s"])
        if converged and self.converged_at is None:
            self.converged_at = t
        return converged

    def _last_scheduled(self) -> float:
        last = 0.0
        for p in self.s.partitions:
            last = max(last, p.heal_s)
        for o in self.s.churn.outages:
            last = max(last, o.start_s + o.duration_s)
        for a in self.s.adversaries:
            last = max(last, a.start_s)
        return last

    def finish(self, now: float) -> None:
        """The run ended at ``now``."""
        self.end = now

    def freeze(self) -> None:
        """Read what the summary needs from the hubs' stores, before they close."""
        online = [h for h in self.sim.hubs[: self.s.hubs] if h.online]
        # A record only on offline hubs (published on a laptop that is away) cannot be
        # delivered; delivery to online hubs counts the records some online hub holds.
        available = [c for c in self.index if any(h.store.has(c) for h in online)]
        held = sum(1 for h in online for c in available if h.store.has(c))
        self._held_online = (len(available), held)

    # --------------------------------------------------------------- outputs

    def summary(self) -> dict[str, Any]:
        """The run's results as a JSON-ready dict (deterministic)."""
        sim = self.sim
        s = self.s
        honest = sim.hubs[: s.hubs]
        published = len(self.published_at)
        online = [h for h in honest if h.online]
        if self._held_online is None:
            self.freeze()
        assert self._held_online is not None
        available, held_online = self._held_online
        full = [
            self.full_at[i] - self.published_at[i] for i in range(published) if self.full_at[i] >= 0
        ]
        hops = max(sim.mesh.hops, default=0)
        out: dict[str, Any] = {
            "scenario": s.name,
            "seed": sim.seed,
            "hubs": s.hubs,
            "adversary_peers": len(sim.hubs) - s.hubs,
            "verify": {
                "mode": s.verify,
                "note": "each distinct signature verified once and the verdict shared by all "
                "simulated hubs"
                if s.verify == "shared"
                else "every hub verifies every signature itself",
                "verified": sim.cache.verified,
                "shared": sim.cache.shared,
            },
            "end_s": _r(self.end),
            "records_published": published,
            "records_everywhere": len(full),
            "converged": self.converged_at is not None,
            "converged_at_s": self.converged_at,
            "delivery_latency_s": quantiles(self.latencies),
            "full_delivery_s": quantiles(full),
            "delivery_online": _r(held_online / (available * len(online)))
            if available and online
            else 1.0,
            "records_only_offline": published - available,
            "online_at_end": len(online),
            "gossip_max_hops": hops,
            "partitions": self.heal_converged,
            "honest_hubs_banned_by_honest": self.honest_bans,
            "honest_hubs_cut_off_by_honest": self.honest_cut_offs,
            "traffic": dict(sorted(sim.stats.items())),
            "events": sim.kernel.events,
            "disconnect_reasons": dict(sorted(sim.executor.disconnect_reasons.items())),
            "bytes_out_per_hub": quantiles(h.bytes_out for h in honest),
            "bytes_in_per_hub": quantiles(h.bytes_in for h in honest),
        }
        if s.workload.bursts:
            out["bursts"] = [
                {
                    "name": b.name,
                    "start_s": b.start_s,
                    "records": sum(
                        1 for t in self.published_at if b.start_s <= t < b.start_s + b.duration_s
                    ),
                }
                for b in s.workload.bursts
            ]
        if s.network.rewire_interval_s > 0 and full:
            # Contacts happen at 0, T, 2T, ...: a record delivered in [kT, (k+1)T) took
            # k+1 rounds of contacts.
            out["rounds"] = quantiles(math.floor(x / s.network.rewire_interval_s) + 1 for x in full)
        if self.adversaries:
            victims = {t for a in self.adversaries for t in a.targets}
            out["adversaries"] = [
                {
                    "peer": a.hub.peer,
                    "kind": a.kind,
                    "honest_neighbours": len(a.hub.out),
                    "banned_by": len(a.banned_by),
                    "first_ban_s": None if a.first_ban_s is None else _r(a.first_ban_s),
                    "cut_off_by": len(a.cut_off_by),
                    "first_cut_s": None if a.first_cut_s is None else _r(a.first_cut_s),
                    "final_score": a.scores[-1] if a.scores else 0.0,
                }
                for a in self.adversaries
            ]
            if victims:
                out["eclipse_victims_complete"] = sum(
                    1 for v in victims if self.held[v] == published
                )
                out["eclipse_victims"] = len(victims)
        return out

    def jsonl(self) -> str:
        """``metrics.jsonl``: one JSON object per sample."""
        return "".join(json.dumps(line, sort_keys=True) + "\n" for line in self.lines)


def dumps(value: Any) -> str:
    """Stable JSON for the outputs."""
    return json.dumps(value, sort_keys=True, indent=2, allow_nan=False) + "\n"


def fmt_s(x: float | None) -> str:
    """Seconds for the report."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.2f} s"
