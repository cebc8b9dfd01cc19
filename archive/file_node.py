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
