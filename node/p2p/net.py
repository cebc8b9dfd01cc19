"""The small networking interfaces the node's driver runs on.

The driver (:mod:`craftnet.node.p2p.driver`) and everything above it see only these:
a byte stream per peer, a network that dials and accepts them, and a gossip topic with
a validator. :mod:`craftnet.node.p2p.libp2p_net` implements them over py-libp2p; no
libp2p type crosses this line, so the protocol code and the hub never depend on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from craftnet.errors import CraftnetError
from craftnet.protocol.events import PeerId, Validation


class NetworkError(CraftnetError):
    """A dial, a stream or a publish failed (unreachable peer, bad address, closed host)."""


class ByteStream(Protocol):
    """One bidirectional stream to a peer (our sync protocol runs on one per peer)."""

    #: The most bytes one :meth:`write` carries as a single unit of the transport (for
    #: py-libp2p: one yamux frame in one Noise message). Writers that have more to send
    #: write it in pieces of at most this size; :meth:`write` itself takes any size.
    write_size: int

    async def read(self, max_bytes: int, at_least: int = 0) -> bytes:
        """Up to ``max_bytes``; ``b""`` at the end of the stream. Raises
        :class:`NetworkError` if it broke (reset, connection lost).

        ``at_least``: the caller knows that many bytes are on their way (the rest of a
        frame begun); the stream may wait until it holds them (or ends) rather than
        return each slice as it comes. A hint only: ``read`` may return less.
        """
        ...

    async def write(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` (bytes, or a view of them); raises :class:`NetworkError`
        if the stream broke."""
        ...

    async def close(self) -> None:
        """Close our side cleanly (the peer reads the end of the stream)."""
        ...

    async def open_window(self) -> None:
        """Let the peer send far ahead on this stream, and tell it what we read in large
        steps rather than after every read (a stream that carries bulk transfers; the
        transport's flow control still stops the peer when we stop reading)."""
        ...

    async def reset(self) -> None:
        """Abort the stream at once."""
        ...


StreamHandler = Callable[[PeerId, ByteStream], Awaitable[None]]
GossipValidator = Callable[[PeerId, bytes], Validation]
"""``(forwarding peer, data) -> verdict``; runs before a message is delivered or relayed:
only an accepted one is; any other is dropped, and not validated again when more copies
of it arrive."""


class Network(Protocol):
    """Dial peers, accept their sync streams, hang up on them."""

    @property
    def peer_id(self) -> PeerId:
        """Our own transport identity."""
        ...

    def listen_addrs(self) -> list[str]:
        """Where peers can dial us (multiaddr strings ending in ``/p2p/<peer id>``)."""
        ...

    def set_stream_handler(self, handler: StreamHandler) -> None:
        """Call ``handler`` for every sync stream a peer opens to us."""
        ...

    def peer_of(self, addr: str) -> PeerId:
        """The peer id a multiaddr names (``/p2p/<id>``); :class:`NetworkError` if none."""
        ...

    async def connect(self, addr: str) -> PeerId:
        """Connect to the peer at multiaddr ``addr`` (with ``/p2p/<id>``); return its id."""
        ...

    async def reconnect(self, peer: PeerId) -> None:
        """Connect to a peer we have an address for already."""
        ...

    async def open_stream(self, peer: PeerId) -> ByteStream:
        """Open a sync stream to a connected peer."""
        ...

    async def hang_up(self, peer: PeerId) -> None:
        """Close every connection to ``peer``."""
        ...

    def connected(self) -> list[PeerId]:
        """Peers with an open connection."""
        ...


class Gossip(Protocol):
    """One publish/subscribe topic (the alliance's announcements)."""

    def set_validator(self, validator: GossipValidator) -> None:
        """Validate every message received (before delivery and relaying)."""
        ...

    async def publish(self, data: bytes) -> None:
        """Publish one message; raises :class:`NetworkError` if it could not be sent."""
        ...

    async def next_message(self) -> tuple[PeerId, bytes]:
        """The next delivered message ``(originating peer, data)``."""
        ...

    async def admit(self, peer: PeerId) -> None:
        """Start sending messages to ``peer`` (a member whose hello was accepted).

        Only admitted peers are ever sent anything: announcements carry records.
        """
        ...

    def forget(self, peer: PeerId) -> None:
        """Send ``peer`` nothing more until it is admitted again."""
        ...

    def mesh(self) -> set[PeerId]:
        """The peers our messages go to directly (GossipSub's mesh for the topic)."""
        ...
