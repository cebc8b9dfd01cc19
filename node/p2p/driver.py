"""The driver: runs the sans-IO :class:`SyncEngine` over a network, a gossip topic and a store.

It feeds the engine events (a peer's sync stream opened, bytes read, the stream ended,
a timer due, an announcement validated) and executes the commands it answers with:

* ``Send`` goes to the peer's writer task (one per stream, so a slow peer never stalls
  the others); ``Publish`` to the paced gossip publisher;
* ``SetTimer``/``CancelTimer`` to one timer task on trio's clock;
* ``StoreBlocks`` is collected and written, once per batch of events, in ONE store
  transaction together with the want list, so a crash (even SIGKILL) leaves a store
  whose want list names exactly what is still missing;
* ``Disconnect``/``Ban`` close the stream and hang up; ``Dial`` keeps a dialler task
  that reconnects with exponential backoff.

Records written here by other code (the web API, the CLI in another process) are found
by watching the reconcile index fall out of step with ``rec_time``: they are added to
the index and announced. Everything runs in one trio thread; ``handle`` never awaits,
so engine calls never interleave.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from craftnet.archive.blocks import find_block, has_block, put_block
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.ops import GENESIS_TYPE as DOC_GENESIS
from craftnet.archive.crdt.ops import OP_TYPE as DOC_OP
from craftnet.archive.errors import ArchiveError
from craftnet.archive.gc import links_of
from craftnet.archive.hlc import pack
from craftnet.archive.index import has_record, put_record
from craftnet.archive.meta import get_meta, put_meta
from craftnet.archive.recon_index import ReconIndex, item_key
from craftnet.archive.records import Record
from craftnet.archive.store import ReadTxn, Store, WriteTxn
from craftnet.errors import CraftnetError
from craftnet.node.p2p.net import ByteStream, Gossip, Network, NetworkError
from craftnet.protocol.engine import SyncEngine, check_announcement
from craftnet.protocol.errors import ProtocolError
from craftnet.protocol.events import (
    Ban,
    BlocksWanted,
    CancelTimer,
    Command,
    DataReceived,
    Dial,
    Disconnect,
    Event,
    GossipReceived,
    PeerConnected,
    PeerDisconnected,
    PeerId,
    Publish,
    ReconcileFinished,
    RecordsAdded,
    Send,
    SetTimer,
    StoreBlocks,
    StoredBlock,
    StreamEnded,
    TimerFired,
)
from craftnet.protocol.scoring import Verdict

log = logging.getLogger("craftnet.p2p")

WANTS_KEY: Final = b"p2p.wants"
READ_SIZE: Final = 1024 * 1024
FLUSH_BYTES: Final = 16 * 1024 * 1024  # write at once when this much waits ...
FLUSH_DELAY: Final = 0.02  # ... else within this many seconds (one fsync per batch)
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024  # reading waits while this much is unwritten
PUBLISH_RATE: Final = 8.0  # per second; GossipSub drops what exceeds its spam limit
PUBLISH_QUEUE: Final = 256
WATCH_INTERVAL: Final = 0.05
REANNOUNCE_DELAY: Final = 0.01
REPAIR_INTERVAL: Final = 10.0
# The engine counts more than 20 announcements a second from one peer as a flood, and a
# relayed announcement counts as the relaying hub's: what we publish (PUBLISH_RATE) plus
# what we relay (all forwarders together) stays below that.
RELAY_RATE: Final = 10.0
RELAY_BURST: Final = 40.0
RELAY_PER_PEER: Final = 8.0
SHUN_INTERVAL: Final = 0.5
DOCUMENT_TYPES: Final = frozenset({DOC_GENESIS, DOC_OP})
DIAL_MIN: Final = 1.0
DIAL_MAX: Final = 60.0


@dataclass(eq=False)
class _Link:
    peer: PeerId
    stream: ByteStream
    outbound: bool
    send: trio.MemorySendChannel[bytes]
    recv: trio.MemoryReceiveChannel[bytes]
    closed: trio.Event = field(default_factory=trio.Event)
    ready: bool = False
    bytes_in: int = 0
    bytes_out: int = 0
    since: float = 0.0


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


class RelayBudget:
    """Token buckets per forwarding peer: how many announcements a second we relay."""

    def __init__(self, rate: float = RELAY_RATE, burst: float = RELAY_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[PeerId, tuple[float, float]] = {}

    def allow(self, peer: PeerId, now: float) -> bool:
        """Take one token from ``peer``'s bucket if there is one."""
        tokens, at = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - 1, now)
        return True


