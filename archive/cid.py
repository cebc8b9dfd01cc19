"""Content identifiers: CIDv1 with a BLAKE3-256 multihash, shown in base32.

Only what craftnet writes is accepted: version 1, codec dag-cbor (0x71) or raw (0x55),
multihash BLAKE3 (0x1e) with a 32-byte digest. These are standard multiformats, so any
IPLD tool can read and check them.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Callable
from typing import Final

import blake3

from craftnet.archive import varint
from craftnet.archive.errors import CidError

DAG_CBOR: Final = 0x71
RAW: Final = 0x55
BLAKE3_CODE: Final = 0x1E
DIGEST_SIZE: Final = 32
CODEC_NAMES: Final = {DAG_CBOR: "dag-cbor", RAW: "raw"}
# Names of multicodecs a foreign CID (an IPFS export, say) is likely to use, so that a
# refusal says what it saw.
FOREIGN_CODECS: Final = {
    0x55: "raw",
    0x70: "dag-pb",
    0x71: "dag-cbor",
    0x0129: "dag-json",
    0x0200: "json",
    0x51: "cbor",
}
FOREIGN_HASHES: Final = {
    0x12: "sha2-256",
    0x13: "sha2-512",
    0x1E: "blake3",
    0xB220: "blake2b-256",
}
# version, codec, hash code and digest length are each one varint byte for our values.
_PREFIXES: Final = {
    DAG_CBOR: bytes([0x01, DAG_CBOR, BLAKE3_CODE, DIGEST_SIZE]),
    RAW: bytes([0x01, RAW, BLAKE3_CODE, DIGEST_SIZE]),
}
_VALID_PREFIXES: Final = frozenset(_PREFIXES.values())
CID_BYTES_LEN: Final = 4 + DIGEST_SIZE
# The codec argument that tells Cid.__init__ its digest is a checked binary form.
_CHECKED: Final = -1
# "b" and the unpadded base32 of the 36 bytes: every CID craftnet accepts is this long,
# so anything else is refused before it is decoded.
CID_TEXT_LEN: Final = 1 + (CID_BYTES_LEN * 8 + 4) // 5


class Cid:
    """A CIDv1 naming one block by the BLAKE3 hash of its bytes."""

    # The hash is kept beside the bytes: every dict and set of CIDs calls __hash__ (a
    # simulated delivery does about 15 times), and a slot read is cheaper than hash().
    __slots__ = ("_bytes", "_hash")
    _bytes: bytes
    _hash: int

    def __init__(self, codec: int, digest: bytes) -> None:
        if codec == _CHECKED:
            # The private path of from_bytes and from_link (most CIDs are made there):
            # ``digest`` is a whole binary form they have checked. Every CID is made
            # through __init__: compiled with mypyc (simnet's compiled mode), a class
            # cannot be made without it, so object.__new__ is not an option.
            raw = digest
        else:
            prefix = _PREFIXES.get(codec)
            if prefix is None:
                raise CidError(f"unsupported CID codec 0x{codec:x}; expected dag-cbor or raw")
            if len(digest) != DIGEST_SIZE:
                raise CidError(f"a BLAKE3-256 digest is 32 bytes, got {len(digest)}")
            raw = prefix + bytes(digest)
        _set_bytes(self, raw)
        _set_hash(self, hash(raw))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Cid is immutable")

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview, codec: int = RAW) -> Cid:
        """Return the CID of ``data`` stored under ``codec``."""
        return cls(codec, blake3.blake3(data).digest())

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview) -> Cid:
        """Parse the binary form of a CID (as inside tag 42 or a CAR section)."""
        raw = bytes(raw)
        if len(raw) != CID_BYTES_LEN or raw[:4] not in _VALID_PREFIXES:
            raise CidError(why_unsupported(raw))
        return cls(_CHECKED, raw)

    @classmethod
    def from_link(cls, raw: builtins.bytes) -> Cid | None:
        """The CID in a tag-42 payload (``0x00`` + binary CID), or None if it is not one
        :meth:`from_bytes` accepts (call it for the reason).

        The decoder meets a link in nearly every block; this is its short path.
        """
        if len(raw) != CID_BYTES_LEN + 1 or raw[1:5] not in _VALID_PREFIXES:
            return None
        return cls(_CHECKED, raw[1:])

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse the base32 text form (``b...``); anything else is rejected."""
        if not isinstance(text, str) or not text.startswith("b"):
            raise CidError(f"not a base32 CIDv1 (must start with 'b'): {_shown(text)}")
        if len(text) != CID_TEXT_LEN:
            raise CidError(
                f"a CID is {CID_TEXT_LEN} characters here, got {len(text)}: {_shown(text)}"
            )
        body = text[1:]
        if body != body.lower() or not body.isascii():
            raise CidError(f"a CID is lower-case base32: {_shown(text)}")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise CidError(f"not valid base32: {_shown(text)}") from exc
        cid = cls.from_bytes(raw)
        if str(cid) != text:
            raise CidError(f"non-canonical base32 in CID: {_shown(text)}")
        return cid

    @property
    def codec(self) -> int:
        """The multicodec of the block's content (0x71 dag-cbor or 0x55 raw)."""
        return self._bytes[1]

    @property
    def codec_name(self) -> str:
        """The codec's multicodec name."""
        return CODEC_NAMES[self.codec]

    @property
    def digest(self) -> bytes:
        """The 32-byte BLAKE3 digest."""
        return self._bytes[4:]

    @property
    def bytes(self) -> builtins.bytes:
        """The binary form."""
        return self._bytes

    def verify(self, data: builtins.bytes | bytearray | memoryview) -> bool:
        """Tell whether ``data`` hashes to this CID."""
        return blake3.blake3(data).digest() == self.digest

    def __str__(self) -> str:
        return "b" + base64.b32encode(self._bytes).decode("ascii").lower().rstrip("=")

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cid) and other._bytes == self._bytes

    def __lt__(self, other: Cid) -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[object, tuple[builtins.bytes]]:
        return (Cid.from_bytes, (self._bytes,))


