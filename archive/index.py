"""Storing signed records and finding them again.

A record is written in one transaction together with every index entry it needs, so
the indexes never disagree with the blocks after a crash. Keys (all byte strings; ``ts8``
is the record's HLC timestamp as 8 bytes big-endian, so keys sort by time; ``cid`` is
the 36-byte binary CID):

* ``blocks``: cid -> the record block;
* ``records``: cid -> DAG-CBOR ``{type, author, ts}``;
* ``rec_type``: type ``\\x00`` ts8 cid -> empty;
* ``rec_author``: author did ``\\x00`` ts8 cid -> empty;
* ``rec_time``: ts8 cid -> empty;
* ``links_rev``: linked cid, linking record cid -> empty (descendants, collections, ...);
* ``att_subject``: subject did ``\\x00`` ts8 cid -> empty (attestations by subject);
* ``keys``: key-succession and revocation facts, see :mod:`craftnet.archive.key_facts`;
* ``recon_chunks``: the reconcile index over ``rec_time``, see
  :mod:`craftnet.archive.recon_index`;
* ``changes``: the change feed, see :mod:`craftnet.archive.changes`.

Whoever writes a record (publish, ingest, bundle import, CRDT operations, sync) goes
through :func:`put_record`, so the reconcile index and the change feed are current
the moment the transaction commits, in every process.

Type names are slugs and dids are base58, so neither holds ``\\x00`` and a prefix scan
of ``name \\x00`` finds exactly one name. Writing is idempotent: a record already in
``records`` is skipped, so storing it twice changes nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from craftnet.archive import changes, codec
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, Cid
from craftnet.archive.errors import (
    ArchiveError,
    IntegrityError,
    NotFound,
    RecordError,
)
from craftnet.archive.hlc import HybridClock
from craftnet.archive.key_facts import is_did_text, put_facts
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.record_check import Answer, Task, check_blocks, refusal
from craftnet.archive.records import MAX_RECORD_SIZE, Record
from craftnet.archive.schemas import check_type_name, schema_for, validate_body
from craftnet.archive.store import ReadTxn, Store, WriteTxn, prefix_end
from craftnet.identity.batch import start_map
from craftnet.identity.keys import PrivateKey

_TS: Final = struct.Struct(">Q")
_SEP: Final = b"\x00"
SUFFIX_LEN: Final = _TS.size + CID_BYTES_LEN
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
DEFAULT_BATCH: Final = 1000
# The reconcile index every record write keeps (its chunk size is the one StoreItems reads).
RECON_INDEX: Final = ReconIndex()


class QueryError(ArchiveError):
    """A query's arguments are out of range, or its cursor is not one this hub issued."""


# -- writing --------------------------------------------------------------------------


def put_record(txn: WriteTxn, record: Record) -> bool:
    """Store ``record`` and its index entries in ``txn``; return False if it was already there.

    This does not verify the signature or the body schema: :func:`ingest_records` and
    :func:`publish` do, and callers holding records of unknown origin must too.
    """
    return put_many(txn, (record,))[0]


def put_many(txn: WriteTxn, records: Iterable[Record]) -> list[bool]:
    """:func:`put_record` for each of ``records`` (read one at a time), in order; the
    reconcile index and the change feed are brought up to date once, at the end.

    The entries of the new records are gathered per database and written with one
    :meth:`~craftnet.archive.store.WriteTxn.put_all` each (a call per entry cost as much
    as LMDB's own work); a record met twice in ``records`` is new only the first time.
    """
    return _put_rows(
        txn,
        (
            (r.cid.bytes, r.block, r.type, r.author, r.ts, [link.bytes for link in r.links], r.body)
            for r in records
        ),
    )


def put_in_turn(txn: WriteTxn, records: Sequence[Record]) -> list[bool]:
    """:func:`put_many`, leaving the store exactly as :func:`put_record` of each record in
    turn would (the reconcile index's chunks included, see
    :meth:`~craftnet.archive.recon_index.ReconIndex.add_in_turn`): for a writer that
    meets records one at a time but may write them together at the end of its
    transaction, whatever it batched."""
    return _put_rows(
        txn,
        (
            (r.cid.bytes, r.block, r.type, r.author, r.ts, [link.bytes for link in r.links], r.body)
            for r in records
        ),
        in_turn=True,
    )


# What the write needs of a record: its binary CID, block, type, author, ts, its links'
# binary CIDs and its body (read only for attestations and key facts; an import passes
# None for other types).
_Row = tuple[bytes, bytes, str, str, int, Iterable[bytes], Mapping[str, Any] | None]


