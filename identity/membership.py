"""Alliance membership: who may sync with and announce to an alliance's hubs, and when.

An alliance starts with a *genesis*: its name, the did:keys of its founding hubs and its
rules. A member hub admits a new hub by signing a *certificate* naming the new hub's
did with an expiry; a *member revocation* ends a hub's membership from its time on.
All three travel as ordinary signed records (types ``alliance``, ``membership`` and
``membership-revocation``, see :mod:`craftnet.archive.schemas`); the archive layer
verifies the signatures and hands the facts to this module, which holds the rules,
pure and free of I/O:

1. Founders are members from the beginning of time until revoked.
2. A certificate makes ``member`` a member from ``issued`` until ``expires`` if its
   issuer was a member at ``issued``, names this alliance, and does not run longer
   than the genesis allows (``max_cert_days``). Certificates dated in the future are
   valid from their ``issued`` time only.
3. A member revocation of ``member`` at ``ts`` takes effect if it is issued by a
   founder, by the member itself (leaving), or by a hub that issued one of the
   member's certificates; it ends every certificate of ``member`` issued at or before
   ``ts``. A certificate issued *after* the revocation re-admits the hub. An issuer
   needs no membership of its own to revoke (a lapsed founder can still cut off an
   impostor), but a revocation names a member, never the alliance.
4. Certificates a member issued before being revoked stay valid (no cascade: a hub
   admitted by a later-revoked hub is not punished for it; revoke it on its own).
5. The answers depend only on the set of facts, never on the order they arrived in.
6. Key rotation: a hub that rotates its key signs a key succession with the old key
   (:mod:`craftnet.identity.succession`). From the succession's time the new key is a
   member for as long as the old key's membership would have lasted (the old key's
   founder status and certificates carry over, revocations of the old key's membership
   still end them), and the old key speaks for nobody any more. A membership revocation
   naming the new key ends the membership it inherited. A key that is not valid at a
   time (succeeded, revoked, compromised) is not a member then, whatever it holds.

Times are HLC timestamps (:mod:`craftnet.archive.hlc`): wall milliseconds << 16.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from craftnet.identity.errors import IdentityError, MalformedDid
from craftnet.identity.keys import did_to_raw
from craftnet.identity.succession import Fact, KeyHistory, Revocation, Succession

DEFAULT_CERT_DAYS: Final = 365
MAX_CERT_DAYS: Final = 3650
MAX_NAME: Final = 128
MAX_FOUNDERS: Final = 64
_MS_PER_DAY: Final = 86_400_000
_HLC_SHIFT: Final = 16


class MembershipError(IdentityError):
    """An alliance genesis, certificate or revocation is malformed or not allowed."""


def days_to_ts_span(days: int) -> int:
    """A span of ``days`` in HLC units (wall milliseconds << 16)."""
    return (days * _MS_PER_DAY) << _HLC_SHIFT


def _check_did(did: object, role: str) -> str:
    if not isinstance(did, str):
        raise MembershipError(f"{role} must be a did:key string, got {type(did).__name__}")
    try:
        did_to_raw(did)
    except MalformedDid as exc:
        raise MembershipError(f"{role} is not a valid did:key: {exc}") from exc
    return did


def _check_ts(ts: object, role: str) -> int:
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise MembershipError(f"{role} must be a non-negative integer timestamp, got {ts!r}")
    return ts


@dataclass(frozen=True, slots=True)
class Genesis:
    """The founding facts of an alliance; ``alliance`` is its id (the genesis record's CID)."""

    alliance: str
    name: str
    founders: tuple[str, ...]
    max_cert_days: int = DEFAULT_CERT_DAYS

    def __post_init__(self) -> None:
        if not self.alliance or len(self.alliance) > MAX_NAME:
            raise MembershipError(f"an alliance id must hold 1..{MAX_NAME} characters")
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise MembershipError(f"an alliance name must hold 1..{MAX_NAME} characters")
        if not 1 <= len(self.founders) <= MAX_FOUNDERS:
            raise MembershipError(f"an alliance has 1..{MAX_FOUNDERS} founding hubs")
        for did in self.founders:
            _check_did(did, "a founding hub")
        if len(set(self.founders)) != len(self.founders):
            raise MembershipError("a founding hub is listed twice")
        if not 1 <= self.max_cert_days <= MAX_CERT_DAYS:
            raise MembershipError(f"max_cert_days must be 1..{MAX_CERT_DAYS}")


@dataclass(frozen=True, slots=True, order=True)
class Certificate:
    """``issuer`` admits ``member`` to ``alliance`` from ``issued`` until ``expires``."""

    alliance: str
    member: str
    issuer: str
    issued: int
    expires: int

    def __post_init__(self) -> None:
        _check_did(self.member, "the certified hub")
        _check_did(self.issuer, "the certificate's issuer")
        _check_ts(self.issued, "a certificate's issue time")
        _check_ts(self.expires, "a certificate's expiry")
        if self.expires <= self.issued:
            raise MembershipError("a certificate must expire after it is issued")


@dataclass(frozen=True, slots=True, order=True)
class MemberRevocation:
    """``issuer`` ends ``member``'s membership of ``alliance`` at ``ts``."""

    alliance: str
    member: str
    issuer: str
    ts: int
    reason: str = ""

    def __post_init__(self) -> None:
        _check_did(self.member, "the revoked hub")
        _check_did(self.issuer, "the revocation's issuer")
        _check_ts(self.ts, "a revocation's time")


MembershipFact = Certificate | MemberRevocation | Succession | Revocation
"""What membership is derived from: certificates, revocations, and key facts."""


@dataclass(slots=True)
class Membership:
    """The members of one alliance, derived from its genesis and the facts seen so far."""

    genesis: Genesis
    certificates: set[Certificate] = field(default_factory=set)
    revocations: set[MemberRevocation] = field(default_factory=set)
    keys: KeyHistory = field(default_factory=KeyHistory)

    @property
    def alliance(self) -> str:
        """The alliance id."""
        return self.genesis.alliance

    def add(self, facts: Iterable[MembershipFact]) -> int:
        """Add facts (those of other alliances are ignored); return how many were new."""
        added = 0
        key_facts: list[Fact] = []
        for fact in facts:
            if isinstance(fact, Succession | Revocation):
                if fact not in self.keys.facts:
                    key_facts.append(fact)
                continue
            if fact.alliance != self.alliance:
                continue
            bucket: set[Certificate] | set[MemberRevocation]
            bucket = self.certificates if isinstance(fact, Certificate) else self.revocations
            if fact not in bucket:
                bucket.add(fact)  # type: ignore[arg-type]
                added += 1
        if key_facts:
            self.keys.extend(key_facts)
            added += len(set(key_facts))
        return added

    def copy(self) -> Membership:
        """An independent copy (to try facts on without keeping them)."""
        return Membership(
            self.genesis,
            set(self.certificates),
            set(self.revocations),
            KeyHistory(self.keys.facts),
        )

    def check_certificate(self, cert: Certificate) -> None:
        """Raise :class:`MembershipError` if ``cert`` could never take effect."""
        if cert.alliance != self.alliance:
            raise MembershipError(
                f"the certificate is for alliance {cert.alliance}, not {self.alliance}"
            )
        if cert.expires - cert.issued > days_to_ts_span(self.genesis.max_cert_days):
            raise MembershipError(
                f"the certificate runs longer than the alliance allows "
                f"({self.genesis.max_cert_days} days)"
            )
        if not self.is_member(cert.issuer, cert.issued):
            raise MembershipError(
                f"{cert.issuer} was not a member of {self.genesis.name!r} when it signed "
                "the certificate"
            )

    def _revoker_ok(self, rev: MemberRevocation) -> bool:
        if rev.issuer in self.genesis.founders or rev.issuer == rev.member:
            return True
        return any(
            c.member == rev.member and c.issuer == rev.issuer for c in self.certificates
        )

    def _revoked_at(self, did: str, since: int, at: int) -> bool:
        """True if an effective revocation of ``did`` lies in ``[since, at]``."""
        return any(
            rev.member == did and since <= rev.ts <= at and self._revoker_ok(rev)
            for rev in self.revocations
        )

    def is_member(self, did: str, at: int) -> bool:
        """Is ``did`` a member at HLC time ``at``?"""
        return self._member(did, at, frozenset())

    def _member(self, did: str, at: int, visiting: frozenset[str]) -> bool:
        if did in visiting:
            return False  # a certificate loop proves nothing
        if not self.keys.valid_at(did, at):
            return False  # a key succeeded or revoked speaks for nobody from then on
        return self._entitled(did, at, visiting | {did})

    def _entitled(self, did: str, at: int, visiting: frozenset[str]) -> bool:
        """Membership by founding, certificate or inheritance, whatever the key's validity."""
        if did in self.genesis.founders and not self._revoked_at(did, 0, at):
            return True
        if self._certificate_ends(did, at, visiting):
            return True
        step = self.keys.predecessor(did)
        if step is None or step.ts > at or step.old_did in visiting:
            return False
        if self._revoked_at(did, step.ts, at):
            return False
        return self._entitled(step.old_did, at, visiting | {step.old_did})

    def _certificate_ends(self, did: str, at: int, visiting: frozenset[str]) -> list[int]:
        """The expiries of ``did``'s own certificates that admit it at ``at``."""
        span = days_to_ts_span(self.genesis.max_cert_days)
        ends = []
        for cert in sorted(self.certificates):
            if cert.member != did or not cert.issued <= at < cert.expires:
                continue
            if cert.expires - cert.issued > span:
                continue
            if self._revoked_at(did, cert.issued, at):
                continue
            if self._member(cert.issuer, cert.issued, visiting):
                ends.append(cert.expires)
        return ends

    def expiry(self, did: str, at: int) -> int | None:
        """When ``did``'s membership runs out as things stand at ``at`` (None: never, or
        not a member)."""
        if not self.is_member(did, at):
            return None
        visiting = frozenset({did})
        while True:
            if did in self.genesis.founders and not self._revoked_at(did, 0, at):
                return None
            ends = self._certificate_ends(did, at, visiting)
            if ends:
                return max(ends)
            step = self.keys.predecessor(did)
            if step is None or step.old_did in visiting:
                return None  # pragma: no cover - is_member said it inherits
            did = step.old_did
            visiting |= {did}

    def members(self, at: int) -> list[str]:
        """Every hub key that is a member at ``at``, sorted."""
        candidates = set(self.genesis.founders) | {c.member for c in self.certificates}
        for did in list(candidates):
            candidates.update(self.keys.chain(did))
        return sorted(did for did in candidates if self.is_member(did, at))
