"""Unfinished bundle work expires: held parts of split bundles and interrupted imports' job
folders, with their ages, the migration of held blocks from before ages, and what is
never removed. Real LMDB stores in temporary folders, real bundle files and folders.
"""

from __future__ import annotations

import fcntl
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.archive import index
from craftnet.archive.cid import RAW, Cid
from craftnet.archive.delta import MIN_PART_SIZE, plan_all, write_bundles
from craftnet.archive.errors import ArchiveError, BundleError, BundleTruncated
from craftnet.archive.hlc import HybridClock, wall_ms
from craftnet.archive.leftovers import (
    DAY_MS,
    days_ms,
    expire,
    survey,
)
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.receive import (
    HELD_DB,
    JOBS_DIR,
    SETS_DB,
    decode_held,
    encode_held,
    job_name,
    receive_bundle,
)
from craftnet.archive.store import Store, WriteTxn
from craftnet.archive.verify import verify_store
from tests.archive.test_delta import ARTISAN, LICENCE, clock, design, record_keys

T0 = 1_764_000_000_000  # the clock of these tests (wall ms), as in test_delta


def at(ms: int) -> int:
    """The HLC time of wall-clock ``ms`` (what an import is given as ``now``)."""
    return HybridClock(lambda: ms).tick()


def receive(store: Store, path: Path, home: Path, ms: int) -> None:
    with path.open("rb") as stream:
        receive_bundle(store, stream, home, now=at(ms))


def held_values(store: Store) -> dict[bytes, bytes]:
    with store.read() as txn:
        return dict(txn.iterate(HELD_DB))


def all_tables(store: Store) -> dict[str, int]:
    with store.read() as txn:
        return {db: txn.count(db) for db in ("blocks", "records", "pins", HELD_DB, SETS_DB)}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[LmdbStore, LmdbStore]]:
    a = LmdbStore(tmp_path / "lisbon" / "store")
    b = LmdbStore(tmp_path / "highlands" / "store")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def parts_of_a_big_design(lisbon: Store, out: Path) -> list[Path]:
    design(lisbon, 1, 9 * 1024 * 1024, clock(0))  # runs over three parts
    with lisbon.read() as txn:
        written = write_bundles(txn, plan_all(txn), out, max_size=MIN_PART_SIZE)
    assert len(written) >= 3
    return [part.path for part in written]


# ---------------------------------------------------------------------- held blocks


