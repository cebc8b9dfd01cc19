"""Documents in a store (memory and LMDB): cached state, persistence, heads, history, blame."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from crdt_helpers import KEYS, START_MS, Alliance, raku_genesis

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import (
    BadOpSignature,
    InvalidOp,
    NotAnEditor,
    OpTooLarge,
    UnknownDocument,
)
from craftnet.archive.crdt.ops import op_record
from craftnet.archive.hlc import HybridClock, pack
from craftnet.archive.index import count_records
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.archive.store import ReadTxn, Store, WriteTxn

T = TypeVar("T")
LISBON, KYOTO, OAXACA = KEYS["lisbon-fablab"], KEYS["kyoto-raku"], KEYS["oaxaca-textiles"]


def clock_at(ms: int) -> HybridClock:
    return HybridClock(lambda: ms)


def new_technique(docs: Documents) -> Cid:
    record = docs.create(
        LISBON,
        "technique",
        lambda b: b.set("title", "Raku glaze firing").add("tags", "raku")
        .append("steps", "Bisque-fire the pot.").append("steps", "Glaze and fire."),
        mode="editors",
        editors=[KYOTO.did],
        clock=clock_at(START_MS),
    )
    return record.cid


def test_create_edit_show_history_blame(store: Store) -> None:
    docs = Documents(store, clock=lambda: START_MS)
    doc = new_technique(docs)
    edit = docs.edit(
        KYOTO, doc, lambda b: b.edit_text("steps", "Bisque-fire the clay pot.", 0)
        .add("tools", "tongs"), clock=clock_at(START_MS + 1000),
    )
    view = docs.view(doc)
    assert view["kind"] == "technique"
    assert view["fields"]["steps"] == ["Bisque-fire the clay pot.", "Glaze and fire."]
    assert view["fields"]["tools"] == ["tongs"]
    assert docs.heads(doc) == [edit.cid]
    assert docs.documents() == [(doc, "technique", LISBON.did)]
    history = docs.history(doc)
    assert [(h.cid, h.status, h.author) for h in history] == [
        (doc, "applied", LISBON.did), (edit.cid, "applied", KYOTO.did)
    ]
    assert "add tongs to tools" in history[1].changes
    blame = docs.blame(doc)
    assert blame["tools"]["members"][0]["added_by"][0]["author"] == KYOTO.did
    assert blame["title"]["op"] == doc
    with store.read() as txn:  # records are indexed like every other record
        assert count_records(txn, type="doc-op") == 1
        assert count_records(txn, type="doc") == 1


def test_unknown_documents_and_non_editors_get_clear_errors(store: Store) -> None:
    docs = Documents(store)
    doc = new_technique(docs)
    nowhere = Cid.of(b"no such document", 0x71)
    with pytest.raises(UnknownDocument, match="no document"):
        docs.view(nowhere)
    with pytest.raises(UnknownDocument):
        docs.state(nowhere)
    with pytest.raises(NotAnEditor, match="no edit rights"):
        docs.edit(OAXACA, doc, lambda b: b.set("title", "Weaving"))


def test_cached_state_equals_a_full_refold_and_survives_reopening(store: Store) -> None:
    alliance = Alliance(3, seed=7)
    for _ in range(150):
        alliance.edit(alliance.rng.randrange(3))
    other = raku_genesis(owner="kyoto-raku")
    records = alliance.sent[:]
    rng = random.Random(3)
    rng.shuffle(records)
    # a tiny cache and frequent snapshots exercise eviction, reload and replay
    docs = Documents(store, cache_size=1, snapshot_min=10, clock=lambda: START_MS)
    while records:
        batch = [records.pop() for _ in range(min(len(records), rng.randint(1, 25)))]
        docs.ingest(batch, verify=False)
        docs.ingest([other], verify=False)  # another document takes the cache slot
    doc = alliance.doc
    state = docs.state(doc)
    refolded = docs.refold(doc)
    alliance.sync_all()
    expected = alliance.replicas[0].encode_state()
    assert state.encode() == refolded.encode() == expected
    assert docs.view_bytes(doc) == refolded.view_bytes()
    assert sorted(docs.heads(doc)) == alliance.replicas[0].heads
    again = Documents(store)  # a new process: snapshot plus log
    assert again.state(doc).encode() == expected
    assert again.view_bytes(doc) == refolded.view_bytes()


class RetryingStore:
    """Runs every transaction function twice, aborting the first run, as LMDB does when
    its map is full; also can make the next transaction fail outright."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.runs = 0

    def read(self) -> AbstractContextManager[ReadTxn]:
        return self.inner.read()

    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        class Abort(Exception):
            pass

        def first(txn: WriteTxn) -> T:
            fn(txn)
            self.runs += 1
            raise Abort

        with contextlib.suppress(Abort):
            self.inner.transact(first)
        return self.inner.transact(fn)

    def close(self) -> None:
        self.inner.close()


