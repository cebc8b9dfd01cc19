"""Benchmark: one document with 100,000 operations, applied from empty on one core.

The document is the "Raku glaze firing" technique, edited as hubs really edit: mostly
typing in step descriptions (one to three characters per operation, sometimes at an
earlier position), backspaces, title and region changes, tags added and removed, new
steps and photos. Four hubs take turns on one chain of operations.

Printed, each the median of the runs (run count in brackets):

* parsing the 100,000 operation blocks (DAG-CBOR decode + envelope + op checks);
* the pure fold (:class:`DocState.apply`) of the parsed operations, against the same-run
  baseline of a plain loop updating a dict/list model with the same changes;
* the full store path: :meth:`Documents.ingest` of the records (as the sync layer hands
  them over, parsed from their blocks) on a real :class:`LmdbStore` (op checks, causal
  delivery, record index, log, heads, view, snapshots, durable commits) in transactions
  of 10,000 and of 1,000, without signature checks (target: under 10 s); and the sum with
  parsing the blocks;
* the floor under the 1,000-operation row: the same writes (captured from one more
  ingest) replayed into a bare LMDB environment with raw py-lmdb calls, one durable
  commit per 1,000 operations, as the store commits (data flush, then meta flush);
* signature verification, reported separately (once per op at ingest);
* reading the materialized view afterwards (target: under 5 ms);
* memory: the loaded state of the document against the size of its history.

Run with ``make bench`` or ``pytest -s tests/bench/test_bench_crdt.py``.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.ops import (
    AddMember,
    DeleteText,
    InsertItem,
    InsertText,
    Op,
    RemoveMember,
    SetField,
    genesis_record,
    op_record,
    parse_op,
)
from craftnet.archive.crdt.state import DocState
from craftnet.archive.hlc import pack
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.records import Record
from craftnet.archive.store import DATABASES, WriteTxn
from craftnet.identity.keys import PrivateKey

N_OPS = 100_000
BATCH = 1000
START_MS = 1_780_000_000_000
HUBS = ["lisbon-fablab", "kyoto-raku", "nairobi-makerspace", "oaxaca-textiles"]
KEYS = [PrivateKey.from_seed(h.encode().ljust(32, b"\0")) for h in HUBS]
WORDS = ["clay ", "glaze ", "kiln ", "slowly ", "tongs ", "sawdust ", "copper ", "é", "🔥"]


def _median(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_history(n: int, seed: int = 1) -> list[Record]:
    """The genesis and ``n - 1`` signed operations on one chain."""
    rng = random.Random(seed)
    owner = KEYS[0]
    genesis = genesis_record(
        owner, "technique",
        [{"op": "set", "field": "title", "value": "Raku glaze firing", "pred": []},
         {"op": "insert", "field": "steps", "after": None, "value": "Bisque-fire the pot."}],
        mode="alliance", ts=pack(START_MS),
    )
    records = [genesis]
    doc = genesis.cid
    steps: list[tuple[Cid, int]] = [(doc, 1)]
    chars: dict[tuple[Cid, int], list[list[Any]]] = {
        (doc, 1): [[doc, 1, i] for i in range(len("Bisque-fire the pot."))]
    }
    title_pred: list[list[Any]] = [[doc, 0]]
    tags: dict[str, list[list[Any]]] = {}
    last_media: list[Any] | None = None
    ts = pack(START_MS)
    current = (doc, 1)
    for i in range(1, n):
        ts += 1 << 16  # a millisecond later
        parent = records[-1].cid
        r = rng.random()
        typed = chars[current]
        change: dict[str, Any]
        if r < 0.70:
            text = "".join(rng.choice(WORDS) for _ in range(rng.randint(1, 2)))[:3]
            at = len(typed) if rng.random() < 0.8 else rng.randint(0, len(typed))
            after = typed[at - 1] if at else None
            change = {"op": "insert-text", "field": "steps", "item": list(current),
                      "after": after, "text": text}
            typed[at:at] = [[None, 0, k] for k in range(len(text))]  # ids filled below
        elif r < 0.80 and typed:
            gone = typed.pop(rng.randrange(len(typed)))
            change = {"op": "delete-text", "field": "steps", "item": list(current),
                      "ranges": [[gone[0], gone[1], gone[2], 1]]}
        elif r < 0.86:
            change = {"op": "set", "field": rng.choice(["title", "region"]),
                      "value": rng.choice(["Raku", "Raku glaze firing", "Kyoto raku"]),
                      "pred": title_pred}
        elif r < 0.95:
            tag = rng.choice(["raku", "glaze", "smoke", "copper", "rustic-futurism"])
            if tag in tags and rng.random() < 0.5:
                change = {"op": "remove", "field": "tags", "value": tag, "dots": tags.pop(tag)}
            else:
                change = {"op": "add", "field": "tags", "value": tag}
        elif r < 0.997:
            change = {"op": "insert", "field": "media", "after": last_media,
                      "value": f"photo-{i}.jpg"}
        else:
            after_step = list(steps[-1])
            change = {"op": "insert", "field": "steps", "after": after_step,
                      "value": "A new step: "}
        record = op_record(KEYS[i % len(KEYS)], doc, [parent], [change], ts=ts)
        records.append(record)
        cid = record.cid
        name = change["op"]
        if name == "insert-text":
            for slot in typed:
                if slot[0] is None:
                    slot[0], slot[1] = cid, 0
        elif name == "set":
            title_pred = [[cid, 0]] if change["field"] == "title" else title_pred
        elif name == "add":
            tags.setdefault(change["value"], []).append([cid, 0])
        elif name == "insert" and change["field"] == "media":
            last_media = [cid, 0]
        elif name == "insert":
            steps.append((cid, 0))
            chars[(cid, 0)] = [[cid, 0, k] for k in range(len("A new step: "))]
            current = (cid, 0)
        if rng.random() < 0.02:
            current = rng.choice(steps)
    return records


def baseline(ops: list[Op]) -> dict[str, Any]:
    """A plain dict/list model updated with the same changes (no merge, no ids)."""
    model: dict[str, Any] = {"tags": set(), "media": [], "steps": {}}
    for op in ops:
        for change in op.changes:
            if isinstance(change, SetField):
                model[change.field] = change.value
            elif isinstance(change, AddMember):
                model["tags"].add(change.value)
            elif isinstance(change, RemoveMember):
                model["tags"].discard(change.value)
            elif isinstance(change, InsertItem):
                model["media"].append(change.value)
            elif isinstance(change, InsertText):
                text = model["steps"].setdefault(change.item, [])
                text.append(change.text)
            elif isinstance(change, DeleteText):
                text = model["steps"].setdefault(change.item, [])
                if text:
                    text.pop()
    return model


_FOLDERS: list[str] = []


def _scratch(prefix: str) -> str:
    """A new folder for a store, removed when the test ends (the stores hold a GB)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    _FOLDERS.append(folder)
    return folder


