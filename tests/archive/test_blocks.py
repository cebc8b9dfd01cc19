"""Blocks are stored only under the CID they hash to; pins keep them."""

from __future__ import annotations

import pytest

from craftnet.archive import codec
from craftnet.archive.blocks import (
    MAX_BLOCK_SIZE,
    Pin,
    StoreBlockSource,
    find_block,
    get_block,
    get_pin,
    has_block,
    pin,
    pins,
    put_block,
    put_raw,
    unpin,
)
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import IntegrityError, NotFound
from craftnet.archive.store import Store

LOOM_NOTES = b"backstrap loom, 12 heddles, cotton warp"


def test_put_raw_then_get(store: Store) -> None:
    cid = store.transact(lambda txn: put_raw(txn, LOOM_NOTES))
    assert cid == Cid.of(LOOM_NOTES, RAW)
    with store.read() as txn:
        assert has_block(txn, cid)
        assert get_block(txn, cid) == LOOM_NOTES
        assert get_block(txn, cid, verify=True) == LOOM_NOTES


def test_put_block_checks_the_cid(store: Store) -> None:
    node = codec.encode({"hub": "Rustic Futurism workshop"})
    cid = Cid.of(node, DAG_CBOR)
    assert store.transact(lambda txn: put_block(txn, cid, node)) is True
    assert store.transact(lambda txn: put_block(txn, cid, node)) is False  # already there
    with pytest.raises(IntegrityError, match="do not hash to that CID"):
        store.transact(lambda txn: put_block(txn, cid, node + b"\x00"))
    raw_cid = Cid.of(node, RAW)  # same digest, other codec: still a different block
    store.transact(lambda txn: put_block(txn, raw_cid, node))
    with store.read() as txn:
        assert txn.count("blocks") == 2


def test_verified_blocks_skip_the_hash_but_not_the_size_limit(store: Store) -> None:
    # The block exchange has checked each block against its CID already.
    cid = Cid.of(LOOM_NOTES)
    assert store.transact(lambda txn: put_block(txn, cid, LOOM_NOTES, verified=True))
    assert not store.transact(lambda txn: put_block(txn, cid, LOOM_NOTES, verified=True))
    big = bytes(MAX_BLOCK_SIZE + 1)
    with pytest.raises(IntegrityError, match="at most"):
        store.transact(lambda txn: put_block(txn, Cid.of(big), big, verified=True))


def test_find_block_and_the_engine_s_block_source(store: Store) -> None:
    cid = store.transact(lambda txn: put_raw(txn, LOOM_NOTES))
    absent = Cid.of(b"a weaving pattern never shared")
    with store.read() as txn:
        assert find_block(txn, cid) == LOOM_NOTES
        assert find_block(txn, absent) is None
    source = StoreBlockSource(store)
    assert source.has_block(cid) and source.get_block(cid) == LOOM_NOTES
    assert not source.has_block(absent) and source.get_block(absent) is None
    # Many at once (one snapshot for a whole want), in the order asked, repeats too.
    assert source.has_blocks([absent, cid, cid]) == [False, True, True]
    assert source.get_blocks([cid, absent]) == [LOOM_NOTES, None]
    assert source.has_blocks([]) == [] and source.get_blocks([]) == []


def test_oversized_blocks_are_refused(store: Store) -> None:
    big = bytes(MAX_BLOCK_SIZE + 1)
    with pytest.raises(IntegrityError, match="at most"):
        store.transact(lambda txn: put_raw(txn, big))
    with pytest.raises(IntegrityError, match="at most"):
        store.transact(lambda txn: put_block(txn, Cid.of(big), big))


def test_missing_block_names_its_cid(store: Store) -> None:
    cid = Cid.of(b"never stored")
    with store.read() as txn:
        assert not has_block(txn, cid)
        with pytest.raises(NotFound, match=str(cid)):
            get_block(txn, cid)


def test_damaged_block_is_caught_when_verifying(store: Store) -> None:
    cid = Cid.of(LOOM_NOTES)
    store.transact(lambda txn: txn.put("blocks", cid.bytes, b"bit rot"))
    with store.read() as txn:
        assert get_block(txn, cid) == b"bit rot"
        with pytest.raises(IntegrityError, match="craftnet verify"):
            get_block(txn, cid, verify=True)


def test_pin_unpin_and_list(store: Store) -> None:
    a = store.transact(lambda txn: put_raw(txn, b"Adopt-a-Workshop charter"))
    b = store.transact(lambda txn: put_raw(txn, b"Maker's Fair floor plan"))
    store.transact(lambda txn: pin(txn, a, "charter", when=1_700_000_000))
    store.transact(lambda txn: pin(txn, b, "floor plan", when=1_700_000_001))
    with store.read() as txn:
        listed = list(pins(txn))
        assert sorted(listed, key=lambda p: p.name) == [
            Pin(a, "charter", 1_700_000_000),
            Pin(b, "floor plan", 1_700_000_001),
        ]
        assert [p.cid for p in listed] == sorted([a, b])
        assert get_pin(txn, a) == Pin(a, "charter", 1_700_000_000)
    assert store.transact(lambda txn: unpin(txn, a)) is True
    assert store.transact(lambda txn: unpin(txn, a)) is False
    with store.read() as txn:
        assert get_pin(txn, a) is None
        assert [p.cid for p in pins(txn)] == [b]


def test_pin_needs_the_block_and_a_sane_name(store: Store) -> None:
    missing = Cid.of(b"not here")
    with pytest.raises(NotFound, match=str(missing)):
        store.transact(lambda txn: pin(txn, missing, "x"))
    cid = store.transact(lambda txn: put_raw(txn, b"here"))
    with pytest.raises(IntegrityError, match="pin name"):
        store.transact(lambda txn: pin(txn, cid, "n" * 256))


@pytest.mark.parametrize(
    "raw",
    [b"\xff", codec.encode({"name": "x"}), codec.encode({"name": 1, "time": 2}), b""],
)
def test_damaged_pin_entries_raise_integrity_errors(store: Store, raw: bytes) -> None:
    cid = Cid.of(b"pinned")
    store.transact(lambda txn: txn.put("pins", cid.bytes, raw))
    with store.read() as txn, pytest.raises(IntegrityError, match="damaged"):
        list(pins(txn))


def test_pin_entry_with_a_bad_key(store: Store) -> None:
    store.transact(lambda txn: txn.put("pins", b"not a cid", codec.encode({"name": "", "time": 0})))
    with store.read() as txn, pytest.raises(IntegrityError, match="damaged"):
        list(pins(txn))
