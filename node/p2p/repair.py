"""Damaged blocks back on the hub's want list: the peer side of ``craftnet verify --repair``.

A block whose stored bytes no longer hash to its CID is removed, and in the same
transaction its CID joins the want list that the hub keeps in its store (see
``writes.WANTS_KEY``). Removed, the block is simply missing: the block exchange asks the
connected members for it when the hub next starts (``craftnet serve``, ``craftnet sync``,
``craftnet verify --repair --from ADDR``), and a bundle that holds it stores it as new.
The want list is merged through the block exchange's own export format, so the running
engine reads it as if it had written it. Nothing here does networking.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable

from craftnet.archive.blocks import find_block, has_block, remove_damaged
from craftnet.archive.cid import Cid
from craftnet.archive.meta import get_meta, put_meta
from craftnet.archive.store import ReadTxn, Store, WriteTxn
from craftnet.node.p2p.writes import WANTS_KEY
from craftnet.protocol.blocks import BlockExchange
from craftnet.protocol.errors import ProtocolError


class _Held:
    """The blocks of one transaction, as the block exchange asks about them."""

    def __init__(self, txn: ReadTxn) -> None:
        self._txn = txn

    def has_block(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        return has_block(self._txn, cid)

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None."""
        return find_block(self._txn, cid)


def want_in(txn: WriteTxn, cids: Iterable[Cid]) -> None:
    """Add ``cids`` to the want list saved in the store (an unreadable one is replaced)."""
    exchange = BlockExchange(_Held(txn), random.Random(0))
    saved = get_meta(txn, WANTS_KEY)
    if saved:
        # An unreadable list is replaced: the hub's reconcile rebuilds what it named.
        with contextlib.suppress(ProtocolError):
            exchange.import_wants(saved)
    exchange.want(list(cids))
    put_meta(txn, WANTS_KEY, exchange.export_wants())


def remove_and_want(store: Store, cids: Iterable[Cid]) -> list[Cid]:
    """Remove the damaged blocks among ``cids`` and want them, in one transaction."""
    candidates = list(cids)

    def run(txn: WriteTxn) -> list[Cid]:
        removed = remove_damaged(txn, candidates)
        if removed:
            want_in(txn, removed)
        return removed

    return store.transact(run)


def saved_wants(store: Store) -> list[Cid]:
    """The CIDs on the want list saved in the store."""
    with store.read() as txn:
        exchange = BlockExchange(_Held(txn), random.Random(0))
        saved = get_meta(txn, WANTS_KEY)
        if saved:
            exchange.import_wants(saved)
        return sorted(exchange.wants)