@pytest.fixture(autouse=True)
def _remove_scratch() -> Iterator[None]:
    yield
    while _FOLDERS:
        shutil.rmtree(_FOLDERS.pop(), ignore_errors=True)


class _Recording:
    """A write transaction that notes every put and delete (for the bare-LMDB floor)."""

    def __init__(self, txn: WriteTxn, writes: list[tuple[str, bytes, bytes | None]]) -> None:
        self._txn = txn
        self._writes = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)

    def put(self, db: str, key: bytes, value: bytes) -> None:
        self._writes.append((db, bytes(key), bytes(value)))
        self._txn.put(db, key, value)

    def put_all(self, db: str, items: list[tuple[bytes, bytes]]) -> None:
        self._writes.extend((db, bytes(k), bytes(v)) for k, v in items)
        self._txn.put_all(db, items)

    def delete(self, db: str, key: bytes) -> bool:
        self._writes.append((db, bytes(key), None))
        return bool(self._txn.delete(db, key))


class _Recorder:
    """The store, with the writes of each committed transaction noted."""

    def __init__(self, store: LmdbStore) -> None:
        self.store = store
        self.txns: list[list[tuple[str, bytes, bytes | None]]] = []

    def read(self) -> Any:
        return self.store.read()

    def transact(self, fn: Callable[[Any], Any], **kw: Any) -> Any:
        writes: list[tuple[str, bytes, bytes | None]] = []

        def run(txn: WriteTxn) -> Any:
            writes.clear()  # a transaction run again keeps its last run's writes
            return fn(_Recording(txn, writes))

        result = self.store.transact(run, **kw)
        self.txns.append(list(writes))
        return result


def bare_lmdb(txns: list[list[tuple[str, bytes, bytes | None]]]) -> tuple[float, float]:
    """Replay ``txns`` into a new LMDB environment, each a durable commit as LmdbStore
    makes them; return (total seconds, seconds in commit and flush)."""
    import lmdb

    folder = _scratch("crdt-bench-bare-")
    env = lmdb.open(folder, map_size=64 * 2**30, sync=True, metasync=False,
                    max_dbs=len(DATABASES) + 16)
    with env.begin(write=True) as txn:
        dbs = {name: env.open_db(name.encode(), txn=txn, create=True) for name in DATABASES}
    gc.collect()
    start = time.perf_counter()
    committing = 0.0
    for writes in txns:
        txn = env.begin(write=True)
        for db, key, value in writes:
            if value is None:
                txn.delete(key, db=dbs[db])
            else:
                txn.put(key, value, db=dbs[db])
        at = time.perf_counter()
        txn.commit()
        env.sync(True)
        committing += time.perf_counter() - at
    total = time.perf_counter() - start
    env.close()
    return total, committing


def fold(ops: list[Op]) -> DocState:
    state = DocState.from_genesis(ops[0])
    for op in ops[1:]:
        state.apply(op)
    return state


