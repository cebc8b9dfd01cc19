"""Witness batches: 10,000 records under one signature, against signing each one alone.

Baseline (same run): one Ed25519 signature per record over its ``{witnessed, at}``
statement, which is what a witness without Merkle batching would cost. Prints the
time to sign and store a batch, the sizes (record, leaves, one proof) and the time to
check one record's witness offline. Run with ``make bench``.
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

from craftnet.archive import codec, index
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.archive.witness import proofs_for, verify_witnesses, witness_pending
from craftnet.identity.keys import PrivateKey

RECORDS = 10_000
AT = 120_000_000_000_000_000
ARTISAN = PrivateKey.from_seed(b"\x21" * 32)
HUB = PrivateKey.from_seed(b"\x22" * 32)


def test_bench_one_signature_for_10000_records(tmp_path: Path) -> None:
    ticks = itertools.count(1_764_000_000_000)
    clock = HybridClock(lambda: next(ticks))
    records = [
        Record.create(ARTISAN, "technique",
                      {"title": f"Living Heritage weave {n}", "licence": "CC-BY-4.0",
                       "steps": [{"text": "Warp, then weave", "media": []}]}, clock=clock)
        for n in range(RECORDS)
    ]
    times, baseline = [], []
    for run in range(3):
        with LmdbStore(tmp_path / f"s{run}", sync=False) as store:
            index.put_records(store, records)
            start = time.perf_counter()
            made = witness_pending(store, HUB, AT)
            times.append(time.perf_counter() - start)
            assert len(made) == 1 and made[0].body["count"] == RECORDS
            with store.read() as txn:
                leaves = sum(len(txn.get("blocks", c.bytes) or b"") for c in made[0].body["leaves"])
                proof = proofs_for(txn, records[17].cid)[0]
            start = time.perf_counter()
            found = verify_witnesses(store, records[17].cid)
            check = time.perf_counter() - start
            assert found.hubs == 1
        start = time.perf_counter()
        for record in records:
            HUB.sign(codec.encode({"witnessed": record.cid, "at": AT}))
        baseline.append(time.perf_counter() - start)
    batch, alone = statistics.median(times), statistics.median(baseline)
    print(f"\n{RECORDS:,} records witnessed: one batch, one signature, {batch:.2f} s "
          f"(median of 3) vs {alone:.2f} s signing each alone: ratio {batch / alone:.2f}")
    print(f"  batch record {len(made[0].block)} bytes, leaves {leaves:,} bytes, one proof "
          f"{len(proof.block()[1])} bytes ({len(proof.path)} hashes); checking one record's "
          f"witness offline {check * 1000:.0f} ms")
