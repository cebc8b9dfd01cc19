"""Membership in a simulation: a genesis, certificates and key successions as the real
signed records, and each hub judging others by the facts it holds.

Real hubs keep these records in their stores and learn new ones by gossip, reconcile
and the proofs in hellos (:mod:`craftnet.archive.alliance`). Here the records are made
once for the run; each hub's :class:`SimMembers` (the engine's
:class:`~craftnet.protocol.members.Members`) starts with the genesis and the
certificates of the hubs that were members from the start (a hub that joins holds the
genesis and its own certificate chain only, as its invitation token gave it), and
learns the others when it stores their records or checks a proof: exactly what a real
hub knows, so a hub that joined a minute ago is unknown to most of the alliance, and
knows nobody itself, as in life.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from craftnet.archive.alliance import (
    CERT_TYPE,
    GENESIS_TYPE,
    SUCCESSION_TYPE,
    admit,
    certificate_of,
)
from craftnet.archive.cid import Cid
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey
from craftnet.identity.membership import (
    Genesis,
    Membership,
    MembershipFact,
    days_to_ts_span,
)
from craftnet.identity.succession import Succession
from craftnet.identity.verify import Verifier

NAME: Final = "Global Micro-manufacturing Alliance"
CERT_DAYS: Final = 365


class SimAlliance:
    """The alliance's records for one run: its genesis, then certificates and
    successions as the scenario has members join and rotate keys."""

    def __init__(self, founders: list[PrivateKey], at: int) -> None:
        dids = [key.did for key in founders]
        self.genesis_record = Record.create(
            founders[0],
            GENESIS_TYPE,
            {"name": NAME, "founders": dids, "max_cert_days": CERT_DAYS},
            (),
            ts=at,
        )
        self.genesis = Genesis(str(self.genesis_record.cid), NAME, tuple(dids), CERT_DAYS)
        self.alliance_cid: Cid = self.genesis_record.cid
        # did -> the records proving it a member (its certificates, successions), newest last
        self.proofs: dict[str, list[Record]] = {}
        self.initial: list[MembershipFact] = []

    def certify(self, issuer: PrivateKey, member: str, at: int) -> Record:
        """A certificate for ``member`` signed by ``issuer`` at HLC time ``at``."""
        body = {
            "alliance": self.alliance_cid,
            "member": member,
            "expires": at + days_to_ts_span(CERT_DAYS),
        }
        record = Record.create(issuer, CERT_TYPE, body, (self.alliance_cid,), ts=at)
        chain = [] if issuer.did in self.genesis.founders else self.proofs.get(issuer.did, [])
        self.proofs[member] = [record, *chain]
        return record

    def rotate(self, old: PrivateKey, new: PrivateKey, at: int) -> Record:
        """A key succession from ``old`` to ``new`` (signed by the old key)."""
        record = Record.create(old, SUCCESSION_TYPE, {"new": new.did}, (), ts=at)
        self.proofs[new.did] = [record, *self.proofs.get(old.did, [])]
        return record


class SimMembers:
    """One hub's view of membership (a :class:`~craftnet.protocol.members.Members`)."""

    def __init__(
        self,
        alliance: SimAlliance,
        did: str,
        clock: Callable[[], int],
        *,
        proofs: bool = True,
        knows_members: bool = True,
    ) -> None:
        self.alliance = alliance
        self.did = did
        self.clock = clock
        self.proofs = proofs
        self.membership = Membership(alliance.genesis)
        if knows_members:
            self.membership.add(alliance.initial)

    def is_member(self, did: str) -> bool:
        """Is ``did`` a member now, by what this hub holds?"""
        return self.membership.is_member(did, self.clock())

    def proof(self) -> tuple[bytes, ...]:
        """This hub's certificates (and successions), for its hello."""
        if not self.proofs:
            return ()
        return tuple(r.block for r in self.alliance.proofs.get(self.did, []))

    def admit(self, did: str, proof: tuple[bytes, ...], verifier: Verifier) -> list[Record] | None:
        """As :meth:`craftnet.archive.alliance.AllianceView.admit`."""
        learned = admit(self.membership, did, proof, verifier, self.clock())
        return None if learned is None else [record for record, _ in learned]

    def learn(self, record: Record) -> bool:
        """A membership record this hub stored; True if it changed what the hub knows."""
        if record.type == CERT_TYPE:
            try:
                return self.membership.add([certificate_of(record)]) > 0
            except (KeyError, ValueError):
                return False
        if record.type == SUCCESSION_TYPE and isinstance(record.body.get("new"), str):
            fact = Succession(record.author, str(record.body["new"]), record.ts)
            return self.membership.add([fact]) > 0
        return False
