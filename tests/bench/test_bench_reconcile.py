"""Benchmark: reconcile two archives that differ a little, against sending every CID.

Run with ``make bench`` (or ``pytest -s tests/bench/test_bench_reconcile.py``). Items are
synthetic (timestamp spread over three years of hybrid-clock time, CID of random bytes):
the reconcile only ever sees keys, so signing 100,000 records would measure signing.
Prints round trips and bytes on the wire (whole frames, as encoded), the same for the
baseline of sending the whole CID list in the same run, and median wall times.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.recon_index import ITEMS_DB, ReconIndex, StoreItems
from craftnet.archive.store import WriteTxn
from craftnet.protocol.items import SortedItems, item_key, split_key
from craftnet.protocol.reconcile import reconcile_locally

THREE_YEARS_MS = 3 * 365 * 24 * 3600 * 1000
START_MS = 1_700_000_000_000


def _keys(rng: random.Random, n: int) -> list[bytes]:
    return [
        item_key(
            (START_MS + rng.randrange(THREE_YEARS_MS)) << 16, Cid.of(rng.randbytes(16), DAG_CBOR)
        )
        for _ in range(n)
    ]


def _median(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _whole_list(a: list[bytes], b: list[bytes]) -> tuple[int, int]:
    """The baseline: A sends every CID (36 bytes each, packed); B answers with the CIDs
    A lacks and A, now knowing B's list, needs no more. Bytes and round trips."""
    sent = b"".join(split_key(k)[1] for k in a)
    theirs = {sent[i : i + 36] for i in range(0, len(sent), 36)}
    reply = b"".join(c for c in (split_key(k)[1] for k in b) if c not in theirs)
    return len(sent) + len(reply), 1


def _run(n: int, only_a: int, only_b: int, runs: int = 3) -> dict[str, float]:
    rng = random.Random(n)
    shared = _keys(rng, n - max(only_a, only_b))
    extra_a, extra_b = _keys(rng, only_a), _keys(rng, only_b)
    keys_a, keys_b = shared + extra_a, shared + extra_b
    build = time.perf_counter()
    a, b = SortedItems(keys_a), SortedItems(keys_b)
    build = time.perf_counter() - build
    left, right, messages, wire = reconcile_locally(a, b, random.Random(1))
    assert left.need == set(extra_b) and right.need == set(extra_a)
    recon_time = _median(lambda: reconcile_locally(a, b, random.Random(1)), runs)
    base_bytes, base_trips = _whole_list(keys_a, keys_b)
    base_time = _median(lambda: _whole_list(keys_a, keys_b), runs)
    trips = (messages + 1) // 2
    print(
        f"\nreconcile n={n:,} A-only={only_a} B-only={only_b}: {messages} messages = "
        f"{messages / 2:g} round trips, {wire:,} bytes, {recon_time * 1000:.1f} ms median"
        f"\n  whole CID list: {base_trips} round trip, {base_bytes:,} bytes, "
        f"{base_time * 1000:.1f} ms median"
        f"\n  ratio bytes reconcile/whole list = {wire / base_bytes:.5f} "
        f"({base_bytes / wire:.0f}x fewer); time ratio = {recon_time / base_time:.3f}"
        f"\n  (building both in-memory indexes took {build:.2f} s)"
    )
    return {"trips": trips, "bytes": wire, "baseline": base_bytes}


def test_bench_100k_records_differing_by_100() -> None:
    result = _run(100_000, 50, 50)
    assert result["trips"] <= 5
    assert result["bytes"] <= 100_000
    assert result["baseline"] > 3_000_000


def test_bench_1m_records_differing_by_1() -> None:
    result = _run(1_000_000, 1, 0, runs=1)
    assert result["trips"] <= 5
    assert result["bytes"] <= 5_000


def test_bench_100k_on_lmdb_with_the_incremental_index(tmp_path: Path) -> None:
    rng = random.Random(7)
    shared = _keys(rng, 99_950)
    extra_a, extra_b = _keys(rng, 50), _keys(rng, 50)
    store = LmdbStore(tmp_path / "hub")
    index = ReconIndex()
    try:

        def load(txn: WriteTxn) -> None:
            for key in shared:
                txn.put(ITEMS_DB, key, b"")

        store.transact(load)
        start = time.perf_counter()
        store.transact(index.rebuild)
        rebuild = time.perf_counter() - start

        def arrive(txn: WriteTxn) -> None:
            for key in extra_a:
                txn.put(ITEMS_DB, key, b"")
                index.add(txn, key)

        start = time.perf_counter()
        store.transact(arrive)
        per_add = (time.perf_counter() - start) / len(extra_a)
        on_disk = StoreItems(store, index)
        memory_a, memory_b = SortedItems(shared + extra_a), SortedItems(shared + extra_b)
        left, right, messages, wire = reconcile_locally(on_disk, memory_b, random.Random(1))
        assert left.need == set(extra_b) and right.need == set(extra_a)
        disk_time = _median(lambda: reconcile_locally(on_disk, memory_b, random.Random(1)))
        mem_time = _median(lambda: reconcile_locally(memory_a, memory_b, random.Random(1)))
        print(
            f"\nreconcile 100,000 on LMDB (chunked index) vs in memory: {messages} messages, "
            f"{wire:,} bytes; {disk_time * 1000:.0f} ms vs {mem_time * 1000:.0f} ms median "
            f"(ratio {disk_time / mem_time:.1f}); full index rebuild {rebuild:.2f} s, "
            f"incremental add {per_add * 1e6:.0f} us per record"
        )
    finally:
        store.close()
