"""Storing records with their indexes, ingesting blocks from peers, and querying them back.

Every test runs on both stores (the ``store`` fixture: MemoryStore and LmdbStore).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive import changes, codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import NotFound, RecordError, SchemaError
from craftnet.archive.hlc import HybridClock, pack
from craftnet.archive.index import (
    MAX_LIMIT,
    RECON_INDEX,
    QueryError,
    attestations_about,
    count_records,
    counts_by_type,
    get_record,
    get_summary,
    has_record,
    ingest_records,
    linking_records,
    list_records,
    publish,
    put_many,
    put_record,
    put_records,
    record_times,
    records_of_type,
)
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.records import MAX_RECORD_SIZE, Record
from craftnet.archive.schemas import build
from craftnet.archive.store import DATABASES, Store, WriteTxn
from craftnet.identity import batch
from craftnet.identity.keys import PrivateKey

POTTER = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
WEAVER = PrivateKey.from_seed(b"intergenerational-making-coop-02")
ELDER = PrivateKey.from_seed(b"living-heritage-program-elder-01")
T0 = pack(2_000_000_000_000)


def technique(key: PrivateKey, title: str, ts: int) -> Record:
    built = build("technique", title=title, steps=["Prepare", "Make"], licence="CC-BY-4.0")
    return Record.create(key, "technique", built.body, built.links, ts=ts)


def design(key: PrivateKey, title: str, ts: int, parents: tuple[Cid, ...] = ()) -> Record:
    built = build("design", title=title, licence="CC-BY-4.0", derived_from=list(parents))
    return Record.create(key, "design", built.body, built.links, ts=ts)


def snapshot(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    with store.read() as txn:
        return {db: list(txn.iterate(db)) for db in DATABASES}


def titles(records: list[Record]) -> list[str]:
    return [str(record.body.get("title")) for record in records]


@pytest.fixture
def archive(store: Store) -> Iterator[tuple[Store, list[Record]]]:
    """A hub holding techniques and designs from two artisans at known times."""
    records = [
        technique(POTTER, "Raku glaze firing", T0 + 1),
        technique(WEAVER, "Backstrap loom warping", T0 + 2),
        design(POTTER, "Neo-Vernacular stool", T0 + 3),
        technique(POTTER, "Pit firing", T0 + 4),
        design(WEAVER, "Loom heddle bar", T0 + 5),
    ]
    put_records(store, records)
    yield store, records


def test_publish_signs_validates_and_stores(store: Store) -> None:
    clock = HybridClock(lambda: 2_000_000_000_000)
    built = build("technique", title="Raku glaze firing", steps=["Bisque fire"], licence="MIT")
    record = publish(store, POTTER, "technique", built.body, built.links, clock)
    record.verify()
    with store.read() as txn:
        assert get_record(txn, record.cid) == record
        assert has_record(txn, record.cid)
        summary = get_summary(txn, record.cid)
        assert (summary.type, summary.author, summary.ts) == ("technique", POTTER.did, record.ts)
    with pytest.raises(SchemaError, match="required"):
        publish(store, POTTER, "technique", {"title": "no steps"}, (), clock)
    opaque = publish(store, POTTER, "workshop-booking", {"seats": 4}, (), clock)
    assert opaque.v == 1


def test_every_index_is_written(store: Store) -> None:
    parent = design(POTTER, "Stool", T0)
    child = design(WEAVER, "Stool, wider seat", T0 + 1, (parent.cid,))
    put_records(store, [parent, child])
    with store.read() as txn:
        assert txn.get("blocks", child.cid.bytes) == child.block
        assert codec.decode(txn.get("records", child.cid.bytes) or b"") == {
            "type": "design",
            "author": WEAVER.did,
            "ts": T0 + 1,
        }
        suffix = (T0 + 1).to_bytes(8, "big") + child.cid.bytes
        assert txn.has("rec_type", b"design\x00" + suffix)
        assert txn.has("rec_author", WEAVER.did.encode() + b"\x00" + suffix)
        assert txn.has("rec_time", suffix)
        assert txn.has("links_rev", parent.cid.bytes + child.cid.bytes)
        assert linking_records(txn, parent.cid) == [child.cid]
        assert linking_records(txn, child.cid) == []


def test_storing_twice_changes_nothing(archive: tuple[Store, list[Record]]) -> None:
    store, records = archive
    before = snapshot(store)
    assert put_records(store, records) == 0
    assert store.transact(lambda txn: put_record(txn, records[0])) is False
    report = ingest_records(store, [r.block for r in records])
    assert report.added == [] and len(report.duplicates) == len(records)
    assert snapshot(store) == before


def test_a_record_twice_in_one_batch_is_stored_once(store: Store) -> None:
    record = technique(POTTER, "Raku glaze firing", T0)
    other = technique(WEAVER, "Backstrap loom", T0 + 1)
    assert store.transact(lambda txn: put_many(txn, [record, other, record])) == [
        True,
        True,
        False,
    ]
    with store.read() as txn:
        assert count_records(txn) == 2
        assert RECON_INDEX.problems(txn) == []
        assert changes.latest(txn) == 2


def test_a_failed_transaction_leaves_no_index_behind(store: Store) -> None:
    record = technique(POTTER, "Raku glaze firing", T0)
    before = snapshot(store)

    def half_done(txn: WriteTxn) -> None:
        put_record(txn, record)
        raise RuntimeError("power cut at the Rustic Futurism hub")

    with pytest.raises(RuntimeError):
        store.transact(half_done)
    assert snapshot(store) == before


def test_ingest_reports_each_bad_block_and_stores_the_rest(store: Store) -> None:
    good = technique(POTTER, "Raku glaze firing", T0)
    other = technique(WEAVER, "Backstrap loom warping", T0 + 1)
    forged = Record.from_block(
        codec.encode({**good.unsigned(), "body": {**good.body, "title": "Forged"}, "sig": good.sig})
    )
    newer = Record.create(POTTER, "design", {"title": "Stool", "licence": "MIT"}, ts=T0, v=3)
    invalid = Record.create(POTTER, "design", {"title": "Stool"}, ts=T0)  # no licence
    opaque = Record.create(ELDER, "workshop-booking", {"seats": 4}, ts=T0)
    report = ingest_records(
        store,
        [
            good.block,
            forged.block,
            (other.cid, other.block),
            (good.cid, other.block),  # a block sent under the wrong CID
            newer.block,
            b"\xa0",
            invalid.block,
            opaque.block,
            good.block,  # the same block twice in one input
        ],
    )
    assert report.added == [good.cid, other.cid, opaque.cid]
    assert report.opaque == 1
    assert report.duplicates == [good.cid]
    assert [(r.index, r.cid) for r in report.rejected] == [
        (1, forged.cid),
        (3, good.cid),
        (4, newer.cid),
        (5, None),
        (6, invalid.cid),
    ]
    reasons = [r.reason for r in report.rejected]
    assert "signature does not verify" in reasons[0]
    assert "does not match its CID" in reasons[1]
    assert "newer than this hub understands" in reasons[2]
    assert "licence" in reasons[4]
    assert not report.ok
    with store.read() as txn:
        assert count_records(txn) == 3
        assert not has_record(txn, forged.cid)


@pytest.mark.parametrize("batch_size", [1, 2, 100, None])
def test_ingest_in_batches(store: Store, batch_size: int | None) -> None:
    records = [technique(POTTER, f"Glaze test tile {i}", T0 + i) for i in range(7)]
    report = ingest_records(store, (r.block for r in records), batch_size=batch_size)
    assert report.ok
    assert report.added == [r.cid for r in records]
    with store.read() as txn:
        assert count_records(txn) == 7


def test_strict_ingest_writes_nothing_of_a_bad_batch(store: Store) -> None:
    good = technique(POTTER, "Raku glaze firing", T0)
    forged = codec.encode({**good.unsigned(), "ts": T0 + 9, "sig": good.sig})
    with pytest.raises(RecordError, match="signature"):
        ingest_records(store, [good.block, forged], strict=True, batch_size=None)
    with store.read() as txn:
        assert count_records(txn) == 0
    with pytest.raises(SchemaError):
        ingest_records(store, [Record.create(POTTER, "design", {}, ts=1).block], strict=True)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_in_flight_keep_the_order_of_a_one_by_one_ingest(
    store: Store, workers: int
) -> None:
    # Two batches are in flight (one parsed while the other's signatures are checked,
    # on worker processes or not); outcomes, and what a strict ingest writes before it
    # raises, are those of taking the batches one after the other.
    batch.set_workers(workers)
    try:
        size = batch.POOL_MIN  # big enough for the workers once they run
        records = [technique(POTTER, f"Indigo vat {i}", T0 + i) for i in range(2 * size + 3)]
        if workers:  # start them now, so that every batch below goes to them
            key = POTTER.public
            assert batch.verify_many([(key, records[0].sig, b"x")], pool=True) != [None]
        forged = codec.encode({**records[5].unsigned(), "ts": T0 + 99, "sig": records[5].sig})
        blocks = [*(r.block for r in records[:5]), forged, *(r.block for r in records[5:])]
        blocks += [records[0].block, b"\xa1\x61x\x01"]  # a repeat, then a bad block
        report = ingest_records(store, blocks, batch_size=size)
        assert report.added == [r.cid for r in records]
        assert [r.index for r in report.rejected] == [5, len(records) + 2]
        assert report.duplicates == [records[0].cid]

        other = MemoryStore()
        tail = [technique(WEAVER, f"Loom warp {i}", T0 + i).block for i in range(6)]
        with pytest.raises(RecordError):
            ingest_records(other, [*tail[:4], b"\xa1\x61x\x01", *tail[4:]], strict=True,
                           batch_size=4)
        with other.read() as txn:
            assert count_records(txn) == 4  # the batch before the bad one, and no more
    finally:
        batch.set_workers(None)


def test_ingest_without_verification_trusts_the_caller(store: Store) -> None:
    good = technique(POTTER, "Raku glaze firing", T0)
    unverified = codec.encode({**good.unsigned(), "ts": T0 + 9, "sig": good.sig})
    assert ingest_records(store, [unverified], verify=False).added != []
    with pytest.raises(QueryError):
        ingest_records(store, [], batch_size=0)


def test_list_newest_first_with_filters(archive: tuple[Store, list[Record]]) -> None:
    store, _ = archive
    with store.read() as txn:
        assert titles(list_records(txn).records) == [
            "Loom heddle bar",
            "Pit firing",
            "Neo-Vernacular stool",
            "Backstrap loom warping",
            "Raku glaze firing",
        ]
        assert titles(list_records(txn, type="technique").records) == [
            "Pit firing",
            "Backstrap loom warping",
            "Raku glaze firing",
        ]
        assert titles(list_records(txn, author=POTTER.did).records) == [
            "Pit firing",
            "Neo-Vernacular stool",
            "Raku glaze firing",
        ]
        assert titles(list_records(txn, author=POTTER.did, type="design").records) == [
            "Neo-Vernacular stool"
        ]
        assert titles(list_records(txn, since=T0 + 2, until=T0 + 4).records) == [
            "Neo-Vernacular stool",
            "Backstrap loom warping",
        ]
        assert titles(list_records(txn, type="technique", since=T0 + 2).records) == [
            "Pit firing",
            "Backstrap loom warping",
        ]
        assert list_records(txn, type="membership").records == []
        assert list_records(txn, author=ELDER.did).records == []


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 6])
@pytest.mark.parametrize(
    "query", [{}, {"type": "technique"}, {"author": POTTER.did}, {"since": T0 + 2}]
)
def test_cursor_pagination_visits_each_record_once(
    archive: tuple[Store, list[Record]], limit: int, query: dict[str, Any]
) -> None:
    store, _ = archive
    with store.read() as txn:
        everything = list_records(txn, **query).records
        seen: list[Record] = []
        cursor = None
        while True:
            page = list_records(txn, limit=limit, cursor=cursor, **query)
            assert len(page.records) <= limit
            seen.extend(page.records)
            if page.cursor is None:
                break
            cursor = page.cursor
    assert seen == everything


def test_records_with_the_same_timestamp_page_correctly(store: Store) -> None:
    same = [technique(POTTER, f"Tile {i}", T0) for i in range(5)]
    put_records(store, same)
    with store.read() as txn:
        first = list_records(txn, limit=2)
        rest = list_records(txn, limit=10, cursor=first.cursor)
    assert {r.cid for r in first.records + rest.records} == {r.cid for r in same}
    assert len(first.records + rest.records) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": MAX_LIMIT + 1},
        {"limit": True},
        {"cursor": "zz"},
        {"cursor": "00" * 10},
        {"since": -1},
        {"until": 2**64},
        {"author": "did:key:z6Mk\x00"},
    ],
)
def test_bad_queries(archive: tuple[Store, list[Record]], kwargs: dict[str, Any]) -> None:
    store, _ = archive
    with store.read() as txn, pytest.raises(QueryError):
        list_records(txn, **kwargs)


def test_bad_type_name_in_query(archive: tuple[Store, list[Record]]) -> None:
    store, _ = archive
    with store.read() as txn, pytest.raises(SchemaError):
        list_records(txn, type="design\x00")


def test_counts(archive: tuple[Store, list[Record]]) -> None:
    store, _ = archive
    with store.read() as txn:
        assert count_records(txn) == 5
        assert count_records(txn, type="design") == 2
        assert count_records(txn, author=WEAVER.did) == 2
        assert count_records(txn, author=WEAVER.did, type="design") == 1
        assert counts_by_type(txn) == {"design": 2, "technique": 3}


def test_records_by_type_and_time_oldest_first(archive: tuple[Store, list[Record]]) -> None:
    store, records = archive
    with store.read() as txn:
        assert titles(list(records_of_type(txn, "design"))) == [
            "Neo-Vernacular stool",
            "Loom heddle bar",
        ]
        assert list(records_of_type(txn, "attestation")) == []
        assert list(record_times(txn)) == [(r.ts, r.cid) for r in records]
        with pytest.raises(SchemaError):
            list(records_of_type(txn, "design\x00"))


def test_get_record_not_found(archive: tuple[Store, list[Record]]) -> None:
    store, _ = archive
    chunk = b"raw file chunk, not a record"
    store.transact(lambda txn: txn.put("blocks", Cid.of(chunk).bytes, chunk))
    with store.read() as txn:
        for cid in (Cid.of(b"nothing", DAG_CBOR), Cid.of(chunk)):
            with pytest.raises(NotFound, match="not in this hub's archive"):
                get_record(txn, cid)
            with pytest.raises(NotFound):
                get_summary(txn, cid)


def test_attestations_are_indexed_by_subject(store: Store) -> None:
    stool = design(POTTER, "Neo-Vernacular stool", T0)
    treasure = Record.create(
        ELDER,
        "attestation",
        {"subject": POTTER.did, "kind": "living-heritage", "note": "Human Treasure"},
        ts=T0 + 1,
    )
    made = Record.create(
        WEAVER,
        "attestation",
        {"subject": WEAVER.did, "kind": "fabricated", "design": stool.cid},
        [stool.cid],
        ts=T0 + 2,
    )
    report = ingest_records(store, [stool.block, treasure.block, made.block])
    assert report.ok
    with store.read() as txn:
        assert attestations_about(txn, POTTER.did) == [treasure.cid]
        assert attestations_about(txn, WEAVER.did) == [made.cid]
        assert linking_records(txn, stool.cid) == [made.cid]


records_strategy = st.lists(
    st.tuples(
        st.sampled_from([POTTER, WEAVER]), st.integers(0, 20), st.sampled_from(["a", "b", "c"])
    ),
    max_size=12,
)


@given(records_strategy, st.randoms(use_true_random=False))
def test_store_contents_do_not_depend_on_arrival_order(
    specs: list[tuple[PrivateKey, int, str]], rng: Any
) -> None:
    records = [technique(key, title, T0 + dt) for key, dt, title in specs]
    shuffled = list(records)
    rng.shuffle(shuffled)
    one, two = MemoryStore(), MemoryStore()
    ingest_records(one, [r.block for r in records], batch_size=3)
    ingest_records(two, [r.block for r in shuffled] + [r.block for r in records[:2]])
    first, second = snapshot(one), snapshot(two)
    # The change feed logs arrival, so only its set of records is the same.
    feeds = [sorted(value for _, value in s.pop("changes")) for s in (first, second)]
    assert first == second
    assert feeds[0] == feeds[1] and len(feeds[0]) == len({r.cid for r in records})
    with one.read() as txn:
        listed = list_records(txn, limit=MAX_LIMIT).records
    assert [r.ts for r in listed] == sorted((r.ts for r in listed), reverse=True)
    assert {r.cid for r in listed} == {r.cid for r in records}


def test_ingest_refuses_hostile_blocks(store: Store) -> None:
    good = technique(POTTER, "Raku glaze firing", T0)
    photo = Cid.of(b"kiln.jpg")
    unlinked = Record.create(
        POTTER,
        "technique",
        {"title": "Pit firing", "steps": [{"text": "Dig", "media": [photo]}], "licence": "MIT"},
        [],  # the body names a photo the envelope does not link
        ts=T0,
    )
    hostile = [
        b"\x00" * (MAX_RECORD_SIZE + 1),  # over the record size limit
        b"\x5b" + b"\x00\x00\x01\x00\x00\x00\x00\x00",  # claims a 1 TiB byte string
        Record.create(POTTER, "Not A Slug", {}, ts=T0).block,
        unlinked.block,
        codec.encode({**good.unsigned(), "sig": good.sig[:63]}),  # short signature
        codec.encode({**good.unsigned(), "sig": good.sig, "extra": 1}),
        good.block[:-1],  # truncated
        good.block + b"\x00",  # trailing byte
    ]
    report = ingest_records(store, hostile)
    assert report.added == [] and report.duplicates == []
    assert [r.index for r in report.rejected] == list(range(len(hostile)))
    reasons = [r.reason for r in report.rejected]
    assert "limit" in reasons[0]
    assert "slug" in reasons[2]
    assert "links" in reasons[3]
    assert "64 bytes" in reasons[4]
    with store.read() as txn:
        assert count_records(txn) == 0
        assert txn.count("blocks") == 0


def test_unknown_body_fields_are_stored_as_signed(store: Store) -> None:
    body = {"title": "Raku", "steps": ["Fire"], "licence": "MIT", "kiln_atmosphere": "reduction"}
    record = Record.create(POTTER, "technique", build_body_keep(body), ts=T0)
    assert ingest_records(store, [record.block]).ok
    with store.read() as txn:
        stored = get_record(txn, record.cid)
    assert stored.block == record.block
    assert stored.body["kiln_atmosphere"] == "reduction"
    stored.verify()


def build_body_keep(body: dict[str, Any]) -> dict[str, Any]:
    """A body with steps in record form, keeping fields the builder would refuse."""
    return {**body, "steps": [{"text": step, "media": []} for step in body["steps"]]}


@given(length=st.integers(min_value=0, max_value=400_000).filter(lambda n: n != 88))
def test_a_page_cursor_of_any_other_length_is_refused_before_decoding(length: int) -> None:
    # The only cursor a page hands out is 44 bytes in hex (8 of time, 36 of CID).
    with MemoryStore().read() as txn, pytest.raises(QueryError, match="cursor is malformed"):
        list_records(txn, cursor="0" * length)
