"""Every writer of records keeps the reconcile index current and logs to the change feed.

Whoever stores a record (publish, ingest, a bundle import, a co-edited document, the
node's sync) does it through ``put_record``, so after the transaction commits the
reconcile index agrees with ``rec_time`` entry by entry and the change feed names the
record, in order, for readers in other threads and processes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.archive import changes
from craftnet.archive.bundle import export_car, import_car
from craftnet.archive.changes import FEED_DB, changes_after, latest
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.errors import ArchiveError, StoreError
from craftnet.archive.hlc import pack
from craftnet.archive.index import ingest_records, publish, put_records
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.recon_index import ReconIndex, StoreItems, item_key
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey

WEAVER = PrivateKey.from_seed(b"intergenerational-making-coop-02")
POTTER = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
T0 = pack(2_000_000_000_000)


def technique(key: PrivateKey, title: str, ts: int) -> Record:
    body = {"title": title, "steps": [{"text": "Prepare", "media": []}], "licence": "CC-BY-4.0"}
    return Record.create(key, "technique", body, ts=ts)


def agrees(store: Store) -> None:
    """The reconcile index matches rec_time exactly, and its whole-range sum is right."""
    index = ReconIndex()
    with store.read() as txn:
        assert index.problems(txn) == []
        assert index.is_current(txn)
        keys = index.keys(txn, b"", None)
        assert index.summary(txn, b"", None) == StoreItems(store).summary(b"", None)
    count, _ = StoreItems(store).summary(b"", None)
    assert count == len(keys)


def feed(store: Store) -> list[tuple[int, Cid]]:
    with store.read() as txn:
        return [(c.ts, c.cid) for c in changes_after(txn, 0).changes]


def test_publish_indexes_and_logs_each_new_record_once(store: Store) -> None:
    first = publish(store, WEAVER, "technique", technique(WEAVER, "Ikat", T0).body)
    second = publish(store, POTTER, "technique", technique(POTTER, "Raku", T0).body)
    put_records(store, [first])  # a duplicate: neither indexed nor logged again
    assert feed(store) == [(first.ts, first.cid), (second.ts, second.cid)]
    agrees(store)
    with store.read() as txn:
        assert latest(txn) == 2
        batch = changes_after(txn, 1)
    assert [c.cid for c in batch.changes] == [second.cid]
    assert (batch.cursor, batch.missed) == (2, 0)


def test_ingest_bundles_and_documents_keep_the_index_and_the_feed(
    store: Store, tmp_path: Path
) -> None:
    records = [technique(WEAVER, f"Backstrap loom step {i}", T0 + i) for i in range(150)]
    report = ingest_records(store, [r.block for r in records], batch_size=40)
    assert len(report.added) == 150
    agrees(store)  # 150 items: more than two chunks, so chunks were split on the way

    # A bundle from another hub brings records this one lacks.
    other = MemoryStore()
    theirs = [technique(POTTER, f"Neo-Vernacular stool {i}", T0 + 1000 + i) for i in range(5)]
    put_records(other, theirs)
    bundle = io.BytesIO()
    export_car(other, bundle, [r.cid for r in theirs])
    bundle.seek(0)
    import_car(store, bundle, spill_dir=tmp_path)
    agrees(store)

    # A co-edited entry: its genesis and operations are records too.
    docs = Documents(store)
    genesis = docs.create(WEAVER, "technique", lambda b: b.set("title", "Azulejo glazing"))
    edit = docs.edit(WEAVER, genesis.cid, lambda b: b.add("materials", "tin glaze"))
    agrees(store)
    logged = [cid for _, cid in feed(store)]
    assert logged[:150] == [r.cid for r in records]
    assert set(logged[150:155]) == {r.cid for r in theirs}
    assert logged[155:] == [genesis.cid, edit.cid]


def test_the_feed_keeps_its_newest_entries_and_tells_a_slow_reader(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "FEED_KEEP", 8)
    records = [technique(WEAVER, f"Pit firing {i}", T0 + i) for i in range(20)]
    put_records(store, records[:5])
    with store.read() as txn:
        cursor = changes_after(txn, 0).cursor
    assert cursor == 5
    put_records(store, records[5:])
    with store.read() as txn:
        assert txn_count(txn) == 8
        batch = changes_after(txn, cursor)
        assert batch.missed == 7  # entries 6..12 were dropped before it read them
        assert [c.cid for c in batch.changes] == [r.cid for r in records[12:]]
        assert changes_after(txn, batch.cursor).changes == []
        page = changes_after(txn, 12, limit=3)
        assert [c.seq for c in page.changes] == [13, 14, 15] and page.cursor == 15
    agrees(store)


def txn_count(txn: object) -> int:
    return sum(1 for _ in txn.iterate(FEED_DB))  # type: ignore[attr-defined]


@pytest.mark.parametrize("cursor", [-1, 1.5, "0", None, True])
def test_a_bad_cursor_is_refused(store: Store, cursor: object) -> None:
    with store.read() as txn, pytest.raises(ArchiveError, match="cursor"):
        changes_after(txn, cursor)  # type: ignore[arg-type]


def test_a_cursor_ahead_of_the_feed_and_a_bad_limit_are_refused(store: Store) -> None:
    put_records(store, [technique(WEAVER, "Ikat", T0)])
    with store.read() as txn:
        with pytest.raises(ArchiveError, match="ahead"):
            changes_after(txn, 7)
        with pytest.raises(ArchiveError, match="at least 1"):
            changes_after(txn, 0, limit=0)


def test_a_damaged_feed_raises_a_store_error(store: Store) -> None:
    put_records(store, [technique(WEAVER, "Ikat", T0)])
    store.transact(lambda txn: txn.put(FEED_DB, (2).to_bytes(8, "big"), b"short"))
    with store.read() as txn, pytest.raises(StoreError, match="damaged"):
        changes_after(txn, 0)
    store.transact(lambda txn: txn.delete(FEED_DB, (2).to_bytes(8, "big")))
    store.transact(lambda txn: txn.put(FEED_DB, b"\xff" * 9, b"x"))
    with store.read() as txn, pytest.raises(StoreError, match="damaged key"):
        latest(txn)
    with pytest.raises(StoreError, match="ts\\(8\\)"):
        store.transact(lambda txn: changes.append(txn, [b"too short"]))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=300), st.randoms(use_true_random=False))
def test_the_index_agrees_whatever_the_order_and_batching(offsets: list[int], rng: object) -> None:
    store = MemoryStore()
    records = [technique(WEAVER, f"Raku {dt}", T0 + dt) for dt in offsets]
    rng.shuffle(records)  # type: ignore[attr-defined]
    while records:
        cut = rng.randint(1, 70)  # type: ignore[attr-defined]
        put_records(store, records[:cut])
        records = records[cut:]
    agrees(store)
    with store.read() as txn:
        logged = [item_key(c.ts, c.cid) for c in changes_after(txn, 0).changes]
        assert sorted(logged) == ReconIndex().keys(txn, b"", None)