def test_bench_crdt_100k_ops() -> None:
    build = time.perf_counter()
    records = make_history(N_OPS)
    build = time.perf_counter() - build
    blocks = [r.block for r in records]
    doc = records[0].cid
    history_bytes = sum(len(b) for b in blocks)
    print(f"\n[crdt] {N_OPS:,} operations on one document ({history_bytes / 1e6:.1f} MB of "
          f"signed records; generated and signed in {build:.1f} s)")

    t_parse, parsed = _median(lambda: [Record.from_block(b) for b in blocks], 3)
    print(f"[crdt] parse record blocks        {t_parse:7.2f} s  ({t_parse / N_OPS * 1e6:.1f} "
          "µs/op: strict DAG-CBOR and envelope, as for every record; once, at ingest) [3]")
    t_ops, ops = _median(lambda: [parse_op(r) for r in parsed], 3)
    print(f"[crdt] check op bodies (parse_op) {t_ops:7.2f} s  ({t_ops / N_OPS * 1e6:.1f} "
          "µs/op; part of Documents.ingest below) [3]")

    t_base, _ = _median(lambda: baseline(ops), 3)
    t_fold, state = _median(lambda: fold(ops), 3)
    print(f"[crdt] baseline dict/list loop    {t_base:7.3f} s  "
          f"({t_base / N_OPS * 1e6:.2f} µs/op) [3]")
    print(f"[crdt] pure CRDT fold (DocState)  {t_fold:7.3f} s  "
          f"({t_fold / N_OPS * 1e6:.2f} µs/op; {t_fold / t_base:.1f}x baseline) [3]")

    def ingest_all(batch: int) -> tuple[Documents, LmdbStore]:
        folder = _scratch("crdt-bench-")
        store = LmdbStore(Path(folder) / "store")
        docs = Documents(store, clock=lambda: START_MS + N_OPS)
        for start in range(0, len(parsed), batch):
            docs.ingest(parsed[start : start + batch], verify=False)
        return docs, store

    for batch in (10 * BATCH, BATCH):
        runs = []
        for _ in range(2):
            gc.collect()
            start = time.perf_counter()
            docs, store = ingest_all(batch)
            runs.append(time.perf_counter() - start)
            if batch != BATCH or len(runs) < 2:
                store.close()
        t_ingest = statistics.median(runs)
        print(f"[crdt] Documents.ingest, LMDB     {t_ingest:7.2f} s  "
              f"({t_ingest / N_OPS * 1e6:.1f} µs/op; target < 10 s; {t_ingest / t_base:.0f}x "
              f"baseline; {N_OPS // batch} durable transactions of {batch:,}; no signature "
              "checks) [2]")
    recorder = _Recorder(LmdbStore(Path(_scratch("crdt-bench-")) / "store"))
    recording = Documents(recorder, clock=lambda: START_MS + N_OPS)  # type: ignore[arg-type]
    for start in range(0, len(parsed), BATCH):
        recording.ingest(parsed[start : start + BATCH], verify=False)
    recorder.store.close()
    t_bare, t_commit = bare_lmdb(recorder.txns)
    n_writes = sum(len(w) for w in recorder.txns)
    print(f"[crdt] the same writes, bare LMDB {t_bare:7.2f} s  ({n_writes:,} puts and deletes "
          f"in {len(recorder.txns)} durable commits, {t_commit:.2f} s of it committing: "
          f"the floor under the row above; load {os.getloadavg()[0]:.1f}) [1]")
    t_both = t_parse + t_ingest
    print(f"[crdt] blocks -> applied, LMDB    {t_both:7.2f} s  (parse + ingest above, "
          f"batches of {BATCH:,}, still without signature checks)")

    sample = records[:5000]
    t_verify, _ = _median(lambda: [r.verify() for r in sample], 3)
    per = t_verify / len(sample)
    print(f"[crdt] signature checks           {per * 1e6:7.1f} µs/op -> {per * N_OPS:.1f} s for "
          f"{N_OPS:,} ops (measured on {len(sample):,}; done once, at ingest) [3]")

    reads = []
    for _ in range(201):
        start = time.perf_counter()
        view = docs.view(doc)
        reads.append(time.perf_counter() - start)
    t_read = statistics.median(reads)
    print(f"[crdt] read materialized view     {t_read * 1e3:7.3f} ms (target < 5 ms; "
          f"{len(docs.view_bytes(doc)):,} bytes, {len(view['fields']['steps'])} steps) [201]")
    assert view == state.view()
    assert docs.state(doc).encode() == state.encode()

    # memory: a fresh process-like load of the document (snapshot + log tail)
    fresh = Documents(store)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loaded = fresh.state(doc)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"[crdt] memory of the loaded state {held / 1e6:7.1f} MB for {N_OPS:,} ops "
          f"(history on disk {history_bytes / 1e6:.1f} MB, not held; state encodes to "
          f"{len(loaded.encode()) / 1e6:.1f} MB)")
    t_refold, refolded = _median(lambda: fresh.refold(doc), 1)
    print(f"[crdt] full refold from the log   {t_refold:7.2f} s  (same bytes: "
          f"{refolded.encode() == loaded.encode()}) [1]")
    store.close()
