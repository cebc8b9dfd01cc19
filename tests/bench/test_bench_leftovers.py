"""Unfinished imports: what continuing a piped import saves, and what a round costs.

- **A piped import that continues**: a bundle of 20,000 signed technique records,
  piped (no seeking) into a fresh hub, cut short at 90% and piped again whole. The
  second run reads the first 90% again (each block hashed against its CID and compared
  with the journal) but checks no signature, schema or file node there. Compared with
  one whole piped import into another fresh hub, run back to back, alternating.
- **A housekeeping round with nothing to do** over a held table of 1,024 blocks of
  256 KiB (256 MiB, all recent), and ``craftnet imports list``'s survey of it.

CPU seconds of this process (``time.process_time``; signature batches may run in
worker processes, whose CPU is in the wall time only) and wall seconds, medians of
three. Run with ``.venv/bin/python -m pytest -q -s tests/bench/test_bench_leftovers.py``.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from craftnet.archive import index
from craftnet.archive.cid import RAW, Cid
from craftnet.archive.delta import plan_all, write_bundles
from craftnet.archive.errors import BundleTruncated
from craftnet.archive.hlc import HybridClock
from craftnet.archive.leftovers import days_ms, expire, survey
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.receive import HELD_DB, encode_held, receive_bundle
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey

RECORDS = 20_000
RUNS = 3
ARTISAN = PrivateKey.from_seed(b"\x21" * 32)


class Pipe(io.RawIOBase):
    """The bundle as a pipe gives it: read once, no seeking."""

    def __init__(self, raw: bytes, stop: int | None = None) -> None:
        self._inner = io.BytesIO(raw if stop is None else raw[:stop])

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


def measured(action: Callable[[], object]) -> tuple[float, float]:
    """``(cpu, wall)`` seconds of one run."""
    cpu, wall = time.process_time(), time.perf_counter()
    action()
    return time.process_time() - cpu, time.perf_counter() - wall


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    base = tmp_path_factory.mktemp("source")
    ms = iter(range(1_764_000_000_000, 1_764_000_000_000 + RECORDS * 10, 3))
    clock = HybridClock(lambda: next(ms))
    with LmdbStore(base / "store", sync=False) as store:
        drafts = [
            Record.create(ARTISAN, "technique",
                          {"title": f"Rustic Futurism joint {n}", "licence": "CC-BY-4.0",
                           "steps": [{"text": "Cut, wedge and plane flush.", "media": []}]},
                          clock=clock)
            for n in range(RECORDS)
        ]
        index.ingest_records(store, [r.block for r in drafts], strict=True)
        with store.read() as txn:
            write_bundles(txn, plan_all(txn), base / "all.car")
    return (base / "all.car").read_bytes()


def test_a_piped_import_that_continues(bundle: bytes, tmp_path: Path) -> None:
    cut = len(bundle) * 9 // 10
    whole: list[tuple[float, float]] = []
    resumed: list[tuple[float, float]] = []
    for run in range(RUNS):
        home = tmp_path / f"whole{run}"
        with LmdbStore(home / "store", sync=False) as store:
            whole.append(measured(lambda s=store, h=home: receive_bundle(
                s, Pipe(bundle), h, now=1 << 16)))
        home = tmp_path / f"resumed{run}"
        with LmdbStore(home / "store", sync=False) as store:
            with pytest.raises(BundleTruncated):
                receive_bundle(store, Pipe(bundle, cut), home, now=1 << 16)
            resumed.append(measured(lambda s=store, h=home: receive_bundle(
                s, Pipe(bundle), h, now=1 << 16)))
            with store.read() as txn:
                assert txn.count("records") == RECORDS
    w_cpu = statistics.median(c for c, _ in whole)
    w_wall = statistics.median(w for _, w in whole)
    r_cpu = statistics.median(c for c, _ in resumed)
    r_wall = statistics.median(w for _, w in resumed)
    print(
        f"\npiped import of {RECORDS} records ({len(bundle) / 2**20:.1f} MiB), load {_load()}:"
        f"\n  whole, from the start     cpu {w_cpu:6.2f} s  wall {w_wall:6.2f} s"
        f"\n  continued after 90%       cpu {r_cpu:6.2f} s  wall {r_wall:6.2f} s  "
        f"ratio cpu {r_cpu / w_cpu:.2f}x  wall {r_wall / w_wall:.2f}x"
    )


def test_a_round_with_nothing_to_do(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    with LmdbStore(tmp_path / "store", sync=False) as store:
        block = os.urandom(256 * 1024)

        def fill(txn: object) -> None:
            for n in range(1024):
                data = n.to_bytes(4, "big") + block[4:]
                key = (n // 64).to_bytes(16, "big") + Cid.of(data, RAW).bytes
                txn.put(HELD_DB, key, encode_held("block", data, now))  # type: ignore[attr-defined]

        store.transact(fill)
        rounds = [measured(lambda: expire(store, tmp_path, now_ms=now, max_age_ms=days_ms(30)))
                  for _ in range(RUNS)]
        lists = [measured(lambda: survey(store, tmp_path, now)) for _ in range(RUNS)]
        assert survey(store, tmp_path, now).held_blocks == 1024
    print(
        f"\nheld table of 1024 x 256 KiB in 16 sets, nothing expired, load {_load()}:"
        f"\n  expiry round   cpu {statistics.median(c for c, _ in rounds):.3f} s  "
        f"wall {statistics.median(w for _, w in rounds):.3f} s"
        f"\n  imports list   cpu {statistics.median(c for c, _ in lists):.3f} s  "
        f"wall {statistics.median(w for _, w in lists):.3f} s"
    )
