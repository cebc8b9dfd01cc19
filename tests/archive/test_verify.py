"""verify_store finds every kind of damage and reports it instead of raising."""

from __future__ import annotations

import io
import random

from craftnet.archive import codec
from craftnet.archive.blocks import pin, put_block
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.files import FileInfo, add_file
from craftnet.archive.index import put_record
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.archive.verify import verify_store
from craftnet.identity.keys import PrivateKey

MiB = 1024 * 1024


def healthy(store: Store) -> tuple[FileInfo, Record]:
    data = random.Random(1).randbytes(2 * MiB)
    info = add_file(store, io.BytesIO(data), name="treadle.step")
    record = Record.create(
        PrivateKey.generate(),
        "technique",
        {"title": "Intergenerational Making Cooperatives: treadle lathe"},
        links=[info.cid],
        ts=5,
    )
    store.transact(lambda txn: put_record(txn, record))
    return info, record


def kinds(store: Store) -> list[str]:
    return sorted(p.kind for p in verify_store(store).problems)


def test_a_healthy_store_passes(store: Store) -> None:
    info, _ = healthy(store)
    seen: list[tuple[int, int]] = []
    report = verify_store(store, on_progress=lambda done, total: seen.append((done, total)))
    assert report.ok, report.problems
    assert report.files == 1
    assert report.records == 1
    assert report.blocks == len(info.chunks) + 2
    assert report.index_entries >= 4
    assert seen[-1][0] == seen[-1][1]


def test_rotten_block(store: Store) -> None:
    info, _ = healthy(store)
    victim = info.chunks[0].cid
    store.transact(lambda txn: txn.put("blocks", victim.bytes, b"rot"))
    report = verify_store(store)
    assert not report.ok
    assert [(p.kind, p.where) for p in report.problems] == [("bad-block", str(victim))]


def test_block_under_a_key_that_is_no_cid(store: Store) -> None:
    store.transact(lambda txn: txn.put("blocks", b"junk", b"x"))
    assert kinds(store) == ["bad-key"]


def test_missing_chunk_of_a_pinned_file(store: Store) -> None:
    info, _ = healthy(store)
    store.transact(lambda txn: txn.delete("blocks", info.chunks[-1].cid.bytes))
    assert kinds(store) == ["missing-chunk"]


def test_pinned_block_missing(store: Store) -> None:
    info, _ = healthy(store)
    store.transact(lambda txn: txn.delete("blocks", info.cid.bytes))
    assert kinds(store) == ["missing-block"]


def test_bad_file_node_pinned(store: Store) -> None:
    node = {"type": "file", "v": 1, "chunks": [], "size": 3, "media_type": "a/b", "blake3": b""}
    block = codec.encode(node)
    cid = Cid.of(block, DAG_CBOR)
    store.transact(lambda txn: put_block(txn, cid, block))
    store.transact(lambda txn: pin(txn, cid, "broken"))
    assert kinds(store) == ["bad-file"]


def test_forged_record(store: Store) -> None:
    _, record = healthy(store)
    # Same envelope, signature of another key: stored by hand, as a bug or an attacker might.
    other = Record.create(PrivateKey.generate(), "technique", dict(record.body), ts=record.ts)
    forged_value = {**record.unsigned(), "sig": other.sig}
    forged = codec.encode(forged_value)
    cid = Cid.of(forged, DAG_CBOR)
    store.transact(lambda txn: txn.put("blocks", cid.bytes, forged))
    store.transact(lambda txn: txn.put("records", cid.bytes, b"\xa0"))
    assert kinds(store) == ["bad-record"]


def test_record_block_missing_and_dangling_indexes(store: Store) -> None:
    _, record = healthy(store)
    store.transact(lambda txn: txn.delete("blocks", record.cid.bytes))
    assert kinds(store) == ["missing-block"]
    store.transact(lambda txn: txn.delete("records", record.cid.bytes))
    found = kinds(store)
    assert set(found) == {"dangling-index"}
    assert len(found) == 4  # rec_type, rec_author, rec_time, links_rev


def test_damaged_pin_table(store: Store) -> None:
    healthy(store)
    store.transact(lambda txn: txn.put("pins", Cid.of(b"z").bytes, b"\xff"))
    assert "bad-pin" in kinds(store)
