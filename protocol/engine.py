"""The sync engine: one object per node that speaks the whole protocol to every peer.

``commands = engine.handle(event, now)``. On a new connection both sides send
:class:`Hello`; once the versions and the alliance match the connection is ready, the
dialling side starts a reconcile (and again every ``reconcile_interval``), and what
the reconcile finds missing goes on the block exchange's want list. Announcements
arrive as gossip and add to the want list too. Every peer is scored; below the
thresholds its messages are ignored, then it is disconnected and banned.

Each connection and each reconcile is a small state machine whose transitions are
the data tables :data:`CONNECTION_TRANSITIONS` and :data:`RECONCILE_TRANSITIONS`;
:func:`mermaid` draws them for the docs, and the engine moves only along them.
"""

from __future__ import annotations

import contextlib
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.blocks import BlockConfig, BlockExchange, BlockSource
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
    StreamEnded,
    TimerFired,
)
from craftnet.protocol.framing import MAX_FRAME_SIZE, FrameDecoder, decode_frame, encode_frame
from craftnet.protocol.items import TS_BYTES, ItemSource
from craftnet.protocol.messages import (
    MAX_ANNOUNCE_ITEMS,
    MAX_PUSHED_BLOCK,
    MAX_PUSHED_TOTAL,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Announce,
    Block,
    DontHave,
    End,
    Have,
    Hello,
    Message,
    Recon,
    Want,
)
from craftnet.protocol.reconcile import ReconcileSession, ReconConfig
from craftnet.protocol.scoring import PeerScores, Thresholds, Verdict


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


CONNECTION_TRANSITIONS: Final[dict[tuple[Conn, str], Conn]] = {
    (Conn.NEW, "connected / send hello"): Conn.HANDSHAKE,
    (Conn.HANDSHAKE, "compatible hello from a member"): Conn.READY,
    (Conn.HANDSHAKE, "refused hello"): Conn.CLOSED,
    (Conn.HANDSHAKE, "message before hello"): Conn.CLOSED,
    (Conn.HANDSHAKE, "hello timeout"): Conn.CLOSED,
    (Conn.HANDSHAKE, "broken stream"): Conn.CLOSED,
    (Conn.READY, "broken stream"): Conn.CLOSED,
    (Conn.HANDSHAKE, "end of stream"): Conn.CLOSED,
    (Conn.READY, "end of stream"): Conn.CLOSED,
    (Conn.HANDSHAKE, "disconnected"): Conn.CLOSED,
    (Conn.READY, "disconnected"): Conn.CLOSED,
    (Conn.HANDSHAKE, "score below disconnect"): Conn.CLOSED,
    (Conn.READY, "score below disconnect"): Conn.CLOSED,
}

RECONCILE_TRANSITIONS: Final[dict[tuple[Rec, str], Rec]] = {
    (Rec.IDLE, "ready or interval / send fingerprints"): Rec.INITIATING,
    (Rec.IDLE, "first frame from the peer"): Rec.RESPONDING,
    (Rec.INITIATING, "the dialler started one too / yield"): Rec.RESPONDING,
    (Rec.INITIATING, "message needing no answer / want what we lack"): Rec.IDLE,
    (Rec.RESPONDING, "message needing no answer / want what we lack"): Rec.IDLE,
    (Rec.INITIATING, "bad frame or timeout / abandon"): Rec.IDLE,
    (Rec.RESPONDING, "bad frame or timeout / abandon"): Rec.IDLE,
}


def mermaid(table: dict[tuple[Conn, str], Conn] | dict[tuple[Rec, str], Rec]) -> str:
    """A Mermaid state diagram of a transition table."""
    lines = ["stateDiagram-v2"]
    first = next(iter(table))[0]
    lines.append(f"    [*] --> {first.name}")
    for (src, trigger), dst in table.items():
        lines.append(f"    {src.name} --> {dst.name}: {trigger}")
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
    seen_announcements: int = 10_000
    redial: bool = True
    redial_min: float = 2.0
    redial_max: float = 600.0
    # Carry announced blocks of up to MAX_PUSHED_BLOCK bytes inside the announcement.
    push_blocks: bool = True


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