def test_a_retried_transaction_does_not_apply_twice(store: Store) -> None:
    retrying = RetryingStore(store)
    docs = Documents(retrying, clock=lambda: START_MS)
    doc = new_technique(docs)
    docs.edit(KYOTO, doc, lambda b: b.append("steps", "Quench in sawdust."),
              clock=clock_at(START_MS + 10))
    assert retrying.runs >= 2
    assert docs.view(doc)["fields"]["steps"] == [
        "Bisque-fire the pot.", "Glaze and fire.", "Quench in sawdust."
    ]
    assert docs.state(doc).encode() == docs.refold(doc).encode()


def test_a_failed_transaction_leaves_no_trace_in_the_cache(store: Store) -> None:
    docs = Documents(store, clock=lambda: START_MS)
    doc = new_technique(docs)
    before = docs.state(doc).encode()
    good = op_record(KYOTO, doc, docs.heads(doc), ChangeBuilder(docs.state(doc))
                     .set("title", "Raku").build(), ts=pack(START_MS + 5))

    def boom(_doc: Cid) -> Any:
        raise RuntimeError("disk on fire")

    real = docs._snapshot
    docs._snapshot = lambda txn, d, cached: boom(d)  # type: ignore[method-assign]
    docs.snapshot_min = 1
    with pytest.raises(RuntimeError):
        docs.ingest([good])
    docs._snapshot = real  # type: ignore[method-assign]
    assert docs.state(doc).encode() == before
    assert docs.status(doc, good.cid) is None
    assert docs.ingest([good])[0].status == "applied"


def test_hostile_operations(store: Store) -> None:
    docs = Documents(store, max_drift_ms=60_000, clock=lambda: START_MS)
    doc = new_technique(docs)
    heads = docs.heads(doc)
    view = docs.view_bytes(doc)
    with store.read() as txn:
        held = txn.count("records")

    def sign(key: Any, changes: list[dict[str, Any]], at: int, parents: list[Cid] = heads
             ) -> Record:
        return op_record(key, doc, parents, changes, ts=pack(START_MS + at))

    tag = ChangeBuilder(None).add("tags", "smoke").build()
    # a bad signature: refused, nothing stored
    good = sign(KYOTO, tag, 10)
    value = good.unsigned()
    value["body"]["changes"] = ChangeBuilder(None).add("tags", "forged").build()
    from craftnet.archive import codec

    forged = Record.from_block(codec.encode({**value, "sig": good.sig}))
    with pytest.raises(BadOpSignature):
        docs.ingest([forged])
    # an oversize operation: refused, nothing stored
    huge = sign(KYOTO, [{"op": "set", "field": "notes", "value": "x" * 5000, "pred": []}], 11)
    with pytest.raises(OpTooLarge):
        docs.ingest([huge])
    with pytest.raises(InvalidOp, match="not a document record"):
        docs.ingest([b"\xa0"])
    with pytest.raises(InvalidOp, match="not a document record"):
        docs.ingest([good.block[:-7]])  # truncated
    with pytest.raises(InvalidOp, match="is not 'doc' or 'doc-op'"):
        docs.ingest([Record.create(KYOTO, "technique", {"title": "x"}, ts=pack(START_MS))])
    with store.read() as txn:
        assert txn.count("records") == held
    assert docs.view_bytes(doc) == view
    # no edit rights: stored, rejected with the reason, state unchanged
    intruder = sign(OAXACA, ChangeBuilder(None).set("title", "Mine").build(), 12)
    assert docs.ingest([intruder])[0].status == "rejected"
    assert docs.view_bytes(doc) == view
    entry = next(h for h in docs.history(doc) if h.cid == intruder.cid)
    assert entry.status == "rejected" and "no edit rights" in entry.reason
    # a parent that never arrives: pending, listed as missing
    ghost = Cid.of(b"never sent", 0x71)
    orphan = sign(KYOTO, tag, 13, [ghost])
    assert docs.ingest([orphan])[0].status == "pending"
    assert docs.missing(doc) == [ghost]
    assert next(h for h in docs.history(doc) if h.cid == orphan.cid).status == "pending"
    # a clock a day ahead: deferred until this hub's clock gets there
    day = 24 * 3600 * 1000
    future = sign(KYOTO, ChangeBuilder(None).set("title", "From the future").build(), day)
    assert docs.ingest([future])[0].status == "deferred"
    assert docs.view_bytes(doc) == view
    assert docs.release(START_MS + 1000) == []
    assert [o.status for o in docs.release(START_MS + day)] == ["applied"]
    assert docs.view(doc)["fields"]["title"] == "From the future"
    assert docs.state(doc).encode() == docs.refold(doc).encode()


