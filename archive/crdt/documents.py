"""Documents kept in a store: ingest operations, keep the merged state cached, read it.

Everything a document needs lives in the store's ``doc_*`` databases, written in the same
transaction as the operation records themselves (stored and indexed like every record,
via :func:`craftnet.archive.index.put_record`):

============ ============================================ =================================
database     key                                          value
============ ============================================ =================================
docs         doc                                          DAG-CBOR ``{kind, owner, seq}``
doc_ops      doc op                                       state byte, ts(8), reason (UTF-8)
doc_heads    doc op                                       empty
doc_wait     doc missing-op waiting-op                    empty
doc_log      doc seq(8)                                   op, then 1 (applied) or 0 (rejected)
doc_deferred wall-ms(8) doc op                            empty
doc_state    doc                                          DAG-CBOR ``{seq, state}`` snapshot
doc_view     doc                                          DAG-CBOR of the view readers see
============ ============================================ =================================

(``doc`` and ``op`` are 36-byte binary CIDs.) The merged state is cached in memory and
updated incrementally as operations arrive; the view is rewritten at the end of every
write transaction, so a read is one lookup. A snapshot of the state is saved every so
often (when the log has grown by half since the last one, so saving stays a small share
of the work); a state not in memory is loaded from its snapshot plus the log after it.

Within a transaction the operations are delivered in memory, and what they leave is
written at its end, a call into the store per database: the records with their index
entries (:func:`~craftnet.archive.index.put_in_turn`, which stores exactly what a
:func:`~craftnet.archive.index.put_record` per operation would), then per document the
statuses, log entries and head changes, the view, the summary and a snapshot when due.
So what a transaction stores does not depend on how operations were cut into
transactions (but for when snapshots are taken).

A :class:`Documents` object is not thread-safe: give each thread its own, or a lock.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, Cid
from craftnet.archive.crdt.causal import (
    DEFAULT_MAX_DRIFT_MS,
    DONE,
    Outcome,
    State,
    Status,
    deliver,
    redeliver,
    verified_op,
)
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import (
    BadOpSignature,
    EditError,
    InvalidOp,
    NotAnEditor,
    UnknownDocument,
)
from craftnet.archive.crdt.ops import (
    AddMember,
    Change,
    DeleteItem,
    DeleteText,
    InsertItem,
    InsertText,
    Op,
    RemoveMember,
    SetField,
    genesis_record,
    op_record,
    parse_op,
)
from craftnet.archive.crdt.state import DocState, fast_decode, fast_encode, gc_paused
from craftnet.archive.errors import IntegrityError, RecordError
from craftnet.archive.hlc import HybridClock, wall_ms
from craftnet.archive.index import put_in_turn
from craftnet.archive.records import Record, verify_records
from craftnet.archive.store import ReadTxn, Store, WriteTxn, prefix_end
from craftnet.identity.keys import PrivateKey

_U64: Final = struct.Struct(">Q")
_STATES: Final[tuple[State, ...]] = ("applied", "rejected", "pending", "deferred")
_CODE: Final = {name: i for i, name in enumerate(_STATES)}
SNAPSHOT_MIN: Final = 500  # operations between snapshots, at least


def _status_bytes(status: Status) -> bytes:
    return bytes([_CODE[status.state]]) + _U64.pack(status.ts) + status.reason.encode()


def _status(raw: bytes) -> Status:
    return Status(_STATES[raw[0]], _U64.unpack_from(raw, 1)[0], raw[9:].decode())


@dataclass(slots=True)
class _Cached:
    state: DocState
    seq: int  # log entries written
    snap_seq: int  # log entries covered by the saved snapshot
    view_dirty: bool = False


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One operation of a document: who, when, what it changed and what became of it."""

    cid: Cid
    author: str
    ts: int
    status: State
    reason: str
    parents: tuple[Cid, ...]
    changes: tuple[str, ...] = field(default=())


