"""The file-node format: what a file node and a file part hold, building and parsing them.

The file node (``v`` 1)::

    {"type": "file", "v": 1, "size": 1234567, "media_type": "model/stl",
     "name": "spindle-whorl.stl", "blake3": <32 bytes>,
     "chunks": [{"cid": <raw CID>, "size": 262144}, ...]}

A node lists at most :data:`MAX_ENTRIES` entries. A bigger file lists *parts* instead:
entries whose CID is dag-cbor and names ``{"type": "file-part", "v": 1, "chunks": [...]}``
with up to :data:`MAX_ENTRIES` raw chunks each (one level only), which is enough for
files of many terabytes. Parsing treats a node's bytes as hostile input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.blocks import MAX_BLOCK_SIZE
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError, CodecError, IntegrityError

CHUNK_MIN: Final = 64 * 1024
CHUNK_AVG: Final = 256 * 1024
CHUNK_MAX: Final = 1024 * 1024
MAX_ENTRIES: Final = 8192  # entries per node: ~60 bytes each keeps a node near 0.5 MiB
FILE_TYPE: Final = "file"
PART_TYPE: Final = "file-part"
FILE_VERSION: Final = 1
MAX_NAME: Final = 255
MAX_MEDIA_TYPE: Final = 255
DEFAULT_MEDIA_TYPE: Final = "application/octet-stream"
_FILE_KEYS: Final = frozenset({"type", "v", "chunks", "size", "media_type", "blake3"})
_PART_KEYS: Final = frozenset({"type", "v", "chunks"})


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One entry of a file node: a raw chunk, or (in very large files) a part node."""

    cid: Cid
    size: int


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A parsed, validated file node."""

    cid: Cid
    size: int
    media_type: str
    name: str | None
    blake3: bytes
    chunks: tuple[ChunkRef, ...]

    @property
    def blake3_hex(self) -> str:
        """The whole file's BLAKE3 in hex, as ``b3sum`` prints it."""
        return self.blake3.hex()

    @property
    def has_parts(self) -> bool:
        """Whether the entries are part nodes rather than chunks."""
        return bool(self.chunks) and self.chunks[0].cid.codec == DAG_CBOR


class EntryBuilder:
    """Collects chunk entries; past MAX_ENTRIES it turns groups of them into parts."""

    def __init__(self, emit: Callable[[bytes, bytes], None]) -> None:
        self.entries: list[ChunkRef] = []
        self.parts: list[ChunkRef] = []
        self._emit = emit

    def add(self, cid: Cid, size: int) -> None:
        self.entries.append(ChunkRef(cid, size))
        if len(self.entries) == MAX_ENTRIES:
            self._close_part()

    def _close_part(self) -> None:
        part = {"type": PART_TYPE, "v": FILE_VERSION, "chunks": encode_entries(self.entries)}
        block = codec.encode(part)
        cid = Cid.of(block, DAG_CBOR)
        self._emit(cid.bytes, block)
        self.parts.append(ChunkRef(cid, sum(e.size for e in self.entries)))
        self.entries = []

    def finish(self) -> list[ChunkRef]:
        if not self.parts:
            return self.entries
        if self.entries:
            self._close_part()
        if len(self.parts) > MAX_ENTRIES:
            raise ArchiveError(
                f"file too large: more than {MAX_ENTRIES * MAX_ENTRIES} chunks "
                f"(about {MAX_ENTRIES * MAX_ENTRIES * (CHUNK_AVG + CHUNK_MIN) >> 40} TiB)"
            )
        return self.parts


def encode_entries(entries: list[ChunkRef]) -> list[dict[str, Any]]:
    """A node's ``chunks`` value for ``entries``."""
    return [{"cid": e.cid, "size": e.size} for e in entries]


def check_name(name: str | None) -> None:
    """Refuse a file name that is empty, too long, or a path."""
    if name is None:
        return
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise ArchiveError(f"a file name is 1..{MAX_NAME} characters")
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise ArchiveError(f"a file name may not hold '/' or NUL: {name!r}")


def check_media_type(media_type: str) -> None:
    """Refuse what is not a media type (``type/subtype``)."""
    if not isinstance(media_type, str) or not 0 < len(media_type) <= MAX_MEDIA_TYPE:
        raise ArchiveError(f"a media type is 1..{MAX_MEDIA_TYPE} characters, like model/stl")
    if "/" not in media_type or any(c.isspace() for c in media_type):
        raise ArchiveError(f"not a media type (type/subtype): {media_type!r}")


