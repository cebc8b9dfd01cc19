"""The driver: runs the sans-IO :class:`SyncEngine` over a network, a gossip topic and a store.

It moves bytes and carries out commands; every decision about peers is the engine's.
It feeds the engine events (a peer's sync stream opened, bytes read, the stream ended,
a timer due, a gossip message to validate, a dial that failed, blocks written) and
executes the commands it answers with:

* ``Send`` goes to the peer's writer task (one per stream, so a slow peer never stalls
  the others); ``Publish`` to the gossip publisher (the engine paces them);
* ``GossipVerdict`` is the answer the py-libp2p validator gives for the message the
  engine was just handed: relayed only when the engine accepts it;
* ``SetTimer``/``CancelTimer`` to one timer task on trio's clock;
* ``StoreBlocks`` is collected and written, once per batch of events, in ONE store
  transaction together with the want list, so a crash (even SIGKILL) leaves a store
  whose want list names exactly what is still missing; the engine then hears
  ``BlocksStored``;
* ``Disconnect`` flushes what is queued for the peer (a ``bye`` saying why) and hangs
  up; ``Dial`` makes one attempt (``DialFailed`` if it fails; the engine redials);
* ``Ban`` and ``ConnectionClosed`` are logged at INFO with their reasons.

Every record write keeps the store's reconcile index current (archive's ``put_record``)
and appends to its change feed; records written by other code (the web API, the CLI
in another process) are found by reading the feed on from this hub's cursor, and
announced. Everything runs in one trio thread; ``handle`` never awaits, so engine
calls never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, assert_never

import trio

from craftnet.archive import changes
from craftnet.archive.blocks import put_block
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.ops import GENESIS_TYPE as DOC_GENESIS
from craftnet.archive.crdt.ops import OP_TYPE as DOC_OP
from craftnet.archive.errors import ArchiveError
from craftnet.archive.index import has_record, put_record
from craftnet.archive.meta import get_meta, put_meta
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.records import Record
from craftnet.archive.store import Store, WriteTxn
from craftnet.errors import CraftnetError
from craftnet.node.p2p.net import ByteStream, Gossip, Network, NetworkError
from craftnet.protocol.engine import SyncEngine
from craftnet.protocol.errors import ProtocolError
from craftnet.protocol.events import (
    Ban,
    BlocksStored,
    CancelTimer,
    Command,
    ConnectionClosed,
    DataReceived,
    Dial,
    DialFailed,
    Disconnect,
    Event,
    GossipReceived,
    GossipVerdict,
    MembershipChanged,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerId,
    Publish,
    ReconcileFinished,
    RecordsAdded,
    Send,
    SetTimer,
    Side,
    StoreBlocks,
    StoredBlock,
    StoreFailed,
    StreamEnded,
    TimerFired,
    Validation,
)

log = logging.getLogger("craftnet.p2p")

WANTS_KEY: Final = b"p2p.wants"
READ_SIZE: Final = 1024 * 1024
FLUSH_BYTES: Final = 16 * 1024 * 1024  # write at once when this much waits ...
FLUSH_DELAY: Final = 0.02  # ... else within this many seconds (one fsync per batch)
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024  # reading waits while this much is unwritten
PUBLISH_QUEUE: Final = 256
WATCH_INTERVAL: Final = 0.05
RELEASE_INTERVAL: Final = 10.0  # document operations ahead of our clock, looked at again
CLOSED_KEPT: Final = 1024  # why connections ended, for the status: the latest ones
FAREWELL: Final = 2.0  # seconds a refused peer's last frames (its bye) may take to go out
DOCUMENT_TYPES: Final = frozenset({DOC_GENESIS, DOC_OP})


@dataclass(eq=False)
class _Link:
    peer: PeerId
    stream: ByteStream
    outbound: bool
    send: trio.MemorySendChannel[bytes]
    recv: trio.MemoryReceiveChannel[bytes]
    closed: trio.Event = field(default_factory=trio.Event)
    flushed: trio.Event = field(default_factory=trio.Event)  # the writer emptied its queue
    ready: bool = False
    bytes_in: int = 0
    bytes_out: int = 0
    since: float = 0.0


class GossipLog:
    """What each peer sent on the gossip topic in the last minute, by the engine's verdict
    and reason: logged with a punishment, so that it can be read why."""

    WINDOW: Final = 60.0

    def __init__(self) -> None:
        self._by_peer: dict[PeerId, deque[tuple[float, str]]] = {}

    def note(self, peer: PeerId, verdict: GossipVerdict, now: float, did: str | None) -> None:
        """One verdict on a message from ``peer`` (whose hub's did is ``did``)."""
        entries = self._by_peer.setdefault(peer, deque())
        whose = "" if verdict.signer is None else (" own" if verdict.signer == did else " relayed")
        entries.append((now, (verdict.reason or verdict.validation.value) + whose))
        while entries and entries[0][0] < now - self.WINDOW:
            entries.popleft()
        if len(self._by_peer) > CLOSED_KEPT:
            self._by_peer.pop(next(iter(self._by_peer)))

    def describe(self, peer: PeerId, now: float) -> str:
        """E.g. ``41 in 60 s, 30 in the last 1 s (accept 12, relay budget spent 29)``."""
        entries = [(t, why) for t, why in self._by_peer.get(peer, ()) if t >= now - self.WINDOW]
        if not entries:
            return "none"
        last = sum(1 for t, _ in entries if t >= now - 1.0)
        kinds: dict[str, int] = {}
        for _, why in entries:
            kinds[why] = kinds.get(why, 0) + 1
        detail = ", ".join(f"{why} {n}" for why, n in sorted(kinds.items()))
        return f"{len(entries)} in {self.WINDOW:.0f} s, {last} in the last 1 s ({detail})"


@dataclass
class SyncProgress:
    """What a reconcile with one peer found, and how the fetching is going."""

    peer: PeerId
    we_lacked: int
    they_lacked: int
    round_trips: int
    bytes_sent: int
    bytes_received: int
    at: float


class Driver:
    """Executes one engine's commands with a network, a gossip topic and a store."""

    def __init__(
        self,
        *,
        engine: SyncEngine,
        store: Store,
        network: Network,
        gossip: Gossip,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.store = store
        self.network = network
        self.gossip = gossip
        self.clock = clock
        # Used only in the writer (one batch at a time, under _write_lock).
        self.documents = Documents(store)
        self.links: dict[PeerId, _Link] = {}
        # What the engine decided, kept for status pages and tests (not for deciding).
        self.banned: dict[PeerId, float] = {}
        self.closed: OrderedDict[PeerId, ConnectionClosed] = OrderedDict()  # newest last
        self.dial_failures: dict[PeerId, str] = {}
        self._gossip_seen = GossipLog()
        self.reconciles: list[SyncProgress] = []
        self.stored_blocks = 0
        self.stored_records = 0
        self.on_reconcile: list[Callable[[SyncProgress], None]] = []
        self._timers: dict[tuple[str, ...], float] = {}
        self._timer_wake = trio.Event()
        self._pending: list[StoreBlocks] = []
        self._pending_bytes = 0
        self._flush_wake = trio.Event()
        self._flush_urgent = trio.Event()
        self._drained = trio.Event()
        self._write_lock = trio.Lock()
        self._outbox: deque[bytes] = deque()
        self._publish_wake = trio.Event()
        self._dialling: set[PeerId] = set()
        self._addrs: dict[PeerId, str] = {}
        self._nursery: trio.Nursery | None = None
        # Where this hub has read the store's change feed to, and the records it stored
        # itself from peers (the engine announces those anew once whole, so the feed
        # skips them).
        self._feed_cursor = 0
        self._own: set[Cid] = set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; the want list is saved on the way out."""
        self.network.set_stream_handler(self._inbound)
        self.gossip.set_validator(self._validate)
        self._restore_wants()
        self._open_feed()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._flusher)
                nursery.start_soon(self._publisher)
                nursery.start_soon(self._drain_gossip)
                nursery.start_soon(self._watch_local)
                nursery.start_soon(self._release_documents)
                task_status.started()
                self.kick()
        finally:
            self._nursery = None
            self._flush_now()  # what arrived is written, with the want list, before we go
            self.save_wants()

    def kick(self) -> None:
        """Let the engine send what its want list allows (after restoring it)."""
        # start_reconcile on no peer only settles the engine: it pumps the want list.
        self.execute(self.engine.start_reconcile(PeerId(""), self.clock()))

    def dial(self, addr: str) -> None:
        """Keep a connection to the hub at ``addr`` (the engine dials and redials it)."""
        try:
            peer = self.network.peer_of(addr)
        except NetworkError as exc:
            log.warning("not dialling %s: %s", addr, exc)
            return
        self._addrs[peer] = addr
        self.handle(PeerDiscovered(peer))

    async def connect_once(self, addr: str) -> PeerId:
        """Connect to ``addr`` and open the sync stream once (``craftnet sync``)."""
        peer = await self.network.connect(addr)
        self._addrs[peer] = addr
        await self._open(peer)
        return peer

    async def _dial(self, peer: PeerId) -> None:
        """One attempt to reach ``peer`` and open our sync stream; the engine hears if
        it failed and decides when to try again."""
        if peer in self._dialling or peer in self.links:
            return
        self._dialling.add(peer)
        try:
            addr = self._addrs.get(peer)
            if addr is not None:
                await self.network.connect(addr)
            else:
                await self.network.reconnect(peer)
            await self._open(peer)
        except NetworkError as exc:
            if self.dial_failures.get(peer) != str(exc):
                log.info("cannot reach %s: %s (the engine retries with backoff)", peer, exc)
            self.dial_failures[peer] = str(exc)
            self.handle(DialFailed(peer, str(exc)))
        else:
            self.dial_failures.pop(peer, None)
        finally:
            self._dialling.discard(peer)

    async def _open(self, peer: PeerId) -> None:
        # Two hubs that dial each other at once each open a sync stream; both must keep
        # the same one, or each sends its hello where the other does not read: the one
        # of the hub with the lower peer id. A link whose handshake is done gives way to
        # a newer stream from the peer (it restarted), and stands against a new one of ours.
        if peer in self.links:
            return
        stream = await self.network.open_stream(peer)
        old = self.links.get(peer)
        if old is not None and (old.outbound or old.ready or peer < self.network.peer_id):
            await stream.close()  # the peer's stream won the race meanwhile
            return
        link = self._add_link(peer, stream, outbound=True)
        assert self._nursery is not None
        self._nursery.start_soon(self._reader, link)

    async def _inbound(self, peer: PeerId, stream: ByteStream) -> None:
        # The engine decides whether to take it (banned, graylisted, full): it answers
        # PeerConnected with its hello, or with a bye and a Disconnect.
        old = self.links.get(peer)
        if old is not None and old.outbound and not old.ready and self.network.peer_id < peer:
            await stream.reset()  # both opened one at once: ours is the one both keep
            return
        link = self._add_link(peer, stream, outbound=False)
        await self._reader(link)

    def _add_link(self, peer: PeerId, stream: ByteStream, *, outbound: bool) -> _Link:
        old = self.links.pop(peer, None)
        if old is not None:
            self._drop(old)
        send, recv = trio.open_memory_channel[bytes](math.inf)
        link = _Link(peer, stream, outbound, send, recv, since=self.clock())
        self.links[peer] = link
        assert self._nursery is not None
        self._nursery.start_soon(self._writer, link)
        self.handle(PeerConnected(peer, outbound))
        return link

    def _drop(self, link: _Link, *, farewell: bool = False) -> None:
        """Forget a link and close its stream (its events no longer reach the engine).

        With ``farewell``, what is queued for the peer (its bye) is written first, for
        at most :data:`FAREWELL` seconds.
        """
        if self.links.get(link.peer) is link:
            del self.links[link.peer]
            self.gossip.forget(link.peer)  # admitted again after its next hello
        link.send.close()
        link.closed.set()
        if self._nursery is not None:
            self._nursery.start_soon(self._close_stream, link, farewell)

    async def _close_stream(self, link: _Link, farewell: bool) -> None:
        if farewell:
            with trio.move_on_after(FAREWELL):
                await link.flushed.wait()
            await link.stream.close()
        await link.stream.reset()

    async def _reader(self, link: _Link) -> None:
        try:
            while self.links.get(link.peer) is link:
                while self._pending_bytes > MAX_PENDING_BYTES:
                    await self._drained.wait()  # the disk is slower than the network
                try:
                    data = await link.stream.read(READ_SIZE)
                except NetworkError as exc:
                    if self.links.get(link.peer) is link:
                        log.info("stream from %s broke: %s", link.peer, exc)
                        self._drop(link)
                        self.handle(PeerDisconnected(link.peer))
                    return
                if self.links.get(link.peer) is not link:
                    return
                if not data:
                    self._drop(link)
                    self.handle(StreamEnded(link.peer))
                    return
                link.bytes_in += len(data)
                self.handle(DataReceived(link.peer, data))
                if not link.ready and link.peer in self.engine.ready_peers():
                    link.ready = True
                    # Its hello proved membership: from now on it hears our gossip.
                    if self._nursery is not None:
                        self._nursery.start_soon(self.gossip.admit, link.peer)
        finally:
            link.closed.set()

    async def _writer(self, link: _Link) -> None:
        try:
            async for data in link.recv:
                try:
                    await link.stream.write(data)
                except NetworkError as exc:
                    if self.links.get(link.peer) is link:
                        log.info("writing to %s failed: %s", link.peer, exc)
                        self._drop(link)
                        self.handle(PeerDisconnected(link.peer))
                    return
                link.bytes_out += len(data)
        finally:
            link.flushed.set()

    # ------------------------------------------------------------------ engine

    def handle(self, event: Event) -> list[Command]:
        """Feed one event to the engine, execute what it answers, and return that."""
        try:
            commands = self.engine.handle(event, self.clock())
        except ProtocolError:
            log.exception("the engine refused %s", type(event).__name__)
            return []
        self.execute(commands)
        return commands

    def execute(self, commands: list[Command]) -> None:
        """Execute engine commands (never awaits; slow work goes to tasks)."""
        urgent = False
        for command in commands:
            match command:
                case Send(peer, data):
                    link = self.links.get(peer)
                    if link is not None:
                        with contextlib.suppress(
                            trio.ClosedResourceError, trio.BrokenResourceError
                        ):
                            link.send.send_nowait(data)
                case SetTimer(timer, at):
                    self._timers[timer] = at
                    self._timer_wake.set()
                case CancelTimer(timer):
                    self._timers.pop(timer, None)
                case StoreBlocks(blocks):
                    self._pending.append(command)
                    self._pending_bytes += sum(len(b.data) for b in blocks)
                    # Records are small and someone may be waiting for them: no delay.
                    urgent = urgent or any(b.ts is not None for b in blocks)
                case Publish(data):
                    if len(self._outbox) >= PUBLISH_QUEUE:
                        self._outbox.popleft()
                        log.warning("announcement queue full; dropped one (reconcile repairs)")
                    self._outbox.append(data)
                    self._publish_wake.set()
                case Disconnect(peer):
                    self._disconnect(peer)
                case Ban(peer, until, reason):
                    log.info("banning %s for %.0f s: %s", peer, until - self.clock(), reason)
                    self.banned[peer] = until
                case ConnectionClosed(peer, side, reason, did, punished):
                    self.closed.pop(peer, None)
                    self.closed[peer] = command
                    if len(self.closed) > CLOSED_KEPT:
                        self.closed.popitem(last=False)
                    who = f"{peer} ({did})" if did else peer
                    if side is Side.REMOTE:
                        log.info("the connection to %s ended: %s", who, reason)
                    elif punished:
                        log.info(
                            "we closed the connection to %s: %s; its gossip lately: %s",
                            who,
                            reason,
                            self._gossip_seen.describe(peer, self.clock()),
                        )
                    else:
                        log.info("we closed the connection to %s: %s", who, reason)
                case Dial(peer):
                    if self._nursery is not None:
                        self._nursery.start_soon(self._dial, peer)
                case GossipVerdict():
                    pass  # the validator that handed the message in reads it
                case ReconcileFinished():
                    progress = SyncProgress(
                        command.peer,
                        command.we_lacked,
                        command.they_lacked,
                        command.round_trips,
                        command.bytes_sent,
                        command.bytes_received,
                        self.clock(),
                    )
                    self.reconciles.append(progress)
                    del self.reconciles[:-100]
                    for callback in self.on_reconcile:
                        callback(progress)
                case _:
                    assert_never(command)
        if self._pending:
            if self._nursery is None:
                self._flush_now()
            else:
                self._flush_wake.set()
                if urgent or self._pending_bytes >= FLUSH_BYTES:
                    self._flush_urgent.set()

    async def _flusher(self) -> None:
        # Writes run in a worker thread: an fsync costs milliseconds, and the trio thread
        # must keep reading and answering meanwhile. One batch at a time, in order.
        while True:
            await self._flush_wake.wait()
            with trio.move_on_after(FLUSH_DELAY):
                await self._flush_urgent.wait()
            self._flush_wake = trio.Event()
            self._flush_urgent = trio.Event()
            while self._pending:
                async with self._write_lock:
                    blocks, wants = self._take_batch()
                    try:
                        new = await trio.to_thread.run_sync(self._write_batch, blocks, wants)
                    except CraftnetError:
                        self._write_failed(blocks)
                    else:
                        self._written(blocks, new)
                self._drained.set()
                self._drained = trio.Event()

    def _disconnect(self, peer: PeerId) -> None:
        link = self.links.get(peer)
        if link is not None:
            self._drop(link, farewell=True)
        if self._nursery is not None:
            self._nursery.start_soon(self._hang_up_after_farewell, peer, link)

    async def _hang_up_after_farewell(self, peer: PeerId, link: _Link | None) -> None:
        if link is not None:
            with trio.move_on_after(FAREWELL):
                await link.flushed.wait()
        if peer not in self.links:  # not back meanwhile
            await self.network.hang_up(peer)

    def _take_batch(self) -> tuple[list[StoredBlock], bytes]:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        # The want list as it is now: without the blocks of this batch, with their links.
        return [block for command in batch for block in command.blocks], self.engine.export_wants()

    def _write_batch(self, blocks: list[StoredBlock], wants: bytes) -> list[tuple[int, Cid]]:
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

    def _written(self, blocks: list[StoredBlock], new_records: list[tuple[int, Cid]]) -> None:
        self.stored_blocks += len(blocks)
        self.stored_records += len(new_records)
        self._own.update(cid for _, cid in new_records)
        self.handle(BlocksStored(tuple(block.cid for block in blocks), tuple(new_records)))

    def _write_failed(self, blocks: list[StoredBlock]) -> None:
        log.exception("storing %d received blocks failed; asking for them again", len(blocks))
        self.handle(StoreFailed(tuple(block.cid for block in blocks)))

    def _flush_now(self) -> None:
        """Write what is pending in this thread (before start and on the way out)."""
        while self._pending:
            blocks, wants = self._take_batch()
            try:
                new = self._write_batch(blocks, wants)
            except CraftnetError:
                self._write_failed(blocks)
                return
            self._written(blocks, new)

    # ------------------------------------------------------------------ want list

    def _restore_wants(self) -> None:
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
        wants = self.engine.export_wants()
        try:
            self.store.transact(lambda txn: put_meta(txn, WANTS_KEY, wants))
        except ArchiveError:
            log.exception("could not save the want list")

    # ------------------------------------------------------------------ tasks

    async def _timer_loop(self) -> None:
        while True:
            now = self.clock()
            due = [t for t, at in self._timers.items() if at <= now]
            for timer in due:
                if timer in self._timers and self._timers[timer] <= now:
                    del self._timers[timer]
                    self.handle(TimerFired(timer))
            nxt = min(self._timers.values(), default=now + 3600.0)
            self._timer_wake = trio.Event()
            with trio.move_on_after(max(0.0, nxt - self.clock())):
                await self._timer_wake.wait()

    async def _publisher(self) -> None:
        # The engine paces announcements; publishing awaits, so it happens here.
        while True:
            if not self._outbox:
                await self._publish_wake.wait()
                self._publish_wake = trio.Event()
                continue
            data = self._outbox.popleft()
            try:
                await self.gossip.publish(data)
            except NetworkError as exc:
                log.info("announcement not published (%s); reconcile repairs", exc)

    async def _drain_gossip(self) -> None:
        # The validator already fed the engine; delivered copies only need emptying.
        while True:
            await self.gossip.next_message()

    def _validate(self, forwarder: PeerId, data: bytes) -> Validation:
        """GossipSub validator: deliver and relay only what the engine accepts."""
        if forwarder == self.network.peer_id:
            return Validation.ACCEPT  # our own announcement on its way out (validated too)
        for command in self.handle(GossipReceived(forwarder, data)):
            if isinstance(command, GossipVerdict):
                state = self.engine.peers.get(forwarder)
                did = state.did if state is not None else None
                self._gossip_seen.note(forwarder, command, self.clock(), did)
                return command.validation
        return Validation.REJECT  # the engine refused the event (a bug, logged)

    async def _release_documents(self) -> None:
        # Document operations that were ahead of our clock, once their time has come.
        while True:
            await trio.sleep(RELEASE_INTERVAL)
            async with self._write_lock:
                try:
                    await trio.to_thread.run_sync(self.documents.release)
                except CraftnetError:
                    log.exception("releasing deferred document operations failed")

    def membership_changed(self) -> None:
        """Membership records arrived (or time passed): the engine re-judges its peers."""
        self.handle(MembershipChanged())

    def _open_feed(self) -> None:
        """Follow the store's change feed from its head: what is there now, peers get by
        reconciling when they connect."""
        if ReconIndex().ensure(self.store):
            log.info("reconcile index rebuilt (a store written before records kept it)")
        with self.store.read() as txn:
            self._feed_cursor = changes.latest(txn)

    async def _watch_local(self) -> None:
        # LMDB cannot notify another process, so the feed's head is polled (one read).
        while True:
            await trio.sleep(WATCH_INTERVAL)
            try:
                # Under the write lock: a batch this driver wrote is in _own before its
                # changes are read.
                async with self._write_lock:
                    self._read_feed()
            except ArchiveError:
                log.exception("reading the store's change feed failed")

    def _read_feed(self) -> None:
        """Announce the records other code stored since the cursor; move the cursor on."""
        with self.store.read() as txn:
            batch = changes.changes_after(txn, self._feed_cursor)
        if batch.cursor == self._feed_cursor:
            return
        if batch.missed:
            log.info(
                "%d records stored here were not announced; reconcile spreads them", batch.missed
            )
            self._own.clear()  # ours among the missed ones would stay in it for good
        fresh = [(c.ts, c.cid) for c in batch.changes if c.cid not in self._own]
        self._own.difference_update(c.cid for c in batch.changes)
        self._feed_cursor = batch.cursor
        if fresh:
            self.handle(RecordsAdded(tuple(sorted(fresh))))

    # ------------------------------------------------------------------ status

    def peers(self) -> list[dict[str, Any]]:
        """Every peer with a sync stream: id, did, direction, state, score, whether our
        announcements reach it directly (GossipSub's mesh), bytes."""
        now = self.clock()
        out = []
        mesh = self.gossip.mesh()
        for peer, link in sorted(self.links.items()):
            state = self.engine.peers.get(peer)
            out.append(
                {
                    "peer": peer,
                    "did": state.did if state is not None else None,
                    "direction": "out" if link.outbound else "in",
                    "state": state.conn.value if state is not None else "closed",
                    "score": round(self.engine.scores.score(peer, now), 2),
                    "gossip": peer in mesh,
                    "bytes_in": link.bytes_in,
                    "bytes_out": link.bytes_out,
                    "connected_for": round(now - link.since, 1),
                }
            )
        return out

    def wanted(self) -> int:
        """How many blocks are still wanted."""
        return len(self.engine.exchange.wants)

    def refusal(self, peer: PeerId) -> str | None:
        """Why the connection to ``peer`` ended, if it did, saying which side ended it."""
        closed = self.closed.get(peer)
        if closed is not None:
            if closed.side is Side.LOCAL:
                return f"we refused {peer}: {closed.reason}"
            return closed.reason
        failure = self.dial_failures.get(peer)
        return None if failure is None else f"cannot reach {peer}: {failure}"
