"""Adding and reading a big file, against baselines measured in the same run.

- add: ``add_path`` of a 512 MiB file into a fresh LMDB store (chunking, per-chunk and
  whole-file BLAKE3, durable transactions) vs. ``cp`` + ``sync`` of the same file, and
  vs. single-threaded BLAKE3 of it (the hashing alone, no writing);
- peak memory of the add outside the LMDB map: anonymous RSS (``RssAnon``, sampled),
  which leaves out the file-backed pages of data.mdb and of the source;
- cat: ``iter_file`` (every chunk verified against its CID) vs. reading the plain
  file in 1 MiB pieces.

Medians of RUNS runs (3 by default: a 512 MiB add takes about a second; set
CRAFTNET_BENCH_FILE_MB for another size). Run with ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from craftnet.archive.cid import Cid
from craftnet.archive.files import add_path, iter_file
from craftnet.archive.lmdb_store import LmdbStore

FILE_MB = int(os.environ.get("CRAFTNET_BENCH_FILE_MB", "512"))
RUNS = 3
MiB = 1024 * 1024


def make_file(path: Path, mb: int) -> None:
    """Random-looking data fast: 1 MiB of urandom, rotated differently per MiB."""
    base = os.urandom(MiB)
    with open(path, "wb") as out:
        for i in range(mb):
            shift = (i * 7919) % MiB
            out.write(base[shift:] + base[:shift])
    os.sync()


def rss_anon() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakAnon:
    """Samples anonymous RSS every few milliseconds while the block runs."""

    def __enter__(self) -> PeakAnon:
        self.base = rss_anon()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.003):
            self.peak = max(self.peak, rss_anon())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def grew(self) -> int:
        return self.peak - self.base


def median(action: Callable[[], None], before: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(RUNS):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_bench_add_and_cat_a_big_file(tmp_path: Path) -> None:
    source = tmp_path / "workshop-scan.stl"
    make_file(source, FILE_MB)
    size = source.stat().st_size
    copy = tmp_path / "copy.stl"

    def cp_sync() -> None:
        subprocess.run(["cp", str(source), str(copy)], check=True)
        subprocess.run(["sync", str(copy)], check=True)

    def drop_copy() -> None:
        copy.unlink(missing_ok=True)

    def hash_only() -> None:
        digest = blake3.blake3()
        with open(source, "rb", buffering=0) as f:
            while piece := f.read(8 * MiB):
                digest.update(piece)

    store_dir = tmp_path / "store"
    peaks: list[int] = []
    added: list[str] = []

    def fresh_store() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)
        os.sync()

    def add() -> None:
        store = LmdbStore(store_dir)
        try:
            with PeakAnon() as peak:
                info = add_path(store, source)
            peaks.append(peak.grew)
            added.append(str(info.cid))
        finally:
            store.close()

    t_cp = median(cp_sync, before=drop_copy)
    drop_copy()
    t_hash = median(hash_only)
    t_add = median(add, before=fresh_store)

    def plain_read() -> None:
        with open(source, "rb", buffering=0) as f:
            while f.read(MiB):
                pass

    store = LmdbStore(store_dir)
    try:
        cid = Cid.parse(added[-1])

        def cat() -> None:
            for _ in iter_file(store, cid):
                pass

        def cat_unverified() -> None:
            for _ in iter_file(store, cid, verify=False):
                pass

        t_read = median(plain_read)
        t_cat = median(cat)
        t_cat_raw = median(cat_unverified)
    finally:
        store.close()

    def rate(seconds: float) -> str:
        return f"{size / seconds / 1e6:8.0f} MB/s"

    print()
    print(f"file: {size / MiB:.0f} MiB, medians of {RUNS} runs")
    print(f"  cp + sync          {t_cp:7.3f} s {rate(t_cp)}")
    print(f"  blake3 (1 thread)  {t_hash:7.3f} s {rate(t_hash)}")
    print(f"  add_path           {t_add:7.3f} s {rate(t_add)}")
    print(f"    ratio vs cp+sync       {t_cp / t_add:5.2f}   (target >= 0.50)")
    print(f"    ratio vs blake3 alone  {t_hash / t_add:5.2f}")
    print(f"    peak anonymous memory  {max(peaks) / MiB:5.0f} MiB (target < 150)")
    print(f"  plain read         {t_read:7.3f} s {rate(t_read)}")
    print(f"  cat (verified)     {t_cat:7.3f} s {rate(t_cat)}")
    print(f"    ratio vs plain read    {t_read / t_cat:5.2f}   (target >= 0.70)")
    print(f"  cat (unverified)   {t_cat_raw:7.3f} s {rate(t_cat_raw)}")
    print(f"    ratio vs plain read    {t_read / t_cat_raw:5.2f}")
    assert len(set(added)) == 1  # every run stored the same file node
