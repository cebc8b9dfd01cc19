"""Who checks signatures: a small interface, so that a caller can share verdicts.

Everything that checks a peer's signature in the sync engine (hellos, announcements,
records, membership proofs) asks a :class:`Verifier`. A hub uses :class:`KeyVerifier`,
which checks every signature with the signer's did:key. A simulation of thousands of
hubs passes in a verifier that checks each distinct signature once and shares the
verdict (``craftnet.simnet.verify``): the engine is handed it, nothing is patched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

from craftnet.identity import batch
from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PublicKey, parse_did

KEY_CACHE: Final = 1024
# A hub that has been handed this many signatures to check ahead (a catch-up: thousands
# of records fetched in a row) starts the worker processes in the background.
PRIME_START: Final = 1000
# Fewer signatures than this are checked one by one as they come, even with the workers
# up. A read of a catch-up brings 32 to 128 records (one to four answers of the block
# exchange's window); test_bench_identity.py measured the workers winning from 128
# signatures on (load 0.6), and a 10,000-record catch-up with this threshold took about
# a tenth less time (docs/protocol.md). 32 itself was not measured against 64 or 128.
PRIME_MIN: Final = 32

Signed = tuple[str, bytes, bytes]  # did, signature, message


class Verifier(Protocol):
    """Checks one signature of one did:key."""

    def verify(self, did: str, signature: bytes, message: bytes) -> None:
        """Raise :class:`IdentityError` unless ``signature`` is ``did``'s strict signature
        of ``message`` (a malformed did raises too)."""
        ...


@runtime_checkable
class BatchVerifier(Verifier, Protocol):
    """A verifier that can check many signatures ahead of the calls that need them."""

    def prime(self, items: Sequence[Signed]) -> None:
        """Check ``items`` together if that pays; the next :meth:`verify` calls for the
        same ``(did, signature, message)`` are answered from those verdicts."""
        ...

    def forget_primed(self) -> None:
        """Drop the verdicts no call asked for."""
        ...


class KeyVerifier:
    """The real thing: each signature checked with the signer's key.

    Parsed keys are kept for the last :data:`KEY_CACHE` dids (parsing checks the point
    is on the curve, and a hub meets the same hundred hub keys all day); a did that
    does not parse is parsed, and refused, every time.
    """

    def __init__(self, *, prime_start: int = PRIME_START) -> None:
        """``prime_start``: signatures handed to :meth:`prime` before it starts the workers."""
        self._keys: OrderedDict[str, PublicKey] = OrderedDict()
        self._primed: dict[Signed, str | None] = {}
        self._asked = 0  # signatures handed to prime(), all told
        self._prime_start = prime_start

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
        if self._primed:
            verdict = self._primed.pop((did, signature, message), _UNKNOWN)
            if verdict is None:
                return
            if verdict is not _UNKNOWN:
                raise BadSignature(str(verdict))
        self.key(did).verify(signature, message)

    def prime(self, items: Sequence[Signed]) -> None:
        """Check ``items`` on the worker processes (:mod:`craftnet.identity.batch`) when
        they run and there are :data:`PRIME_MIN` or more; else leave them to :meth:`verify`.

        The workers run the same strict check as :meth:`PublicKey.verify`; a did that
        does not parse is left to :meth:`verify`, which refuses it with its reason.
        """
        self._asked += len(items)
        if len(items) < PRIME_MIN or not batch.pool_ready(start=self._asked >= self._prime_start):
            return
        keyed: list[batch.Item] = []
        asked: list[Signed] = []
        for did, signature, message in items:
            try:
                key = self.key(did)
            except IdentityError:
                continue
            keyed.append((key, signature, message))
            asked.append((did, signature, message))
        verdicts = batch.verify_many(keyed, pool=True)
        self._primed.update(zip(asked, verdicts, strict=True))

    def forget_primed(self) -> None:
        """Drop the verdicts no :meth:`verify` call asked for."""
        self._primed.clear()


_UNKNOWN: Final = object()  # no verdict was primed for this signature

