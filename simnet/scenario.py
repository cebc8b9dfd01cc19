"""Scenario files: TOML, checked strictly against dataclasses that document every option.

Each option is a dataclass field made with :func:`craftnet.tomlcheck.opt`, whose metadata
holds its help text and bounds, so the parser, the documentation test and
``docs/simnet.md`` read one table. Unknown keys, wrong types and impossible values are
refused with :class:`ScenarioError`, whose message names the file, the line and the
option (the checker is :mod:`craftnet.tomlcheck`, shared with the node's settings).
"""

# opt() returns dataclasses.field(...); ruff cannot see that through the helper.
# ruff: noqa: RUF009
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from craftnet import tomlcheck
from craftnet.errors import CraftnetError
from craftnet.tomlcheck import Checker, opt, option_rows
from craftnet.tomlcheck import find_line as find_line  # where a key is set: for the tests


class ScenarioError(CraftnetError):
    """A scenario file that cannot be run; the message names the line and the option."""


@dataclass(frozen=True)
class TopologySpec:
    """How hubs are connected."""

    kind: str = opt(
        "random_regular",
        "`random_regular` (every hub has `degree` links), `small_world` (Watts-Strogatz ring "
        "of `degree` neighbours, each rewired with probability `rewire_p`), `geographic` "
        "(dense random links inside each region, `bridges` links between every two regions) "
        "or `file` (read `path`)",
        choices=("random_regular", "small_world", "geographic", "file"),
    )
    degree: int = opt(6, "links per hub (random_regular, small_world, geographic)", lo=1)
    rewire_p: float = opt(0.1, "small_world: probability of rewiring each ring link", lo=0, hi=1)
    bridges: int = opt(4, "geographic: links between every pair of regions", lo=0)
    path: str = opt(
        "",
        "file: an edge list (`a b` per line) or GraphML file; relative "
        "paths are read from the scenario's folder",
    )
    format: str = opt(
        "auto",
        "file: `edgelist`, `graphml` or `auto` (by the file suffix)",
        choices=("auto", "edgelist", "graphml"),
    )


@dataclass(frozen=True)
class RegionSpec:
    """A cluster of hubs (urban or rural) with its own link speed and availability."""

    share: float = opt(
        1.0, "fraction of the hubs in this region (shares are normalised)", above=0, hi=1
    )
    bandwidth_kbps: float = opt(
        0.0, "uplink of each hub here in kbit/s; 0 takes `network.bandwidth_kbps`", lo=0
    )
    loss: float = opt(
        -1.0, "message loss on links from hubs here; -1 takes `network.loss`", lo=-1, hi=0.99
    )


@dataclass(frozen=True)
class LatencySpec:
    """One-way delay of links."""

    dist: str = opt(
        "lognormal",
        "distribution of a link's base delay around its mean: "
        "`constant`, `uniform` (0.5x..1.5x), `exponential` or `lognormal`",
        choices=("constant", "uniform", "exponential", "lognormal"),
    )
    mean_ms: float = opt(40.0, "mean one-way delay in ms between regions not in `matrix_ms`", lo=0)
    sigma: float = opt(0.3, "lognormal: sigma of the log of the delay", lo=0, hi=3)
    jitter_ms: float = opt(
        2.0,
        "mean extra delay per message (exponential), in ms; a stream still delivers in order",
        lo=0,
    )
    matrix_ms: dict[str, dict[str, float]] = opt(
        dict,
        "mean one-way delay in ms from region to region, e.g. `urban = { urban = 15, rural = 80 }`",
    )


