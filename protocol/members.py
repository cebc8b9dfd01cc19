"""What the sync engine asks about alliance membership (an interface, and its simplest form).

The engine never reads membership records itself. A hub hands it an
:class:`~craftnet.archive.alliance.AllianceView` (membership from the store, judged at
the wall clock's time); a simulation hands it one per simulated hub, or
:data:`EVERYONE` when every hub is a member anyway.
"""

from __future__ import annotations

from typing import Final, Protocol

from craftnet.archive.records import Record
from craftnet.identity.verify import Verifier


class Members(Protocol):
    """Membership as one hub knows it now."""

    def is_member(self, did: str) -> bool:
        """Is ``did`` a member now, as far as this hub knows?"""
        ...

    def proof(self) -> tuple[bytes, ...]:
        """This hub's own membership proof (record blocks) for its hello."""
        ...

    def admit(
        self, did: str, proof: tuple[bytes, ...], verifier: Verifier
    ) -> list[Record] | None:
        """If ``did`` is a member now, with ``proof`` added to what this hub knows: the
        proof's records this hub did not hold (now learned; the engine stores them);
        None if it is not. Raises ``IdentityError`` for a malformed or forged proof."""
        ...


class Everyone:
    """Every key is a member (a simulation of one alliance whose members all know
    each other, and tests of everything but membership)."""

    def is_member(self, did: str) -> bool:
        """Always."""
        return True

    def proof(self) -> tuple[bytes, ...]:
        """Nothing to prove."""
        return ()

    def admit(
        self, did: str, proof: tuple[bytes, ...], verifier: Verifier
    ) -> list[Record] | None:
        """Admitted, learning nothing."""
        return []


EVERYONE: Final = Everyone()
