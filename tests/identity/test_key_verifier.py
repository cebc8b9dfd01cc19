"""KeyVerifier: signatures checked one by one, or ahead in a batch on the worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from craftnet.identity import batch
from craftnet.identity.errors import BadSignature, IdentityError
from craftnet.identity.keys import PrivateKey
from craftnet.identity.verify import PRIME_MIN, KeyVerifier

MAKER = PrivateKey.from_seed(b"Human Treasures of Lisbon hub  1")


@pytest.fixture
def two_workers() -> Iterator[None]:
    batch.set_workers(2)
    try:
        batch.verify_many([(MAKER.public, MAKER.sign(b"warm"), b"warm")], pool=True)
        yield
    finally:
        batch.set_workers(None)


def _signed(count: int) -> list[tuple[str, bytes, bytes]]:
    messages = [f"glaze recipe {i}".encode() for i in range(count)]
    return [(MAKER.did, MAKER.sign(m), m) for m in messages]


def _why(did: str, signature: bytes, message: bytes) -> str:
    with pytest.raises(IdentityError) as caught:
        KeyVerifier().verify(did, signature, message)
    return str(caught.value)


def test_primed_verdicts_match_checking_one_by_one(two_workers: None) -> None:
    items = _signed(PRIME_MIN + 8)
    did, sig, msg = items[3]
    items[3] = (did, sig, b"a recipe the maker never signed")
    stranger = items[5][0][:-4] + "zzzz"  # names no key
    items[5] = (stranger, items[5][1], items[5][2])
    verifier = KeyVerifier(prime_start=0)
    verifier.prime(items)
    for i, (did, sig, msg) in enumerate(items):
        if i in (3, 5):
            with pytest.raises(IdentityError) as caught:
                verifier.verify(did, sig, msg)
            assert str(caught.value) == _why(did, sig, msg)
            assert i != 3 or isinstance(caught.value, BadSignature)
        else:
            verifier.verify(did, sig, msg)


def test_a_signature_not_primed_is_still_checked(two_workers: None) -> None:
    verifier = KeyVerifier(prime_start=0)
    verifier.prime(_signed(PRIME_MIN))
    did, sig, _ = _signed(1)[0]
    with pytest.raises(BadSignature):
        verifier.verify(did, sig, b"another message")
    verifier.forget_primed()
    with pytest.raises(BadSignature):  # forgotten verdicts are never taken for good ones
        verifier.verify(did, sig, b"another message")
    for item in _signed(3):
        verifier.verify(*item)


def test_small_batches_and_a_stopped_pool_leave_every_check_to_verify() -> None:
    batch.set_workers(0)
    try:
        verifier = KeyVerifier(prime_start=0)
        items = _signed(PRIME_MIN + 1)
        verifier.prime(items)  # no workers: nothing checked ahead
        did, sig, _ = items[0]
        with pytest.raises(BadSignature):
            verifier.verify(did, sig, b"tampered")
        for item in items:
            verifier.verify(*item)
    finally:
        batch.set_workers(None)
