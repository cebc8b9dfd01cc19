"""Alliance records in a hub's store: genesis, certificates, revocations and invite tokens.

The rules live in :mod:`craftnet.identity.membership`; this module turns the signed
records the archive holds into its facts, writes new ones, and packs an invitation
(the genesis record plus a certificate for the invited hub) into a token that can be
pasted into a terminal or a chat: ``craftnet-invite:`` then base64url of DAG-CBOR.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from craftnet.archive import codec
from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.hlc import HybridClock
from craftnet.archive.index import get_record, ingest_records, publish, records_of_type
from craftnet.archive.records import Record
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
    days_to_ts_span,
)

TOKEN_PREFIX: Final = "craftnet-invite:"
MAX_TOKEN_CHARS: Final = 16 * 1024
GENESIS_TYPE: Final = "alliance"
CERT_TYPE: Final = "membership"
REVOKE_TYPE: Final = "membership-revocation"


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
        membership = Membership(genesis)
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
    membership.add(facts)
    return membership


def is_membership_record(rtype: str) -> bool:
    """Does a record of this type change who is a member?"""
    return rtype in (CERT_TYPE, REVOKE_TYPE, GENESIS_TYPE)


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
    clock: HybridClock | None = None,
) -> Record:
    """Admit ``member`` for ``days``; ``key``'s hub must be a member itself."""
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


def make_token(genesis: Record, certificate: Record) -> str:
    """The invitation token carrying the alliance genesis and the new hub's certificate."""
    raw = codec.encode({"v": 1, "g": genesis.block, "c": certificate.block})
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def read_token(token: str) -> tuple[Record, Record]:
    """``(genesis, certificate)`` from a token; raises :class:`MembershipError` if bad."""
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
    if not isinstance(value, dict) or set(value) != {"v", "g", "c"} or value["v"] != 1:
        raise MembershipError("the invitation token is not one this version understands")
    if not isinstance(value["g"], bytes) or not isinstance(value["c"], bytes):
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
    return genesis, cert


def accept_token(store: Store, token: str, did: str, now: int | None = None) -> Genesis:
    """Check a token is an invitation for ``did`` and store its records; return the alliance."""
    genesis, cert = read_token(token)
    fact = certificate_of(cert)
    if fact.member != did:
        raise MembershipError(
            f"this invitation is for {fact.member}, not for this hub ({did}); "
            "send the inviting hub this hub's did"
        )
    now = HybridClock().tick() if now is None else now
    gen = genesis_of(genesis)
    probe = Membership(gen, {fact})
    probe.check_certificate(fact)
    if not probe.is_member(did, now):
        raise MembershipError("this invitation has expired; ask for a new one")
    report = ingest_records(store, [genesis.block, cert.block], strict=True)
    if report.rejected:
        raise MembershipError(f"the token's records were refused: {report.rejected[0].reason}")
    return gen