@dataclass(frozen=True)
class NetworkSpec:
    """Links and the gossip layer."""

    bandwidth_kbps: float = opt(
        10_000.0,
        "uplink of each hub in kbit/s (messages queue behind each other); 0 means unlimited",
        lo=0,
    )
    loss: float = opt(
        0.0,
        "probability a message is lost: gossip messages vanish, stream "
        "data is resent after a timeout (the stream is reliable)",
        lo=0,
        hi=0.99,
    )
    retransmit_s: float = opt(
        0.5, "extra delay of stream data whose first transmission was lost", lo=0
    )
    gossip: bool = opt(
        True,
        "announce new records on the gossip layer (GossipSub "
        "stand-in); false leaves reconciliation alone",
    )
    gossip_mode: str = opt(
        "store_forward",
        "`store_forward`: a hub relays an announcement once it holds what it names (so "
        "whoever it tells can fetch from it); `relay`: relay on receipt, as plain GossipSub; "
        "`reannounce`: relay on receipt and, as node/p2p's driver does, every hub announces "
        "records anew once stored (O(N^2) announcements: small runs only)",
        choices=("store_forward", "relay", "reannounce"),
    )
    relay_delay_s: float = opt(
        0.0,
        "time a hub takes to validate and relay a gossip "
        "message (py-libp2p's GossipSub pipeline: about 0.05 s "
        "on loopback, see the fidelity test)",
        lo=0,
    )
    mesh_degree: int = opt(
        8, "gossip: forward each new announcement to at most this many connected neighbours", lo=1
    )
    rewire_interval_s: float = opt(
        0.0,
        "peer sampling: every this many seconds each hub "
        "drops its links and dials `topology.degree` random "
        "online hubs (0: keep the topology)",
        lo=0,
    )
    admission_queue: int = opt(
        400,
        "gossip messages a hub hands a neighbour at once when the neighbour is admitted "
        "(its hello done), as py-libp2p does: up to 100 queued messages plus what its "
        "message cache holds (339 in one second measured between real hubs under load); "
        "0 sends nothing of the past",
        lo=0,
    )
    admission_window_s: float = opt(
        30.0, "how far back the messages handed over on admission go (py-libp2p: 30 s)", lo=0
    )


@dataclass(frozen=True)
class EngineSpec:
    """Settings of the real sync engine each hub runs (protocol.engine.EngineConfig)."""

    reconcile_interval_s: float = opt(
        300.0, "seconds between reconciles with each dialled peer", above=0
    )
    reconcile_timeout_s: float = opt(
        120.0, "a reconcile not finished in this time is abandoned", above=0
    )
    hello_timeout_s: float = opt(10.0, "a handshake not done in this time is closed", above=0)
    block_timeout_s: float = opt(
        15.0, "a block request not ended in this time is asked elsewhere", above=0
    )
    seen_announcements: int = opt(
        10_000,
        "announcements each engine remembers to skip "
        "repeats (lower it to save memory in large runs)",
        lo=1,
    )
    redial_max_s: float = opt(60.0, "longest back-off between redials of a lost peer", above=0)
    push_blocks: bool = opt(
        True,
        "announcements carry small blocks (records) inline, so a hub stores a new record "
        "on arrival; false: hubs fetch each announced record with a want",
    )


@dataclass(frozen=True)
class BurstSpec:
    """A period of busier publishing, e.g. a Maker's Fair."""

    name: str = opt("Maker's Fair", "label in the report")
    start_s: float = opt(0.0, "when the burst starts", lo=0)
    duration_s: float = opt(60.0, "how long it lasts", above=0)
    factor: float = opt(5.0, "publishing rate multiplier during the burst", above=0)


@dataclass(frozen=True)
class WorkloadSpec:
    """What artisans publish."""

    records: int = opt(100, "records published in total", lo=0)
    start_s: float = opt(1.0, "when publishing starts", lo=0)
    window_s: float = opt(
        60.0,
        "publishing is spread over this many seconds (a Poisson process, shaped by bursts)",
        lo=0,
    )
    publishers: int = opt(0, "how many hubs publish (chosen at random); 0 means every hub", lo=0)
    origin: int = opt(
        -1,
        "publish every record at this hub (0-based); -1 picks a "
        "publisher at random for each record",
        lo=-1,
    )
    body_bytes: int = opt(200, "size of each record's text", lo=0, hi=200_000)
    file_bytes: int = opt(
        0,
        "when > 0 each record links a file chunk of this size, fetched by following links",
        lo=0,
        hi=1_000_000,
    )
    edit_share: float = opt(
        0.0,
        "fraction of records that are concurrent edits of one "
        "shared document (they link the same parent record)",
        lo=0,
        hi=1,
    )
    bursts: list[BurstSpec] = opt(list, "bursts of publishing (`[[workload.bursts]]`)")


@dataclass(frozen=True)
class OutageSpec:
    """A scheduled long outage (a rural hub offline for days)."""

    region: str = opt("", "only hubs of this region ('' for any)")
    share: float = opt(0.1, "fraction of those hubs that go offline", above=0, hi=1)
    start_s: float = opt(0.0, "when they go offline", lo=0)
    duration_s: float = opt(86_400.0, "how long they stay offline", above=0)