def test_pending_operations_survive_a_restart(tmp_path: Path) -> None:
    genesis = raku_genesis()
    first = op_record(LISBON, genesis.cid, [genesis.cid],
                      ChangeBuilder(None).add("tags", "glaze").build(), ts=pack(START_MS + 1))
    second = op_record(KYOTO, genesis.cid, [first.cid],
                       ChangeBuilder(None).add("tags", "smoke").build(), ts=pack(START_MS + 2))
    store = LmdbStore(tmp_path / "hub")
    Documents(store).ingest([genesis, second], now_ms=START_MS)
    store.close()
    store = LmdbStore(tmp_path / "hub")
    docs = Documents(store)
    assert docs.missing(genesis.cid) == [first.cid]
    outcomes = docs.ingest([first], now_ms=START_MS)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert docs.view(genesis.cid)["fields"]["tags"] == ["raku", "glaze", "smoke"]
    assert docs.heads(genesis.cid) == [second.cid]
    store.close()


def test_concurrent_heads_are_kept_for_sync(store: Store) -> None:
    docs = Documents(store, clock=lambda: START_MS)
    doc = new_technique(docs)
    state = docs.state(doc)
    a = op_record(LISBON, doc, [doc], ChangeBuilder(state).add("tags", "a").build(),
                  ts=pack(START_MS + 5))
    b = op_record(KYOTO, doc, [doc], ChangeBuilder(state).add("tags", "b").build(),
                  ts=pack(START_MS + 6))
    docs.ingest([a, b])
    assert docs.heads(doc) == sorted([a.cid, b.cid])
    merge = docs.edit(LISBON, doc, lambda bld: bld.add("tags", "c"), clock=clock_at(START_MS + 9))
    assert merge.links == tuple(sorted([a.cid, b.cid]))
    assert docs.heads(doc) == [merge.cid]


def test_a_damaged_cache_is_an_integrity_error(store: Store) -> None:
    from craftnet.archive.errors import IntegrityError

    docs = Documents(store)
    doc = new_technique(docs)
    for damaged in (b"\x9f\xff", b"\xa3\x64kind"):
        store.transact(lambda txn, d=damaged: txn.put("doc_view", doc.bytes, d))
        with pytest.raises(IntegrityError, match="craftnet doc rebuild"):
            docs.view(doc)
    store.transact(lambda txn: txn.put("doc_state", doc.bytes, b"\xa1"))
    with pytest.raises(IntegrityError, match="craftnet doc rebuild"):
        Documents(store).state(doc)
    fresh = Documents(store)
    fresh.rebuild(doc)
    assert fresh.view(doc)["fields"]["title"] == "Raku glaze firing"
    assert Documents(store).state(doc).encode() == fresh.refold(doc).encode()


def test_a_non_strict_ingest_leaves_bad_records_out_and_takes_the_rest(store: Store) -> None:
    docs = Documents(store, clock=lambda: START_MS)
    doc = new_technique(docs)
    good = op_record(KYOTO, doc, docs.heads(doc), ChangeBuilder(None).add("tags", "smoke")
                     .build(), ts=pack(START_MS + 5))
    huge = op_record(KYOTO, doc, [doc], [{"op": "set", "field": "notes", "value": "x" * 5000,
                                          "pred": []}], ts=pack(START_MS + 6))
    outcomes = docs.ingest([b"\xa0", huge, good], strict=False)
    assert [o.status for o in outcomes] == ["invalid", "invalid", "applied"]
    assert "limit" in outcomes[1].reason and outcomes[1].cid == huge.cid
    assert docs.status(doc, huge.cid) is None
    assert "smoke" in docs.view(doc)["fields"]["tags"]


def test_two_documents_objects_on_one_store_stay_consistent(store: Store) -> None:
    """A web handler and a bundle import may each make their own Documents."""
    web = Documents(store, clock=lambda: START_MS)
    doc = new_technique(web)
    web.state(doc)  # cached here
    Documents(store).edit(KYOTO, doc, lambda b: b.add("tags", "smoke"),
                          clock=clock_at(START_MS + 5))
    web.edit(LISBON, doc, lambda b: b.add("tags", "copper"), clock=clock_at(START_MS + 9))
    assert web.view(doc)["fields"]["tags"] == ["raku", "smoke", "copper"]
    assert web.state(doc).encode() == web.refold(doc).encode()
