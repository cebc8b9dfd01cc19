"""An in-memory :class:`~craftnet.archive.store.Store`, for tests and simulations of many hubs."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from craftnet.archive.errors import StoreError
from craftnet.archive.store import DATABASES, ReadTxn, WriteTxn, check_key

T = TypeVar("T")
_DELETED = object()


class _Table:
    """One database: a dict for lookups and a sorted key list for ordered scans."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.keys: list[bytes] = []

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self.values:
            bisect.insort(self.keys, key)
        self.values[key] = value

    def delete(self, key: bytes) -> None:
        if self.values.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]


def _check(db: str) -> None:
    if db not in DATABASES:
        raise StoreError(f"unknown database {db!r}; declare it in archive.store.DATABASES")



class _MemoryRead:
    def __init__(self, tables: dict[str, _Table]) -> None:
        self._tables = tables

    def get(self, db: str, key: bytes) -> bytes | None:
        _check(db)
        return self._tables[db].values.get(check_key(key))

    def has(self, db: str, key: bytes) -> bool:
        _check(db)
        return check_key(key) in self._tables[db].values

    def iterate(
        self, db: str, start: bytes = b"", stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        _check(db)
        if type(start) is not bytes or (stop is not None and type(stop) is not bytes):
            raise StoreError("iteration bounds are bytes")
        table = self._tables[db]
        lo = bisect.bisect_left(table.keys, start)
        hi = len(table.keys) if stop is None else bisect.bisect_left(table.keys, stop)
        keys = table.keys[lo:hi]  # a copy, so writes during iteration are safe
        if reverse:
            keys.reverse()
        values = table.values
        for key in keys:
            value = values.get(key)
            if value is not None:
                yield key, value

    def count(self, db: str) -> int:
        _check(db)
        return len(self._tables[db].values)


class _MemoryWrite(_MemoryRead):
    """Writes go to an undo log, so a failing transaction function leaves no trace."""

    def __init__(self, tables: dict[str, _Table]) -> None:
        super().__init__(tables)
        self.undo: list[tuple[str, bytes, object]] = []

    def put(self, db: str, key: bytes, value: bytes | bytearray | memoryview) -> None:
        _check(db)
        check_key(key)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise StoreError(f"store values are bytes, got {type(value).__name__}")
        value = bytes(value)  # a private copy, as the LMDB store makes
        table = self._tables[db]
        self.undo.append((db, key, table.values.get(key, _DELETED)))
        table.put(key, value)

    def put_all(self, db: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.put(db, key, value)

    def delete(self, db: str, key: bytes) -> bool:
        _check(db)
        table = self._tables[db]
        old = table.values.get(check_key(key))
        if old is None:
            return False
        self.undo.append((db, key, old))
        table.delete(key)
        return True

    def rollback(self) -> None:
        for db, key, old in reversed(self.undo):
            table = self._tables[db]
            if old is _DELETED:
                table.delete(key)
            else:
                assert isinstance(old, bytes)
                table.put(key, old)
        self.undo.clear()


class MemoryStore:
    """A store held in dictionaries; transactions are atomic, nothing is durable."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] | None = {name: _Table() for name in DATABASES}

    def _live(self) -> dict[str, _Table]:
        if self._tables is None:
            raise StoreError("the store is closed")
        return self._tables

    @contextmanager
    def read(self) -> Iterator[ReadTxn]:
        """Open a read view (memory reads see the latest committed state)."""
        yield _MemoryRead(self._live())

    def transact(self, fn: Callable[[WriteTxn], T], *, durable: bool = True) -> T:
        """Run ``fn`` atomically: on any exception every write it made is undone."""
        txn = _MemoryWrite(self._live())
        try:
            return fn(txn)
        except BaseException:
            txn.rollback()
            raise

    def close(self) -> None:
        """Drop the data."""
        self._tables = None