@dataclass(frozen=True)
class ChurnSpec:
    """Hubs coming and going."""

    share: float = opt(0.0, "fraction of hubs that churn (0 disables churn)", lo=0, hi=1)
    online_mean_s: float = opt(
        600.0,
        "mean online session; churn per minute is about 60 / online_mean_s of the churning hubs",
        above=0,
    )
    offline_mean_s: float = opt(120.0, "mean offline period", above=0)
    dist: str = opt(
        "pareto",
        "session lengths: `exponential`, `pareto` or `lognormal` (heavy-tailed)",
        choices=("exponential", "pareto", "lognormal"),
    )
    shape: float = opt(1.5, "pareto: tail index (> 1); lognormal: sigma", above=0)
    start_s: float = opt(0.0, "when churn starts", lo=0)
    outages: list[OutageSpec] = opt(list, "scheduled long outages (`[[churn.outages]]`)")


@dataclass(frozen=True)
class PartitionSpec:
    """A cut in the network that opens and heals on schedule."""

    split: str = opt(
        "halves",
        "`halves` (hubs 0..N/2-1 against the rest) or `region` "
        "(the hubs of `region` against the rest)",
        choices=("halves", "region"),
    )
    region: str = opt("", "split = region: the region cut off")
    start_s: float = opt(0.0, "when the cut opens", lo=0)
    heal_s: float = opt(60.0, "when it heals", above=0)


@dataclass(frozen=True)
class RestartSpec:
    """A hub's process restarted: offline for a while, then back with a fresh engine
    (scores, seen announcements and timers gone; store and saved want list kept)."""

    hub: int = opt(0, "which hub (0-based)", lo=0)
    at_s: float = opt(10.0, "when it stops", lo=0)
    down_s: float = opt(10.0, "how long it stays down", above=0)


@dataclass(frozen=True)
class PauseSpec:
    """A hub whose process is stopped (SIGSTOP, a starved CPU): it handles nothing, what
    arrives waits, its timers fire late, and then it catches up all at once (SIGCONT)."""

    hub: int = opt(0, "which hub (0-based)", lo=0)
    at_s: float = opt(10.0, "when it stops", lo=0)
    duration_s: float = opt(20.0, "how long it stays stopped", above=0)


@dataclass(frozen=True)
class JoinSpec:
    """A hub that joins the alliance during the run, certified by a member."""

    hub: int = opt(0, "which hub joins (0-based); it is offline until then", lo=0)
    at_s: float = opt(10.0, "when it joins", lo=0)
    issuer: int = opt(0, "the member that certifies it (publishes its certificate then)", lo=0)


@dataclass(frozen=True)
class RotationSpec:
    """A hub that rotates its key (``craftnet id rotate``) while it is stopped."""

    hub: int = opt(0, "which hub (0-based)", lo=0)
    at_s: float = opt(10.0, "when it stops to rotate", lo=0)
    down_s: float = opt(5.0, "how long it stays down", above=0)


@dataclass(frozen=True)
class AllianceSpec:
    """Membership: who may sync, proven as real hubs prove it (certificates, successions)."""

    enabled: bool = opt(
        False,
        "model membership: founders, certificates and key successions as signed records, "
        "each hub judging others by what it holds (false: every hub is a member)",
    )
    founders: int = opt(1, "hubs 0..founders-1 found the alliance", lo=1)
    proofs: bool = opt(
        True,
        "hellos carry membership proofs (protocol 2); false: a hub judges a peer by the "
        "certificates it holds itself, as before",
    )
    joins: list[JoinSpec] = opt(list, "hubs joining during the run (`[[alliance.joins]]`)")
    rotations: list[RotationSpec] = opt(list, "key rotations (`[[alliance.rotations]]`)")


@dataclass(frozen=True)
class AdversarySpec:
    """Misbehaving peers."""

    kind: str = opt(
        "drop",
        "`invalid` (announces and serves records with bad signatures), "
        "`spam` (floods announcements and garbage frames), `fake` (announces records it "
        "does not hold, `rate_per_s` a second, and says so when asked), `fake_silent` (the "
        "same, never answering), `drop` (completes "
        "the handshake, then answers nothing) or `eclipse` (drop, with every "
        "adversary linked to the same `targets` hubs)",
        choices=("invalid", "spam", "fake", "fake_silent", "drop", "eclipse"),
    )
    count: int = opt(1, "how many peers of this kind", lo=1)
    degree: int = opt(4, "links each adversary opens to honest hubs", lo=1)
    targets: int = opt(1, "eclipse: how many honest hubs are surrounded", lo=1)
    rate_per_s: float = opt(50.0, "spam/fake/invalid: messages or records per second", above=0)
    start_s: float = opt(5.0, "when the misbehaviour starts", lo=0)


