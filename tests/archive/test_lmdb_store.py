"""What only the LMDB store does: grow its map, persist, refuse bad folders, serve threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import lmdb
import pytest

from craftnet.archive.errors import StoreError
from craftnet.archive.lmdb_store import FORMAT_KEY, LmdbStore
from craftnet.archive.store import WriteTxn

MiB = 1024 * 1024


def test_map_grows_from_a_tiny_map_while_writing_megabytes(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "s", map_size=64 * 1024)
    try:
        start = store.map_size
        calls = 0

        def fn(txn: WriteTxn) -> None:
            nonlocal calls
            calls += 1
            for i in range(8):
                txn.put("blocks", b"chunk-%d" % i, bytes([i]) * (MiB // 2))

        store.transact(fn)
        assert calls > 1  # ran again after growing
        assert store.map_size > start
        for i in range(20):  # many small transactions across several growths
            store.transact(lambda txn, i=i: txn.put("blocks", b"more-%03d" % i, b"x" * 300_000))
        with store.read() as txn:
            assert txn.count("blocks") == 28
            assert txn.get("blocks", b"chunk-7") == bytes([7]) * (MiB // 2)
    finally:
        store.close()


def test_reopen_keeps_data_and_the_grown_map(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s", map_size=64 * 1024) as store:
        store.transact(lambda txn: txn.put("blocks", b"big", b"\x01" * (3 * MiB)))
    with LmdbStore(tmp_path / "s", map_size=64 * 1024) as store, store.read() as txn:
        assert txn.get("blocks", b"big") == b"\x01" * (3 * MiB)


def test_committed_writes_survive_a_hard_exit(tmp_path: Path) -> None:
    # The child commits, then dies without closing or flushing anything itself.
    child = f"""
import os
from craftnet.archive.lmdb_store import LmdbStore
store = LmdbStore({str(tmp_path / "s")!r})
store.transact(lambda txn: txn.put("pins", b"Human Treasures", b"Living Heritage Program"))
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    with LmdbStore(tmp_path / "s") as store, store.read() as txn:
        assert txn.get("pins", b"Human Treasures") == b"Living Heritage Program"


def test_opening_the_same_store_twice_in_one_process_is_refused(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s"):
        with pytest.raises(StoreError, match="already open in this process"):
            LmdbStore(tmp_path / "s")
        with pytest.raises(StoreError, match="already open"):
            LmdbStore(tmp_path / "." / "s")
    LmdbStore(tmp_path / "s").close()  # free again once closed


def test_a_store_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s") as store:
        store.transact(lambda txn: txn.put("meta", FORMAT_KEY, b"99"))
    with pytest.raises(StoreError, match=r"format version 99.*newer craftnet"):
        LmdbStore(tmp_path / "s")
    LmdbStore(tmp_path / "elsewhere").close()  # the failed open left nothing registered


def test_garbage_format_version_is_refused(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s") as store:
        store.transact(lambda txn: txn.put("meta", FORMAT_KEY, b"\xff"))
    with pytest.raises(StoreError, match="unreadable format version"):
        LmdbStore(tmp_path / "s")


def test_a_new_store_records_its_format_version(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s") as store, store.read() as txn:
        assert txn.get("meta", FORMAT_KEY) == b"1"


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("not a folder")
    with pytest.raises(StoreError, match="not a folder"):
        LmdbStore(tmp_path / "s")
    with pytest.raises(StoreError, match="cannot create the store folder"):
        LmdbStore(tmp_path / "s" / "inner")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError, match="not writable"):
            LmdbStore(folder)
    finally:
        folder.chmod(0o700)


def test_transact_inside_a_transaction_function_is_refused(lmdb_store: LmdbStore) -> None:
    def outer(txn: WriteTxn) -> None:
        lmdb_store.transact(lambda inner: None)

    with pytest.raises(StoreError, match="inside a transaction function"):
        lmdb_store.transact(outer)
    lmdb_store.transact(lambda txn: txn.put("pins", b"still", b"works"))


def test_a_txn_used_after_its_block_is_refused(lmdb_store: LmdbStore) -> None:
    lmdb_store.transact(lambda txn: txn.put("pins", b"a", b"1"))
    with lmdb_store.read() as txn:
        rows = txn.iterate("pins")
    with pytest.raises(StoreError, match="transaction is over"):
        txn.get("pins", b"a")
    with pytest.raises(StoreError):
        list(rows)


def test_growth_while_this_thread_reads_is_an_error_not_a_deadlock(tmp_path: Path) -> None:
    with (
        LmdbStore(tmp_path / "s", map_size=64 * 1024) as store,
        store.read(),
        pytest.raises(StoreError, match="holds a read transaction"),
    ):
        store.transact(lambda txn: txn.put("blocks", b"big", b"x" * (2 * MiB)))


def test_map_full_swallowed_by_fn_still_grows(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s", map_size=64 * 1024) as store:

        def stubborn(txn: WriteTxn) -> None:
            try:
                txn.put("blocks", b"big", b"x" * (2 * MiB))
            except lmdb.MapFullError as exc:
                raise ValueError("hidden") from exc

        store.transact(stubborn)
        with store.read() as txn:
            assert txn.has("blocks", b"big")


def test_readers_and_writers_in_threads_with_map_growth(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "s", map_size=64 * 1024)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(15):
                key = b"w%d-%03d" % (n, i)
                store.transact(lambda txn, key=key: txn.put("blocks", key, b"y" * 100_000))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                with store.read() as txn:
                    keys = [key for key, _ in txn.iterate("blocks")]
                    assert keys == sorted(keys)
                    assert txn.count("blocks") == len(keys)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    for thread in readers:
        thread.join(60)
    try:
        assert errors == []
        with store.read() as txn:
            assert txn.count("blocks") == 45
    finally:
        store.close()


def test_a_failed_write_does_not_wait_for_a_long_reader(lmdb_store: LmdbStore) -> None:
    reading = threading.Event()
    release = threading.Event()

    def long_reader() -> None:  # like a verify or a gc mark in another thread
        with lmdb_store.read():
            reading.set()
            release.wait(30)

    thread = threading.Thread(target=long_reader)
    thread.start()
    try:
        assert reading.wait(10)

        def failing(txn: WriteTxn) -> None:
            txn.put("pins", b"k", b"v")
            raise ValueError("schema check failed")

        with pytest.raises(ValueError):
            lmdb_store.transact(failing)  # returns while the reader still holds on
        assert thread.is_alive()
        with lmdb_store.read() as txn:  # and new readers are not blocked either
            assert not txn.has("pins", b"k")
    finally:
        release.set()
        thread.join(30)


def test_non_durable_commits_still_survive_a_killed_process(tmp_path: Path) -> None:
    child = f"""
import os
from craftnet.archive.lmdb_store import LmdbStore
store = LmdbStore({str(tmp_path / "s")!r})
store.transact(lambda txn: txn.put("blocks", b"chunk", b"x" * 100_000), durable=False)
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    with LmdbStore(tmp_path / "s") as store, store.read() as txn:
        assert txn.get("blocks", b"chunk") == b"x" * 100_000
