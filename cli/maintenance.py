"""Store maintenance: ``verify`` the whole archive and ``gc`` unreferenced blocks."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from craftnet.cli.bundles import progress_bar
from craftnet.cli.context import App, pass_app
from craftnet.cli.render import human_size, safe

if TYPE_CHECKING:
    from craftnet.archive.verify import VerifyReport


def _verify(app: App) -> VerifyReport:
    from craftnet.archive.verify import verify_store

    with progress_bar(app, "verifying", None) as update:
        return verify_store(
            app.store(),
            on_progress=None if update is None else lambda done, _total: update(done),
        )


def _print_report(out: Console, report: VerifyReport) -> None:
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


def _as_data(report: VerifyReport) -> dict[str, Any]:
    return {**dataclasses.asdict(report), "ok": report.ok}


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Remove every damaged block (bad-block: its bytes no longer hash to its CID) and put "
    "it on the hub's want list in the same transaction, then verify again. The hub fetches "
    "wanted blocks from member hubs whenever its networking runs (craftnet serve, craftnet "
    "sync ADDR); importing a bundle that holds them stores them too. Exit status 1 while "
    "anything is still missing.",
)
@click.option(
    "--from",
    "from_addr",
    metavar="ADDR",
    help="With --repair: fetch the removed blocks now from the member hub at ADDR (a "
    "multiaddr as for craftnet sync), then verify again.",
)
@click.option("--timeout", type=click.FloatRange(1, 86400), default=600.0, show_default=True,
              metavar="SECONDS", help="With --from: give up after this many seconds.")
@pass_app
def verify(app: App, repair: bool, from_addr: str | None, timeout: float) -> None:
    """Check the whole store; print the problems found; exit 1 on any problem.

    Every block against its CID, every record's signature and schema, every index entry
    against its record, every pinned file node's chunks.

    With `--repair` and `--json` the report is the verification after the repair, plus
    `before` (the first verification), `removed`, `still_wanted` and `fetched` (what
    `sync` reports). A running `craftnet serve` keeps its own want list in memory and
    saves it over the stored one; use `--from` against a member hub, or run `--repair`
    while the hub is stopped.
    """
    if from_addr is not None and not repair:
        raise click.UsageError("--from fetches what --repair removed; give --repair too")
    report = _verify(app)
    if not repair:
        app.emit(_as_data(report), lambda out: _print_report(out, report))
        if not report.ok:
            raise click.exceptions.Exit(1)
        return
    from craftnet.node.p2p.repair import remove_and_want, saved_wants

    removed = remove_and_want(app.store(), report.damaged)
    fetched = None
    if from_addr is not None and removed:
        from craftnet.cli.net import fetch_from

        fetched = fetch_from(app, from_addr, timeout, idle=min(30.0, timeout))
    after = _verify(app) if removed else report
    still = set(saved_wants(app.store())) & set(removed)
    data = {
        **_as_data(after),
        "before": _as_data(report),
        "removed": [str(cid) for cid in removed],
        "still_wanted": sorted(str(cid) for cid in still),
        "fetched": fetched,
    }

    def human(out: Console) -> None:
        if removed:
            out.print(f"removed {len(removed)} damaged block(s); "
                      f"{len(removed) - len(still)} stored again from a good copy")
        if still:
            out.print(
                f"{len(still)} block(s) still wanted: the hub fetches them from member hubs "
                "when it next runs ('craftnet serve', 'craftnet sync ADDR', or "
                "'craftnet verify --repair --from ADDR'), or import a bundle that holds them"
            )
        _print_report(out, after)

    app.emit(data, human)
    if not after.ok:
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
