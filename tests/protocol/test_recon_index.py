"""The store-backed reconcile index answers exactly like the in-memory one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import StoreError
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.recon_index import CHUNKS_DB, ITEMS_DB, ReconIndex, StoreItems
from craftnet.archive.store import Store, WriteTxn
from craftnet.protocol.items import SortedItems, item_key
from craftnet.protocol.reconcile import ReconConfig, reconcile_locally

POOL = [item_key(5_000 + (i // 2), Cid.of(i.to_bytes(4, "big"), DAG_CBOR)) for i in range(300)]
BOUNDS = [b"", b"\x00", b"\x00\x00\x00\x00\x00\x00\x13\x88", *POOL[::7]]


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind."""
    made: Store = MemoryStore() if request.param == "memory" else LmdbStore(tmp_path / "s")
    try:
        yield made
    finally:
        made.close()


def _fill(store: Store, keys: list[bytes], index: ReconIndex) -> StoreItems:
    """Insert ``keys`` one by one (as records arrive), in one transaction."""

    def write(txn: WriteTxn) -> None:
        for key in keys:
            txn.put(ITEMS_DB, key, b"")
            index.add(txn, key)

    store.transact(write)
    return StoreItems(store, index)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(POOL), size=st.integers(0, 300), data=st.data())
def test_store_index_matches_memory_items(
    store: Store, order: list[bytes], size: int, data: st.DataObject
) -> None:
    store.transact(lambda txn: [txn.delete(ITEMS_DB, k) for k, _ in list(txn.iterate(ITEMS_DB))])
    index = ReconIndex(chunk=4)
    store.transact(index.rebuild)
    keys = order[:size]
    items = _fill(store, keys, index)
    memory = SortedItems(keys)
    for _ in range(5):
        lo = data.draw(st.sampled_from(BOUNDS))
        hi = data.draw(st.sampled_from([None, *BOUNDS]))
        assert items.summary(lo, hi) == memory.summary(lo, hi)
        assert items.keys(lo, hi) == memory.keys(lo, hi)
        count, _ = memory.summary(lo, None)
        if count:
            offset = data.draw(st.integers(0, count - 1))
            assert items.key_at(lo, offset) == memory.key_at(lo, offset)
    with store.read() as txn:
        assert index.is_current(txn)
        assert sum(int.from_bytes(v[:4], "big") for _, v in txn.iterate(CHUNKS_DB)) == size


def test_a_stale_index_is_rebuilt(store: Store) -> None:
    def sneak(txn: WriteTxn) -> None:
        for key in POOL[:50]:
            txn.put(ITEMS_DB, key, b"")

    store.transact(sneak)  # written without telling the index
    index = ReconIndex(chunk=8)
    items = StoreItems(store, index)
    assert index.ensure(store)
    assert not index.ensure(store)
    assert items.summary(b"", None) == SortedItems(POOL[:50]).summary(b"", None)
    with store.read() as txn:
        assert txn.count(CHUNKS_DB) == 7


def test_an_index_out_of_step_is_reported(store: Store) -> None:
    index = ReconIndex(chunk=4)
    items = StoreItems(store, index)
    for key in POOL[:10]:
        assert items.add(int.from_bytes(key[:8], "big"), Cid.from_bytes(key[8:]))
    assert not items.add(int.from_bytes(POOL[0][:8], "big"), Cid.from_bytes(POOL[0][8:]))
    store.transact(lambda txn: txn.delete(ITEMS_DB, POOL[9]))
    with pytest.raises(StoreError, match="rebuild"):
        items.key_at(b"", 9)


def test_problems_names_each_way_the_index_can_disagree(store: Store) -> None:
    index = ReconIndex(chunk=4)
    _fill(store, POOL[:30], index)
    with store.read() as txn:
        assert index.problems(txn) == []
        first, second = list(txn.iterate(CHUNKS_DB))[:2]
    # An item that no chunk accounts for (written without the index).
    store.transact(lambda txn: txn.put(ITEMS_DB, POOL[40], b""))
    with store.read() as txn:
        found = index.problems(txn)
    assert any("holds" in p for p in found) and any("counts 30" in p for p in found)
    store.transact(lambda txn: txn.delete(ITEMS_DB, POOL[40]))
    # A chunk that lost its entry: its items are counted in the one before it.
    store.transact(lambda txn: txn.delete(CHUNKS_DB, second[0]))
    with store.read() as txn:
        assert any(first[0].hex() in p for p in index.problems(txn))
    # An item below the first chunk.
    store.transact(index.rebuild)
    store.transact(lambda txn: txn.put(ITEMS_DB, b"\x00" * 44, b""))
    with store.read() as txn:
        assert any("before every chunk" in p for p in index.problems(txn))
    store.transact(index.rebuild)
    with store.read() as txn:
        assert index.problems(txn) == []


