"""Shared signature verdicts: verify each distinct signature once per run, for big runs.

Ed25519 verification costs about 110 µs here. In a simulation of 10,000 hubs every hub
checks the same announcement and the same record, so a run with ``verify = "shared"``
verifies each distinct ``(public key, signature, message)`` once and hands the verdict
(success, or the very :class:`BadSignature` message) to every other simulated hub that
asks. Verification stays real - a forged signature still fails at every hub - but it is
no longer paid for per hub. The outputs say so (``summary.json``: ``verify``).

The same goes for the other half of checking a signature, parsing the signer's did:key
(base58, canonical form, point on the curve): each distinct did is parsed once per run,
and its :class:`PublicKey` (or the error) shared, for the messages' signature checks.

The hooks wrap :meth:`PublicKey.verify` and the protocol messages' ``parse_did`` once per
process; the wrappers consult the cache of the simulation running in this thread, and
call the real functions when there is none, so real nodes and ``verify = "real"`` runs
are untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PublicKey
from craftnet.protocol import messages


class VerdictCache:
    """Verdicts of ``(key, signature, message)``, found by signature; counts what it saved."""

    def __init__(self) -> None:
        # (public key bytes, signature, message) -> None (valid) or the failure message.
        self.verdicts: dict[tuple[bytes, bytes, bytes], str | None] = {}
        self.keys: dict[str, PublicKey | IdentityError] = {}
        self.verified = 0
        self.shared = 0


_local = threading.local()
_installed = False
_install_lock = threading.Lock()
_original: Callable[[PublicKey, bytes, bytes], None] = PublicKey.verify
# protocol/messages.py imports parse_did by name; its module namespace is what it calls.
_original_parse: Callable[[str], PublicKey] = vars(messages)["parse_did"]


def _parse_did(did: str) -> PublicKey:
    cache: VerdictCache | None = getattr(_local, "cache", None)
    if cache is None:
        return _original_parse(did)
    found = cache.keys.get(did)
    if found is None:
        try:
            found = _original_parse(did)
        except IdentityError as exc:
            found = exc
        cache.keys[did] = found
    if isinstance(found, IdentityError):
        raise type(found)(str(found))
    return found


def _verify(self: PublicKey, signature: bytes, message: bytes) -> None:
    cache: VerdictCache | None = getattr(_local, "cache", None)
    if cache is None:
        _original(self, signature, message)
        return
    # Keyed by the whole triple (Python hashes bytes once per object and compares on a
    # hit), so a signature reused with another key or message is never taken on trust.
    key = (self.raw, bytes(signature), bytes(message))
    try:
        verdict = cache.verdicts[key]
    except KeyError:
        cache.verified += 1
        try:
            _original(self, signature, message)
            verdict = None
        except BadSignature as exc:
            verdict = str(exc)
        cache.verdicts[key] = verdict
    else:
        cache.shared += 1
    if verdict is not None:
        raise BadSignature(verdict)


@contextmanager
def shared_verdicts(cache: VerdictCache) -> Iterator[VerdictCache]:
    """Within the block, signature checks in this thread share verdicts through ``cache``."""
    global _installed
    with _install_lock:
        if not _installed:
            PublicKey.verify = _verify  # type: ignore[method-assign]
            vars(messages)["parse_did"] = _parse_did
            _installed = True
    previous = getattr(_local, "cache", None)
    _local.cache = cache
    try:
        yield cache
    finally:
        _local.cache = previous
