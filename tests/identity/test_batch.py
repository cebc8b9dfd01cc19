"""Batches of signature checks: worker processes give exactly the verdicts of this one."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.identity import batch
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey, PublicKey

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def two_workers() -> Iterator[None]:
    batch.set_workers(2)
    try:
        yield
    finally:
        batch.set_workers(None)


def _hostile_items() -> list[batch.Item]:
    """Every Wycheproof and speccheck case whose key parses, plus our own good and bad."""
    items: list[batch.Item] = []
    wycheproof = json.loads((VECTORS / "wycheproof_ed25519.json").read_text())
    for group in wycheproof["testGroups"]:
        try:
            key = PublicKey(bytes.fromhex(group["pk"]))
        except IdentityError:
            continue
        for test in group["tests"]:
            items.append((key, bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])))
    for case in json.loads((VECTORS / "speccheck_cases.json").read_text())["cases"]:
        if case["rejected_at"] == "public_key":
            continue
        key = PublicKey(bytes.fromhex(case["pub_key"]))
        items.append((key, bytes.fromhex(case["signature"]), bytes.fromhex(case["message"])))
    signer = PrivateKey.from_seed(b"rustic-futurism-kiln-hub-0000001")
    for i in range(300):
        message = f"Raku firing log {i}, Global Micro-manufacturing Alliance".encode()
        signature = signer.sign(message)
        if i % 7 == 3:
            signature = signature[:40] + bytes([signature[40] ^ 1]) + signature[41:]
        if i % 11 == 5:
            message += b" (edited)"
        if i % 13 == 6:
            signature = signature[:63]
        items.append((signer.public, signature, message))
    return items


def test_the_pool_gives_the_same_verdicts_and_messages_as_this_process(two_workers: None) -> None:
    items = _hostile_items()
    here = batch.verify_many(items, pool=False)
    assert here.count(None) > 100 and len(here) - here.count(None) > 100  # both kinds
    assert batch.verify_many(items, pool=True) == here
    assert batch.verify_many(items) == here  # big enough for the pool by default


def test_a_small_batch_stays_in_this_process(two_workers: None) -> None:
    batch.shutdown()
    signer = PrivateKey.from_seed(bytes(32))
    items = [(signer.public, signer.sign(b"loom"), b"loom")] * (batch.POOL_MIN - 1)
    assert batch.verify_many(items) == [None] * len(items)
    assert batch._pool is None


def test_no_workers_means_no_processes() -> None:
    batch.set_workers(0)
    try:
        signer = PrivateKey.from_seed(bytes(32))
        items = [(signer.public, signer.sign(b"heddle"), b"heddle")] * 2 * batch.POOL_MIN
        assert batch.verify_many(items, pool=True) == [None] * len(items)
        assert batch._pool is None
    finally:
        batch.set_workers(None)


def test_a_killed_worker_is_replaced_and_its_batch_checked_here(two_workers: None) -> None:
    items = _hostile_items()
    expected = batch.verify_many(items, pool=False)
    assert batch.verify_many(items, pool=True) == expected
    pool = batch._pool
    assert pool is not None
    for worker in pool._all:
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
    assert batch.verify_many(items, pool=True) == expected
    assert batch.verify_many(items, pool=True) == expected  # the replacements answer


def test_a_negative_worker_count_is_refused() -> None:
    with pytest.raises(ValueError):
        batch.set_workers(-1)


def test_a_big_batch_starts_the_pool_without_waiting_for_it(two_workers: None) -> None:
    batch.shutdown()
    signer = PrivateKey.from_seed(bytes(range(32)))
    items = [(signer.public, signer.sign(b"bobbin %d" % i), b"bobbin %d" % i) for i in range(8)]
    many = items * (batch.POOL_START // len(items) + 1)
    assert batch.verify_many(many) == [None] * len(many)  # checked here while it starts
    pool = batch._pool
    assert pool is not None
    pool.wait_ready()
    assert all(worker.proc.poll() is None for worker in pool._all)
    assert batch.verify_many(many[: batch.POOL_MIN]) == [None] * batch.POOL_MIN
