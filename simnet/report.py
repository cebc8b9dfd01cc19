"""Writing a run's outputs: metrics.jsonl, summary.json, the plots and a short text report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from craftnet.simnet.metrics import dumps, fmt_s
from craftnet.simnet.sim import RunResult


def write_outputs(result: RunResult, out: Path, plots: bool = True) -> str:
    """Write everything into ``out`` (created); returns the text report."""
    out.mkdir(parents=True, exist_ok=True)
    summary = result.metrics.summary()
    (out / "metrics.jsonl").write_text(result.metrics.jsonl(), encoding="utf-8")
    (out / "summary.json").write_text(dumps(summary), encoding="utf-8")
    if plots:
        from craftnet.simnet import plots as plotting

        plotting.write_all(result.metrics, out)
    text = text_report(summary, result.wall_s, result.events)
    (out / "report.txt").write_text(text, encoding="utf-8")
    return text


def text_report(summary: dict[str, Any], wall_s: float, events: int) -> str:
    """A few lines a researcher reads first."""
    s = summary
    lat = s["delivery_latency_s"]
    full = s["full_delivery_s"]
    lines = [
        f"scenario {s['scenario']!r}, seed {s['seed']}: {s['hubs']} hubs"
        + (f" + {s['adversary_peers']} adversaries" if s["adversary_peers"] else ""),
        f"  simulated {s['end_s']:.1f} s in {wall_s:.1f} s wall; {events} events "
        f"({events / wall_s if wall_s else 0:,.0f}/s)",
        f"  signatures: {s['verify']['mode']} ({s['verify']['note']})",
        f"  records: {s['records_published']} published, {s['records_everywhere']} reached "
        f"every hub; converged: "
        f"{'yes at ' + fmt_s(s['converged_at_s']) if s['converged'] else 'no'}",
        f"  delivery latency: median {fmt_s(lat.get('p50'))}, p99 {fmt_s(lat.get('p99'))}, "
        f"max {fmt_s(lat.get('max'))}; record to every hub: median {fmt_s(full.get('p50'))}",
        f"  delivery to online hubs at the end: {100 * s['delivery_online']:.3f}% "
        f"({s['online_at_end']} online; {s['records_only_offline']} records only on "
        f"offline hubs)",
        f"  traffic: {s['traffic']['sends']} stream writes, {s['traffic']['gossip_messages']} "
        f"gossip messages, {s['traffic']['send_bytes'] / 1e6:.2f} MB; "
        f"{s['traffic']['reconciles']} reconciles",
    ]
    for b in s.get("bursts", []):
        lines.append(f"  {b['name']}: {b['records']} records from {fmt_s(b['start_s'])}")
    if "rounds" in s:
        lines.append(
            f"  peer-sampling rounds to reach every hub: median {s['rounds']['p50']:.2f}, "
            f"max {s['rounds']['max']:.2f}"
        )
    for p in s["partitions"]:
        lines.append(
            f"  partition healed at {fmt_s(p['heal_s'])}: converged "
            f"{fmt_s(p['converged_after_s'])} later"
        )
    for a in s.get("adversaries", []):
        lines.append(
            f"  adversary {a['peer']} ({a['kind']}): banned by {a['banned_by']} of "
            f"{a['honest_neighbours']} honest neighbours, first ban at "
            f"{fmt_s(a['first_ban_s'])}, score {a['final_score']:.1f}"
        )
    if "eclipse_victims" in s:
        lines.append(
            f"  eclipse victims holding every record: {s['eclipse_victims_complete']}"
            f" of {s['eclipse_victims']}"
        )
    lines.append(f"  honest hubs banned by honest hubs: {s['honest_hubs_banned_by_honest']}")
    return "\n".join(lines) + "\n"