def _put_rows(txn: WriteTxn, rows: Iterable[_Row], *, in_turn: bool = False) -> list[bool]:
    """:func:`put_many` of records given as rows (:func:`put_in_turn` with ``in_turn``)."""
    added: list[bytes] = []
    new: list[bool] = []
    entries = _Entries()
    taken: set[bytes] = set()
    for row in rows:
        key = row[0]
        if key in taken:
            new.append(False)
            continue
        suffix = _put_entries(txn, row, entries)
        new.append(suffix is not None)
        if suffix is not None:
            taken.add(key)
            added.append(suffix)
    entries.write(txn)
    if added:  # a batch of duplicates costs no read of the feed
        if in_turn:
            RECON_INDEX.add_in_turn(txn, added)
        else:
            RECON_INDEX.add_many(txn, added)
        changes.append(txn, added)
    return new


class _Entries:
    """The index entries of a batch of new records, per database, written at the end."""

    __slots__ = ("blocks", "links_rev", "rec_author", "rec_time", "rec_type", "records")

    def __init__(self) -> None:
        self.blocks: list[tuple[bytes, bytes]] = []
        self.records: list[tuple[bytes, bytes]] = []
        self.rec_type: list[tuple[bytes, bytes]] = []
        self.rec_author: list[tuple[bytes, bytes]] = []
        self.rec_time: list[tuple[bytes, bytes]] = []
        self.links_rev: list[tuple[bytes, bytes]] = []

    def write(self, txn: WriteTxn) -> None:
        # Blocks first, so that a store that fills up fails before any index entry.
        for db in ("blocks", "records", "rec_type", "rec_author", "rec_time", "links_rev"):
            items = getattr(self, db)
            if items:
                txn.put_all(db, items)


def _put_entries(txn: WriteTxn, row: _Row, entries: _Entries) -> bytes | None:
    """Gather the record's entries into ``entries`` (the rare key facts and attestation
    subjects are written at once); its ``ts8 + CID`` if new, else None."""
    key, block, rtype, author, ts, links, body = row
    if txn.has("records", key):
        if not txn.has("blocks", key):
            # Its damaged copy was removed (`craftnet verify --repair`): this restores it.
            txn.put("blocks", key, block)
        return None
    check_type_name(rtype)
    suffix = _TS.pack(ts) + key
    entries.blocks.append((key, block))
    # The summary's keys in DAG-CBOR order and its values checked by the record's
    # envelope: the plain encoder gives the canonical bytes without a copy or a sort.
    entries.records.append((key, codec.encode_checked({"ts": ts, "type": rtype, "author": author})))
    entries.rec_type.append((rtype.encode() + _SEP + suffix, b""))
    entries.rec_author.append((author.encode() + _SEP + suffix, b""))
    entries.rec_time.append((suffix, b""))
    if links:
        entries.links_rev.extend((link + key, b"") for link in set(links))
    if body is None:
        return suffix  # not a type whose body the write reads
    if rtype == "attestation":
        subject = body.get("subject")
        if is_did_text(subject):
            txn.put("att_subject", subject.encode() + _SEP + suffix, b"")
    else:
        put_facts(txn, rtype, author, body, suffix)
    return suffix


def put_records(store: Store, records: Iterable[Record]) -> int:
    """Store already-checked records in one transaction; return how many were new."""
    batch = list(records)
    return store.transact(lambda txn: sum(put_many(txn, batch)))


@dataclass(frozen=True, slots=True)
class Rejected:
    """A block :func:`ingest_records` refused: its position in the input, CID if known, why."""

    index: int
    cid: Cid | None
    reason: str


@dataclass(slots=True)
class IngestReport:
    """What :func:`ingest_records` did with each block."""

    added: list[Cid] = field(default_factory=list)
    duplicates: list[Cid] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    opaque: int = 0  # how many added records are of a type this hub does not know

    @property
    def ok(self) -> bool:
        """True when no block was rejected."""
        return not self.rejected


BlockInput = bytes | tuple[Cid, bytes]


