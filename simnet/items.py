"""Reconcile items for many simulated hubs at once: shared keys and hashes.

:class:`SharedItems` is the protocol's own :class:`~craftnet.protocol.items.SortedItems`
(same chunks, same sums, same answers) except that a key's bytes and its 256-bit hash
are looked up in a table shared by every hub of the run. With 10,000 hubs holding the
same 1,000 records that is one copy of each instead of 10,000: about 100 bytes per
item per hub saved.
"""

from __future__ import annotations

import bisect

from craftnet.protocol.items import CHUNK, SortedItems, item_hash


class ItemTable:
    """The keys and hashes shared by the hubs of one run."""

    def __init__(self) -> None:
        self.hashes: dict[bytes, tuple[bytes, int]] = {}

    def intern(self, key: bytes) -> tuple[bytes, int]:
        """The shared copy of ``key`` and its hash."""
        found = self.hashes.get(key)
        if found is None:
            found = self.hashes[key] = (key, item_hash(key))
        return found


class SharedItems(SortedItems):
    """:class:`SortedItems` whose keys and hashes come from an :class:`ItemTable`."""

    def __init__(self, table: ItemTable) -> None:
        super().__init__()
        self._table = table
        self._sums: list[int] = []

    def _refresh(self) -> None:
        # As SortedItems, but from per-chunk sums kept up to date by add(): the parent
        # re-adds every hash after each insert, O(n) per record and O(n^2) per hub.
        if not self._dirty:
            return
        if len(self._sums) != len(self._chunks):
            self._sums = [sum(h) for h in self._hashes]
        self._firsts = [chunk[0] for chunk in self._chunks]
        starts, presum, count, total = [], [], 0, 0
        for chunk, chunk_sum in zip(self._chunks, self._sums, strict=True):
            starts.append(count)
            presum.append(total)
            count += len(chunk)
            total += chunk_sum
        starts.append(count)
        presum.append(total)
        self._starts, self._presum = starts, presum
        self._memo_rank = -1
        self._dirty = False

    def add(self, key: bytes) -> bool:
        """Insert ``key``; return False if it was already there."""
        return self.add_interned(*self._table.intern(key))

    def add_interned(self, key: bytes, digest: int) -> bool:
        """Insert ``key``, already interned in the table with its ``digest``."""
        if not self._chunks:
            self._chunks.append([key])
            self._hashes.append([digest])
            self._sums = [digest]
            self._firsts = [key]
            self._len = 1
            self._dirty = True
            return True
        firsts = self._firsts
        if len(firsts) != len(self._chunks):
            firsts = self._firsts = [chunk[0] for chunk in self._chunks]
        # The chunk firsts are kept exact here, so an insert needs no full refresh;
        # only the rank and sum prefixes are left for the next query to rebuild.
        i = max(bisect.bisect_right(firsts, key) - 1, 0)
        chunk = self._chunks[i]
        j = bisect.bisect_left(chunk, key)
        if j < len(chunk) and chunk[j] == key:
            return False
        chunk.insert(j, key)
        if j == 0:
            firsts[i] = key
        self._hashes[i].insert(j, digest)
        self._sums[i] += digest
        if len(chunk) > 2 * CHUNK:
            self._chunks[i : i + 1] = [chunk[:CHUNK], chunk[CHUNK:]]
            hashes = self._hashes[i]
            self._hashes[i : i + 1] = [hashes[:CHUNK], hashes[CHUNK:]]
            self._sums[i : i + 1] = [sum(hashes[:CHUNK]), sum(hashes[CHUNK:])]
            firsts[i + 1 : i + 1] = [chunk[CHUNK]]
        self._len += 1
        self._dirty = True
        return True
