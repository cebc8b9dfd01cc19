"""Shared signature verdicts: verify each distinct signature once per run, for big runs.

Ed25519 verification costs about 110 µs here. In a simulation of 10,000 hubs every hub
checks the same announcement and the same record, so a run with ``verify = "shared"``
hands every simulated hub's engine one :class:`SharedVerifier`: it verifies each
distinct ``(did, signature, message)`` once and gives the verdict (success, or the very
:class:`BadSignature` message) to every other hub that asks. Verification stays real -
a forged signature still fails at every hub - but it is no longer paid for per hub. The
outputs say so (``summary.json``: ``verify``).

Parsing the signer's did:key (base58, canonical form, point on the curve) is the other
half of checking a signature; the verifier keeps each distinct did's key (or the error).

The engines are given the verifier explicitly (``SyncEngine(verifier=...)``, the
:class:`~craftnet.identity.verify.Verifier` interface); nothing is patched, so real
nodes and ``verify = "real"`` runs are untouched.
"""

from __future__ import annotations

from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PublicKey, parse_did


class VerdictCache:
    """Verdicts of ``(did, signature, message)``, found by signature; counts what it saved."""

    def __init__(self) -> None:
        # (did, signature, message) -> None (valid) or the failure message.
        self.verdicts: dict[tuple[str, bytes, bytes], str | None] = {}
        self.keys: dict[str, PublicKey | IdentityError] = {}
        self.verified = 0
        self.shared = 0


class SharedVerifier:
    """A :class:`~craftnet.identity.verify.Verifier` that checks each distinct signature
    once and shares the verdict through ``cache``."""

    def __init__(self, cache: VerdictCache) -> None:
        self.cache = cache

    def _key(self, did: str) -> PublicKey:
        keys = self.cache.keys
        found = keys.get(did)
        if found is None:
            try:
                found = parse_did(did)
            except IdentityError as exc:
                found = exc
            keys[did] = found
        if isinstance(found, IdentityError):
            raise type(found)(str(found))
        return found

    def verify(self, did: str, signature: bytes, message: bytes) -> None:
        """Raise :class:`IdentityError` unless the signature verifies (checked once)."""
        cache = self.cache
        # Keyed by the whole triple (Python hashes bytes once per object and compares on a
        # hit), so a signature reused with another key or message is never taken on trust.
        key = (did, bytes(signature), bytes(message))
        try:
            verdict = cache.verdicts[key]
        except KeyError:
            cache.verified += 1
            try:
                self._key(did).verify(signature, message)
                verdict = None
            except BadSignature as exc:
                verdict = str(exc)
            cache.verdicts[key] = verdict
        else:
            cache.shared += 1
        if verdict is not None:
            raise BadSignature(verdict)
