"""Unsigned LEB128 varints as multiformats use them (CAR sections, protocol frames).

Only minimal encodings of at most 63 bits are accepted, so each value has one encoding.
"""

from __future__ import annotations

from typing import Final

from craftnet.archive.errors import ArchiveError

MAX_VARINT_BYTES: Final = 9  # the multiformats unsigned-varint limit (63 bits)


class VarintError(ArchiveError):
    """A varint is not minimally encoded, is too long, or its value is out of range."""


def encode_varint(value: int) -> bytes:
    """Encode ``0 <= value < 2**63`` as a minimal unsigned varint."""
    if not 0 <= value < 2**63:
        raise VarintError(f"varint {value} is outside 0..2^63-1")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(
    data: bytes | bytearray | memoryview, pos: int = 0, *, what: str = "varint"
) -> tuple[int, int] | None:
    """Read a varint at ``pos``: ``(value, next_pos)``, or None if ``data`` ends inside it.

    ``what`` names the field in error messages ("frame length", ...).
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise VarintError(f"{what} is not a minimally encoded varint")
            return value, pos + i + 1
    raise VarintError(f"{what} varint is longer than {MAX_VARINT_BYTES} bytes")
