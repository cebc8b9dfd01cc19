"""The LMDB :class:`~craftnet.archive.store.Store`: one environment, a named database each.

LMDB gives us what the archive needs from a disk store: transactions that are whole or
absent after a crash (copy-on-write B+trees, no log to replay), readers that never block
the writer (each read is a snapshot), and ordered keys for range scans.

Two LMDB rules shape this module:

* the memory map has a fixed size. We start large (it is only address space; the file
  grows with the data) and when a write still does not fit (``MapFullError``) we abort
  it, grow the map and run the transaction function again, so callers never see it;
* the map may only be resized while this process has no transaction open, so every
  transaction passes a gate (a readers-writer lock) that growth closes exclusively.

Write transactions are serialised by a lock of our own, and run and commit on the
calling thread (LMDB ties a write transaction to its thread). Read transactions may be
opened from any thread (py-lmdb always uses ``MDB_NOTLS``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Final, TypeVar, cast

import lmdb

from craftnet.archive.errors import StoreError
from craftnet.archive.store import (
    DATABASES,
    MAX_KEY_SIZE,
    ReadTxn,
    ViewTxn,
    WriteTxn,
    check_key,
)

T = TypeVar("T")

FORMAT_VERSION: Final = 1
FORMAT_KEY: Final = b"format_version"
# Address space is cheap on 64-bit: a big map means growth (which must wait for all
# readers) almost never happens. The file on disk only holds what is written.
DEFAULT_MAP_SIZE: Final = 64 * 2**30 if sys.maxsize > 2**32 else 512 * 2**20
_SPARE_DBS: Final = 16
_ALONE_WAIT: Final = 0.05  # seconds a failed write waits for readers to pause
_MAX_READERS: Final = 1024

# glibc malloc settings for LMDB's dirty pages (see _tune_malloc).
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_malloc_tuned = False

_open_paths: dict[str, LmdbStore] = {}
_open_paths_lock = threading.Lock()


def _tune_malloc() -> None:
    """Let glibc serve LMDB's page buffers from the heap instead of fresh mmaps.

    Without MDB_WRITEMAP, LMDB mallocs every dirty page of a transaction; a 256 KiB
    chunk is an allocation above glibc's mmap threshold, so each one was a new mapping
    to fault in and unmap again: 130,000 page faults and most of the CPU time of
    writing 512 MiB. With a 4 MiB threshold and 64 MiB kept at the top of the heap,
    the same writes took 17 faults and half the system time. Process-wide, once; a
    no-op where there is no glibc.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 4 * 2**20)
    mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


