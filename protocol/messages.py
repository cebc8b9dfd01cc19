"""Wire messages: frozen dataclasses with a strict mapping to and from DAG-CBOR maps.

Every message travels as one DAG-CBOR map ``{"v": version, "t": type, ...fields}``
(see :mod:`craftnet.protocol.framing` for the length prefix). Decoding is strict: the
key set must be exactly the message's fields, every field has one allowed type and a
bound on its size, and anything else raises :class:`MalformedMessage`, which costs
the sender score. Field names are short because they travel in every frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from craftnet.archive import codec
from craftnet.archive.alliance import MAX_PROOF_RECORDS
from craftnet.archive.cid import Cid
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey, parse_did
from craftnet.protocol.errors import MalformedMessage, UnsupportedVersion

# 2: the hello carries a membership proof; a refusal says why (bye).
PROTOCOL_VERSION: Final = 2
SUPPORTED_VERSIONS: Final = (2,)
# 3 in a hello's versions: "version 2, and I understand coded reconcile ranges". Frames
# still carry v = 2, so a hub that speaks only 2 reads every frame a hub announcing 3
# sends it (coded ranges go only to hubs that announced 3).
RECON_CODED_VERSION: Final = 3
HELLO_VERSIONS: Final = (*SUPPORTED_VERSIONS, RECON_CODED_VERSION)
MAX_CIDS_PER_MESSAGE: Final = 1024
MAX_BLOCKS_PER_WANT: Final = 32  # bounds one answer to 32 blocks of at most 2 MiB
MAX_ANNOUNCE_ITEMS: Final = 256
# Small blocks an announcement may carry inline, so a hub need not ask for them.
MAX_PUSHED_BLOCK: Final = 4 * 1024
MAX_PUSHED_TOTAL: Final = 16 * 1024
MAX_ALLIANCE_LEN: Final = 128
MAX_PROOF_BLOCK: Final = 8 * 1024  # a certificate or succession record is well under 1 KiB
MAX_BYE_REASON: Final = 300
MAX_RANGES: Final = 8192
MAX_RANGE_DATA: Final = 64 * 1024
MAX_GIFTS: Final = 16384
MAX_ITEM_KEY: Final = 64
MAX_REQ_ID: Final = 2**63 - 1

T = TypeVar("T")


def _want(fields: Mapping[str, Any], name: str, kind: type[T], kind_name: str) -> T:
    value = fields[name]
    # bool is a subclass of int; a flag must not pass as a number or the reverse.
    if type(value) is not kind:
        raise MalformedMessage(f"field {name!r} must be {kind_name}, got {type(value).__name__}")
    return value


def _int(fields: Mapping[str, Any], name: str, lo: int = 0, hi: int = MAX_REQ_ID) -> int:
    value = _want(fields, name, int, "an integer")
    if not lo <= value <= hi:
        raise MalformedMessage(f"field {name!r} = {value} is outside {lo}..{hi}")
    return value


def _bytes(fields: Mapping[str, Any], name: str, max_len: int, min_len: int = 0) -> bytes:
    value = _want(fields, name, bytes, "a byte string")
    if not min_len <= len(value) <= max_len:
        raise MalformedMessage(
            f"field {name!r} has {len(value)} bytes; allowed {min_len}..{max_len}"
        )
    return value


def _str(fields: Mapping[str, Any], name: str, max_len: int) -> str:
    value = _want(fields, name, str, "a text string")
    if not 0 < len(value) <= max_len:
        raise MalformedMessage(f"field {name!r} must hold 1..{max_len} characters")
    return value


def _list(fields: Mapping[str, Any], name: str, max_len: int) -> list[Any]:
    value = _want(fields, name, list, "a list")
    if len(value) > max_len:
        raise MalformedMessage(f"field {name!r} has {len(value)} entries; the limit is {max_len}")
    return value


def _cids(
    fields: Mapping[str, Any], name: str, max_len: int = MAX_CIDS_PER_MESSAGE
) -> tuple[Cid, ...]:
    items = _list(fields, name, max_len)
    if not all(type(item) is Cid for item in items):
        raise MalformedMessage(f"field {name!r} must be a list of CIDs (tag 42)")
    return tuple(items)


def _did(fields: Mapping[str, Any], name: str) -> str:
    did = _str(fields, name, 128)
    try:
        parse_did(did)
    except IdentityError as exc:
        raise MalformedMessage(f"field {name!r}: {exc}") from exc
    return did


# Within a frame cache (see framing.py) one decoded announcement object is shared by
# many simulated hubs, each of which checks its signature: its signed bytes are
# encoded once. None (the default) means no memo.
_signed_memo: ContextVar[dict[int, tuple[Announce, bytes]] | None] = ContextVar(
    "craftnet_announce_signed_bytes", default=None
)
_SIGNED_MEMO_SIZE: Final = 4096


@contextmanager
def signed_bytes_memo(memo: dict[int, tuple[Announce, bytes]]) -> Iterator[None]:
    """Within the block, each announcement object's signed bytes are encoded once."""
    token = _signed_memo.set(memo)
    try:
        yield
    finally:
        _signed_memo.reset(token)


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on every sync stream: versions, alliance, who the hub is, and why
    it is a member.

    ``sig`` is the hub key's signature binding its ``did`` to the transport identity
    ``peer`` (the libp2p peer id the receiver sees the stream come from), so a hello
    cannot be replayed by another peer; the receiver checks it. ``proof`` holds the
    record blocks that make ``did`` a member (its certificates and their issuers' up to
    a founder, key successions after a rotation; empty for a founder): each is signed
    by its own author, so the hello's signature need not cover them.
    """

    # KIND is a property in every message, not a ClassVar: compiled with mypyc (simnet's
    # compiled mode), a dataclass's class attributes are handed to dataclass() as fields.
    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "hello"
    versions: tuple[int, ...]
    alliance: str
    did: str
    sig: bytes
    proof: tuple[bytes, ...] = ()

    @staticmethod
    def signed_part(versions: tuple[int, ...], alliance: str, did: str, peer: str) -> bytes:
        """The bytes the signature covers."""
        return codec.encode(
            {"t": "hello", "vs": list(versions), "al": alliance, "did": did, "peer": peer}
        )

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        versions: tuple[int, ...],
        alliance: str,
        peer: str,
        proof: tuple[bytes, ...] = (),
    ) -> Hello:
        """A hello from the hub holding ``key``, sent from transport identity ``peer``."""
        sig = key.sign(cls.signed_part(versions, alliance, key.did, peer))
        return cls(tuple(versions), alliance, key.did, sig, tuple(proof))

    def verify(self, peer: str) -> None:
        """Raise :class:`IdentityError` unless ``sig`` binds ``did`` to ``peer``."""
        message = self.signed_part(self.versions, self.alliance, self.did, peer)
        parse_did(self.did).verify(self.sig, message)

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {
            "vs": list(self.versions),
            "al": self.alliance,
            "did": self.did,
            "sig": self.sig,
            "pf": list(self.proof),
        }

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Hello:
        """Check and build from decoded fields (the signature is checked by :meth:`verify`)."""
        versions = _list(f, "vs", 16)
        if not versions or not all(type(v) is int and 0 < v < 2**16 for v in versions):
            raise MalformedMessage("hello 'vs' must list 1..16 protocol versions (small integers)")
        proof = _list(f, "pf", MAX_PROOF_RECORDS)
        if not all(type(p) is bytes and 0 < len(p) <= MAX_PROOF_BLOCK for p in proof):
            raise MalformedMessage(
                f"hello 'pf' must list record blocks of 1..{MAX_PROOF_BLOCK} bytes"
            )
        return cls(
            tuple(versions),
            _str(f, "al", MAX_ALLIANCE_LEN),
            _did(f, "did"),
            _bytes(f, "sig", 64, 64),
            tuple(proof),
        )


@dataclass(frozen=True, slots=True)
class Bye:
    """The last message before a hub closes a connection it refuses: why, in words.

    Sent when a hello is refused (other alliance or version, not a member as far as the
    sender knows, a bad signature), when the peer is banned or graylisted, when there is
    no room for more peers, or when its membership ended; the receiver reports it as
    the peer's refusal, so each side can say who refused whom and why.
    """

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "bye"
    why: str

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"why": self.why}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Bye:
        """Check and build from decoded fields."""
        return cls(_str(f, "why", MAX_BYE_REASON))


@dataclass(frozen=True, slots=True)
class Announce:
    """A signed gossip announcement: these records and document heads are new at ``did``.

    ``blocks`` may carry the bytes of some of the announced blocks (each at most
    :data:`MAX_PUSHED_BLOCK`, together at most :data:`MAX_PUSHED_TOTAL`), so that a hub
    stores a new record the moment the announcement arrives instead of asking for it. The
    signature does not cover them: each must hash to one of the signed CIDs, which is
    what vouches for it (and a forwarder that alters one is caught by that hash).
    """

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "ann"
    did: str
    ts: int
    records: tuple[Cid, ...]
    heads: tuple[Cid, ...]
    sig: bytes
    blocks: tuple[bytes, ...] = ()

    def unsigned(self) -> dict[str, Any]:
        """The map the signature covers."""
        return {
            "t": self.KIND,
            "did": self.did,
            "ts": self.ts,
            "rs": list(self.records),
            "hs": list(self.heads),
        }

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        ts: int,
        records: tuple[Cid, ...],
        heads: tuple[Cid, ...] = (),
        blocks: tuple[bytes, ...] = (),
    ) -> Announce:
        """Sign an announcement of ``records`` and ``heads`` with ``key``.

        ``blocks`` are pushed along unsigned; they must respect the inline limits.
        """
        draft = cls(key.did, ts, tuple(records), tuple(heads), b"", tuple(blocks))
        if len(draft.records) + len(draft.heads) > MAX_ANNOUNCE_ITEMS:
            raise MalformedMessage(f"an announcement holds at most {MAX_ANNOUNCE_ITEMS} CIDs")
        _check_pushed(draft.blocks, len(draft.records) + len(draft.heads))
        return cls(
            key.did,
            ts,
            draft.records,
            draft.heads,
            key.sign(codec.encode(draft.unsigned())),
            draft.blocks,
        )

    def signed_bytes(self) -> bytes:
        """The canonical encoding of :meth:`unsigned`, the bytes ``sig`` signs."""
        memo = _signed_memo.get()
        if memo is None:
            return codec.encode(self.unsigned())
        # Keyed by identity and holding the object, so an id is never reused meanwhile.
        found = memo.get(id(self))
        if found is not None and found[0] is self:
            return found[1]
        data = codec.encode(self.unsigned())
        memo[id(self)] = (self, data)
        if len(memo) > _SIGNED_MEMO_SIZE:
            del memo[next(iter(memo))]
        return data

    def verify(self) -> None:
        """Raise :class:`IdentityError` unless ``sig`` is ``did``'s strict signature."""
        parse_did(self.did).verify(self.sig, self.signed_bytes())

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {
            "did": self.did,
            "ts": self.ts,
            "rs": list(self.records),
            "hs": list(self.heads),
            "sig": self.sig,
            "bs": list(self.blocks),
        }

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Announce:
        """Check and build from decoded fields (the signature is checked by :meth:`verify`)."""
        did = _did(f, "did")
        records = _cids(f, "rs", MAX_ANNOUNCE_ITEMS)
        heads = _cids(f, "hs", MAX_ANNOUNCE_ITEMS)
        if len(records) + len(heads) > MAX_ANNOUNCE_ITEMS:
            raise MalformedMessage(f"an announcement holds at most {MAX_ANNOUNCE_ITEMS} CIDs")
        pushed = _list(f, "bs", MAX_ANNOUNCE_ITEMS)
        if not all(type(item) is bytes for item in pushed):
            raise MalformedMessage("field 'bs' must be a list of byte strings")
        blocks = tuple(pushed)
        _check_pushed(blocks, len(records) + len(heads))
        return cls(
            did,
            _int(f, "ts", 0, 2**64 - 1),
            records,
            heads,
            _bytes(f, "sig", 64, 64),
            blocks,
        )


