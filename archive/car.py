"""CARv1, the content-addressed archive format: strict reading and streaming writing.

A CARv1 file (https://ipld.io/specs/transport/car/carv1/) is a header followed by
sections. The header is ``varint(len)`` and a DAG-CBOR map ``{"roots": [CID, ...],
"version": 1}``; each section is ``varint(len)``, the binary CID and the block bytes
(``len`` covers both). This module knows only the format: what the blocks mean and
how a bundle is checked and imported all-or-nothing lives in
:mod:`craftnet.archive.bundle`.

Reading is strict because a bundle arrives from a USB stick of unknown origin: varints
must be minimal and at most 9 bytes, declared lengths are checked against limits
*before* anything is read or allocated, a stream that ends inside a section is an
error, the header must say version 1, and a CID must be CIDv1 with a codec and hash
craftnet knows (dag-cbor or raw, BLAKE3-256). Every error is a :class:`BundleError`
that names the section (its index, byte offset and, when known, its CID).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Final

from craftnet.archive import codec, varint
from craftnet.archive.cid import CID_BYTES_LEN, Cid
from craftnet.archive.errors import BundleError, BundleTruncated, CidError, CodecError

CAR_VERSION: Final = 1
MAX_HEADER_SIZE: Final = 16 * 1024 * 1024
MAX_BLOCK_SIZE: Final = 4 * 1024 * 1024
# A section holds a CID and a block; our CIDs are 36 bytes but foreign ones can be longer.
MAX_SECTION_SIZE: Final = MAX_BLOCK_SIZE + 128
_READ_CHUNK: Final = 1024 * 1024
def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as a minimal unsigned LEB128 varint."""
    try:
        return varint.encode_varint(value)
    except varint.VarintError as exc:
        raise BundleError(str(exc)) from None


