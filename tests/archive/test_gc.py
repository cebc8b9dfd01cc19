"""Garbage collection keeps what pins, records and unfinished adds reach, and nothing else."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from craftnet.archive import codec
from craftnet.archive.blocks import has_block, pin, put_raw, unpin
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.files import FileInfo, add_file, iter_file
from craftnet.archive.gc import collect_garbage, links_of
from craftnet.archive.index import put_record
from craftnet.archive.records import Record
from craftnet.archive.store import ReadTxn, Store, WriteTxn
from craftnet.identity.keys import PrivateKey

T = TypeVar("T")
MiB = 1024 * 1024


def add(store: Store, size: int, seed: int, *, pin_it: bool = True) -> FileInfo:
    data = random.Random(seed).randbytes(size)
    return add_file(store, io.BytesIO(data), name=f"design-{seed}.stl", pin_it=pin_it)


def blocks_of(info: FileInfo) -> set[Cid]:
    return {info.cid, *(ref.cid for ref in info.chunks)}


def present(store: Store, cids: set[Cid]) -> bool:
    with store.read() as txn:
        return all(has_block(txn, cid) for cid in cids)


def absent(store: Store, cids: set[Cid]) -> bool:
    with store.read() as txn:
        return not any(has_block(txn, cid) for cid in cids)


def test_pinned_files_stay_and_unpinned_go(store: Store) -> None:
    kept = add(store, 2 * MiB, seed=1)
    dropped = add(store, 2 * MiB, seed=2)
    store.transact(lambda txn: unpin(txn, dropped.cid))
    report = collect_garbage(store)
    assert report.removed == len(blocks_of(dropped))
    assert report.bytes_freed > 2 * MiB
    assert report.reachable == len(blocks_of(kept))
    assert present(store, blocks_of(kept))
    assert absent(store, blocks_of(dropped))
    assert sum(map(len, iter_file(store, kept.cid))) == kept.size
    assert collect_garbage(store).removed == 0  # a second run finds nothing more


def test_records_keep_what_they_link(store: Store) -> None:
    photo = add(store, MiB, seed=3, pin_it=False)
    key = PrivateKey.generate()
    record = Record.create(
        key, "design", {"title": "Adopt-a-Workshop tool wall"}, links=[photo.cid], ts=1
    )
    store.transact(lambda txn: put_record(txn, record))
    loose = store.transact(lambda txn: put_raw(txn, b"an orphan sketch"))
    report = collect_garbage(store)
    assert report.removed == 1
    assert present(store, blocks_of(photo) | {record.cid})
    assert absent(store, {loose})


def test_links_anywhere_in_a_block_count(store: Store) -> None:
    leaf = store.transact(lambda txn: put_raw(txn, b"leaf"))
    deep = {"a": [{"b": {"c": [leaf]}}]}
    node = codec.encode(deep)
    cid = Cid.of(node, DAG_CBOR)
    store.transact(lambda txn: txn.put("blocks", cid.bytes, node))
    store.transact(lambda txn: pin(txn, cid, "deep"))
    assert list(links_of(node)) == [leaf]
    assert collect_garbage(store).removed == 0
    assert list(links_of(b"\xff not cbor")) == []


def test_unfinished_adds_are_kept_until_stale(store: Store) -> None:
    chunk = Cid.of(b"part of an add in progress")

    def stage(txn: WriteTxn) -> None:
        from craftnet.archive.files import stage_blocks

        txn.put("blocks", chunk.bytes, b"part of an add in progress")
        stage_blocks(txn, b"S" * 8, [chunk.bytes])

    store.transact(stage)
    with store.read() as txn:
        touched = int.from_bytes(txn.get("staging", b"h" + b"S" * 8) or b"", "big")
    assert collect_garbage(store, now=touched + 60).removed == 0
    report = collect_garbage(store, now=touched + 2 * 24 * 3600)
    assert report.stale_stages == 1
    assert report.removed == 1
    with store.read() as txn:
        assert txn.count("staging") == 0


class HookedStore:
    """A real store that runs ``hook`` once, just before the first write transaction."""

    def __init__(self, inner: Store, hook: Callable[[], None]) -> None:
        self.inner = inner
        self.hook: Callable[[], None] | None = hook

    def read(self) -> AbstractContextManager[ReadTxn]:
        return self.inner.read()

    def transact(self, fn: Callable[[WriteTxn], T], *, durable: bool = True) -> T:
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return self.inner.transact(fn, durable=durable)

    def close(self) -> None:
        self.inner.close()


def test_blocks_added_during_gc_survive(store: Store) -> None:
    orphan = store.transact(lambda txn: put_raw(txn, b"orphan"))
    late: list[FileInfo] = []
    hooked = HookedStore(store, lambda: late.append(add(store, MiB, seed=4, pin_it=False)))
    report = collect_garbage(hooked)
    assert report.removed == 1 and absent(store, {orphan})
    # The late file is unpinned, but it was not in the mark snapshot: not touched now.
    assert present(store, blocks_of(late[0]))


def test_a_file_pinned_again_during_gc_keeps_its_chunks(store: Store) -> None:
    info = add(store, 3 * MiB, seed=5)
    store.transact(lambda txn: unpin(txn, info.cid))
    hooked = HookedStore(store, lambda: store.transact(lambda txn: pin(txn, info.cid, "back")))
    report = collect_garbage(hooked, batch=2)  # small sweeps: the node is checked first
    assert report.removed == 0
    assert report.kept_late == len(blocks_of(info))
    assert present(store, blocks_of(info))


def test_a_record_linking_a_candidate_during_gc_keeps_it(store: Store) -> None:
    info = add(store, MiB, seed=6, pin_it=False)
    key = PrivateKey.generate()
    record = Record.create(key, "design", {"title": "Maker's Fair loom"}, links=[info.cid], ts=2)
    hooked = HookedStore(store, lambda: store.transact(lambda txn: put_record(txn, record)))
    assert collect_garbage(hooked).removed == 0
    assert present(store, blocks_of(info))

