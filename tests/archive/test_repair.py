"""Repair: a block damaged on disk is found by verify and replaced by a good copy.

The damage is real: bytes flipped in LMDB's data file while the store is closed, as a
failing disk or a stray write would leave them. A bundle holding good copies repairs it
in place; ``remove_damaged`` takes damaged copies out so that any good copy (a bundle,
a peer) is stored as new.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.archive import blocks, files, index
from craftnet.archive.bundle import export_car, import_car
from craftnet.archive.cid import RAW, Cid
from craftnet.archive.errors import IntegrityError
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.verify import verify_store
from craftnet.identity.keys import PrivateKey

ARTISAN = PrivateKey.from_seed(b"adopt-a-workshop-artisan-0000001")


def damage_on_disk(store_dir: Path, data: bytes) -> int:
    """Flip a byte in every copy of ``data`` in LMDB's file (old pages may hold copies)."""
    path = store_dir / "data.mdb"
    raw = bytearray(path.read_bytes())
    found = 0
    at = raw.find(data)
    while at >= 0:
        raw[at + len(data) // 2] ^= 0x01
        found += 1
        at = raw.find(data, at + 1)
    path.write_bytes(raw)
    return found


class Hub:
    """A hub's store on disk with a design, its file and its record; reopened at will."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = LmdbStore(path)
        payload = bytes(range(256)) * 2000  # 512 KB: several chunks
        self.file = files.add_file(self.store, io.BytesIO(payload), name="stool.step").cid
        self.design = index.publish(
            self.store, ARTISAN, "design",
            {"title": "Neo-Vernacular stool", "files": [self.file], "licence": "CC-BY-4.0"},
            [self.file],
        )
        with self.store.read() as txn:
            self.chunk = next(
                Cid.from_bytes(key) for key, _ in txn.iterate("blocks")
                if Cid.from_bytes(key).codec == RAW
            )
            self.chunk_bytes = blocks.get_block(txn, self.chunk)
        out = io.BytesIO()
        export_car(self.store, out, [self.design.cid])
        self.bundle = out.getvalue()

    def damage(self, data: bytes) -> None:
        self.store.close()
        assert damage_on_disk(self.path, data) >= 1
        self.store = LmdbStore(self.path)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    opened = Hub(tmp_path / "store")
    yield opened
    opened.store.close()


def bad_blocks(store: LmdbStore) -> list[Cid]:
    report = verify_store(store)
    assert {p.kind for p in report.problems} <= {"bad-block", "bad-record"}
    return report.damaged


def test_a_damaged_chunk_is_repaired_by_importing_a_bundle(hub: Hub) -> None:
    hub.damage(hub.chunk_bytes)
    assert bad_blocks(hub.store) == [hub.chunk]
    with pytest.raises(IntegrityError):
        b"".join(files.iter_file(hub.store, hub.file))
    report = import_car(hub.store, io.BytesIO(hub.bundle))
    assert (report.new_blocks, report.repaired) == (0, 1)  # was "0 new", and still bad
    assert verify_store(hub.store).ok
    assert b"".join(files.iter_file(hub.store, hub.file)) == bytes(range(256)) * 2000


def test_a_damaged_record_block_is_repaired_by_importing_a_bundle(hub: Hub) -> None:
    hub.damage(hub.design.block)
    report = verify_store(hub.store)
    assert hub.design.cid in report.damaged
    assert "bad-record" in {p.kind for p in report.problems}
    assert import_car(hub.store, io.BytesIO(hub.bundle)).repaired == 1
    assert verify_store(hub.store).ok


def test_removed_damaged_blocks_come_back_as_new_from_a_bundle(hub: Hub) -> None:
    hub.damage(hub.chunk_bytes)
    hub.damage(hub.design.block)
    damaged = verify_store(hub.store).damaged
    removed = hub.store.transact(lambda txn: blocks.remove_damaged(txn, damaged))
    assert sorted(removed) == sorted([hub.chunk, hub.design.cid])
    after = verify_store(hub.store)
    assert {p.kind for p in after.problems} == {"missing-block", "missing-chunk"}
    report = import_car(hub.store, io.BytesIO(hub.bundle))
    assert report.repaired == 0 and report.new_blocks == 2
    assert verify_store(hub.store).ok


def test_remove_damaged_keeps_good_blocks(hub: Hub) -> None:
    removed = hub.store.transact(lambda txn: blocks.remove_damaged(txn, [hub.chunk]))
    assert removed == []
    assert verify_store(hub.store).ok


def test_put_or_repair_refuses_a_bad_copy(hub: Hub) -> None:
    hub.damage(hub.chunk_bytes)
    with pytest.raises(IntegrityError):
        hub.store.transact(lambda txn: blocks.put_or_repair(txn, hub.chunk, b"not the chunk"))
    outcome = hub.store.transact(lambda txn: blocks.put_or_repair(txn, hub.chunk, hub.chunk_bytes))
    assert outcome == "repaired"
    again = hub.store.transact(lambda txn: blocks.put_or_repair(txn, hub.chunk, hub.chunk_bytes))
    assert again == "kept"
