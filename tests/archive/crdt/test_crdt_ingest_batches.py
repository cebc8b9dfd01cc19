"""Documents.ingest in transactions of many operations, on a real LMDB store.

The records of a transaction are written together at its end (``put_in_turn``): these
tests hold that the store ends up with exactly what one operation per transaction
stores, that every read right after an ingest sees all of it, and that other
:class:`Documents` objects, a reopened store and hostile inputs see the same.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from crdt_helpers import KEYS, START_MS, Alliance, raku_genesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from craftnet.archive.changes import changes_after
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.causal import Replica
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import UnknownDocument
from craftnet.archive.crdt.ops import genesis_record, op_record
from craftnet.archive.hlc import pack
from craftnet.archive.index import RECON_INDEX
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.archive.store import DATABASES, Store

KYOTO = KEYS["kyoto-raku"]

# Which databases hold what a transaction wrote in a way that does not depend on how
# the operations were cut into transactions. ``doc_state`` does: a snapshot is taken at
# the end of a transaction once the log has grown enough since the last one.
SAME_WHATEVER_THE_BATCHES = [db for db in DATABASES if db != "doc_state"]


def history(edits: int, seed: int) -> list[Record]:
    """A document edited by three hubs, each seeing only some of the others' edits."""
    alliance = Alliance(3, seed=seed)
    for n in range(edits):
        alliance.edit(alliance.rng.randrange(3))
        if n % 40 == 39:
            alliance.sync_all()
    return alliance.sent


