"""The standard results of docs/simnet.md, reproduced by
``python -m craftnet.simnet.experiments OUT``:

* propagation rounds against N under push-pull anti-entropy with peer sampling,
  against the theory for random phone-call push-pull (log3 N + O(log log N));
* two halves converging after a partition heals;
* delivery to online hubs under churn (10% of hubs change state per minute);
* the example scenarios' own plots (urban/rural latency, adversary scores).

Writes PNGs and ``results.json`` into OUT.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from craftnet.simnet.report import write_outputs
from craftnet.simnet.scenario import load, parse
from craftnet.simnet.sim import Simulation

EPIDEMIC = """
name = "epidemic-{n}"
hubs = {n}
max_time_s = 600
sample_interval_s = 10
verify = "shared"
[topology]
kind = "random_regular"
degree = 1
[network]
gossip = false
rewire_interval_s = 10
[latency]
dist = "constant"
mean_ms = 10
jitter_ms = 0
[engine]
reconcile_interval_s = 1000
[workload]
records = 1
start_s = 0
window_s = 0
"""


def theory_rounds(n: int) -> float:
    """Push-pull rumour spreading: about log3 n + ln ln n rounds (Karp et al., 2000)."""
    return math.log(n, 3) + math.log(math.log(n))


def rounds_vs_n(ns: tuple[int, ...], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Rounds for one record to reach every hub, per N and seed."""
    rows = []
    for n in ns:
        for seed in seeds:
            summary = Simulation(parse(EPIDEMIC.format(n=n)), seed).run().metrics.summary()
            rows.append(
                {
                    "n": n,
                    "seed": seed,
                    "rounds": summary["rounds"]["max"],
                    "theory": round(theory_rounds(n), 2),
                }
            )
    return rows


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    """Measured rounds (points, median line) against the theory curve."""
    import matplotlib.pyplot as plt

    from craftnet.simnet import plots

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = sorted({r["n"] for r in rows})
    for r in rows:
        ax.scatter(r["n"], r["rounds"], s=14, color="tab:blue", alpha=0.5)
    med = [
        sorted(r["rounds"] for r in rows if r["n"] == n)[len([r for r in rows if r["n"] == n]) // 2]
        for n in ns
    ]
    ax.plot(ns, med, color="tab:blue", label="simnet (median of seeds)")
    xs = [ns[0] * 1.0]
    while xs[-1] < ns[-1]:
        xs.append(xs[-1] * 1.2)
    ax.plot(
        xs, [theory_rounds(int(x)) for x in xs], "--", color="tab:orange", label="log3 N + ln ln N"
    )
    ax.plot(xs, [math.log(x, 3) for x in xs], ":", color="tab:gray", label="log3 N")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hubs N")
    ax.set_ylabel("rounds until every hub holds the record")
    ax.set_title("push-pull anti-entropy (reconcile) with peer sampling")
    ax.legend()
    ax.grid(alpha=0.3)
    plots._save(fig, path)


def _scenario_plots(name: str, seed: int, out: Path, keep: tuple[str, ...]) -> dict[str, Any]:
    source = resources.files("craftnet.simnet").joinpath("scenarios", f"{name}.toml")
    with tempfile.TemporaryDirectory() as tmp:
        result = Simulation(load(Path(str(source))), seed).run()
        write_outputs(result, Path(tmp))
        for plot in keep:
            shutil.copy(Path(tmp) / f"{plot}.png", out / f"{name}_{plot}.png")
        summary: dict[str, Any] = json.loads((Path(tmp) / "summary.json").read_text())
    return summary


def main(
    out: Path, ns: tuple[int, ...] = (16, 64, 256, 1024, 2048), seeds: tuple[int, ...] = (1, 2, 3)
) -> dict[str, Any]:
    """Run everything; write the plots and results.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    rows = rounds_vs_n(ns, seeds)
    plot_rounds(rows, out / "rounds_vs_n.png")
    results["rounds_vs_n"] = rows
    part = _scenario_plots("partition", 1, out, ("convergence", "holders"))
    results["partition"] = {"partitions": part["partitions"], "converged": part["converged"]}
    churn = _scenario_plots("churn", 1, out, ("holders", "convergence"))
    results["churn"] = {
        "delivery_online": churn["delivery_online"],
        "online_at_end": churn["online_at_end"],
    }
    urban = _scenario_plots("urban_rural", 1, out, ("delivery_cdf", "bytes_per_hub"))
    results["urban_rural"] = {
        "delivery_latency_s": urban["delivery_latency_s"],
        "full_delivery_s": urban["full_delivery_s"],
    }
    adv = _scenario_plots("adversaries", 1, out, ("adversary_scores",))
    results["adversaries"] = adv.get("adversaries")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/simnet")), indent=2))
