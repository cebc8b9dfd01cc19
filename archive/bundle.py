"""CAR bundles: export part or all of the archive, and import a bundle all-or-nothing.

A bundle is a CARv1 file (format in :mod:`craftnet.archive.car`) carrying records and
everything they link: the file nodes and chunks of their designs, the records they
derive from, recursively. It is how a hub without a network passes the archive on, on
a USB stick.

Import trusts nothing. Every block is checked against its CID, every record's
signature and schema is checked, every file node must be well-formed, and the roots
the header names must be in the bundle. Checked blocks stay where they are in the
bundle file and are read from it again at commit (a bundle from a pipe is copied aside,
to memory or a spill file: never all in memory, as a bundle can be many gigabytes);
only when the whole bundle has passed is anything written. Then blocks are committed
in batches and the records, their indexes and the pins go in one final transaction,
so an import cut short by a crash leaves at most unreferenced blocks, which garbage
collection removes — the same rule as adding a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

from craftnet.archive import blocks, codec, files, index, schemas
from craftnet.archive.car import CarReader, Section, write_header, write_section
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.crdt.causal import verified_op
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.errors import BadOpSignature
from craftnet.archive.crdt.ops import GENESIS_TYPE, OP_TYPE
from craftnet.archive.errors import BundleError, NotFound
from craftnet.archive.key_facts import key_facts
from craftnet.archive.records import ENVELOPE_KEYS, Record, verify_records
from craftnet.archive.store import ReadTxn, Store, WriteTxn
from craftnet.errors import CraftnetError

# Blocks are committed in transactions of about this many bytes, so that one
# transaction never has to hold a multi-gigabyte bundle.
COMMIT_BATCH_BYTES: Final = 32 * 1024 * 1024
# A bundle read from a pipe is copied aside while it is checked: in memory up to this
# size, then to a spill file.
SPILL_IN_MEMORY: Final = 32 * 1024 * 1024
# Records whose signatures are checked together: enough for the worker processes to pay
# (identity.batch), few enough to hold while the bundle streams past.
SIGNATURE_BATCH: Final = 2000
SIGNATURE_BATCH_BYTES: Final = 16 * 1024 * 1024
# Checked records kept parsed for the commit, up to this many bytes of blocks; the rest
# are read back and parsed again there.
KEEP_RECORDS_BYTES: Final = 16 * 1024 * 1024

ProgressFn = Callable[[int], None]
# What a checked block is: a signed record, a CRDT document record, or anything else
# (a file chunk or file node), which is written before the records that refer to it.
BlockKind = Literal["record", "document", "block"]
DOCUMENT_TYPES: Final = frozenset({GENESIS_TYPE, OP_TYPE})


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :func:`export_car` wrote."""

    roots: tuple[Cid, ...]
    blocks: int
    bytes: int
    records: int
    missing: tuple[Cid, ...] = ()  # linked blocks this store does not hold (not written)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "roots": [str(c) for c in self.roots],
            "blocks": self.blocks,
            "bytes": self.bytes,
            "records": self.records,
            "missing": [str(c) for c in self.missing],
        }


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What :func:`import_car` found and committed."""

    roots: tuple[Cid, ...]
    blocks: int  # sections in the bundle (duplicates included)
    bytes: int  # bytes read
    records: int  # records in the bundle
    new_blocks: int  # blocks the store did not have before
    new_records: int  # records the store did not have before
    duplicates: int = 0  # sections repeating a CID already seen in the same bundle
    repaired: int = 0  # blocks stored damaged here, replaced by the bundle's good copy
    record_cids: tuple[Cid, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "roots": [str(c) for c in self.roots],
            "blocks": self.blocks,
            "bytes": self.bytes,
            "records": self.records,
            "new_blocks": self.new_blocks,
            "new_records": self.new_records,
            "duplicates": self.duplicates,
            "repaired": self.repaired,
        }


def default_roots(txn: ReadTxn) -> list[Cid]:
    """What a whole-archive export starts from: every pinned CID and every record."""
    seen: set[bytes] = set()
    roots: list[Cid] = []
    for db in ("pins", "records"):
        for key, _ in txn.iterate(db):
            if key not in seen:
                seen.add(key)
                roots.append(Cid.from_bytes(key))
    return roots


def export_car(
    store: Store,
    out: IO[bytes],
    roots: Sequence[Cid] | None = None,
    *,
    on_progress: ProgressFn | None = None,
) -> ExportReport:
    """Write ``roots`` and everything they link, recursively, to ``out`` as a CARv1 bundle.

    With no roots the whole archive is exported: every pinned CID and every record.
    Besides what the roots link, the bundle carries the key-succession and revocation
    records this hub holds about the authors of the records in it, so the receiving hub
    judges "was the key valid when it signed" as this one does. Blocks are streamed
    from one read snapshot, so the bundle is consistent and memory stays small. A root
    the store lacks raises :class:`NotFound` before anything is written; a *linked*
    block the store lacks (a parent design this hub never fetched) is skipped and
    listed in the report's ``missing``.
    """
    with store.read() as txn:
        root_list = list(dict.fromkeys(roots)) if roots is not None else default_roots(txn)
        if not root_list:
            raise BundleError("nothing to export: the archive is empty")
        for root in root_list:
            if not txn.has("blocks", root.bytes):
                raise NotFound(f"cannot export {root}: it is not in this archive")
        total = write_header(out, root_list)
        seen: set[bytes] = set()
        authors: set[str] = set()
        missing: list[Cid] = []
        written = records = 0
        stack = list(reversed(root_list))
        while stack:
            cid = stack.pop()
            if cid.bytes in seen:
                continue
            seen.add(cid.bytes)
            data = txn.get("blocks", cid.bytes)
            if data is None:
                missing.append(cid)
                continue
            total += write_section(out, cid, data)
            written += 1
            if on_progress is not None:
                on_progress(total)
            if cid.codec == DAG_CBOR:
                value = codec.decode(data, max_size=max(len(data), 1))
                if _is_record(value):
                    records += 1
                    author = value["author"]
                    if isinstance(author, str) and author not in authors:
                        authors.add(author)
                        stack.extend(fact.record for fact in key_facts(txn, author))
                stack.extend(reversed(list(codec.iter_links(value))))
    return ExportReport(tuple(root_list), written, total, records, tuple(missing))


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == ENVELOPE_KEYS


@dataclass(slots=True)
class _Staged:
    """Where a checked block sits in the bundle file (or the spill file)."""

    cid: Cid
    offset: int
    length: int
    kind: BlockKind
    # A record kept as checked (while the import's budget for them lasts), so that the
    # commit need not read and parse it again; it never left this process's memory.
    record: Record | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """What :func:`check_block` found: the block's kind and the blocks it cannot do without."""

    kind: BlockKind
    needs: tuple[Cid, ...] = ()  # a file node's chunks or parts, a part's chunks