def _check_pushed(blocks: tuple[bytes, ...], announced: int) -> None:
    """Refuse inline blocks beyond the limits (whether each matches a CID is the receiver's)."""
    if not blocks:
        return
    if len(blocks) > announced:
        raise MalformedMessage(f"an announcement of {announced} CIDs carries {len(blocks)} blocks")
    total = 0
    for block in blocks:
        if not 0 < len(block) <= MAX_PUSHED_BLOCK:
            raise MalformedMessage(
                f"an inline block has {len(block)} bytes; allowed 1..{MAX_PUSHED_BLOCK}"
            )
        total += len(block)
    if total > MAX_PUSHED_TOTAL:
        raise MalformedMessage(
            f"inline blocks total {total} bytes; the limit is {MAX_PUSHED_TOTAL}"
        )
    if len(set(blocks)) != len(blocks):
        raise MalformedMessage("an announcement carries the same block twice")


@dataclass(frozen=True, slots=True)
class Want:
    """Ask for blocks (``have_only`` False) or only whether the peer has them (True).

    The answer is any number of :class:`Block`, :class:`Have` and :class:`DontHave`
    messages with the same ``req``, then exactly one :class:`End`.
    """

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "want"
    req: int
    cids: tuple[Cid, ...]
    have_only: bool = False

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"req": self.req, "cids": list(self.cids), "ho": self.have_only}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Want:
        """Check and build from decoded fields."""
        cids = _cids(f, "cids")
        if not cids:
            raise MalformedMessage("a want names at least one CID")
        have_only = _want(f, "ho", bool, "a boolean")
        if not have_only and len(cids) > MAX_BLOCKS_PER_WANT:
            raise MalformedMessage(f"a want for blocks names at most {MAX_BLOCKS_PER_WANT} CIDs")
        return cls(_int(f, "req"), cids, have_only)


