"""Shared verdicts: each distinct signature is checked once, forgeries still fail everywhere."""

from __future__ import annotations

import pytest

from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.messages import Announce
from craftnet.simnet.verify import VerdictCache, shared_verdicts


def test_verdicts_are_shared_and_failures_replayed() -> None:
    key = PrivateKey.from_seed(bytes(32))
    good = Announce.create(key, 1, ())
    forged = Announce(good.did, 2, (), (), good.sig)
    cache = VerdictCache()
    with shared_verdicts(cache):
        for _ in range(3):
            good.verify()
            with pytest.raises(BadSignature, match="does not verify"):
                forged.verify()
    assert cache.verified == 2 and cache.shared == 4
    # Outside the block every check is real again, and still strict.
    with pytest.raises(BadSignature):
        forged.verify()
    assert cache.verified == 2


def test_bad_dids_fail_every_time() -> None:
    bad = Announce("did:key:z6MkNotARealKey", 1, (), (), bytes(64))
    with shared_verdicts(VerdictCache()):
        for _ in range(2):
            with pytest.raises(IdentityError):
                bad.verify()