def ingest_records(
    store: Store,
    blocks: Iterable[BlockInput],
    *,
    verify: bool = True,
    batch_size: int | None = DEFAULT_BATCH,
    strict: bool = False,
) -> IngestReport:
    """Parse, check (schema, signature) and store record blocks, one transaction per batch.

    Items are record blocks, or ``(cid, block)`` pairs whose CID is checked too. Bad blocks
    are listed in the report and the rest are stored, unless ``strict``: then the first bad
    block raises and nothing of its batch is written (``batch_size=None`` makes the whole
    input one batch, so nothing at all is written). Records already stored are counted
    as duplicates without verifying them again.
    """
    if batch_size is not None and batch_size < 1:
        raise QueryError("batch_size must be at least 1")
    report = IngestReport()
    # Two batches in flight: while the worker processes parse and check one batch, this
    # thread writes the one before; then the next is read and handed over.
    pending: _Prepared | None = None

    def take(batch: list[tuple[int, BlockInput]]) -> None:
        nonlocal pending
        try:
            prepared = _prepare_batch(store, batch, verify)
        except BaseException:
            earlier, pending = pending, None
            if earlier is not None:  # an earlier batch comes first, written or failing
                _finish_batch(store, earlier, strict, report)
            raise
        if pending is not None:
            _finish_batch(store, pending, strict, report)
        pending = prepared

    batch: list[tuple[int, BlockInput]] = []
    for index, item in enumerate(blocks):
        batch.append((index, item))
        if batch_size is not None and len(batch) >= batch_size:
            take(batch)
            batch = []
    if batch:
        take(batch)
    if pending is not None:
        _finish_batch(store, pending, strict, report)
    report.rejected.sort(key=lambda rejected: rejected.index)
    return report


@dataclass(slots=True)
class _Prepared:
    """A batch whose blocks are being checked (see :mod:`craftnet.archive.record_check`).

    Per block it keeps plain tuples of bytes and ints, and the CIDs in lists of their
    own: a tuple holding a CID stays tracked by the collector, and a batch's tuples live
    long enough to be moved to its oldest generation, where every one of them brings the
    next full collection (a walk over all the process's objects) closer.
    """

    blocks: list[tuple[int, bytes]]  # its place in the input, its bytes
    given: list[Cid | None]  # the CID it came with (None: a bare block)
    cids: list[Cid | None]  # the CID it is stored under if it parses (None: too big)
    present: list[bool]  # the store holds it already (checked before its signature)
    # Where each block's signature verdict is: its own answer, or the answer of an
    # earlier block of the batch with the same bytes (checked once).
    verdict_of: list[int]
    answers: Callable[[], list[Answer]]


def _prepare_batch(
    store: Store, batch: Sequence[tuple[int, BlockInput]], verify: bool
) -> _Prepared:
    """Hash the batch's blocks, see which the store holds, and start their checks.

    The checks run on the worker processes when a core is idle for them (parsing,
    schemas and signatures: the importing thread only hashes, looks up and writes), else
    here when the batch is finished. A block's CID is hashed here to look it up before
    its signature is checked; the check hashes it again to name the record it parses.
    """
    blocks: list[tuple[int, bytes]] = []
    given: list[Cid | None] = []
    cids: list[Cid | None] = []
    for index, item in batch:
        if isinstance(item, tuple):
            sent, block = item
            given.append(sent)
            cids.append(sent)  # the check refuses a block that does not match it
        else:
            block = item
            given.append(None)
            cids.append(Cid.of(block, DAG_CBOR) if len(block) <= MAX_RECORD_SIZE else None)
        if type(block) is not bytes:
            block = bytes(block)  # a caller's bytearray is copied, as Record.from_block does
        blocks.append((index, block))
    with store.read() as txn:
        present = [cid is not None and txn.has("records", cid.bytes) for cid in cids]
    tasks: list[Task] = []
    verdict_of: list[int] = []
    first: dict[bytes, int] = {}
    for place, (_, block) in enumerate(blocks):
        cid = cids[place]
        check = verify and not present[place]
        where = place
        if check and cid is not None:
            earlier = first.setdefault(cid.bytes, place)
            if earlier != place and blocks[earlier][1] == block:
                check, where = False, earlier  # the same bytes: the same verdict
        tasks.append((block, given[place], check))
        verdict_of.append(where)
    return _Prepared(blocks, given, cids, present, verdict_of, start_map(check_blocks, tasks))


