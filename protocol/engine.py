"""The sync engine: one object per node that speaks the whole protocol to every peer,
and decides everything about them.

``commands = engine.handle(event, now)``. On a new connection both sides send
:class:`Hello`, which carries the hub's membership proof; once the versions, the
alliance and membership check out the connection is ready, the dialling side starts a
reconcile (and again every ``reconcile_interval``), and what the reconcile finds missing
goes on the block exchange's want list. Announcements arrive as gossip: each gets a
verdict (:class:`~craftnet.protocol.events.GossipVerdict`: relay it, ignore it, or
reject it and charge the forwarder), adds to the want list, and is relayed within a
budget. Every peer is scored; a graylisted peer is disconnected and refused until its
score recovers, a banned one for the ban.

All peer policy is here, driven by events and timers, with its numbers in
:mod:`craftnet.protocol.policy`: validation and penalties, relay budget, holding
announcements whose signer is not known as a member yet, graylist, bans, disconnects,
redialling, pacing our announcements, announcing fetched records anew once whole,
repairing records whose files are incomplete. The node's driver and simnet only move
bytes and carry out the commands, so a simulated hub decides exactly as a real one.

Each connection and each reconcile is a small state machine whose transitions are
the data tables :data:`CONNECTION_TRANSITIONS` and :data:`RECONCILE_TRANSITIONS`;
:func:`mermaid` draws them for the docs, and the engine moves only along them.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, assert_never

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import MembershipError
from craftnet.identity.verify import KeyVerifier, Verifier
from craftnet.protocol.blocks import (
    BlockConfig,
    BlockExchange,
    BlockSource,
)
from craftnet.protocol.errors import (
    FrameTooLarge,
    LocalProtocolError,
    MalformedMessage,
    ProtocolError,
    RemoteProtocolError,
    UnsupportedVersion,
)
from craftnet.protocol.events import (
    Ban,
    BlocksStored,
    BlocksWanted,
    CancelTimer,
    Command,
    ConnectionClosed,
    DataReceived,
    Dial,
    DialFailed,
    Disconnect,
    Event,
    GossipReceived,
    MembershipChanged,
    PeerConnected,
    PeerDisconnected,
    PeerDiscovered,
    PeerId,
    PeerSynced,
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
    TimerId,
    TimerKind,
)
from craftnet.protocol.framing import (
    MAX_FRAME_SIZE,
    FrameDecoder,
    encode_frame,
    encode_frame_parts,
)
from craftnet.protocol.gossip import Gossip, HeldAnnouncements, Reannounce
from craftnet.protocol.items import TS_BYTES, ItemSource
from craftnet.protocol.members import EVERYONE, Members
from craftnet.protocol.messages import (
    HELLO_VERSIONS,
    MAX_BYE_REASON,
    PROTOCOL_VERSION,
    RECON_CODED_VERSION,
    SUPPORTED_VERSIONS,
    Block,
    Bye,
    DontHave,
    End,
    Have,
    Hello,
    Message,
    Recon,
    Want,
)
from craftnet.protocol.policy import DEFAULT_POLICY, OffenceKind, Policy, Thresholds, Traffic
from craftnet.protocol.reconcile import ReconcileSession, ReconConfig
from craftnet.protocol.scoring import PeerScores, Verdict


class Conn(Enum):
    """States of one connection."""

    NEW = "new"
    HANDSHAKE = "handshake"
    READY = "ready"
    CLOSED = "closed"


class Rec(Enum):
    """States of the reconcile with one peer."""

    IDLE = "idle"
    INITIATING = "initiating"
    RESPONDING = "responding"


class ConnTrigger(Enum):
    """What moves a connection (the labels of the state diagram)."""

    CONNECTED = "connected / send hello"
    HELLO_OK = "compatible hello from a member"
    REFUSED = "refused hello / bye"
    EARLY = "message before hello"
    HELLO_TIMEOUT = "hello timeout"
    BROKEN = "broken stream"
    EOF = "end of stream"
    DISCONNECTED = "disconnected"
    BYE = "the peer refused us (bye)"
    GRAYLISTED = "score below graylist / bye"
    BANNED = "score below disconnect / bye"
    NOT_MEMBER = "membership ended / bye"


class RecTrigger(Enum):
    """What moves a reconcile."""

    START = "ready or interval / send fingerprints"
    PEER_STARTED = "first frame from the peer"
    YIELD = "the dialler started one too / yield"
    DONE = "message needing no answer / want what we lack"
    ABANDON = "bad frame or timeout / abandon"


_LIVE: Final = (Conn.HANDSHAKE, Conn.READY)
CONNECTION_TRANSITIONS: Final[dict[tuple[Conn, ConnTrigger], Conn]] = {
    (Conn.NEW, ConnTrigger.CONNECTED): Conn.HANDSHAKE,
    (Conn.HANDSHAKE, ConnTrigger.HELLO_OK): Conn.READY,
    (Conn.HANDSHAKE, ConnTrigger.REFUSED): Conn.CLOSED,
    (Conn.HANDSHAKE, ConnTrigger.EARLY): Conn.CLOSED,
    (Conn.HANDSHAKE, ConnTrigger.HELLO_TIMEOUT): Conn.CLOSED,
    **{(state, ConnTrigger.BROKEN): Conn.CLOSED for state in _LIVE},
    **{(state, ConnTrigger.EOF): Conn.CLOSED for state in _LIVE},
    **{(state, ConnTrigger.DISCONNECTED): Conn.CLOSED for state in _LIVE},
    **{(state, ConnTrigger.BYE): Conn.CLOSED for state in _LIVE},
    **{(state, ConnTrigger.GRAYLISTED): Conn.CLOSED for state in _LIVE},
    **{(state, ConnTrigger.BANNED): Conn.CLOSED for state in _LIVE},
    (Conn.READY, ConnTrigger.NOT_MEMBER): Conn.CLOSED,
}

RECONCILE_TRANSITIONS: Final[dict[tuple[Rec, RecTrigger], Rec]] = {
    (Rec.IDLE, RecTrigger.START): Rec.INITIATING,
    (Rec.IDLE, RecTrigger.PEER_STARTED): Rec.RESPONDING,
    (Rec.INITIATING, RecTrigger.YIELD): Rec.RESPONDING,
    (Rec.INITIATING, RecTrigger.DONE): Rec.IDLE,
    (Rec.RESPONDING, RecTrigger.DONE): Rec.IDLE,
    (Rec.INITIATING, RecTrigger.ABANDON): Rec.IDLE,
    (Rec.RESPONDING, RecTrigger.ABANDON): Rec.IDLE,
}


def mermaid(
    table: dict[tuple[Conn, ConnTrigger], Conn] | dict[tuple[Rec, RecTrigger], Rec],
) -> str:
    """A Mermaid state diagram of a transition table."""
    lines = ["stateDiagram-v2"]
    first = next(iter(table))[0]
    lines.append(f"    [*] --> {first.name}")
    for (src, trigger), dst in table.items():
        lines.append(f"    {src.name} --> {dst.name}: {trigger.value}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything a node may tune about the protocol."""

    alliance: str
    reconcile_interval: float = 300.0
    reconcile_timeout: float = 120.0
    hello_timeout: float = 10.0
    max_frame_size: int = MAX_FRAME_SIZE
    recon: ReconConfig = field(default_factory=ReconConfig)
    blocks: BlockConfig = field(default_factory=BlockConfig)
    thresholds: Thresholds = field(default_factory=Thresholds)
    policy: Policy = DEFAULT_POLICY
    seen_announcements: int = 10_000
    redial: bool = True
    # Carry announced blocks of up to MAX_PUSHED_BLOCK bytes inside the announcement.
    push_blocks: bool = True
    reannounce: Reannounce = Reannounce.ALL
    # Report PeerSynced (node records it for delta bundles). It keeps, per peer, the
    # records still to travel after a reconcile: off where no one reads it (simnet).
    report_synced: bool = False