def test_reconcile_between_a_store_and_a_memory_hub(store: Store) -> None:
    rng = random.Random(3)
    keys = [item_key(rng.randrange(2**50), Cid.of(rng.randbytes(6), DAG_CBOR)) for _ in range(3000)]
    on_disk = _fill(store, keys[:2900] + keys[2950:], ReconIndex())
    in_memory = SortedItems(keys[:2950])
    left, right, messages, _ = reconcile_locally(
        on_disk, in_memory, random.Random(1), ReconConfig(buckets=8, leaf_size=8)
    )
    assert left.need == set(keys[2900:2950])
    assert right.need == set(keys[2950:])
    assert messages <= 10


def test_chunk_size_must_be_sensible() -> None:
    with pytest.raises(Exception, match="at least 2"):
        ReconIndex(chunk=1)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(POOL), size=st.integers(0, 300), cut=st.integers(0, 300))
def test_add_many_after_the_puts_keeps_every_chunk_right(
    store: Store, order: list[bytes], size: int, cut: int
) -> None:
    """As ``put_many`` uses it: a batch's keys are all put first, then accounted for at
    once, in any order (a split midway once counted keys of the batch not yet
    accounted for)."""
    store.transact(lambda txn: [txn.delete(ITEMS_DB, k) for k, _ in list(txn.iterate(ITEMS_DB))])
    index = ReconIndex(chunk=4)
    store.transact(index.rebuild)
    keys = order[:size]
    earlier, batch = keys[: min(cut, size)], keys[min(cut, size) :]
    _fill(store, earlier, index)

    def write(txn: WriteTxn) -> None:
        for key in batch:
            txn.put(ITEMS_DB, key, b"")
        index.add_many(txn, batch)

    store.transact(write)
    memory = SortedItems(keys)
    items = StoreItems(store, index)
    for lo in BOUNDS:
        for hi in (None, *BOUNDS[::3]):
            assert items.summary(lo, hi) == memory.summary(lo, hi)
    with store.read() as txn:
        assert index.problems(txn) == []
        sizes = [int.from_bytes(v[:4], "big") for _, v in txn.iterate(CHUNKS_DB)]
    assert all(0 < n <= 2 * index.chunk for n in sizes)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(POOL), size=st.integers(0, 300), cut=st.integers(0, 300))
def test_add_in_turn_after_the_puts_makes_the_chunks_of_one_add_per_put(
    store: Store, order: list[bytes], size: int, cut: int
) -> None:
    """As ``put_in_turn`` uses it: a batch's keys are all put first, then accounted for
    in turn; every chunk (its first key, count and sum) is the one a writer that put
    and added each key alone would have stored, so the index does not depend on how
    the writes were batched."""
    keys = order[:size]
    earlier, batch = keys[: min(cut, size)], keys[min(cut, size) :]

    def chunks(in_turn: bool) -> list[tuple[bytes, bytes]]:
        store.transact(
            lambda txn: [txn.delete(ITEMS_DB, k) for k, _ in list(txn.iterate(ITEMS_DB))]
        )
        index = ReconIndex(chunk=4)
        store.transact(index.rebuild)
        _fill(store, earlier, index)

        def write(txn: WriteTxn) -> None:
            if in_turn:
                for key in batch:
                    txn.put(ITEMS_DB, key, b"")
                index.add_in_turn(txn, batch)
            else:
                for key in batch:
                    txn.put(ITEMS_DB, key, b"")
                    index.add(txn, key)

        store.transact(write)
        with store.read() as txn:
            assert index.problems(txn) == []
            return [(bytes(k), bytes(v)) for k, v in txn.iterate(CHUNKS_DB)]

    assert chunks(in_turn=True) == chunks(in_turn=False)