def _finish_batch(store: Store, prepared: _Prepared, strict: bool, report: IngestReport) -> None:
    answers = prepared.answers()
    blocks, cids = prepared.blocks, prepared.cids
    # Blocks that do not parse or break their schema first: a strict import raises the
    # first of them before any signature verdict (as when parsing came first).
    for place, answer in enumerate(answers):
        if len(answer) == 3:
            if strict:
                raise refusal(answer)
            named = cids[place] if answer[2] else prepared.given[place]
            report.rejected.append(Rejected(blocks[place][0], named, answer[1]))
    rows: list[_Row] = []
    kept: list[tuple[int, bool]] = []  # the place of each row's block, its type known
    seen: set[bytes] = set()
    for place, answer in enumerate(answers):
        if len(answer) == 3:
            continue
        cid = cids[place]
        assert cid is not None  # a block too big to hash was refused
        key = cid.bytes
        if prepared.present[place] or key in seen:
            report.duplicates.append(cid)
            continue
        rtype, author, ts, links, known, body, problem = answer
        other = answers[prepared.verdict_of[place]]
        if len(other) == 7:  # the same bytes, parsed: always so for another block
            problem = other[6]
        if problem is not None:
            if strict:
                raise RecordError(problem)
            report.rejected.append(Rejected(blocks[place][0], cid, problem))
            continue
        seen.add(key)
        rows.append((key, blocks[place][1], rtype, author, ts, links, body))
        kept.append((place, known))

    written = store.transact(lambda txn: _put_rows(txn, rows))
    for (place, known), new in zip(kept, written, strict=True):
        cid = cids[place]
        assert cid is not None
        if new:
            report.added.append(cid)
            report.opaque += not known
        else:  # another writer (or an earlier batch of this input) stored it
            report.duplicates.append(cid)


def publish(
    store: Store,
    key: PrivateKey,
    type: str,
    body: Mapping[str, Any],
    links: Iterable[Cid] = (),
    clock: HybridClock | None = None,
    *,
    ts: int | None = None,
) -> Record:
    """Check ``body`` against its schema, sign it as a record of ``key`` and store it."""
    links = tuple(links)
    schema = schema_for(type)
    v = schema.version if schema is not None else 1
    validate_body(type, v, body, links, key.did)
    record = Record.create(key, type, body, links, ts=ts, clock=clock, v=v)
    store.transact(lambda txn: put_record(txn, record))
    return record


Draft = tuple[str, Mapping[str, Any], Iterable[Cid]]


def publish_many(
    store: Store,
    key: PrivateKey,
    drafts: Iterable[Draft],
    clock: HybridClock | None = None,
) -> list[Record]:
    """Check, sign and store many ``(type, body, links)`` drafts in one transaction.

    Every draft is checked and signed before anything is written, so a bad draft
    raises :class:`SchemaError` and nothing is stored.
    """
    clock = clock or HybridClock()
    author = key.did  # base58 work; once, not per draft
    records: list[Record] = []
    for rtype, body, links in drafts:
        links = tuple(links)
        schema = schema_for(rtype)
        v = schema.version if schema is not None else 1
        validate_body(rtype, v, body, links, author)
        records.append(Record.create(key, rtype, body, links, clock=clock, v=v))
    put_records(store, records)
    return records


# -- reading --------------------------------------------------------------------------


def get_record(txn: ReadTxn, cid: Cid) -> Record:
    """The record named ``cid``; raises :class:`NotFound` if this hub does not hold it."""
    if not txn.has("records", cid.bytes):
        raise NotFound(f"record {cid} is not in this hub's archive")
    block = txn.get("blocks", cid.bytes)
    if block is None:
        raise IntegrityError(f"record {cid} is indexed but its block is missing")
    record = Record.from_block(block)
    if record.cid != cid:
        raise IntegrityError(f"the block stored under {cid} hashes to {record.cid}")
    return record


def has_record(txn: ReadTxn, cid: Cid) -> bool:
    """Tell whether this hub holds the record ``cid``."""
    return txn.has("records", cid.bytes)


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What the ``records`` database keeps about a record, without parsing its block."""

    cid: Cid
    type: str
    author: str
    ts: int


def get_summary(txn: ReadTxn, cid: Cid) -> RecordSummary:
    """The summary of record ``cid``; raises :class:`NotFound`."""
    raw = txn.get("records", cid.bytes)
    if raw is None:
        raise NotFound(f"record {cid} is not in this hub's archive")
    value = codec.decode(raw)
    return RecordSummary(cid, value["type"], value["author"], value["ts"])


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records, newest first; pass ``cursor`` back for the next (None at the end)."""

    records: list[Record]
    cursor: str | None


def _encode_cursor(suffix: bytes) -> str:
    return suffix.hex()


def _decode_cursor(cursor: str) -> bytes:
    if not isinstance(cursor, str) or len(cursor) != 2 * SUFFIX_LEN:
        # Checked before decoding, so a page cursor costs the same whatever its length.
        raise QueryError("this page cursor is malformed; start again from the first page")
    try:
        raw = bytes.fromhex(cursor)
    except (ValueError, TypeError) as exc:
        raise QueryError("this page cursor is malformed; start again from the first page") from exc
    if len(raw) != SUFFIX_LEN:
        raise QueryError("this page cursor is malformed; start again from the first page")
    return raw


