"""Shared verdicts: each distinct signature is checked once, forgeries still fail everywhere."""

from __future__ import annotations

import pytest

from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.messages import Announce
from craftnet.simnet.verify import SharedVerifier, VerdictCache


def test_verdicts_are_shared_and_failures_replayed() -> None:
    key = PrivateKey.from_seed(bytes(32))
    good = Announce.create(key, 1, ())
    forged = Announce(good.did, 2, (), (), good.sig)
    cache = VerdictCache()
    verifier = SharedVerifier(cache)
    for _ in range(3):
        verifier.verify(good.did, good.sig, good.signed_bytes())
        with pytest.raises(BadSignature, match="does not verify"):
            verifier.verify(forged.did, forged.sig, forged.signed_bytes())
    assert cache.verified == 2 and cache.shared == 4
    # Nothing else is affected: the message's own check is real and strict.
    with pytest.raises(BadSignature):
        forged.verify()
    assert cache.verified == 2


def test_bad_dids_fail_every_time() -> None:
    verifier = SharedVerifier(VerdictCache())
    for _ in range(2):
        with pytest.raises(IdentityError):
            verifier.verify("did:key:z6MkNotARealKey", bytes(64), b"a message")