def parse_file_node(cid: Cid, block: bytes) -> FileInfo:
    """Validate a file node's bytes (hostile input) and return its info."""
    if cid.codec != DAG_CBOR:
        raise IntegrityError(f"{cid} is a {cid.codec_name} block, not a file node")
    if not cid.verify(block):
        raise IntegrityError(f"block {cid} does not match its CID")
    fast = _read_file_node(cid, block)
    return fast if fast is not None else _parse_file_node(cid, block)


def _parse_file_node(cid: Cid, block: bytes) -> FileInfo:
    """The general path of :func:`parse_file_node`: decode, then check each field."""
    value = _decode(cid, block)
    if not isinstance(value, dict) or value.get("type") != FILE_TYPE:
        raise IntegrityError(f"{cid} is not a file node (type must be 'file')")
    _check_version(cid, value)
    keys = set(value)
    if not keys >= _FILE_KEYS or keys - _FILE_KEYS - {"name"}:
        raise IntegrityError(
            f"file node {cid} has fields {sorted(keys)}; expected {sorted(_FILE_KEYS)} (+ name)"
        )
    size = value["size"]
    if type(size) is not int or not 0 <= size < 2**63:
        raise IntegrityError(f"file node {cid}: size must be a non-negative integer")
    media_type = value["media_type"]
    name = value.get("name")
    try:
        check_media_type(media_type)
        check_name(name)
    except ArchiveError as exc:
        raise IntegrityError(f"file node {cid}: {exc}") from exc
    digest = value["blake3"]
    if type(digest) is not bytes or len(digest) != 32:
        raise IntegrityError(f"file node {cid}: blake3 must be 32 bytes")
    entries = _parse_entries(cid, value["chunks"], allow_parts=True)
    if sum(e.size for e in entries) != size:
        raise IntegrityError(f"file node {cid}: chunk sizes do not add up to size {size}")
    return FileInfo(cid, size, media_type, name, digest, entries)


def _decode(cid: Cid, block: bytes) -> Any:
    try:
        return codec.decode(block)
    except CodecError as exc:
        raise IntegrityError(f"block {cid} is not valid DAG-CBOR: {exc}") from exc


def _check_version(cid: Cid, value: dict[str, Any]) -> None:
    version = value.get("v")
    if type(version) is not int or version < 1:
        raise IntegrityError(f"{cid}: version 'v' must be a positive integer")
    if version != FILE_VERSION:
        raise ArchiveError(
            f"{cid} is a version {version} file node; this craftnet reads version "
            f"{FILE_VERSION}. Upgrade craftnet to read it."
        )


def _parse_entries(cid: Cid, raw: Any, *, allow_parts: bool) -> tuple[ChunkRef, ...]:
    if not isinstance(raw, list):
        raise IntegrityError(f"{cid}: chunks must be a list")
    if len(raw) > MAX_ENTRIES:
        raise IntegrityError(f"{cid}: {len(raw)} entries; a node lists at most {MAX_ENTRIES}")
    entries: list[ChunkRef] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"cid", "size"}:
            raise IntegrityError(f"{cid}: a chunk entry is {{cid, size}}")
        link, size = item["cid"], item["size"]
        if not isinstance(link, Cid):
            raise IntegrityError(f"{cid}: a chunk entry's cid must be a link")
        if type(size) is not int or size < 1:
            raise IntegrityError(f"{cid}: chunk sizes are positive integers")
        if link.codec == RAW:
            if size > MAX_BLOCK_SIZE:
                raise IntegrityError(f"{cid}: chunk {link} claims {size} bytes, over the limit")
        elif not allow_parts:
            raise IntegrityError(f"{cid}: a file part lists raw chunks only, not {link}")
        elif size > MAX_ENTRIES * MAX_BLOCK_SIZE:
            raise IntegrityError(f"{cid}: part {link} claims {size} bytes, over the limit")
        entries.append(ChunkRef(link, size))
    if len({e.cid.codec for e in entries}) > 1:
        raise IntegrityError(f"{cid}: entries mix chunks and parts")
    return tuple(entries)


