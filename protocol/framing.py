"""Frames: an unsigned-varint length prefix, then one DAG-CBOR message.

``encode_frame(message)`` gives the bytes to write; :class:`FrameDecoder` is fed any
slices of a stream with :meth:`~FrameDecoder.receive_data` and hands out whole
messages with :meth:`~FrameDecoder.next_message`. A declared length over the limit is
refused before a byte of the body is buffered, and the end of the stream in the
middle of a frame raises :class:`TruncatedFrame` from :meth:`~FrameDecoder.receive_eof`.
"""

from __future__ import annotations

from typing import Final

from craftnet.archive import codec
from craftnet.archive.errors import CodecError
from craftnet.protocol.errors import FrameError, FrameTooLarge, LocalProtocolError, TruncatedFrame
from craftnet.protocol.messages import Message, from_wire, to_wire

MAX_FRAME_SIZE: Final = 4 * 1024 * 1024
_MAX_VARINT_BYTES: Final = 9  # 63 bits; far above any frame limit


def encode_varint(value: int) -> bytes:
    """The unsigned LEB128 varint of ``value`` (as in multiformats)."""
    if value < 0:
        raise LocalProtocolError("a varint is unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """Read a minimal varint at ``pos``: ``(value, next_pos)``, or None if incomplete."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise FrameError("frame length is not a minimal varint")
            return value, pos + i + 1
    raise FrameError("frame length varint is longer than 9 bytes")


def encode_frame(message: Message, *, max_frame_size: int = MAX_FRAME_SIZE) -> bytes:
    """The frame bytes of ``message``; raises :class:`LocalProtocolError` if too large."""
    body = codec.encode(to_wire(message))
    if len(body) > max_frame_size:
        raise LocalProtocolError(
            f"{message.KIND} message is {len(body)} bytes; the frame limit is {max_frame_size}"
        )
    return encode_varint(len(body)) + body


def decode_body(body: bytes, *, max_frame_size: int = MAX_FRAME_SIZE) -> Message:
    """Decode one frame body (without its length prefix) into a message."""
    try:
        value = codec.decode(body, max_size=max_frame_size)
    except CodecError as exc:
        raise FrameError(f"frame is not canonical DAG-CBOR: {exc}") from exc
    return from_wire(value)


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
            header = decode_varint(self._buffer)
        except FrameError as exc:
            self._broken = exc
            raise
        if header is None:
            return None
        length, start = header
        if length > self.max_frame_size:
            self._broken = FrameTooLarge(
                f"peer declared a {length}-byte frame; the limit is {self.max_frame_size}"
            )
            raise self._broken
        if length == 0:
            self._broken = FrameError("empty frame")
            raise self._broken
        if len(self._buffer) < start + length:
            return None
        body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        self.last_frame_size = start + length
        return decode_body(body, max_frame_size=self.max_frame_size)
