"""Alliance records in a hub's store: genesis, certificates, revocations and invite tokens.

The rules live in :mod:`craftnet.identity.membership`; this module turns the signed
records the archive holds into its facts, writes new ones, and packs an invitation
(the genesis record plus a certificate for the invited hub) into a token that can be
pasted into a terminal or a chat: ``craftnet-invite:`` then base64url of DAG-CBOR.

It also makes and checks *membership proofs*, which a hub sends in its hello: the
certificate records that admit its key (and their issuers', up to a founder), and the
key-succession records that lead from a certified key to its current one. Any member
can then check any other at first contact, whatever certificates it already holds;
:class:`AllianceView` is what the sync engine asks.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
import unicodedata
from collections.abc import Callable
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.hlc import HybridClock, pack
from craftnet.archive.index import get_record, ingest_records, publish, records_of_type
from craftnet.archive.key_facts import key_facts, key_history
from craftnet.archive.records import Record
from craftnet.archive.schemas import validate_record
from craftnet.archive.store import Store
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import (
    DEFAULT_CERT_DAYS,
    Certificate,
    Genesis,
    MemberRevocation,
    Membership,
    MembershipError,
    MembershipFact,
    days_to_ts_span,
)
from craftnet.identity.succession import Succession
from craftnet.identity.verify import KeyVerifier, Verifier

TOKEN_PREFIX: Final = "craftnet-invite:"
MAX_TOKEN_CHARS: Final = 48 * 1024  # room for the issuer's proof
GENESIS_TYPE: Final = "alliance"
CERT_TYPE: Final = "membership"
REVOKE_TYPE: Final = "membership-revocation"
SUCCESSION_TYPE: Final = "key-succession"
MAX_PROOF_RECORDS: Final = 16  # certificates and successions in one hello
CERTS_PER_KEY: Final = 2  # the newest unexpired certificates of each key in a proof
MAX_ORGANISATION_CHARS: Final = 200  # the certificate schema's limit for a line
# Control, format (bidirectional overrides, zero-width), separator, surrogate, private-use
# and unassigned characters: they could make one organisation look like another.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def hlc_now() -> int:
    """The current time as an HLC timestamp (membership is judged at a time)."""
    return pack(time.time_ns() // 1_000_000)


def genesis_of(record: Record) -> Genesis:
    """The :class:`Genesis` a verified ``alliance`` record states."""
    if record.type != GENESIS_TYPE:
        raise MembershipError(f"{record.cid} is a {record.type!r} record, not an alliance genesis")
    body = record.body
    return Genesis(
        alliance=str(record.cid),
        name=str(body["name"]),
        founders=tuple(body["founders"]),
        max_cert_days=int(body.get("max_cert_days", DEFAULT_CERT_DAYS)),
    )


def certificate_of(record: Record) -> Certificate:
    """The :class:`Certificate` a verified ``membership`` record states."""
    body = record.body
    return Certificate(
        alliance=str(body["alliance"]),
        member=str(body["member"]),
        issuer=record.author,
        issued=record.ts,
        expires=int(body["expires"]),
    )


def revocation_of(record: Record) -> MemberRevocation:
    """The :class:`MemberRevocation` a verified ``membership-revocation`` record states."""
    body = record.body
    return MemberRevocation(
        alliance=str(body["alliance"]),
        member=str(body["member"]),
        issuer=record.author,
        ts=record.ts,
        reason=str(body.get("reason", "")),
    )


def load_membership(store: Store, alliance: str) -> Membership:
    """The alliance ``alliance`` (its genesis CID) as this hub's store knows it."""
    try:
        cid = Cid.parse(alliance)
    except ArchiveError as exc:
        raise MembershipError(f"{alliance!r:.80} is not an alliance id (a CID): {exc}") from exc
    with store.read() as txn:
        try:
            genesis = genesis_of(get_record(txn, cid))
        except ArchiveError as exc:
            raise MembershipError(
                f"this hub does not hold the genesis of alliance {alliance}; "
                "join with an invitation token first"
            ) from exc
        facts: list[Certificate | MemberRevocation] = []
        for record in records_of_type(txn, CERT_TYPE):
            try:
                facts.append(certificate_of(record))
            except (MembershipError, KeyError, ValueError):
                continue  # a malformed certificate admits nobody
        for record in records_of_type(txn, REVOKE_TYPE):
            try:
                facts.append(revocation_of(record))
            except (MembershipError, KeyError, ValueError):
                continue
        keys = key_history(txn)
    membership = Membership(genesis, keys=keys)
    membership.add(facts)
    return membership


