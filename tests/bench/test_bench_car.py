"""Bundle export and import throughput, against baselines measured in the same run.

- export: ``export_car`` of the whole archive vs. writing every stored block's bytes to
  a file from one read snapshot (the I/O an export cannot avoid, without the link walk).
- import: ``import_car`` of that bundle into a fresh LMDB store vs. reading the same
  bundle, hashing every block with BLAKE3 and putting it into a fresh LMDB store in one
  transaction (the least a verifying import must do, without staging, record checks
  and indexes).

Run with ``make bench``; prints medians of a few runs (subject and baseline alternating)
and the median of their per-run ratios. The bundle is imported from a file, as from a
USB stick, and again through a pipe-like stream (no seeking: the import copies blocks
aside while it checks them).
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3

from craftnet.archive import files, index
from craftnet.archive.bundle import export_car, import_car
from craftnet.archive.car import CarReader
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey

FILE_MB = 24
RECORDS = 300
RUNS = 5


class _Pipe(io.RawIOBase):
    """The bundle as a pipe would give it: readable once, no seeking."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._inner.readinto(buffer)


def paired_medians(
    subject: Callable[[int], None], baseline: Callable[[int], None]
) -> tuple[float, float, float]:
    """Median seconds of each and the median of the per-run ratios, the two alternating
    run by run so that both meet the same load on a shared machine."""
    times: tuple[list[float], list[float]] = ([], [])
    for run in range(RUNS):
        for action, bucket in ((baseline, times[1]), (subject, times[0])):
            start = time.perf_counter()
            action(run)
            bucket.append(time.perf_counter() - start)
    ratios = [s / b for s, b in zip(*times, strict=True)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(ratios)


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

        t_export, t_export_base, r_export = paired_medians(export, export_baseline)
    finally:
        source.close()
    size_mb = bundle.stat().st_size / 2**20

    def do_import(run: int, piped: bool = False) -> None:
        target = LmdbStore(tmp_path / f"target{run}{'p' * piped}", sync=False)
        try:
            with bundle.open("rb") as stream:
                import_car(target, _Pipe(stream) if piped else stream, spill_dir=tmp_path)
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

    t_import, t_import_base, r_import = paired_medians(do_import, import_baseline)
    t_piped, t_piped_base, r_piped = paired_medians(
        lambda run: do_import(run, piped=True), lambda run: import_baseline(RUNS + run)
    )
    print()
    print(f"bundle: {size_mb:.1f} MiB, {RECORDS} records, 4 files; medians of {RUNS} runs, "
          f"baseline and subject alternating; load {os.getloadavg()[0]:.1f}")
    print(
        f"export  {t_export * 1000:8.1f} ms ({size_mb / t_export:6.1f} MiB/s)  "
        f"baseline {t_export_base * 1000:8.1f} ms  ratio {r_export:5.2f}x"
    )
    print(
        f"import  {t_import * 1000:8.1f} ms ({size_mb / t_import:6.1f} MiB/s)  "
        f"baseline {t_import_base * 1000:8.1f} ms  ratio {r_import:5.2f}x (target <= 1.5)"
    )
    print(
        f"  from a pipe {t_piped * 1000:8.1f} ms  baseline {t_piped_base * 1000:8.1f} ms  "
        f"ratio {r_piped:5.2f}x (blocks copied aside while checked)"
    )
