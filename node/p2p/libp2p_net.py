"""The networking interfaces (:mod:`craftnet.node.p2p.net`) over py-libp2p 0.8.1.

The only module of craftnet that imports libp2p. What it settles, from measurements on
py-libp2p 0.8.1 (see docs/protocol.md, "Running over libp2p"):

* security is Noise only (``new_host`` would otherwise also offer plaintext);
* the stream muxer is yamux (about five times mplex's throughput);
* ``stream.read()`` raises ``StreamEOF`` at the end and other errors when the stream
  broke; both become ``b""`` / :class:`NetworkError` here, since exceptions escaping a
  stream handler are swallowed by libp2p without a word;
* GossipSub runs with a one-second heartbeat, the spam limit raised to what the
  protocol's own flood detectors allow, and its subscription queue drained at once;
* the validator gives the engine's verdict; a message it does not accept is marked seen
  all the same (py-libp2p marks only accepted ones, and would validate every further
  copy of an ignored one and fetch it again through IHAVE/IWANT, each copy counting as
  its forwarder's);
* py-libp2p's auto-connector, which would redial every peer ever seen (exited
  ``craftnet sync`` peers included), is stopped: the engine decides whom to dial;
* its happy-eyeballs head start is set to zero: the swarm waits that long (250 ms)
  after starting each dial for that dial to *fail*, so every successful dial took a
  quarter of a second more than its handshake. A hub listens on TCP alone, one address
  per peer is dialled, and the head start bought nothing;
* a sync stream is written in pieces of one yamux frame in one Noise message
  (:data:`WRITE_SIZE`), opens its yamux window to 16 MiB and credits the peer once per
  MiB read (:meth:`Libp2pStream.open_window`), and a read may wait for the rest of a
  frame begun (``at_least``): a third of the Noise messages, a fourteenth of the window
  updates and under half the reads of py-libp2p's defaults for a bulk transfer. A
  plain stream (the bench's raw baseline) is left as py-libp2p makes it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import multiaddr  # type: ignore[import-untyped]
import trio
from libp2p import create_yamux_muxer_option, new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_pair
from libp2p.custom_types import TProtocol
from libp2p.network import swarm as libp2p_swarm
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service.context import background_trio_service

from craftnet.node.p2p.net import GossipValidator, NetworkError, StreamHandler
from craftnet.protocol.events import PeerId, Validation

SYNC_PROTOCOL: Final = TProtocol("/craftnet/sync/1")
GOSSIP_PROTOCOLS: Final = (TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0"))
GOSSIP_QUEUE: Final = 1024
log = logging.getLogger("craftnet.p2p")

# py-libp2p 0.8.1 starts the next address's dial after this delay *or* when a dial fails,
# never when one succeeds: with it, every dial waited 250 ms after its handshake was done.
# tests/node/p2p/test_libp2p_net.py checks that the name still exists.
libp2p_swarm._HAPPY_EYEBALLS_DELAY = 0.0


def route_libp2p_logs(level: int = logging.WARNING) -> None:
    """Send libp2p's log records (its logger does not propagate) into ``craftnet.libp2p``."""
    target = logging.getLogger("craftnet.libp2p")

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if target.isEnabledFor(record.levelno):
                target.handle(record)

    source = logging.getLogger("libp2p")
    if not any(type(h).__name__ == "_Forward" for h in source.handlers):
        source.addHandler(_Forward())
    source.setLevel(level)


def topic_for(alliance: str) -> str:
    """The GossipSub topic of an alliance's announcements."""
    return f"/craftnet/announce/1/{alliance}"


