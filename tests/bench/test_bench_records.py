"""Benchmark: publishing and importing signed records on one core, against raw baselines.

Publishing is check + sign + store (:func:`publish_many`); importing is parse + check +
verify + store (:func:`ingest_records`), on one core and with the signature checks on
every core (:mod:`craftnet.identity.batch`), both in batches of 1,000 records per
transaction on a real :class:`LmdbStore` (durable commits) in a temporary folder. The
baselines, measured in the same run on the same bytes: raw Ed25519 signing and
verification through ``cryptography``, and raw LMDB puts of the same record blocks.
The target is at least 5,000 records/s each; every figure is the median of 3 runs.

Run with ``make bench`` or ``pytest -s tests/bench/test_bench_records.py``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from craftnet.archive.cid import Cid
from craftnet.archive.hlc import HybridClock
from craftnet.archive.index import count_records, ingest_records, publish_many
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.archive.schemas import build
from craftnet.archive.store import WriteTxn
from craftnet.identity import batch
from craftnet.identity.keys import PrivateKey

N = 5_000
BATCH = 1_000
RUNS = 3
TARGET = 5_000
KEY = PrivateKey.from_seed(b"bench-rustic-futurism-hub-000001")
MEDIA = [Cid.of(f"kiln-photo-{i}.jpg".encode()) for i in range(3)]


def drafts(n: int, tag: str) -> list[tuple[str, dict[str, Any], tuple[Cid, ...]]]:
    """``n`` realistic technique drafts (about 1 KB signed), distinct per ``tag``."""
    out = []
    for i in range(n):
        built = build(
            "technique",
            title=f"Raku glaze firing, variation {tag}-{i}",
            summary="Low-fire glaze pulled red hot from the kiln into a reduction chamber; "
            "the crackle and copper flashes come from smoke and sudden cooling. " * 2,
            tradition="Rustic Futurism",
            region="Alentejo",
            language="en",
            materials=["stoneware clay", "raku glaze", "sawdust", "newspaper"],
            tools=["raku kiln", "tongs", "metal bin"],
            steps=[
                {"text": "Bisque fire the pot to cone 08.", "media": [MEDIA[0]]},
                {"text": "Glaze; fire to about 1000 C until the glaze melts.", "media": [MEDIA[1]]},
                {"text": "Pull the pot red hot and bury it in sawdust.", "media": [MEDIA[2]]},
                {"text": "Quench in water after ten minutes and scrub the soot.", "media": []},
            ],
            licence="CC-BY-SA-4.0",
        )
        out.append((built.type, built.body, built.links))
    return out


def rate(n: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def median_rate(n: int, make_run: Callable[[int], Callable[[], object]]) -> float:
    """Median records/s over RUNS runs; ``make_run(i)`` prepares run i outside the timing."""
    return statistics.median(rate(n, make_run(i)) for i in range(RUNS))


def test_bench_publish_and_import(tmp_path: Path) -> None:
    clock = HybridClock()
    source = tmp_path / "source"
    with LmdbStore(source) as store:
        signed = publish_many(store, KEY, drafts(N, "import"), clock)
    blocks = [record.block for record in signed]
    messages = [record.signed_bytes() for record in signed]
    sizes = statistics.mean(len(block) for block in blocks)

    # Baselines.
    sign_rate = median_rate(N, lambda _: lambda: [KEY.sign(m) for m in messages])
    public = KEY.public
    verify_rate = median_rate(
        N,
        lambda _: lambda: [public.verify(r.sig, m) for r, m in zip(signed, messages, strict=True)],
    )
    pairs = [(record.cid.bytes, record.block) for record in signed]

    def raw_put_run(i: int) -> Callable[[], object]:
        store = LmdbStore(tmp_path / f"raw-{i}")

        def run() -> None:
            for start in range(0, N, BATCH):
                chunk = pairs[start : start + BATCH]

                def put(txn: WriteTxn, chunk: list[tuple[bytes, bytes]] = chunk) -> None:
                    for key, value in chunk:
                        txn.put("blocks", key, value)

                store.transact(put)
            store.close()

        return run

    put_rate = median_rate(N, raw_put_run)

    # Publishing: check + sign + store, BATCH records per transaction.
    def publish_run(i: int) -> Callable[[], object]:
        store = LmdbStore(tmp_path / f"publish-{i}")
        work = drafts(N, f"publish-{i}")

        def run() -> None:
            for start in range(0, N, BATCH):
                publish_many(store, KEY, work[start : start + BATCH], clock)
            with store.read() as txn:
                assert count_records(txn) == N
            store.close()

        return run

    publish_rate = median_rate(N, publish_run)

    # Importing: parse + check + verify + store, BATCH records per transaction.
    def import_run(i: int) -> Callable[[], object]:
        store = LmdbStore(tmp_path / f"import-{i}")

        def run() -> None:
            report = ingest_records(store, blocks, batch_size=BATCH)
            assert report.ok and len(report.added) == N
            store.close()

        return run

    # On one core (no worker processes), then with the signature checks on every core
    # (identity.batch: the first batch of a run starts the workers in the background).
    batch.set_workers(0)
    try:
        import_rate_one = median_rate(N, import_run)
    finally:
        batch.set_workers(None)
    # The workers are forced on: left to itself the pool stands down while the
    # machine's load average says no core is idle (see identity.batch).
    batch.set_workers(batch.cores())
    try:
        import_rate = median_rate(N, lambda i: import_run(RUNS + i))
    finally:
        batch.set_workers(None)

    # A sanity check that the imported records are the signed ones.
    assert Record.from_block(blocks[0]).cid == signed[0].cid
    print()
    print(
        f"records: {N} techniques of {sizes:.0f} bytes, batches of {BATCH}, "
        f"LmdbStore, median of {RUNS}"
    )
    print(f"  baseline Ed25519 sign       {sign_rate:9.0f} /s")
    print(f"  baseline Ed25519 verify     {verify_rate:9.0f} /s")
    print(f"  baseline LMDB put (blocks)  {put_rate:9.0f} /s")
    print(
        f"  publish (check+sign+store)  {publish_rate:9.0f} /s  "
        f"= {publish_rate / sign_rate:.2f} x raw sign   "
        f"target {TARGET}/s {'met' if publish_rate >= TARGET else 'NOT met'}"
    )
    print(
        f"  import, one core            {import_rate_one:9.0f} /s  "
        f"= {import_rate_one / verify_rate:.2f} x raw verify"
    )
    print(
        f"  import (parse+verify+store) {import_rate:9.0f} /s  "
        f"= {import_rate / verify_rate:.2f} x raw verify (one core) "
        f"target {TARGET}/s and 0.7 "
        f"{'met' if import_rate >= TARGET and import_rate >= 0.7 * verify_rate else 'NOT met'}; "
        f"signatures on {batch.cores()} worker processes, load {os.getloadavg()[0]:.1f}"
    )
