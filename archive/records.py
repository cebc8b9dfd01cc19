"""Signed records: the envelope ``{type, v, author, body, links, ts, sig}``.

``author`` is a did:key, ``ts`` a hybrid logical clock (see :mod:`craftnet.archive.hlc`),
``links`` a list of CIDs (tag 42) and ``sig`` the Ed25519 signature over the canonical
DAG-CBOR encoding of the same map without ``sig``. A record is stored as one dag-cbor
block, so its CID is the hash of exactly the bytes that travel. Body schemas per type
live in :mod:`craftnet.archive.schemas`; this module knows only the envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import CodecError, RecordError
from craftnet.archive.hlc import MAX_TS, HybridClock
from craftnet.identity.batch import start_verify_many
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import SIGNATURE_SIZE, PrivateKey, PublicKey, parse_did

ENVELOPE_KEYS: Final = frozenset({"type", "v", "author", "body", "links", "ts", "sig"})
_UNSIGNED_KEYS: Final = ENVELOPE_KEYS - {"sig"}
MAX_RECORD_SIZE: Final = 256 * 1024
MAX_TYPE_LEN: Final = 64
MAX_LINKS: Final = 4096
# In canonical DAG-CBOR the envelope's keys sort as v, ts, sig, body, type, links, author,
# and an encoded map is its header followed by its entries. So the signed bytes are the
# block with the "sig" entry cut out and the header's count lowered by one.
_SIG_ENTRY: Final = b"\x63sig\x58\x40"
_MAP7: Final = 0xA7
_MAP6: Final = b"\xa6"


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
        signed = codec.encode(unsigned)
        sig = key.sign(signed)
        # Splice the sig entry in where canonical order puts it (see signed_bytes).
        at = _sig_offset(v, ts)
        block = bytes([_MAP7]) + signed[1:at] + _SIG_ENTRY + sig + signed[at:]
        if len(block) > MAX_RECORD_SIZE:
            raise RecordError(
                f"record is {len(block)} bytes; the limit is {MAX_RECORD_SIZE}. "
                "Store large content as a file and link it."
            )
        return cls._from_parts(unsigned, sig, block)

    @classmethod
    def _from_parts(
        cls, unsigned: dict[str, Any], sig: bytes, block: bytes, cid: Cid | None = None
    ) -> Record:
        return cls(
            type=unsigned["type"],
            v=unsigned["v"],
            author=unsigned["author"],
            body=unsigned["body"],
            links=tuple(unsigned["links"]),
            ts=unsigned["ts"],
            sig=sig,
            block=block,
            cid=Cid.of(block, DAG_CBOR) if cid is None else cid,
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
        return cls.from_decoded(value, block)

    @classmethod
    def from_decoded(cls, value: Any, block: bytes, *, cid: Cid | None = None) -> Record:
        """Parse a record from ``value``, which :func:`codec.decode` made of ``block``.

        For callers that decoded the block already (to see what kind of block it is);
        checks the envelope but not the signature, and takes ``value`` over. ``cid``:
        the block's DAG-CBOR CID, which the caller has checked against ``block`` (else
        it is computed here).
        """
        if len(block) > MAX_RECORD_SIZE:
            raise RecordError(f"record block is {len(block)} bytes; the limit is {MAX_RECORD_SIZE}")
        if not isinstance(value, dict):
            raise RecordError("a record is a DAG-CBOR map")
        sig = value.pop("sig", None)
        if not isinstance(sig, bytes):
            raise RecordError("record has no signature (field 'sig' must be bytes)")
        _check_envelope(value)
        if cid is not None and cid.codec != DAG_CBOR:
            raise RecordError(f"a record is DAG-CBOR; {cid} names another codec")
        return cls._from_parts(value, sig, bytes(block), cid)

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

    def signed_bytes(self) -> bytes:
        """The canonical encoding of :meth:`unsigned`, the bytes ``sig`` signs."""
        at = _sig_offset(self.v, self.ts)
        end = at + len(_SIG_ENTRY) + SIGNATURE_SIZE
        if self.block[0] == _MAP7 and self.block[at:end] == _SIG_ENTRY + self.sig:
            return _MAP6 + self.block[1:at] + self.block[end:]
        return codec.encode(self.unsigned())

    def verify(self) -> None:
        """Raise :class:`RecordError` unless ``sig`` is the author's strict signature."""
        try:
            author_key(self.author).verify(self.sig, self.signed_bytes())
        except IdentityError as exc:
            raise RecordError(f"record {self.cid}: {exc}") from exc


def verify_records(records: Sequence[Record]) -> list[RecordError | None]:
    """Check the signature of every record (on every core for a big batch, see
    :mod:`craftnet.identity.batch`); for each, None or the error :meth:`Record.verify`
    would raise."""
    return start_verify_records(records)()


def start_verify_records(records: Sequence[Record]) -> Callable[[], list[RecordError | None]]:
    """:func:`verify_records` begun now, collected by calling the result (the checks run
    on the worker processes meanwhile, when the batch goes to them)."""
    items: list[tuple[PublicKey, bytes, bytes]] = []
    errors: list[RecordError | None] = [None] * len(records)
    places: list[int] = []
    for place, record in enumerate(records):
        try:
            key = author_key(record.author)
        except IdentityError as exc:
            errors[place] = RecordError(f"record {record.cid}: {exc}")
            continue
        items.append((key, record.sig, record.signed_bytes()))
        places.append(place)
    pending = start_verify_many(items)

    def collect() -> list[RecordError | None]:
        for place, verdict in zip(places, pending(), strict=True):
            if verdict is not None:
                errors[place] = RecordError(f"record {records[place].cid}: {verdict}")
        return errors

    return collect


def _sig_offset(v: int, ts: int) -> int:
    """Where the sig entry starts in a record block: after the header, v and ts entries."""
    return 1 + 2 + _uint_size(v) + 3 + _uint_size(ts)


def _uint_size(value: int) -> int:
    """Bytes an unsigned integer takes in CBOR, header included."""
    if value < 24:
        return 1
    if value < 2**8:
        return 2
    if value < 2**16:
        return 3
    return 5 if value < 2**32 else 9


@lru_cache(maxsize=4096)
def author_key(did: str) -> PublicKey:
    """Parse and check an author's did:key, remembering the few thousand most recent.

    Hubs see the same authors again and again; parsing (base58, canonical-form and
    small-order checks) costs more than a CBOR decode, so it is done once per author.
    Only successes are cached: a bad did raises every time.
    """
    return parse_did(did)


def _check_envelope(value: dict[str, Any]) -> None:
    keys = set(value)
    if keys != _UNSIGNED_KEYS:
        missing = sorted(_UNSIGNED_KEYS - keys)
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
        author_key(value["author"])
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
