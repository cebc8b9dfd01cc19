"""Key-succession and revocation facts in the store, and the key history built from them.

When a ``key-succession`` or ``revocation`` record is stored (see
:func:`craftnet.archive.index.put_record`), the fact it states is also written to the
``keys`` database, so a hub can rebuild :class:`craftnet.identity.succession.KeyHistory`
without parsing every record. Keys (``ts8`` = the record's HLC timestamp, 8 bytes
big-endian; ``cid`` = the record's 36-byte CID):

* ``s`` old did ``\\x00`` ts8 cid -> DAG-CBOR ``{new, reason?}``: old handed over to new;
* ``p`` new did ``\\x00`` ts8 cid -> DAG-CBOR ``{old}``: the same fact, found from the new key;
* ``r`` revoked did ``\\x00`` ts8 cid -> DAG-CBOR ``{by, since, reason}``.

A revocation record says "records ``did`` signed from ``since`` on are void". For the
key history that is a retirement at ``since`` when ``since`` is not earlier than the
revocation itself, and a compromise from ``since`` (which also voids successions the key
signed from then on) when it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard

from craftnet.archive import codec
from craftnet.archive.cid import CID_BYTES_LEN, Cid
from craftnet.archive.store import ReadTxn, WriteTxn, prefix_end
from craftnet.identity.errors import IdentityError
from craftnet.identity.succession import KeyHistory, Revocation, Succession

SUCCESSION: Final = b"s"
PREDECESSOR: Final = b"p"
REVOCATION: Final = b"r"
_SEP: Final = b"\x00"
_TS_LEN: Final = 8
_SUFFIX_LEN: Final = _TS_LEN + CID_BYTES_LEN

FactKind = Literal["succession", "predecessor", "revocation"]
_KINDS: Final[dict[bytes, FactKind]] = {
    SUCCESSION: "succession",
    PREDECESSOR: "predecessor",
    REVOCATION: "revocation",
}
_OTHER: Final[dict[FactKind, str]] = {
    "succession": "new",
    "predecessor": "old",
    "revocation": "by",
}


def is_did_text(value: object) -> TypeGuard[str]:
    """Tell whether ``value`` can be an index key part: an ASCII string without NUL."""
    return isinstance(value, str) and value.isascii() and "\x00" not in value


def put_facts(
    txn: WriteTxn, rtype: str, author: str, body: Mapping[str, Any], suffix: bytes
) -> None:
    """Write the facts a key-succession or revocation record states (others: nothing),
    from its type, author and body (an import writes records checked on the worker
    processes without making a :class:`~craftnet.archive.records.Record` of each)."""
    if rtype == "key-succession":
        new = body.get("new")
        if not is_did_text(new):
            return  # not a valid body; ingest_records refuses such records before this
        fact: dict[str, Any] = {"new": new}
        if isinstance(body.get("reason"), str):
            fact["reason"] = body["reason"]
        txn.put("keys", SUCCESSION + author.encode() + _SEP + suffix, codec.encode(fact))
        txn.put("keys", PREDECESSOR + new.encode() + _SEP + suffix, codec.encode({"old": author}))
    elif rtype == "revocation":
        did, since, reason = body.get("did"), body.get("since"), body.get("reason")
        if not is_did_text(did) or type(since) is not int or not isinstance(reason, str):
            return  # not a valid body; ingest_records refuses such records before this
        value = {"by": author, "since": since, "reason": reason}
        txn.put("keys", REVOCATION + did.encode() + _SEP + suffix, codec.encode(value))


@dataclass(frozen=True, slots=True)
class KeyFact:
    """A stored key-succession or revocation fact about one did.

    ``kind`` is ``succession`` (``did`` handed over to ``other``), ``predecessor``
    (``did`` took over from ``other``) or ``revocation`` (``did`` was revoked by
    ``other``, void from ``since`` on). ``ts`` is the stating record's time and
    ``record`` its CID.
    """

    kind: FactKind
    did: str
    other: str
    ts: int
    record: Cid
    since: int | None = None
    reason: str | None = None


def _fact(key: bytes, value: bytes) -> KeyFact:
    kind = _KINDS[key[:1]]
    suffix = key[-_SUFFIX_LEN:]
    data = codec.decode(value)
    return KeyFact(
        kind=kind,
        did=key[1 : -_SUFFIX_LEN - 1].decode(),
        other=data[_OTHER[kind]],
        ts=int.from_bytes(suffix[:_TS_LEN], "big"),
        record=Cid.from_bytes(suffix[_TS_LEN:]),
        since=data.get("since"),
        reason=data.get("reason"),
    )


def key_facts(txn: ReadTxn, did: str | None = None) -> list[KeyFact]:
    """Succession, predecessor and revocation facts about ``did`` (all if None), oldest first."""
    facts: list[KeyFact] = []
    for tag in (SUCCESSION, PREDECESSOR, REVOCATION):
        prefix = tag if did is None else tag + did.encode() + _SEP
        facts.extend(_fact(k, v) for k, v in txn.iterate("keys", prefix, prefix_end(prefix)))
    facts.sort(key=lambda fact: (fact.ts, fact.record, fact.kind))
    return facts


def to_succession(fact: KeyFact) -> Succession:
    """The identity-layer fact for a stored ``succession`` fact."""
    return Succession(old_did=fact.did, new_did=fact.other, ts=fact.ts)


def to_revocation(fact: KeyFact) -> Revocation:
    """The identity-layer fact for a stored ``revocation`` fact (see the module docstring)."""
    since = fact.ts if fact.since is None else fact.since
    return Revocation.void_from(fact.did, issued=fact.ts, since=since, reason=fact.reason or "")


def key_history(txn: ReadTxn) -> KeyHistory:
    """Build the key history from every stored fact.

    Revocations count only when signed by the revoked key or a later key of its
    identity (:meth:`KeyHistory.may_revoke`), judged on the successions alone so that
    the answer depends only on the set of facts, not on their order.
    """
    facts = key_facts(txn)
    successions = []
    for fact in facts:
        if fact.kind == "succession":
            try:
                successions.append(to_succession(fact))
            except IdentityError:
                continue  # a malformed fact cannot take effect; the record is still kept
    chains = KeyHistory(successions)
    revocations = []
    for fact in facts:
        if fact.kind == "revocation" and chains.may_revoke(fact.other, fact.did):
            try:
                revocations.append(to_revocation(fact))
            except IdentityError:
                continue
    return KeyHistory([*successions, *revocations])
