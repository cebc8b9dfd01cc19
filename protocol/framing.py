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
from craftnet.archive.cid import CID_BYTES_LEN, Cid
from craftnet.archive.errors import CodecError
from craftnet.archive.records import Record
from craftnet.protocol.errors import (
    FrameError,
    FrameTooLarge,
    LocalProtocolError,
    TruncatedFrame,
)
from craftnet.protocol.messages import (
    MAX_REQ_ID,
    PROTOCOL_VERSION,
    Announce,
    Block,
    Message,
    from_wire,
    signed_bytes_memo,
    to_wire,
)

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
        # Signed bytes of the records in ``parsed``, by the record object (kept with it,
        # so an id is never reused meanwhile): the same bytes object for every hub
        # checking the record, spliced once.
        self.record_signed: dict[int, tuple[Record, bytes]] = {}

    def signed_of(self, record: Record) -> bytes:
        """``record.signed_bytes()``, made once per record object."""
        found = self.record_signed.get(id(record))
        if found is not None and found[0] is record:
            return found[1]
        data = record.signed_bytes()
        memo = self.record_signed
        memo[id(record)] = (record, data)
        if len(memo) > self.max_entries:
            del memo[next(iter(memo))]
        return data

    def get_parsed(self, cid: Cid) -> ParsedBlock | None:
        """How the block named ``cid`` parsed, if a decoder here parsed it already."""
        found = self.parsed.get(cid)
        if found is not None:
            self.parsed.move_to_end(cid)
        return found

    def cid_of(self, data: bytes, codec: int, like: tuple[Cid, ...] = ()) -> Cid:
        """The CID of ``data`` under ``codec`` (BLAKE3 done once per distinct block).

        ``like``: CIDs (an announcement's) to hand out instead when one is equal, so that
        every later lookup of this CID in the sets and dicts of thousands of hubs finds
        the very object it was keyed by, without a call to ``Cid.__eq__``.
        """
        cid = self.block_cids.get(data)
        if cid is None or cid.codec != codec:
            cid = Cid.of(data, codec)
            for known in like:
                if known == cid:
                    cid = known
                    break
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


# A block frame, written and read without handing its data to the CBOR codec. The
# DAG-CBOR map of a Block is {"t": "block", "v": 2, "cid": link, "req": n, "data": bytes}
# in canonical key order, so the data is the body's tail and everything before it is a
# few dozen bytes. Writing: the codec copied each block twice (its encoding, the length
# prefix joined to it) before the answer's frames were joined; reading: the decoder
# copied a block's body out of its buffer twice, cbor2 copied the data out of it, and the
# canonical check encoded the whole map again and compared it, for every byte of every
# file (cProfile of a sync of 100 MB of files: these copies, the check and BLAKE3 were
# most of the engine's time). Only bytes that are exactly that canonical encoding take
# the short path, and they give exactly the message the codec would; anything else
# (another version, a non-minimal length, a bad link, a value out of range) goes the
# strict way and is refused there as before.
assert 0 <= PROTOCOL_VERSION < 24  # written in the initial byte below
_BLOCK_HEAD: Final = b"\xa5\x61t\x65block\x61v" + bytes([PROTOCOL_VERSION])
_BLOCK_CID: Final = b"\x63cid\xd8\x2a\x58" + bytes([CID_BYTES_LEN + 1]) + b"\x00"
_BLOCK_REQ: Final = b"\x63req"
_BLOCK_DATA: Final = b"\x64data"
_CID_AT: Final = len(_BLOCK_HEAD) + len(_BLOCK_CID)
_REQ_AT: Final = _CID_AT + CID_BYTES_LEN + len(_BLOCK_REQ)


def _cbor_head(major: int, value: int) -> bytes:
    """The canonical (shortest) CBOR head of ``major`` type with argument ``value``."""
    top = major << 5
    if value < 24:
        return bytes([top | value])
    if value < 0x100:
        return bytes([top | 24, value])
    if value < 0x10000:
        return bytes([top | 25]) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes([top | 26]) + value.to_bytes(4, "big")
    return bytes([top | 27]) + value.to_bytes(8, "big")