class _Gate:
    """A readers-writer lock: transactions share it, map growth takes it alone.

    A thread that already holds the gate may enter again even while growth waits
    (so nested reads cannot deadlock); growth refuses to wait for its own thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._growing = False
        self._local = threading.local()

    def held_here(self) -> int:
        return int(getattr(self._local, "held", 0))

    def enter(self) -> None:
        held = self.held_here()
        with self._cond:
            if held == 0:
                while self._growing:
                    self._cond.wait()
            self._active += 1
        self._local.held = held + 1

    def leave(self) -> None:
        self._local.held = self.held_here() - 1
        with self._cond:
            self._active -= 1
            if self._growing:
                self._cond.notify_all()

    def exclusive(self, action: Callable[[], None]) -> None:
        """Run ``action`` with no transaction open in this process (to remap the map)."""
        if self.held_here():
            raise StoreError(
                "the store's map must grow, but this thread still holds a read "
                "transaction; finish reading before writing (do not call transact() "
                "inside `with store.read()`)"
            )
        with self._cond:
            while self._growing:
                self._cond.wait()
            self._growing = True
            try:
                while self._active:
                    self._cond.wait()
                action()
            finally:
                self._growing = False
                self._cond.notify_all()

    def alone(self, action: Callable[[], None]) -> None:
        """Run ``action`` while only this thread's own transactions are open.

        py-lmdb 3.0 was measured to stall aborting a write transaction for up to
        seconds while other threads keep reading; pausing new readers for the
        moment of the abort avoids that.
        """
        own = self.held_here()
        with self._cond:
            paused = not self._growing
            if paused:
                self._growing = True
            try:
                # Only briefly: a long reader elsewhere (a verify, a gc mark) must not
                # stall every reader behind one failed write.
                deadline = time.monotonic() + _ALONE_WAIT
                while self._active > own:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                action()
            finally:
                if paused:
                    self._growing = False
                    self._cond.notify_all()


class _MapFull(Exception):
    """Internal: the write did not fit; grow and retry."""


class _Resized(Exception):
    """Internal: another process grew the map; adopt its size and retry."""



class _LmdbRead:
    """A read snapshot; valid only inside its ``with`` block or transaction function."""

    _copies = False

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database]) -> None:
        self._txn = txn
        self._dbs = dbs
        self.closed = False

    def _db(self, db: str) -> lmdb._Database:
        if self.closed:
            raise StoreError("the transaction is over; use the txn only inside its block")
        handle = self._dbs.get(db)
        if handle is None:
            raise StoreError(f"unknown database {db!r}; declare it in archive.store.DATABASES")
        return handle

    def get(self, db: str, key: bytes) -> bytes | None:
        """Return the value under ``key`` or ``None``."""
        handle = self._db(db)
        return self._txn.get(check_key(key), db=handle)

    def has(self, db: str, key: bytes) -> bool:
        """Tell whether ``key`` is present."""
        handle = self._db(db)
        with self._txn.cursor(handle) as cursor:
            return cursor.set_key(check_key(key))

    def iterate(
        self, db: str, start: bytes = b"", stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for ``start <= key < stop`` in key order (or reversed)."""
        handle = self._db(db)
        if type(start) is not bytes or (stop is not None and type(stop) is not bytes):
            raise StoreError("iteration bounds are bytes")
        return self._scan(handle, start, stop, reverse)

    def _scan(
        self, handle: lmdb._Database, start: bytes, stop: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        if stop is not None and stop <= start:
            return
        if self._copies:
            for key, value in self._scan_views(handle, start, stop, reverse):
                yield bytes(key), bytes(value)
            return
        yield from self._scan_views(handle, start, stop, reverse)

    def _scan_views(
        self, handle: lmdb._Database, start: bytes, stop: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        own = bytes if self._copies else None  # buffers compare only as bytes
        try:
            with self._txn.cursor(handle) as cursor:
                if not reverse:
                    found = cursor.set_range(start) if start else cursor.first()
                    while found:
                        key = cursor.key() if own is None else own(cursor.key())
                        if stop is not None and key >= stop:
                            return
                        yield key, cursor.value()
                        found = cursor.next()
                else:
                    if stop is None:
                        found = cursor.last()
                    else:
                        found = cursor.prev() if cursor.set_range(stop) else cursor.last()
                    while found:
                        key = cursor.key() if own is None else own(cursor.key())
                        if key < start:
                            return
                        yield key, cursor.value()
                        found = cursor.prev()
        except lmdb.MapFullError:
            raise
        except lmdb.Error as exc:
            if self.closed:
                raise StoreError("the transaction ended while iterating over it") from exc
            raise StoreError(f"store read failed: {exc}") from exc

    def count(self, db: str) -> int:
        """The number of entries in ``db``."""
        return int(self._txn.stat(self._db(db))["entries"])


class _LmdbViews(_LmdbRead):
    """A read snapshot opened with py-lmdb's ``buffers``: values point into the map."""

    _copies = True  # iterate() and get() hand out bytes all the same

    def get(self, db: str, key: bytes) -> bytes | None:
        """Return a copy of the value under ``key`` or ``None``."""
        value = self._txn.get(check_key(key), db=self._db(db))
        return None if value is None else bytes(value)

    def get_view(self, db: str, key: bytes) -> memoryview | None:
        """The value under ``key`` as a read-only view into the map (no copy), or ``None``.

        Valid only while this transaction is open: LMDB may reuse the pages afterwards.
        """
        return cast("memoryview | None", self._txn.get(check_key(key), db=self._db(db)))



class _LmdbWrite(_LmdbRead):
    """A write transaction; it commits when the transaction function returns."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database]) -> None:
        super().__init__(txn, dbs)
        self.map_full = False

    def put(self, db: str, key: bytes, value: bytes | bytearray | memoryview) -> None:
        """Set ``key`` to ``value``."""
        handle = self._db(db)
        check_key(key)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise StoreError(f"store values are bytes, got {type(value).__name__}")
        try:
            self._txn.put(key, value, db=handle)  # LMDB copies it into the map
        except lmdb.MapFullError:
            # Remembered, so that the store grows even if ``fn`` swallows the error.
            self.map_full = True
            raise

    def put_all(self, db: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        """:meth:`put` of every ``(key, value)``, in order, in one call into LMDB
        (``putmulti``): an import writes ten entries a record, and a Python call per
        entry cost about as much as LMDB's own work."""
        handle = self._db(db)
        for key, value in items:
            if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_SIZE:
                check_key(key)  # raises, saying what is wrong
            if type(value) is not bytes and not isinstance(value, bytearray | memoryview):
                raise StoreError(f"store values are bytes, got {type(value).__name__}")
        if not items:
            return
        try:
            with self._txn.cursor(handle) as cursor:
                cursor.putmulti(items)
        except lmdb.MapFullError:
            self.map_full = True
            raise

    def delete(self, db: str, key: bytes) -> bool:
        """Remove ``key``; return whether it was there."""
        handle = self._db(db)
        try:
            return self._txn.delete(check_key(key), db=handle)
        except lmdb.MapFullError:
            self.map_full = True
            raise


class LmdbStore:
    """The on-disk store: an LMDB environment in the folder ``path``."""

    def __init__(
        self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._write_lock = threading.Lock()
        self._in_write = threading.local()
        self._gate = _Gate()
        self._sync = sync
        _tune_malloc()
        self._prepare_folder()
        key = os.path.realpath(self.path)
        with _open_paths_lock:
            if key in _open_paths:
                raise StoreError(
                    f"the store at {self.path} is already open in this process; "
                    "share the one LmdbStore object instead of opening it again"
                )
            _open_paths[key] = self
        self._key = key
        try:
            self._env: lmdb.Environment | None = self._open_env(map_size, sync)
            self._dbs = self._open_dbs()
        except BaseException:
            if getattr(self, "_env", None) is not None:
                self._env.close()  # type: ignore[union-attr]
            with _open_paths_lock:
                _open_paths.pop(key, None)
            raise

    def _prepare_folder(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreError(f"{self.path} is not a folder; give the store its own folder")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.path}: {exc.strerror}") from exc
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StoreError(
                f"the store folder {self.path} is not writable by this user; "
                "fix its permissions or choose another data folder"
            )

    def _open_env(self, map_size: int, sync: bool) -> lmdb.Environment:
        try:
            return lmdb.open(
                self.path,
                map_size=map_size,
                subdir=True,
                sync=sync,
                metasync=False,  # see _flush_meta
                max_dbs=len(DATABASES) + _SPARE_DBS,
                max_readers=_MAX_READERS,
                lock=True,
                mode=0o600,  # the archive's files are the hub operator's alone
                # LMDB's default: without readahead (MADV_RANDOM) every 4 KiB page of a
                # 256 KiB chunk would be a page fault of its own when files are read.
                readahead=True,
            )
        except lmdb.Error as exc:
            code = getattr(exc, "code", 0)
            if code in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise StoreError(
                    f"the store at {self.path} cannot be opened for writing: {exc}; "
                    "check the permissions of the folder and its files"
                ) from exc
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc

    def _open_dbs(self) -> dict[str, lmdb._Database]:
        env = self._live()
        dbs: dict[str, lmdb._Database] = {}
        try:
            with env.begin(write=True) as txn:
                for name in DATABASES:
                    dbs[name] = env.open_db(name.encode(), txn=txn, create=True)
                raw = txn.get(FORMAT_KEY, db=dbs["meta"])
                if raw is None:
                    txn.put(FORMAT_KEY, str(FORMAT_VERSION).encode(), db=dbs["meta"])
                else:
                    self._check_version(raw)
        except lmdb.Error as exc:
            raise StoreError(f"cannot prepare the store at {self.path}: {exc}") from exc
        return dbs

    def _check_version(self, raw: bytes) -> None:
        try:
            version = int(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"the store at {self.path} has an unreadable format version") from exc
        if version > FORMAT_VERSION:
            raise StoreError(
                f"the store at {self.path} has format version {version}, written by a newer "
                f"craftnet; this one reads version {FORMAT_VERSION}. Upgrade craftnet."
            )
        if version < 1:
            raise StoreError(f"the store at {self.path} has an invalid format version {version}")

    def _live(self) -> lmdb.Environment:
        if self._env is None:
            raise StoreError("the store is closed")
        return self._env

    @property
    def map_size(self) -> int:
        """The current size of the memory map in bytes."""
        return int(self._live().info()["map_size"])

    def read(self) -> AbstractContextManager[ReadTxn]:
        """Open a read snapshot: ``with store.read() as txn: ...``."""
        # _reading's own context manager, not one wrapped in another: the sync engine
        # opens thousands of snapshots a second, one block each.
        return self._reading(False)

    @contextmanager
    def read_views(self) -> Iterator[ViewTxn]:
        """Open a read snapshot whose ``get_view`` hands out values without a copy.

        For reading big values (file chunks) straight from the map; every view dies
        with the ``with`` block.
        """
        with self._reading(True) as txn:
            assert isinstance(txn, _LmdbViews)
            yield txn

    @contextmanager
    def _reading(self, buffers: bool) -> Iterator[_LmdbRead]:
        while True:
            self._gate.enter()
            try:
                env = self._live()
                # A buffers transaction hands out views; _LmdbViews types them so.
                txn = (
                    cast("lmdb.Transaction[bytes]", env.begin(write=False, buffers=True))
                    if buffers
                    else env.begin(write=False)
                )
            except lmdb.MapResizedError:
                self._gate.leave()
                self._grow(adopt=True)
                continue
            except BaseException as exc:
                self._gate.leave()
                if isinstance(exc, lmdb.Error):
                    raise StoreError(f"cannot start a read transaction: {exc}") from exc
                raise
            break
        view = _LmdbViews(txn, self._dbs) if buffers else _LmdbRead(txn, self._dbs)
        try:
            yield view
        finally:
            view.closed = True
            try:
                txn.abort()
            finally:
                self._gate.leave()

    def transact(self, fn: Callable[[WriteTxn], T], *, durable: bool = True) -> T:
        """Run ``fn`` in one write transaction and commit it; may run ``fn`` again.

        ``durable=False`` skips the second flush (of LMDB's meta page): the commit is
        whole and survives a killed process, but a power cut may undo it until a later
        durable commit. For bulk writes followed by one durable commit.
        """
        if getattr(self._in_write, "active", False):
            raise StoreError("transact() was called inside a transaction function; use its txn")
        self._live()
        with self._write_lock:
            self._in_write.active = True
            try:
                while True:
                    try:
                        result = self._attempt(fn)
                        break
                    except _MapFull:
                        self._grow(adopt=False)
                    except _Resized:
                        self._grow(adopt=True)
            finally:
                self._in_write.active = False
        if durable and self._sync:
            self._flush_meta()
        return result

    def _flush_meta(self) -> None:
        # The environment runs with MDB_NOMETASYNC: a commit flushes the data pages,
        # then writes the meta page without flushing it. Flushing it here makes the
        # commit durable; LMDB keeps the store whole either way.
        self._gate.enter()
        try:
            self._live().sync(True)
        except lmdb.Error as exc:
            raise StoreError(f"cannot flush the store to disk: {exc}") from exc
        finally:
            self._gate.leave()

    def _attempt(self, fn: Callable[[WriteTxn], T]) -> T:
        self._gate.enter()
        try:
            try:
                txn = self._live().begin(write=True)
            except lmdb.MapResizedError:
                raise _Resized() from None
            except lmdb.Error as exc:
                raise StoreError(f"cannot start a write transaction: {exc}") from exc
            view = _LmdbWrite(txn, self._dbs)
            try:
                result = fn(view)
                if view.map_full:
                    raise _MapFull()
                txn.commit()
            except lmdb.MapFullError:
                self._gate.alone(txn.abort)
                raise _MapFull() from None
            except lmdb.Error as exc:
                self._gate.alone(txn.abort)
                raise StoreError(f"the write to the store failed: {exc}") from exc
            except BaseException:
                self._gate.alone(txn.abort)
                if view.map_full:  # ``fn`` turned MapFullError into something else
                    raise _MapFull() from None
                raise
            finally:
                view.closed = True
            return result
        finally:
            self._gate.leave()

    def _grow(self, *, adopt: bool) -> None:
        # Reopening the environment with a larger map (while the gate keeps every
        # transaction out) avoids py-lmdb's in-place set_mapsize, which was seen to
        # stall writers behind busy readers afterwards.
        def grow() -> None:
            env = self._live()
            current = int(env.info()["map_size"])
            target = current if adopt else current * 2
            env.close()
            # Only the gate's holder touches ``_env`` now; others just check it is set.
            self._env = self._open_env(target, self._sync)
            self._dbs = self._open_dbs()

        self._gate.exclusive(grow)

    def close(self) -> None:
        """Release the store (after open transactions of other threads end); later calls raise."""
        env = self._env
        if env is None:
            return

        def shut() -> None:
            self._env = None
            env.close()

        if self._gate.held_here():
            shut()  # this thread's own read is still open; it becomes invalid
        else:
            self._gate.exclusive(shut)
        with _open_paths_lock:
            if _open_paths.get(self._key) is self:
                del _open_paths[self._key]

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
