"""The reconcile index: range sums over ``rec_time``, kept in the store as records arrive.

Reconciliation (:mod:`craftnet.protocol.reconcile`) asks for the count and the sum of
item hashes of any key range of ``rec_time`` (keys ``ts8 + CID``). Scanning the range
each time would read the whole archive in every round, so this index cuts ``rec_time``
into consecutive *chunks* of about ``chunk`` keys and stores, in ``recon_chunks``, each
chunk's first key with its count and sum. A range sum then reads the chunk entries
inside the range plus at most two partial chunks at its ends: O(n/chunk + chunk) reads
for the widest range and O(range + chunk) for the narrow ones deep in a reconcile.

Adding a record costs one chunk update in the same transaction (and, every ``chunk``
inserts or so, a split that reads one chunk). :func:`craftnet.archive.index.put_record`,
which every writer of records goes through, calls :meth:`ReconIndex.add` for each key
it puts into ``rec_time``, inside the same write transaction, so the index is current
whenever a transaction commits, whichever process wrote it. :meth:`ReconIndex.ensure`
rebuilds the index in one pass if it finds it out of step (a store written before
records kept it), so a stale index costs a rebuild, never a wrong answer;
:meth:`ReconIndex.problems` checks it against ``rec_time`` entry by entry.

The item format is the archive's: :func:`item_key` and :func:`item_hash` are what the
protocol's fingerprints are computed from.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Final

import blake3

from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError, StoreError
from craftnet.archive.store import ReadTxn, Store, WriteTxn

ITEMS_DB: Final = "rec_time"
CHUNKS_DB: Final = "recon_chunks"
META_DB: Final = "meta"
META_COUNT_KEY: Final = b"recon_index.count"
MODULUS: Final = 1 << 256
TS_BYTES: Final = 8
DEFAULT_CHUNK: Final = 64


def item_key(ts: int, ident: bytes | Cid) -> bytes:
    """The sort key of an item: ``ts`` as 8 bytes big-endian, then the id (CID) bytes."""
    raw = ident.bytes if isinstance(ident, Cid) else bytes(ident)
    return ts.to_bytes(TS_BYTES, "big") + raw


def separator(prev: bytes, nxt: bytes) -> bytes:
    """The shortest ``p`` with ``prev < p <= nxt`` (``prev < nxt``): a range bound between
    two neighbouring keys that costs a few bytes (reconcile messages, have-summaries)."""
    n = 0
    limit = min(len(prev), len(nxt))
    while n < limit and prev[n] == nxt[n]:
        n += 1
    return nxt[: n + 1]


def item_hash(key: bytes) -> int:
    """An item's contribution to range sums: BLAKE3 of its key, little-endian."""
    return int.from_bytes(blake3.blake3(key).digest(), "little")


def _pack(count: int, total: int) -> bytes:
    return count.to_bytes(4, "big") + total.to_bytes(32, "little")


def _unpack(value: bytes) -> tuple[int, int]:
    if len(value) != 36:
        raise StoreError("the reconcile index is corrupt (bad chunk entry); rebuild it")
    return int.from_bytes(value[:4], "big"), int.from_bytes(value[4:], "little")


