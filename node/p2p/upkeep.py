"""The driver's background tasks: timers, publishing, the change feed, due documents.

* :class:`Timers`: the engine's ``SetTimer``/``CancelTimer`` on one task over trio's
  clock, firing ``TimerFired``;
* :class:`Outbox`: the engine's ``Publish`` commands, published in order by one task
  (the engine paces them; publishing awaits);
* :class:`LocalChanges`: records written by other code (the web API, the CLI in
  another process) found by reading the store's change feed on from this hub's cursor,
  and handed to the engine to announce;
* :class:`SyncedPeers`: the engine's ``PeerSynced`` reports, recorded as what each hub
  holds (:meth:`~craftnet.archive.peer_state.PeerStates.record_synced`), so that
  ``craftnet export --for DID`` after a network sync writes only what changed since;
* :func:`drain_gossip` and :func:`release_documents`: emptying delivered gossip, and
  document operations that were ahead of our clock, once their time has come.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import trio

from craftnet.archive import changes
from craftnet.archive.alliance import hlc_now
from craftnet.archive.errors import ArchiveError
from craftnet.archive.peer_state import PeerStates
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.store import Store
from craftnet.errors import CraftnetError
from craftnet.identity.keys import PrivateKey
from craftnet.node.p2p.net import Gossip, NetworkError
from craftnet.node.p2p.writes import BlockWriter
from craftnet.protocol.events import Event, RecordsAdded, TimerFired, TimerId

log = logging.getLogger("craftnet.p2p")

PUBLISH_QUEUE: Final = 256
WATCH_INTERVAL: Final = 0.05
RELEASE_INTERVAL: Final = 10.0  # document operations ahead of our clock, looked at again
# GossipSub sends only to its mesh, which its heartbeat builds a second or more after a
# peer links: an announcement published into an empty mesh reaches the linked peers late
# (by IHAVE) or only at the next reconcile, minutes away. Wait that long at most for it.
MESH_WAIT: Final = 5.0
MESH_POLL: Final = 0.05


class Timers:
    """The engine's timers on trio's clock."""

    def __init__(
        self, handle: Callable[[Event], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.handle = handle
        self.clock = clock
        self._due: dict[TimerId, float] = {}
        self._wake = trio.Event()

    def set(self, timer: TimerId, at: float) -> None:
        """Fire ``timer`` at ``at`` (replacing an earlier one of the same id)."""
        self._due[timer] = at
        self._wake.set()

    def cancel(self, timer: TimerId) -> None:
        """Forget ``timer`` if it is pending."""
        self._due.pop(timer, None)

    async def run(self) -> None:
        """Fire timers as they come due (a task)."""
        while True:
            now = self.clock()
            due = [t for t, at in self._due.items() if at <= now]
            for timer in due:
                if timer in self._due and self._due[timer] <= now:
                    del self._due[timer]
                    self.handle(TimerFired(timer))
            nxt = min(self._due.values(), default=now + 3600.0)
            self._wake = trio.Event()
            with trio.move_on_after(max(0.0, nxt - self.clock())):
                await self._wake.wait()


class Outbox:
    """Announcements waiting to be published on the gossip topic."""

    def __init__(self, gossip: Gossip, linked: Callable[[], bool] = lambda: False) -> None:
        self.gossip = gossip
        self.linked = linked  # whether any peer is past its hello
        self._waited_in_vain = False
        self.queue: deque[bytes] = deque()
        self._wake = trio.Event()

    def put(self, data: bytes) -> None:
        """Publish ``data`` soon (the oldest is dropped when the queue is full)."""
        if len(self.queue) >= PUBLISH_QUEUE:
            self.queue.popleft()
            log.warning("announcement queue full; dropped one (reconcile repairs)")
        self.queue.append(data)
        self._wake.set()

    async def run(self) -> None:
        """Publish what is queued, in order (a task)."""
        # The engine paces announcements; publishing awaits, so it happens here.
        while True:
            if not self.queue:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            await self._mesh_formed()
            data = self.queue.popleft()
            try:
                await self.gossip.publish(data)
            except NetworkError as exc:
                log.info("announcement not published (%s); reconcile repairs", exc)


    async def _mesh_formed(self) -> None:
        """Wait (bounded) while peers are linked but none is in the gossip mesh yet."""
        if self.gossip.mesh():
            self._waited_in_vain = False
            return
        if self._waited_in_vain:
            # Linked peers that never join the mesh (not subscribed): do not hold every
            # announcement for them; wait again once a mesh has been there.
            return
        with trio.move_on_after(MESH_WAIT):
            while self.linked() and not self.gossip.mesh():
                await trio.sleep(MESH_POLL)
            return
        self._waited_in_vain = True


class LocalChanges:
    """Records other code stored here, read from the store's change feed, to announce."""

    def __init__(
        self, store: Store, writer: BlockWriter, handle: Callable[[Event], object]
    ) -> None:
        self.store = store
        self.writer = writer
        self.handle = handle
        self.cursor = 0  # where this hub has read the feed to

    def open(self) -> None:
        """Follow the store's change feed from its head: what is there now, peers get by
        reconciling when they connect."""
        if ReconIndex().ensure(self.store):
            log.info("reconcile index rebuilt (a store written before records kept it)")
        with self.store.read() as txn:
            self.cursor = changes.latest(txn)

    async def watch(self) -> None:
        """Read the feed every :data:`WATCH_INTERVAL` seconds (a task)."""
        # LMDB cannot notify another process, so the feed's head is polled (one read).
        while True:
            await trio.sleep(WATCH_INTERVAL)
            try:
                # Under the write lock: a batch the writer stored is in its ``own`` set
                # before its changes are read.
                async with self.writer.lock:
                    self.read()
            except ArchiveError:
                log.exception("reading the store's change feed failed")

    def read(self) -> None:
        """Announce the records other code stored since the cursor; move the cursor on."""
        own = self.writer.own
        with self.store.read() as txn:
            batch = changes.changes_after(txn, self.cursor)
        if batch.cursor == self.cursor:
            return
        if batch.missed:
            log.info(
                "%d records stored here were not announced; reconcile spreads them", batch.missed
            )
            own.clear()  # ours among the missed ones would stay in it for good
        fresh = [(c.ts, c.cid) for c in batch.changes if c.cid not in own]
        own.difference_update(c.cid for c in batch.changes)
        self.cursor = batch.cursor
        if fresh:
            self.handle(RecordsAdded(tuple(sorted(fresh))))