def check_block(section: Section) -> Checked:
    """Check one block's content beyond its hash, and say what kind of block it is.

    Raw blocks are file chunks and need nothing more. A DAG-CBOR block must be
    canonical; if it has the shape of a record envelope it must parse, carry a valid
    signature and match its type's schema (a document operation must also parse as
    one); a file node or file part must be well-formed, and its chunks must arrive too.
    """
    return _check_block(section, defer_signature=False)[0]


def _check_block(section: Section, *, defer_signature: bool) -> tuple[Checked, Record | None]:
    """:func:`check_block`, optionally leaving a record's signature to the caller (who
    gets the record back to check it with others)."""
    if len(section.data) > blocks.MAX_BLOCK_SIZE:
        raise BundleError(
            f"{section.where()}: {len(section.data)} bytes is over the "
            f"{blocks.MAX_BLOCK_SIZE}-byte block limit of the store"
        )
    if section.cid.codec != DAG_CBOR:
        return Checked("block"), None
    value = codec.decode(section.data, max_size=max(len(section.data), 1))
    if isinstance(value, dict) and "sig" in value and "author" in value:
        record = Record.from_decoded(value, section.data)  # the reader checked the CID
        deferred = record if defer_signature else None
        if record.type in DOCUMENT_TYPES:
            verified_op(record, verify=not defer_signature)  # parses it as an operation
            return Checked("document"), deferred
        if not defer_signature:
            record.verify()
        try:
            schemas.validate_record(record)
        except CraftnetError:
            if defer_signature:
                record.verify()  # a bad signature is the first thing wrong with it
            raise
        return Checked("record"), deferred
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == files.FILE_TYPE:
        info = files.parse_file_node(section.cid, section.data)
        return Checked("block", tuple(ref.cid for ref in info.chunks)), None
    if kind == files.PART_TYPE:
        # The size a part holds is claimed by its file node, which may come later in
        # the bundle or be here already; the part itself is checked for shape.
        parsed = files.parse_file_part(files.ChunkRef(section.cid, _sizes(value)), section.data)
        return Checked("block", tuple(ref.cid for ref in parsed)), None
    return Checked("block"), None


