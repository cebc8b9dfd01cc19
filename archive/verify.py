"""Check a whole store: every block, record, pinned file and index entry.

Problems in the data are collected into a :class:`VerifyReport` (``craftnet verify``
prints it); only a failure to read the store at all raises. Scans run in short read
transactions that resume after the last key seen, so verifying a big store neither
blocks writers nor pins an old snapshot for long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from craftnet.archive import codec
from craftnet.archive.blocks import pins as list_pins
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.files import FILE_TYPE, iter_chunk_refs, parse_file_node
from craftnet.archive.records import Record
from craftnet.archive.store import Store

SCAN_BATCH: Final = 512
MAX_LISTED: Final = 1000
# Index databases whose keys end with the CID of a record (see archive.index).
RECORD_INDEXES: Final = ("rec_type", "rec_author", "rec_time", "att_subject")

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in the store."""

    kind: str  # bad-key, bad-block, missing-block, bad-record, bad-pin, bad-file,
    # missing-chunk, dangling-index
    where: str  # the CID or database key concerned
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What ``verify_store`` checked and what it found."""

    blocks: int = 0
    records: int = 0
    files: int = 0
    index_entries: int = 0
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first MAX_LISTED
    damaged: list[Cid] = field(default_factory=list)  # every bad block, for a repair

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.problem_count == 0

    def add(self, kind: str, where: str, message: str) -> None:
        """Record a problem (the list keeps the first MAX_LISTED)."""
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(kind, where, message))


def _scan(store: Store, db: str) -> Iterator[tuple[bytes, bytes]]:
    """All entries of ``db`` in key order, SCAN_BATCH per read transaction."""
    start = b""
    while True:
        with store.read() as txn:
            rows = []
            for row in txn.iterate(db, start):
                rows.append(row)
                if len(rows) == SCAN_BATCH:
                    break
        yield from rows
        if len(rows) < SCAN_BATCH:
            return
        start = rows[-1][0] + b"\x00"  # the next key after the last one seen


def _name(key: bytes) -> str:
    try:
        return str(Cid.from_bytes(key))
    except ArchiveError:
        return key.hex()


def verify_store(store: Store, on_progress: Progress | None = None) -> VerifyReport:
    """Check everything; report problems instead of raising for them."""
    report = VerifyReport()
    with store.read() as txn:
        total = sum(txn.count(db) for db in ("blocks", "records", "pins", *RECORD_INDEXES))
        total += txn.count("links_rev")
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None and (done % 256 == 0 or done == total):
            on_progress(done, total)

    for key, block in _scan(store, "blocks"):
        report.blocks += 1
        _check_block(report, key, block)
        tick()
    for key, _ in _scan(store, "records"):
        report.records += 1
        _check_record(store, report, key)
        tick()
    _check_pins(store, report, tick)
    for db in RECORD_INDEXES:
        for key, _ in _scan(store, db):
            report.index_entries += 1
            _check_index(store, report, db, key, key[-CID_BYTES_LEN:])
            tick()
    for key, _ in _scan(store, "links_rev"):
        report.index_entries += 1
        _check_index(store, report, "links_rev", key, key[CID_BYTES_LEN:])
        tick()
    if on_progress is not None:
        on_progress(done, max(done, total))
    return report


def _check_block(report: VerifyReport, key: bytes, block: bytes) -> None:
    try:
        cid = Cid.from_bytes(key)
    except ArchiveError as exc:
        report.add("bad-key", key.hex(), f"a block is stored under a key that is no CID: {exc}")
        return
    if not cid.verify(block):
        report.add("bad-block", str(cid), "the stored bytes do not hash to this CID")
        report.damaged.append(cid)


def _check_record(store: Store, report: VerifyReport, key: bytes) -> None:
    where = _name(key)
    with store.read() as txn:
        block = txn.get("blocks", key)
    if block is None:
        report.add("missing-block", where, "the record is indexed but its block is missing")
        return
    try:
        Record.from_block(block, Cid.from_bytes(key)).verify()
    except ArchiveError as exc:
        report.add("bad-record", where, str(exc))


def _check_pins(store: Store, report: VerifyReport, tick: Callable[[], None]) -> None:
    with store.read() as txn:
        try:
            pinned = [p.cid for p in list_pins(txn)]
        except ArchiveError as exc:
            report.add("bad-pin", "pins", str(exc))
            pinned = _pins_leniently(store)
    for cid in pinned:
        tick()
        with store.read() as txn:
            block = txn.get("blocks", cid.bytes)
        if block is None:
            report.add("missing-block", str(cid), "a pinned block is missing")
            continue
        if cid.codec != DAG_CBOR or not _looks_like_file(block):
            continue
        report.files += 1
        try:
            info = parse_file_node(cid, block)
            for ref in iter_chunk_refs(store, info):
                with store.read() as txn:
                    if not txn.has("blocks", ref.cid.bytes):
                        report.add("missing-chunk", str(cid), f"chunk {ref.cid} is missing")
        except ArchiveError as exc:
            report.add("bad-file", str(cid), str(exc))


def _pins_leniently(store: Store) -> list[Cid]:
    out: list[Cid] = []
    for key, _ in _scan(store, "pins"):
        try:
            out.append(Cid.from_bytes(key))
        except ArchiveError:
            continue
    return out


def _looks_like_file(block: bytes) -> bool:
    try:
        value = codec.decode(block)
    except ArchiveError:
        return False
    return isinstance(value, dict) and value.get("type") == FILE_TYPE


def _check_index(store: Store, report: VerifyReport, db: str, key: bytes, target: bytes) -> None:
    with store.read() as txn:
        known = len(target) == CID_BYTES_LEN and txn.has("records", target)
    if not known:
        report.add("dangling-index", f"{db}:{key.hex()}", f"points to {_name(target)}, no record")