class _Pubsub(Pubsub):
    """py-libp2p 0.8.1's Pubsub, sending only to admitted peers.

    Announcements carry small records inline, so the topic must not reach a hub that is
    merely connected: a peer is registered (and so ever sent anything) only once the
    driver admits it, after its hello proved alliance membership. Reading what any
    connected peer sends stays as it was; the validator judges that. Blacklisting is made
    safe against a peer leaving meanwhile.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admitted: set[ID] = set()
        # A message's id is its sender's peer id and seqno, and upstream starts the seqno
        # at the clock's whole seconds, adding one a message. A hub keeps its peer id when
        # it restarts, so one back within the second (or within n seconds after n
        # announcements) reused the seqnos of what it had just sent, and peers dropped
        # its first announcements as already seen (for the seen cache's two minutes; the
        # next reconcile was minutes away). Nanoseconds stay ahead of any restart.
        self.counter = time.time_ns()

    async def _handle_new_peer(self, peer_id: ID) -> None:
        if peer_id not in self.admitted:
            return  # registered by admit() once its hello checks out
        await super()._handle_new_peer(peer_id)

    async def _teardown_if_connected(self, peer_id: ID) -> None:
        # Upstream deletes self.peers[peer_id] after an await; if the peer's stream died
        # in between, the KeyError takes the whole pubsub service (and host) down.
        stream = self.peers.get(peer_id)
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.reset()
            self.peers.pop(peer_id, None)
        self._forget_all_subscriptions(peer_id)


def _write_size() -> int:
    """The largest write py-libp2p sends as one yamux frame in one Noise message.

    yamux cuts a write into DATA frames of at most ``MAX_MESSAGE_SIZE - HEADER_SIZE``
    (65,524) bytes, and Noise cuts each frame it is handed (12-byte header included)
    into messages of at most ``MAX_PLAINTEXT_LENGTH`` (65,519) bytes: so a full frame
    went out as a 65,519-byte message and a 17-byte one, each encrypted, length-prefixed,
    sent and on the other side received, decrypted and buffered on its own. A write of
    at most 65,507 bytes is one frame in one message: a third fewer Noise messages for a
    bulk transfer (tests/node/p2p/test_connect.py counts them, so an upgrade that
    changes either limit fails there).
    """
    from libp2p.security.noise import io as noise_io
    from libp2p.stream_muxer.yamux import yamux

    frame: int = min(yamux.MAX_MESSAGE_SIZE, noise_io.MAX_PLAINTEXT_LENGTH)
    header: int = yamux.HEADER_SIZE
    return frame - header


WRITE_SIZE: Final = _write_size()
# What a sync stream lets the peer send ahead (py-libp2p's largest yamux window, which
# its own tuning reaches within the first megabytes of a transfer anyway), and how much
# we read before telling the peer (a yamux window update). See Libp2pStream.open_window.
WINDOW: Final = 16 * 1024 * 1024
CREDIT_STEP: Final = 1024 * 1024
# The most a read waits to have buffered (Libp2pStream.read's at_least): a quarter of
# the window, so that the peer always has room to send it.
WAIT_MAX: Final = WINDOW // 4
# ... and for at most this long: a peer that trickles a big frame is still heard (the
# engine counts a peer silent on its stream by when it last read from it).
WAIT_S: Final = 0.5


class Libp2pStream:
    """A libp2p stream as a :class:`~craftnet.node.p2p.net.ByteStream`."""

    write_size: int = WRITE_SIZE

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._wide: Any = None  # the YamuxStream once open_window widened it

    async def read(self, max_bytes: int, at_least: int = 0) -> bytes:
        """Up to ``max_bytes``; ``b""`` at the end. With ``at_least`` on a stream whose
        window :meth:`open_window` widened, waits until that many bytes (at most
        :data:`WAIT_MAX`) are buffered, or the stream ends, before reading."""
        from libp2p.network.stream.exceptions import StreamEOF

        if at_least > 1 and self._wide is not None:
            await self._buffered(min(at_least, max_bytes, WAIT_MAX))
        try:
            data: bytes = await self._stream.read(max_bytes)
        except StreamEOF:
            return b""
        except Exception as exc:  # libp2p raises many unrelated types for a broken stream
            raise NetworkError(f"stream broke: {type(exc).__name__}: {exc}") from exc
        return data

    async def _buffered(self, wanted: int) -> None:
        """Wait until yamux buffers ``wanted`` bytes of this stream, or it ends.

        py-libp2p's yamux wakes a reader after every frame (64 KiB): a 1 MiB block took 16
        reads, each through NetStream's and yamux's locks and handed to the engine on its
        own. Waiting here (as yamux's own read waits: on the stream's event, replaced once
        it fired) lets the block come in one read. Safe from flow control: the window is
        16 MiB (open_window) and we wait for at most WAIT_MAX of it; a stream that ends,
        is reset or loses its connection wakes the event, and the read that follows says so.
        After WAIT_S the read goes ahead with what there is (a slow peer is still heard).
        """
        muxed = self._wide
        conn = muxed.conn
        sid = muxed.stream_id
        with trio.move_on_after(WAIT_S):
            await self._wait_for(muxed, conn, sid, wanted)

    @staticmethod
    async def _wait_for(muxed: Any, conn: Any, sid: int, wanted: int) -> None:
        while True:
            buffer = conn.stream_buffers.get(sid)
            if (
                buffer is None
                or len(buffer) >= wanted
                or muxed.recv_closed
                or muxed.reset_received
                or conn.event_shutting_down.is_set()
            ):
                return
            event = conn.stream_events.get(sid)
            if event is None:
                return
            await event.wait()
            if conn.stream_events.get(sid) is event:
                conn.stream_events[sid] = trio.Event()

    async def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` (py-libp2p's yamux slices it and copies each slice once
        into its frame, so a view costs no copy more)."""
        try:
            await self._stream.write(data)
        except Exception as exc:
            raise NetworkError(f"cannot write to stream: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close our side."""
        try:
            await self._stream.close()
        except Exception as exc:  # already gone: nothing left to close
            log.debug("closing a stream: %s", exc)

    async def reset(self) -> None:
        """Abort the stream."""
        try:
            await self._stream.reset()
        except Exception as exc:
            log.debug("resetting a stream: %s", exc)

    async def open_window(self) -> None:
        """Let the peer send :data:`WINDOW` bytes ahead, and credit what we read once per
        :data:`CREDIT_STEP` bytes.

        py-libp2p 0.8.1's yamux sends a window update after every read (and a read
        returns about one 64 KiB frame): a sync of 100 MB made 2,000 of them, each a
        frame through Noise and the socket, and handled by the peer's muxer. Here the
        stream's window is its largest from the start and each read only adds to what
        is owed, sent as one update per megabyte: the peer never has less than 15 MiB
        of room while we keep reading, and none once 16 MiB wait unread (flow control
        as before). Only craftnet's sync streams do this (the links call it); a stream
        that is not yamux's is left as it is. tests/node/p2p/test_connect.py checks the
        parts of py-libp2p this relies on.
        """
        from libp2p.stream_muxer.yamux.yamux import YamuxStream

        muxed = getattr(self._stream, "muxed_stream", None)
        if not isinstance(muxed, YamuxStream):
            return
        owed = 0

        async def credit(*, bytes_read: int = 0) -> None:
            # Replaces YamuxStream._auto_tune_and_send_window_update for this stream.
            nonlocal owed
            owed += bytes_read
            if owed < CREDIT_STEP:
                return
            increment, owed = owed, 0
            async with muxed.window_lock:
                muxed.recv_window += increment
            await muxed.send_window_update(increment)

        muxed._auto_tune_and_send_window_update = credit  # type: ignore[method-assign]
        async with muxed.window_lock:
            grow = WINDOW - muxed.target_recv_window
            muxed.target_recv_window = WINDOW
            muxed.recv_window += max(grow, 0)
        if grow > 0:
            try:
                await muxed.send_window_update(grow)
            except Exception as exc:  # the stream broke: the next read says so
                log.debug("widening a stream's window: %s", exc)
                return
        self._wide = muxed


class Libp2pNetwork:
    """A libp2p host (Noise, yamux, TCP) with one GossipSub topic."""

    def __init__(self, seed: bytes, topic: str, *, max_peers: int = 64) -> None:
        key_pair = create_new_key_pair(seed)
        # Room for our peers and some that are still in their handshake.
        limit = 2 * max_peers + 16
        noise = NoiseTransport(key_pair, noise_privkey=create_x25519_pair().private_key)
        self.host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt=create_yamux_muxer_option(),
            connection_config=ConnectionConfig(
                max_connections=limit, min_connections=0, low_watermark=0, high_watermark=limit
            ),
        )
        self.router = GossipSub(
            list(GOSSIP_PROTOCOLS),
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=1,
            max_messages_per_topic_per_second=100.0,
        )
        self.pubsub = _Pubsub(self.host, self.router)
        self.topic = topic
        self._validator: GossipValidator | None = None
        self._handler: StreamHandler | None = None
        self._subscription: Any = None
        self._delivered_send, self._delivered = trio.open_memory_channel[tuple[PeerId, bytes]](
            GOSSIP_QUEUE
        )

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def running(self, listen: list[str]) -> AsyncIterator[Libp2pNetwork]:
        """Listen on ``listen`` (multiaddrs) and run GossipSub until the block ends."""
        addrs = [multiaddr.Multiaddr(a) for a in listen]
        self.host.set_stream_handler(SYNC_PROTOCOL, self._on_stream)
        async with (
            self.host.run(addrs),
            background_trio_service(self.pubsub),
            background_trio_service(self.router),
        ):
            # py-libp2p's auto-connector dials peerstore entries until it holds half of
            # high_watermark connections: every exited `craftnet sync` peer, every 30 s
            # (the redial noise in the logs, and dials to ports other processes reuse).
            # The engine decides whom to dial: this one never dials, whenever the swarm
            # starts it and whatever triggers it.
            network: Any = self.host.get_network()  # the Swarm, which has one
            network.auto_connector.maybe_connect = _no_dials
            await network.auto_connector.stop()
            await self.pubsub.wait_until_ready()
            self.pubsub.set_topic_validator(self.topic, self._validate, False)
            self._subscription = await self.pubsub.subscribe(self.topic)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._drain)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
                    with trio.move_on_after(2) as scope:
                        scope.shield = True
                        await self._hang_up_all()
                        await self.host.close()

    async def _hang_up_all(self) -> None:
        # host.close() under cancellation returns without closing the connections, and
        # peers would keep a dead hub for ready: close each one first, so they see it go.
        network = self.host.get_network()
        for peer in list(network.connections):
            with contextlib.suppress(Exception):
                await network.close_peer(peer)

    async def _drain(self) -> None:
        # GossipSub's subscription queue holds 32 messages and drops the rest: empty it
        # into our own, larger one at once.
        while True:
            msg = await self._subscription.get()
            try:
                origin = PeerId(ID(msg.from_id).to_base58())
            except Exception:
                continue
            try:
                self._delivered_send.send_nowait((origin, bytes(msg.data)))
            except trio.WouldBlock:
                log.warning("gossip queue full; an announcement was dropped (reconcile repairs)")

    def _validate(self, forwarder: ID, msg: Any) -> bool:
        if self._validator is None:
            return False
        try:
            verdict = self._validator(PeerId(forwarder.to_base58()), bytes(msg.data))
        except Exception:  # a validator bug must not take gossip down; reject instead
            log.exception("gossip validator failed")
            verdict = Validation.REJECT
        if verdict is Validation.ACCEPT:
            return True
        # py-libp2p 0.8.1 marks only accepted messages seen: every other copy of one we
        # ignored (over the relay budget, held, a repeat) would be validated again from
        # each peer and asked for again by GossipSub's IHAVE/IWANT on every heartbeat,
        # each time counting as that peer's message. Seen is what it is.
        self.pubsub._mark_msg_seen(msg)
        return False

    async def _on_stream(self, stream: Any) -> None:
        handler = self._handler
        peer = PeerId(stream.muxed_conn.peer_id.to_base58())
        if handler is None:
            await Libp2pStream(stream).reset()
            return
        try:
            await handler(peer, Libp2pStream(stream))
        except Exception:  # libp2p would swallow it silently; say what happened
            log.exception("sync stream handler for %s failed", peer)

    # ------------------------------------------------------------------ Network

    @property
    def peer_id(self) -> PeerId:
        """Our peer id."""
        return PeerId(self.host.get_id().to_base58())

    def listen_addrs(self) -> list[str]:
        """Our addresses with ``/p2p/<id>``."""
        return [str(a) for a in self.host.get_addrs()]

    def set_stream_handler(self, handler: StreamHandler) -> None:
        """Handle incoming sync streams."""
        self._handler = handler

    def peer_of(self, addr: str) -> PeerId:
        """The peer id ``addr`` names."""
        return PeerId(_info(addr).peer_id.to_base58())

    async def connect(self, addr: str) -> PeerId:
        """Connect to ``addr`` (which names the peer id)."""
        info = _info(addr)
        await self._connect(info)
        return PeerId(info.peer_id.to_base58())

    async def _connect(self, info: PeerInfo) -> None:
        try:
            with trio.fail_after(15):
                await self.host.connect(info)
        except Exception as exc:
            raise NetworkError(f"cannot reach {info.peer_id}: {type(exc).__name__}: {exc}") from exc

    async def reconnect(self, peer: PeerId) -> None:
        """Connect to ``peer`` at the addresses we know."""
        pid = ID.from_base58(peer)
        await self._connect(PeerInfo(pid, self.host.get_peerstore().addrs(pid)))

    async def open_stream(self, peer: PeerId) -> Libp2pStream:
        """Open our sync stream to ``peer``."""
        try:
            with trio.fail_after(15):
                stream = await self.host.new_stream(ID.from_base58(peer), [SYNC_PROTOCOL])
        except Exception as exc:
            raise NetworkError(f"cannot open a sync stream to {peer}: {exc}") from exc
        return Libp2pStream(stream)

    async def hang_up(self, peer: PeerId) -> None:
        """Close the connection to ``peer``."""
        try:
            await self.host.disconnect(ID.from_base58(peer))
        except Exception as exc:
            log.debug("hanging up on %s: %s", peer, exc)

    def connected(self) -> list[PeerId]:
        """Peers with an open connection."""
        return [PeerId(p.to_base58()) for p in self.host.get_network().connections]

    # ------------------------------------------------------------------ Gossip

    def set_validator(self, validator: GossipValidator) -> None:
        """Validate announcements before they are delivered or relayed."""
        self._validator = validator

    async def publish(self, data: bytes) -> None:
        """Publish on the alliance topic."""
        try:
            await self.pubsub.publish(self.topic, data)
        except Exception as exc:
            raise NetworkError(f"cannot publish: {type(exc).__name__}: {exc}") from exc

    async def next_message(self) -> tuple[PeerId, bytes]:
        """The next delivered announcement."""
        return await self._delivered.receive()

    async def admit(self, peer: PeerId) -> None:
        """Start sending gossip to ``peer``, a member whose hello was accepted."""
        peer_id = ID.from_base58(peer)
        self.pubsub.admitted.add(peer_id)
        try:
            await self.pubsub.ensure_peer_stream(peer_id)
        except Exception as exc:  # gone meanwhile: admitted again on its next hello
            log.debug("admitting %s to gossip: %s", peer, exc)

    def forget(self, peer: PeerId) -> None:
        """Send ``peer`` no more gossip until it is admitted again."""
        try:
            peer_id = ID.from_base58(peer)
        except Exception as exc:
            log.debug("forgetting %s: %s", peer, exc)
            return
        self.pubsub.admitted.discard(peer_id)
        if peer_id in self.pubsub.peers:
            self.pubsub.manager.run_task(self.pubsub._teardown_if_connected, peer_id)

    def mesh(self) -> set[PeerId]:
        """The peers in GossipSub's mesh for our topic (built on its heartbeat)."""
        return {PeerId(p.to_base58()) for p in self.router.mesh.get(self.topic, set())}


async def _no_dials() -> None:
    """The auto-connector's round, made to dial nobody."""


def _info(addr: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise NetworkError(
            f"{addr!r:.200} is not a peer address like /ip4/10.0.0.2/tcp/4001/p2p/12D3Koo...: "
            f"{exc}"
        ) from exc
