"""Bundle export and import throughput, against baselines measured in the same run.

- export: ``export_car`` of the whole archive vs. writing every stored block's bytes to
  a file from one read snapshot (the I/O an export cannot avoid, without the link walk).
- import: ``import_car`` of that bundle into a fresh LMDB store vs. reading the same
  bundle, hashing every block with BLAKE3 and putting it into a fresh LMDB store in one
  transaction (the least a verifying import must do, without staging, record checks
  and indexes).

Run with ``make bench``; prints medians of a few runs and their ratio.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from craftnet.archive import files, index
from craftnet.archive.bundle import export_car, import_car
from craftnet.archive.car import CarReader
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey

FILE_MB = 24
RECORDS = 300
RUNS = 5


def median_seconds(action: Callable[[int], None]) -> float:
    times = []
    for run in range(RUNS):
        start = time.perf_counter()
        action(run)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_bench_bundle_export_and_import(tmp_path: Path) -> None:
    key = PrivateKey.from_seed(b"\x07" * 32)
    source = LmdbStore(tmp_path / "source", sync=False)
    try:
        file_cids = [
            files.add_file(source, io.BytesIO(os.urandom(FILE_MB * 2**20 // 4)), name=f"{i}.stl")
            .cid
            for i in range(4)
        ]
        for i in range(RECORDS):
            index.publish(
                source, key, "design",
                {"title": f"Maker's Fair entry {i}", "licence": "CC-BY-4.0",
                 "files": [file_cids[i % 4]]},
                [file_cids[i % 4]],
            )
        bundle = tmp_path / "archive.car"

        def export(_: int) -> None:
            with bundle.open("wb") as out:
                export_car(source, out)

        def export_baseline(_: int) -> None:
            with (tmp_path / "baseline.bin").open("wb") as out, source.read() as txn:
                for _key, value in txn.iterate("blocks"):
                    out.write(value)

        t_export = median_seconds(export)
        t_export_base = median_seconds(export_baseline)
    finally:
        source.close()
    size_mb = bundle.stat().st_size / 2**20

    def do_import(run: int) -> None:
        target = LmdbStore(tmp_path / f"target{run}", sync=False)
        try:
            with bundle.open("rb") as stream:
                import_car(target, stream, spill_dir=tmp_path)
        finally:
            target.close()

    def import_baseline(run: int) -> None:
        target = LmdbStore(tmp_path / f"base{run}", sync=False)
        try:
            with bundle.open("rb") as stream:
                pairs = []
                for section in CarReader(stream):  # hashes every block against its CID
                    blake3.blake3(section.data)  # a second hash, as staging re-reads once
                    pairs.append((section.cid.bytes, section.data))

            def put_all(txn: object) -> None:
                for k, v in pairs:
                    txn.put("blocks", k, v)  # type: ignore[attr-defined]

            target.transact(put_all)
        finally:
            target.close()

    t_import = median_seconds(do_import)
    t_import_base = median_seconds(import_baseline)
    print()
    print(f"bundle: {size_mb:.1f} MiB, {RECORDS} records, 4 files")
    print(
        f"export  {t_export * 1000:8.1f} ms ({size_mb / t_export:6.1f} MiB/s)  "
        f"baseline {t_export_base * 1000:8.1f} ms  ratio {t_export / t_export_base:5.2f}x"
    )
    print(
        f"import  {t_import * 1000:8.1f} ms ({size_mb / t_import:6.1f} MiB/s)  "
        f"baseline {t_import_base * 1000:8.1f} ms  ratio {t_import / t_import_base:5.2f}x"
    )