class Driver:
    """Executes one engine's commands with a network, a gossip topic and a store."""

    def __init__(
        self,
        *,
        engine: SyncEngine,
        store: Store,
        network: Network,
        gossip: Gossip,
        is_member: Callable[[str], bool],
        max_peers: int = 64,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.network = network
        self.gossip = gossip
        self.is_member = is_member
        self.max_peers = max_peers
        self.clock = clock
        self.rng = rng or random.Random()
        self.index = ReconIndex()
        # Used only in the writer (one batch at a time, under _write_lock).
        self.documents = Documents(store)
        self.relay_budget = RelayBudget(RELAY_PER_PEER, RELAY_BURST)
        self.relay_total = RelayBudget(RELAY_RATE, RELAY_BURST)
        self.links: dict[PeerId, _Link] = {}
        self.banned: dict[PeerId, float] = {}
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
        self._reannounce: dict[Cid, int] = {}
        self._reannounce_wake = trio.Event()
        self._outbox: deque[bytes] = deque()
        self._announce_pending: list[tuple[int, Cid]] = []
        self._publish_wake = trio.Event()
        self._diallers: dict[PeerId, str | None] = {}
        self._addrs: dict[PeerId, str] = {}
        self._nursery: trio.Nursery | None = None
        # Records from ten minutes before start-up on, known to be in the index: what
        # appears beyond them was written by someone else (see _catch_up_index).
        self._watermark = pack(max(0, time.time_ns() // 1_000_000 - 600_000))
        self._recent: set[bytes] = set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; the want list is saved on the way out."""
        self.network.set_stream_handler(self._inbound)
        self.gossip.set_validator(self._validate)
        self._restore_wants()
        self._snapshot_recent()
        self._catch_up_index()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._flusher)
                nursery.start_soon(self._publisher)
                nursery.start_soon(self._drain_gossip)
                nursery.start_soon(self._watch_local)
                nursery.start_soon(self._reannouncer)
                nursery.start_soon(self._repair)
                nursery.start_soon(self._shun_graylisted)
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
        """Keep a connection to the peer at ``addr`` (reconnecting with backoff)."""
        assert self._nursery is not None, "the driver is not running"
        self._nursery.start_soon(self._dial_addr, addr)

    async def _dial_addr(self, addr: str) -> None:
        delay = DIAL_MIN
        while True:
            try:
                peer = await self.network.connect(addr)
            except NetworkError as exc:
                log.info("cannot reach %s (%s); retrying in %.0fs", addr, exc, delay)
                await trio.sleep(delay * (0.75 + self.rng.random() / 2))
                delay = min(2 * delay, DIAL_MAX)
                continue
            self._addrs[peer] = addr
            self._start_dialler(peer)
            return

    async def connect_once(self, addr: str) -> PeerId:
        """Connect to ``addr`` and open the sync stream once (``craftnet sync``)."""
        peer = await self.network.connect(addr)
        self._addrs[peer] = addr
        await self._open(peer)
        return peer

    def _start_dialler(self, peer: PeerId) -> None:
        if peer in self._diallers or self._nursery is None:
            return
        self._diallers[peer] = self._addrs.get(peer)
        self._nursery.start_soon(self._dialler, peer)

    async def _dialler(self, peer: PeerId) -> None:
        delay = DIAL_MIN
        try:
            while True:
                until = self.banned.get(peer, 0.0)
                if until > self.clock():
                    await trio.sleep(until - self.clock())
                    continue
                if not self._in_good_standing(peer):
                    await trio.sleep(DIAL_MAX)
                    continue
                link = self.links.get(peer)
                if link is not None:
                    await link.closed.wait()
                    # A link that never got through the handshake is no reason to hurry.
                    delay = DIAL_MIN if link.ready else min(2 * delay, DIAL_MAX)
                    await trio.sleep(delay * (0.75 + self.rng.random() / 2))
                    continue
                try:
                    await self.network.reconnect(peer)
                    await self._open(peer)
                except NetworkError as exc:
                    log.info("redial %s failed (%s); next try in %.0fs", peer, exc, delay)
                    await trio.sleep(delay * (0.75 + self.rng.random() / 2))
                    delay = min(2 * delay, DIAL_MAX)
        finally:
            self._diallers.pop(peer, None)

    async def _open(self, peer: PeerId) -> None:
        if peer in self.links:
            return
        stream = await self.network.open_stream(peer)
        if peer in self.links:  # the peer's stream won the race meanwhile
            await stream.close()
            return
        link = self._add_link(peer, stream, outbound=True)
        assert self._nursery is not None
        self._nursery.start_soon(self._reader, link)

    async def _inbound(self, peer: PeerId, stream: ByteStream) -> None:
        now = self.clock()
        if self.banned.get(peer, 0.0) > now or not self._in_good_standing(peer):
            await stream.reset()
            return
        if peer not in self.links and len(self.links) >= self.max_peers:
            log.info("refusing %s: already %d peers", peer, len(self.links))
            await stream.reset()
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

    def _drop(self, link: _Link) -> None:
        """Forget a link and close its stream (its events no longer reach the engine)."""
        if self.links.get(link.peer) is link:
            del self.links[link.peer]
            self.gossip.forget(link.peer)  # admitted again after its next hello
        link.send.close()
        link.closed.set()
        if self._nursery is not None:
            self._nursery.start_soon(link.stream.reset)

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

    # ------------------------------------------------------------------ engine

    def handle(self, event: Event) -> None:
        """Feed one event to the engine and execute what it answers."""
        try:
            commands = self.engine.handle(event, self.clock())
        except ProtocolError:
            log.exception("the engine refused %s", type(event).__name__)
            return
        self.execute(commands)

    def execute(self, commands: list[Command]) -> None:
        """Execute engine commands (never awaits; slow work goes to tasks)."""
        urgent = False
        for command in commands:
            if isinstance(command, Send):
                link = self.links.get(command.peer)
                if link is not None:
                    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                        link.send.send_nowait(command.data)
            elif isinstance(command, SetTimer):
                self._timers[command.timer] = command.at
                self._timer_wake.set()
            elif isinstance(command, CancelTimer):
                self._timers.pop(command.timer, None)
            elif isinstance(command, StoreBlocks):
                self._pending.append(command)
                self._pending_bytes += sum(len(b.data) for b in command.blocks)
                # Records are small and someone may be waiting for them: no delay.
                urgent = urgent or any(b.ts is not None for b in command.blocks)
            elif isinstance(command, Publish):
                if len(self._outbox) >= PUBLISH_QUEUE:
                    self._outbox.popleft()
                    log.warning("announcement queue full; dropped one (reconcile repairs)")
                self._outbox.append(command.data)
                self._publish_wake.set()
            elif isinstance(command, Disconnect):
                self._disconnect(command.peer, command.reason)
            elif isinstance(command, Ban):
                log.warning(
                    "banning %s until +%.0fs: %s",
                    command.peer,
                    command.until - self.clock(),
                    command.reason,
                )
                self.banned[command.peer] = command.until
                self.gossip.ban(command.peer)
                self._disconnect(command.peer, command.reason)
            elif isinstance(command, Dial):
                self._start_dialler(command.peer)
            elif isinstance(command, ReconcileFinished):
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

    def _disconnect(self, peer: PeerId, reason: str) -> None:
        log.info("disconnecting %s: %s", peer, reason)
        link = self.links.get(peer)
        if link is not None:
            self._drop(link)
        if self._nursery is not None:
            self._nursery.start_soon(self.network.hang_up, peer)

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
                        self.index.add(txn, item_key(record.ts, record.cid))
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
        added: list[tuple[int, Cid]] = []

        def index(txn: WriteTxn) -> None:
            added.clear()
            for record in records:
                key = item_key(record.ts, record.cid)
                if record.cid not in refused and has_record(txn, record.cid):
                    self.index.add(txn, key)
                    added.append((record.ts, record.cid))

        self.store.transact(index)
        return added

    def _written(self, blocks: list[StoredBlock], new_records: list[tuple[int, Cid]]) -> None:
        self.stored_blocks += len(blocks)
        self.stored_records += len(new_records)
        self._recent.update(item_key(ts, cid) for ts, cid in new_records if ts >= self._watermark)
        self.engine.blocks_stored([block.cid for block in blocks])
        # Tell neighbours what we hold now: a hub two hops from the publisher asks us,
        # not the publisher it is not connected to.
        for ts, cid in new_records:
            self._reannounce[cid] = ts
        if self._reannounce:
            self._reannounce_wake.set()

    def _write_failed(self, blocks: list[StoredBlock]) -> None:
        log.exception("storing %d received blocks failed; asking for them again", len(blocks))
        cids = [block.cid for block in blocks]
        self.engine.blocks_stored(cids)  # forget them as stored, so they are wanted again
        self.handle(BlocksWanted(tuple(cids)))

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

    def _announce(self, records: list[tuple[int, Cid]]) -> None:
        """Announce these records at the publisher's next turn (coalesced)."""
        self._announce_pending.extend(records)
        self._publish_wake.set()

    async def _publisher(self) -> None:
        # Paced: GossipSub drops silently over its spam limit and its 32-entry queues.
        # Whatever gathers while we wait for our turn goes out as one announcement.
        gap = 1.0 / PUBLISH_RATE
        while True:
            if not self._announce_pending and not self._outbox:
                await self._publish_wake.wait()
                self._publish_wake = trio.Event()
                continue
            if self._announce_pending:
                records = sorted(set(self._announce_pending))
                self._announce_pending = []
                self.handle(RecordsAdded(tuple(records)))  # its Publish lands in the outbox
            if self._outbox:
                data = self._outbox.popleft()
                try:
                    await self.gossip.publish(data)
                except NetworkError as exc:
                    log.info("announcement not published (%s); reconcile repairs", exc)
                await trio.sleep(gap)

    async def _drain_gossip(self) -> None:
        # The validator already fed the engine; delivered copies only need emptying.
        while True:
            await self.gossip.next_message()

    def _validate(self, forwarder: PeerId, data: bytes) -> bool:
        """GossipSub validator: a whole announcement frame signed by a member."""
        if forwarder == self.network.peer_id:
            return True  # our own announcement, on its way out (libp2p validates it too)
        now = self.clock()
        if self.banned.get(forwarder, 0.0) > now:
            return False
        graylisted = self.engine.scores.verdict(forwarder, now) is not Verdict.OK
        floods = self.engine.scores.offence_counts(forwarder).get("flood", 0)
        announce, offence = check_announcement(data, self.is_member)
        # The engine scores the forwarder for bad ones and wants what good ones name.
        self.handle(GossipReceived(forwarder, data))
        flooding = self.engine.scores.offence_counts(forwarder).get("flood", 0) > floods
        # The engine drops a graylisted peer's gossip unread; the validator read this one
        # anyway, so it costs what it would have cost before the graylist.
        if (
            announce is None
            and graylisted
            and offence is not None
            and self.engine.scores.penalize(forwarder, offence, now) is Verdict.BAN
        ):
            until = self.engine.scores.banned_until(forwarder) or now
            self.execute([Ban(forwarder, until, f"misbehaved ({offence})")])
            self.handle(PeerDisconnected(forwarder))
        if announce is None or flooding or graylisted:
            return False
        if forwarder in self.engine.ready_peers():
            self._fill_holes(forwarder, list(announce.records) + list(announce.heads))
        # Relay (return True) only within a budget below the engine's flood limit: our
        # neighbours count what we relay as ours, and must not blame us for a flooder.
        return self.relay_budget.allow(forwarder, now) and self.relay_total.allow(PeerId(""), now)

    def _fill_holes(self, provider: PeerId, cids: list[Cid]) -> None:
        """Records we hold whose files we still lack: ``provider`` announced it holds all."""
        missing: list[Cid] = []
        with self.store.read() as txn:
            for cid in cids:
                if has_block(txn, cid):
                    missing += _missing(txn, cid)
        if missing:
            self.engine.exchange.want(missing, provider)
            self.kick()

    async def _reannouncer(self) -> None:
        while True:
            await self._reannounce_wake.wait()
            await trio.sleep(REANNOUNCE_DELAY)  # gather a burst into one announcement
            self._reannounce_wake = trio.Event()
            if not self._reannounce:
                continue
            # Only records whose whole DAG (files, chunks) is here: a neighbour that
            # asks us for them then gets all of it, not a "don't have".
            with self.store.read() as txn:
                done = [(ts, cid) for cid, ts in self._reannounce.items() if _complete(txn, cid)]
            for _, cid in done:
                del self._reannounce[cid]
            if done:
                self._announce(done)

    def _in_good_standing(self, peer: PeerId) -> bool:
        return self.engine.scores.verdict(peer, self.clock()) is Verdict.OK

    async def _shun_graylisted(self) -> None:
        # The engine ignores a peer below the graylist threshold; we also hang up on it
        # and decline its streams until its score has recovered (it decays back).
        while True:
            await trio.sleep(SHUN_INTERVAL)
            for peer, link in list(self.links.items()):
                if not self._in_good_standing(peer):
                    log.warning(
                        "disconnecting %s: score %.1f is below the graylist",
                        peer,
                        self.engine.scores.score(peer, self.clock()),
                    )
                    self._drop(link)
                    self.handle(PeerDisconnected(peer))
                    if self._nursery is not None:
                        self._nursery.start_soon(self.network.hang_up, peer)

    async def _repair(self) -> None:
        # A record fetched from a hub that did not have its files yet, and nobody who
        # has them announcing since: ask every ready hub again, now and then.
        while True:
            await trio.sleep(REPAIR_INTERVAL)
            async with self._write_lock:
                # Operations that were ahead of our clock, once their time has come.
                try:
                    await trio.to_thread.run_sync(self.documents.release)
                except CraftnetError:
                    log.exception("releasing deferred document operations failed")
            ready = self.engine.ready_peers()
            if not self._reannounce or not ready:
                continue
            missing: list[Cid] = []
            with self.store.read() as txn:
                for cid in list(self._reannounce)[:1000]:
                    missing += _missing(txn, cid, limit=10_000)
            for peer in ready:
                self.engine.exchange.want(missing, peer)
            if missing:
                self.kick()

    async def _watch_local(self) -> None:
        while True:
            await trio.sleep(WATCH_INTERVAL)
            try:
                async with self._write_lock:
                    self._catch_up_index()
            except ArchiveError:
                log.exception("watching the store for new records failed")

    def _catch_up_index(self) -> None:
        """Index and announce records other code wrote; rebuild the index if it is lost."""
        with self.store.read() as txn:
            if self.index.is_current(txn):
                return
        start = self._watermark.to_bytes(8, "big")
        added: list[tuple[int, Cid]] = []

        def catch_up(txn: WriteTxn) -> bool:
            added.clear()
            lacking = self.index.unaccounted(txn)
            fresh = [k for k in self.index.keys(txn, start, None) if k not in self._recent]
            # Published here moments ago: exactly the recent keys the index lacks. Any
            # other difference (a bundle import, an old store) costs one rebuild.
            if len(fresh) != lacking:
                self.index.rebuild(txn)
                return False
            for key in fresh:
                self.index.add(txn, key)
                added.append((int.from_bytes(key[:8], "big"), Cid.from_bytes(key[8:])))
            return True

        incremental = self.store.transact(catch_up)
        if incremental:
            self._recent.update(item_key(ts, cid) for ts, cid in added)
            if added:
                self._announce(added)
        else:
            self._snapshot_recent()
            log.info("reconcile index rebuilt")

    def _snapshot_recent(self) -> None:
        with self.store.read() as txn:
            self._recent = set(self.index.keys(txn, self._watermark.to_bytes(8, "big"), None))

    # ------------------------------------------------------------------ status

    def peers(self) -> list[dict[str, Any]]:
        """Every peer with a sync stream: id, did, direction, state, score, bytes."""
        now = self.clock()
        out = []
        for peer, link in sorted(self.links.items()):
            state = self.engine.peers.get(peer)
            out.append(
                {
                    "peer": peer,
                    "did": state.did if state is not None else None,
                    "direction": "out" if link.outbound else "in",
                    "state": state.conn.value if state is not None else "closed",
                    "score": round(self.engine.scores.score(peer, now), 2),
                    "bytes_in": link.bytes_in,
                    "bytes_out": link.bytes_out,
                    "connected_for": round(now - link.since, 1),
                }
            )
        return out

    def wanted(self) -> int:
        """How many blocks are still wanted."""
        return len(self.engine.exchange.wants)

    def cut_off_non_members(self) -> list[PeerId]:
        """Disconnect ready peers whose hub is no longer a member (a revocation arrived)."""
        cut: list[PeerId] = []
        for peer, state in list(self.engine.peers.items()):
            if state.did is not None and not self.is_member(state.did):
                cut.append(peer)
                link = self.links.get(peer)
                if link is not None:
                    self._drop(link)
                self.handle(PeerDisconnected(peer))
                if self._nursery is not None:
                    self._nursery.start_soon(self.network.hang_up, peer)
        return cut


def _complete(txn: ReadTxn, cid: Cid) -> bool:
    """Is every block reachable from ``cid`` stored?"""
    return not _missing(txn, cid, first_only=True)


def _missing(
    txn: ReadTxn, cid: Cid, *, first_only: bool = False, limit: int = 100_000
) -> list[Cid]:
    """The blocks reachable from ``cid`` that are not stored (walking up to ``limit``)."""
    stack = [cid]
    seen: set[Cid] = set()
    missing: list[Cid] = []
    while stack and len(seen) <= limit:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        data = find_block(txn, current)
        if data is None:
            missing.append(current)
            if first_only:
                break
            continue
        if current.codec == DAG_CBOR:
            stack.extend(links_of(data))
    return missing