# The slots' own setters, past the __setattr__ that keeps a CID immutable: one call each,
# as cheap interpreted as object.__new__ and object.__setattr__ were before (and
# working the same on mypyc's compiled class, whose attributes are such descriptors too).
_set_bytes: Final[Callable[[Cid, bytes], None]] = vars(Cid)["_bytes"].__set__
_set_hash: Final[Callable[[Cid, int], None]] = vars(Cid)["_hash"].__set__


def why_unsupported(raw: bytes) -> str:
    """Say why the binary CID ``raw`` is not one craftnet accepts (version, codec, hash, size).

    Only the four leading varints are read, each at most 9 bytes, so the work is bounded
    whatever ``raw`` holds.
    """
    if raw[:2] == b"\x12\x20":
        return "a CIDv0 (dag-pb, sha2-256) is not supported; craftnet uses CIDv1"
    fields: list[int] = []
    pos = 0
    try:
        while len(fields) < 4:
            got = varint.decode_varint(raw, pos, what="CID prefix")
            if got is None:
                return "the CID is cut short inside its prefix"
            fields.append(got[0])
            pos = got[1]
    except varint.VarintError as exc:
        return f"not a CID: {exc}"
    version, codec, hash_code, size = fields
    if version != 1:
        return f"CID version {version} is not supported; craftnet uses CIDv1"
    if codec not in CODEC_NAMES:
        name = FOREIGN_CODECS.get(codec, "unknown")
        return f"CID codec 0x{codec:x} ({name}) is not supported; expected dag-cbor or raw"
    if hash_code != BLAKE3_CODE:
        name = FOREIGN_HASHES.get(hash_code, "unknown")
        return (
            f"CID hash 0x{hash_code:x} ({name}) is not supported; craftnet's CIDs use "
            "BLAKE3-256 (0x1e)"
        )
    if size != DIGEST_SIZE:
        return f"CID digest is {size} bytes; BLAKE3-256 digests are 32"
    if len(raw) < CID_BYTES_LEN:
        return f"the CID ends after {len(raw)} of its {CID_BYTES_LEN} bytes"
    return f"a CID is {CID_BYTES_LEN} bytes here, got {len(raw)}"


def _shown(value: object) -> str:
    """The start of ``value`` for a message, cut before ``repr`` so a huge string costs nothing."""
    return repr(value[:80] if isinstance(value, str | bytes) else value)[:80]