def parse_file_part(ref: ChunkRef, block: bytes) -> tuple[ChunkRef, ...]:
    """Check a file-part node (of a very large file) against ``ref``; return its entries."""
    if not ref.cid.verify(block):
        raise IntegrityError(f"file part {ref.cid} does not match its CID")
    fast = _read_file_part(ref, block)
    return fast if fast is not None else _parse_file_part(ref, block)


def _parse_file_part(ref: ChunkRef, block: bytes) -> tuple[ChunkRef, ...]:
    """The general path of :func:`parse_file_part`."""
    value = _decode(ref.cid, block)
    if not isinstance(value, dict) or value.get("type") != PART_TYPE:
        raise IntegrityError(f"{ref.cid} is not a file part")
    _check_version(ref.cid, value)
    if set(value) != _PART_KEYS:
        raise IntegrityError(f"file part {ref.cid} has fields {sorted(value)}")
    entries = _parse_entries(ref.cid, value["chunks"], allow_parts=False)
    if sum(e.size for e in entries) != ref.size:
        raise IntegrityError(f"file part {ref.cid} does not hold the {ref.size} bytes claimed")
    return entries


# -- the short path ----------------------------------------------------------------------
#
# A file node is canonical DAG-CBOR, so a valid one has exactly one byte layout: its keys
# in a fixed order, every entry ``{"cid": <link>, "size": <uint>}`` in the same shape.
# The general decoder builds a dict per entry, checks each (tag hook, key order) and
# encodes the whole value again to check it is canonical: about 6 ms for the 1,700
# entries of a 512 MiB file, a twentieth of reading the file, spent before any chunk is
# hashed. The readers below take only that exact layout (minimal integer and length
# heads, the keys in canonical order, nothing after the value) and run the same checks
# as the general path; anything else, valid or not, returns None and goes the general
# way, which gives the same answer or the typed error. tests/archive/test_file_node_fast.py
# checks both paths agree.

_NODE_V1: Final = b"\x61v\x01"
_NAME_KEY: Final = b"\x64name"
_SIZE_KEY: Final = b"\x64size"
_TYPE_FILE: Final = b"\x64type\x64file"
_BLAKE3_KEY: Final = b"\x66blake3\x58\x20"
_CHUNKS_KEY: Final = b"\x66chunks"
_MEDIA_TYPE_KEY: Final = b"\x6amedia_type"
_PART_HEAD: Final = b"\xa3\x61v\x01\x64type\x69file-part\x66chunks"
# An entry up to its link's payload (0x00 + the binary CID), then the size's key.
_ENTRY_HEAD: Final = b"\xa2\x63cid\xd8\x2a\x58\x25"
_ENTRY_LINK: Final = len(_ENTRY_HEAD)
_ENTRY_SIZE: Final = _ENTRY_LINK + 1 + 36
_ENTRY_SIZE_KEY: Final = b"\x64size"
_ENTRY_FIXED: Final = _ENTRY_SIZE + len(_ENTRY_SIZE_KEY)
_from_link: Final = Cid.from_link


def _uint(block: bytes, at: int) -> tuple[int, int] | None:
    """The minimally encoded CBOR unsigned integer at ``at`` and the offset after it."""
    if at >= len(block):
        return None
    head = block[at]
    if head < 0x18:
        return head, at + 1
    width = {0x18: 1, 0x19: 2, 0x1A: 4, 0x1B: 8}.get(head)
    if width is None or at + 1 + width > len(block):
        return None
    value = int.from_bytes(block[at + 1 : at + 1 + width], "big")
    # Canonical: the shortest head that holds the value.
    if value < (0x18 if width == 1 else 1 << (4 * width)):
        return None
    return value, at + 1 + width


def _text(block: bytes, at: int) -> tuple[str, int] | None:
    """The minimally encoded CBOR text string at ``at`` and the offset after it."""
    if at >= len(block) or not 0x60 <= block[at] <= 0x7B:
        return None
    length = _uint(bytes([block[at] - 0x60]) + block[at + 1 : at + 9], 0)
    if length is None:
        return None
    size, head = length
    start = at + head
    if start + size > len(block):
        return None
    try:
        return block[start : start + size].decode("utf-8"), start + size
    except UnicodeDecodeError:
        return None


def _array_head(block: bytes, at: int) -> tuple[int, int] | None:
    """The minimally encoded CBOR array head at ``at``: its length and the offset after."""
    if at >= len(block) or not 0x80 <= block[at] <= 0x9B:
        return None
    length = _uint(bytes([block[at] - 0x80]) + block[at + 1 : at + 9], 0)
    if length is None:
        return None
    return length[0], at + length[1]