class _Batch:
    """What one write transaction of :class:`Documents` holds: a ledger per document
    touched, and the operation records received but not written yet.

    Records are written together at the end of the transaction (:meth:`write`), in the
    order they were received, with :func:`put_in_turn`: the same entries as a
    :func:`put_record` each, for a fraction of the calls into the store.
    """

    __slots__ = ("docs", "ledgers", "ops", "txn")

    def __init__(self, docs: Documents, txn: WriteTxn) -> None:
        self.docs = docs
        self.txn = txn
        self.ledgers: dict[Cid, _TxnLedger] = {}
        self.ops: dict[Cid, Op] = {}  # received in this transaction, in order

    def ledger(self, doc: Cid) -> _TxnLedger:
        """The ledger of ``doc`` in this transaction (loading its state once)."""
        ledger = self.ledgers.get(doc)
        if ledger is None:
            ledger = self.ledgers[doc] = _TxnLedger(self, doc)
        return ledger

    def write(self) -> None:
        """Store the records received, then each document's view, summary and snapshot."""
        if self.ops:
            put_in_turn(self.txn, [op.record for op in self.ops.values()])
            self.ops.clear()
        for ledger in self.ledgers.values():
            ledger.finish()


class _TxnLedger:
    """The causal-delivery ledger of one document inside one write transaction."""

    def __init__(self, batch: _Batch, doc: Cid) -> None:
        docs = batch.docs
        txn = batch.txn
        self.received = batch.ops  # not the batch itself: no reference cycle to collect
        self.docs = docs
        self.txn = txn
        self.doc = doc
        self.prefix = doc.bytes
        self.cached: _Cached | None = docs._load(txn, doc)
        # statuses read or written in this transaction; most ops' parents were just applied
        self._statuses: dict[Cid, Status | None] = {}
        # whether any operation (of any document) waits: if none, no lookup is needed
        self._may_wait = bool(txn.count("doc_wait"))
        # Statuses, log entries and head changes are written together at the end (write):
        # one call into the store per database rather than four or five per operation.
        # Nothing reads them back in the transaction: status() answers from _statuses.
        self._status_rows: dict[bytes, bytes] = {}  # doc_ops key -> its latest value
        self._log_rows: list[tuple[bytes, bytes]] = []
        self._new_heads: dict[bytes, None] = {}  # doc_heads keys to put, in order
        self._old_heads: dict[bytes, None] = {}  # and to delete (heads before this txn)

    def status(self, cid: Cid) -> Status | None:
        if cid in self._statuses:
            return self._statuses[cid]
        raw = self.txn.get("doc_ops", self.prefix + cid.bytes)
        status = None if raw is None else _status(raw)
        self._statuses[cid] = status
        return status

    def set_status(self, op: Op, status: Status) -> None:
        self._statuses[op.cid] = status
        self._status_rows[self.prefix + op.cid.bytes] = _status_bytes(status)

    def save_op(self, op: Op) -> None:
        # Written with the others at the end of the transaction (_Batch.write): nothing
        # reads an operation's block before then but load_op, which looks here first.
        self.received.setdefault(op.cid, op)

    def load_op(self, cid: Cid) -> Op:
        op = self.received.get(cid)
        return op if op is not None else self.docs._op(self.txn, cid)

    def wait(self, dep: Cid, waiter: Cid) -> None:
        self.txn.put("doc_wait", self.prefix + dep.bytes + waiter.bytes, b"")
        self._may_wait = True

    def waiters(self, dep: Cid) -> list[Cid]:
        if not self._may_wait:
            return []  # the common case: nothing is pending anywhere
        start = self.prefix + dep.bytes
        keys = [key for key, _ in self.txn.iterate("doc_wait", start, prefix_end(start))]
        for key in keys:
            self.txn.delete("doc_wait", key)
        return [Cid.from_bytes(key[2 * CID_BYTES_LEN :]) for key in keys]

    def defer(self, op: Op) -> None:
        self.txn.put("doc_deferred", _U64.pack(wall_ms(op.ts)) + self.prefix + op.cid.bytes, b"")

    def state(self) -> DocState | None:
        return None if self.cached is None else self.cached.state

    def start(self, state: DocState) -> None:
        self.cached = _Cached(state, 0, 0, True)
        self.docs._remember(self.doc, self.cached)

    def done(self, op: Op, applied: bool) -> None:
        cached = self.cached
        if cached is None:  # the genesis was rejected: nothing can be applied
            return
        prefix = self.prefix
        head = prefix + op.cid.bytes
        self._new_heads[head] = None
        self._old_heads.pop(head, None)
        for parent in op.parents:
            key = prefix + parent.bytes
            if key in self._new_heads:  # a head only since this transaction: never written
                del self._new_heads[key]
            else:
                self._old_heads[key] = None
        self._log_rows.append((prefix + _U64.pack(cached.seq), op.cid.bytes + bytes([applied])))
        cached.seq += 1
        cached.view_dirty = cached.view_dirty or applied

    def write(self) -> None:
        """Write the statuses, log entries and head changes of this transaction."""
        txn = self.txn
        if self._status_rows:
            txn.put_all("doc_ops", list(self._status_rows.items()))
            self._status_rows.clear()
        if self._log_rows:
            txn.put_all("doc_log", self._log_rows)
            self._log_rows = []
        # The new heads go in before the old ones come out: deleting a document's only
        # head first would empty the database when it holds one document, and LMDB
        # frees an emptied root page outright (it is still written at commit) and takes
        # a new page for the next key.
        if self._new_heads:
            txn.put_all("doc_heads", [(key, b"") for key in self._new_heads])
            self._new_heads.clear()
        for key in self._old_heads:
            txn.delete("doc_heads", key)
        self._old_heads.clear()

    def finish(self) -> None:
        """Write the view, the document's summary and, when due, a snapshot."""
        self.write()
        cached = self.cached
        if cached is None:
            return
        txn = self.txn
        state = cached.state
        txn.put(
            "docs",
            self.prefix,
            codec.encode({"kind": state.kind, "owner": state.acl.owner, "seq": cached.seq}),
        )
        if cached.view_dirty:
            txn.put("doc_view", self.prefix, state.view_bytes())
            cached.view_dirty = False
        since = cached.seq - cached.snap_seq
        if since and since >= max(self.docs.snapshot_min, cached.seq // 2):
            self.docs._snapshot(txn, self.doc, cached)


class Documents:
    """The CRDT documents of one store."""

    def __init__(
        self,
        store: Store,
        *,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
        cache_size: int = 16,
        snapshot_min: int = SNAPSHOT_MIN,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.max_drift_ms = max_drift_ms
        self.cache_size = cache_size
        self.snapshot_min = snapshot_min
        self._clock = clock  # wall milliseconds for the drift check; None: the system clock
        self._cache: OrderedDict[Cid, _Cached] = OrderedDict()
        self._dirty: set[Cid] = set()

    # -- internals ----------------------------------------------------------------------

    def _now(self) -> int:
        return self._clock() if self._clock is not None else HybridClock().tick() >> 16

    def _op(self, txn: ReadTxn, cid: Cid) -> Op:
        block = txn.get("blocks", cid.bytes)
        if block is None:
            raise IntegrityError(f"operation {cid} is logged but its block is missing")
        return parse_op(Record.from_block(block))

    def _remember(self, doc: Cid, cached: _Cached) -> None:
        self._cache[doc] = cached
        self._cache.move_to_end(doc)
        self._dirty.add(doc)
        while len(self._cache) > self.cache_size:
            old, _ = self._cache.popitem(last=False)
            self._dirty.discard(old)

    def _load(self, txn: ReadTxn, doc: Cid) -> _Cached | None:
        """The cached state of ``doc``, loading snapshot + log if it is not in memory."""
        meta = txn.get("docs", doc.bytes)
        seq = None if meta is None else codec.decode(meta)["seq"]
        cached = self._cache.get(doc)
        if cached is not None:
            if cached.seq == seq:
                self._cache.move_to_end(doc)
                self._dirty.add(doc)
                return cached
            # another Documents object (or process) wrote to this document since
            del self._cache[doc]
        if seq is None:
            return None
        state: DocState | None = None
        snap_seq = 0
        raw = txn.get("doc_state", doc.bytes)
        if raw is not None:
            snapshot = fast_decode(raw)
            if not isinstance(snapshot, dict) or not isinstance(snapshot.get("state"), bytes):
                raise IntegrityError(
                    f"the saved state of {doc} is damaged; run 'craftnet doc rebuild {doc}'"
                )
            state, snap_seq = DocState.decode(snapshot["state"]), snapshot["seq"]
        state = self._replay(txn, doc, state, snap_seq)
        if state is None:
            return None
        cached = _Cached(state, seq, snap_seq)
        self._remember(doc, cached)
        return cached

    def _replay(
        self, txn: ReadTxn, doc: Cid, state: DocState | None, after: int
    ) -> DocState | None:
        """Apply the logged operations from position ``after`` on (no signature checks)."""
        start = doc.bytes + _U64.pack(after)
        for _key, value in txn.iterate("doc_log", start, prefix_end(doc.bytes)):
            if not value[CID_BYTES_LEN]:
                continue  # rejected: it changed nothing
            op = self._op(txn, Cid.from_bytes(value[:CID_BYTES_LEN]))
            if state is None:
                state = DocState.from_genesis(op)
            else:
                state.apply(op)
        return state

    def _snapshot(self, txn: WriteTxn, doc: Cid, cached: _Cached) -> None:
        snapshot = {"seq": cached.seq, "state": cached.state.encode()}
        txn.put("doc_state", doc.bytes, fast_encode(snapshot))
        cached.snap_seq = cached.seq

    def _purge(self) -> None:
        """Forget states touched by a transaction that did not commit."""
        for doc in self._dirty:
            self._cache.pop(doc, None)
        self._dirty.clear()

    def _transact(self, fn: Callable[[_Batch], Any]) -> Any:
        """Run ``fn`` in a write transaction; in-memory states it touched stay valid only
        if the transaction commits (a retried or failed one makes them reload)."""

        def run(txn: WriteTxn) -> Any:
            self._purge()
            batch = _Batch(self, txn)
            with gc_paused():
                result = fn(batch)
                batch.write()
            return result

        result = self.store.transact(run)
        self._dirty.clear()
        return result

    # -- writing ------------------------------------------------------------------------

    def ingest(
        self,
        records: Iterable[Record | bytes],
        *,
        now_ms: int | None = None,
        verify: bool = True,
        strict: bool = True,
    ) -> list[Outcome]:
        """Receive document records (genesis or operations) in one transaction.

        Every record is parsed and its signature checked first. With ``strict`` the first
        bad one raises (:class:`InvalidOp`, :class:`BadOpSignature`, :class:`OpTooLarge`)
        and nothing is written; otherwise bad ones are left out, each reported as an
        ``invalid`` outcome with the reason, and the rest is received (what a sync from
        a peer wants). ``now_ms`` is this hub's wall clock for the drift check.
        """
        # One pause of the cycle collector for the whole call (many small objects while
        # the caller may hold a large heap). The end of a pause is followed at once by a
        # collection of everything allocated during it; a pause for the parse and another
        # for the transaction made two per call, and with them came a full collection
        # (0.5 s, one in the bench's 100 calls of 1,000 operations; none since).
        with gc_paused():
            return self._ingest(records, now_ms=now_ms, verify=verify, strict=strict)

    def _ingest(
        self,
        records: Iterable[Record | bytes],
        *,
        now_ms: int | None,
        verify: bool,
        strict: bool,
    ) -> list[Outcome]:
        # Parse everything, then check the signatures together (on all cores for a big
        # batch), then take verdicts in input order: the first bad record is the one a
        # strict ingest raises for, as if each had been checked in turn.
        parsed: list[Op | InvalidOp] = []
        items = list(records)
        for item in items:
            try:
                try:
                    record = item if isinstance(item, Record) else Record.from_block(item)
                except RecordError as exc:
                    raise InvalidOp(f"not a document record: {exc}") from exc
                parsed.append(verified_op(record, verify=False))
            except InvalidOp as exc:
                parsed.append(exc)
        if verify:
            good = [op for op in parsed if isinstance(op, Op)]
            bad = {
                op.cid: BadOpSignature(f"operation {op.cid} is not validly signed: {error}")
                for op, error in zip(good, verify_records([op.record for op in good]), strict=True)
                if error is not None
            }
            if bad:
                parsed = [bad.get(op.cid, op) if isinstance(op, Op) else op for op in parsed]
        ops: list[Op] = []
        invalid: list[Outcome] = []
        for item, outcome in zip(items, parsed, strict=True):
            if isinstance(outcome, Op):
                ops.append(outcome)
                continue
            if strict:
                raise outcome
            raw = item.block if isinstance(item, Record) else bytes(item)
            invalid.append(Outcome(Cid.of(raw, DAG_CBOR), "invalid", str(outcome)))
        now = self._now() if now_ms is None else now_ms

        def fn(batch: _Batch) -> list[Outcome]:
            outcomes: list[Outcome] = []
            for op in ops:
                outcomes.extend(deliver(batch.ledger(op.doc), op, now, self.max_drift_ms))
            return outcomes

        result: list[Outcome] = self._transact(fn) if ops else []
        return invalid + result

    def release(self, now_ms: int | None = None) -> list[Outcome]:
        """Apply deferred operations whose time has come (call it now and then)."""
        now = self._now() if now_ms is None else now_ms
        limit = _U64.pack(max(0, now + self.max_drift_ms + 1))

        def fn(batch: _Batch) -> list[Outcome]:
            txn = batch.txn
            due = [key for key, _ in txn.iterate("doc_deferred", b"", limit)]
            by_doc: dict[Cid, list[Op]] = {}
            for key in due:
                txn.delete("doc_deferred", key)
                doc = Cid.from_bytes(key[8 : 8 + CID_BYTES_LEN])
                by_doc.setdefault(doc, []).append(
                    self._op(txn, Cid.from_bytes(key[8 + CID_BYTES_LEN :]))
                )
            outcomes: list[Outcome] = []
            for doc, ops in sorted(by_doc.items()):
                outcomes.extend(redeliver(batch.ledger(doc), ops, now, self.max_drift_ms))
            return outcomes

        result: list[Outcome] = self._transact(fn)
        return result

    def create(
        self,
        key: PrivateKey,
        kind: str,
        build: Callable[[ChangeBuilder], object] | None = None,
        *,
        mode: str = "owner",
        editors: Iterable[str] = (),
        clock: HybridClock | None = None,
    ) -> Record:
        """Start a new document owned by ``key``; ``build`` fills in its first fields."""
        builder = ChangeBuilder(None)
        if build is not None:
            build(builder)
        ts = (clock or HybridClock()).tick()
        record = genesis_record(key, kind, builder.build(), mode=mode, editors=editors, ts=ts)
        self._expect_applied(self.ingest([record], verify=False), record)
        return record

    def edit(
        self,
        key: PrivateKey,
        doc: Cid,
        build: Callable[[ChangeBuilder], object],
        *,
        clock: HybridClock | None = None,
    ) -> Record:
        """Make, sign and apply an edit of ``doc``: ``build`` adds changes to a builder."""
        state = self.state(doc)
        refusal = state.refusal(key.did)
        if refusal is not None:
            raise NotAnEditor(f"cannot edit {doc}: {refusal}")
        builder = ChangeBuilder(state)
        build(builder)
        changes = builder.build()
        if not changes:
            raise EditError("nothing to change")
        heads = self.heads(doc)
        latest = 0
        for head in heads:
            status = self.status(doc, head)
            latest = max(latest, 0 if status is None else status.ts)
        clock = clock or HybridClock()
        ts = clock.observe(latest)
        record = op_record(key, doc, heads, changes, ts=ts)
        self._expect_applied(self.ingest([record], verify=False), record)
        return record

    def _expect_applied(self, outcomes: list[Outcome], record: Record) -> None:
        mine = [o for o in outcomes if o.cid == record.cid]
        if not mine or mine[0].status != "applied":
            reason = mine[0].reason if mine else "not processed"
            raise EditError(f"the edit was not applied: {reason}")

    # -- reading ------------------------------------------------------------------------

    def _require(self, txn: ReadTxn, doc: Cid) -> None:
        if not txn.has("docs", doc.bytes):
            raise UnknownDocument(
                f"no document {doc} here (is it a document's genesis CID? has it synced?)"
            )

    def view_bytes(self, doc: Cid) -> bytes:
        """The cached view of ``doc`` as canonical DAG-CBOR bytes (one lookup)."""
        with self.store.read() as txn:
            raw = txn.get("doc_view", doc.bytes)
            if raw is None:
                self._require(txn, doc)
                raise IntegrityError(
                    f"document {doc} has no cached view; run 'craftnet doc rebuild {doc}'"
                )
            return raw

    def view(self, doc: Cid) -> dict[str, Any]:
        """What a reader sees: ``{kind, fields, conflicts}``."""
        value = fast_decode(self.view_bytes(doc))
        if not isinstance(value, dict) or not {"kind", "fields", "conflicts"} <= value.keys():
            raise IntegrityError(
                f"the cached view of {doc} is damaged; run 'craftnet doc rebuild {doc}'"
            )
        return value

    def state(self, doc: Cid) -> DocState:
        """The merged state of ``doc`` (from memory, or snapshot plus recent log)."""
        self._purge()
        with self.store.read() as txn:
            cached = self._load(txn, doc)
            self._dirty.discard(doc)  # loaded from committed data: valid as it is
            if cached is None:
                self._require(txn, doc)
                raise UnknownDocument(f"document {doc} has no applied genesis here")
            return cached.state

    def refold(self, doc: Cid) -> DocState:
        """Recompute the state of ``doc`` from its whole log (for checking the cache)."""
        with self.store.read() as txn:
            self._require(txn, doc)
            state = self._replay(txn, doc, None, 0)
        if state is None:
            raise UnknownDocument(f"document {doc} has no applied genesis here")
        return state

    def rebuild(self, doc: Cid) -> None:
        """Recompute ``doc`` from its log and rewrite its cached view and snapshot."""
        self._purge()
        self._cache.pop(doc, None)
        state = self.refold(doc)

        def fn(batch: _Batch) -> None:
            txn = batch.txn
            raw = txn.get("docs", doc.bytes)
            seq = 0 if raw is None else int(codec.decode(raw)["seq"])
            cached = _Cached(state, seq, 0, True)
            self._remember(doc, cached)
            txn.put("doc_view", doc.bytes, state.view_bytes())
            self._snapshot(txn, doc, cached)

        self._transact(fn)

    def checkpoint(self, doc: Cid) -> None:
        """Save a snapshot of the state of ``doc`` now (e.g. before shutting down)."""

        def fn(batch: _Batch) -> None:
            cached = self._load(batch.txn, doc)
            if cached is not None:
                self._snapshot(batch.txn, doc, cached)

        self._transact(fn)

    def heads(self, doc: Cid) -> list[Cid]:
        """The heads of ``doc``: done operations no other done operation follows."""
        with self.store.read() as txn:
            self._require(txn, doc)
            start = doc.bytes
            return [
                Cid.from_bytes(key[CID_BYTES_LEN:])
                for key, _ in txn.iterate("doc_heads", start, prefix_end(start))
            ]

    def status(self, doc: Cid, op: Cid) -> Status | None:
        """The status of operation ``op`` in ``doc``, or None if it never arrived."""
        with self.store.read() as txn:
            raw = txn.get("doc_ops", doc.bytes + op.bytes)
            return None if raw is None else _status(raw)

    def missing(self, doc: Cid) -> list[Cid]:
        """Operations that received ones wait for but that this hub does not hold."""
        with self.store.read() as txn:
            start = doc.bytes
            wanted = {
                key[CID_BYTES_LEN : 2 * CID_BYTES_LEN]
                for key, _ in txn.iterate("doc_wait", start, prefix_end(start))
            }
            return sorted(
                Cid.from_bytes(raw) for raw in wanted if not txn.has("doc_ops", start + raw)
            )

    def documents(self) -> list[tuple[Cid, str, str]]:
        """Every document held: ``(CID, kind, owner)``."""
        with self.store.read() as txn:
            out = []
            for key, value in txn.iterate("docs"):
                meta = codec.decode(value)
                out.append((Cid.from_bytes(key), meta["kind"], meta["owner"]))
            return out

    def history(self, doc: Cid) -> list[HistoryEntry]:
        """Every operation of ``doc``: done ones in the order applied here, then waiting ones."""
        with self.store.read() as txn:
            self._require(txn, doc)
            start = doc.bytes
            entries: list[HistoryEntry] = []
            seen: set[bytes] = set()
            for _key, value in txn.iterate("doc_log", start, prefix_end(start)):
                raw = value[:CID_BYTES_LEN]
                seen.add(raw)
                entries.append(self._entry(txn, doc, Cid.from_bytes(raw)))
            waiting = [
                key[CID_BYTES_LEN:]
                for key, value in txn.iterate("doc_ops", start, prefix_end(start))
                if key[CID_BYTES_LEN:] not in seen and _status(value).state not in DONE
            ]
            rest = [self._entry(txn, doc, Cid.from_bytes(raw)) for raw in waiting]
            entries.extend(sorted(rest, key=lambda e: (e.ts, e.cid)))
            return entries

    def _entry(self, txn: ReadTxn, doc: Cid, cid: Cid) -> HistoryEntry:
        op = self._op(txn, cid)
        raw = txn.get("doc_ops", doc.bytes + cid.bytes)
        status = _status(raw) if raw is not None else Status("pending", op.ts, "")
        return HistoryEntry(
            cid=cid,
            author=op.author,
            ts=op.ts,
            status=status.state,
            reason=status.reason,
            parents=op.parents,
            changes=tuple(describe(change) for change in op.changes),
        )

    def blame(self, doc: Cid) -> dict[str, Any]:
        """For every field: the operation (author, time) that wrote it, and losing values."""
        return self.state(doc).blame()


def describe(change: Change) -> str:
    """A one-line, human description of a change."""
    if isinstance(change, SetField):
        return f"set {change.field} = {change.value!r:.60}"
    if isinstance(change, AddMember):
        return f"add {change.value!s:.60} to {change.field}"
    if isinstance(change, RemoveMember):
        return f"remove {change.value!s:.60} from {change.field}"
    if isinstance(change, InsertItem):
        return f"insert into {change.field}: {change.value!s:.60}"
    if isinstance(change, DeleteItem):
        return f"delete an item of {change.field}"
    if isinstance(change, InsertText):
        where = change.field if change.item is None else f"an item of {change.field}"
        return f"type {change.text!r:.60} in {where}"
    assert isinstance(change, DeleteText)
    where = change.field if change.item is None else f"an item of {change.field}"
    count = sum(r[3] for r in change.ranges)
    return f"delete {count} character(s) in {where}"