class SyncedPeers:
    """Hubs a network sync left holding what we hold, recorded as such in the store."""

    def __init__(self, store: Store, key: PrivateKey) -> None:
        """``key`` is this hub's: it signs the summary recorded for each peer."""
        self.states = PeerStates(store)
        self.key = key
        self.recorded: dict[str, int] = {}  # did -> HLC time, recorded in this run
        self._due: set[str] = set()
        self._wake = trio.Event()

    def note(self, did: str) -> None:
        """The hub ``did`` holds at least what we hold: record it soon."""
        self._due.add(did)
        self._wake.set()

    async def run(self) -> None:
        """Record what was noted, in a worker thread (a task)."""
        # Building our summary reads every record's key: not in the trio thread.
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._due:
                did = self._due.pop()
                await trio.to_thread.run_sync(self._record, did)

    def flush(self) -> None:
        """Record what is still due, in this thread (on the way out)."""
        while self._due:
            self._record(self._due.pop())

    def _record(self, did: str) -> None:
        now = hlc_now()
        try:
            self.states.record_synced(did, self.key, now)
        except CraftnetError:
            log.exception("could not record what %s holds after the sync", did)
            return
        self.recorded[did] = now


async def drain_gossip(gossip: Gossip) -> None:
    """Empty the delivered gossip messages (a task): the validator already fed the engine."""
    while True:
        await gossip.next_message()


async def release_documents(writer: BlockWriter) -> None:
    """Every :data:`RELEASE_INTERVAL` seconds, ingest document operations now due (a task)."""
    while True:
        await trio.sleep(RELEASE_INTERVAL)
        await writer.release_documents()