@dataclass(frozen=True, slots=True)
class Have:
    """Answer to a want: the peer holds these blocks."""

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "have"
    req: int
    cids: tuple[Cid, ...]

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"req": self.req, "cids": list(self.cids)}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Have:
        """Check and build from decoded fields."""
        return cls(_int(f, "req"), _cids(f, "cids"))


@dataclass(frozen=True, slots=True)
class DontHave:
    """Answer to a want: the peer does not hold these blocks."""

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "dont"
    req: int
    cids: tuple[Cid, ...]

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"req": self.req, "cids": list(self.cids)}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> DontHave:
        """Check and build from decoded fields."""
        return cls(_int(f, "req"), _cids(f, "cids"))


@dataclass(frozen=True, slots=True)
class Block:
    """One block answering a want; the receiver checks ``data`` against ``cid``."""

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "block"
    req: int
    cid: Cid
    data: bytes

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"req": self.req, "cid": self.cid, "data": self.data}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Block:
        """Check and build from decoded fields."""
        cid = _want(f, "cid", Cid, "a CID")
        return cls(_int(f, "req"), cid, _bytes(f, "data", codec.MAX_BLOCK_SIZE))


@dataclass(frozen=True, slots=True)
class End:
    """The explicit end of the answer to want ``req``: nothing more will come for it."""

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "end"
    req: int

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {"req": self.req}

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> End:
        """Check and build from decoded fields."""
        return cls(_int(f, "req"))


