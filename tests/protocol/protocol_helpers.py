"""A small in-memory network that drives real :class:`SyncEngine` objects.

Like h11's ``ConnectionPair``, but for any number of hubs: ``Send`` commands become
``DataReceived`` events at the other end, ``Publish`` becomes ``GossipReceived`` at
every connected neighbour, timers sit in a table and fire when :meth:`Network.run`
advances the virtual clock to them, and ``StoreBlocks`` writes into the hub's dict
of blocks and its reconcile items, as node/ does with the store. Links may have a
latency (bytes arrive later, in order) or be cut after a number of bytes. A :class:`RawPeer`
has no engine: a test writes whatever bytes it likes to a hub and reads the replies.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import assert_never

from craftnet.archive.cid import RAW, Cid
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey
from craftnet.identity.verify import Verifier
from craftnet.protocol.blocks import DictBlocks
from craftnet.protocol.engine import EngineConfig, SyncEngine
from craftnet.protocol.events import (
    Ban,
    BlocksStored,
    CancelTimer,
    Command,
    ConnectionClosed,
    DataReceived,
    Dial,
    Disconnect,
    Event,
    GossipReceived,
    GossipVerdict,
    PeerConnected,
    PeerDisconnected,
    PeerId,
    PeerSynced,
    Publish,
    ReconcileFinished,
    RecordsAdded,
    Send,
    SetTimer,
    StoreBlocks,
    TimerFired,
    TimerId,
)
from craftnet.protocol.framing import FrameDecoder, encode_frame
from craftnet.protocol.items import SortedItems, item_key
from craftnet.protocol.members import EVERYONE, Members
from craftnet.protocol.messages import SUPPORTED_VERSIONS, Hello, Message

ALLIANCE = "Global Micro-manufacturing Alliance"
BASE_TS = 1_760_000_000_000 << 16


def make_key(seed: int) -> PrivateKey:
    """A deterministic key for test hub number ``seed``."""
    return PrivateKey.from_seed(seed.to_bytes(32, "big"))


def hello_from(peer: PeerId, seed: int = 666, alliance: str = ALLIANCE) -> bytes:
    """The frame of a valid hello sent by ``peer`` (whose hub key has ``seed``)."""
    return encode_frame(Hello.create(make_key(seed), SUPPORTED_VERSIONS, alliance, peer))


def make_record(key: PrivateKey, n: int, links: tuple[Cid, ...] = ()) -> Record:
    """A signed technique record, the ``n``-th of its author."""
    body = {"title": f"Rustic Futurism joinery, variant {n}", "hub": key.did[-8:]}
    return Record.create(key, "technique", body, links, ts=BASE_TS + (n << 16))


class Roster:
    """Membership as a plain set of dids (proofs are neither sent nor needed)."""

    def __init__(self, dids: set[str]) -> None:
        self.dids = dids

    def is_member(self, did: str) -> bool:
        """Is ``did`` in the set?"""
        return did in self.dids

    def proof(self) -> tuple[bytes, ...]:
        """Nothing to prove."""
        return ()

    def admit(self, did: str, proof: tuple[bytes, ...], verifier: object) -> list[Record] | None:
        """Members are admitted, learning nothing; others are not."""
        return [] if did in self.dids else None


class Hub:
    """One hub: an engine, its blocks and its reconcile items."""

    def __init__(
        self,
        name: str,
        seed: int,
        config: EngineConfig | None = None,
        members: Members = EVERYONE,
        key: PrivateKey | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.peer = PeerId(name)
        self.key = key or make_key(seed)
        self.items = SortedItems()
        self.blocks = DictBlocks()
        self.engine = SyncEngine(
            key=self.key,
            peer_id=self.peer,
            items=self.items,
            blocks=self.blocks,
            config=config or EngineConfig(alliance=ALLIANCE),
            rng=random.Random(seed),
            members=members,
            verifier=verifier,
        )

    def add_record(self, record: Record) -> None:
        """Store a record locally, as the archive would."""
        self.blocks.blocks[record.cid] = record.block
        self.items.add(item_key(record.ts, record.cid))

    def add_raw(self, data: bytes) -> Cid:
        """Store a raw block (a file chunk); returns its CID."""
        cid = Cid.of(data, RAW)
        self.blocks.blocks[cid] = data
        return cid

    def record_keys(self) -> set[bytes]:
        """The keys of every record the hub holds."""
        return set(self.items.keys(b"", None))


@dataclass
class RawPeer:
    """A peer without an engine: what hubs send it is kept in ``inbox``."""

    peer: PeerId
    inbox: dict[PeerId, bytearray] = field(default_factory=dict)

    def messages_from(self, hub: PeerId) -> list[Message]:
        """Decode everything ``hub`` sent us so far."""
        decoder = FrameDecoder()
        decoder.receive_data(bytes(self.inbox.get(hub, b"")))
        out = []
        while (message := decoder.next_message()) is not None:
            out.append(message)
        return out


class Network:
    """Hubs joined by perfect in-memory links and a virtual clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.hubs: dict[PeerId, Hub] = {}
        self.raw: dict[PeerId, RawPeer] = {}
        self.links: set[frozenset[PeerId]] = set()
        self.timers: dict[tuple[PeerId, TimerId], float] = {}
        self.queue: deque[tuple[PeerId, Event]] = deque()
        self.bans: list[tuple[PeerId, Ban]] = []
        self.disconnects: list[tuple[PeerId, Disconnect]] = []
        self.finished: list[tuple[PeerId, ReconcileFinished]] = []
        self.synced: list[tuple[PeerId, PeerSynced]] = []
        self.dials: list[tuple[PeerId, Dial]] = []
        self.verdicts: list[tuple[PeerId, GossipVerdict]] = []
        self.execute_log: list[tuple[PeerId, Command]] = []
        self.closed: list[tuple[PeerId, ConnectionClosed]] = []
        self.bytes_sent = 0
        self.cut_after: dict[frozenset[PeerId], int] = {}
        self.latency: dict[frozenset[PeerId], float] = {}
        self.in_flight: list[tuple[float, int, PeerId, Event]] = []
        self._seq = 0

    def add(self, hub: Hub) -> Hub:
        """Join ``hub`` to the network."""
        self.hubs[hub.peer] = hub
        return hub

    def add_raw(self, name: str) -> RawPeer:
        """Join an engine-less peer."""
        raw = RawPeer(PeerId(name))
        self.raw[raw.peer] = raw
        return raw

    def connect(self, dialer: PeerId, listener: PeerId) -> None:
        """Open a connection; ``dialer`` dialled."""
        self.links.add(frozenset((dialer, listener)))
        if dialer in self.hubs:
            self.queue.append((dialer, PeerConnected(listener, outbound=True)))
        if listener in self.hubs:
            self.queue.append((listener, PeerConnected(dialer, outbound=False)))

    def disconnect(self, a: PeerId, b: PeerId) -> None:
        """Drop the link between ``a`` and ``b``; both engines hear of it."""
        self.links.discard(frozenset((a, b)))
        for me, other in ((a, b), (b, a)):
            if me in self.hubs:
                self.queue.append((me, PeerDisconnected(other)))

    def connected(self, a: PeerId, b: PeerId) -> bool:
        """Tell whether a link is up."""
        return frozenset((a, b)) in self.links

    def inject(self, sender: PeerId, target: PeerId, data: bytes, gossip: bool = False) -> None:
        """Deliver raw bytes from ``sender`` (usually a :class:`RawPeer`) to a hub."""
        event: Event = GossipReceived(sender, data) if gossip else DataReceived(sender, data)
        self.queue.append((target, event))

    def deliver(self, owner: PeerId, event: Event) -> None:
        """Hand one event to a hub's engine and execute its commands."""
        hub = self.hubs[owner]
        self.execute(owner, hub.engine.handle(event, self.now))

    def execute(self, owner: PeerId, commands: list[Command]) -> None:
        """Do what an engine asked, as node/ would."""
        hub = self.hubs[owner]
        for cmd in commands:
            self.execute_log.append((owner, cmd))
            match cmd:
                case Send():
                    self._send(owner, cmd)
                case SetTimer(timer, at):
                    self.timers[(owner, timer)] = at
                case CancelTimer(timer):
                    self.timers.pop((owner, timer), None)
                case StoreBlocks(blocks):
                    records = []
                    for block in blocks:
                        if block.cid in hub.blocks.blocks:
                            continue
                        hub.blocks.blocks[block.cid] = block.data
                        if block.ts is not None:
                            hub.items.add(item_key(block.ts, block.cid))
                            records.append((block.ts, block.cid))
                    stored = BlocksStored(tuple(b.cid for b in blocks), tuple(records))
                    self.queue.appendleft((owner, stored))
                case Publish(data):
                    for link in sorted(self.links, key=sorted):
                        if owner in link:
                            (other,) = link - {owner}
                            if other in self.hubs:
                                self.queue.append((other, GossipReceived(owner, data)))
                case Disconnect(peer):
                    self.disconnects.append((owner, cmd))
                    if self.connected(owner, peer):
                        self.links.discard(frozenset((owner, peer)))
                        if peer in self.hubs:
                            self.queue.append((peer, PeerDisconnected(owner)))
                case Ban():
                    self.bans.append((owner, cmd))
                case ReconcileFinished():
                    self.finished.append((owner, cmd))
                case PeerSynced():
                    self.synced.append((owner, cmd))
                case Dial(peer):
                    self.dials.append((owner, cmd))
                    if peer in self.hubs and not self.connected(owner, peer):
                        self.connect(owner, peer)
                case GossipVerdict():
                    self.verdicts.append((owner, cmd))
                case ConnectionClosed():
                    self.closed.append((owner, cmd))
                case _:
                    assert_never(cmd)

    def _send(self, owner: PeerId, cmd: Send) -> None:
        link = frozenset((owner, cmd.peer))
        if link not in self.links:
            return
        if link in self.cut_after:
            room = self.cut_after[link]
            data = cmd.data[:room]
            self.cut_after[link] = room - len(data)
            if self.cut_after[link] <= 0:
                self.links.discard(link)
                del self.cut_after[link]
                self.queue.append((cmd.peer, DataReceived(owner, data)))
                for me, other in ((owner, cmd.peer), (cmd.peer, owner)):
                    self.queue.append((me, PeerDisconnected(other)))
                return
        self.bytes_sent += len(cmd.data)
        if cmd.peer in self.raw:
            self.raw[cmd.peer].inbox.setdefault(owner, bytearray()).extend(cmd.data)
            return
        delay = self.latency.get(link, 0.0)
        if delay:
            self._seq += 1
            event = DataReceived(owner, cmd.data)
            heapq.heappush(self.in_flight, (self.now + delay, self._seq, cmd.peer, event))
        else:
            self.queue.append((cmd.peer, DataReceived(owner, cmd.data)))

    def publish(self, hub: Hub, record: Record) -> None:
        """Store a record at ``hub`` and tell its engine, which announces it."""
        hub.add_record(record)
        self.queue.append((hub.peer, RecordsAdded(((record.ts, record.cid),))))

    def run(self, until: float | None = None, max_events: int = 200_000) -> None:
        """Deliver events, advancing the clock to due timers, until quiet or ``until``."""
        for _ in range(max_events):
            if self.queue:
                owner, event = self.queue.popleft()
                if owner in self.hubs:
                    self.deliver(owner, event)
                continue
            if not self.timers and not self.in_flight:
                return
            due = min(self.timers.items(), key=lambda kv: kv[1]) if self.timers else None
            at = due[1] if due else float("inf")
            if self.in_flight and self.in_flight[0][0] <= at:
                at = self.in_flight[0][0]
                due = None
            if until is not None and at > until:
                self.now = until
                return
            self.now = max(self.now, at)
            if due is None:
                _, _, target, event = heapq.heappop(self.in_flight)
                # Bytes still travelling when the link dropped are lost with it.
                live = isinstance(event, DataReceived) and self.connected(target, event.peer)
                if target in self.hubs and live:
                    self.deliver(target, event)
                continue
            (owner, timer), _ = due
            del self.timers[(owner, timer)]
            self.deliver(owner, TimerFired(timer))
        raise AssertionError("network did not go quiet")

    def settle(self, seconds: float = 1.0) -> None:
        """Run until nothing is left to do within ``seconds`` of virtual time."""
        self.run(until=self.now + seconds)


def quick_config(**changes: object) -> EngineConfig:
    """An engine config for tests (the default alliance), with ``changes`` applied."""
    return replace(EngineConfig(alliance=ALLIANCE), **changes)  # type: ignore[arg-type]


class ConnectionPair(Network):
    """Two hubs on one link, ``a`` dialling ``b``: h11's ``ConnectionPair`` for engines."""

    def __init__(self, a: Hub | None = None, b: Hub | None = None) -> None:
        super().__init__()
        self.a = self.add(a or Hub("hub-a", 1))
        self.b = self.add(b or Hub("hub-b", 2))

    def open(self, seconds: float = 1.0) -> None:
        """Connect the two and run until they are quiet."""
        self.connect(self.a.peer, self.b.peer)
        self.settle(seconds)