def dump(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every key and value of every database but the snapshots."""
    with store.read() as txn:
        return {
            db: [(bytes(k), bytes(v)) for k, v in txn.iterate(db)]
            for db in SAME_WHATEVER_THE_BATCHES
        }


def cut(records: list[Record], sizes: list[int]) -> list[list[Record]]:
    """``records`` cut into consecutive batches of the given sizes (the rest: one batch)."""
    out, at = [], 0
    for size in sizes:
        if at >= len(records):
            break
        out.append(records[at : at + size])
        at += size
    if at < len(records):
        out.append(records[at:])
    return out


def test_batched_ingest_stores_what_one_operation_per_transaction_stores(
    tmp_path: Path,
) -> None:
    """Out of order (so operations wait for parents in the same and in later
    transactions), with duplicates inside a batch and across batches; more records
    than two reconcile chunks, so the index splits chunks midway through batches."""
    records = history(260, seed=5)
    rng = random.Random(11)
    shuffled = records[:]
    rng.shuffle(shuffled)
    shuffled[40:40] = shuffled[10:14]  # sent again in a later batch
    shuffled[100:100] = [shuffled[99]]  # twice in a row, in one batch
    one = LmdbStore(tmp_path / "one-per-transaction")
    many = LmdbStore(tmp_path / "batched")
    single = Documents(one, clock=lambda: START_MS)
    batched = Documents(many, clock=lambda: START_MS)
    outcomes_one = [o for r in shuffled for o in single.ingest([r], verify=False)]
    outcomes_many = [
        o
        for batch in cut(shuffled, [rng.randint(1, 80) for _ in range(20)])
        for o in batched.ingest(batch, verify=False)
    ]
    assert sorted(outcomes_one, key=repr) == sorted(outcomes_many, key=repr)
    assert sum(o.status == "duplicate" for o in outcomes_many) == 5
    assert dump(one) == dump(many)
    doc = records[0].cid
    assert batched.state(doc).encode() == single.state(doc).encode() == batched.refold(doc).encode()
    with many.read() as txn:
        assert RECON_INDEX.problems(txn) == []
        assert txn.count("records") == len(records)
        fed = [c.cid for c in changes_after(txn, 0).changes]
    assert sorted(fed) == sorted(r.cid for r in records) and len(fed) == len(set(fed))
    one.close()
    many.close()


def test_a_view_read_right_after_each_small_ingest_is_the_fold_so_far(tmp_path: Path) -> None:
    records = history(120, seed=2)
    store = LmdbStore(tmp_path / "hub")
    writer = Documents(store, clock=lambda: START_MS, snapshot_min=7)
    reader = Documents(store)  # another part of the hub, e.g. the web UI
    doc = records[0].cid
    folded = Replica(doc)
    rng = random.Random(4)
    at = 0
    while at < len(records):
        batch = records[at : at + rng.randint(1, 6)]
        at += len(batch)
        writer.ingest(batch, verify=False)
        for record in batch:
            folded.receive(record, verify=False)
        state = folded.state()
        assert state is not None
        expected = state.view()
        assert writer.view(doc) == reader.view(doc) == expected
        assert writer.view_bytes(doc) == state.view_bytes()
        assert reader.state(doc).encode() == folded.encode_state()
    store.close()


def test_a_waiting_operation_is_applied_when_its_parent_comes_later_in_the_same_batch(
    tmp_path: Path,
) -> None:
    genesis = raku_genesis()
    rest: list[Record] = []
    for n in range(5):  # a chain: each operation the parent of the next
        parent = rest[-1].cid if rest else genesis.cid
        rest.append(op_record(KYOTO, genesis.cid, [parent],
                              ChangeBuilder(None).add("tags", f"smoke-{n}").build(),
                              ts=pack(START_MS + 10 * (n + 1))))
    store = LmdbStore(tmp_path / "hub")
    docs = Documents(store, clock=lambda: START_MS)
    docs.ingest([genesis], verify=False)
    backwards = rest[::-1]  # every operation before its parent
    outcomes = docs.ingest(backwards, verify=False)
    assert [o.status for o in outcomes[: len(rest) - 1]] == ["pending"] * (len(rest) - 1)
    assert sorted(o.cid for o in outcomes if o.status == "applied") == sorted(r.cid for r in rest)
    assert docs.missing(genesis.cid) == []
    with store.read() as txn:
        assert txn.count("doc_wait") == 0
        for record in rest:  # stored, and indexed, though they waited
            assert txn.get("blocks", record.cid.bytes) == record.block
    assert docs.history(genesis.cid)[-1].cid == rest[-1].cid
    assert docs.heads(genesis.cid) == [rest[-1].cid]
    assert docs.view(genesis.cid)["fields"]["tags"][-1] == "smoke-4"
    store.close()


def test_an_operation_whose_parent_never_comes_is_stored_and_waits_across_reopening(
    tmp_path: Path,
) -> None:
    records = history(5, seed=3)
    doc = records[0].cid
    ghost = Cid.of(b"a parent this hub never gets", 0x71)
    orphan = op_record(KYOTO, doc, [ghost], ChangeBuilder(None).add("tags", "smoke").build(),
                       ts=pack(START_MS + 100_000))
    store = LmdbStore(tmp_path / "hub")
    docs = Documents(store, clock=lambda: START_MS)
    outcomes = docs.ingest([*records, orphan, orphan], verify=False)
    assert [o.status for o in outcomes[-2:]] == ["pending", "duplicate"]
    view = docs.view_bytes(doc)
    store.close()
    store = LmdbStore(tmp_path / "hub")
    again = Documents(store, clock=lambda: START_MS)
    assert again.missing(doc) == [ghost]
    assert again.view_bytes(doc) == view
    assert again.ingest([orphan], verify=False)[0].status == "duplicate"
    with store.read() as txn:
        assert txn.get("blocks", orphan.cid.bytes) == orphan.block
    store.close()


def test_two_documents_objects_and_a_reopened_store_see_the_same_bytes(tmp_path: Path) -> None:
    records = history(90, seed=8)
    doc = records[0].cid
    store = LmdbStore(tmp_path / "hub")
    first = Documents(store, clock=lambda: START_MS, snapshot_min=10)
    second = Documents(store, clock=lambda: START_MS, snapshot_min=10)
    first.ingest(records[:30], verify=False)
    assert second.view_bytes(doc) == first.view_bytes(doc)
    assert second.state(doc).encode() == first.state(doc).encode()
    second.ingest(records[30:60], verify=False)  # first's cached state is now stale
    first.ingest(records[60:], verify=False)
    state, view = first.state(doc).encode(), first.view_bytes(doc)
    assert state == second.state(doc).encode() == first.refold(doc).encode()
    assert view == second.view_bytes(doc) == first.refold(doc).view_bytes()
    store.close()
    store = LmdbStore(tmp_path / "hub")
    reopened = Documents(store)
    assert reopened.view_bytes(doc) == view
    assert reopened.state(doc).encode() == state
    store.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_merge_results_do_not_depend_on_the_batches(seed: int, sizes: list[int]) -> None:
    """Any order of arrival, cut into any transactions: the state and view are those of
    the in-memory fold of all operations, and the stored entries those of one operation
    per transaction."""
    records = history(70, seed=seed % 7)
    order = records[:]
    random.Random(seed).shuffle(order)
    expected = Replica(records[0].cid)
    for record in records:
        expected.receive(record, verify=False)
    state = expected.state()
    assert state is not None
    with tempfile.TemporaryDirectory(prefix="crdt-batches-") as folder:
        one = LmdbStore(Path(folder) / "one")
        many = LmdbStore(Path(folder) / "many")
        single = Documents(one, clock=lambda: START_MS)
        batched = Documents(many, clock=lambda: START_MS, snapshot_min=5)
        for record in order:
            single.ingest([record], verify=False)
        for batch in cut(order, sizes):
            batched.ingest(batch, verify=False)
        doc = records[0].cid
        assert batched.state(doc).encode() == expected.encode_state()
        assert batched.view_bytes(doc) == state.view_bytes()
        assert dump(many) == dump(one)
        one.close()
        many.close()


def test_a_rejected_genesis_and_its_operations_are_recorded_as_rejected(tmp_path: Path) -> None:
    """No state is started, yet every status is written at the end of the transaction."""
    bad = genesis_record(
        KYOTO, "technique",
        [{"op": "insert-text", "field": "description", "item": None, "after": None,
          "text": "ab"},
         {"op": "insert-text", "field": "description", "item": None, "after": [0, 5],
          "text": "x"}],  # after a character change 0 did not make
        ts=pack(START_MS),
    )
    edit = op_record(KYOTO, bad.cid, [bad.cid], ChangeBuilder(None).add("tags", "x").build(),
                     ts=pack(START_MS + 1))
    store = LmdbStore(tmp_path / "hub")
    docs = Documents(store, clock=lambda: START_MS)
    outcomes = docs.ingest([edit, bad], verify=False)
    assert [o.status for o in outcomes] == ["pending", "rejected", "rejected"]
    assert "genesis was rejected" in outcomes[2].reason
    store.close()
    store = LmdbStore(tmp_path / "hub")
    again = Documents(store)
    for record in (bad, edit):
        status = again.status(bad.cid, record.cid)
        assert status is not None and status.state == "rejected"
    with pytest.raises(UnknownDocument):
        again.view(bad.cid)
    with store.read() as txn:
        assert txn.count("doc_heads") == txn.count("doc_log") == txn.count("doc_wait") == 0
        assert txn.get("blocks", edit.cid.bytes) == edit.block
    store.close()


def test_operations_of_several_documents_in_one_batch(tmp_path: Path) -> None:
    """Records of three documents interleaved in each transaction: each document gets
    its own ledger, the records go in in the order received, and the store holds what
    one operation per transaction stores."""
    histories = []
    for seed, owner in enumerate(("lisbon-fablab", "kyoto-raku", "oaxaca-textiles")):
        alliance = Alliance(3, seed=seed, genesis=raku_genesis(owner=owner))
        for _ in range(60):
            alliance.edit(alliance.rng.randrange(3))
        histories.append(alliance.sent)
    mixed = [record for group in zip(*histories, strict=True) for record in group]
    one = LmdbStore(tmp_path / "one")
    many = LmdbStore(tmp_path / "many")
    single = Documents(one, clock=lambda: START_MS)
    batched = Documents(many, clock=lambda: START_MS, cache_size=2)  # one is evicted
    for record in mixed:
        single.ingest([record], verify=False)
    for start in range(0, len(mixed), 25):
        batched.ingest(mixed[start : start + 25], verify=False)
    assert dump(one) == dump(many)
    assert sorted(doc for doc, _kind, _owner in batched.documents()) == sorted(
        h[0].cid for h in histories
    )
    for h in histories:
        assert batched.state(h[0].cid).encode() == batched.refold(h[0].cid).encode()
    one.close()
    many.close()
