"""Parameter sweeps: one scenario over seeds and values, in parallel processes or on Dask.

Each task is a pure function of ``(scenario text, overrides, seed)`` returning a flat row
of results, so it runs the same in a local process pool and on a Dask distributed
cluster (``--scheduler ADDRESS``); the rows come back in task order whatever finishes
first, and one table and one plot compare them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from craftnet.simnet import compiled
from craftnet.simnet.scenario import parse
from craftnet.simnet.sim import run

ROW_METRICS = (
    "converged_at_s",
    "full_p50_s",
    "full_max_s",
    "latency_p50_s",
    "latency_p99_s",
    "delivery_online",
    "rounds_p50",
    "rounds_max",
    "gossip_max_hops",
    "sends",
    "gossip_messages",
    "mbytes",
    "bans_of_adversaries",
    "events",
    "wall_s",
)


def run_task(text: str, source: str, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one point of a sweep; returns its row."""
    # A worker of `sim sweep --compiled` must run the compiled build, not the sources.
    compiled.check_child()
    scenario = parse(text, source, overrides)
    result = run(scenario, seed)
    s = result.metrics.summary()
    row: dict[str, Any] = {
        "seed": seed,
        "converged_at_s": s["converged_at_s"],
        "full_p50_s": s["full_delivery_s"].get("p50"),
        "full_max_s": s["full_delivery_s"].get("max"),
        "latency_p50_s": s["delivery_latency_s"].get("p50"),
        "latency_p99_s": s["delivery_latency_s"].get("p99"),
        "delivery_online": s["delivery_online"],
        "rounds_p50": s.get("rounds", {}).get("p50"),
        "rounds_max": s.get("rounds", {}).get("max"),
        "gossip_max_hops": s["gossip_max_hops"],
        "sends": s["traffic"]["sends"],
        "gossip_messages": s["traffic"]["gossip_messages"],
        "mbytes": round(s["traffic"]["send_bytes"] / 1e6, 3),
        "bans_of_adversaries": sum(a["banned_by"] for a in s.get("adversaries", [])),
        "events": result.events,
        "wall_s": round(result.wall_s, 2),
    }
    return row


def parse_values(raw: str) -> list[Any]:
    """``"0,0.1,0.2"`` -> ``[0, 0.1, 0.2]``; each value read as a TOML value."""
    import tomllib

    out = []
    for item in raw.split(","):
        item = item.strip()
        try:
            out.append(tomllib.loads(f"x = {item}")["x"])
        except tomllib.TOMLDecodeError:
            out.append(item)
    return out


def sweep(
    text: str,
    source: str,
    seeds: Sequence[int],
    param: str | None = None,
    values: Sequence[Any] = (),
    workers: int = 2,
    scheduler: str | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every (value, seed); rows in task order, each with ``value`` and ``seed``."""
    points: list[Any] = list(values) if param else [None]
    tasks = [(v, seed) for v in points for seed in seeds]
    args = [(text, source, {param: v} if param else {}, seed) for v, seed in tasks]
    parse(text, source, args[0][2])  # fail fast, before any worker starts
    results: list[dict[str, Any]]
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            futures = client.map(run_task, *zip(*args, strict=True), pure=False)
            results = client.gather(futures)
            if on_done:
                on_done(len(results), len(results))
    elif workers <= 1:
        results = []
        for a in args:
            results.append(run_task(*a))
            if on_done:
                on_done(len(results), len(args))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_task, *a) for a in args]
            results = []
            for f in futures:
                results.append(f.result())
                if on_done:
                    on_done(len(results), len(args))
    rows = []
    for (value, _), row in zip(tasks, results, strict=True):
        rows.append({"param": param or "-", "value": value if param else "-", **row})
    return rows


def table(rows: list[dict[str, Any]], metrics: Sequence[str] = ROW_METRICS) -> str:
    """A Markdown table: one line per value, medians over the seeds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps(row["value"]), []).append(row)
    head = ["value", "seeds", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, group in groups.items():
        cells = [key, str(len(group))]
        for m in metrics:
            vals = sorted(r[m] for r in group if isinstance(r.get(m), int | float))
            cells.append(f"{vals[len(vals) // 2]:g}" if vals else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict[str, Any]], out: Path, metric: str) -> str:
    """Write ``sweep.jsonl``, ``table.md`` and ``sweep.png``; returns the table."""
    from craftnet.simnet import plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.jsonl").write_text(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8"
    )
    text = table(rows)
    (out / "table.md").write_text(text, encoding="utf-8")
    plots.sweep_plot(rows, rows[0]["param"] if rows else "-", metric, out / "sweep.png")
    return text


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), wall seconds)``."""
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t
