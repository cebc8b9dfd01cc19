"""``craftnet sim run|sweep``: the deterministic simulator (simnet) from the command line.

Thin: arguments are parsed here, everything else is :mod:`craftnet.simnet`. Imports of
the simulator (networkx, matplotlib, dask) happen inside the commands so that the rest
of ``craftnet`` starts as fast as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click


@click.group()
def sim() -> None:
    """Simulate networks of hubs running the real protocol code (simnet).

    Churn, partitions, slow links, misbehaving peers: see docs/simnet.md.
    """


@sim.command("run")
@click.argument(
    "scenario",
    metavar="SCENARIO.toml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--seed", type=int, default=1, show_default=True, help="The random seed of the run.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="Folder for metrics.jsonl, summary.json, report.txt and the plots.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--compiled",
    is_flag=True,
    help="Run the same sources compiled with mypyc (a quarter to a third less CPU in large "
    "runs; needs mypy and a C compiler; the first run of each version builds for about a "
    "minute).",
)
def run_command(
    scenario: Path, seed: int, out: Path, no_plots: bool, quiet: bool, compiled: bool
) -> None:
    """Run a scenario once with one seed and write its outputs to `--out`."""
    if compiled:
        _run_compiled()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from craftnet.simnet.report import write_outputs
    from craftnet.simnet.scenario import load
    from craftnet.simnet.sim import Simulation

    spec = load(scenario)
    simulation = Simulation(spec, seed)
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("simulated {task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[events]} events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=quiet, transient=True) as bar:
        task = bar.add_task(spec.name, total=spec.max_time_s, events=0)

        def progress(t: float, events: int) -> None:
            bar.update(task, completed=t, events=events)

        result = simulation.run(progress)
    text = write_outputs(result, out, plots=not no_plots)
    click.echo(text, nl=False)
    click.echo(f"  outputs in {out} ({time.perf_counter() - started:.1f} s wall in all)")


def _run_compiled() -> None:
    """Run this very command again in a Python that loads the compiled build, and exit
    with its status (in that child, check that the build was loaded and go on)."""
    from craftnet.simnet import compiled

    if os.environ.get(compiled.CHILD_ENV):
        compiled.check_child()
        return
    build = compiled.ensure_build(lambda line: click.echo(line, err=True))
    argv, env = compiled.child_command(build, ["-m", "craftnet", *sys.argv[1:]])
    raise SystemExit(subprocess.run(argv, env=env).returncode)


@sim.command("sweep")
@click.argument(
    "scenario",
    metavar="SCENARIO.toml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--seeds", default="1,2,3", show_default=True, metavar="LIST",
    help="Comma-separated seeds, or N..M.",
)
@click.option(
    "--param", default=None, metavar="NAME", help="The dotted option to vary, e.g. network.loss."
)
@click.option(
    "--values", default="", metavar="LIST", help="Comma-separated values of --param (TOML values)."
)
@click.option("--workers", type=int, default=2, show_default=True, help="Local worker processes.")
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on this Dask distributed scheduler instead (tcp://host:8786).",
)
@click.option(
    "--metric",
    default="full_max_s",
    show_default=True,
    metavar="NAME",
    help="The column drawn against the values in sweep.png.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="Folder for sweep.jsonl, table.md and sweep.png.",
)
@click.option(
    "--compiled",
    is_flag=True,
    help="Run every point on the sources compiled with mypyc, as `sim run --compiled` does "
    "(local workers only).",
)
def sweep_command(
    scenario: Path,
    seeds: str,
    param: str | None,
    values: str,
    workers: int,
    scheduler: str | None,
    metric: str,
    out: Path,
    compiled: bool,
) -> None:
    """Run a scenario over several seeds (and values of one parameter) in parallel, and
    compare them."""
    from craftnet.simnet import sweep as sweeping

    if param and not values:
        raise click.UsageError("--param needs --values")
    if ".." in seeds:
        lo, hi = seeds.split("..", 1)
        seed_list = list(range(int(lo), int(hi) + 1))
    else:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    if metric not in sweeping.ROW_METRICS:
        raise click.UsageError(f"--metric must be one of {', '.join(sweeping.ROW_METRICS)}")
    if compiled and scheduler:
        raise click.UsageError(
            "--compiled runs the sweep on this machine's workers; a Dask cluster's workers "
            "run what they have installed: drop --scheduler or --compiled"
        )
    if compiled:
        _run_compiled()

    def done(n: int, total: int) -> None:
        click.echo(f"  {n}/{total} runs done", err=True)

    rows = sweeping.sweep(
        scenario.read_text(encoding="utf-8"),
        str(scenario),
        seed_list,
        param,
        sweeping.parse_values(values) if param else [],
        workers=workers,
        scheduler=scheduler,
        on_done=done,
    )
    click.echo(sweeping.write(rows, out, metric), nl=False)
    click.echo(f"  outputs in {out}")


COMMANDS = [sim]