def _key_cid(key: bytes) -> Cid | None:
    try:
        return Cid.from_bytes(key[TS_BYTES:])
    except CidError:
        return None


GOSSIP_MAX_FRAME: Final = 64 * 1024  # an announcement is one frame of at most this


def check_announcement(
    data: bytes, is_member: Callable[[str], bool]
) -> tuple[Announce | None, str | None]:
    """The gossip validator: ``(announcement, None)`` if ``data`` is one whole frame
    holding an announcement signed by a member, else ``(None, offence)``."""
    try:
        message = decode_frame(data, max_frame_size=GOSSIP_MAX_FRAME)
    except ProtocolError:
        return None, "malformed_frame"
    if not isinstance(message, Announce):
        return None, "protocol_violation"
    try:
        message.verify()
    except IdentityError:
        return None, "invalid_signature"
    if not is_member(message.did):
        return None, "not_member"
    return message, None


class SyncEngine:
    """Hello, reconcile, block exchange, announcements and scoring for every peer."""

    def __init__(
        self,
        *,
        key: PrivateKey,
        peer_id: PeerId,
        items: ItemSource,
        blocks: BlockSource,
        config: EngineConfig,
        rng: random.Random,
        is_member: Callable[[str], bool] | None = None,
    ) -> None:
        self.key = key
        self.peer_id = peer_id
        self.items = items
        self.config = config
        self.rng = rng
        self.is_member = is_member or (lambda did: True)
        self.exchange = BlockExchange(blocks, rng, config.blocks)
        self.scores = PeerScores(config.thresholds)
        self.peers: dict[PeerId, _Peer] = {}
        self.finished: list[ReconcileFinished] = []
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._next_sid = 1
        self._now = 0.0
        self._redial: dict[PeerId, float] = {}
        self._hello: Hello | None = None

    # ---------------------------------------------------------------- public

    def handle(self, event: Event, now: float) -> list[Command]:
        """Feed one event; return the commands to execute, in order."""
        out: list[Command] = []
        self._now = now
        if isinstance(event, PeerConnected):
            self._connected(event.peer, event.outbound, now, out)
        elif isinstance(event, DataReceived):
            self._data(event.peer, event.data, now, out)
        elif isinstance(event, StreamEnded):
            self._eof(event.peer, now, out)
        elif isinstance(event, PeerDisconnected):
            peer = self.peers.get(event.peer)
            if peer is not None:
                self._close(peer, "disconnected", out)
        elif isinstance(event, TimerFired):
            self._timer(event.timer, now, out)
        elif isinstance(event, BlocksWanted):
            self.exchange.want(event.cids)
        elif isinstance(event, RecordsAdded):
            self._announce(event, out)
        elif isinstance(event, GossipReceived):
            self._gossip(event.peer, event.data, now, out)
        else:  # pragma: no cover - the union is closed
            raise LocalProtocolError(f"unknown event {event!r}")
        self._settle(now, out)
        return out

    def blocks_stored(self, cids: list[Cid]) -> None:
        """The driver committed a ``StoreBlocks``; the store now answers for these."""
        self.exchange.stored(cids)

    def export_wants(self) -> bytes:
        """The want list, to persist (e.g. in the store's ``meta``) before shutting down."""
        return self.exchange.export_wants()

    def import_wants(self, data: bytes) -> int:
        """Restore a want list saved by :meth:`export_wants`; returns how many were new."""
        return self.exchange.import_wants(data)

    def ready_peers(self) -> list[PeerId]:
        """Peers whose handshake is done."""
        return [p.peer for p in self.peers.values() if p.conn is Conn.READY]

    def start_reconcile(self, peer_id: PeerId, now: float) -> list[Command]:
        """Reconcile with ``peer_id`` now (e.g. ``craftnet sync``), if it is idle."""
        out: list[Command] = []
        peer = self.peers.get(peer_id)
        if peer is not None and peer.conn is Conn.READY and peer.rec is Rec.IDLE:
            self._start_reconcile(peer, now, out)
        self._settle(now, out)
        return out

    # ----------------------------------------------------------- transitions

    def _move(self, peer: _Peer, trigger: str) -> None:
        target = CONNECTION_TRANSITIONS.get((peer.conn, trigger))
        if target is None:
            raise LocalProtocolError(f"no transition from {peer.conn.name} on {trigger!r}")
        peer.conn = target

    def _move_rec(self, peer: _Peer, trigger: str) -> None:
        target = RECONCILE_TRANSITIONS.get((peer.rec, trigger))
        if target is None:
            raise LocalProtocolError(f"no reconcile transition from {peer.rec.name} on {trigger!r}")
        peer.rec = target

    # --------------------------------------------------------------- helpers

    def _send(self, peer: _Peer, messages: list[Message], out: list[Command]) -> int:
        limit = self.config.max_frame_size
        if len(messages) == 1:
            data = encode_frame(messages[0], max_frame_size=limit)
        else:
            data = b"".join([encode_frame(m, max_frame_size=limit) for m in messages])
        if data:
            out.append(Send(peer.peer, data))
        return len(data)

    def _penalize(self, peer_id: PeerId, offence: str, now: float, out: list[Command]) -> None:
        verdict = self.scores.penalize(peer_id, offence, now)
        if verdict is Verdict.BAN:
            until = self.scores.banned_until(peer_id) or now
            peer = self.peers.get(peer_id)
            if peer is not None:
                self._close(
                    peer,
                    "score below disconnect",
                    out,
                    reason=f"score below threshold after {offence}",
                )
            out.append(Ban(peer_id, until, f"misbehaved ({offence})"))

    def _close(
        self,
        peer: _Peer,
        trigger: str,
        out: list[Command],
        *,
        reason: str | None = None,
    ) -> None:
        if peer.conn is Conn.CLOSED:
            return
        self._move(peer, trigger)
        if peer.rec is not Rec.IDLE:
            self._move_rec(peer, "bad frame or timeout / abandon")
            peer.session = None
        self.peers.pop(peer.peer, None)
        out.extend(self.exchange.peer_gone(peer.peer))
        out.append(CancelTimer(("recon", peer.peer)))
        out.append(CancelTimer(("recon-timeout", peer.peer)))
        out.append(CancelTimer(("hello", peer.peer)))
        if trigger != "disconnected":
            out.append(Disconnect(peer.peer, reason or trigger))
        if (
            peer.outbound
            and self.config.redial
            and trigger not in ("score below disconnect", "refused hello")
        ):
            # Reconnect to hubs we chose to dial, backing off while they stay away.
            delay = self._redial.get(peer.peer, self.config.redial_min)
            self._redial[peer.peer] = min(2 * delay, self.config.redial_max)
            at = self._now + delay * (1 + self.rng.random() / 4)
            out.append(SetTimer(("redial", peer.peer), at))

    def _settle(self, now: float, out: list[Command]) -> None:
        """Charge offences the exchange noted, then send what the want list allows."""
        exchange = self.exchange
        if not exchange.offences and not exchange.has_work():
            # Most events leave nothing to request; scores decay lazily when next read.
            return
        while self.exchange.offences:
            offences, self.exchange.offences = self.exchange.offences, []
            for peer_id, offence in offences:
                self._penalize(peer_id, offence, now, out)
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
        if self.scores.is_banned(peer_id, now):
            out.append(Disconnect(peer_id, "banned"))
            return
        old = self.peers.get(peer_id)
        if old is not None:
            self._close(old, "disconnected", out)
        peer = _Peer(peer_id, outbound, FrameDecoder(self.config.max_frame_size))
        self.peers[peer_id] = peer
        self._move(peer, "connected / send hello")
        if self._hello is None:
            # The same for every connection (Ed25519 signatures are deterministic).
            self._hello = Hello.create(
                self.key, SUPPORTED_VERSIONS, self.config.alliance, self.peer_id
            )
        self._send(peer, [self._hello], out)
        out.append(SetTimer(("hello", peer_id), now + self.config.hello_timeout))

    def _data(self, peer_id: PeerId, data: bytes, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        peer.decoder.receive_data(data)
        while peer.conn is not Conn.CLOSED:
            try:
                message = peer.decoder.next_message()
            except FrameTooLarge:
                self._penalize(peer_id, "oversized_frame", now, out)
                self._close(peer, "broken stream", out, reason="oversized frame")
                return
            except UnsupportedVersion as exc:
                self._penalize(peer_id, "malformed_frame", now, out)
                if peer.conn is Conn.HANDSHAKE:
                    self._close(peer, "refused hello", out, reason=str(exc))
                    return
                continue
            except RemoteProtocolError:
                if peer.decoder.broken:
                    self._penalize(peer_id, "malformed_frame", now, out)
                    self._close(peer, "broken stream", out, reason="unreadable stream")
                    return
                self._penalize(peer_id, "malformed_frame", now, out)
                continue
            if message is None:
                return
            if peer.conn is Conn.HANDSHAKE:
                self._handshake(peer, message, now, out)
            elif self.scores.verdict(peer_id, now) is Verdict.OK:
                self._message(peer, message, now, out)
            elif not self.scores.allow(peer_id, "graylisted", now):
                self._penalize(peer_id, "flood", now, out)

    def _handshake(self, peer: _Peer, message: Message, now: float, out: list[Command]) -> None:
        if not isinstance(message, Hello):
            self._penalize(peer.peer, "protocol_violation", now, out)
            self._close(peer, "message before hello", out)
            return
        if message.alliance != self.config.alliance or PROTOCOL_VERSION not in message.versions:
            self._close(
                peer,
                "refused hello",
                out,
                reason=f"peer is in alliance {message.alliance!r} speaking "
                f"versions {list(message.versions)}; we are in "
                f"{self.config.alliance!r} speaking {list(SUPPORTED_VERSIONS)}",
            )
            return
        try:
            message.verify(peer.peer)
        except IdentityError as exc:
            self._penalize(peer.peer, "invalid_signature", now, out)
            self._close(peer, "refused hello", out, reason=f"hello signature: {exc}")
            return
        if not self.is_member(message.did):
            # No penalty: a hub whose membership we have not heard of yet is not hostile.
            self._close(
                peer,
                "refused hello",
                out,
                reason=f"{message.did} is not a member of {self.config.alliance!r}",
            )
            return
        peer.did = message.did
        self._move(peer, "compatible hello from a member")
        self._redial.pop(peer.peer, None)
        out.append(CancelTimer(("hello", peer.peer)))
        self.exchange.peer_ready(peer.peer)
        if peer.outbound:
            self._start_reconcile(peer, now, out)

    def _message(self, peer: _Peer, message: Message, now: float, out: list[Command]) -> None:
        pid = peer.peer
        if isinstance(message, Want):
            if not self.scores.allow(pid, "want", now):
                self._penalize(pid, "flood", now, out)
                return
            self._send(peer, self.exchange.serve(message), out)
        elif isinstance(message, Have | DontHave | Block | End):
            if not self.exchange.is_open(pid, message.req) and not self.scores.allow(
                pid, "stale_answer", now
            ):
                self._penalize(pid, "flood", now, out)
                return
            commands = self.exchange.receive(pid, message, now)
            if any(isinstance(c, StoreBlocks) for c in commands):
                self.scores.reward(pid, now)
            out.extend(commands)
        elif isinstance(message, Recon):
            if not self.scores.allow(pid, "recon", now):
                self._penalize(pid, "flood", now, out)
                return
            self._recon(peer, message, now, out)
        else:
            # A second hello, or an announcement on the sync stream (they go by gossip).
            self._penalize(pid, "protocol_violation", now, out)

    def _eof(self, peer_id: PeerId, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if peer is None:
            return
        # A cut frame is how a dead peer looks as much as a bad one: no penalty, but the
        # cut message is dropped with the decoder, never acted upon.
        with contextlib.suppress(ProtocolError):
            peer.decoder.receive_eof()
        self._close(peer, "end of stream", out)

    def _timer(self, timer: tuple[str, ...], now: float, out: list[Command]) -> None:
        kind = timer[0]
        if kind == "want":
            out.extend(self.exchange.timer(timer, now))
            return
        if kind == "redial":
            target = PeerId(timer[1])
            if target not in self.peers and not self.scores.is_banned(target, now):
                out.append(Dial(target))
            return
        peer = self.peers.get(PeerId(timer[1])) if len(timer) > 1 else None
        if peer is None:
            return
        if kind == "hello" and peer.conn is Conn.HANDSHAKE:
            self._close(peer, "hello timeout", out)
        elif kind == "recon" and peer.conn is Conn.READY and peer.rec is Rec.IDLE:
            self._start_reconcile(peer, now, out)
        elif kind == "recon-timeout" and peer.rec is not Rec.IDLE:
            self._move_rec(peer, "bad frame or timeout / abandon")
            peer.session = None
            self._penalize(peer.peer, "timeout", now, out)
            if peer.outbound:
                out.append(SetTimer(("recon", peer.peer), now + self.config.reconcile_interval))

    # ------------------------------------------------------------- reconcile

    def _start_reconcile(self, peer: _Peer, now: float, out: list[Command]) -> None:
        self._move_rec(peer, "ready or interval / send fingerprints")
        session = ReconcileSession(
            self.items, sid=self._next_sid, initiator=True, rng=self.rng, config=self.config.recon
        )
        self._next_sid += 1
        peer.session = session
        peer.session_bytes_in = 0
        peer.session_bytes_out = self._send(peer, list(session.start()), out)
        out.append(SetTimer(("recon-timeout", peer.peer), now + self.config.reconcile_timeout))

    def _recon(self, peer: _Peer, frame: Recon, now: float, out: list[Command]) -> None:
        opening = frame.initiator and frame.seq == 0
        if opening and peer.rec is Rec.INITIATING:
            if peer.outbound:
                # Both started at once; the dialler's session wins and the peer yields.
                peer.ignored_sid = frame.sid
                return
            self._move_rec(peer, "the dialler started one too / yield")
            peer.session = None
        elif peer.rec is Rec.INITIATING and frame.initiator and frame.sid == peer.ignored_sid:
            return
        if opening and peer.rec in (Rec.IDLE, Rec.RESPONDING) and peer.session is None:
            if peer.rec is Rec.IDLE:
                self._move_rec(peer, "first frame from the peer")
            peer.session = ReconcileSession(
                self.items, sid=frame.sid, initiator=False, rng=self.rng, config=self.config.recon
            )
            peer.session_bytes_in = 0
            peer.session_bytes_out = 0
            out.append(SetTimer(("recon-timeout", peer.peer), now + self.config.reconcile_timeout))
        session = peer.session
        if session is None:
            self._penalize(peer.peer, "protocol_violation", now, out)
            return
        peer.session_bytes_in += peer.decoder.last_frame_size
        try:
            replies = session.receive(frame)
        except MalformedMessage:
            self._abandon(peer, "malformed_frame", now, out)
            return
        except RemoteProtocolError:
            self._abandon(peer, "protocol_violation", now, out)
            return
        peer.session_bytes_out += self._send(peer, list(replies), out)
        if session.done:
            self._finish(peer, session, now, out)

    def _abandon(self, peer: _Peer, offence: str, now: float, out: list[Command]) -> None:
        self._move_rec(peer, "bad frame or timeout / abandon")
        peer.session = None
        out.append(CancelTimer(("recon-timeout", peer.peer)))
        if peer.outbound:
            out.append(SetTimer(("recon", peer.peer), now + self.config.reconcile_interval))
        self._penalize(peer.peer, offence, now, out)

    def _finish(
        self, peer: _Peer, session: ReconcileSession, now: float, out: list[Command]
    ) -> None:
        self._move_rec(peer, "message needing no answer / want what we lack")
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
            self._penalize(peer.peer, "malformed_frame", now, out)
        out.append(CancelTimer(("recon-timeout", peer.peer)))
        done = ReconcileFinished(
            peer.peer,
            len(session.need),
            len(session.their_need),
            session.round_trips,
            peer.session_bytes_out,
            peer.session_bytes_in,
        )
        self.finished.append(done)
        out.append(done)
        if peer.outbound and peer.conn is Conn.READY:
            out.append(SetTimer(("recon", peer.peer), now + self.config.reconcile_interval))

    # --------------------------------------------------------- announcements

    def _announce(self, event: RecordsAdded, out: list[Command]) -> None:
        records = [cid for _, cid in event.records]
        heads = list(event.heads)
        ts = max((ts for ts, _ in event.records), default=0)
        step = MAX_ANNOUNCE_ITEMS
        # Records and heads share one announcement's item budget.
        items = [("r", c) for c in records] + [("h", c) for c in heads]
        for start in range(0, len(items), step):
            part = items[start : start + step]
            ann = Announce.create(
                self.key,
                ts,
                tuple(c for k, c in part if k == "r"),
                tuple(c for k, c in part if k == "h"),
                self._inline_blocks([c for _, c in part]),
            )
            out.append(Publish(encode_frame(ann)))

    def _inline_blocks(self, cids: list[Cid]) -> tuple[bytes, ...]:
        """The small announced blocks held here, to push along (within the limits)."""
        if not self.config.push_blocks:
            return ()
        blocks: list[bytes] = []
        total = 0
        for cid in cids:
            data = self.exchange.blocks.get_block(cid)
            if data is None or len(data) > MAX_PUSHED_BLOCK:
                continue
            if total + len(data) > MAX_PUSHED_TOTAL:
                break
            if data not in blocks:
                blocks.append(data)
                total += len(data)
        return tuple(blocks)

    def _gossip(self, peer_id: PeerId, data: bytes, now: float, out: list[Command]) -> None:
        peer = self.peers.get(peer_id)
        if not self.scores.allow(peer_id, "announce", now):
            self._penalize(peer_id, "flood", now, out)
            return
        if self.scores.verdict(peer_id, now) is not Verdict.OK:
            return
        try:
            limit = min(self.config.max_frame_size, GOSSIP_MAX_FRAME)
            message = decode_frame(data, max_frame_size=limit)
        except ProtocolError:
            self._penalize(peer_id, "malformed_frame", now, out)
            return
        if not isinstance(message, Announce):
            self._penalize(peer_id, "protocol_violation", now, out)
            return
        seen_key = message.sig
        if seen_key in self._seen:
            return
        try:
            message.verify()
        except IdentityError:
            self._penalize(peer_id, "invalid_signature", now, out)
            return
        if not self.is_member(message.did):
            self._penalize(peer_id, "not_member", now, out)
            return
        self._seen[seen_key] = None
        if len(self._seen) > self.config.seen_announcements:
            self._seen.popitem(last=False)
        provider = peer_id if peer is not None and peer.conn is Conn.READY else None
        announced = message.records + message.heads
        if message.blocks:
            stored = self.exchange.pushed(peer_id, announced, message.blocks)
            if stored:
                self.scores.reward(peer_id, now)
                out.extend(stored)
        self.exchange.want(list(announced), provider)