def test_held_blocks_keep_when_first_held_across_restarts_and_later_parts(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = two
    parts = parts_of_a_big_design(lisbon, tmp_path / "stick.car")
    home = tmp_path / "h"
    receive(highlands, parts[0], home, T0)
    first = {k: decode_held(v).held_ms for k, v in held_values(highlands).items()}
    assert first and set(first.values()) == {T0}
    highlands.close()
    reopened = LmdbStore(tmp_path / "highlands" / "store")
    try:
        receive(reopened, parts[1], home, T0 + 5 * DAY_MS)
        later = {k: decode_held(v).held_ms for k, v in held_values(reopened).items()}
        assert all(later[k] == T0 for k in first if k in later)  # held again: first time kept
        assert {later[k] for k in later.keys() - first.keys()} == {T0 + 5 * DAY_MS}
        found = survey(reopened, home, T0 + 6 * DAY_MS)
        assert found.held_blocks == len(later) and found.oldest_held_ms == T0
        assert found.sets[0].seen == (1, 2) and found.sets[0].last_ms == T0 + 5 * DAY_MS
    finally:
        reopened.close()


def test_an_abandoned_set_goes_whole_and_the_store_stays_as_it_was(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = two
    parts = parts_of_a_big_design(lisbon, tmp_path / "stick.car")
    home = tmp_path / "h"
    receive(highlands, parts[0], home, T0)
    receive(highlands, parts[1], home, T0 + 20 * DAY_MS)
    before = all_tables(highlands)
    # 29 days after the last part: the set is still alive, its oldest blocks too.
    report = expire(highlands, home, now_ms=T0 + 49 * DAY_MS, max_age_ms=days_ms(30))
    assert report.removed_blocks == 0 and all_tables(highlands) == before
    dry = expire(highlands, home, now_ms=T0 + 50 * DAY_MS, max_age_ms=days_ms(30), dry_run=True)
    assert dry.removed_blocks == before[HELD_DB] and dry.removed_sets == 1
    assert all_tables(highlands) == before  # a dry run writes nothing
    report = expire(highlands, home, now_ms=T0 + 50 * DAY_MS, max_age_ms=days_ms(30))
    assert report.as_dict() == {**dry.as_dict(), "dry_run": False}
    after = all_tables(highlands)
    assert after[HELD_DB] == 0 and after[SETS_DB] == 0
    assert {k: after[k] for k in ("blocks", "records", "pins")} == {
        k: before[k] for k in ("blocks", "records", "pins")
    }
    assert verify_store(highlands).ok
    # The parts can still be imported again from the start, in any order.
    for part in reversed(parts):
        receive(highlands, part, home, T0 + 51 * DAY_MS)
    assert record_keys(highlands) == record_keys(lisbon)
    assert verify_store(highlands).ok


def put_held(store: Store, key: bytes, value: bytes) -> None:
    store.transact(lambda txn: txn.put(HELD_DB, key, value))


def test_entries_from_before_ages_get_now_at_the_first_round(lmdb_store: LmdbStore,
                                                            tmp_path: Path) -> None:
    block = b"a chunk of a loom pattern"
    cid = Cid.of(block, RAW)
    put_held(lmdb_store, b"s" * 16 + cid.bytes, b"b" + block)  # the form before ages
    assert decode_held(held_values(lmdb_store)[b"s" * 16 + cid.bytes]).held_ms is None
    assert survey(lmdb_store, tmp_path, T0).sets[0].unaged == 1
    report = expire(lmdb_store, tmp_path, now_ms=T0, max_age_ms=days_ms(30))
    assert report.stamped == 1 and report.removed_blocks == 0
    held = decode_held(held_values(lmdb_store)[b"s" * 16 + cid.bytes])
    assert held.held_ms == T0 and held.data == block and held.kind == "block"
    assert expire(lmdb_store, tmp_path, now_ms=T0 + 29 * DAY_MS,
                  max_age_ms=days_ms(30)).removed_blocks == 0
    assert expire(lmdb_store, tmp_path, now_ms=T0 + 30 * DAY_MS,
                  max_age_ms=days_ms(30)).removed_blocks == 1


def test_corrupt_ages_never_remove_early_and_unreadable_values_go(
    lmdb_store: LmdbStore, tmp_path: Path
) -> None:
    block = b"a file part"
    cid = Cid.of(block, RAW)
    future = encode_held("block", block, T0 + 400 * DAY_MS)  # a clock gone wrong
    put_held(lmdb_store, b"f" * 16 + cid.bytes, future)
    put_held(lmdb_store, b"u" * 16 + cid.bytes, b"\x01\x00\x07")  # cut short
    put_held(lmdb_store, b"k" * 16 + cid.bytes, b"\x01" + bytes(8) + b"?" + block)  # bad kind
    put_held(lmdb_store, b"z" * 16 + cid.bytes, b"\xffjunk")
    put_held(lmdb_store, b"short", encode_held("block", block, T0))  # a key of no set
    report = expire(lmdb_store, tmp_path, now_ms=T0, max_age_ms=days_ms(30))
    assert report.unreadable == 3 and report.stamped == 1 and report.removed_blocks == 0
    left = held_values(lmdb_store)
    assert set(left) == {b"f" * 16 + cid.bytes, b"short"}
    assert decode_held(left[b"f" * 16 + cid.bytes]).held_ms == T0
    with pytest.raises(BundleError, match="unreadable"):
        decode_held(b"\x01\x00")
    report = expire(lmdb_store, tmp_path, now_ms=T0 + 30 * DAY_MS, max_age_ms=days_ms(30))
    assert report.removed_blocks == 2 and held_values(lmdb_store) == {}


def test_garbage_set_states_are_judged_by_their_blocks(lmdb_store: LmdbStore,
                                                       tmp_path: Path) -> None:
    lmdb_store.transact(lambda txn: txn.put(SETS_DB, b"g" * 16, b"\xa1\x61x\x01"))
    lmdb_store.transact(lambda txn: txn.put(SETS_DB, b"n" * 16, b"not cbor at all"))
    found = survey(lmdb_store, tmp_path, T0)
    assert {s.parts for s in found.sets} == {None}
    report = expire(lmdb_store, tmp_path, now_ms=T0, max_age_ms=days_ms(30))
    assert report.removed_sets == 2
    with lmdb_store.read() as txn:
        assert txn.count(SETS_DB) == 0


def test_a_held_block_a_stored_record_links_is_kept(lmdb_store: LmdbStore,
                                                    tmp_path: Path) -> None:
    node = b"a file node that waits for its chunks"
    cid = Cid.of(node, RAW)
    body = {"title": "Rustic Futurism lamp", "files": [cid], "licence": LICENCE}
    index.publish(lmdb_store, ARTISAN, "design", body, [cid], clock=clock(1))
    other = Cid.of(b"nobody links this", RAW)
    put_held(lmdb_store, b"s" * 16 + cid.bytes, encode_held("block", node, T0))
    put_held(lmdb_store, b"s" * 16 + other.bytes, encode_held("block", b"nobody links this", T0))
    found = survey(lmdb_store, tmp_path, T0)
    assert found.sets[0].referenced == 1
    report = expire(lmdb_store, tmp_path, now_ms=T0 + 90 * DAY_MS, max_age_ms=days_ms(30))
    assert report.removed_blocks == 1 and report.kept_referenced == 1
    assert set(held_values(lmdb_store)) == {b"s" * 16 + cid.bytes}
    assert verify_store(lmdb_store).ok


def test_negative_and_absurd_ages_are_refused(lmdb_store: LmdbStore, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="negative"):
        expire(lmdb_store, tmp_path, now_ms=T0, max_age_ms=-1)
    for bad in (-1, 36_501, float("nan"), True, "30"):
        with pytest.raises(ArchiveError, match="0 to 36500 days"):
            days_ms(bad)  # type: ignore[arg-type]
    assert days_ms(0) == 0 and days_ms(1.5) == 36 * 3_600_000


# ---------------------------------------------------------------------- job folders


def old(path: Path, ms: int) -> None:
    """Make ``path`` and what it holds look last written at wall-clock ``ms``."""
    for entry in [path, *path.iterdir()] if path.is_dir() else [path]:
        os.utime(entry, ns=(ms * 1_000_000, ms * 1_000_000), follow_symlinks=False)


def job_folder(home: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = home / JOBS_DIR / name
    folder.mkdir(parents=True)
    for file, data in files.items():
        (folder / file).write_bytes(data)
    return folder


NAME_A, NAME_B, NAME_C = "a" * 32, "b" * 32, "c" * 32


def test_idle_job_folders_go_recent_and_running_ones_stay(lmdb_store: LmdbStore,
                                                          tmp_path: Path) -> None:
    home = tmp_path / "home"
    idle = job_folder(home, NAME_A, {"state": b"\xa0", "spill": b"x" * 1000, "journal": b"",
                                     "lock": b""})
    recent = job_folder(home, NAME_B, {"state": b"\xa0", "spill": b"y" * 10, "lock": b""})
    running = job_folder(home, NAME_C, {"state": b"\xa0", "lock": b""})
    old(idle, T0 - 40 * DAY_MS)
    old(recent, T0 - 2 * DAY_MS)
    old(running, T0 - 40 * DAY_MS)
    with (running / "lock").open("a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # an import at work
        found = survey(lmdb_store, home, T0)
        by_name = {job.path.name: job for job in found.jobs}
        assert by_name[NAME_C].running and not by_name[NAME_A].running
        assert by_name[NAME_A].size == 1001 and by_name[NAME_A].resumable
        dry = expire(lmdb_store, home, now_ms=T0, max_age_ms=days_ms(30), dry_run=True)
        assert dry.removed_jobs == 1 and idle.exists()
        report = expire(lmdb_store, home, now_ms=T0, max_age_ms=days_ms(30))
        assert report.removed_jobs == 1 and report.removed_job_bytes == 1001
        assert report.running_jobs == 1
        assert not idle.exists() and recent.exists() and running.exists()
    # Its import over, the same folder is now idle and goes.
    assert expire(lmdb_store, home, now_ms=T0, max_age_ms=days_ms(30)).removed_jobs == 1
    assert sorted(p.name for p in (home / JOBS_DIR).iterdir()) == [NAME_B]


def test_job_folders_with_garbage_lose_only_what_craftnet_made(lmdb_store: LmdbStore,
                                                               tmp_path: Path) -> None:
    home = tmp_path / "home"
    outside = tmp_path / "precious.txt"
    outside.write_text("not craftnet's")
    messy = job_folder(home, NAME_A, {"state": os.urandom(64), "spill": os.urandom(99),
                                      "notes.txt": b"the operator's"})
    (messy / "lock").symlink_to(outside)  # a lock that leads elsewhere is not followed
    (messy / "journal").mkdir()  # a folder where a file should be
    no_lock = job_folder(home, NAME_B, {"spill": b"z" * 5})
    (home / JOBS_DIR / "README").write_text("not a job")
    (home / JOBS_DIR / "NOT-A-JOB-NAME").mkdir()
    for path in (messy, no_lock):
        old(path, T0 - 90 * DAY_MS)
    found = survey(lmdb_store, home, T0)
    assert sorted(found.other) == ["NOT-A-JOB-NAME", "README"]
    jobs = {job.path.name: job for job in found.jobs}
    assert set(jobs[NAME_A].foreign) == {"lock", "journal", "notes.txt"}
    report = expire(lmdb_store, home, now_ms=T0, max_age_ms=days_ms(30))
    assert report.removed_jobs == 1 and report.kept_foreign == 1
    assert not no_lock.exists()
    assert sorted(p.name for p in messy.iterdir()) == ["journal", "lock", "notes.txt"]
    assert outside.read_text() == "not craftnet's"
    assert (home / JOBS_DIR / "README").exists() and (home / JOBS_DIR / "NOT-A-JOB-NAME").exists()


def test_no_imports_folder_or_a_file_in_its_place(lmdb_store: LmdbStore, tmp_path: Path) -> None:
    assert survey(lmdb_store, tmp_path / "none", T0).jobs == []
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / JOBS_DIR).write_text("a file, not a folder")
    assert expire(lmdb_store, tmp_path / "home", now_ms=T0, max_age_ms=0).removed_jobs == 0


# ---------------------------------------------------------------------- resuming from a pipe


class Pipe(io.RawIOBase):
    """A bundle as a pipe gives it: read once, no seeking; may stop early."""

    def __init__(self, raw: bytes, stop: int | None = None) -> None:
        self._inner = io.BytesIO(raw[:stop] if stop is not None else raw)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


def a_bundle(lisbon: Store, path: Path) -> bytes:
    design(lisbon, 2, 3 * 1024 * 1024, clock(0))
    for n in range(3):
        design(lisbon, 10 + n, 200_000, clock(n + 1))
    with lisbon.read() as txn:
        write_bundles(txn, plan_all(txn), path)
    return path.read_bytes()


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.999])
def test_a_piped_bundle_cut_short_continues_when_piped_again(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path, cut: float
) -> None:
    lisbon, highlands = two
    raw = a_bundle(lisbon, tmp_path / "all.car")
    home = tmp_path / "h"
    with pytest.raises(BundleTruncated, match="kept: import the whole bundle again"):
        receive_bundle(highlands, Pipe(raw, int(len(raw) * cut)), home, now=at(T0),
                       checkpoint_bytes=64 * 1024)
    assert record_keys(highlands) == set()  # nothing half-imported is visible
    jobs = survey(highlands, home, T0).jobs
    assert len(jobs) == 1 and jobs[0].resumable
    report = receive_bundle(highlands, Pipe(raw), home, now=at(T0))
    assert 0 < report.resumed_at < len(raw)
    assert record_keys(highlands) == record_keys(lisbon)
    assert verify_store(highlands).ok
    assert survey(highlands, home, T0).jobs == []


def test_a_pipe_cut_inside_its_first_block_starts_again_cleanly(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    from craftnet.archive.car import CarReader

    lisbon, highlands = two
    raw = a_bundle(lisbon, tmp_path / "all.car")
    header_end = CarReader(io.BytesIO(raw)).header_end
    home = tmp_path / "h"
    with pytest.raises(BundleTruncated, match="the 0 bytes checked before it are kept"):
        receive_bundle(highlands, Pipe(raw, header_end + 3), home, now=at(T0))
    report = receive_bundle(highlands, Pipe(raw), home, now=at(T0))
    assert report.resumed_at == header_end
    assert record_keys(highlands) == record_keys(lisbon)


def test_a_piped_bundle_that_ends_between_blocks_is_kept_too(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    from craftnet.archive.car import CarReader

    lisbon, highlands = two
    raw = a_bundle(lisbon, tmp_path / "all.car")
    reader = CarReader(io.BytesIO(raw))
    ends = [reader.position for _ in reader]
    between = ends[len(ends) // 2]  # a clean end after a whole block
    home = tmp_path / "h"
    with pytest.raises(BundleTruncated, match="kept"):
        receive_bundle(highlands, Pipe(raw, between), home, now=at(T0))
    report = receive_bundle(highlands, Pipe(raw), home, now=at(T0))
    assert report.resumed_at == between
    assert record_keys(highlands) == record_keys(lisbon)


def test_another_bundle_under_the_same_job_is_refused_and_starts_over(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    from craftnet.archive.car import CarReader, write_header, write_section

    lisbon, highlands = two
    raw = a_bundle(lisbon, tmp_path / "all.car")
    home = tmp_path / "h"
    with pytest.raises(BundleTruncated):
        receive_bundle(highlands, Pipe(raw, len(raw) // 2), home, now=at(T0),
                       checkpoint_bytes=1)
    # The same roots (so the same job) but other blocks before where the first got to.
    reader = CarReader(io.BytesIO(raw))
    sections = list(reader)
    forged = io.BytesIO()
    write_header(forged, list(reader.roots))
    extra = b"a stray chunk"
    write_section(forged, Cid.of(extra, RAW), extra)
    for section in sections:
        write_section(forged, section.cid, section.data)
    with pytest.raises(BundleError, match="not the bundle whose interrupted import is kept"):
        receive_bundle(highlands, Pipe(forged.getvalue()), home, now=at(T0))
    assert not (home / JOBS_DIR / job_name(reader.roots)).exists()
    receive_bundle(highlands, Pipe(raw), home, now=at(T0))
    assert record_keys(highlands) == record_keys(lisbon)


def test_an_import_after_its_folder_expired_starts_afresh(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = two
    raw = a_bundle(lisbon, tmp_path / "all.car")
    home = tmp_path / "h"
    with pytest.raises(BundleTruncated):
        receive_bundle(highlands, Pipe(raw, len(raw) // 2), home, now=at(T0),
                       checkpoint_bytes=1)
    now = wall_ms(at(T0)) + 10**12  # far on: the folder's files are older than that
    assert expire(highlands, home, now_ms=now, max_age_ms=days_ms(30)).removed_jobs == 1
    report = receive_bundle(highlands, Pipe(raw), home, now=at(T0))
    assert report.resumed_at == 0
    assert record_keys(highlands) == record_keys(lisbon)


def test_a_part_that_arrives_during_a_round_saves_its_set(
    two: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    from craftnet.archive.leftovers import ExpireReport, _expire_held, _ReadOnly

    lisbon, highlands = two
    parts = parts_of_a_big_design(lisbon, tmp_path / "stick.car")
    home = tmp_path / "h"
    receive(highlands, parts[0], home, T0)
    now = T0 + 50 * DAY_MS
    with highlands.read() as snapshot:  # the round's first, read-only pass
        touched = _expire_held(_ReadOnly(snapshot), now, days_ms(30),
                               ExpireReport(days_ms(30), True), True)
    assert len(touched) == 1
    receive(highlands, parts[1], home, now)  # meanwhile the next stick arrives

    def write_pass(txn: WriteTxn) -> ExpireReport:
        report = ExpireReport(days_ms(30), False)
        _expire_held(txn, now, days_ms(30), report, False, touched)
        return report

    assert highlands.transact(write_pass).removed_blocks == 0
    for part in parts[2:]:
        receive(highlands, part, home, now)
    assert record_keys(highlands) == record_keys(lisbon)