class _Signatures:
    """The signatures of a bundle's records, checked in batches (on every core when a
    batch is big, see :mod:`craftnet.identity.batch`) and reported in bundle order."""

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], str], Record, bool]] = []
        self._bytes = 0

    def add(self, where: Callable[[], str], record: Record, document: bool) -> None:
        """Queue ``record`` (``where`` tells where it is, for an error message)."""
        self._pending.append((where, record, document))
        self._bytes += len(record.block)
        if len(self._pending) >= SIGNATURE_BATCH or self._bytes >= SIGNATURE_BATCH_BYTES:
            self.check()

    def check(self) -> None:
        """Check what is pending; raise :class:`BundleError` for the first bad one."""
        pending, self._pending, self._bytes = self._pending, [], 0
        errors = verify_records([record for _, record, _ in pending])
        for (where, record, document), error in zip(pending, errors, strict=True):
            if error is None:
                continue
            problem: CraftnetError = error
            if document:
                problem = BadOpSignature(f"operation {record.cid} is not validly signed: {error}")
            raise BundleError(f"{where()}: {problem}") from problem


def _sizes(value: dict[str, Any]) -> int:
    entries = value.get("chunks")
    if not isinstance(entries, list):
        return 0
    return sum(e["size"] for e in entries if isinstance(e, dict) and type(e.get("size")) is int)


def import_car(
    store: Store,
    stream: IO[bytes],
    *,
    on_progress: ProgressFn | None = None,
    spill_dir: str | Path | None = None,
) -> ImportReport:
    """Check a whole CARv1 bundle, then commit it; on any problem nothing is written.

    Raises :class:`BundleError` naming the bad block (its index in the file, its CID,
    its byte offset) and the reason. ``on_progress`` is called with the number of
    bytes read so far. A stream that cannot seek (a pipe) is copied aside while it is
    checked, in memory up to :data:`SPILL_IN_MEMORY` and then in a spill file in
    ``spill_dir`` (default: the system's temporary directory), removed when the import
    ends.
    """
    base = _file_offset(stream)
    reader = CarReader(stream)
    # A bundle in a file is staged where it lies: blocks are read back from it at commit
    # (and checked against their CIDs again). Only a stream that cannot be read twice
    # (a pipe) is copied, to memory up to SPILL_IN_MEMORY and to a spill file beyond.
    spilling = base is None
    with (
        tempfile.SpooledTemporaryFile(
            max_size=SPILL_IN_MEMORY,
            dir=None if spill_dir is None else os.fspath(spill_dir),
            prefix="craftnet-import-",
        )
        if spilling
        else contextlib.nullcontext(stream)
    ) as spill:
        staged: dict[bytes, _Staged] = {}
        needs: dict[bytes, str] = {}  # chunk CID -> where the file node that lists it is
        duplicates = records = 0
        spill_pos = 0
        count = 0
        signatures = _Signatures()
        kept_bytes = 0
        try:
            for section in reader:
                count += 1
                if on_progress is not None:
                    on_progress(reader.position)
                if section.cid.bytes in staged:
                    duplicates += 1
                    continue
                try:
                    checked, record = _check_block(section, defer_signature=True)
                except BundleError:
                    raise
                except CraftnetError as exc:
                    raise BundleError(f"{section.where()}: {exc}") from exc
                if record is not None:
                    signatures.add(section.where, record, checked.kind == "document")
                if spilling:
                    spill.write(section.data)
                    at = spill_pos
                    spill_pos += len(section.data)
                else:
                    assert base is not None
                    at = base + reader.position - len(section.data)
                keep = record is not None and kept_bytes + len(section.data) <= KEEP_RECORDS_BYTES
                if keep:
                    kept_bytes += len(section.data)
                staged[section.cid.bytes] = _Staged(
                    section.cid, at, len(section.data), checked.kind, record if keep else None
                )
                if checked.kind != "block":
                    records += 1
                if checked.needs:
                    where = section.where()
                    for needed in checked.needs:
                        needs.setdefault(needed.bytes, where)
        except CraftnetError:
            signatures.check()  # a bad signature earlier in the bundle is named first
            raise
        signatures.check()
        require_roots(reader.roots, staged)
        _check_complete(store, staged, needs)
        new_blocks, new_records, repaired, record_cids = _commit(
            store, spill, staged, reader.roots
        )
        if base is not None:
            stream.seek(base + reader.position)  # where reading the bundle left it
    return ImportReport(
        roots=reader.roots,
        blocks=count,
        bytes=reader.position,
        records=records,
        new_blocks=new_blocks,
        new_records=new_records,
        duplicates=duplicates,
        repaired=repaired,
        record_cids=record_cids,
    )


def require_roots(roots: Sequence[Cid], staged: Container[bytes]) -> None:
    """Every root the header names must be in the bundle (``staged``: CIDs as bytes)."""
    absent = [root for root in roots if root.bytes not in staged]
    if absent:
        raise BundleError(
            f"the header names root {absent[0]} but the bundle does not contain it"
            + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
        )


def _check_complete(
    store: Store, staged: dict[bytes, _Staged], needs: dict[bytes, str]
) -> None:
    """Every chunk a bundled file node lists must be in the bundle or already here.

    A cut-short bundle can end exactly between two sections; without this check it
    would import a file whose last chunks never arrived.
    """
    with store.read() as txn:
        for key, where in needs.items():
            if key not in staged and not txn.has("blocks", key):
                raise BundleError(
                    f"{where}: the file lists {Cid.from_bytes(key)}, which is neither "
                    "in the bundle nor in this archive (bundle cut short?)"
                )