def _read_head(data: bytes | bytearray, pos: int, major: int) -> tuple[int, int] | None:
    """``(argument, next_pos)`` of a canonical CBOR head of ``major`` type at ``pos``;
    None if it is another type, not minimal, or cut."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first >> 5 != major:
        return None
    info = first & 0x1F
    if info < 24:
        return info, pos + 1
    if info > 27:
        return None
    size = 1 << (info - 24)
    end = pos + 1 + size
    if end > len(data):
        return None
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < (24 if size == 1 else 1 << (4 * size)):
        return None  # a shorter head would do: not canonical
    return value, end


def encode_frame_parts(
    message: Message, *, max_frame_size: int = MAX_FRAME_SIZE
) -> tuple[bytes, ...]:
    """The frame of ``message`` as pieces that join to :func:`encode_frame`'s bytes.

    A block's data is handed back as it is, after a short head, so that the caller's one
    join of many frames is the only copy made of it.
    """
    if (
        type(message) is Block
        and _current.get() is None
        and type(message.cid) is Cid
        and type(message.data) is bytes
        and type(message.req) is int
        and 0 <= message.req <= MAX_REQ_ID
    ):
        data = message.data
        head = b"".join(
            (
                _BLOCK_HEAD,
                _BLOCK_CID,
                message.cid.bytes,
                _BLOCK_REQ,
                _cbor_head(0, message.req),
                _BLOCK_DATA,
                _cbor_head(2, len(data)),
            )
        )
        size = len(head) + len(data)
        if size > max_frame_size:
            raise LocalProtocolError(
                f"{message.KIND} message is {size} bytes; the frame limit is {max_frame_size}"
            )
        return encode_varint(size) + head, data
    return (encode_frame(message, max_frame_size=max_frame_size),)


def _block_body(buffer: bytearray, start: int, end: int) -> Block | None:
    """The block whose canonical frame body is ``buffer[start:end]``, read without the
    codec; None unless the body is exactly that canonical encoding of a valid block."""
    if buffer[start : start + len(_BLOCK_HEAD)] != _BLOCK_HEAD:
        return None
    at = start + len(_BLOCK_HEAD)
    if buffer[at : at + len(_BLOCK_CID)] != _BLOCK_CID:
        return None
    cid = Cid.from_link(bytes(buffer[start + _CID_AT - 1 : start + _CID_AT + CID_BYTES_LEN]))
    if cid is None or buffer[start + _REQ_AT - len(_BLOCK_REQ) : start + _REQ_AT] != _BLOCK_REQ:
        return None
    req = _read_head(buffer, start + _REQ_AT, 0)
    if req is None or req[0] > MAX_REQ_ID:
        return None
    at = req[1]
    if buffer[at : at + len(_BLOCK_DATA)] != _BLOCK_DATA:
        return None
    size = _read_head(buffer, at + len(_BLOCK_DATA), 2)
    if size is None or size[1] + size[0] != end or size[0] > codec.MAX_BLOCK_SIZE:
        return None
    with memoryview(buffer) as view:
        data = bytes(view[size[1] : end])
    return Block(req[0], cid, data)


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
        # Bytes the buffer must hold for the frame begun in it to be whole (0: not known
        # yet): a block arrives in dozens of reads, and each need not parse its header.
        self._need = 0

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

    @property
    def missing(self) -> int:
        """Bytes still to come for the frame begun in the buffer to be whole (0 when
        that is not known yet, or nothing is begun)."""
        if self._broken is not None:
            return 0
        return max(0, self._need - len(self._buffer))

    @property
    def waiting(self) -> bool:
        """True while the frame begun in the buffer is known to be incomplete (so
        :meth:`next_message` would return None)."""
        return len(self._buffer) < self._need and self._broken is None

    def next_message(self) -> Message | None:
        """Return the next whole message, or None until more bytes arrive."""
        if self._broken is not None:
            raise self._broken
        if len(self._buffer) < self._need:
            return None
        try:
            header = _frame_header(self._buffer, self.max_frame_size)
        except FrameError as exc:
            self._broken = exc
            raise
        if header is None:
            return None
        length, start = header
        buffer = self._buffer
        end = start + length
        if len(buffer) < end:
            self._need = end
            return None
        self._need = 0
        self.last_frame_size = end
        if _current.get() is None:
            block = _block_body(buffer, start, end)
            if block is not None:
                del buffer[:end]
                return block
        # One copy out of the buffer (slicing a bytearray and then taking its bytes
        # copied twice); the view is let go before the buffer shrinks.
        with memoryview(buffer) as view:
            body = bytes(view[start:end])
        del buffer[:end]
        return decode_body(body, max_frame_size=self.max_frame_size)