@dataclass(frozen=True, slots=True)
class PeerStanding:
    """How an engine judges a peer at one time (:meth:`SyncEngine.standing`)."""

    banned: bool
    offences: int  # offences it committed, of every kind (0: never penalised)
    # Its score, read only when it is neither banned nor unpenalised (then None):
    # reading a score decays it to the time given, so what is not needed is not read.
    score: float | None


@dataclass(slots=True)
class _PendingSync:
    """What must still travel before a peer holds every record we held when our latest
    reconcile with it ended (then the engine reports :class:`PeerSynced`)."""

    owed: set[Cid]  # records it lacked that it has not asked of us yet
    awaited: set[Cid]  # records we lacked that are not stored here yet


@dataclass(slots=True)
class _Peer:
    peer: PeerId
    outbound: bool
    decoder: FrameDecoder
    conn: Conn = Conn.NEW
    rec: Rec = Rec.IDLE
    session: ReconcileSession | None = None
    session_bytes_out: int = 0
    session_bytes_in: int = 0
    reconciles: int = 0
    did: str | None = None
    ignored_sid: int | None = None
    sync: _PendingSync | None = None  # a finished reconcile whose blocks still travel
    frame_size: int = 0  # bytes on the wire of the frame being handled
    coded: bool = False  # its hello listed RECON_CODED_VERSION: it reads coded ranges


@dataclass(frozen=True, slots=True)
class _Frame:
    """One frame of a read: its message, or why it could not be read."""

    message: Message | RemoteProtocolError
    size: int
    broken: bool = False  # the stream cannot be read past it


def _decode_frames(decoder: FrameDecoder) -> list[_Frame]:
    """Every whole frame ``decoder`` holds, up to one that leaves the stream unreadable."""
    frames: list[_Frame] = []
    while True:
        try:
            message = decoder.next_message()
        except RemoteProtocolError as exc:
            frames.append(_Frame(exc, decoder.last_frame_size, decoder.broken))
            if decoder.broken or isinstance(exc, FrameTooLarge):
                return frames
            continue
        if message is None:
            return frames
        frames.append(_Frame(message, decoder.last_frame_size))


