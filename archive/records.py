"""Signed records: the envelope ``{type, v, author, body, links, ts, sig}``.

``author`` is a did:key, ``ts`` a hybrid logical clock (see :mod:`craftnet.archive.hlc`),
``links`` a list of CIDs (tag 42) and ``sig`` the Ed25519 signature over the canonical
DAG-CBOR encoding of the same map without ``sig``. A record is stored as one dag-cbor
block, so its CID is the hash of exactly the bytes that travel. Body schemas per type
live in :mod:`craftnet.archive.schemas`; this module knows only the envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import CodecError, RecordError
from craftnet.archive.hlc import MAX_TS, HybridClock
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey, parse_did

ENVELOPE_KEYS: Final = frozenset({"type", "v", "author", "body", "links", "ts", "sig"})
MAX_RECORD_SIZE: Final = 256 * 1024
MAX_TYPE_LEN: Final = 64
MAX_LINKS: Final = 4096


@dataclass(frozen=True, slots=True)
class Record:
    """A signed record; build one with :meth:`create` or :meth:`from_block`."""

    type: str
    v: int
    author: str
    body: Mapping[str, Any]
    links: tuple[Cid, ...]
    ts: int
    sig: bytes
    block: bytes = field(repr=False, compare=False)
    cid: Cid = field(compare=False)

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        type: str,
        body: Mapping[str, Any],
        links: Iterable[Cid] = (),
        *,
        ts: int | None = None,
        clock: HybridClock | None = None,
        v: int = 1,
    ) -> Record:
        """Sign a new record with ``key``; ``ts`` defaults to a tick of ``clock``."""
        if ts is None:
            ts = (clock or HybridClock()).tick()
        unsigned = {
            "type": type,
            "v": v,
            "author": key.did,
            "body": dict(body),
            "links": list(links),
            "ts": ts,
        }
        _check_envelope(unsigned)
        sig = key.sign(codec.encode(unsigned))
        block = codec.encode({**unsigned, "sig": sig})
        if len(block) > MAX_RECORD_SIZE:
            raise RecordError(
                f"record is {len(block)} bytes; the limit is {MAX_RECORD_SIZE}. "
                "Store large content as a file and link it."
            )
        return cls._from_parts(unsigned, sig, block)

    @classmethod
    def _from_parts(cls, unsigned: dict[str, Any], sig: bytes, block: bytes) -> Record:
        return cls(
            type=unsigned["type"],
            v=unsigned["v"],
            author=unsigned["author"],
            body=unsigned["body"],
            links=tuple(unsigned["links"]),
            ts=unsigned["ts"],
            sig=sig,
            block=block,
            cid=Cid.of(block, DAG_CBOR),
        )

    @classmethod
    def from_block(cls, block: bytes, cid: Cid | None = None) -> Record:
        """Parse a record block; checks the envelope and ``cid`` but not the signature."""
        if len(block) > MAX_RECORD_SIZE:
            raise RecordError(f"record block is {len(block)} bytes; the limit is {MAX_RECORD_SIZE}")
        if cid is not None and (cid.codec != DAG_CBOR or not cid.verify(block)):
            raise RecordError(f"block does not match its CID {cid}")
        try:
            value = codec.decode(block, max_size=MAX_RECORD_SIZE)
        except CodecError as exc:
            raise RecordError(f"record is not canonical DAG-CBOR: {exc}") from exc
        if not isinstance(value, dict):
            raise RecordError("a record is a DAG-CBOR map")
        sig = value.pop("sig", None)
        if not isinstance(sig, bytes):
            raise RecordError("record has no signature (field 'sig' must be bytes)")
        _check_envelope(value)
        return cls._from_parts(value, sig, bytes(block))

    def unsigned(self) -> dict[str, Any]:
        """The envelope without ``sig``: the value the signature covers."""
        return {
            "type": self.type,
            "v": self.v,
            "author": self.author,
            "body": dict(self.body),
            "links": list(self.links),
            "ts": self.ts,
        }

    def verify(self) -> None:
        """Raise :class:`RecordError` unless ``sig`` is the author's strict signature."""
        try:
            parse_did(self.author).verify(self.sig, codec.encode(self.unsigned()))
        except IdentityError as exc:
            raise RecordError(f"record {self.cid}: {exc}") from exc


def _check_envelope(value: dict[str, Any]) -> None:
    keys = set(value)
    if keys != ENVELOPE_KEYS - {"sig"}:
        missing = sorted(ENVELOPE_KEYS - {"sig"} - keys)
        extra = sorted(keys - ENVELOPE_KEYS)
        raise RecordError(f"bad record envelope: missing {missing}, unexpected {extra}")
    rtype = value["type"]
    if not isinstance(rtype, str) or not 0 < len(rtype) <= MAX_TYPE_LEN:
        raise RecordError(f"record type must be a string of 1..{MAX_TYPE_LEN} characters")
    if type(value["v"]) is not int or not 0 < value["v"] < 2**16:
        raise RecordError("record version 'v' must be a positive integer")
    if not isinstance(value["author"], str):
        raise RecordError("record author must be a did:key string")
    try:
        parse_did(value["author"])
    except IdentityError as exc:
        raise RecordError(f"record author: {exc}") from exc
    if not isinstance(value["body"], dict):
        raise RecordError("record body must be a map")
    links = value["links"]
    if not isinstance(links, list) or not all(isinstance(link, Cid) for link in links):
        raise RecordError("record links must be a list of CIDs")
    if len(links) > MAX_LINKS:
        raise RecordError(f"record has {len(links)} links; the limit is {MAX_LINKS}")
    if type(value["ts"]) is not int or not 0 <= value["ts"] <= MAX_TS:
        raise RecordError("record ts must be a 64-bit hybrid logical clock integer")
