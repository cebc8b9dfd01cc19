"""File commands: ``add`` design files to the archive and ``cat`` them back."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from craftnet.archive.cid import Cid
from craftnet.cli.bundles import progress_bar
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import human_size


@click.command()
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    metavar="FILE...",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print only the CIDs, one per line (for scripts: `FILE=$(craftnet add -q lamp.stl)`).",
)
@pass_app
def add(app: App, paths: tuple[Path, ...], quiet: bool) -> None:
    """Add design files (STL, STEP, SVG, G-code, PDF, photos); print their CIDs.

    Each file is cut into content-defined chunks (a revised design shares most chunks
    with its parent), stored as blocks, and pinned. Put the CID printed in a design's
    `--file`. Large files show a progress bar on stderr.
    """
    from craftnet.archive import files

    store = app.store()
    added: list[dict[str, Any]] = []
    for path in paths:
        size = path.stat().st_size
        with path.open("rb") as stream, progress_bar(app, path.name, size) as update:
            result = files.add_file(
                store,
                stream,
                name=path.name,
                total=size,
                on_progress=None if update is None else lambda done, _total: update(done),
            )
        added.append({"path": str(path), "cid": str(result.cid), "size": size})

    def human(out: Console) -> None:
        for item in added:
            if quiet:
                click.echo(item["cid"])
            else:
                out.print(f"{item['cid']}  {item['path']} ({human_size(item['size'])})")

    app.emit(added, human)


@click.command()
@click.argument("cid", type=CID)
@pass_app
def cat(app: App, cid: Cid) -> None:
    """Write the bytes of the file CID to stdout, streamed and binary-safe.

    `craftnet cat bafy... > lamp.stl`. Every chunk is checked against its CID on the way.
    """
    from craftnet.archive import files

    sys.stdout.flush()
    out = sys.stdout.buffer
    # Straight from the store's memory to stdout: no copy of the chunks in Python.
    files.write_file(app.store(), cid, out)
    out.flush()


COMMANDS = [add, cat]