RANGE_SKIP: Final = 0
RANGE_FINGERPRINT: Final = 1
RANGE_IDLIST: Final = 2
RANGE_RESULT: Final = 3
# Coded ranges (rateless IBLT symbols), sent only to a hub whose hello lists
# RECON_CODED_VERSION; a hub without them refuses the modes as unknown.
RANGE_CODED: Final = 4
RANGE_MORE: Final = 5
RANGE_DECODED: Final = 6
RANGE_MODES: Final = {
    RANGE_SKIP: "skip",
    RANGE_FINGERPRINT: "fingerprint",
    RANGE_IDLIST: "idlist",
    RANGE_RESULT: "result",
    RANGE_CODED: "coded",
    RANGE_MORE: "more",
    RANGE_DECODED: "decoded",
}


@dataclass(frozen=True, slots=True)
class ReconRange:
    """One range of a reconcile message: everything below ``upper`` (None: to the end)
    and at or above the previous range's upper bound; ``mode`` says what ``data`` is."""

    upper: bytes | None
    mode: int
    data: bytes = b""

    def wire(self) -> list[Any]:
        """The range as a DAG-CBOR list ``[upper, mode, data]``."""
        return [self.upper, self.mode, self.data]

    @classmethod
    def from_wire(cls, value: Any) -> ReconRange:
        """Check and build from ``[upper, mode, data]``."""
        if type(value) is not list or len(value) != 3:
            raise MalformedMessage("a reconcile range is a list [upper, mode, data]")
        upper, mode, data = value
        if upper is not None and (type(upper) is not bytes or len(upper) > MAX_ITEM_KEY):
            raise MalformedMessage(f"a range bound is null or at most {MAX_ITEM_KEY} bytes")
        if type(mode) is not int or mode not in RANGE_MODES:
            raise MalformedMessage(f"unknown reconcile range mode {mode!r}")
        if type(data) is not bytes or len(data) > MAX_RANGE_DATA:
            raise MalformedMessage(f"range data must be at most {MAX_RANGE_DATA} bytes")
        return cls(upper, mode, data)