@dataclass(frozen=True)
class Scenario:
    """A whole simulation."""

    name: str = opt("scenario", "label of the run")
    hubs: int = opt(100, "honest hubs", lo=2, hi=1_000_000)
    max_time_s: float = opt(600.0, "stop at this simulated time at the latest", above=0)
    stop_when_converged: bool = opt(
        True,
        "stop once every online honest hub holds every record and nothing is scheduled to change",
    )
    sample_interval_s: float = opt(5.0, "simulated seconds between metric samples", above=0)
    verify: str = opt(
        "real",
        "`real`: every hub checks every signature itself; `shared`: "
        "each distinct (key, signature, message) is verified once per run and "
        "the verdict shared by all simulated hubs (reported in the outputs)",
        choices=("real", "shared"),
    )
    store: str = opt(
        "shared",
        "`shared`: blocks and reconcile items in memory, their bytes shared by all hubs "
        "(large runs); `memory` or `lmdb`: archive's real MemoryStore or LmdbStore per hub "
        "(in a temporary folder), written as node/p2p's driver writes (small runs)",
        choices=("shared", "memory", "lmdb"),
    )
    topology: TopologySpec = opt(TopologySpec, "`[topology]`")
    regions: dict[str, RegionSpec] = opt(
        dict, "`[regions.NAME]`: clusters of hubs; none means one region called `all`"
    )
    latency: LatencySpec = opt(LatencySpec, "`[latency]`")
    network: NetworkSpec = opt(NetworkSpec, "`[network]`")
    engine: EngineSpec = opt(EngineSpec, "`[engine]`")
    workload: WorkloadSpec = opt(WorkloadSpec, "`[workload]`")
    churn: ChurnSpec = opt(ChurnSpec, "`[churn]`")
    partitions: list[PartitionSpec] = opt(list, "`[[partitions]]`")
    restarts: list[RestartSpec] = opt(list, "`[[restarts]]`")
    pauses: list[PauseSpec] = opt(list, "`[[pauses]]`")
    alliance: AllianceSpec = opt(AllianceSpec, "`[alliance]`")
    adversaries: list[AdversarySpec] = opt(list, "`[[adversaries]]`")

    def region_names(self) -> list[str]:
        """The regions, in file order (``all`` when none are given)."""
        return list(self.regions) or ["all"]


# ----------------------------------------------------------------------- parsing


def option_paths() -> Iterator[tuple[str, str]]:
    """Every option as ``(dotted path, help)``, for the docs and their test."""
    for path, doc, _ in option_rows(Scenario):
        yield path, doc


