"""Delta bundles at 100,000 records with 100 missing: summary size, bundle size, time.

Two hubs share 100,000 signed records; the far hub lacks 100 more that the near hub
holds. Measured in the same run:

- the far hub's have-summary (goal: at most 64 KiB);
- the delta bundle the near hub writes from it, against the bytes of the blocks the far
  hub really lacks (goal: within 10%), and against a full export (the baseline);
- the time to summarise, to plan the delta and write it, against a full export.

Two cases: the 100 missing are technique records alone (about 400 bytes each, the
hardest case for the ratio: the sender's own summary in the bundle is as large as
the data), and designs with a 48 KiB file each. Run with ``make bench``.
"""

from __future__ import annotations

import io
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from craftnet.archive import files, index
from craftnet.archive.delta import plan_all, plan_delta, section_size, write_bundles
from craftnet.archive.have import build_summary, read_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey

SHARED = 100_000
MISSING = 100
RUNS = 3
ARTISAN = PrivateKey.from_seed(b"\x11" * 32)
NEAR = PrivateKey.from_seed(b"\x12" * 32)
FAR = PrivateKey.from_seed(b"\x13" * 32)


def median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def techniques(count: int, clock: HybridClock) -> list[Record]:
    return [
        Record.create(
            ARTISAN, "technique",
            {"title": f"Neo-Vernacular joint {n}", "licence": "CC-BY-4.0",
             "steps": [{"text": "Cut the tenon, wedge it, plane it flush.", "media": []}]},
            clock=clock,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("with_files", [False, True])
def test_bench_delta_bundle_100k_records_100_missing(tmp_path: Path, with_files: bool) -> None:
    clock = HybridClock()
    near = LmdbStore(tmp_path / "near", sync=False)
    far = LmdbStore(tmp_path / "far", sync=False)
    try:
        shared = techniques(SHARED, clock)
        for start in range(0, SHARED, 5000):
            batch = shared[start : start + 5000]
            index.put_records(near, batch)
            index.put_records(far, batch)
        if with_files:
            rng = random.Random(1)
            for n in range(MISSING):
                node = files.add_file(near, io.BytesIO(rng.randbytes(48 * 1024)),
                                      name=f"lamp-{n}.stl").cid
                index.publish(near, ARTISAN, "design",
                              {"title": f"Rustic Futurism lamp {n}", "licence": "CC-BY-4.0",
                               "files": [node]}, [node], clock=clock)
        else:
            index.put_records(near, techniques(MISSING, clock))

        with near.read() as txn:
            lacked = sum(section_size(len(value)) for key, value in txn.iterate("blocks")
                         if not _has(far, key))
        summary = None

        def summarise() -> None:
            nonlocal summary
            with far.read() as txn:
                summary = build_summary(txn, FAR, clock.tick())

        t_summary = median_seconds(summarise)
        assert summary is not None
        have = read_summary(summary.raw)

        def delta() -> int:
            with near.read() as txn:
                plan = plan_delta(txn, have)
                mine = build_summary(txn, NEAR, clock.tick())
                return write_bundles(txn, plan, tmp_path / "delta.car", have=mine)[0].bytes

        def full() -> int:
            with near.read() as txn:
                return write_bundles(txn, plan_all(txn), tmp_path / "full.car")[0].bytes

        t_delta = median_seconds(delta)
        t_full = median_seconds(full)
        delta_bytes = delta()
        full_bytes = full()
        with near.read() as txn:
            plan = plan_delta(txn, have)
        data_bytes = plan.section_bytes
    finally:
        near.close()
        far.close()
    case = "designs with 48 KiB files" if with_files else "technique records only"
    print(f"\n{SHARED:,} shared records, {MISSING} missing ({case}):")
    print(f"  have-summary: {len(summary.raw):,} bytes (goal <= 65,536); "
          f"{len(have.ranges)} ranges, {have.cells.size} cells")
    print(f"  difference found exactly: {plan.difference.exact if plan.difference else None}")
    print(f"  missing blocks: {lacked:,} bytes as CAR sections")
    print(f"  delta bundle: {delta_bytes:,} bytes = {delta_bytes / lacked:.3f}x the missing "
          f"(its blocks alone: {data_bytes:,} = {data_bytes / lacked:.3f}x; the rest is the "
          f"sender's own summary and the manifest)")
    print(f"  full export: {full_bytes:,} bytes; delta/full = {delta_bytes / full_bytes:.4f}")
    print(f"  time: summary {t_summary:.2f} s, delta export {t_delta:.2f} s, full export "
          f"{t_full:.2f} s (delta/full {t_delta / t_full:.2f})")
    assert len(summary.raw) <= 64 * 1024
    assert data_bytes <= 1.1 * lacked
    if with_files:
        assert delta_bytes <= 1.1 * lacked


def _has(store: LmdbStore, key: bytes) -> bool:
    with store.read() as txn:
        return txn.has("blocks", key)