@dataclass(frozen=True, slots=True)
class Recon:
    """One frame of a reconcile message (see :mod:`craftnet.protocol.reconcile`).

    A logical reconcile message may span several frames; it is complete only at the
    frame with ``last`` set, so a truncated message is never acted upon.
    ``gifts`` are item keys (8-byte big-endian timestamp + id) the receiver lacks.
    """

    @property
    def KIND(self) -> str:
        """The message's type tag on the wire (``t``)."""
        return "recon"
    sid: int
    initiator: bool
    seq: int
    salt: bytes
    ranges: tuple[ReconRange, ...]
    gifts: tuple[bytes, ...]
    last: bool

    def fields(self) -> dict[str, Any]:
        """The message's fields as DAG-CBOR values."""
        return {
            "sid": self.sid,
            "ini": self.initiator,
            "seq": self.seq,
            "salt": self.salt,
            "rg": [r.wire() for r in self.ranges],
            "gf": list(self.gifts),
            "last": self.last,
        }

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> Recon:
        """Check and build from decoded fields."""
        ranges = tuple(ReconRange.from_wire(r) for r in _list(f, "rg", MAX_RANGES))
        gifts = _list(f, "gf", MAX_GIFTS)
        if not all(type(g) is bytes and 8 < len(g) <= MAX_ITEM_KEY for g in gifts):
            raise MalformedMessage(f"reconcile gifts are item keys of 9..{MAX_ITEM_KEY} bytes")
        return cls(
            _int(f, "sid"),
            _want(f, "ini", bool, "a boolean"),
            _int(f, "seq", 0, 2**32),
            _bytes(f, "salt", 32),
            ranges,
            tuple(gifts),
            _want(f, "last", bool, "a boolean"),
        )


Message = Hello | Bye | Announce | Want | Have | DontHave | Block | End | Recon
MESSAGE_TYPES: Final[dict[str, Callable[[Mapping[str, Any]], Message]]] = {
    "hello": Hello.from_fields,
    "bye": Bye.from_fields,
    "ann": Announce.from_fields,
    "want": Want.from_fields,
    "have": Have.from_fields,
    "dont": DontHave.from_fields,
    "block": Block.from_fields,
    "end": End.from_fields,
    "recon": Recon.from_fields,
}
_FIELD_NAMES: Final[dict[str, frozenset[str]]] = {
    "hello": frozenset({"vs", "al", "did", "sig", "pf"}),
    "bye": frozenset({"why"}),
    "ann": frozenset({"did", "ts", "rs", "hs", "sig", "bs"}),
    "want": frozenset({"req", "cids", "ho"}),
    "have": frozenset({"req", "cids"}),
    "dont": frozenset({"req", "cids"}),
    "block": frozenset({"req", "cid", "data"}),
    "end": frozenset({"req"}),
    "recon": frozenset({"sid", "ini", "seq", "salt", "rg", "gf", "last"}),
}

_WIRE_KEYS: Final[dict[str, frozenset[str]]] = {
    kind: names | {"v", "t"} for kind, names in _FIELD_NAMES.items()
}


def to_wire(message: Message, version: int = PROTOCOL_VERSION) -> dict[str, Any]:
    """The DAG-CBOR map of ``message`` with its version and type tag."""
    return {"v": version, "t": message.KIND, **message.fields()}


def from_wire(value: Any) -> Message:
    """Check a decoded map and build its message, or raise a :class:`RemoteProtocolError`."""
    if type(value) is not dict:
        raise MalformedMessage(f"a message is a DAG-CBOR map, got {type(value).__name__}")
    version = value.get("v")
    if type(version) is not int:
        raise MalformedMessage("a message needs an integer protocol version 'v'")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"protocol version {version} is not supported (this node speaks {SUPPORTED_VERSIONS});"
            " upgrade the older node"
        )
    kind = value.get("t")
    build = MESSAGE_TYPES.get(kind) if type(kind) is str else None
    if build is None or type(kind) is not str:
        raise MalformedMessage(f"unknown message type {kind!r:.40}")
    if value.keys() != _WIRE_KEYS[kind]:
        fields = [k for k in value if k not in ("v", "t")]
        raise MalformedMessage(
            f"{kind} message has fields {sorted(fields)}; expected {sorted(_FIELD_NAMES[kind])}"
        )
    # The builders read their fields by name, so "v" and "t" may stay in the map.
    return build(value)
