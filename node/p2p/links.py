"""The sync streams to peers: one link per peer, each with a reader and a writer task.

A :class:`Link` is one open sync stream. :class:`Links` dials (one attempt at a time;
the engine redials), opens and accepts streams, keeps the one both sides agree on when
two hubs dial each other at once, reads (waiting while the disk is behind) and writes
(one writer task per stream, so a slow peer never stalls the others), and closes
streams, letting a refused peer's last frames (its bye) go out first. What it reads and
what becomes of a stream it tells the driver as engine events; it decides nothing about
peers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import trio

from craftnet.node.p2p.net import ByteStream, Gossip, Network, NetworkError
from craftnet.protocol.events import (
    DataReceived,
    DialFailed,
    Event,
    PeerConnected,
    PeerDisconnected,
    PeerId,
    StreamEnded,
)

log = logging.getLogger("craftnet.p2p")

READ_SIZE: Final = 1024 * 1024
FAREWELL: Final = 2.0  # seconds a refused peer's last frames (its bye) may take to go out


@dataclass(eq=False)
class Link:
    """One peer's sync stream, its writer's queue, and what went through it."""

    peer: PeerId
    stream: ByteStream
    outbound: bool
    send: trio.MemorySendChannel[bytes]
    recv: trio.MemoryReceiveChannel[bytes]
    closed: trio.Event = field(default_factory=trio.Event)
    flushed: trio.Event = field(default_factory=trio.Event)  # the writer emptied its queue
    # Our reader is done: the peer ended its side, the stream broke, or we stopped.
    ended: trio.Event = field(default_factory=trio.Event)
    # Dropped with a bye: the reader reads on until the peer ends its side (it read the
    # bye), so that our reset cannot overtake the bye in a peer slow to read it.
    farewell: bool = False
    ready: bool = False
    bytes_in: int = 0
    bytes_out: int = 0
    since: float = 0.0


class Links:
    """Every peer's sync stream, and dialling them."""

    def __init__(
        self,
        *,
        network: Network,
        gossip: Gossip,
        handle: Callable[[Event], object],
        is_ready: Callable[[PeerId], bool],
        room: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        missing: Callable[[PeerId], int] = lambda peer: 0,
    ) -> None:
        """``handle`` feeds the engine; ``is_ready`` says whether a peer's handshake is
        done; ``room`` returns once the store keeps up (reading waits on it);
        ``missing`` says how many bytes of a frame begun the engine still waits for from
        a peer (a read may wait for them rather than hand over each slice)."""
        self.network = network
        self.gossip = gossip
        self.handle = handle
        self.is_ready = is_ready
        self.room = room
        self.clock = clock
        self.missing = missing
        self.by_peer: dict[PeerId, Link] = {}
        self.dial_failures: dict[PeerId, str] = {}
        self.addrs: dict[PeerId, str] = {}
        self._dialling: set[PeerId] = set()
        self.nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ dialling

    async def dial(self, peer: PeerId) -> None:
        """One attempt to reach ``peer`` and open our sync stream; the engine hears if
        it failed and decides when to try again."""
        if peer in self._dialling or peer in self.by_peer:
            return
        self._dialling.add(peer)
        try:
            addr = self.addrs.get(peer)
            if addr is not None:
                await self.network.connect(addr)
            else:
                await self.network.reconnect(peer)
            await self.open(peer)
        except NetworkError as exc:
            if self.dial_failures.get(peer) != str(exc):
                log.info("cannot reach %s: %s (the engine retries with backoff)", peer, exc)
            self.dial_failures[peer] = str(exc)
            self.handle(DialFailed(peer, str(exc)))
        else:
            self.dial_failures.pop(peer, None)
        finally:
            self._dialling.discard(peer)

    async def open(self, peer: PeerId) -> None:
        """Open our sync stream to a connected ``peer`` (unless one is open)."""
        # Two hubs that dial each other at once each open a sync stream; both must keep
        # the same one, or each sends its hello where the other does not read: the one
        # of the hub with the lower peer id. A link whose handshake is done gives way to
        # a newer stream from the peer (it restarted), and stands against a new one of ours.
        if peer in self.by_peer:
            return
        stream = await self.network.open_stream(peer)
        old = self.by_peer.get(peer)
        if old is not None and (old.outbound or old.ready or peer < self.network.peer_id):
            await stream.close()  # the peer's stream won the race meanwhile
            return
        link = self._add(peer, stream, outbound=True)
        assert self.nursery is not None
        self.nursery.start_soon(self._reader, link)

    async def inbound(self, peer: PeerId, stream: ByteStream) -> None:
        """A peer opened its sync stream to us: read it until it ends."""
        # The engine decides whether to take it (banned, graylisted, full): it answers
        # PeerConnected with its hello, or with a bye and a Disconnect.
        old = self.by_peer.get(peer)
        if old is not None and old.outbound and not old.ready and self.network.peer_id < peer:
            await stream.reset()  # both opened one at once: ours is the one both keep
            return
        link = self._add(peer, stream, outbound=False)
        await self._reader(link)

    def _add(self, peer: PeerId, stream: ByteStream, *, outbound: bool) -> Link:
        old = self.by_peer.pop(peer, None)
        if old is not None:
            self._drop(old)
        send, recv = trio.open_memory_channel[bytes](math.inf)
        link = Link(peer, stream, outbound, send, recv, since=self.clock())
        self.by_peer[peer] = link
        assert self.nursery is not None
        self.nursery.start_soon(self._writer, link)
        self.handle(PeerConnected(peer, outbound))
        return link

    # ------------------------------------------------------------------ sending

    def send(self, peer: PeerId, data: bytes) -> None:
        """Queue ``data`` for ``peer``'s writer (dropped if the peer has no link)."""
        link = self.by_peer.get(peer)
        if link is not None:
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                link.send.send_nowait(data)

    # ------------------------------------------------------------------ closing

    def _drop(self, link: Link, *, farewell: bool = False) -> None:
        """Forget a link and close its stream (its events no longer reach the engine).

        With ``farewell``, what is queued for the peer (its bye) is written first, and
        the stream is reset and the peer hung up on only once it ended its side (it read
        the bye), for at most :data:`FAREWELL` seconds in all.
        """
        if farewell:
            link.farewell = True
        if self.by_peer.get(link.peer) is link:
            del self.by_peer[link.peer]
            self.gossip.forget(link.peer)  # admitted again after its next hello
        link.send.close()
        link.closed.set()
        if self.nursery is not None:
            self.nursery.start_soon(self._close_stream, link, farewell)

    async def _close_stream(self, link: Link, farewell: bool) -> None:
        if farewell:
            with trio.move_on_after(FAREWELL):
                await link.flushed.wait()
                await link.stream.close()
                # A reset now would discard the bye in a peer that has not read it yet
                # (a refused hub saw only "disconnected" on its first attempt, every
                # time): wait for the peer to end its side first.
                await link.ended.wait()
        await link.stream.reset()

    def disconnect(self, peer: PeerId) -> None:
        """Flush what is queued for ``peer`` (its bye), close its stream and hang up."""
        link = self.by_peer.get(peer)
        if link is not None:
            self._drop(link, farewell=True)
        if self.nursery is not None:
            self.nursery.start_soon(self._hang_up_after_farewell, peer, link)

    async def _hang_up_after_farewell(self, peer: PeerId, link: Link | None) -> None:
        if link is not None:
            with trio.move_on_after(FAREWELL):
                await link.flushed.wait()
                await link.ended.wait()
        if peer not in self.by_peer:  # not back meanwhile
            await self.network.hang_up(peer)

    # ------------------------------------------------------------------ tasks

    async def _reader(self, link: Link) -> None:
        try:
            await link.stream.open_window()  # bulk transfers: few window updates
            while self.by_peer.get(link.peer) is link:
                await self.room()
                try:
                    data = await link.stream.read(READ_SIZE, self.missing(link.peer))
                except NetworkError as exc:
                    if self.by_peer.get(link.peer) is link:
                        log.info("stream from %s broke: %s", link.peer, exc)
                        self._drop(link)
                        self.handle(PeerDisconnected(link.peer))
                    return
                if self.by_peer.get(link.peer) is not link:
                    if data and link.farewell:
                        await self._drain(link)
                    return
                if not data:
                    self._drop(link)
                    self.handle(StreamEnded(link.peer))
                    return
                link.bytes_in += len(data)
                self.handle(DataReceived(link.peer, data))
                if not link.ready and self.is_ready(link.peer):
                    link.ready = True
                    # Its hello proved membership: from now on it hears our gossip.
                    if self.nursery is not None:
                        self.nursery.start_soon(self.gossip.admit, link.peer)
            if link.farewell:
                await self._drain(link)
        finally:
            link.closed.set()
            link.ended.set()

    @staticmethod
    async def _drain(link: Link) -> None:
        """After our bye: drop what the peer still sends until it ends its side, for at
        most :data:`FAREWELL` seconds."""
        with trio.move_on_after(FAREWELL):
            try:
                while await link.stream.read(READ_SIZE):
                    pass
            except NetworkError:
                pass

    async def _writer(self, link: Link) -> None:
        piece = link.stream.write_size
        try:
            async for data in link.recv:
                try:
                    if len(data) <= piece:
                        await link.stream.write(data)
                    else:
                        # In the transport's own units (a block of 1 MiB in 17 writes):
                        # each write a whole one, none cut in two by the layers below.
                        view = memoryview(data)
                        for start in range(0, len(data), piece):
                            await link.stream.write(view[start : start + piece])
                except NetworkError as exc:
                    if self.by_peer.get(link.peer) is link:
                        log.info("writing to %s failed: %s", link.peer, exc)
                        self._drop(link)
                        self.handle(PeerDisconnected(link.peer))
                    return
                link.bytes_out += len(data)
        finally:
            link.flushed.set()