def decode_varint(data: bytes | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode a minimal varint from ``data`` at ``pos``; return ``(value, next_pos)``."""
    try:
        got = varint.decode_varint(data, pos)
    except varint.VarintError as exc:
        raise BundleError(str(exc)) from None
    if got is None:
        raise BundleError("varint is cut short")
    return got


def _read_varint(stream: IO[bytes]) -> tuple[int, int] | None:
    """Read one varint; ``None`` at a clean end of stream, else ``(value, bytes used)``."""
    value = 0
    for i in range(varint.MAX_VARINT_BYTES):
        got = stream.read(1)
        if not got:
            if i == 0:
                return None
            raise BundleTruncated("stream ends inside a length varint (file truncated?)")
        byte = got[0]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise BundleError("length varint is not minimally encoded")
            return value, i + 1
    raise BundleError(f"length varint is longer than {varint.MAX_VARINT_BYTES} bytes")


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Read exactly ``size`` bytes in bounded pieces, so a lying length allocates nothing."""
    parts: list[bytes] = []
    left = size
    while left:
        got = stream.read(min(left, _READ_CHUNK))
        if not got:
            raise BundleTruncated(
                f"stream ends {left} bytes before the end of a {size}-byte section "
                "(file truncated?)"
            )
        parts.append(got)
        left -= len(got)
    return b"".join(parts)


def parse_cid_prefix(data: bytes) -> Cid:
    """Parse the binary CID at the start of a section's bytes; explain unsupported ones."""
    try:
        return Cid.from_bytes(data[:CID_BYTES_LEN])
    except CidError as exc:
        raise BundleError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Section:
    """One block read from a CAR stream, already checked against its CID."""

    index: int  # 0-based position among the sections
    offset: int  # byte offset of the section's length varint in the file
    cid: Cid
    data: bytes

    def where(self) -> str:
        """A short description for error messages: index, CID and offset."""
        return f"block #{self.index} ({self.cid}) at byte {self.offset}"


def write_header(stream: IO[bytes], roots: Sequence[Cid]) -> int:
    """Write the CARv1 header naming ``roots``; return the number of bytes written."""
    if not roots:
        raise BundleError("a CAR bundle needs at least one root")
    header = codec.encode({"roots": list(roots), "version": CAR_VERSION})
    if len(header) > MAX_HEADER_SIZE:
        raise BundleError(
            f"{len(roots)} roots make a {len(header)}-byte header, over the "
            f"{MAX_HEADER_SIZE}-byte limit; export fewer roots per bundle"
        )
    prefix = encode_varint(len(header))
    stream.write(prefix)
    stream.write(header)
    return len(prefix) + len(header)


def write_section(stream: IO[bytes], cid: Cid, data: bytes | memoryview) -> int:
    """Write one section (CID and block); return the number of bytes written."""
    if len(data) > MAX_BLOCK_SIZE:
        raise BundleError(f"block {cid} is {len(data)} bytes, over the {MAX_BLOCK_SIZE} limit")
    raw = cid.bytes
    prefix = encode_varint(len(raw) + len(data))
    stream.write(prefix)
    stream.write(raw)
    stream.write(data)
    return len(prefix) + len(raw) + len(data)


class CarReader:
    """Read a CARv1 stream section by section, strictly; never holds more than one block.

    ``roots`` is available after construction (the header is read then). Iterating
    yields :class:`Section` objects whose bytes have been checked against their CIDs.
    ``position`` is the number of bytes consumed so far.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.position = 0
        self.roots: tuple[Cid, ...] = self._read_header()
        self.header_end = self.position
        # A resumed import seeks the stream on and sets these (archive.receive).
        self.next_index = 0

    def _read_header(self) -> tuple[Cid, ...]:
        got = _read_varint(self._stream)
        if got is None:
            raise BundleError("the bundle is empty (no CAR header)")
        size, used = got
        if size == 0:
            raise BundleError("the CAR header is empty")
        if size > MAX_HEADER_SIZE:
            raise BundleError(
                f"the CAR header declares {size} bytes, over the {MAX_HEADER_SIZE}-byte limit"
            )
        raw = _read_exact(self._stream, size)
        self.position = used + size
        try:
            header = codec.decode(raw, max_size=MAX_HEADER_SIZE)
        except codec.UnsupportedLink as exc:
            # A sha2-256 root (any IPFS export) is well-formed; say what is unsupported.
            raise BundleError(f"the CAR header names a root craftnet cannot read: {exc}") from exc
        except CodecError as exc:
            raise BundleError(f"the CAR header is not canonical DAG-CBOR: {exc}") from exc
        if not isinstance(header, dict):
            raise BundleError("the CAR header is not a map")
        version = header.get("version")
        if version != CAR_VERSION or type(version) is not int:
            raise BundleError(
                f"CAR version {version!r} is not supported; craftnet reads CARv1 bundles"
            )
        if set(header) != {"roots", "version"}:
            extra = sorted(set(header) - {"roots", "version"})
            raise BundleError(f"the CAR header has unexpected or missing fields: {extra}")
        roots = header["roots"]
        if not isinstance(roots, list) or not roots:
            raise BundleError("the CAR header must list at least one root CID")
        if not all(isinstance(root, Cid) for root in roots):
            raise BundleError("the CAR header's roots must all be CIDs")
        return tuple(roots)

    def __iter__(self) -> Iterator[Section]:
        index = self.next_index
        while True:
            offset = self.position
            where = f"block #{index} at byte {offset}"
            try:
                got = _read_varint(self._stream)
            except BundleError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
            if got is None:
                return
            size, used = got
            if size == 0:
                raise BundleError(f"{where}: empty section (length 0)")
            if size > MAX_SECTION_SIZE:
                raise BundleError(
                    f"{where}: section declares {size} bytes, over the "
                    f"{MAX_SECTION_SIZE}-byte limit"
                )
            try:
                raw = _read_exact(self._stream, size)
                cid = parse_cid_prefix(raw)
            except BundleError as exc:
                raise type(exc)(f"{where}: {exc}") from exc
            self.position = offset + used + size
            data = raw[len(cid.bytes):]
            section = Section(index, offset, cid, data)
            if not cid.verify(data):
                raise BundleError(f"{section.where()}: the bytes do not hash to the CID")
            yield section
            index += 1
