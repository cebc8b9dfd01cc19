"""Bundle commands: ``export`` and ``import`` of CAR files, e.g. on a USB stick."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from craftnet.archive.cid import Cid
from craftnet.archive.errors import BundleError
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import human_size

# Below this size a progress bar would only flicker.
PROGRESS_THRESHOLD = 8 * 1024 * 1024


@contextlib.contextmanager
def progress_bar(
    app: App, label: str, total: int | None
) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr for big transfers; yields its update function."""
    quiet = app.as_json or not app.err.is_terminal
    if quiet or (total is not None and total < PROGRESS_THRESHOLD):
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=app.err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@click.command(name="export")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.argument("cids", nargs=-1, type=CID)
@pass_app
def export_cmd(app: App, out: Path, cids: tuple[Cid, ...]) -> None:
    """Write records (and all they link) to a CAR bundle; no CIDs = the whole archive."""
    from craftnet.archive.bundle import export_car

    store = app.store()
    if not out.parent.is_dir():
        raise BundleError(f"cannot write {out}: the folder {out.parent} does not exist")
    # Write beside the target and rename, so a failed export leaves no half bundle.
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as stream, progress_bar(app, "exporting", None) as update:
            report = export_car(store, stream, list(cids) or None, on_progress=update)
            stream.flush()
            os.fsync(stream.fileno())
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    data = {"file": str(out), **report.as_dict()}

    def human(console: Console) -> None:
        console.print(
            f"wrote {out}: {report.blocks} blocks, {report.records} records, "
            f"{human_size(report.bytes)}"
        )
        if report.missing:
            console.print(
                f"[yellow]note[/yellow]: {len(report.missing)} linked block(s) are not in "
                "this archive and were left out"
            )

    app.emit(data, human)


@click.command(name="import")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_app
def import_cmd(app: App, bundle: Path) -> None:
    """Check a CAR bundle completely, then add it; if anything is wrong, add nothing."""
    from craftnet.archive.bundle import import_car

    store = app.store()
    size = bundle.stat().st_size
    with bundle.open("rb") as stream, progress_bar(app, "checking", size) as update:
        report = import_car(store, stream, on_progress=update, spill_dir=app.home)
    data = {"file": str(bundle), **report.as_dict()}

    def human(console: Console) -> None:
        console.print(
            f"imported {bundle}: {report.new_records} new of {report.records} records, "
            f"{report.new_blocks} new of {report.blocks} blocks"
            + (f", {report.repaired} damaged blocks repaired" if report.repaired else "")
        )

    app.emit(data, human)


COMMANDS = [export_cmd, import_cmd]
