"""PNG plots of one run and of a sweep (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from craftnet.simnet.metrics import Metrics

# PNG metadata without a version string or date, so equal runs give equal files.
_META = {"Software": None}


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata=_META)
    plt.close(fig)


def write_all(metrics: Metrics, out: Path) -> list[Path]:
    """Every plot of a run into ``out``; returns the files written."""
    written = []
    for name, draw in (
        ("delivery_cdf.png", delivery_cdf),
        ("holders.png", holders_over_time),
        ("bytes_per_hub.png", bytes_per_hub),
        ("convergence.png", convergence),
        ("adversary_scores.png", adversary_scores),
    ):
        fig = draw(metrics)
        if fig is not None:
            _save(fig, out / name)
            written.append(out / name)
    return written


CDF_POINTS = 4000  # more points than a 6-inch plot has pixels across


def delivery_cdf(m: Metrics) -> Any:
    """CDF of delivery latency: publish to arrival, over every (record, hub) pair."""
    # 10,000 hubs x 1,000 records are 10 M latencies: sorted as one float array, drawn
    # through evenly spaced ranks (first and last included), not as 10 M Python floats.
    data = np.sort(np.frombuffer(m.latencies, dtype=np.float64))
    n = len(data)
    fig, ax = plt.subplots(figsize=(6, 4))
    if n:
        ranks = np.unique(np.linspace(0, n - 1, min(n, CDF_POINTS)).round().astype(np.int64))
        ax.plot(data[ranks], (ranks + 1) / n, lw=1.5)
        if data[-1] > 30:
            # Minutes-long tails (partitions, churn) next to sub-second deliveries.
            ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("delivery latency (simulated s)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title(f"{m.s.name}: delivery latency CDF ({n} deliveries)")
    ax.grid(alpha=0.3)
    return fig


def holders_over_time(m: Metrics) -> Any:
    """Fraction of honest hubs holding each record, against time (one line per record)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    times = [t for t, _ in m.snapshots]
    records = len(m.published_at)
    step = max(1, records // 200)  # a few hundred lines say as much as thousands
    for r in range(0, records, step):
        ys = [snap[r] / m.s.hubs if r < len(snap) else 0.0 for _, snap in m.snapshots]
        xs = [t for t, snap in m.snapshots if r < len(snap)]
        ax.plot(xs, ys[len(ys) - len(xs) :], lw=0.6, alpha=0.35, color="tab:blue")
    _mark_events(ax, m)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max(times, default=1))
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("fraction of hubs holding the record")
    ax.set_title(f"{m.s.name}: spread of each record")
    ax.grid(alpha=0.3)
    return fig


def bytes_per_hub(m: Metrics) -> Any:
    """Bytes each honest hub sent and received, sorted."""
    hubs = m.sim.hubs[: m.s.hubs]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sorted(h.bytes_out / 1024 for h in hubs), label="sent")
    ax.plot(sorted(h.bytes_in / 1024 for h in hubs), label="received")
    ax.set_xlabel("hubs, sorted")
    ax.set_ylabel("KiB")
    ax.set_title(f"{m.s.name}: bytes per hub")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def convergence(m: Metrics) -> Any:
    """Missing (online hub, record) pairs over time; partitions shaded."""
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [line["t"] for line in m.lines]
    ax.plot(xs, [line["missing_online"] for line in m.lines], lw=1.5)
    _mark_events(ax, m)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("records missing at online hubs")
    ax.set_title(f"{m.s.name}: convergence")
    ax.grid(alpha=0.3)
    return fig


def adversary_scores(m: Metrics) -> Any:
    """Mean score the honest neighbours give each adversary, against time."""
    if not m.adversaries:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [line["t"] for line in m.lines]
    for adv in m.adversaries:
        ax.plot(xs[: len(adv.scores)], adv.scores, label=f"{adv.hub.peer} ({adv.kind})")
    ax.axhline(-20, ls="--", color="tab:orange", lw=1, label="graylist")
    ax.axhline(-50, ls="--", color="tab:red", lw=1, label="ban")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("mean score at honest neighbours")
    ax.set_title(f"{m.s.name}: adversary peer scores")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _mark_events(ax: Any, m: Metrics) -> None:
    opened = None
    for kind, t in m.events:
        if kind == "partition":
            opened = t
        elif kind == "heal" and opened is not None:
            ax.axvspan(opened, t, color="tab:red", alpha=0.1)
            opened = None


def sweep_plot(rows: list[dict[str, Any]], param: str, metric: str, path: Path) -> None:
    """One metric against the swept value, one point per seed and the median line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    groups: dict[Any, list[float]] = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(value, int | float):
            groups.setdefault(row["value"], []).append(float(value))
    keys = list(groups)
    numeric = all(isinstance(k, int | float) for k in keys)
    xs = keys if numeric else list(range(len(keys)))
    for x, k in zip(xs, keys, strict=True):
        ax.scatter([x] * len(groups[k]), groups[k], s=12, color="tab:blue", alpha=0.6)
    medians = [sorted(groups[k])[len(groups[k]) // 2] for k in keys]
    ax.plot(xs, medians, color="tab:blue", lw=1.5, label="median")
    if not numeric:
        ax.set_xticks(xs, [str(k) for k in keys])
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"sweep of {param}")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