def _index_for(type: str | None, author: str | None) -> tuple[str, bytes]:
    if author is not None:
        if not isinstance(author, str) or _SEP.decode() in author:
            raise QueryError(f"author {author!r:.80} is not a did")
        return "rec_author", author.encode() + _SEP
    if type is not None:
        check_type_name(type)
        return "rec_type", type.encode() + _SEP
    return "rec_time", b""


def _scan(
    txn: ReadTxn,
    db: str,
    prefix: bytes,
    since: int | None,
    until: int | None,
    before: bytes | None,
) -> Iterator[bytes]:
    """Yield the ``ts8 cid`` suffixes under ``prefix``, newest first, within the bounds."""
    start = prefix + _TS.pack(since) if since is not None else prefix
    stop = prefix + _TS.pack(until) if until is not None else prefix_end(prefix)
    if before is not None:
        limit = prefix + before
        stop = limit if stop is None else min(stop, limit)
    for key, _ in txn.iterate(db, start, stop, reverse=True):
        yield key[len(prefix) :]


def _check_bound(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or not 0 <= value < 2**64):
        raise QueryError(f"{name} must be a 64-bit hybrid logical clock timestamp")


def list_records(
    txn: ReadTxn,
    *,
    type: str | None = None,
    author: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> RecordPage:
    """Records newest first, filtered by type, author and ``since <= ts < until``, paged."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be 1..{MAX_LIMIT}")
    _check_bound("since", since)
    _check_bound("until", until)
    db, prefix = _index_for(type, author)
    before = _decode_cursor(cursor) if cursor is not None else None
    filter_type = type if author is not None else None
    suffixes: list[bytes] = []
    for suffix in _scan(txn, db, prefix, since, until, before):
        if filter_type is not None:
            summary = get_summary(txn, Cid.from_bytes(suffix[_TS.size :]))
            if summary.type != filter_type:
                continue
        suffixes.append(suffix)
        if len(suffixes) > limit:
            break
    more = len(suffixes) > limit
    page = suffixes[:limit]
    records = [get_record(txn, Cid.from_bytes(suffix[_TS.size :])) for suffix in page]
    return RecordPage(records, _encode_cursor(page[-1]) if more else None)


def count_records(txn: ReadTxn, *, type: str | None = None, author: str | None = None) -> int:
    """How many records this hub holds, optionally of one type and/or one author."""
    if type is None and author is None:
        return txn.count("records")
    db, prefix = _index_for(type, author)
    filter_type = type if author is not None else None
    total = 0
    for suffix in _scan(txn, db, prefix, None, None, None):
        if filter_type is not None:
            summary = get_summary(txn, Cid.from_bytes(suffix[_TS.size :]))
            if summary.type != filter_type:
                continue
        total += 1
    return total


def records_of_type(txn: ReadTxn, type: str) -> Iterator[Record]:
    """Every record of ``type``, oldest first."""
    db, prefix = _index_for(type, None)
    for key, _ in txn.iterate(db, prefix, prefix_end(prefix)):
        yield get_record(txn, Cid.from_bytes(key[len(prefix) + _TS.size :]))


def record_times(txn: ReadTxn) -> Iterator[tuple[int, Cid]]:
    """``(ts, cid)`` of every record, oldest first (without reading the records)."""
    for key, _ in txn.iterate("rec_time"):
        yield _TS.unpack_from(key)[0], Cid.from_bytes(key[_TS.size :])


def counts_by_type(txn: ReadTxn) -> dict[str, int]:
    """How many records of each type this hub holds."""
    counts: dict[str, int] = {}
    for key, _ in txn.iterate("rec_type"):
        name = key[: -SUFFIX_LEN - 1].decode()
        counts[name] = counts.get(name, 0) + 1
    return counts


def linking_records(txn: ReadTxn, cid: Cid, limit: int | None = None) -> list[Cid]:
    """The records that link ``cid`` (in CID order, at most ``limit``): derivatives, ..."""
    prefix = cid.bytes
    found: list[Cid] = []
    for key, _ in txn.iterate("links_rev", prefix, prefix_end(prefix)):
        if limit is not None and len(found) >= limit:
            break
        found.append(Cid.from_bytes(key[len(prefix) :]))
    return found


def attestations_about(txn: ReadTxn, did: str) -> list[Cid]:
    """The attestation records whose subject is ``did``, newest first."""
    prefix = did.encode() + _SEP
    return [
        Cid.from_bytes(suffix[_TS.size :])
        for suffix in _scan(txn, "att_subject", prefix, None, None, None)
    ]
