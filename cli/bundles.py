"""Bundle commands: ``export`` and ``import`` of CAR files, e.g. on a USB stick."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

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


class SizeParam(click.ParamType[int, Any]):
    """A size in bytes: ``4G``, ``700M``, ``64K``, ``4GiB`` or a plain number."""

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {
        "": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40
    }

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse ``value``; a malformed size is a usage error (exit status 2)."""
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", str(value).upper())
        if match is None:
            self.fail(f"{value!r} is not a size like 4G, 700M or 1048576", param, ctx)
        return int(match.group(1)) * self._UNITS[match.group(2)]


def _hlc_now() -> int:
    from craftnet.archive.hlc import HybridClock

    return HybridClock().tick()


@click.command(name="export")
@click.argument(
    "out", metavar="OUT.car", type=click.Path(dir_okay=False, writable=True, path_type=Path)
)
@click.argument("cids", nargs=-1, metavar="[CID...]", type=CID)
@click.option("--for", "for_did", metavar="DID",
              help="Only what hub DID lacks, as far as this hub knows (from its last bundle "
              "or have-file), plus this hub's own have-summary.")
@click.option("--for-have", "for_have", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Only what the hub that wrote this have-file (craftnet have) lacks.")
@click.option("--max-size", type=SizeParam(), default=None,
              help="Split into numbered bundles of at most this size (4G, 700M, ...), "
              "e.g. one per USB stick; they import in any order.")
@click.option("--dry-run", is_flag=True, help="Say what would be written, write nothing.")
@click.option("--proofs", is_flag=True,
              help="With CIDs: add each record's witness batches and inclusion proofs, so "
              "the receiving hub can check them offline.")
@pass_app
def export_cmd(app: App, out: Path, cids: tuple[Cid, ...], for_did: str | None,
               for_have: Path | None, max_size: int | None, dry_run: bool,
               proofs: bool) -> None:
    """Write records (and all they link) to a CAR bundle; no CIDs = the whole archive.

    Everything the records link goes along (files, chunks, the designs they derive from,
    recursively), and the key-succession and revocation records about their authors. The
    file is written as `OUT.car.partial` and renamed when complete. Reports the number
    of blocks, records and bytes, and any linked block this hub does not hold. With
    --for or --for-have only what the other hub lacks travels (a delta bundle).
    """
    store = app.store()
    if not out.parent.is_dir():
        raise BundleError(f"cannot write {out}: the folder {out.parent} does not exist")
    if (for_did or for_have) and cids:
        raise click.UsageError("--for and --for-have choose the records themselves; name no CID")
    if for_did and for_have:
        raise click.UsageError("use --for or --for-have, not both")
    if proofs and not cids:
        raise click.UsageError("--proofs goes with chosen CIDs (whole and delta bundles carry "
                               "the witness batches themselves)")
    if for_did or for_have or max_size is not None or dry_run or proofs:
        _export_planned(app, out, cids, for_did, for_have, max_size, dry_run, proofs)
        return
    from craftnet.archive.bundle import export_car

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


def _export_planned(app: App, out: Path, cids: tuple[Cid, ...], for_did: str | None,
                    for_have: Path | None, max_size: int | None, dry_run: bool,
                    proofs: bool = False) -> None:
    """Delta and split exports: plan first (the size is known before writing), then write."""
    from craftnet.archive import delta
    from craftnet.archive.have import build_summary, read_summary
    from craftnet.archive.peer_state import PeerStates

    store = app.store()
    target = None
    unknown = False
    if for_have is not None:
        target = read_summary(for_have.read_bytes())
        if not dry_run:
            PeerStates(store).record(target, "have-file", _hlc_now())
    elif for_did is not None:
        state = PeerStates(store).get(for_did)
        if state is None:
            unknown = True
            app.note(f"nothing is known yet of what {for_did} holds: exporting everything "
                     "(its next bundle or 'craftnet have' file will tell)")
        else:
            target = state.summary
    key = app.hub_key() if (for_did or for_have) and not dry_run else None
    if key is not None and key.did in (for_did, target.hub if target else None):
        raise BundleError("that is this hub itself; name another hub's did")
    with store.read() as txn:
        if target is not None:
            plan = delta.plan_delta(txn, target)
        elif cids:
            plan = delta.plan_roots(txn, list(cids))
            if proofs:
                delta.add_witness_proofs(txn, plan)
        else:
            plan = delta.plan_all(txn)
        spans = delta.split(plan, max_size)
        data: dict[str, Any] = {"file": str(out), "parts": len(spans), **plan.as_dict()}
        if target is not None:
            data["for"] = target.hub
        if unknown:
            data["for"] = for_did
            data["known"] = False
        if not dry_run:
            mine = build_summary(txn, key, _hlc_now()) if key is not None else None
            written = delta.write_bundles(txn, plan, out, have=mine, max_size=max_size)
            data["files"] = [
                {"file": str(part.path), "blocks": part.blocks, "bytes": part.bytes}
                for part in written
            ]
            data["bytes_written"] = delta.total_bytes(written)

    def human(console: Console) -> None:
        verb = "would write" if dry_run else "wrote"
        size = data.get("bytes_written", plan.section_bytes)
        console.print(
            f"{verb} {len(spans)} bundle(s) for {out}: {plan.records} records, "
            f"{len(plan.blocks)} blocks, {human_size(size)}"
        )
        for part in data.get("files", []):
            console.print(f"  {part['file']}  {human_size(part['bytes'])}")
        diff = plan.difference
        if diff is not None:
            how = "exactly" if diff.exact else "by range (more than needed, never less)"
            console.print(
                f"{target.hub if target else ''} lacks {len(diff.ours)} of this hub's records "
                f"(found {how}); this hub lacks {'at least ' if not diff.exact else ''}"
                f"{diff.theirs} of its records"
            )
        if plan.missing:
            console.print(
                f"[yellow]note[/yellow]: {len(plan.missing)} linked block(s) are not in "
                "this archive and were left out"
            )

    app.emit(data, human)


@click.command(name="have")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@pass_app
def have_cmd(app: App, out: Path) -> None:
    """Write a small signed summary of the records this hub holds, for another hub to
    answer with 'craftnet export --for-have FILE'."""
    from craftnet.archive.have import build_summary

    store = app.store()
    if not out.parent.is_dir():
        raise BundleError(f"cannot write {out}: the folder {out.parent} does not exist")
    key = app.hub_key()
    with store.read() as txn:
        summary = build_summary(txn, key, _hlc_now())
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_bytes(summary.raw)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    data = {"file": str(out), **summary.as_dict()}
    app.emit(data, lambda console: console.print(
        f"wrote {out}: {summary.count} records summarised in {human_size(len(summary.raw))}"
    ))


@click.command(name="import")
@click.argument(
    "bundle", metavar="IN.car",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@pass_app
def import_cmd(app: App, bundle: Path) -> None:
    """Check a CAR bundle completely, then add it; if anything is wrong, add nothing.
    `-` reads the bundle from stdin.

    Every block is checked against its CID, every record's signature and schema, every
    file node. If anything is wrong, the error names the block (its index in the file,
    its CID, its byte offset). Importing a bundle twice adds nothing the second time,
    with one exception: a block this hub holds damaged (found by `craftnet verify` as
    `bad-block`) is replaced by the bundle's verified copy and counted as `repaired`.
    An interrupted import continues where it stopped when run again, from a file or
    piped on stdin (a pipe's bundle is read again up to there, not checked again); a
    bundle that ends early keeps what was checked for the next run. The parts of a
    split bundle import in any order. `craftnet imports` lists and removes unfinished
    imports.
    """
    from craftnet.archive.receive import receive_bundle

    store = app.store()
    piped = str(bundle) == "-"
    if piped and sys.stdin.isatty():
        raise click.UsageError("'craftnet import -' reads a bundle from stdin, which is a "
                               "terminal here: pipe one in ('... | craftnet import -')")
    size = None if piped else bundle.stat().st_size
    source: contextlib.AbstractContextManager[IO[bytes]] = (
        contextlib.nullcontext(sys.stdin.buffer) if piped else bundle.open("rb")
    )
    with source as stream, progress_bar(app, "checking", size) as update:
        report = receive_bundle(
            store, stream, app.home, now=_hlc_now(),
            on_progress=None if update is None else _check_only(update),
        )
    data = {"file": "-" if piped else str(bundle), **report.as_dict()}

    def human(console: Console) -> None:
        if report.resumed_at and piped:
            console.print(
                f"continued an interrupted import: {human_size(report.resumed_at)} were "
                "already there (read again from the pipe, not checked again)"
            )
        elif report.resumed_at:
            console.print(f"resumed an interrupted import at {human_size(report.resumed_at)}")
        console.print(
            f"imported {'stdin' if piped else bundle}: {report.new_records} new of "
            f"{report.records} records, "
            f"{report.new_blocks} new of {report.blocks} blocks"
            + (f", {report.repaired} damaged blocks repaired" if report.repaired else "")
        )
        manifest = report.manifest
        if manifest is not None and manifest.parts > 1:
            waiting = sorted(set(range(1, manifest.parts + 1)) - set(report.parts_seen))
            console.print(
                f"part {manifest.part} of {manifest.parts}"
                + (f"; still to import: {', '.join(map(str, waiting))}" if waiting else
                   "; all parts are in")
                + (f" ({report.held} block(s) wait for the other parts)" if report.held else "")
            )
        if report.sender is not None:
            missing = report.still_missing or 0
            if missing:
                bound = "" if report.still_missing_exact else "at least "
                console.print(
                    f"[yellow]note[/yellow]: the sender holds {bound}{missing} record(s) this "
                    "hub still lacks; they come with its next bundle for this hub"
                )
            else:
                console.print(f"this hub now holds every record {report.sender.hub} held")

    app.emit(data, human)


def _check_only(update: Callable[[int], None]) -> Callable[[str, int], None]:
    def progress(phase: str, done: int) -> None:
        if phase == "check":
            update(done)

    return progress


# ---------------------------------------------------------------------- unfinished imports


class AgeParam(click.ParamType[int, Any]):
    """An age: ``30d``, ``12h``, ``90m``, ``45s``, or a plain number of days; in ms."""

    name = "age"
    _UNITS: ClassVar[dict[str, int]] = {"d": 86_400_000, "h": 3_600_000, "m": 60_000,
                                         "s": 1_000, "": 86_400_000}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse ``value``; anything else (a negative age too) is a usage error."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        match = re.fullmatch(r"\s*(\d{1,7})\s*([dhms]?)\s*", str(value).lower())
        if match is None:
            self.fail(f"{str(value)[:40]!r} is not an age like 30d, 12h, 90m or 0", param, ctx)
        return int(match.group(1)) * self._UNITS[match.group(2)]


def _ago(now_ms: int, ms: int | None) -> str:
    if ms is None:
        return "?"
    days = (now_ms - ms) / 86_400_000
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


@click.group(name="imports")
def imports() -> None:
    """Unfinished imports: held parts of split bundles, interrupted imports' job folders.

    Both are kept so that an import can be finished later (the missing parts arrive,
    the same bundle is imported again). `craftnet serve` removes those idle for
    `[bundles] keep_unfinished_days` (config.toml, default 30); these commands list
    them and remove them by hand.
    """


@imports.command(name="list")
@pass_app
def imports_list(app: App) -> None:
    """How much unfinished import work this hub keeps: held blocks (count, bytes, oldest,
    by bundle set) and job folders (count, bytes, idle longest, running or not)."""
    from craftnet.archive.leftovers import survey

    now = time.time_ns() // 1_000_000
    found = survey(app.store(), app.home, now)
    data = {"now_ms": now, **found.as_dict()}

    def human(out: Console) -> None:
        out.print(
            f"held blocks of split bundles: {found.held_blocks}, "
            f"{human_size(found.held_bytes)}, in {len(found.sets)} bundle set(s)"
            + (f"; oldest held {_ago(now, found.oldest_held_ms)} ago" if found.sets else "")
        )
        for held in found.sets:
            seen = ", ".join(map(str, held.seen)) or "none"
            parts = f"parts {seen} of {held.parts} in" if held.parts else "no part state"
            extra = "".join([
                f", {held.unaged} without an age yet" if held.unaged else "",
                f", {held.unreadable} unreadable" if held.unreadable else "",
                f", {held.referenced} linked by stored records" if held.referenced else "",
            ])
            out.print(
                f"  set {held.set_id.hex()[:16]}  {parts}  {held.blocks} block(s)  "
                f"{human_size(held.size)}  idle {_ago(now, held.last_ms)}{extra}"
            )
        out.print(
            f"job folders of interrupted imports: {len(found.jobs)}, "
            f"{human_size(found.job_bytes)}"
            + (f"; idle longest {_ago(now, found.oldest_job_ms)}" if found.jobs else "")
        )
        for job in found.jobs:
            state = "running now" if job.running else (
                "can continue" if job.resumable else "nothing to continue from")
            foreign = f"; also holds {len(job.foreign)} other file(s)" if job.foreign else ""
            out.print(f"  {job.path.parent.name}/{job.path.name}  {human_size(job.size)}  "
                      f"idle {_ago(now, job.last_ms)}  {state}{foreign}")
        if found.other:
            out.print(f"  {len(found.other)} other entr(y/ies) in imports/ (not imports; "
                      "left alone)")

    app.emit(data, human)


@imports.command(name="prune")
@click.option("--older-than", "older_than", type=AgeParam(), default=None, metavar="AGE",
              help="Remove what was idle at least this long: 30d, 12h, 90m, 0 for everything "
              "not running (default: config.toml [bundles] keep_unfinished_days).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@pass_app
def imports_prune(app: App, older_than: int | None, dry_run: bool) -> None:
    """Remove held bundle sets and job folders idle for --older-than or longer.

    A held block that a stored record links is kept, and so is the job of an import
    running now and any file in a job folder that craftnet did not put there; stored
    blocks are never touched, so `craftnet verify` finds the store as before. Held
    blocks from before ages were kept are given the time now.
    """
    from craftnet.archive.leftovers import expire
    from craftnet.node.config import load_config

    if older_than is None:
        days = load_config(app.home).keep_unfinished_days
        if days == 0:
            raise click.UsageError("config.toml keeps unfinished imports ([bundles] "
                                   "keep_unfinished_days = 0): give --older-than")
        older_than = days * 86_400_000
    report = expire(app.store(), app.home, now_ms=time.time_ns() // 1_000_000,
                    max_age_ms=older_than, dry_run=dry_run)

    def human(out: Console) -> None:
        verb = "would remove" if dry_run else "removed"
        out.print(
            f"{verb} {report.removed_blocks} held block(s) ({human_size(report.removed_bytes)}) "
            f"of {report.removed_sets} bundle set(s) and {report.removed_jobs} job folder(s) "
            f"({human_size(report.removed_job_bytes)})"
        )
        if report.unreadable:
            out.print(f"{verb} {report.unreadable} unreadable held value(s)")
        if report.kept_referenced:
            out.print(f"kept {report.kept_referenced} old held block(s) that stored records link")
        if report.running_jobs:
            out.print(f"kept {report.running_jobs} job folder(s) of imports running now")
        if report.kept_foreign:
            out.print(f"left {report.kept_foreign} job folder(s) holding files craftnet did "
                      "not make (its own files there are removed)")
        if report.stamped:
            out.print(f"{'would give' if dry_run else 'gave'} {report.stamped} held block(s) "
                      "without an age the time now")

    app.emit(report.as_dict(), human)


COMMANDS = [export_cmd, import_cmd, have_cmd, imports]
