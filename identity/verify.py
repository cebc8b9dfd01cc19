"""Who checks signatures: a small interface, so that a caller can share verdicts.

Everything that checks a peer's signature in the sync engine (hellos, announcements,
records, membership proofs) asks a :class:`Verifier`. A hub uses :class:`KeyVerifier`,
which checks every signature with the signer's did:key. A simulation of thousands of
hubs passes in a verifier that checks each distinct signature once and shares the
verdict (``craftnet.simnet.verify``): the engine is handed it, nothing is patched.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Protocol

from craftnet.identity.keys import PublicKey, parse_did

KEY_CACHE: Final = 1024


class Verifier(Protocol):
    """Checks one signature of one did:key."""

    def verify(self, did: str, signature: bytes, message: bytes) -> None:
        """Raise :class:`IdentityError` unless ``signature`` is ``did``'s strict signature
        of ``message`` (a malformed did raises too)."""
        ...


class KeyVerifier:
    """The real thing: each signature checked with the signer's key.

    Parsed keys are kept for the last :data:`KEY_CACHE` dids (parsing checks the point
    is on the curve, and a hub meets the same hundred hub keys all day); a did that
    does not parse is parsed, and refused, every time.
    """

    def __init__(self) -> None:
        self._keys: OrderedDict[str, PublicKey] = OrderedDict()

    def key(self, did: str) -> PublicKey:
        """The public key ``did`` names; raises :class:`IdentityError` if it names none."""
        key = self._keys.get(did)
        if key is None:
            key = parse_did(did)
            self._keys[did] = key
            if len(self._keys) > KEY_CACHE:
                self._keys.popitem(last=False)
        return key

    def verify(self, did: str, signature: bytes, message: bytes) -> None:
        """Raise :class:`IdentityError` unless the signature verifies."""
        self.key(did).verify(signature, message)