def parse(
    text: str, source: str = "<scenario>", overrides: dict[str, Any] | None = None
) -> Scenario:
    """Parse and check scenario TOML text; raises :class:`ScenarioError` naming the line.

    ``overrides`` maps dotted option paths (``"network.loss"``) to values that replace
    the file's (a sweep uses them); they are checked like the file's own values.
    """
    scenario, checker = tomlcheck.parse(text, source, Scenario, ScenarioError, overrides=overrides)
    _cross_check(scenario, checker)
    return scenario


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file."""
    path = Path(path)
    try:
        text = tomlcheck.read_text(path, ScenarioError)
    except FileNotFoundError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    scenario = parse(text, str(path))
    topo = scenario.topology
    if topo.kind == "file" and topo.path and not Path(topo.path).is_absolute():
        scenario = dataclasses.replace(
            scenario, topology=dataclasses.replace(topo, path=str(path.parent / topo.path))
        )
    return scenario


def _cross_check(s: Scenario, c: Checker) -> None:
    """Rules that involve more than one option."""
    names = set(s.region_names())
    for src, row in s.latency.matrix_ms.items():
        if src not in names:
            raise c.fail(
                ("latency", "matrix_ms", src),
                f"unknown region {src!r}; regions: {', '.join(sorted(names))}",
            )
        for dst, ms in row.items():
            if dst not in names:
                raise c.fail(("latency", "matrix_ms", src, dst), f"unknown region {dst!r}")
            if ms < 0:
                raise c.fail(
                    ("latency", "matrix_ms", src, dst), f"{ms} ms: a delay cannot be negative"
                )
    for i, p in enumerate(s.partitions):
        if p.heal_s <= p.start_s:
            raise c.fail(
                ("partitions", i, "heal_s"),
                f"heals at {p.heal_s:g} s, not after it opens at {p.start_s:g} s",
            )
        if p.split == "region" and p.region not in names:
            raise c.fail(("partitions", i, "region"), f"unknown region {p.region!r}")
    for i, o in enumerate(s.churn.outages):
        if o.region and o.region not in names:
            raise c.fail(("churn", "outages", i, "region"), f"unknown region {o.region!r}")
    if s.churn.dist == "pareto" and s.churn.shape <= 1:
        raise c.fail(("churn", "shape"), "a pareto tail index must be above 1 for a finite mean")
    topo = s.topology
    if topo.kind == "random_regular" and (topo.degree >= s.hubs or topo.degree * s.hubs % 2):
        raise c.fail(
            ("topology", "degree"),
            f"no random regular graph of {s.hubs} hubs with "
            f"degree {topo.degree} (needs degree < hubs and degree x hubs even)",
        )
    if topo.kind == "small_world" and topo.degree >= s.hubs:
        raise c.fail(("topology", "degree"), f"degree {topo.degree} needs more than {s.hubs} hubs")
    if topo.kind == "file" and not topo.path:
        raise c.fail(("topology", "kind"), "kind = 'file' needs topology.path")
    if s.store == "lmdb" and s.hubs + sum(a.count for a in s.adversaries) > 500:
        raise c.fail(
            ("store",),
            "an LMDB environment per hub is for small runs (at most 500 "
            "hubs); use store = 'shared' or 'memory'",
        )
    if s.workload.origin >= s.hubs:
        raise c.fail(
            ("workload", "origin"),
            f"hub {s.workload.origin} does not exist (hubs are 0..{s.hubs - 1})",
        )
    if s.workload.publishers > s.hubs:
        raise c.fail(
            ("workload", "publishers"), f"{s.workload.publishers} publishers but only {s.hubs} hubs"
        )
    for i, a in enumerate(s.adversaries):
        if a.kind == "eclipse" and a.targets > s.hubs:
            raise c.fail(("adversaries", i, "targets"), "more targets than hubs")
    hubs: list[tuple[tuple[str | int, ...], int]] = [
        *((("restarts", i, "hub"), r.hub) for i, r in enumerate(s.restarts)),
        *((("pauses", i, "hub"), p.hub) for i, p in enumerate(s.pauses)),
        *((("alliance", "joins", i, "hub"), j.hub) for i, j in enumerate(s.alliance.joins)),
        *((("alliance", "joins", i, "issuer"), j.issuer) for i, j in enumerate(s.alliance.joins)),
        *((("alliance", "rotations", i, "hub"), r.hub) for i, r in enumerate(s.alliance.rotations)),
    ]
    for where, hub in hubs:
        if hub >= s.hubs:
            raise c.fail(where, f"hub {hub} does not exist (hubs are 0..{s.hubs - 1})")
    if s.alliance.founders > s.hubs:
        raise c.fail(("alliance", "founders"), f"{s.alliance.founders} founders of {s.hubs} hubs")
    joining = {j.hub for j in s.alliance.joins}
    for i, j in enumerate(s.alliance.joins):
        if j.hub < s.alliance.founders:
            raise c.fail(("alliance", "joins", i, "hub"), f"hub {j.hub} is a founder")
        if j.issuer == j.hub or (j.issuer in joining and j.issuer != j.hub):
            issuer_join = next((k for k in s.alliance.joins if k.hub == j.issuer), None)
            if issuer_join is None or issuer_join.at_s >= j.at_s:
                raise c.fail(
                    ("alliance", "joins", i, "issuer"),
                    f"hub {j.issuer} is not a member yet when hub {j.hub} joins",
                )


def options_markdown() -> str:
    """Every option as a Markdown table (path, default, help), for docs/simnet.md."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for path, doc, default in option_rows(Scenario):
        shown = "`{}`" if default is dataclasses.MISSING else f"`{json.dumps(default)}`"
        lines.append(f"| `{path}` | {shown} | {doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)
