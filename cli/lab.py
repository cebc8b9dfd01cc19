"""``craftnet lab run SCENARIO``: real hubs on 127.0.0.1, put through a scenario.

The lab (``craftnet.node.lab``, docs/lab.md) starts ``craftnet serve`` processes of the
given executable, plays the scenario's steps on them and reports per hub; the exit
status is 0 when every invariant held, 1 when one broke.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

from craftnet.cli.context import App, pass_app
from craftnet.errors import CraftnetError

EXECUTABLE_ENV = "CRAFTNET_LAB_EXECUTABLE"


def _scenario_path(name: str) -> Path:
    from craftnet.node.lab.scenario import bundled

    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return path
    found = bundled().get(name)
    if found is None:
        raise click.BadParameter(
            f"{name!r} is neither a file nor a bundled scenario ({', '.join(bundled())})",
            param_hint="SCENARIO",
        )
    return found


@click.group()
def lab() -> None:
    """Run an alliance of real hubs through a scenario (docs/lab.md)."""


@lab.command()
@click.argument("scenario")
@click.option(
    "--craftnet",
    "executable",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=EXECUTABLE_ENV,
    default=None,
    help=f"The craftnet executable whose hubs to run [env {EXECUTABLE_ENV}; "
    "default: the one beside this Python].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.json, report.txt and the hubs' homes and logs "
    "[default: a new folder in the temporary directory].",
)
@pass_app
def run(app: App, scenario: str, executable: Path | None, out: Path | None) -> None:
    """Run SCENARIO (a TOML file, or a bundled name: short, long, flood)."""
    from craftnet.node.lab.report import render
    from craftnet.node.lab.runner import run as run_lab
    from craftnet.node.lab.scenario import load

    checked = load(_scenario_path(scenario))
    executable = executable or Path(sys.executable).with_name("craftnet")
    if not os.access(executable, os.X_OK):
        raise CraftnetError(f"{executable} is not an executable craftnet (see --craftnet)")
    if out is None:
        out = Path(tempfile.mkdtemp(prefix=f"craftnet-lab-{checked.settings.name}-"))
    elif out.exists() and any(out.iterdir()):
        raise CraftnetError(f"{out} is not empty; give the lab a new folder")

    def say(line: str) -> None:
        app.note(line)

    report = run_lab(checked, executable.resolve(), out / "hubs", say)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    text = render(report)
    (out / "report.txt").write_text(text + "\n")
    app.emit(report, lambda console: click.echo(text))
    app.note(f"report and hub logs in {out}")
    if not report["ok"]:
        raise click.exceptions.Exit(1)


COMMANDS = [lab]