def _read_entries(
    block: bytes, at: int, *, allow_parts: bool
) -> tuple[tuple[ChunkRef, ...], int] | None:
    """The chunks array at ``at`` checked as :func:`_parse_entries` does, or None."""
    head = _array_head(block, at)
    if head is None or head[0] > MAX_ENTRIES:
        return None
    count, at = head
    entries: list[ChunkRef] = []
    append = entries.append
    codecs: set[int] = set()
    for _ in range(count):
        if block[at : at + _ENTRY_LINK] != _ENTRY_HEAD:
            return None
        link = _from_link(block[at + _ENTRY_LINK : at + _ENTRY_SIZE])
        if link is None or block[at + _ENTRY_SIZE : at + _ENTRY_FIXED] != _ENTRY_SIZE_KEY:
            return None
        # Chunk sizes (64 KiB .. 1 MiB) take the 4-byte head: read it in place.
        if block[at + _ENTRY_FIXED : at + _ENTRY_FIXED + 1] == b"\x1a":
            size = int.from_bytes(block[at + _ENTRY_FIXED + 1 : at + _ENTRY_FIXED + 5], "big")
            if size <= 0xFFFF:
                return None
            at += _ENTRY_FIXED + 5
        else:
            read = _uint(block, at + _ENTRY_FIXED)
            if read is None:
                return None
            size, at = read
        if size < 1:
            return None
        codec_ = link.codec
        if codec_ == RAW:
            if size > MAX_BLOCK_SIZE:
                return None
        elif not allow_parts or size > MAX_ENTRIES * MAX_BLOCK_SIZE:
            return None
        codecs.add(codec_)
        append(ChunkRef(link, size))
    if len(codecs) > 1:
        return None
    return tuple(entries), at


def _read_file_node(cid: Cid, block: bytes) -> FileInfo | None:
    """:func:`parse_file_node`'s answer for a node in the one canonical layout, or None."""
    if type(block) is not bytes or len(block) > MAX_BLOCK_SIZE:
        return None
    if block[:1] not in (b"\xa6", b"\xa7"):  # a map of 6 fields, or 7 with the name
        return None
    at = 1 + len(_NODE_V1)
    if block[1:at] != _NODE_V1:
        return None
    name: str | None = None
    if block[0] == 0xA7:
        if block[at : at + len(_NAME_KEY)] != _NAME_KEY:
            return None
        text = _text(block, at + len(_NAME_KEY))
        if text is None:
            return None
        name, at = text
    if block[at : at + len(_SIZE_KEY)] != _SIZE_KEY:
        return None
    read = _uint(block, at + len(_SIZE_KEY))
    if read is None:
        return None
    size, at = read
    end = at + len(_TYPE_FILE) + len(_BLAKE3_KEY)
    if block[at:end] != _TYPE_FILE + _BLAKE3_KEY:
        return None
    digest = block[end : end + 32]
    at = end + 32
    if len(digest) != 32 or block[at : at + len(_CHUNKS_KEY)] != _CHUNKS_KEY:
        return None
    entries = _read_entries(block, at + len(_CHUNKS_KEY), allow_parts=True)
    if entries is None:
        return None
    chunks, at = entries
    if block[at : at + len(_MEDIA_TYPE_KEY)] != _MEDIA_TYPE_KEY:
        return None
    text = _text(block, at + len(_MEDIA_TYPE_KEY))
    if text is None or text[1] != len(block):
        return None
    media_type = text[0]
    if size >= 2**63 or sum(e.size for e in chunks) != size:
        return None
    try:
        check_media_type(media_type)
        check_name(name)
    except ArchiveError:
        return None
    return FileInfo(cid, size, media_type, name, digest, chunks)


def _read_file_part(ref: ChunkRef, block: bytes) -> tuple[ChunkRef, ...] | None:
    """:func:`parse_file_part`'s answer for a part in the one canonical layout, or None."""
    if type(block) is not bytes or len(block) > MAX_BLOCK_SIZE or not block.startswith(_PART_HEAD):
        return None
    entries = _read_entries(block, len(_PART_HEAD), allow_parts=False)
    if entries is None or entries[1] != len(block):
        return None
    chunks = entries[0]
    if sum(e.size for e in chunks) != ref.size:
        return None
    return chunks
