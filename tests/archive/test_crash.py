"""Kill a writing process at random points; the store must reopen whole and keep every ack.

The child prints a CID only after the transaction that made it durable has committed;
the parent kills it with SIGKILL after a random number of acknowledgements (while it is
in the middle of the next write), reopens the store, runs verify_store and checks that
every acknowledged file and record is there, intact, and that the reconcile index and
the change feed agree with the records.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from craftnet.archive.blocks import has_block
from craftnet.archive.changes import changes_after, latest
from craftnet.archive.cid import Cid
from craftnet.archive.files import iter_file
from craftnet.archive.index import count_records, has_record
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.verify import verify_store

CHILD = r"""
import io, os, random, sys
from craftnet.archive import file_writer, files
from craftnet.archive.index import put_record
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.identity.keys import PrivateKey

file_writer.BATCH_BYTES = 1 << 20  # many chunk transactions per file: more places to die
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


def run_and_kill(store_path: Path, mode: str, seed: int, acks: int) -> list[list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store_path), mode, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # Wait for the acknowledgements, not for a time: a loaded machine only slows it down.
    # The child goes on writing while we read, so the kill lands inside a later write.
    seen = "".join(child.stdout.readline() for _ in range(acks))
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err  # it was still working when killed
    complete = (seen + out).split("\n")[:-1]  # a line cut short by the kill was never acked
    return [line.split() for line in complete]


def check(store_path: Path, acked: list[list[str]]) -> None:
    with LmdbStore(store_path) as store:
        report = verify_store(store)
        assert report.ok, [str(p) for p in report.problems]
        with store.read() as txn:
            for line in acked:
                assert has_block(txn, Cid.parse(line[1])), line
                if line[0] == "record":
                    assert has_record(txn, Cid.parse(line[1])), line
            # The index and the feed were written in the records' own transactions.
            assert ReconIndex().problems(txn) == []
            assert latest(txn) == count_records(txn)
            assert all(has_record(txn, c.cid) for c in changes_after(txn, 0).changes)
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
        acks = rng.randint(1, 3) if mode == "files" else rng.randint(1, 300)
        acked += run_and_kill(store_path, mode, round_, acks)
        check(store_path, acked)
    assert acked, "the child never finished a write; give it more time"
