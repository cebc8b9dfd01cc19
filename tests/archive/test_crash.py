"""Kill a writing process at random points; the store must reopen whole and keep every ack.

The child prints a CID only after the transaction that made it durable has committed;
the parent kills it with SIGKILL at a random moment, reopens the store, runs
verify_store and checks that every acknowledged file and record is there, intact.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest

from craftnet.archive.cid import Cid
from craftnet.archive.files import iter_file
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.verify import verify_store

CHILD = r"""
import io, os, random, sys
from craftnet.archive import files
from craftnet.archive.index import put_record
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey

files.BATCH_BYTES = 1 << 20  # many chunk transactions per file: more places to die
path, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LmdbStore(path, map_size=1 << 20)  # tiny: the map grows while we are killed
rng = random.Random(seed)
key = PrivateKey.from_seed(bytes([seed % 256]) * 32)
base = os.urandom(1 << 20)
i = 0
while True:
    i += 1
    if mode == "files":
        size = rng.randrange(1, 6 << 20)
        shift = rng.randrange(1 << 20)
        data = ((base[shift:] + base[:shift]) * 6)[:size]
        info = files.add_file(store, io.BytesIO(data), name=f"hub-{seed}-{i}.stl")
        sys.stdout.write(f"file {info.cid} {info.blake3_hex}\n")
        sys.stdout.flush()
    else:
        body = {"title": f"Living Heritage Program entry {seed}-{i}"}
        record = Record.create(key, "technique", body, ts=seed * 1_000_000 + i)
        store.transact(lambda txn: put_record(txn, record))
        sys.stdout.write(f"record {record.cid}\n")
        sys.stdout.flush()
"""


def run_and_kill(store_path: Path, mode: str, seed: int, delay: float) -> list[list[str]]:
    """Start a writer, wait for its first acknowledged write, kill it ``delay`` s later."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store_path), mode, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    # Wait on the condition (one write acknowledged), not on a clock: on a loaded
    # machine starting Python alone can take longer than any fixed delay.
    first = b""
    deadline = time.monotonic() + 300
    while b"\n" not in first:
        left = deadline - time.monotonic()
        assert left > 0, "the child acknowledged no write within 300 s"
        ready, _, _ = select.select([child.stdout], [], [], left)
        if ready:
            piece = os.read(child.stdout.fileno(), 65536)  # unbuffered: nothing is lost
            assert piece, child.stderr.read().decode() if child.stderr else "child exited"
            first += piece
    time.sleep(delay)  # then a random moment, in the middle of later writes
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err  # it was still working when killed
    complete = (first + rest).decode().split("\n")[:-1]  # a cut-short line was never acked
    return [line.split() for line in complete]


def check(store_path: Path, acked: list[list[str]]) -> None:
    with LmdbStore(store_path) as store:
        report = verify_store(store)
        assert report.ok, [str(p) for p in report.problems]
        with store.read() as txn:
            for line in acked:
                assert txn.has("blocks", Cid.parse(line[1]).bytes), line
                if line[0] == "record":
                    assert txn.has("records", Cid.parse(line[1]).bytes), line
        for line in acked:
            if line[0] == "file":
                digest = blake3.blake3()
                for piece in iter_file(store, Cid.parse(line[1])):
                    digest.update(piece)
                assert digest.hexdigest() == line[2]


@pytest.mark.parametrize("mode", ["files", "records"])
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path, mode: str) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    store_path = tmp_path / "store"
    acked: list[list[str]] = []
    for round_ in range(3):
        acked += run_and_kill(store_path, mode, round_, rng.uniform(0.0, 0.7))
        check(store_path, acked)
    assert acked, "the child never finished a write; give it more time"