def _first(it: Iterator[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    return next(it, None)


class _Open:
    """A chunk being added to: its first key, the next chunk's (None: it is the last),
    its count and its sum so far."""

    __slots__ = ("after", "count", "start", "total")

    def __init__(self, start: bytes, after: bytes | None, count: int, total: int) -> None:
        self.start = start
        self.after = after
        self.count = count
        self.total = total

    def holds(self, key: bytes) -> bool:
        """Whether ``key`` falls in this chunk."""
        return self.start <= key and (self.after is None or key < self.after)


class ReconIndex:
    """Chunked range sums over ``rec_time``; reads take a transaction, writes too."""

    def __init__(self, chunk: int = DEFAULT_CHUNK) -> None:
        if chunk < 2:
            raise ArchiveError("a reconcile index chunk holds at least 2 keys")
        self.chunk = chunk

    # -------------------------------------------------------------------- writing

    def add(self, txn: WriteTxn, key: bytes) -> None:
        """Account for ``key``, just put into ``rec_time`` in this same transaction."""
        self.add_many(txn, (key,))

    def add_many(self, txn: WriteTxn, keys: Sequence[bytes]) -> None:
        """Account for ``keys``, all just put into ``rec_time`` in this same transaction.

        Each key is added to its chunk's count and sum; the chunk a key lands in is kept
        in memory while the keys that follow land in it too (an import's keys mostly come
        in time order, so most land in the newest chunk) and written when the run ends.
        Chunks grown past twice the chunk size are split only after every key is
        accounted for: a split reads the chunk's keys from ``rec_time``, which holds the
        whole batch already, so splitting midway would have counted keys of the batch
        not yet accounted for in the sums.
        """
        touched: set[bytes] = set()
        current: _Open | None = None
        for key in keys:
            landed = self._land(txn, current, key)
            if landed is not current:
                touched.add(landed.start)
            current = landed
        if current is not None:
            txn.put(CHUNKS_DB, current.start, _pack(current.count, current.total))
        for start in sorted(touched):
            raw = txn.get(CHUNKS_DB, start)  # gone if a key below it took its place
            if raw is not None and _unpack(raw)[0] > 2 * self.chunk:
                self._split(txn, start)
        if keys:
            self._bump(txn, len(keys))  # one count update for the lot

    def add_in_turn(self, txn: WriteTxn, keys: Sequence[bytes]) -> None:
        """Account for ``keys`` (distinct, all just put into ``rec_time`` in this same
        transaction) as :meth:`add` of each one in turn right after its own put would.

        The chunks come out byte for byte as if every key had been put and added alone,
        so a writer may batch its puts without the index depending on how it batched:
        a chunk that grows past twice the chunk size is split at once, from the keys of
        ``rec_time`` less those of ``keys`` not yet accounted for (they were not there
        yet when the one-at-a-time writer split it). The index must be current before
        (it is after every transaction: every writer accounts for what it puts, and
        :meth:`ensure` rebuilds one that is not).
        """
        waiting = set(keys)
        current: _Open | None = None
        for key in keys:
            current = self._land(txn, current, key)
            waiting.discard(key)
            if current.count > 2 * self.chunk:
                txn.put(CHUNKS_DB, current.start, _pack(current.count, current.total))
                self._split(txn, current.start, skip=waiting, count=current.count)
                current = None
        if current is not None:
            txn.put(CHUNKS_DB, current.start, _pack(current.count, current.total))
        if keys:
            self._bump(txn, len(keys))

    def _land(self, txn: WriteTxn, current: _Open | None, key: bytes) -> _Open:
        """Count ``key`` into its chunk: ``current`` if it holds the key, else the stored
        one it falls in (``current`` is written back first)."""
        if current is None or not current.holds(key):
            if current is not None:
                txn.put(CHUNKS_DB, current.start, _pack(current.count, current.total))
            current = self._open(txn, key)
        current.count += 1
        current.total = (current.total + item_hash(key)) % MODULUS
        return current

    def _open(self, txn: WriteTxn, key: bytes) -> _Open:
        """The chunk ``key`` falls in, as stored (the first chunk is moved down to start
        at ``key`` if ``key`` lies below every chunk)."""
        found = _first(txn.iterate(CHUNKS_DB, b"", key + b"\x00", reverse=True))
        if found is None:
            # Below every chunk: the first chunk now starts at ``key``.
            first = _first(txn.iterate(CHUNKS_DB))
            count, total = _unpack(first[1]) if first else (0, 0)
            if first is not None:
                txn.delete(CHUNKS_DB, first[0])
            start = key
            following = _first(txn.iterate(CHUNKS_DB))
        else:
            start = found[0]
            count, total = _unpack(found[1])
            following = _first(txn.iterate(CHUNKS_DB, key + b"\x00"))
        return _Open(start, following[0] if following is not None else None, count, total)

    def _split(
        self, txn: WriteTxn, start: bytes, skip: set[bytes] | None = None, count: int = 0
    ) -> None:
        """Cut the chunk at ``start`` into chunks of ``chunk`` keys (the last takes the
        rest, fewer than ``chunk`` more), each summed again from its keys.

        With ``skip`` (keys in ``rec_time`` not accounted for yet, left out) the chunk's
        ``count`` accounted keys are read and no more: the newest chunk's range runs to
        the end of ``rec_time``, where a batch's keys not yet accounted for mostly lie.
        """
        following = _first(txn.iterate(CHUNKS_DB, start + b"\x00"))
        stop = following[0] if following is not None else None
        if skip:
            keys = []
            for key, _ in txn.iterate(ITEMS_DB, start, stop):
                if key not in skip:
                    keys.append(key)
                    if len(keys) == count:
                        break
        else:
            keys = [k for k, _ in txn.iterate(ITEMS_DB, start, stop)]
        size = self.chunk
        pieces = max(1, len(keys) // size)
        for n in range(pieces):
            part = keys[n * size : (n + 1) * size if n < pieces - 1 else len(keys)]
            if part:
                first = start if n == 0 else part[0]
                txn.put(CHUNKS_DB, first, _pack(len(part), sum(map(item_hash, part)) % MODULUS))

    def _bump(self, txn: WriteTxn, by: int) -> None:
        raw = txn.get(META_DB, META_COUNT_KEY)
        count = int.from_bytes(raw, "big") if raw else 0
        txn.put(META_DB, META_COUNT_KEY, (count + by).to_bytes(8, "big"))

    def rebuild(self, txn: WriteTxn) -> int:
        """Recompute every chunk from ``rec_time`` (one pass); returns the item count."""
        for key, _ in list(txn.iterate(CHUNKS_DB)):
            txn.delete(CHUNKS_DB, key)
        count = 0
        start: bytes | None = None
        size = total = 0
        for key, _ in txn.iterate(ITEMS_DB):
            if start is None:
                start = key
            size += 1
            total += item_hash(key)
            if size == self.chunk:
                txn.put(CHUNKS_DB, start, _pack(size, total % MODULUS))
                count += size
                start, size, total = None, 0, 0
        if start is not None:
            txn.put(CHUNKS_DB, start, _pack(size, total % MODULUS))
            count += size
        txn.put(META_DB, META_COUNT_KEY, count.to_bytes(8, "big"))
        return count

    def unaccounted(self, txn: ReadTxn) -> int:
        """How many more keys ``rec_time`` holds than the index accounts for."""
        raw = txn.get(META_DB, META_COUNT_KEY)
        return txn.count(ITEMS_DB) - (int.from_bytes(raw, "big") if raw else 0)

    def is_current(self, txn: ReadTxn) -> bool:
        """Tell whether the index accounts for exactly the keys in ``rec_time``."""
        return self.unaccounted(txn) == 0

    def problems(self, txn: ReadTxn) -> list[str]:
        """Where the index disagrees with ``rec_time`` (empty when it agrees); one pass."""
        found: list[str] = []
        chunks = iter(txn.iterate(CHUNKS_DB))
        current = _first(chunks)
        following = _first(chunks)
        items = 0
        count = total = 0

        def close(chunk: tuple[bytes, bytes], count: int, total: int) -> None:
            stored = _unpack(chunk[1])
            if stored != (count, total % MODULUS):
                found.append(
                    f"chunk {chunk[0].hex()} holds {stored[0]} items by the index "
                    f"and {count} in rec_time"
                )

        for key, _ in txn.iterate(ITEMS_DB):
            items += 1
            if current is None or key < current[0]:
                found.append(f"item {key.hex()} lies before every chunk of the index")
                continue
            while following is not None and key >= following[0]:
                close(current, count, total)
                current, following = following, _first(chunks)
                count = total = 0
            count += 1
            total += item_hash(key)
        while current is not None:
            close(current, count, total)
            current, following = following, _first(chunks)
            count = total = 0
        raw = txn.get(META_DB, META_COUNT_KEY)
        counted = int.from_bytes(raw, "big") if raw else 0
        if counted != items:
            found.append(f"the index counts {counted} items and rec_time holds {items}")
        return found

    def ensure(self, store: Store) -> bool:
        """Rebuild the index if it is out of step; returns whether it rebuilt."""
        with store.read() as txn:
            if self.is_current(txn):
                return False
        store.transact(self.rebuild)
        return True

    # -------------------------------------------------------------------- reading

    def summary(self, txn: ReadTxn, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """``(count, sum of item hashes mod 2**256)`` of the keys with ``lo <= key < hi``."""
        if hi is not None and hi <= lo:
            return 0, 0
        count = total = 0
        chunks = list(txn.iterate(CHUNKS_DB, lo, hi))
        head_stop = chunks[0][0] if chunks else hi
        # Keys before the first chunk starting in the range belong to an earlier chunk.
        for key, _ in txn.iterate(ITEMS_DB, lo, head_stop):
            count += 1
            total += item_hash(key)
        for _, value in chunks[:-1]:
            size, weight = _unpack(value)
            count += size
            total += weight
        if chunks:
            start, value = chunks[-1]
            after = _first(txn.iterate(CHUNKS_DB, hi)) if hi is not None else None
            if hi is None or (after is not None and after[0] == hi):
                size, weight = _unpack(value)
                count += size
                total += weight
            else:
                for key, _ in txn.iterate(ITEMS_DB, start, hi):
                    count += 1
                    total += item_hash(key)
        return count, total % MODULUS

    def key_at(self, txn: ReadTxn, lo: bytes, offset: int) -> bytes:
        """The key of the ``offset``-th item (from 0) at or above ``lo``."""
        chunks = txn.iterate(CHUNKS_DB, lo)
        chunk = _first(chunks)
        for key, _ in txn.iterate(ITEMS_DB, lo, chunk[0] if chunk else None):
            if offset == 0:
                return key
            offset -= 1
        while chunk is not None:
            size, _ = _unpack(chunk[1])
            if offset < size:
                hit = next(itertools.islice(txn.iterate(ITEMS_DB, chunk[0]), offset, None), None)
                if hit is None:
                    break
                return hit[0]
            offset -= size
            chunk = _first(chunks)
        raise StoreError("the reconcile index is out of step with rec_time; rebuild it")

    def keys(self, txn: ReadTxn, lo: bytes, hi: bytes | None) -> list[bytes]:
        """The keys with ``lo <= key < hi``, in order."""
        return [key for key, _ in txn.iterate(ITEMS_DB, lo, hi)]


class StoreItems:
    """The reconcile engine's item source over a store (``ItemSource`` in protocol/).

    Each call reads one snapshot. Records only ever get added, and the engine runs a
    reconcile message in one go, so a record arriving between two calls can at worst
    make one fingerprint differ; the next round repairs it.
    """

    def __init__(self, store: Store, index: ReconIndex | None = None) -> None:
        self.store = store
        self.index = index or ReconIndex()

    def summary(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """``(count, sum mod 2**256)`` of the items with ``lo <= key < hi``."""
        with self.store.read() as txn:
            return self.index.summary(txn, lo, hi)

    def key_at(self, lo: bytes, offset: int) -> bytes:
        """The key of the ``offset``-th item at or above ``lo``."""
        with self.store.read() as txn:
            return self.index.key_at(txn, lo, offset)

    def keys(self, lo: bytes, hi: bytes | None) -> list[bytes]:
        """The keys with ``lo <= key < hi`` in order."""
        with self.store.read() as txn:
            return self.index.keys(txn, lo, hi)

    def add(self, ts: int, cid: Cid) -> bool:
        """Put one item into ``rec_time`` and the index (for callers not using
        ``archive.index.put_record``, e.g. tests); returns False if it was there."""
        key = item_key(ts, cid)

        def write(txn: WriteTxn) -> bool:
            if txn.has(ITEMS_DB, key):
                return False
            txn.put(ITEMS_DB, key, b"")
            self.index.add(txn, key)
            return True

        return self.store.transact(write)
