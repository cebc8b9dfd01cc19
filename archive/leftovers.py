"""Unfinished bundle work a hub keeps, and its expiry.

Two things outlive an import that nobody finishes (:mod:`craftnet.archive.receive`):

* **held blocks**: parts of a split bundle that wait in the store's ``bundle_held``
  database for the parts they need (grouped by the bundle set they came with, whose
  state is in ``bundle_sets``);
* **job folders**: ``imports/<job>/`` in the hub's home, where an interrupted import
  keeps what it checked so that it can continue.

Both have an age. A held block records when it was first held (:func:`~craftnet.
archive.receive.encode_held`); a set is *abandoned* once neither a part of it arrived
nor a block of it was first held within the limit, and then its held blocks go
together (a set is useless in pieces). Entries from before held blocks had an age are
given "now" by the first :func:`expire` (that is their migration), and so are ages in
the future (a broken clock, a damaged value): an age that cannot be trusted never
removes anything early. A job folder's age is the last time anything in it was
written (its state is rewritten at every checkpoint).

What is never removed: a held block that a stored record links (that record is
complete and the block is what its link waits for), the job of an import running now
(its folder is locked; :func:`expire` takes the same lock first), and any file in a
job folder that craftnet did not put there. Removing touches ``bundle_held``,
``bundle_sets`` and job folders only, never ``blocks``: a held block that is also
stored stays stored, so the store verifies as before.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.errors import ArchiveError, BundleError
from craftnet.archive.hlc import wall_ms
from craftnet.archive.receive import (
    AGED,
    HELD_DB,
    HELD_HEAD,
    JOB_FILES,
    JOBS_DIR,
    SETS_DB,
    held_age,
    remove_job_files,
)
from craftnet.archive.store import ReadTxn, Store, WriteTxn, prefix_end

DAY_MS: Final = 86_400_000
DEFAULT_MAX_AGE_DAYS: Final = 30
SET_ID_SIZE: Final = 16
# An age this far ahead of our clock is not trusted (clocks of one machine drift less).
FUTURE_SLACK_MS: Final = DAY_MS
_JOB_NAME: Final = re.compile(r"[0-9a-f]{32}")
UNREADABLE: Final = -1


@dataclass(slots=True)
class HeldSet:
    """The held blocks of one bundle set (or of entries whose set is unknown)."""

    set_id: bytes
    parts: int | None = None  # how many parts the set has (None: no readable state)
    seen: tuple[int, ...] = ()
    blocks: int = 0
    size: int = 0  # bytes as stored
    first_ms: int | None = None  # when its oldest block was first held
    last_ms: int | None = None  # the last time the set moved: a part, or a block held
    unaged: int = 0  # blocks held before ages were kept (or with an untrusted age)
    unreadable: int = 0  # values that are no held block at all
    referenced: int = 0  # held blocks a stored record links
    # Per entry: its key, its size, and what its age says (an age, None: no trusted age,
    # UNREADABLE: no held block at all), so that expiry need not read the values again.
    entries: list[tuple[bytes, int, int | None]] = field(default_factory=list, repr=False)
    kept: set[bytes] = field(default_factory=set, repr=False)  # keys of referenced blocks

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "set": self.set_id.hex(),
            "parts": self.parts,
            "seen": list(self.seen),
            "blocks": self.blocks,
            "bytes": self.size,
            "first_held_ms": self.first_ms,
            "last_activity_ms": self.last_ms,
            "unaged": self.unaged,
            "unreadable": self.unreadable,
            "referenced": self.referenced,
        }


@dataclass(frozen=True, slots=True)
class JobFolder:
    """One folder under ``imports/``."""

    path: Path
    size: int  # bytes of the files an import keeps there
    last_ms: int  # the newest modification time of anything in it
    running: bool  # an import holds its lock now
    resumable: bool  # it holds a checkpoint to continue from
    foreign: tuple[str, ...] = ()  # entries craftnet did not make (never removed)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "job": self.path.name,
            "path": str(self.path),
            "bytes": self.size,
            "last_activity_ms": self.last_ms,
            "running": self.running,
            "resumable": self.resumable,
            "foreign": list(self.foreign),
        }


@dataclass(slots=True)
class Leftovers:
    """All unfinished bundle work of a hub (what ``craftnet imports list`` shows)."""

    sets: list[HeldSet] = field(default_factory=list)
    jobs: list[JobFolder] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # entries of imports/ that are no job

    @property
    def held_blocks(self) -> int:
        """Held blocks of all sets."""
        return sum(s.blocks for s in self.sets)

    @property
    def held_bytes(self) -> int:
        """Their bytes as stored."""
        return sum(s.size for s in self.sets)

    @property
    def oldest_held_ms(self) -> int | None:
        """When the oldest held block was first held."""
        return min((s.first_ms for s in self.sets if s.first_ms is not None), default=None)

    @property
    def job_bytes(self) -> int:
        """Bytes in job folders."""
        return sum(j.size for j in self.jobs)

    @property
    def oldest_job_ms(self) -> int | None:
        """The last activity of the job folder idle longest."""
        return min((j.last_ms for j in self.jobs), default=None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "held": {
                "blocks": self.held_blocks,
                "bytes": self.held_bytes,
                "oldest_ms": self.oldest_held_ms,
                "sets": [s.as_dict() for s in self.sets],
            },
            "jobs": {
                "count": len(self.jobs),
                "bytes": self.job_bytes,
                "oldest_ms": self.oldest_job_ms,
                "folders": [j.as_dict() for j in self.jobs],
            },
            "other": list(self.other),
        }


@dataclass(slots=True)
class ExpireReport:
    """What :func:`expire` removed (or, in a dry run, would remove) and kept."""

    max_age_ms: int
    dry_run: bool
    removed_blocks: int = 0
    removed_bytes: int = 0
    removed_sets: int = 0
    kept_referenced: int = 0  # old held blocks a stored record links
    stamped: int = 0  # entries without a trusted age, given "now"
    unreadable: int = 0  # values that were no held block, removed
    removed_jobs: int = 0
    removed_job_bytes: int = 0
    running_jobs: int = 0  # old job folders skipped because an import holds them
    kept_foreign: int = 0  # job folders left because they hold files craftnet did not make

    @property
    def removed_anything(self) -> bool:
        """Whether anything was (or would be) removed."""
        return bool(self.removed_blocks or self.removed_sets or self.removed_jobs
                    or self.unreadable)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "older_than_ms": self.max_age_ms,
            "dry_run": self.dry_run,
            "removed_blocks": self.removed_blocks,
            "removed_bytes": self.removed_bytes,
            "removed_sets": self.removed_sets,
            "kept_referenced": self.kept_referenced,
            "stamped": self.stamped,
            "unreadable": self.unreadable,
            "removed_jobs": self.removed_jobs,
            "removed_job_bytes": self.removed_job_bytes,
            "running_jobs": self.running_jobs,
            "kept_foreign": self.kept_foreign,
        }


def days_ms(days: float) -> int:
    """``days`` as milliseconds; :class:`ArchiveError` for a negative or absurd age."""
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= 36_500:
        raise ArchiveError(f"an age must be 0 to 36500 days, got {days!r:.40}")
    return int(days * DAY_MS)


# ---------------------------------------------------------------------- held blocks


def _trusted(held_ms: int | None, now_ms: int) -> int | None:
    return held_ms if held_ms is not None and held_ms <= now_ms + FUTURE_SLACK_MS else None


def _set_state(txn: ReadTxn, set_id: bytes) -> tuple[int | None, tuple[int, ...], int | None]:
    """``(parts, seen, last part's wall ms)`` of a set, as far as its state is readable."""
    raw = txn.get(SETS_DB, set_id)
    if raw is None:
        return None, (), None
    try:
        state = codec.decode(raw)
        parts, seen, at = state["parts"], state["seen"], state["at"]
        if type(parts) is not int or type(at) is not int or at < 0:
            raise TypeError
        seen_parts = tuple(sorted(p for p in seen if type(p) is int))
    except (ArchiveError, KeyError, TypeError):
        return None, (), None
    return parts, seen_parts, wall_ms(at)


def _held_entries(
    txn: ReadTxn, only: Iterable[bytes] | None
) -> Iterator[tuple[bytes, bytes]]:
    if only is None:
        yield from txn.iterate(HELD_DB)
        return
    for set_id in sorted(only):
        yield from txn.iterate(HELD_DB, set_id, prefix_end(set_id))


def _held_sets(txn: ReadTxn, now_ms: int, only: Iterable[bytes] | None = None) -> list[HeldSet]:
    """Every held entry grouped by set, with the sets' state; sets with state only too
    (or only the sets ``only`` names)."""
    sets: dict[bytes, HeldSet] = {}
    wanted = None if only is None else set(only)
    for key, value in _held_entries(txn, wanted):
        set_id = key[:SET_ID_SIZE]
        if wanted is not None and set_id not in wanted:
            continue  # a key shorter than a set id, under another one's prefix
        held = sets.get(set_id)
        if held is None:
            held = sets[set_id] = HeldSet(set_id)
        held.blocks += 1
        held.size += len(value)
        try:
            trusted = age = _trusted(held_age(value), now_ms)
        except BundleError:
            held.unreadable += 1
            held.entries.append((key, len(value), UNREADABLE))
            continue
        held.entries.append((key, len(value), trusted))
        if age is None:
            held.unaged += 1
            age = now_ms  # judged as held now (and stamped so by expire)
        held.first_ms = age if held.first_ms is None else min(held.first_ms, age)
        held.last_ms = age if held.last_ms is None else max(held.last_ms, age)
        cid = key[SET_ID_SIZE:]
        if cid and next(iter(txn.iterate("links_rev", cid, prefix_end(cid))), None):
            held.referenced += 1
            held.kept.add(key)
    for set_id, _ in txn.iterate(SETS_DB):
        if set_id not in sets and (wanted is None or set_id in wanted):
            sets[set_id] = HeldSet(set_id)
    for set_id, held in sets.items():
        held.parts, held.seen, at = _set_state(txn, set_id)
        if at is not None:
            at = min(at, now_ms)
            held.last_ms = at if held.last_ms is None else max(held.last_ms, at)
    return sorted(sets.values(), key=lambda s: (s.first_ms or 0, s.set_id))


def _expire_held(txn: WriteTxn, now_ms: int, max_age_ms: int, report: ExpireReport,
                 dry_run: bool, only: Iterable[bytes] | None = None) -> set[bytes]:
    """Remove (or count) what has expired; return the sets that had anything to write."""
    touched: set[bytes] = set()
    for held in _held_sets(txn, now_ms, only):
        abandoned = held.last_ms is None or now_ms - held.last_ms >= max_age_ms
        for key, size, age in held.entries:
            if age == UNREADABLE:
                report.unreadable += 1  # no block at all: it could only ever fail an import
                touched.add(held.set_id)
                if not dry_run:
                    txn.delete(HELD_DB, key)
                continue
            if abandoned and key not in held.kept:
                report.removed_blocks += 1
                report.removed_bytes += size
                touched.add(held.set_id)
                if not dry_run:
                    txn.delete(HELD_DB, key)
                continue
            if abandoned:
                report.kept_referenced += 1
            if age is None:
                report.stamped += 1  # the migration: an age from now on
                touched.add(held.set_id)
                value = None if dry_run else txn.get(HELD_DB, key)
                if value is not None:
                    body = value[HELD_HEAD - 1 :] if value[:1] == AGED else value
                    txn.put(HELD_DB, key, AGED + now_ms.to_bytes(8, "big") + body)
        if abandoned and not held.kept and txn.get(SETS_DB, held.set_id) is not None:
            report.removed_sets += 1
            touched.add(held.set_id)
            if not dry_run:
                txn.delete(SETS_DB, held.set_id)
    return touched


# ---------------------------------------------------------------------- job folders


def _job_folders(home: Path) -> tuple[list[Path], list[str]]:
    base = home / JOBS_DIR
    try:
        entries = sorted(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    jobs: list[Path] = []
    other: list[str] = []
    for entry in entries:
        try:
            mode = entry.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode) and _JOB_NAME.fullmatch(entry.name):
            jobs.append(entry)
        else:
            other.append(entry.name)
    return jobs, other


@contextmanager
def _job_lock(folder: Path) -> Iterator[bool]:
    """Hold the job's lock if nobody does; yields whether we hold it (False: running)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield True  # no lock file: no import ever ran here, or it finished removing
        return
    except OSError:
        yield True  # a lock that is no file (a link, a folder): no import of ours holds it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _describe(folder: Path, running: bool) -> JobFolder:
    size = 0
    newest = folder.lstat().st_mtime_ns
    foreign: list[str] = []
    for entry in folder.iterdir():
        try:
            info = entry.lstat()
        except FileNotFoundError:
            continue
        newest = max(newest, info.st_mtime_ns)
        if entry.name in JOB_FILES and stat.S_ISREG(info.st_mode):
            size += info.st_size
        else:
            foreign.append(entry.name)
    resumable = (folder / "state").is_file()
    return JobFolder(folder, size, newest // 1_000_000, running, resumable, tuple(sorted(foreign)))


def _jobs(home: Path) -> tuple[list[JobFolder], list[str]]:
    folders, other = _job_folders(home)
    jobs = []
    for folder in folders:
        try:
            with _job_lock(folder) as free:
                jobs.append(_describe(folder, not free))
        except FileNotFoundError:
            continue  # removed meanwhile (an import that ended)
    return jobs, other


def _expire_jobs(home: Path, now_ms: int, max_age_ms: int, report: ExpireReport,
                 dry_run: bool) -> None:
    for folder in _job_folders(home)[0]:
        try:
            with _job_lock(folder) as free:
                job = _describe(folder, not free)
                if now_ms - job.last_ms < max_age_ms:
                    continue
                if job.running:
                    report.running_jobs += 1
                    continue
                report.removed_job_bytes += job.size
                if job.foreign:
                    report.kept_foreign += 1  # its own files go, the folder stays
                else:
                    report.removed_jobs += 1
                if not dry_run:
                    # The lock is held while its files go (the lock file last), so an
                    # import that opens the folder now either waits out our lock or
                    # finds its lock file gone and makes the folder afresh.
                    remove_job_files(folder)
        except FileNotFoundError:
            continue


# ---------------------------------------------------------------------- the two together


def survey(store: Store, home: Path, now_ms: int) -> Leftovers:
    """What unfinished bundle work the hub keeps (reads only)."""
    with store.read() as txn:
        sets = _held_sets(txn, now_ms)
    jobs, other = _jobs(home)
    return Leftovers(sets, jobs, other)


def expire(store: Store, home: Path, *, now_ms: int, max_age_ms: int,
           dry_run: bool = False) -> ExpireReport:
    """Remove held sets and job folders idle for ``max_age_ms`` or longer (see the module
    docstring for what is kept); with ``dry_run`` only say what would go."""
    if max_age_ms < 0:
        raise ArchiveError(f"an age cannot be negative, got {max_age_ms} ms")

    # First a read snapshot finds the sets with anything to do; only those are read
    # again, and changed, in a write transaction (none at all on most rounds), so an
    # hourly round over a big held table never holds the store's write lock for long.
    report = ExpireReport(max_age_ms, dry_run)
    with store.read() as snapshot:
        touched = _expire_held(_ReadOnly(snapshot), now_ms, max_age_ms, report, True)

    def held(txn: WriteTxn) -> ExpireReport:
        # The store may run this again (a map that must grow): count afresh each time.
        # The sets are judged again here: a part may have arrived since the snapshot.
        again = ExpireReport(max_age_ms, dry_run)
        _expire_held(txn, now_ms, max_age_ms, again, False, touched)
        return again

    if touched and not dry_run:
        report = store.transact(held)
    _expire_jobs(home, now_ms, max_age_ms, report, dry_run)
    return report


class _ReadOnly:
    """A read snapshot where a dry run's writes would go (it makes none)."""

    def __init__(self, txn: ReadTxn) -> None:
        self._txn = txn

    def get(self, db: str, key: bytes) -> bytes | None:
        return self._txn.get(db, key)

    def has(self, db: str, key: bytes) -> bool:
        return self._txn.has(db, key)

    def iterate(self, db: str, start: bytes = b"", stop: bytes | None = None, *,
                reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._txn.iterate(db, start, stop, reverse=reverse)

    def count(self, db: str) -> int:
        return self._txn.count(db)

    def put(self, db: str, key: bytes, value: bytes | bytearray | memoryview) -> None:
        raise AssertionError("a dry run writes nothing")

    def put_all(self, db: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        raise AssertionError("a dry run writes nothing")

    def delete(self, db: str, key: bytes) -> bool:
        raise AssertionError("a dry run writes nothing")
