"""Reconcile items and the sources that hold them.

An item is one record as the reconcile protocol sees it: its key is the 8-byte
big-endian timestamp followed by the record's CID bytes, so keys sort by time and
then by CID. Each item contributes ``blake3(key)`` (read as a little-endian integer)
to range sums; a range's fingerprint is a hash of ``(sum mod 2**256, count)``, as in
negentropy. A source answers range questions (count and sum, the key at a rank, the
keys of a small range) without the engine knowing where the items live:
:class:`SortedItems` keeps them in memory (simnet, tests, benchmarks), and
:class:`craftnet.archive.recon_index.StoreItems` reads them from the store, where
:class:`~craftnet.archive.recon_index.ReconIndex` keeps chunk sums up to date as
records are written. The key and hash are defined by the archive (it owns the
index); this module re-exports them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final, Protocol

from craftnet.archive.recon_index import MODULUS, TS_BYTES, item_hash, item_key

CHUNK: Final = 256

__all__ = [
    "CHUNK",
    "MODULUS",
    "TS_BYTES",
    "ItemSource",
    "SortedItems",
    "item_hash",
    "item_key",
    "split_key",
]


def split_key(key: bytes) -> tuple[int, bytes]:
    """``(ts, id bytes)`` of an item key."""
    return int.from_bytes(key[:TS_BYTES], "big"), key[TS_BYTES:]


class ItemSource(Protocol):
    """What the reconcile engine reads; ``hi`` None means "to the end"."""

    def summary(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """``(count, sum mod 2**256)`` of the items with ``lo <= key < hi``."""
        ...

    def key_at(self, lo: bytes, offset: int) -> bytes:
        """The key of the ``offset``-th item (from 0) at or above ``lo``; it must exist."""
        ...

    def keys(self, lo: bytes, hi: bytes | None) -> list[bytes]:
        """The keys with ``lo <= key < hi`` in order (only asked for small ranges)."""
        ...


class SortedItems:
    """Items in memory: sorted chunks of keys with cached per-chunk sums.

    Inserting costs O(chunk + n/chunk); a range summary costs two partial chunk sums
    and a lookup in prefix arrays rebuilt lazily after inserts (O(n/chunk)). Building
    from n keys hashes each once: about 1 s per million items on one core.
    """

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        ordered = sorted(set(keys))
        self._chunks: list[list[bytes]] = []
        self._hashes: list[list[int]] = []
        for start in range(0, len(ordered), CHUNK):
            part = ordered[start : start + CHUNK]
            self._chunks.append(part)
            self._hashes.append([item_hash(k) for k in part])
        self._dirty = True
        self._firsts: list[bytes] = []
        self._starts: list[int] = []
        self._presum: list[int] = []
        self._len = len(ordered)
        # The prefix sum at the end of the last range summed (see summary()); its rank
        # is -1 when the items changed since.
        self._memo_rank = -1
        self._memo_sum = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes) or not self._chunks:
            return False
        self._refresh()
        i = max(bisect.bisect_right(self._firsts, key) - 1, 0)
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        return j < len(chunk) and chunk[j] == key

    def add(self, key: bytes) -> bool:
        """Insert ``key``; return False if it was already there."""
        if not self._chunks:
            self._chunks.append([key])
            self._hashes.append([item_hash(key)])
            self._len = 1
            self._dirty = True
            return True
        self._refresh()
        i = max(bisect.bisect_right(self._firsts, key) - 1, 0)
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        if j < len(chunk) and chunk[j] == key:
            return False
        chunk.insert(j, key)
        self._hashes[i].insert(j, item_hash(key))
        if len(chunk) > 2 * CHUNK:
            self._chunks[i : i + 1] = [chunk[:CHUNK], chunk[CHUNK:]]
            hashes = self._hashes[i]
            self._hashes[i : i + 1] = [hashes[:CHUNK], hashes[CHUNK:]]
        self._len += 1
        self._dirty = True
        return True

    def update(self, keys: Iterable[bytes]) -> int:
        """Insert many keys; return how many were new."""
        return sum(1 for key in keys if self.add(key))

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._firsts = [chunk[0] for chunk in self._chunks]
        starts, presum, count, total = [], [], 0, 0
        for hashes in self._hashes:
            starts.append(count)
            presum.append(total)
            count += len(hashes)
            total += sum(hashes)
        starts.append(count)
        presum.append(total)
        self._starts, self._presum = starts, presum
        self._memo_rank = -1
        self._dirty = False

    def _rank(self, key: bytes | None) -> int:
        """How many items are below ``key`` (all of them for None)."""
        if key is None:
            return self._len
        i = bisect.bisect_right(self._firsts, key) - 1
        if i < 0:
            return 0
        return self._starts[i] + bisect.bisect_left(self._chunks[i], key)

    def _prefix_sum(self, rank: int) -> int:
        i = bisect.bisect_right(self._starts, rank) - 1
        if i >= len(self._chunks):
            return self._presum[-1]
        hashes = self._hashes[i]
        within = rank - self._starts[i]
        # Each addition makes a new 256-bit int: add the shorter side of the chunk (the
        # whole chunk's sum is the next prefix), at most half a chunk instead of all of it.
        if 2 * within <= len(hashes):
            return self._presum[i] + sum(hashes[:within])
        return self._presum[i + 1] - sum(hashes[within:])

    def summary(self, lo: bytes, hi: bytes | None) -> tuple[int, int]:
        """``(count, sum mod 2**256)`` of the items with ``lo <= key < hi``."""
        if not self._chunks:
            return 0, 0
        self._refresh()
        a, b = self._rank(lo), self._rank(hi)
        if b <= a:
            return 0, 0
        # Ranges are asked for in order (a message's fingerprints, the parts of a split):
        # each starts where the one before ended, whose prefix sum is kept.
        low = self._memo_sum if a == self._memo_rank else self._prefix_sum(a)
        high = self._prefix_sum(b)
        self._memo_rank = b
        self._memo_sum = high
        return b - a, (high - low) % MODULUS

    def _at(self, rank: int) -> bytes:
        i = bisect.bisect_right(self._starts, rank) - 1
        return self._chunks[i][rank - self._starts[i]]

    def key_at(self, lo: bytes, offset: int) -> bytes:
        """The key of the ``offset``-th item at or above ``lo``."""
        self._refresh()
        return self._at(self._rank(lo) + offset)

    def keys(self, lo: bytes, hi: bytes | None) -> list[bytes]:
        """The keys with ``lo <= key < hi`` in order."""
        if not self._chunks:
            return []
        self._refresh()
        a, b = self._rank(lo), self._rank(hi)
        out: list[bytes] = []
        i = max(bisect.bisect_right(self._starts, a) - 1, 0)
        # Whole slices of chunks, not one bisect per key: coded ranges read hundreds.
        while a < b and i < len(self._chunks):
            first = self._starts[i]
            take = self._chunks[i][a - first : b - first]
            out += take
            a += len(take)
            i += 1
        return out