def check_organisation(value: object) -> str:
    """``value`` as a certificate's organisation (surrounding spaces dropped); raises
    :class:`MembershipError` saying what is wrong: not text, empty, longer than
    :data:`MAX_ORGANISATION_CHARS`, no letter or digit, or a character that could pass
    one organisation off as another (controls, bidirectional overrides, zero-width,
    line separators, private-use or unassigned code points)."""
    if not isinstance(value, str):
        raise MembershipError(f"an organisation is text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise MembershipError("an organisation needs a name, e.g. 'Lisbon Makers Co-op'")
    if len(text) > MAX_ORGANISATION_CHARS:
        raise MembershipError(
            f"an organisation is at most {MAX_ORGANISATION_CHARS} characters, got {len(text)}"
        )
    for char in text:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            raise MembershipError(
                f"an organisation may not hold U+{ord(char):04X} "
                f"({unicodedata.name(char, category)}): only printable characters"
            )
    if not any(char.isalnum() for char in text):
        raise MembershipError("an organisation's name needs at least one letter or digit")
    return text


def member_labels(store: Store, alliance: str) -> dict[str, dict[str, str]]:
    """``{did: {"name": ..., "organisation": ...}}`` from each hub's newest certificate
    in ``alliance`` (only the fields it states; a value another hub wrote that
    :func:`check_organisation` would refuse is left out)."""
    newest: dict[str, Record] = {}
    with store.read() as txn:
        for record in records_of_type(txn, CERT_TYPE):
            body = record.body
            if str(body.get("alliance")) != alliance or not isinstance(body.get("member"), str):
                continue
            member = body["member"]
            if member not in newest or record.ts > newest[member].ts:
                newest[member] = record
    labels: dict[str, dict[str, str]] = {}
    for member, record in newest.items():
        label: dict[str, str] = {}
        for field_name in ("name", "organisation"):
            try:
                label[field_name] = check_organisation(record.body.get(field_name))
            except MembershipError:
                continue
        if label:
            labels[member] = label
    return labels


def is_membership_record(rtype: str) -> bool:
    """Does a record of this type change who is a member?"""
    return rtype in (CERT_TYPE, REVOKE_TYPE, GENESIS_TYPE, SUCCESSION_TYPE, "revocation")


def create_alliance(
    store: Store,
    key: PrivateKey,
    name: str,
    founders: tuple[str, ...] = (),
    *,
    max_cert_days: int = DEFAULT_CERT_DAYS,
    rules: str | None = None,
) -> Record:
    """Publish the genesis of a new alliance founded by ``key``'s hub (and ``founders``)."""
    everyone = (key.did, *[f for f in founders if f != key.did])
    Genesis("pending", name, everyone, max_cert_days)  # the rules' checks, before signing
    body: dict[str, Any] = {
        "name": name,
        "founders": list(everyone),
        "max_cert_days": max_cert_days,
    }
    if rules:
        body["rules"] = rules
    return publish(store, key, GENESIS_TYPE, body)


def issue_certificate(
    store: Store,
    key: PrivateKey,
    alliance: str,
    member: str,
    *,
    days: int = DEFAULT_CERT_DAYS,
    name: str | None = None,
    organisation: str | None = None,
    clock: HybridClock | None = None,
) -> Record:
    """Admit ``member`` for ``days``; ``key``'s hub must be a member itself.

    ``organisation`` (checked by :func:`check_organisation`) names who runs the hub:
    witnesses are counted by it (docs/witness.md), and member lists show it.
    """
    if organisation is not None:
        organisation = check_organisation(organisation)
    membership = load_membership(store, alliance)
    clock = clock or HybridClock()
    issued = clock.tick()
    cert = Certificate(alliance, member, key.did, issued, issued + days_to_ts_span(days))
    membership.check_certificate(cert)
    body: dict[str, Any] = {
        "alliance": Cid.parse(alliance),
        "member": member,
        "expires": cert.expires,
    }
    if name:
        body["name"] = name
    if organisation is not None:
        body["organisation"] = organisation
    return publish(store, key, CERT_TYPE, body, links=[Cid.parse(alliance)], ts=issued)


def revoke_member(
    store: Store, key: PrivateKey, alliance: str, member: str, reason: str = ""
) -> Record:
    """End ``member``'s membership now (the issuer must be allowed to, see the rules)."""
    membership = load_membership(store, alliance)
    body: dict[str, Any] = {"alliance": Cid.parse(alliance), "member": member}
    if reason:
        body["reason"] = reason
    record = Record.create(key, REVOKE_TYPE, body, [Cid.parse(alliance)])
    rev = revocation_of(record)
    probe = Membership(membership.genesis, set(membership.certificates), {rev})
    if not probe._revoker_ok(rev):
        raise MembershipError(
            f"{key.did} may not revoke {member}: only a founder, the hub itself or a hub "
            "that admitted it may"
        )
    return publish(store, key, REVOKE_TYPE, body, links=[Cid.parse(alliance)], ts=record.ts)


def make_token(genesis: Record, certificate: Record, proof: tuple[bytes, ...] = ()) -> str:
    """The invitation token: the alliance genesis, the new hub's certificate and, when the
    inviting hub is not a founder, its own membership proof (so the certificate checks
    out at a hub that knows only the genesis)."""
    value: dict[str, Any] = {"v": 1, "g": genesis.block, "c": certificate.block}
    if proof:
        value["p"] = list(proof)
    raw = codec.encode(value)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def read_token(token: str) -> tuple[Record, Record, tuple[bytes, ...]]:
    """``(genesis, certificate, issuer's proof)`` from a token; raises
    :class:`MembershipError` if bad."""
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        raise MembershipError(
            f"an invitation token starts with {TOKEN_PREFIX!r} and is at most "
            f"{MAX_TOKEN_CHARS} characters; ask the inviting hub to run 'craftnet alliance invite'"
        )
    text = token[len(TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = codec.decode(raw)
    except (binascii.Error, ValueError, ArchiveError) as exc:
        raise MembershipError(f"the invitation token is damaged (copy it whole): {exc}") from exc
    if (
        not isinstance(value, dict)
        or set(value) - {"p"} != {"v", "g", "c"}
        or value["v"] != 1
    ):
        raise MembershipError("the invitation token is not one this version understands")
    proof = value.get("p", [])
    if (
        not isinstance(value["g"], bytes)
        or not isinstance(value["c"], bytes)
        or not isinstance(proof, list)
        or not all(isinstance(p, bytes) for p in proof)
    ):
        raise MembershipError("the invitation token is damaged (its records are not bytes)")
    try:
        genesis = Record.from_block(value["g"])
        cert = Record.from_block(value["c"])
        genesis.verify()
        cert.verify()
    except (ArchiveError, IdentityError) as exc:
        raise MembershipError(f"the invitation token's records do not verify: {exc}") from exc
    gen = genesis_of(genesis)
    if cert.type != CERT_TYPE:
        raise MembershipError("the invitation token does not hold a membership certificate")
    try:
        fact = certificate_of(cert)
    except (KeyError, ValueError) as exc:
        raise MembershipError(f"the certificate in the token is malformed: {exc}") from exc
    if fact.alliance != gen.alliance:
        raise MembershipError("the token's certificate is for another alliance than its genesis")
    return genesis, cert, tuple(proof)


def accept_token(store: Store, token: str, did: str, now: int | None = None) -> Genesis:
    """Check a token is an invitation for ``did`` and store its records; return the alliance."""
    genesis, cert, proof = read_token(token)
    fact = certificate_of(cert)
    if fact.member != did:
        raise MembershipError(
            f"this invitation is for {fact.member}, not for this hub ({did}); "
            "send the inviting hub this hub's did"
        )
    now = HybridClock().tick() if now is None else now
    gen = genesis_of(genesis)
    try:
        proof_records, proof_facts_ = proof_facts(proof, KeyVerifier())
    except IdentityError as exc:
        raise MembershipError(f"the inviting hub's proof in the token is bad: {exc}") from exc
    probe = Membership(gen, {fact})
    probe.add(proof_facts_)
    probe.check_certificate(fact)
    if not probe.is_member(did, now):
        raise MembershipError("this invitation has expired; ask for a new one")
    blocks = [genesis.block, cert.block, *(r.block for r in proof_records)]
    report = ingest_records(store, blocks, strict=True)
    if report.rejected:
        raise MembershipError(f"the token's records were refused: {report.rejected[0].reason}")
    return gen


def invite(
    store: Store,
    key: PrivateKey,
    alliance: str,
    member: str,
    *,
    days: int = DEFAULT_CERT_DAYS,
    name: str | None = None,
    organisation: str | None = None,
) -> tuple[Record, str]:
    """Admit ``member`` (see :func:`issue_certificate`); returns the certificate and the
    token carrying it, the genesis and this hub's own membership proof."""
    cert = issue_certificate(store, key, alliance, member, days=days, name=name,
                             organisation=organisation)
    membership = load_membership(store, alliance)
    with store.read() as txn:
        genesis = get_record(txn, Cid.parse(alliance))
    proof = membership_proof(store, membership, key.did, cert.ts)
    return cert, make_token(genesis, cert, proof)


# ------------------------------------------------------------------ membership proofs


def membership_proof(
    store: Store, membership: Membership, did: str, now: int
) -> tuple[bytes, ...]:
    """The record blocks that prove ``did`` a member: its certificates, the succession
    records from a certified key to it, and their issuers' in turn, up to the founders.

    At most :data:`MAX_PROOF_RECORDS`; a founder needs none. Only what the store holds
    goes in, so a hub that cannot prove itself sends what it has.
    """
    founders = set(membership.genesis.founders)
    blocks: list[bytes] = []
    todo = [did]
    seen: set[str] = set()
    with store.read() as txn:
        by_member: dict[str, list[Record]] = {}
        for record in records_of_type(txn, CERT_TYPE):
            member = record.body.get("member")
            if isinstance(member, str):
                by_member.setdefault(member, []).append(record)
        while todo and len(blocks) < MAX_PROOF_RECORDS:
            key = todo.pop(0)
            if key in seen or key in founders:
                continue
            seen.add(key)
            certs = [
                r
                for r in by_member.get(key, [])
                if r.ts <= now < _expires(r) and r.body.get("alliance") == _alliance_cid(membership)
            ]
            for record in sorted(certs, key=lambda r: r.ts, reverse=True)[:CERTS_PER_KEY]:
                blocks.append(record.block)
                todo.append(record.author)
            for fact in key_facts(txn, key):
                if fact.kind == "predecessor":
                    with contextlib.suppress(ArchiveError):  # named, not yet held
                        blocks.append(get_record(txn, fact.record).block)
                        todo.append(fact.other)
    return tuple(blocks[:MAX_PROOF_RECORDS])


def _expires(record: Record) -> int:
    value = record.body.get("expires")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _alliance_cid(membership: Membership) -> Cid | None:
    try:
        return Cid.parse(membership.alliance)
    except ArchiveError:
        return None


def proof_facts(
    blocks: tuple[bytes, ...], verifier: Verifier
) -> tuple[list[Record], list[MembershipFact]]:
    """The records of a membership proof and the facts they state, every one checked.

    Raises :class:`IdentityError` (a :class:`MembershipError` for what is not a proof
    record) if one is malformed, of another type or badly signed: a hub sends only
    records it could check itself.
    """
    if len(blocks) > MAX_PROOF_RECORDS:
        raise MembershipError(f"a membership proof holds at most {MAX_PROOF_RECORDS} records")
    records: list[Record] = []
    facts: list[MembershipFact] = []
    for block in blocks:
        try:
            record = Record.from_block(block)
            validate_record(record)
        except ArchiveError as exc:
            raise MembershipError(f"a membership proof record is malformed: {exc}") from exc
        verifier.verify(record.author, record.sig, record.signed_bytes())
        try:
            if record.type == CERT_TYPE:
                facts.append(certificate_of(record))
            elif record.type == SUCCESSION_TYPE:
                facts.append(Succession(record.author, str(record.body["new"]), record.ts))
            else:
                raise MembershipError(
                    f"a {record.type!r} record is no part of a membership proof"
                )
        except (KeyError, ValueError) as exc:
            raise MembershipError(f"a membership proof record is malformed: {exc}") from exc
        records.append(record)
    return records, facts


def admit(
    membership: Membership, did: str, proof: tuple[bytes, ...], verifier: Verifier, now: int
) -> list[tuple[Record, MembershipFact]] | None:
    """If ``did`` is a member at ``now`` with ``proof`` added to ``membership``: the
    proof's records and facts ``membership`` lacked, now added to it (empty if ``did`` was
    a member already); None if it is not one even so.

    Raises :class:`IdentityError` for a malformed or forged proof.
    """
    if membership.is_member(did, now):
        return []
    if not proof:
        return None
    records, facts = proof_facts(proof, verifier)
    probe = membership.copy()
    probe.add(facts)
    if not probe.is_member(did, now):
        return None
    new = [
        (record, fact)
        for record, fact in zip(records, facts, strict=True)
        if fact not in membership.certificates and fact not in membership.keys.facts
    ]
    membership.add(fact for _, fact in new)
    return new


class AllianceView:
    """The alliance as one hub knows it, for its sync engine.

    ``is_member`` judges a did now (by ``clock``, HLC time); ``proof`` is this hub's own
    membership proof for its hello; ``admit`` checks a peer's proof and, if it makes the
    peer a member, learns its facts and returns the records this hub did not hold (the
    engine stores them). Facts learned from proofs are kept across :meth:`reload`, which
    re-reads the store after membership records arrived.
    """

    def __init__(
        self,
        store: Store,
        alliance: str,
        did: str,
        clock: Callable[[], int] = hlc_now,
    ) -> None:
        self.store = store
        self.alliance = alliance
        self.did = did
        self.clock = clock
        self.learned: list[MembershipFact] = []
        self.membership = load_membership(store, alliance)
        self._proof = membership_proof(store, self.membership, did, clock())

    def reload(self) -> None:
        """Re-read membership (and our own proof) from the store."""
        membership = load_membership(self.store, self.alliance)
        membership.add(self.learned)
        self.membership = membership
        self._proof = membership_proof(self.store, membership, self.did, self.clock())

    def is_member(self, did: str) -> bool:
        """Is ``did`` a member now?"""
        return self.membership.is_member(did, self.clock())

    def proof(self) -> tuple[bytes, ...]:
        """This hub's membership proof (record blocks) for its hello."""
        return self._proof

    def admit(
        self, did: str, proof: tuple[bytes, ...], verifier: Verifier
    ) -> list[Record] | None:
        """The proof's records we lacked if ``proof`` makes ``did`` a member now, else None.

        Raises :class:`IdentityError` for a malformed or forged proof.
        """
        learned = admit(self.membership, did, proof, verifier, self.clock())
        if learned is None:
            return None
        self.learned.extend(fact for _, fact in learned)
        return [record for record, _ in learned]
