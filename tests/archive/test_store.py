"""The Store conformance suite: every store (memory and LMDB) must pass all of it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from craftnet.archive.errors import StoreError
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.store import DATABASES, MAX_KEY_SIZE, Store, WriteTxn, prefix_end


def put_all(store: Store, db: str, items: dict[bytes, bytes]) -> None:
    def fn(txn: WriteTxn) -> None:
        for key, value in items.items():
            txn.put(db, key, value)

    store.transact(fn)


def test_put_get_has_count(store: Store) -> None:
    store.transact(lambda txn: txn.put("pins", b"hub-lisbon", b"Adopt-a-Workshop"))
    with store.read() as txn:
        assert txn.get("pins", b"hub-lisbon") == b"Adopt-a-Workshop"
        assert txn.has("pins", b"hub-lisbon")
        assert not txn.has("pins", b"hub-porto")
        assert txn.get("pins", b"hub-porto") is None
        assert txn.count("pins") == 1
        assert txn.count("blocks") == 0  # databases are separate
        assert txn.get("blocks", b"hub-lisbon") is None


def test_overwrite_and_delete(store: Store) -> None:
    put_all(store, "pins", {b"k": b"one", b"other": b"x"})
    store.transact(lambda txn: txn.put("pins", b"k", b"two"))
    with store.read() as txn:
        assert txn.get("pins", b"k") == b"two"
    assert store.transact(lambda txn: txn.delete("pins", b"k")) is True
    assert store.transact(lambda txn: txn.delete("pins", b"k")) is False
    with store.read() as txn:
        assert txn.count("pins") == 1
        assert not txn.has("pins", b"k")


def test_put_all_writes_a_batch_in_order(store: Store) -> None:
    items = [(b"k2", b"two"), (b"k1", b"one"), (b"k2", b"again"), (b"k3", bytearray(b"3"))]
    store.transact(lambda txn: txn.put_all("pins", items))  # type: ignore[arg-type]
    with store.read() as txn:
        assert list(txn.iterate("pins")) == [(b"k1", b"one"), (b"k2", b"again"), (b"k3", b"3")]
    store.transact(lambda txn: txn.put_all("pins", []))
    bads: list[Any] = [("k", b"v"), (b"", b"v"), (b"k" * (MAX_KEY_SIZE + 1), b"v"), (b"k", 1)]
    for bad in bads:

        def write(txn: WriteTxn, bad: Any = bad) -> None:
            txn.put_all("pins", [(b"ok", b"v"), bad])

        with pytest.raises(StoreError):
            store.transact(write)
    with store.read() as txn:
        assert not txn.has("pins", b"ok")  # the failed batch left nothing
        assert txn.count("pins") == 3


def test_empty_value_is_kept(store: Store) -> None:
    store.transact(lambda txn: txn.put("rec_time", b"\x00\x01", b""))
    with store.read() as txn:
        assert txn.get("rec_time", b"\x00\x01") == b""
        assert txn.has("rec_time", b"\x00\x01")


def test_transact_returns_the_functions_result(store: Store) -> None:
    def fn(txn: WriteTxn) -> int:
        txn.put("pins", b"a", b"1")
        return txn.count("pins")

    assert store.transact(fn) == 1


def test_writes_are_visible_inside_their_transaction(store: Store) -> None:
    def fn(txn: WriteTxn) -> list[bytes]:
        txn.put("pins", b"b", b"2")
        txn.put("pins", b"a", b"1")
        assert txn.get("pins", b"a") == b"1"
        return [key for key, _ in txn.iterate("pins")]

    assert store.transact(fn) == [b"a", b"b"]


KEYS = [b"\x00", b"a", b"ab", b"abc", b"b", b"ba", b"c\xff", b"d", b"\xff", b"\xff\xff"]


@pytest.fixture
def filled(store: Store) -> Store:
    put_all(store, "rec_time", {key: key.hex().encode() for key in KEYS})
    return store


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        (b"", None),
        (b"a", None),
        (b"ab", b"b"),
        (b"aa", b"bb"),
        (b"b", b"b"),
        (b"c", b"a"),
        (b"", b"\x00"),
        (b"\xff", None),
        (b"zz", None),
        (b"a", prefix_end(b"a")),
        (b"c", prefix_end(b"c\xff")),
    ],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_ordered_iteration_with_ranges(
    filled: Store, start: bytes, stop: bytes | None, reverse: bool
) -> None:
    expected = sorted(k for k in KEYS if k >= start and (stop is None or k < stop))
    if reverse:
        expected.reverse()
    with filled.read() as txn:
        got = list(txn.iterate("rec_time", start, stop, reverse=reverse))
    assert got == [(key, key.hex().encode()) for key in expected]


def test_iteration_can_stop_early(filled: Store) -> None:
    with filled.read() as txn:
        first_two = []
        for key, _ in txn.iterate("rec_time", b"a"):
            first_two.append(key)
            if len(first_two) == 2:
                break
        assert first_two == [b"a", b"ab"]
        assert [k for k, _ in txn.iterate("rec_time", reverse=True)][:1] == [b"\xff\xff"]


def test_prefix_end() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None


class Boom(Exception):
    pass


def test_exception_in_fn_leaves_nothing(store: Store) -> None:
    put_all(store, "pins", {b"kept": b"old", b"gone": b"x"})

    def fn(txn: WriteTxn) -> None:
        txn.put("pins", b"kept", b"new")
        txn.put("pins", b"added", b"y")
        txn.delete("pins", b"gone")
        txn.put("blocks", b"other-db", b"z")
        raise Boom("Maker's Fair power cut")

    with pytest.raises(Boom):
        store.transact(fn)
    with store.read() as txn:
        assert dict(txn.iterate("pins")) == {b"kept": b"old", b"gone": b"x"}
        assert txn.count("blocks") == 0


def test_a_read_snapshot_ignores_later_writes(store: Store) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("the memory store's reads see the latest state")
    put_all(store, "pins", {b"a": b"1"})
    with store.read() as txn:
        put_all(store, "pins", {b"b": b"2"})
        assert txn.count("pins") == 1
        assert not txn.has("pins", b"b")
    with store.read() as txn:
        assert txn.count("pins") == 2


def test_unknown_database_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown database 'tools'"):
        store.transact(lambda txn: txn.put("tools", b"k", b"v"))
    with store.read() as txn, pytest.raises(StoreError, match="unknown database"):
        txn.get("tools", b"k")
    with store.read() as txn, pytest.raises(StoreError, match="unknown database"):
        list(txn.iterate("tools"))


@pytest.mark.parametrize("key", ["text", bytearray(b"k"), memoryview(b"k"), 7, None, b""])
def test_bad_keys_are_refused(store: Store, key: Any) -> None:
    with pytest.raises(StoreError, match="keys"):
        store.transact(lambda txn: txn.put("pins", key, b"v"))
    with store.read() as txn:
        with pytest.raises(StoreError, match="keys"):
            txn.get("pins", key)
        with pytest.raises(StoreError, match="keys"):
            txn.has("pins", key)
    with pytest.raises(StoreError, match="keys"):
        store.transact(lambda txn: txn.delete("pins", key))


def test_key_length_limit(store: Store) -> None:
    store.transact(lambda txn: txn.put("pins", b"k" * MAX_KEY_SIZE, b"v"))
    with pytest.raises(StoreError, match=f"1..{MAX_KEY_SIZE} bytes"):
        store.transact(lambda txn: txn.put("pins", b"k" * (MAX_KEY_SIZE + 1), b"v"))


@pytest.mark.parametrize("value", ["text", 1, None, [1, 2]])
def test_non_bytes_values_are_refused(store: Store, value: Any) -> None:
    with pytest.raises(StoreError, match="values are bytes"):
        store.transact(lambda txn: txn.put("pins", b"k", value))


def test_bytes_like_values_are_copied(store: Store) -> None:
    buf = bytearray(b"kiln log")
    store.transact(lambda txn: txn.put("pins", b"a", buf))
    store.transact(lambda txn: txn.put("pins", b"b", memoryview(buf)[:4]))
    buf[:] = b"XXXXXXXX"  # later changes to the buffer do not reach the store
    with store.read() as txn:
        assert txn.get("pins", b"a") == b"kiln log"
        assert txn.get("pins", b"b") == b"kiln"
        assert type(txn.get("pins", b"a")) is bytes


def test_bad_iteration_bounds_are_refused(store: Store) -> None:
    with store.read() as txn, pytest.raises(StoreError, match="bounds"):
        list(txn.iterate("pins", "a"))  # type: ignore[arg-type]


def test_every_declared_database_is_usable(store: Store) -> None:
    def fn(txn: WriteTxn) -> None:
        for name in DATABASES:
            txn.put(name, b"probe:" + name.encode(), name.encode())

    store.transact(fn)
    with store.read() as txn:
        for name in DATABASES:
            assert txn.get(name, b"probe:" + name.encode()) == name.encode()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    for made in (MemoryStore(), LmdbStore(tmp_path / "s")):
        made.close()
        with pytest.raises(StoreError, match="closed"):
            made.transact(lambda txn: None)
        with pytest.raises(StoreError, match="closed"), made.read():
            pass
        made.close()  # closing twice is harmless


class StoreMatchesDict(RuleBasedStateMachine):
    """Random transactions against a store and a dict model must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.stores: list[Store] = [MemoryStore(), LmdbStore(Path(self.tmp.name) / "s")]
        self.model: dict[bytes, bytes] = {}

    keys = st.binary(min_size=1, max_size=6)
    values = st.binary(max_size=40)

    @rule(items=st.dictionaries(keys, values, max_size=5), deletes=st.lists(keys, max_size=3))
    def commit(self, items: dict[bytes, bytes], deletes: list[bytes]) -> None:
        def fn(txn: WriteTxn) -> None:
            for key, value in items.items():
                txn.put("rec_type", key, value)
            for key in deletes:
                txn.delete("rec_type", key)

        for made in self.stores:
            made.transact(fn)
        self.model.update(items)
        for key in deletes:
            self.model.pop(key, None)

    @rule(items=st.dictionaries(keys, values, min_size=1, max_size=5))
    def abort(self, items: dict[bytes, bytes]) -> None:
        def fn(txn: WriteTxn) -> None:
            for key, value in items.items():
                txn.put("rec_type", key, value)
            raise Boom()

        for made in self.stores:
            with pytest.raises(Boom):
                made.transact(fn)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_existing(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        for made in self.stores:
            assert made.transact(lambda txn: txn.delete("rec_type", key)) is True
        del self.model[key]

    @rule(start=keys, stop=st.none() | keys, reverse=st.booleans())
    def scan(self, start: bytes, stop: bytes | None, reverse: bool) -> None:
        expected = sorted(
            (k, v) for k, v in self.model.items() if k >= start and (stop is None or k < stop)
        )
        if reverse:
            expected.reverse()
        for made in self.stores:
            with made.read() as txn:
                assert list(txn.iterate("rec_type", start, stop, reverse=reverse)) == expected

    @invariant()
    def same_contents(self) -> None:
        for made in self.stores:
            with made.read() as txn:
                assert txn.count("rec_type") == len(self.model)
                assert dict(txn.iterate("rec_type")) == self.model

    def teardown(self) -> None:
        for made in self.stores:
            made.close()
        self.tmp.cleanup()


TestStoreMatchesDict = StoreMatchesDict.TestCase
TestStoreMatchesDict.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None
)


def test_non_durable_transactions_are_still_atomic(store: Store) -> None:
    store.transact(lambda txn: txn.put("pins", b"a", b"1"), durable=False)

    def fails(txn: WriteTxn) -> None:
        txn.put("pins", b"b", b"2")
        raise Boom()

    with pytest.raises(Boom):
        store.transact(fails, durable=False)
    with store.read() as txn:
        assert dict(txn.iterate("pins")) == {b"a": b"1"}
