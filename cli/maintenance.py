"""Store maintenance: ``verify`` the whole archive and ``gc`` unreferenced blocks."""

from __future__ import annotations

import dataclasses

import click
from rich.console import Console

from craftnet.cli.bundles import progress_bar
from craftnet.cli.context import App, pass_app
from craftnet.cli.render import human_size, safe


@click.command()
@pass_app
def verify(app: App) -> None:
    """Check the whole store; print the problems found; exit 1 on any problem.

    Every block against its CID, every record's signature and schema, every index entry
    against its record, every pinned file node's chunks.
    """
    from craftnet.archive.verify import verify_store

    with progress_bar(app, "verifying", None) as update:
        report = verify_store(
            app.store(),
            on_progress=None if update is None else lambda done, _total: update(done),
        )
    data = {**dataclasses.asdict(report), "ok": report.ok}

    def human(out: Console) -> None:
        for problem in report.problems:
            out.print("problem ", style="red", end="")
            out.print(safe(str(problem)), markup=False)
        if report.problem_count > len(report.problems):
            out.print(f"... and {report.problem_count - len(report.problems)} more problems")
        verdict = "ok" if report.ok else f"{report.problem_count} problem(s)"
        out.print(
            f"checked {report.blocks} blocks, {report.records} records, {report.files} "
            f"pinned files, {report.index_entries} index entries: {verdict}"
        )

    app.emit(data, human)
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command()
@pass_app
def gc(app: App) -> None:
    """Remove blocks that no record, pin or file being added refers to.

    Such as chunks left by an interrupted `add` or `import`. Prints how many blocks and
    bytes were freed.
    """
    from craftnet.archive.gc import collect_garbage

    report = collect_garbage(app.store())

    def human(out: Console) -> None:
        out.print(
            f"removed {report.removed} of {report.blocks_before} blocks, "
            f"freed {human_size(report.bytes_freed)}"
        )

    app.emit(dataclasses.asdict(report), human)


COMMANDS = [verify, gc]
