"""The web API's byte ranges of a file: exact bytes, each chunk checked first."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from craftnet.archive.errors import IntegrityError
from craftnet.archive.files import add_file, iter_chunk_refs
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.node.web.api.files import iter_range

MiB = 1024 * 1024


def test_ranges_give_exact_bytes_and_damage_is_caught(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "store")
    try:
        data = random.Random(3).randbytes(11 * MiB + 5)  # three batches of chunks
        info = add_file(store, io.BytesIO(data))
        pick = random.Random(8)
        cases = [(0, len(data) - 1), (0, 0), (len(data) - 1, len(data) - 1), (1, len(data) - 2)]
        for _ in range(12):
            start = pick.randrange(len(data))
            cases.append((start, min(len(data) - 1, start + pick.choice([1, 999, 5 * MiB]))))
        for start, end in cases:
            assert b"".join(iter_range(store, info.cid, start, end)) == data[start : end + 1]

        refs = list(iter_chunk_refs(store, info))
        victim = refs[len(refs) // 2]
        at = sum(ref.size for ref in refs[: len(refs) // 2])
        store.transact(lambda txn: txn.put("blocks", victim.cid.bytes, bytes(victim.size)))
        with pytest.raises(IntegrityError, match=str(victim.cid)):
            b"".join(iter_range(store, info.cid, at + 10, at + 20))
        with pytest.raises(IntegrityError, match=str(victim.cid)):
            b"".join(iter_range(store, info.cid, 0, len(data) - 1))
        # A range that does not touch the damaged chunk still reads.
        assert b"".join(iter_range(store, info.cid, 0, 99)) == data[:100]
    finally:
        store.close()
