"""Frames: an unsigned-varint length prefix, then one DAG-CBOR message.

``encode_frame(message)`` gives the bytes to write; :class:`FrameDecoder` is fed any
slices of a stream with :meth:`~FrameDecoder.receive_data` and hands out whole
messages with :meth:`~FrameDecoder.next_message`. A declared length over the limit is
refused before a byte of the body is buffered, and the end of the stream in the
middle of a frame raises :class:`TruncatedFrame` from :meth:`~FrameDecoder.receive_eof`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from craftnet.archive import codec, varint
from craftnet.archive.cid import Cid
from craftnet.archive.errors import CodecError
from craftnet.archive.records import Record
from craftnet.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    TruncatedFrame,
)
from craftnet.protocol.messages import Announce, Message, from_wire, signed_bytes_memo, to_wire

MAX_FRAME_SIZE: Final = 4 * 1024 * 1024


def encode_varint(value: int) -> bytes:
    """The unsigned LEB128 varint of ``value`` (as in multiformats)."""
    try:
        return varint.encode_varint(value)
    except varint.VarintError as exc:
        raise LocalProtocolError(str(exc)) from None


def decode_varint(data: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """Read a minimal varint at ``pos``: ``(value, next_pos)``, or None if incomplete."""
    # Frame lengths below 16 KiB take one or two bytes: read those without the loop.
    end = len(data)
    if pos < end:
        first = data[pos]
        if first < 0x80:
            return first, pos + 1
        if pos + 1 < end:
            second = data[pos + 1]
            if 0 < second < 0x80:
                return (first & 0x7F) | (second << 7), pos + 2
    try:
        return varint.decode_varint(data, pos, what="frame length")
    except varint.VarintError as exc:
        raise FrameError(str(exc)) from None


# A block's parse: whether it is canonical DAG-CBOR, the record it holds (signature not
# checked), and the links in it. A pure function of the bytes, so of a verified CID.
ParsedBlock = tuple[bool, Record | None, tuple[Cid, ...]]


class FrameCache:
    """Messages by the exact bytes of their frame body, for many decoders in one process.

    A simulation runs thousands of engines in one process, and they decode the very same
    bodies again and again (an announcement reaches every hub). Decoding is a pure
    function of the bytes and messages are immutable, so the message decoded once can be
    handed to every later decoder of the same bytes. Only successes are kept: a bad body
    is decoded (and refused) strictly every time. A body this process encoded itself is
    entered as the message :func:`from_wire` builds from the very map that was encoded,
    which is what a strict decode of those canonical bytes gives (the message checks
    admit only the exact types the decoder produces); a message those checks refuse is
    not entered, so its receiver decodes it strictly and refuses it as before.

    Bounded: at most ``max_entries`` decoded bodies of at most ``max_body`` bytes each,
    least recently used first out. A body entered by its encoder usually has one
    receiver, so it is held apart (at most ``max_sent``, oldest first out) and let go
    at its first use; a second decoder of it decodes it and keeps it like any other.
    """

    def __init__(
        self, max_entries: int = 65_536, max_body: int = 64 * 1024, max_sent: int = 262_144
    ) -> None:
        self.max_entries = max_entries
        self.max_body = max_body
        self.max_sent = max_sent
        self._entries: OrderedDict[bytes, Message] = OrderedDict()
        self._sent: dict[bytes, Message] = {}
        self.hits = 0
        self.misses = 0
        # What the block exchange made of a block's bytes, by CID (see blocks.py).
        self.parsed: OrderedDict[Cid, ParsedBlock] = OrderedDict()
        # The CID of a pushed block's bytes, by the bytes (the same bytes object reaches
        # every hub inside the same cached announcement): BLAKE3 once per block.
        self.block_cids: OrderedDict[bytes, Cid] = OrderedDict()
        # Whole gossip frames (the same bytes object reaches every hub) with their body
        # length: a hit skips the header, the body's copy and the hash of that copy.
        self.frames: OrderedDict[bytes, tuple[Message, int]] = OrderedDict()
        # Signed bytes of the announcement objects handed out (see messages.py).
        self.signed: dict[int, tuple[Announce, bytes]] = {}

    def get_parsed(self, cid: Cid) -> ParsedBlock | None:
        """How the block named ``cid`` parsed, if a decoder here parsed it already."""
        found = self.parsed.get(cid)
        if found is not None:
            self.parsed.move_to_end(cid)
        return found

    def cid_of(self, data: bytes, codec: int) -> Cid:
        """The CID of ``data`` under ``codec`` (BLAKE3 done once per distinct block)."""
        cid = self.block_cids.get(data)
        if cid is None or cid.codec != codec:
            cid = Cid.of(data, codec)
            if len(data) <= self.max_body:
                self.block_cids[data] = cid
                if len(self.block_cids) > self.max_entries:
                    self.block_cids.popitem(last=False)
        return cid

    def put_parsed(self, cid: Cid, size: int, parsed: ParsedBlock) -> None:
        """Remember how the block named ``cid`` (``size`` bytes, verified) parsed."""
        if size > self.max_body:
            return
        self.parsed[cid] = parsed
        if len(self.parsed) > self.max_entries:
            self.parsed.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries) + len(self._sent)

    def get(self, body: bytes) -> Message | None:
        """The message decoded earlier from exactly ``body``, if it is still held."""
        found = self._entries.get(body)
        if found is not None:
            self._entries.move_to_end(body)
        else:
            found = self._sent.pop(body, None)
            if found is None:
                self.misses += 1
                return None
        self.hits += 1
        return found

    def put_sent(self, body: bytes, message: Message) -> None:
        """Remember that ``body``, which this process just encoded, decodes to ``message``."""
        if len(body) > self.max_body:
            return
        sent = self._sent
        sent[body] = message
        if len(sent) > self.max_sent:
            del sent[next(iter(sent))]

    def put(self, body: bytes, message: Message) -> None:
        """Remember that ``body`` decodes to ``message``."""
        if len(body) > self.max_body:
            return
        entries = self._entries
        entries[body] = message
        if len(entries) > self.max_entries:
            entries.popitem(last=False)


_current: ContextVar[FrameCache | None] = ContextVar("craftnet_frame_cache", default=None)


def current_frame_cache() -> FrameCache | None:
    """The frame cache this context decodes through, if any (none by default)."""
    return _current.get()


@contextmanager
def frame_cache(cache: FrameCache) -> Iterator[FrameCache]:
    """Within the block, frames encoded and decoded here go through ``cache``."""
    token = _current.set(cache)
    try:
        with signed_bytes_memo(cache.signed):
            yield cache
    finally:
        _current.reset(token)


_KEY_ORDER: dict[str, tuple[str, ...]] = {}


def _canonical_key(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def encode_frame(message: Message, *, max_frame_size: int = MAX_FRAME_SIZE) -> bytes:
    """The frame bytes of ``message``; raises :class:`LocalProtocolError` if too large."""
    wire = to_wire(message)
    cache = _current.get()
    checked: Message | None = None
    if cache is not None:
        try:
            checked = from_wire(wire)
        except Exception:
            # Whatever the checks refuse goes the old way: the receiver decodes it
            # strictly (and refuses it), exactly as without a cache.
            checked = None
    if checked is None:
        body = codec.encode(wire)
    else:
        # A map the message checks accepted holds only plain DAG-CBOR types in range,
        # and no inner map: in canonical key order it is canonical as it stands.
        order = _KEY_ORDER.get(message.KIND)
        if order is None:
            order = _KEY_ORDER[message.KIND] = tuple(sorted(wire, key=_canonical_key))
        body = codec.encode_checked({k: wire[k] for k in order})
    if len(body) > max_frame_size:
        raise LocalProtocolError(
            f"{message.KIND} message is {len(body)} bytes; the frame limit is {max_frame_size}"
        )
    if cache is not None and checked is not None:
        cache.put_sent(body, checked)
    return encode_varint(len(body)) + body


def decode_body(body: bytes, *, max_frame_size: int = MAX_FRAME_SIZE) -> Message:
    """Decode one frame body (without its length prefix) into a message."""
    cache = _current.get()
    if cache is not None and len(body) <= max_frame_size:
        found = cache.get(body)
        if found is not None:
            return found
    try:
        value = codec.decode(body, max_size=max_frame_size)
    except CodecError as exc:
        raise FrameError(f"frame is not canonical DAG-CBOR: {exc}") from exc
    message = from_wire(value)
    if cache is not None:
        cache.put(body, message)
    return message


def _frame_header(data: bytes | bytearray, max_frame_size: int) -> tuple[int, int] | None:
    """``(body length, body start)`` of the frame at the start of ``data``; None if the
    length prefix is not all there. A bad prefix raises: the stream cannot go on."""
    header = decode_varint(data)
    if header is None:
        return None
    length, _ = header
    if length > max_frame_size:
        raise FrameTooLarge(f"peer declared a {length}-byte frame; the limit is {max_frame_size}")
    if length == 0:
        raise FrameError("empty frame")
    return header


def decode_frame(data: bytes, *, max_frame_size: int = MAX_FRAME_SIZE) -> Message:
    """The message of ``data``, which must be exactly one whole frame (a gossip message).

    Raises what a :class:`FrameDecoder` raises for the same bytes, :class:`TruncatedFrame`
    when they hold less than one frame and :class:`FrameError` when they hold more.
    """
    cache = _current.get()
    if cache is not None:
        hit = cache.frames.get(data)
        # The same bytes decoded once already: the same message, unless this decoder's
        # limit is lower than the body (then the slow path raises as it should).
        if hit is not None and hit[1] <= max_frame_size:
            return hit[0]
    header = _frame_header(data, max_frame_size)
    if header is None:
        raise TruncatedFrame("a gossip message is exactly one whole frame; this one is cut")
    length, start = header
    if len(data) < start + length:
        raise TruncatedFrame("a gossip message is exactly one whole frame; this one is cut")
    if len(data) > start + length:
        raise FrameError("a gossip message is exactly one whole frame; this one has more")
    message = decode_body(data[start:], max_frame_size=max_frame_size)
    if cache is not None and type(data) is bytes and length <= cache.max_body:
        frames = cache.frames
        frames[data] = (message, length)
        if len(frames) > cache.max_entries:
            frames.popitem(last=False)
    return message


class FrameDecoder:
    """Turns a byte stream into messages; one decoder per stream.

    A body that is not a valid message raises from :meth:`next_message` but leaves the
    decoder at the next frame, since the length prefix still marks where that is. A bad
    length prefix (oversized, non-minimal) leaves the stream unusable: the decoder stays
    broken and every later call raises again.
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._eof = False
        self._broken: FrameError | None = None
        self.bytes_received = 0
        self.last_frame_size = 0

    def receive_data(self, data: bytes) -> None:
        """Append a slice of the stream."""
        if self._eof:
            raise LocalProtocolError("data received after end of stream")
        self.bytes_received += len(data)
        self._buffer += data

    def receive_eof(self) -> None:
        """Mark the end of the stream; raises :class:`TruncatedFrame` if a frame is cut."""
        self._eof = True
        if self._buffer and self._broken is None:
            raise TruncatedFrame(
                f"stream ended inside a frame ({len(self._buffer)} bytes of it arrived)"
            )

    @property
    def broken(self) -> bool:
        """True once the stream cannot be read any further (bad length prefix)."""
        return self._broken is not None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned message."""
        return len(self._buffer)

    def next_message(self) -> Message | None:
        """Return the next whole message, or None until more bytes arrive."""
        if self._broken is not None:
            raise self._broken
        try:
            header = _frame_header(self._buffer, self.max_frame_size)
        except FrameError as exc:
            self._broken = exc
            raise
        if header is None:
            return None
        length, start = header
        if len(self._buffer) < start + length:
            return None
        body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        self.last_frame_size = start + length
        return decode_body(body, max_frame_size=self.max_frame_size)
