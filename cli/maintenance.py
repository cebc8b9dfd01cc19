"""Store maintenance: ``verify`` the whole archive and ``gc`` unreferenced blocks."""

from __future__ import annotations

import click
from rich.console import Console

from craftnet.cli.context import App, pass_app


@click.command()
@pass_app
def verify(app: App) -> None:
    """Check every block, record and index; exit status 1 if anything is wrong."""
    from craftnet.archive.verify import verify_store

    report = verify_store(app.store())
    data = report.as_dict()

    def human(out: Console) -> None:
        for problem in report.problems:
            out.print(f"[red]problem[/red] {problem}")
        out.print(report.summary())

    app.emit(data, human)
    if report.problems:
        raise click.exceptions.Exit(1)


@click.command()
@pass_app
def gc(app: App) -> None:
    """Remove blocks that no record, pin or file being added refers to."""
    from craftnet.archive.gc import collect_garbage

    report = collect_garbage(app.store())
    app.emit(report.as_dict(), lambda out: out.print(report.summary()))


COMMANDS = [verify, gc]
