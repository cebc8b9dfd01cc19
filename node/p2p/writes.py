"""Write batching: the blocks the engine fetched, into the store in few transactions.

Every :class:`~craftnet.protocol.events.StoreBlocks` the engine emits is collected and
written, once per batch, in ONE store transaction together with the want list, so a
crash (even SIGKILL) leaves a store whose want list names everything still missing;
the engine then hears ``BlocksStored`` (or ``StoreFailed``). Writes run in a
worker thread, one batch at a time and in order: an fsync costs milliseconds, and the
trio thread must keep reading and answering meanwhile. A batch that added nothing to
the want list leaves the saved one as it was, for up to :data:`WANTS_REFRESH_S`: it still
names every block wanted (and some stored since, which a restart skips); re-encoding a
list of thousands with every batch made a long catch-up quadratic. While more than
:data:`MAX_PENDING_BYTES` wait to be written, reading from peers waits (:meth:`room`).

Document records (CRDT genesis and operations) are ingested through
:class:`~craftnet.archive.crdt.documents.Documents`; records ahead of our clock are
released by :meth:`BlockWriter.release_documents` when their time has come.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

import trio

from craftnet.archive.blocks import put_block
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.ops import GENESIS_TYPE as DOC_GENESIS
from craftnet.archive.crdt.ops import OP_TYPE as DOC_OP
from craftnet.archive.errors import ArchiveError
from craftnet.archive.index import has_record, put_record
from craftnet.archive.meta import get_meta, put_meta
from craftnet.archive.records import Record
from craftnet.archive.store import Store, WriteTxn
from craftnet.errors import CraftnetError
from craftnet.protocol.engine import SyncEngine
from craftnet.protocol.errors import ProtocolError
from craftnet.protocol.events import BlocksStored, Event, StoreBlocks, StoredBlock, StoreFailed

log = logging.getLogger("craftnet.p2p")

WANTS_KEY: Final = b"p2p.wants"
FLUSH_BYTES: Final = 16 * 1024 * 1024  # write at once when this much waits ...
FLUSH_DELAY: Final = 0.02  # ... else within this many seconds (one fsync per batch)
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024  # reading waits while this much is unwritten
WANTS_REFRESH_S: Final = 5.0  # the saved want list is rewritten at least this often
DOCUMENT_TYPES: Final = frozenset({DOC_GENESIS, DOC_OP})


class BlockWriter:
    """Collects the engine's ``StoreBlocks`` and writes them in batches with the want list."""

    def __init__(
        self, *, engine: SyncEngine, store: Store, handle: Callable[[Event], object]
    ) -> None:
        """``handle`` feeds the engine what became of a batch."""
        self.engine = engine
        self.store = store
        self.handle = handle
        # Used only in the writer (one batch at a time, under lock).
        self.documents = Documents(store)
        self.stored_blocks = 0
        self.stored_records = 0
        # Records this hub stored from peers (the change feed skips them: the engine
        # announces those anew once whole).
        self.own: set[Cid] = set()
        # Held while a batch is written (and by whoever must see a batch whole).
        self.lock = trio.Lock()
        self.running = False  # a flusher task writes; else writes happen at once
        self._pending: list[StoreBlocks] = []
        self._pending_bytes = 0
        self._writing = 0  # blocks of the batch a worker thread is writing now
        self._flush_wake = trio.Event()
        self._flush_urgent = trio.Event()
        self._drained = trio.Event()
        # engine.wants_added and the time when the saved want list was last written.
        self._wants_saved: tuple[int, float] | None = None

    def add(self, command: StoreBlocks) -> bool:
        """Queue the blocks of ``command``; True when they are worth writing at once."""
        self._pending.append(command)
        self._pending_bytes += sum(len(b.data) for b in command.blocks)
        # Records are small and someone may be waiting for them: no delay.
        return any(b.ts is not None for b in command.blocks)

    @property
    def unwritten(self) -> int:
        """Blocks received but not yet in the store (queued or being written)."""
        return sum(len(command.blocks) for command in self._pending) + self._writing

    def kick(self, urgent: bool) -> None:
        """Write what is queued: soon (at once if ``urgent`` or much waits)."""
        if not self._pending:
            return
        if not self.running:
            self.flush_now()
            return
        self._flush_wake.set()
        if urgent or self._pending_bytes >= FLUSH_BYTES:
            self._flush_urgent.set()

    async def room(self) -> None:
        """Return once the store keeps up (reading from peers waits here)."""
        while self._pending_bytes > MAX_PENDING_BYTES:
            await self._drained.wait()  # the disk is slower than the network

    async def flusher(self) -> None:
        """Write queued batches in a worker thread, one at a time, in order (a task)."""
        while True:
            await self._flush_wake.wait()
            with trio.move_on_after(FLUSH_DELAY):
                await self._flush_urgent.wait()
            self._flush_wake = trio.Event()
            self._flush_urgent = trio.Event()
            while self._pending:
                async with self.lock:
                    taken = self._pending
                    blocks, wants, mark = self._take_batch()
                    self._writing = len(blocks)
                    try:
                        new = await trio.to_thread.run_sync(self._write_batch, blocks, wants)
                    except CraftnetError:
                        self._write_failed(blocks)
                    except trio.Cancelled:
                        # Cancelled before the thread started (to_thread checks first; a
                        # started write is waited for): give the batch back, so the
                        # write on the way out (flush_now) stores it.
                        self._pending[:0] = taken
                        self._pending_bytes += sum(len(b.data) for b in blocks)
                        raise
                    else:
                        self._written(blocks, new, mark)
                    finally:
                        self._writing = 0
                self._drained.set()
                self._drained = trio.Event()

    def _take_batch(
        self,
    ) -> tuple[list[StoredBlock], bytes | None, tuple[int, float] | None]:
        """The queued blocks, the want list to save with them (None: the saved one still
        names every wanted block), and what to note once that list is written."""
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        blocks = [block for command in batch for block in command.blocks]
        added, now = self.engine.wants_added, time.monotonic()
        saved = self._wants_saved
        if saved is not None and saved[0] == added and now - saved[1] < WANTS_REFRESH_S:
            return blocks, None, None
        # The want list as it is now: without the blocks of this batch, with their links.
        return blocks, self.engine.export_wants(), (added, now)

    def _write_batch(
        self, blocks: list[StoredBlock], wants: bytes | None
    ) -> list[tuple[int, Cid]]:
        """Write blocks, index entries and the want list in ONE transaction (any thread).

        Document records (CRDT genesis and operations) then go through
        :meth:`Documents.ingest`, which stores them with their document's state in its
        own transaction; if we die in between, they are simply not in ``rec_time`` and
        the next reconcile fetches them again.
        """
        new_records: list[tuple[int, Cid]] = []
        documents: list[Record] = []

        def write(txn: WriteTxn) -> None:
            new_records.clear()
            documents.clear()
            for block in blocks:
                if block.ts is not None:
                    # The engine parsed (and checked) the record from these very bytes;
                    # decoding it again here would hold the GIL its thread needs.
                    record = block.record
                    if record is None or record.cid != block.cid:
                        try:
                            record = Record.from_block(block.data, block.cid)
                        except ArchiveError:
                            put_block(txn, block.cid, block.data, verified=True)
                            continue
                    if record.type in DOCUMENT_TYPES:
                        if not has_record(txn, record.cid):
                            documents.append(record)
                        else:  # known: stored again only if removed as damaged (a repair)
                            put_block(txn, record.cid, block.data, verified=True)
                    elif put_record(txn, record):
                        new_records.append((record.ts, record.cid))
                else:
                    put_block(txn, block.cid, block.data, verified=True)
            if wants is not None:
                put_meta(txn, WANTS_KEY, wants)

        self.store.transact(write)
        if documents:
            new_records += self._ingest_documents(documents)
        return new_records

    def _ingest_documents(self, records: list[Record]) -> list[tuple[int, Cid]]:
        outcomes = self.documents.ingest(records, strict=False)
        refused = {o.cid for o in outcomes if o.status == "invalid"}
        for outcome in outcomes:
            if outcome.status == "invalid":
                log.info("refused document record %s: %s", outcome.cid, outcome.reason)
        # Stored (and indexed) by Documents through put_record, in its own transaction.
        with self.store.read() as txn:
            return [
                (record.ts, record.cid)
                for record in records
                if record.cid not in refused and has_record(txn, record.cid)
            ]

    def _written(
        self,
        blocks: list[StoredBlock],
        new_records: list[tuple[int, Cid]],
        wants_saved: tuple[int, float] | None,
    ) -> None:
        if wants_saved is not None:
            self._wants_saved = wants_saved
        self.stored_blocks += len(blocks)
        self.stored_records += len(new_records)
        self.own.update(cid for _, cid in new_records)
        self.handle(BlocksStored(tuple(block.cid for block in blocks), tuple(new_records)))

    def _write_failed(self, blocks: list[StoredBlock]) -> None:
        log.exception("storing %d received blocks failed; asking for them again", len(blocks))
        self.handle(StoreFailed(tuple(block.cid for block in blocks)))

    def flush_now(self) -> None:
        """Write what is pending in this thread (before start and on the way out)."""
        while self._pending:
            blocks, wants, mark = self._take_batch()
            try:
                new = self._write_batch(blocks, wants)
            except CraftnetError:
                self._write_failed(blocks)
                return
            self._written(blocks, new, mark)

    async def release_documents(self) -> None:
        """Ingest document operations that were ahead of our clock, now due."""
        async with self.lock:
            try:
                await trio.to_thread.run_sync(self.documents.release)
            except CraftnetError:
                log.exception("releasing deferred document operations failed")

    # ------------------------------------------------------------------ want list

    def restore_wants(self) -> None:
        """Load the want list saved in the store into the engine."""
        with self.store.read() as txn:
            raw = get_meta(txn, WANTS_KEY)
        if raw:
            try:
                restored = self.engine.import_wants(raw)
            except ProtocolError as exc:
                log.warning("the saved want list is unreadable (%s); reconcile rebuilds it", exc)
                return
            if restored:
                log.info("resuming: %d blocks still wanted from before the restart", restored)

    def save_wants(self) -> None:
        """Persist the want list now (also done with every block written)."""
        mark = (self.engine.wants_added, time.monotonic())
        wants = self.engine.export_wants()
        try:
            self.store.transact(lambda txn: put_meta(txn, WANTS_KEY, wants))
        except ArchiveError:
            log.exception("could not save the want list")
        else:
            self._wants_saved = mark
