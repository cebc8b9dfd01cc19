"""The store interface: named, ordered key-value databases with atomic transactions.

Everything craftnet keeps (blocks, pins, record indexes, document heads, ...) lives in
named databases of byte keys and byte values, sorted bytewise. Every write happens in
one transaction given as a function to :meth:`Store.transact`, so that after a crash
the store holds whole transactions or none, and so that the LMDB store can grow its
map and run the function again when the map is full (``MapFullError`` never reaches
a caller). Two implementations pass the same conformance tests
(``tests/archive/test_store.py``): :class:`~craftnet.archive.lmdb_store.LmdbStore`, the real one,
and :class:`~craftnet.archive.memory_store.MemoryStore`, for simulations of many hubs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Final, Protocol, TypeVar, runtime_checkable

from craftnet.archive.errors import StoreError

T = TypeVar("T")

# Every named database, declared here so that both stores know them up front.
# A package that needs a new one adds its name to this tuple.
DATABASES: Final = (
    "blocks",  # CID bytes -> block bytes
    "pins",  # CID bytes -> DAG-CBOR pin metadata (name, time)
    "records",  # record CID bytes -> DAG-CBOR summary {type, author, ts}
    "rec_type",  # type \x00 ts(8, big-endian) CID -> b""
    "rec_author",  # author did \x00 ts(8) CID -> b""
    "rec_time",  # ts(8) CID -> b""
    "links_rev",  # linked CID bytes + linking record CID bytes -> b"" (descendants)
    "keys",  # key-succession and revocation facts, see identity.succession
    "docs",  # document (genesis) CID -> DAG-CBOR {kind, owner, seq} (see archive.crdt.documents)
    "doc_ops",  # doc CID + op CID -> DAG-CBOR status {s, ts, why}
    "doc_heads",  # doc CID + op CID -> b"" (the document's heads, compared by sync)
    "doc_wait",  # doc CID + missing CID + waiting op CID -> b""
    "doc_log",  # doc CID + seq(8) -> op CID + applied flag (the order ops were done here)
    "doc_deferred",  # wall ms(8) + doc CID + op CID -> b"" (clock too far ahead)
    "doc_state",  # doc CID -> DAG-CBOR {seq, state}: a snapshot of the merged state
    "doc_view",  # doc CID -> DAG-CBOR of what readers see (kept current on every write)
    "att_subject",  # attested did \x00 ts(8) attestation CID -> b"" (see archive.index)
    "meta",  # store-wide settings: format version, ...
    "staging",  # b"s" session -> touch time; b"c" CID session -> b"" (files being added)
    "recon_chunks",  # first rec_time key of a chunk -> count(4) + sum of item hashes(32), see
    # archive.recon_index (range fingerprints for reconciliation, kept incrementally)
    "changes",  # seq(8) -> ts(8) CID of a record the store gained (archive.changes)
    "peer_state",  # hub did -> DAG-CBOR {have, via, recorded}: what it held (archive.peer_state)
    "bundle_held",  # set id(16) + CID -> kind + block: parts of a split bundle waiting for more
    "bundle_sets",  # set id(16) -> DAG-CBOR {parts, seen, at} (archive.receive)
    "witness",  # witnessed CID + batch CID -> DAG-CBOR {at, i, path?} (archive.witness)
    "wit_batches",  # batch CID -> DAG-CBOR {hub, count, leaves}: witness batches indexed here
    "wit_mine",  # record CID -> batch CID: records this hub has witnessed itself
)

# Keys are 1..MAX_KEY_SIZE bytes (LMDB's limit); every store enforces it, so code that
# works on the memory store works on disk too.
MAX_KEY_SIZE: Final = 511


def check_key(key: object) -> bytes:
    """``key`` if it is a store key (bytes of 1..MAX_KEY_SIZE); else :class:`StoreError`.

    Both stores check keys alike, so code that works on the memory store works on disk.
    """
    if type(key) is not bytes:
        raise StoreError(f"store keys are bytes, got {type(key).__name__}")
    if not 0 < len(key) <= MAX_KEY_SIZE:
        raise StoreError(f"store keys are 1..{MAX_KEY_SIZE} bytes, got {len(key)}")
    return key


class ReadTxn(Protocol):
    """A consistent snapshot of the store."""

    def get(self, db: str, key: bytes) -> bytes | None:
        """Return the value under ``key`` or ``None``."""
        ...

    def has(self, db: str, key: bytes) -> bool:
        """Tell whether ``key`` is present."""
        ...

    def iterate(
        self, db: str, start: bytes = b"", stop: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for ``start <= key < stop`` in key order (or reversed)."""
        ...

    def count(self, db: str) -> int:
        """The number of entries in ``db``."""
        ...


class WriteTxn(ReadTxn, Protocol):
    """A snapshot that can also write; it commits when the transaction function returns."""

    def put(self, db: str, key: bytes, value: bytes | bytearray | memoryview) -> None:
        """Set ``key`` to ``value`` (any bytes-like value; the store keeps a copy)."""
        ...

    def put_all(self, db: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        """:meth:`put` of every ``(key, value)`` in ``items``, in order (a later value
        for the same key wins): one call for a batch, so that a large write does not pay
        a method call per entry."""
        ...

    def delete(self, db: str, key: bytes) -> bool:
        """Remove ``key``; return whether it was there."""
        ...


class ViewTxn(ReadTxn, Protocol):
    """A read snapshot that can also hand out values without copying them."""

    def get_view(self, db: str, key: bytes) -> memoryview | None:
        """The value under ``key`` as a read-only view into the store's memory, or ``None``.

        The view is valid only while the transaction is open: read or copy it before the
        ``with`` block ends (afterwards its memory may hold other data).
        """
        ...


@runtime_checkable
class ViewStore(Protocol):
    """A store whose read snapshots can hand out values without copying them."""

    def read_views(self) -> AbstractContextManager[ViewTxn]:
        """Open a read snapshot whose :meth:`ViewTxn.get_view` needs no copy."""
        ...


class Store(Protocol):
    """A transactional store of named ordered databases."""

    def read(self) -> AbstractContextManager[ReadTxn]:
        """Open a read snapshot: ``with store.read() as txn: ...``."""
        ...

    def transact(self, fn: Callable[[WriteTxn], T], *, durable: bool = True) -> T:
        """Run ``fn`` in one write transaction and commit it durably; may run ``fn`` again.

        ``durable=False`` lets a store skip flushing: the commit is still whole, but a
        power cut may undo it until a later durable commit (for bulk writes that end in
        one durable commit, like the chunks of a file).
        """
        ...

    def close(self) -> None:
        """Release the store; later calls raise."""
        ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None if unbounded)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
