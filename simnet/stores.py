"""Where a simulated hub keeps its blocks and reconcile items.

* :class:`SharedStore` (``store = "shared"``, the default): a dict of blocks and
  :class:`~craftnet.simnet.items.SharedItems`, with the bytes of every block and item
  shared by all hubs of the run. What 10,000 hubs need.
* :class:`ArchiveStore` (``store = "memory"`` or ``"lmdb"``): archive's real
  :class:`~craftnet.archive.memory_store.MemoryStore` or
  :class:`~craftnet.archive.lmdb_store.LmdbStore` (in a temporary folder), written the
  way node/p2p's driver writes: each ``StoreBlocks`` in one transaction, records through
  :func:`~craftnet.archive.index.put_record`, which keeps the reconcile index that the
  engine reads through :class:`~craftnet.archive.recon_index.StoreItems`. For small runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from craftnet.archive.blocks import StoreBlockSource, put_block
from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.index import count_records, put_record
from craftnet.archive.recon_index import StoreItems, item_key
from craftnet.archive.records import Record
from craftnet.archive.store import Store, WriteTxn
from craftnet.protocol.blocks import BlockSource, DictBlocks
from craftnet.protocol.items import ItemSource
from craftnet.simnet.items import ItemTable, SharedItems


class HubStore(Protocol):
    """What simnet needs from a hub's storage."""

    @property
    def source(self) -> BlockSource:
        """The engine's block source."""
        ...

    @property
    def items(self) -> ItemSource:
        """The engine's reconcile items."""
        ...

    def put(self, blocks: list[tuple[Cid, bytes, int | None]]) -> None:
        """Write blocks (``ts`` set for records) in one go."""
        ...

    def put_one(self, cid: Cid, data: bytes, ts: int | None) -> None:
        """Write one block: ``put([(cid, data, ts)])``, for the record an announcement
        carries (once per delivered record per hub)."""
        ...

    def has(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        ...

    def record_count(self) -> int:
        """How many reconcile items (records) the hub holds."""
        ...

    def close(self) -> None:
        """Release files and memory."""
        ...


class SharedBlock:
    """One block of a run as every hub holds it: its CID and bytes, and for a record its
    reconcile item (sort key and hash) once made, so 10,000 hubs storing the record make
    it once."""

    __slots__ = ("cid", "data", "item", "ts")

    def __init__(self, cid: Cid, data: bytes) -> None:
        self.cid = cid
        self.data = data
        self.ts: int | None = None
        self.item: tuple[bytes, int] | None = None


class SharedStore:
    """Blocks in a dict and items in :class:`SharedItems`; bytes shared across hubs."""

    def __init__(self, table: ItemTable, blocks: dict[Cid, SharedBlock]) -> None:
        self.source = DictBlocks()
        self.items = SharedItems(table)
        self._table = table
        self._shared = blocks

    def put(self, blocks: list[tuple[Cid, bytes, int | None]]) -> None:
        """Write blocks, keeping one copy of each block's bytes per run."""
        for cid, data, ts in blocks:
            self.put_one(cid, data, ts)

    def put_one(self, cid: Cid, data: bytes, ts: int | None) -> None:
        """Write one block, keeping one copy of its bytes per run."""
        shared = self._shared.get(cid)
        if shared is None:
            shared = self._shared[cid] = SharedBlock(cid, data)
        self.source.blocks[shared.cid] = shared.data
        if ts is not None:
            item = shared.item
            if item is None or shared.ts != ts:
                item = shared.item = self._table.intern(item_key(ts, shared.cid))
                shared.ts = ts
            self.items.add_interned(item[0], item[1])

    def has(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        return cid in self.source.blocks

    def record_count(self) -> int:
        """How many records the hub holds."""
        return len(self.items)

    def close(self) -> None:
        """Nothing to release."""


class ArchiveStore:
    """A real archive store (memory or LMDB) written as node/p2p's driver writes it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.source = StoreBlockSource(store)
        self.items = StoreItems(store)

    def put(self, blocks: list[tuple[Cid, bytes, int | None]]) -> None:
        """Write the blocks in one transaction; records go into the indexes."""

        def write(txn: WriteTxn) -> None:
            for cid, data, ts in blocks:
                record = None
                if ts is not None:
                    try:
                        record = Record.from_block(data, cid)
                    except ArchiveError:
                        record = None
                if record is not None:
                    put_record(txn, record)
                else:
                    put_block(txn, cid, data, verified=True)

        self.store.transact(write)

    def put_one(self, cid: Cid, data: bytes, ts: int | None) -> None:
        """Write one block in a transaction of its own."""
        self.put([(cid, data, ts)])

    def has(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        return self.source.has_block(cid)

    def record_count(self) -> int:
        """How many records the hub holds."""
        with self.store.read() as txn:
            return count_records(txn)

    def close(self) -> None:
        """Close the store."""
        self.store.close()


def open_store(
    kind: str, table: ItemTable, blocks: dict[Cid, SharedBlock], folder: Path | None
) -> HubStore:
    """A hub's store of the scenario's ``store`` kind."""
    if kind == "shared":
        return SharedStore(table, blocks)
    if kind == "memory":
        from craftnet.archive.memory_store import MemoryStore

        return ArchiveStore(MemoryStore())
    from craftnet.archive.lmdb_store import LmdbStore

    assert folder is not None
    return ArchiveStore(LmdbStore(folder))