def _key_cid(key: bytes) -> Cid | None:
    try:
        return Cid.from_bytes(key[TS_BYTES:])
    except CidError:
        return None


class SyncEngine:
    """Hello, reconcile, block exchange, announcements and all peer policy for every peer."""

    def __init__(
        self,
        *,
        key: PrivateKey,
        peer_id: PeerId,
        items: ItemSource,
        blocks: BlockSource,
        config: EngineConfig,
        rng: random.Random,
        members: Members = EVERYONE,
        verifier: Verifier | None = None,
    ) -> None:
        self.key = key
        self.peer_id = peer_id
        self.items = items
        self.config = config
        self.policy = config.policy
        self.rng = rng
        self.members = members
        self.verifier: Verifier = verifier or KeyVerifier()
        self.exchange = BlockExchange(
            blocks, rng, config.blocks, verifier=self.verifier, policy=config.policy
        )
        self.scores = PeerScores(config.thresholds, rate_limits=dict(self.policy.rate_limits))
        self.peers: dict[PeerId, _Peer] = {}
        self._keep: set[PeerId] = set()  # hubs we dialled or were told of: redial them
        self._redial: dict[PeerId, float] = {}
        self._syncing: set[PeerId] = set()  # peers whose ``sync`` is pending
        self._next_sid = 1
        self._now = 0.0
        self._hello: Hello | None = None
        self.gossip = Gossip(
            key=key,
            policy=self.policy,
            exchange=self.exchange,
            scores=self.scores,
            members=members,
            verifier=self.verifier,
            penalize=self._penalize,
            peer_did=self._ready_did,
            reconcile=self._reconcile_if_idle,
            seen_announcements=config.seen_announcements,
            max_frame_size=config.max_frame_size,
            push_blocks=config.push_blocks,
            follow_links=config.blocks.follow_links,
            reannounce=config.reannounce,
        )

    @property
    def held(self) -> HeldAnnouncements:
        """Announcements held until their signers are known as members."""
        return self.gossip.held

    # ---------------------------------------------------------------- public

    def handle(self, event: Event, now: float) -> list[Command]:
        """Feed one event; return the commands to execute, in order."""
        out: list[Command] = []
        self._now = now
        # Class patterns without captures: this runs for every event of every simulated
        # hub, and positional captures cost a lookup of __match_args__ each.
        match event:
            case GossipReceived():
                self.gossip.received(event.peer, event.data, now, out)
            case BlocksStored():
                self.exchange.stored(event.cids)
                self.gossip.stored(event.cids, event.records, now, out)
                if self._syncing:
                    self._stored_for_sync(event.cids, out)
            case DataReceived():
                self._data(event.peer, event.data, now, out)
            case TimerFired():
                self._timer(event.timer, now, out)
            case PeerConnected():
                self._connected(event.peer, event.outbound, now, out)
            case StreamEnded():
                self._eof(event.peer, now, out)
            case PeerDisconnected():
                known = self.peers.get(event.peer)
                if known is not None:
                    self._close(known, ConnTrigger.DISCONNECTED, out, side=Side.REMOTE)
            case RecordsAdded():
                self.gossip.announce(event.records, event.heads, now, out)
            case BlocksWanted():
                self.exchange.want(event.cids)
            case StoreFailed():
                self.exchange.stored(event.cids)  # not stored after all: wanted again
                self.exchange.want(event.cids)
            case PeerDiscovered():
                peer = event.peer
                self._keep.add(peer)
                if peer not in self.peers and self.scores.verdict(peer, now) is Verdict.OK:
                    out.append(Dial(peer))
            case DialFailed():
                if event.peer not in self.peers:
                    self._schedule_redial(event.peer, None, now, out)
            case MembershipChanged():
                self._membership_changed(now, out)
            case _:
                assert_never(event)
        exchange = self.exchange
        # _settle's own first test, without its call: most events leave nothing to do.
        if exchange.offences or exchange.has_work():
            self._settle(now, out)
        return out

    def export_wants(self) -> bytes:
        """The want list, to persist (e.g. in the store's ``meta``) before shutting down."""
        return self.exchange.export_wants()

    @property
    def wants_added(self) -> int:
        """How many blocks were ever put on the want list: while this stays put, a want
        list saved earlier still holds every block wanted now (and some fetched since)."""
        return self.exchange.wants_added

    def import_wants(self, data: bytes) -> int:
        """Restore a want list saved by :meth:`export_wants`; returns how many were new."""
        return self.exchange.import_wants(data)

    def ready_peers(self) -> list[PeerId]:
        """Peers whose handshake is done."""
        return [p.peer for p in self.peers.values() if p.conn is Conn.READY]

    def peer_did(self, peer_id: PeerId) -> str | None:
        """The did ``peer_id`` proved in its hello, while it is connected."""
        peer = self.peers.get(peer_id)
        return None if peer is None else peer.did

    def connection_state(self, peer_id: PeerId) -> str:
        """Where the connection with ``peer_id`` stands (``closed`` when there is none)."""
        peer = self.peers.get(peer_id)
        return Conn.CLOSED.value if peer is None else peer.conn.value

    def score(self, peer_id: PeerId, now: float) -> float:
        """The peer's score at ``now`` (graylisting and bans follow from it)."""
        return self.scores.score(peer_id, now)

    def standing(self, peer_id: PeerId, now: float) -> PeerStanding:
        """Whether ``peer_id`` is banned at ``now``, how many offences it committed and,
        if it is not banned and has offended, its score (for metrics and status pages;
        judge peers with the thresholds in ``config.thresholds``).

        An observer's read: it lifts a ban that has run out and decays the score to
        ``now``, exactly as the engine's own checks at that time would, and changes
        nothing else.
        """
        banned = self.scores.is_banned(peer_id, now)
        offences = sum(self.scores.offence_counts(peer_id).values())
        if banned or not offences:
            return PeerStanding(banned, offences, None)
        return PeerStanding(False, offences, self.scores.score(peer_id, now))

    def wanted(self) -> int:
        """How many blocks are still wanted from peers."""
        return len(self.exchange.wants)

    def frame_missing(self, peer_id: PeerId) -> int:
        """Bytes still to come from ``peer_id`` before the frame it began is whole (0 when
        not known): a reader may wait for that much rather than hand over each slice."""
        peer = self.peers.get(peer_id)
        return 0 if peer is None else peer.decoder.missing

    def start_reconcile(self, peer_id: PeerId, now: float) -> list[Command]:
        """Reconcile with ``peer_id`` now (e.g. ``craftnet sync``), if it is idle."""
        out: list[Command] = []
        peer = self.peers.get(peer_id)
        if peer is not None and peer.conn is Conn.READY and peer.rec is Rec.IDLE:
            self._start_reconcile(peer, now, out)
        self._settle(now, out)
        return out

    def pending_announcements(self) -> int:
        """Records waiting to be announced: queued for our next turn, or fetched and
        waiting for the rest of their DAG."""
        return self.gossip.pending()

    def banned_until(self, peer: PeerId, now: float) -> float | None:
        """When the ban of ``peer`` ends, if it is banned at ``now``."""
        return self.scores.banned_until(peer) if self.scores.is_banned(peer, now) else None

    # ----------------------------------------------------------- transitions

    def _move(self, peer: _Peer, trigger: ConnTrigger) -> None:
        target = CONNECTION_TRANSITIONS.get((peer.conn, trigger))
        if target is None:
            raise LocalProtocolError(f"no transition from {peer.conn.name} on {trigger.value!r}")
        peer.conn = target

    def _move_rec(self, peer: _Peer, trigger: RecTrigger) -> None:
        target = RECONCILE_TRANSITIONS.get((peer.rec, trigger))
        if target is None:
            raise LocalProtocolError(
                f"no reconcile transition from {peer.rec.name} on {trigger.value!r}"
            )
        peer.rec = target

    # --------------------------------------------------------------- helpers

    def _send(self, peer: _Peer, messages: list[Message], out: list[Command]) -> int:
        limit = self.config.max_frame_size
        if len(messages) == 1 and type(messages[0]) is not Block:
            data = encode_frame(messages[0], max_frame_size=limit)
        else:
            # A block's data is joined into the answer as it is (one copy).
            data = b"".join(
                [part for m in messages for part in encode_frame_parts(m, max_frame_size=limit)]
            )
        if data:
            out.append(Send(peer.peer, data))
        return len(data)

    def _ready_did(self, peer_id: PeerId) -> str | None:
        """The did of ``peer_id`` if its handshake is done."""
        peer = self.peers.get(peer_id)
        return peer.did if peer is not None and peer.conn is Conn.READY else None

    def _reconcile_if_idle(self, peer_id: PeerId, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is not None and peer.conn is Conn.READY and peer.rec is Rec.IDLE:
            self._start_reconcile(peer, now, out)

    def _penalize(
        self,
        peer_id: PeerId,
        offence: OffenceKind,
        now: float,
        out: list[Command],
        traffic: Traffic | None = None,
    ) -> None:
        """Charge an offence (``traffic``: the kind of message a flood was of); below the
        graylist line the peer is cut off, below the ban line banned, saying why."""
        verdict = self.scores.penalize(peer_id, offence, now)
        if verdict is Verdict.OK:
            return
        peer = self.peers.get(peer_id)
        what = f"{offence} ({traffic})" if traffic is not None else str(offence)
        counts = self.scores.offence_counts(peer_id)
        record = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        if verdict is Verdict.BAN:
            until = self.scores.banned_until(peer_id) or now
            why = f"banned for {until - now:.0f} s: score below the ban line after {what}"
            if peer is not None:
                self._close(peer, ConnTrigger.BANNED, out, side=Side.LOCAL, bye=why)
            out.append(Ban(peer_id, until, f"misbehaved ({what}; offences: {record})"))
        elif peer is not None:
            score = self.scores.score(peer_id, now)
            why = (
                f"graylisted: score {score:.1f} below {self.scores.thresholds.graylist:g} "
                f"after {what}; refused until it recovers (offences: {record})"
            )
            self._close(peer, ConnTrigger.GRAYLISTED, out, side=Side.LOCAL, bye=why)

    def _refuse(
        self, peer_id: PeerId, why: str, out: list[Command], *, punished: bool = False
    ) -> None:
        """Turn away a peer whose stream just opened, saying why."""
        out.append(Send(peer_id, encode_frame(Bye(why[:MAX_BYE_REASON]))))
        out.append(Disconnect(peer_id, why))
        out.append(ConnectionClosed(peer_id, Side.LOCAL, why, None, punished))

    def _close(
        self,
        peer: _Peer,
        trigger: ConnTrigger,
        out: list[Command],
        *,
        side: Side,
        reason: str | None = None,
        bye: str | None = None,
    ) -> None:
        if peer.conn is Conn.CLOSED:
            return
        self._move(peer, trigger)
        if peer.rec is not Rec.IDLE:
            self._move_rec(peer, RecTrigger.ABANDON)
            peer.session = None
        self.peers.pop(peer.peer, None)
        out.extend(self.exchange.peer_gone(peer.peer))
        out.append(CancelTimer((TimerKind.RECONCILE, peer.peer)))
        out.append(CancelTimer((TimerKind.RECONCILE_TIMEOUT, peer.peer)))
        out.append(CancelTimer((TimerKind.HELLO, peer.peer)))
        why = reason or bye or trigger.value
        if bye is not None:
            self._send(peer, [Bye(bye[:MAX_BYE_REASON])], out)
        if trigger is not ConnTrigger.DISCONNECTED:
            out.append(Disconnect(peer.peer, why))
        punished = trigger in (ConnTrigger.GRAYLISTED, ConnTrigger.BANNED)
        out.append(ConnectionClosed(peer.peer, side, why, peer.did, punished))
        if peer.outbound:
            self._keep.add(peer.peer)
        self._schedule_redial(peer.peer, trigger, self._now, out)

    def _schedule_redial(
        self, peer_id: PeerId, trigger: ConnTrigger | None, now: float, out: list[Command]
    ) -> None:
        """Dial a hub we keep a connection to again: soon after an accident, after its
        ban or graylisting, slowly after a refusal, backing off while it stays away."""
        if not self.config.redial or peer_id not in self._keep:
            return
        policy = self.policy
        if trigger is ConnTrigger.BANNED or trigger is ConnTrigger.GRAYLISTED:
            at = self.scores.recovers_at(peer_id, now) + policy.redial_min
        elif trigger in (ConnTrigger.REFUSED, ConnTrigger.BYE, ConnTrigger.NOT_MEMBER):
            at = now + policy.redial_max * (1 + self.rng.random() / 4)
        else:
            delay = self._redial.get(peer_id, policy.redial_min)
            self._redial[peer_id] = min(2 * delay, policy.redial_max)
            at = now + delay * (1 + self.rng.random() / 4)
        out.append(SetTimer((TimerKind.REDIAL, peer_id), at))

    def _settle(self, now: float, out: list[Command]) -> None:
        """Charge offences the exchange noted, then send what the want list allows."""
        exchange = self.exchange
        if not exchange.offences and not exchange.has_work():
            # Most events leave nothing to request; scores decay lazily when next read.
            return
        while self.exchange.offences:
            offences, self.exchange.offences = self.exchange.offences, []
            for peer_id, offence in offences:
                self._penalize(peer_id, OffenceKind(offence), now, out)
        usable = self.scores.ok_peers(
            [p.peer for p in self.peers.values() if p.conn is Conn.READY], now
        )
        pending: dict[PeerId, list[Message]] = {}
        for item in self.exchange.pump(now, usable):
            if isinstance(item, tuple):
                pending.setdefault(item[0], []).append(item[1])
            else:
                out.append(item)
        for peer_id, messages in pending.items():
            self._send(self.peers[peer_id], messages, out)

    # ---------------------------------------------------------------- events

    def _connected(self, peer_id: PeerId, outbound: bool, now: float, out: list[Command]) -> None:
        banned = self.banned_until(peer_id, now)
        if banned is not None:
            self._refuse(peer_id, f"banned for {banned - now:.0f} s more", out, punished=True)
            return
        if self.scores.verdict(peer_id, now) is Verdict.GRAYLIST:
            wait = self.scores.recovers_at(peer_id, now) - now
            why = f"graylisted: refused for {wait:.0f} s more"
            self._refuse(peer_id, why, out, punished=True)
            return
        old = self.peers.get(peer_id)
        if old is not None:
            self._close(old, ConnTrigger.DISCONNECTED, out, side=Side.REMOTE, reason="replaced")
        elif not outbound and len(self.peers) >= self.policy.max_peers:
            self._refuse(peer_id, f"no room: already {len(self.peers)} peers", out)
            return
        if outbound:
            self._keep.add(peer_id)
        peer = _Peer(peer_id, outbound, FrameDecoder(self.config.max_frame_size))
        self.peers[peer_id] = peer
        self._move(peer, ConnTrigger.CONNECTED)
        if self._hello is None:
            # The same for every connection (Ed25519 signatures are deterministic).
            # Offer coded reconcile ranges only if we use them too (see messages.py).
            versions = HELLO_VERSIONS if self.config.recon.coded else SUPPORTED_VERSIONS
            self._hello = Hello.create(
                self.key,
                versions,
                self.config.alliance,
                self.peer_id,
                self.members.proof(),
            )
        self._send(peer, [self._hello], out)
        out.append(SetTimer((TimerKind.HELLO, peer_id), now + self.config.hello_timeout))

    def _data(self, peer_id: PeerId, data: bytes, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        self.exchange.heard(peer_id, now)
        peer.decoder.receive_data(data)
        if peer.decoder.waiting:
            return  # a slice of a frame still incomplete (most reads of a big block)
        # Every whole frame of this read is decoded first, so that the records among the
        # blocks can have their signatures checked together; they are then handled one
        # by one, in order, exactly as they came.
        frames = _decode_frames(peer.decoder)
        if len(frames) > 1 and peer.conn is not Conn.HANDSHAKE:
            # Only for a peer whose answers will be taken (not one graylisted meanwhile).
            answers = [frame.message for frame in frames if isinstance(frame.message, Block)]
            if len(answers) > 1 and self.scores.verdict(peer_id, now) is Verdict.OK:
                self.exchange.prepare(answers)
        try:
            for frame in frames:
                if peer.conn is Conn.CLOSED:
                    return
                self._frame(peer, frame, now, out)
        finally:
            self.exchange.settle_prepared()

    def _frame(self, peer: _Peer, frame: _Frame, now: float, out: list[Command]) -> None:
        peer_id = peer.peer
        message = frame.message
        peer.frame_size = frame.size
        if isinstance(message, FrameTooLarge):
            self._penalize(peer_id, OffenceKind.OVERSIZED_FRAME, now, out)
            why = "oversized frame"
            self._close(peer, ConnTrigger.BROKEN, out, side=Side.LOCAL, reason=why)
        elif isinstance(message, UnsupportedVersion):
            if peer.conn is Conn.HANDSHAKE:
                # An older (or newer) hub is not hostile: tell it, charge nothing.
                self._close(peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=str(message))
                return
            self._penalize(peer_id, OffenceKind.MALFORMED_FRAME, now, out)
        elif isinstance(message, RemoteProtocolError):
            self._penalize(peer_id, OffenceKind.MALFORMED_FRAME, now, out)
            if frame.broken:
                self._close(
                    peer, ConnTrigger.BROKEN, out, side=Side.LOCAL, reason="unreadable stream"
                )
        elif isinstance(message, Bye):
            self._close(
                peer,
                ConnTrigger.BYE,
                out,
                side=Side.REMOTE,
                reason=f"{peer_id} refused us: {message.why}",
            )
        elif peer.conn is Conn.HANDSHAKE:
            self._handshake(peer, message, now, out)
        elif self.scores.verdict(peer_id, now) is Verdict.OK:
            self._message(peer, message, now, out)
        elif not self.scores.allow(peer_id, Traffic.GRAYLISTED, now):
            self._penalize(peer_id, OffenceKind.FLOOD, now, out, Traffic.GRAYLISTED)

    def _handshake(self, peer: _Peer, message: Message, now: float, out: list[Command]) -> None:
        if not isinstance(message, Hello):
            self._penalize(peer.peer, OffenceKind.PROTOCOL_VIOLATION, now, out)
            self._close(
                peer, ConnTrigger.EARLY, out, side=Side.LOCAL, bye="a message before the hello"
            )
            return
        if message.alliance != self.config.alliance or PROTOCOL_VERSION not in message.versions:
            why = (
                f"you are in alliance {message.alliance!r} speaking versions "
                f"{list(message.versions)}; we are in {self.config.alliance!r} speaking "
                f"{list(SUPPORTED_VERSIONS)}"
            )
            self._close(peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=why)
            return
        signed = Hello.signed_part(message.versions, message.alliance, message.did, peer.peer)
        try:
            self.verifier.verify(message.did, message.sig, signed)
        except IdentityError as exc:
            self._penalize(peer.peer, OffenceKind.INVALID_SIGNATURE, now, out)
            self._close(
                peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=f"hello signature: {exc}"
            )
            return
        try:
            learned = self.members.admit(message.did, message.proof, self.verifier)
        except MembershipError as exc:
            # A proof we cannot use is no attack: say so, charge nothing.
            why = f"your membership proof is unusable: {exc}"
            self._close(peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=why)
            return
        except IdentityError as exc:
            self._penalize(peer.peer, OffenceKind.INVALID_SIGNATURE, now, out)
            why = f"your membership proof does not verify: {exc}"
            self._close(peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=why)
            return
        if learned is None:
            # No penalty: a hub whose membership we cannot see yet is not hostile.
            why = (
                f"{message.did} is not a member of alliance {self.config.alliance!r} as far "
                f"as we know ({len(message.proof)} proof records checked)"
            )
            self._close(peer, ConnTrigger.REFUSED, out, side=Side.LOCAL, bye=why)
            return
        peer.did = message.did
        peer.coded = RECON_CODED_VERSION in message.versions
        self._move(peer, ConnTrigger.HELLO_OK)
        self._redial.pop(peer.peer, None)
        out.append(CancelTimer((TimerKind.HELLO, peer.peer)))
        self.exchange.peer_ready(peer.peer)
        if learned:
            # The proof taught us certificates (or successions): keep them, as records.
            blocks = tuple(StoredBlock(r.cid, r.block, r.ts, r) for r in learned)
            out.append(StoreBlocks(blocks, peer.peer))
            self.gossip.release_held(now, out)
        if peer.outbound:
            self._start_reconcile(peer, now, out)

    def _message(self, peer: _Peer, message: Message, now: float, out: list[Command]) -> None:
        pid = peer.peer
        if isinstance(message, Want):
            if not self.scores.allow(pid, Traffic.WANT, now):
                self._penalize(pid, OffenceKind.FLOOD, now, out, Traffic.WANT)
                return
            self._send(peer, self.exchange.serve(message), out)
            if peer.sync is not None and not message.have_only:
                peer.sync.owed.difference_update(message.cids)
                self._check_synced(peer, out)
        elif isinstance(message, Have | DontHave | Block | End):
            exchange = self.exchange
            if (
                not exchange.is_open(pid, message.req)
                and not exchange.is_late(pid, message.req)
                and not self.scores.allow(pid, Traffic.STALE_ANSWER, now)
            ):
                self._penalize(pid, OffenceKind.FLOOD, now, out, Traffic.STALE_ANSWER)
                return
            commands = exchange.receive(pid, message, now)
            if any(isinstance(c, StoreBlocks) for c in commands):
                self.scores.reward(pid, now)
            out.extend(commands)
        elif isinstance(message, Recon):
            if not self.scores.allow(pid, Traffic.RECON, now):
                self._penalize(pid, OffenceKind.FLOOD, now, out, Traffic.RECON)
                return
            self._recon(peer, message, now, out)
        else:
            # A second hello, or an announcement on the sync stream (they go by gossip).
            self._penalize(pid, OffenceKind.PROTOCOL_VIOLATION, now, out)

    def _eof(self, peer_id: PeerId, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        # A cut frame is how a dead peer looks as much as a bad one: no penalty, but the
        # cut message is dropped with the decoder, never acted upon.
        with contextlib.suppress(ProtocolError):
            peer.decoder.receive_eof()
        self._close(peer, ConnTrigger.EOF, out, side=Side.REMOTE, reason="the peer hung up")

    def _timer(self, timer: TimerId, now: float, out: list[Command]) -> None:
        kind = TimerKind(timer[0])
        match kind:
            case TimerKind.WANT:
                out.extend(self.exchange.timer(timer, now))
            case TimerKind.REDIAL:
                target = PeerId(timer[1])
                if target in self.peers or self.scores.is_banned(target, now):
                    return
                if self.scores.verdict(target, now) is Verdict.OK:
                    out.append(Dial(target))
                else:
                    at = self.scores.recovers_at(target, now) + self.policy.redial_min
                    out.append(SetTimer((TimerKind.REDIAL, target), at))
            case TimerKind.ANNOUNCE | TimerKind.REANNOUNCE | TimerKind.REPAIR | TimerKind.HELD:
                self.gossip.timer(kind, now, out)
            case TimerKind.HELLO | TimerKind.RECONCILE | TimerKind.RECONCILE_TIMEOUT:
                self._peer_timer(kind, PeerId(timer[1]), now, out)
            case _:
                assert_never(kind)

    def _peer_timer(self, kind: TimerKind, peer_id: PeerId, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        if kind is TimerKind.HELLO and peer.conn is Conn.HANDSHAKE:
            self._close(peer, ConnTrigger.HELLO_TIMEOUT, out, side=Side.LOCAL)
        elif kind is TimerKind.RECONCILE and peer.conn is Conn.READY and peer.rec is Rec.IDLE:
            self._start_reconcile(peer, now, out)
        elif kind is TimerKind.RECONCILE_TIMEOUT and peer.rec is not Rec.IDLE:
            self._move_rec(peer, RecTrigger.ABANDON)
            peer.session = None
            self._penalize(peer.peer, OffenceKind.TIMEOUT, now, out)
            if peer.outbound and peer.conn is Conn.READY:
                at = now + self.config.reconcile_interval
                out.append(SetTimer((TimerKind.RECONCILE, peer.peer), at))

    def _membership_changed(self, now: float, out: list[Command]) -> None:
        """Cut off peers that are no longer members; take held announcements that now are;
        our own proof may have changed too."""
        self._hello = None
        for peer in list(self.peers.values()):
            if peer.conn is Conn.READY and peer.did and not self.members.is_member(peer.did):
                why = f"{peer.did} is no longer a member of alliance {self.config.alliance!r}"
                self._close(peer, ConnTrigger.NOT_MEMBER, out, side=Side.LOCAL, bye=why)
        self.gossip.release_held(now, out)

    # ------------------------------------------------------------- reconcile

    def _session(self, peer: _Peer, sid: int, *, initiator: bool) -> ReconcileSession:
        """A reconcile session with ``peer``, coded ranges if its hello offered them."""
        return ReconcileSession(
            self.items,
            sid=sid,
            initiator=initiator,
            rng=self.rng,
            config=self.config.recon,
            coded=peer.coded,
        )

    def _start_reconcile(self, peer: _Peer, now: float, out: list[Command]) -> None:
        self._move_rec(peer, RecTrigger.START)
        session = self._session(peer, self._next_sid, initiator=True)
        self._next_sid += 1
        peer.session = session
        peer.session_bytes_in = 0
        peer.session_bytes_out = self._send(peer, list(session.start()), out)
        at = now + self.config.reconcile_timeout
        out.append(SetTimer((TimerKind.RECONCILE_TIMEOUT, peer.peer), at))

    def _recon(self, peer: _Peer, frame: Recon, now: float, out: list[Command]) -> None:
        opening = frame.initiator and frame.seq == 0
        if opening and peer.rec is Rec.INITIATING:
            if peer.outbound:
                # Both started at once; the dialler's session wins and the peer yields.
                peer.ignored_sid = frame.sid
                return
            self._move_rec(peer, RecTrigger.YIELD)
            peer.session = None
        elif peer.rec is Rec.INITIATING and frame.initiator and frame.sid == peer.ignored_sid:
            return
        if opening and peer.rec in (Rec.IDLE, Rec.RESPONDING) and peer.session is None:
            if peer.rec is Rec.IDLE:
                self._move_rec(peer, RecTrigger.PEER_STARTED)
            peer.session = self._session(peer, frame.sid, initiator=False)
            peer.session_bytes_in = 0
            peer.session_bytes_out = 0
            at = now + self.config.reconcile_timeout
            out.append(SetTimer((TimerKind.RECONCILE_TIMEOUT, peer.peer), at))
        session = peer.session
        if session is None:
            self._penalize(peer.peer, OffenceKind.PROTOCOL_VIOLATION, now, out)
            return
        peer.session_bytes_in += peer.frame_size
        try:
            replies = session.receive(frame)
        except MalformedMessage:
            self._abandon(peer, OffenceKind.MALFORMED_FRAME, now, out)
            return
        except RemoteProtocolError:
            self._abandon(peer, OffenceKind.PROTOCOL_VIOLATION, now, out)
            return
        peer.session_bytes_out += self._send(peer, list(replies), out)
        if session.done:
            self._finish(peer, session, now, out)

    def _abandon(self, peer: _Peer, offence: OffenceKind, now: float, out: list[Command]) -> None:
        self._move_rec(peer, RecTrigger.ABANDON)
        peer.session = None
        out.append(CancelTimer((TimerKind.RECONCILE_TIMEOUT, peer.peer)))
        if peer.outbound:
            at = now + self.config.reconcile_interval
            out.append(SetTimer((TimerKind.RECONCILE, peer.peer), at))
        self._penalize(peer.peer, offence, now, out)

    def _finish(
        self, peer: _Peer, session: ReconcileSession, now: float, out: list[Command]
    ) -> None:
        self._move_rec(peer, RecTrigger.DONE)
        peer.session = None
        peer.reconciles += 1
        wanted: list[Cid] = []
        junk = 0
        for key in session.need:
            cid = _key_cid(key)
            if cid is None:
                junk += 1
            else:
                wanted.append(cid)
        self.exchange.want(sorted(wanted), peer.peer, promised=True)
        if junk:
            self._penalize(peer.peer, OffenceKind.MALFORMED_FRAME, now, out)
        out.append(CancelTimer((TimerKind.RECONCILE_TIMEOUT, peer.peer)))
        out.append(
            ReconcileFinished(
                peer.peer,
                len(session.need),
                len(session.their_need),
                session.round_trips,
                peer.session_bytes_out,
                peer.session_bytes_in,
            )
        )
        if peer.outbound and peer.conn is Conn.READY:
            at = now + self.config.reconcile_interval
            out.append(SetTimer((TimerKind.RECONCILE, peer.peer), at))
        # Both hubs hold the union once the peer has asked us for what it lacked (what it
        # fetches elsewhere keeps it owed, until a later reconcile finds nothing) and what
        # we lacked is stored here: then our own records are a lower bound of its.
        if self.config.report_synced:
            owed = {cid for key in session.their_need if (cid := _key_cid(key)) is not None}
            peer.sync = _PendingSync(owed, set(wanted))
            self._syncing.add(peer.peer)
            self._check_synced(peer, out)

    def _stored_for_sync(self, cids: tuple[Cid, ...], out: list[Command]) -> None:
        for pid in list(self._syncing):
            peer = self.peers.get(pid)
            if peer is None or peer.sync is None:
                self._syncing.discard(pid)
                continue
            peer.sync.awaited.difference_update(cids)
            self._check_synced(peer, out)

    def _check_synced(self, peer: _Peer, out: list[Command]) -> None:
        sync = peer.sync
        if sync is None or sync.owed or sync.awaited:
            return
        peer.sync = None
        self._syncing.discard(peer.peer)
        if peer.did is not None:
            out.append(PeerSynced(peer.peer, peer.did))
