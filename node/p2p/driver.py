"""The driver: runs the sans-IO :class:`SyncEngine` over a network, a gossip topic and a store.

It moves bytes and carries out commands; every decision about peers is the engine's.
It feeds the engine events (a peer's sync stream opened, bytes read, the stream ended,
a timer due, a gossip message to validate, a dial that failed, blocks written) and
executes the commands it answers with:

* ``Send`` goes to the peer's writer task (:mod:`~craftnet.node.p2p.links`, one per
  stream, so a slow peer never stalls the others); ``Publish`` to the gossip publisher
  (:mod:`~craftnet.node.p2p.upkeep`; the engine paces them);
* ``GossipVerdict`` is the answer the py-libp2p validator gives for the message the
  engine was just handed: relayed only when the engine accepts it;
* ``SetTimer``/``CancelTimer`` to one timer task on trio's clock;
* ``StoreBlocks`` is collected and written, once per batch of events, in ONE store
  transaction together with the want list (:mod:`~craftnet.node.p2p.writes`), so a
  crash (even SIGKILL) leaves a store whose want list names exactly what is still
  missing; the engine then hears ``BlocksStored``;
* ``Disconnect`` flushes what is queued for the peer (a ``bye`` saying why) and hangs
  up; ``Dial`` makes one attempt (``DialFailed`` if it fails; the engine redials);
* ``Ban`` and ``ConnectionClosed`` are logged at INFO with their reasons;
* ``PeerSynced`` records what that hub now holds, for delta bundles
  (:class:`~craftnet.node.p2p.upkeep.SyncedPeers`, in a worker thread).

Every record write keeps the store's reconcile index current (archive's ``put_record``)
and appends to its change feed; records written by other code (the web API, the CLI
in another process) are found by reading the feed on from this hub's cursor, and
announced. Everything runs in one trio thread; ``handle`` never awaits, so engine
calls never interleave.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, assert_never

import trio

from craftnet.archive.store import Store
from craftnet.node.p2p.links import Link, Links
from craftnet.node.p2p.net import ByteStream, Gossip, Network, NetworkError
from craftnet.node.p2p.upkeep import (
    LocalChanges,
    Outbox,
    SyncedPeers,
    Timers,
    drain_gossip,
    release_documents,
)
from craftnet.node.p2p.writes import WANTS_KEY, BlockWriter
from craftnet.protocol.engine import SyncEngine
from craftnet.protocol.errors import ProtocolError
from craftnet.protocol.events import (
    Ban,
    CancelTimer,
    Command,
    ConnectionClosed,
    Dial,
    Disconnect,
    Event,
    GossipReceived,
    GossipVerdict,
    MembershipChanged,
    PeerDiscovered,
    PeerId,
    PeerSynced,
    Publish,
    ReconcileFinished,
    Send,
    SetTimer,
    Side,
    StoreBlocks,
    Validation,
)

log = logging.getLogger("craftnet.p2p")

CLOSED_KEPT: Final = 1024  # why connections ended, for the status: the latest ones

__all__ = ["CLOSED_KEPT", "WANTS_KEY", "Driver", "GossipLog", "SyncProgress"]


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
        self.writer = BlockWriter(engine=engine, store=store, handle=self.handle)
        self.streams = Links(
            network=network,
            gossip=gossip,
            handle=self.handle,
            is_ready=lambda peer: peer in engine.ready_peers(),
            room=self.writer.room,
            clock=clock,
            missing=engine.frame_missing,
        )
        self.timers = Timers(self.handle, clock)
        self.outbox = Outbox(gossip, linked=lambda: bool(engine.ready_peers()))
        self.local = LocalChanges(store, self.writer, self.handle)
        self.synced = SyncedPeers(store, engine.key)
        # What the engine decided, kept for status pages and tests (not for deciding).
        self.banned: dict[PeerId, float] = {}
        self.closed: OrderedDict[PeerId, ConnectionClosed] = OrderedDict()  # newest last
        self._gossip_seen = GossipLog()
        self.reconciles: list[SyncProgress] = []
        self.on_reconcile: list[Callable[[SyncProgress], None]] = []
        self._nursery: trio.Nursery | None = None

    @property
    def links(self) -> dict[PeerId, Link]:
        """The open sync streams, by peer."""
        return self.streams.by_peer

    @property
    def dial_failures(self) -> dict[PeerId, str]:
        """Why the latest dial of each peer failed (until one succeeds)."""
        return self.streams.dial_failures

    @property
    def stored_blocks(self) -> int:
        """Blocks fetched from peers and written in this run."""
        return self.writer.stored_blocks

    @property
    def unwritten(self) -> int:
        """Blocks received from peers and not yet written."""
        return self.writer.unwritten

    @property
    def stored_records(self) -> int:
        """New records among them."""
        return self.writer.stored_records

    @property
    def _outbox(self) -> deque[bytes]:
        # Announcements not yet published (tests wait for it to empty).
        return self.outbox.queue

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; the want list is saved on the way out."""
        self.network.set_stream_handler(self._inbound)
        self.gossip.set_validator(self._validate)
        self.writer.restore_wants()
        self.local.open()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = self.streams.nursery = nursery
                self.writer.running = True
                nursery.start_soon(self.timers.run)
                nursery.start_soon(self.writer.flusher)
                nursery.start_soon(self.outbox.run)
                nursery.start_soon(drain_gossip, self.gossip)
                nursery.start_soon(self.local.watch)
                nursery.start_soon(release_documents, self.writer)
                nursery.start_soon(self.synced.run)
                task_status.started()
                self.kick()
        finally:
            self._nursery = self.streams.nursery = None
            self.writer.running = False
            self.writer.flush_now()  # what arrived is written, with the want list, before we go
            self.writer.save_wants()
            self.synced.flush()  # a sync that just ended is known at the next export

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
        self.streams.addrs[peer] = addr
        self.handle(PeerDiscovered(peer))

    async def connect_once(self, addr: str) -> PeerId:
        """Connect to ``addr`` and open the sync stream once (``craftnet sync``)."""
        peer = await self.network.connect(addr)
        self.streams.addrs[peer] = addr
        await self.streams.open(peer)
        return peer

    async def _inbound(self, peer: PeerId, stream: ByteStream) -> None:
        await self.streams.inbound(peer, stream)

    def save_wants(self) -> None:
        """Persist the want list now (also done with every block written)."""
        self.writer.save_wants()

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
                    self.streams.send(peer, data)
                case SetTimer(timer, at):
                    self.timers.set(timer, at)
                case CancelTimer(timer):
                    self.timers.cancel(timer)
                case StoreBlocks():
                    urgent = self.writer.add(command) or urgent
                case Publish(data):
                    self.outbox.put(data)
                case Disconnect(peer):
                    self.streams.disconnect(peer)
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
                        self._nursery.start_soon(self.streams.dial, peer)
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
                case PeerSynced(_, did):
                    self.synced.note(did)
                case _:
                    assert_never(command)
        self.writer.kick(urgent)

    def _validate(self, forwarder: PeerId, data: bytes) -> Validation:
        """GossipSub validator: deliver and relay only what the engine accepts."""
        if forwarder == self.network.peer_id:
            return Validation.ACCEPT  # our own announcement on its way out (validated too)
        for command in self.handle(GossipReceived(forwarder, data)):
            if isinstance(command, GossipVerdict):
                did = self.engine.peer_did(forwarder)
                self._gossip_seen.note(forwarder, command, self.clock(), did)
                return command.validation
        return Validation.REJECT  # the engine refused the event (a bug, logged)

    def membership_changed(self) -> None:
        """Membership records arrived (or time passed): the engine re-judges its peers."""
        self.handle(MembershipChanged())

    # ------------------------------------------------------------------ status

    def peers(self) -> list[dict[str, Any]]:
        """Every peer with a sync stream: id, did, direction, state, score, whether our
        announcements reach it directly (GossipSub's mesh), bytes."""
        now = self.clock()
        out = []
        mesh = self.gossip.mesh()
        for peer, link in sorted(self.links.items()):
            out.append(
                {
                    "peer": peer,
                    "did": self.engine.peer_did(peer),
                    "direction": "out" if link.outbound else "in",
                    "state": self.engine.connection_state(peer),
                    "score": round(self.engine.score(peer, now), 2),
                    "gossip": peer in mesh,
                    "bytes_in": link.bytes_in,
                    "bytes_out": link.bytes_out,
                    "connected_for": round(now - link.since, 1),
                }
            )
        return out

    def wanted(self) -> int:
        """How many blocks are still wanted."""
        return self.engine.wanted()

    def refusal(self, peer: PeerId) -> str | None:
        """Why the connection to ``peer`` ended, if it did, saying which side ended it."""
        closed = self.closed.get(peer)
        if closed is not None:
            if closed.side is Side.LOCAL:
                return f"we refused {peer}: {closed.reason}"
            return closed.reason
        failure = self.dial_failures.get(peer)
        return None if failure is None else f"cannot reach {peer}: {failure}"