def _file_offset(stream: IO[bytes]) -> int | None:
    """Where a stream that can be read again stands now, or None (a pipe, a socket)."""
    try:
        if not stream.seekable():
            return None
        return stream.tell()
    except (OSError, ValueError, AttributeError):
        return None


def _staged_length(item: _Staged) -> int:
    return item.length


def _read_staged(spill: IO[bytes], item: _Staged) -> bytes:
    # The bundle (or the spill file) may change or fail between the check and the
    # commit: every reader of what is read back checks it against the CID again
    # (put_block, from_block).
    spill.seek(item.offset)
    data = spill.read(item.length)
    if len(data) != item.length:
        raise BundleError(f"staged copy of {item.cid} is cut short (did the bundle change?)")
    return data


def _commit(
    store: Store, spill: IO[bytes], staged: dict[bytes, _Staged], roots: Sequence[Cid]
) -> tuple[int, int, int, tuple[Cid, ...]]:
    """Write the checked blocks: plain blocks in batches, then records, indexes and pins.

    Document operations go last, through :class:`Documents`, which keeps each
    document's merged state in the same transaction as its operation records. A block
    this store holds damaged is replaced by the bundle's verified copy (counted in
    ``repaired``, the third value returned).
    """
    new_blocks = repaired = 0
    session = os.urandom(files.SESSION_LEN)
    plain = [item for item in staged.values() if item.kind == "block"]
    for batch in files.batches_by_size(plain, _staged_length, COMMIT_BATCH_BYTES):
        payload = [(item.cid, _read_staged(spill, item)) for item in batch]

        def put_batch(txn: WriteTxn, payload: list[tuple[Cid, bytes]] = payload) -> list[str]:
            files.stage_blocks(txn, session, (cid.bytes for cid, _ in payload))
            return [blocks.put_or_repair(txn, cid, data) for cid, data in payload]

        # Not flushed one by one: the final, durable commit of the records flushes them,
        # and a power cut before it loses only blocks nothing refers to yet.
        outcomes = store.transact(put_batch, durable=False)
        new_blocks += outcomes.count("new")
        repaired += outcomes.count("repaired")

    record_items = [item for item in staged.values() if item.kind == "record"]
    document_items = [item for item in staged.values() if item.kind == "document"]
    record_set = {item.cid.bytes for item in (*record_items, *document_items)}
    pin_roots = [root for root in roots if root.bytes not in record_set]

    def put_records(txn: WriteTxn) -> tuple[int, int, int]:
        before = txn.count("blocks")
        # Records past the budget kept parsed are read back one at a time, so a bundle
        # of many records never sits in memory whole. Signatures and schemas were
        # checked while staging; put_many keeps the reconcile index and the feed.
        records_in = (
            item.record or Record.from_block(_read_staged(spill, item), item.cid)
            for item in record_items
        )
        new = index.put_many(txn, records_in)
        # A record this hub holds may have had its block damaged: the bundle's copy heals it.
        fixed = sum(
            blocks.put_or_repair(
                txn, item.cid, item.record.block if item.record else _read_staged(spill, item)
            )
            == "repaired"
            for item, added in zip(record_items, new, strict=True)
            if not added
        )
        added = sum(new)
        for root in pin_roots:
            if blocks.get_pin(txn, root) is None:  # keep the name of an existing pin
                blocks.pin(txn, root, "import")
        files.clear_stage(txn, session)
        return added, txn.count("blocks") - before, fixed

    new_records, record_blocks, fixed = store.transact(put_records)
    repaired += fixed
    operations = [
        item.record or Record.from_block(_read_staged(spill, item), item.cid)
        for item in document_items
    ]
    if operations:
        with store.read() as txn:
            known = sum(index.has_record(txn, record.cid) for record in operations)

        def repair_known(txn: WriteTxn) -> int:
            outcomes = (
                blocks.put_or_repair(txn, op.cid, op.block)
                for op in operations
                if index.has_record(txn, op.cid)
            )
            return sum(outcome == "repaired" for outcome in outcomes)

        repaired += store.transact(repair_known) if known else 0
        Documents(store).ingest(operations, verify=False)
        new_records += len(operations) - known
        record_blocks += len(operations) - known
    cids = tuple(item.cid for item in (*record_items, *document_items))
    return new_blocks + record_blocks, new_records, repaired, cids


# For importers that stage blocks their own way (archive.receive: resumable imports and
# split bundles), the same staged form and commit.
Staged = _Staged
commit_staged = _commit
read_staged = _read_staged
