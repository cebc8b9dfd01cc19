"""Staging: marks that keep the blocks of an add or import in progress from garbage collection.

A file add (:mod:`~craftnet.archive.file_writer`) or a bundle import writes its blocks
in several transactions and makes them reachable only in its last one; until then the
blocks are *staged* under a random session. :mod:`~craftnet.archive.gc` keeps staged
blocks, and drops a session's marks once they are stale (a killed process leaves them).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from typing import Final

from craftnet.archive.store import WriteTxn, prefix_end

STAGE_HEADER: Final = b"h"  # b"h" + session -> touch time (8 bytes, seconds)
STAGE_BY_SESSION: Final = b"s"  # b"s" + session + CID -> b""
STAGE_BY_CID: Final = b"c"  # b"c" + CID + session -> b""
SESSION_LEN: Final = 8


def stage_blocks(txn: WriteTxn, session: bytes, cids: Iterable[bytes]) -> None:
    """Mark blocks (CID bytes) as part of an add or import in progress, so gc keeps them.

    :func:`clear_stage` drops the marks in the transaction that makes the blocks
    reachable; a killed process leaves them to expire.
    """
    txn.put("staging", STAGE_HEADER + session, struct.pack(">Q", int(time.time())))
    for raw in cids:
        txn.put("staging", STAGE_BY_SESSION + session + raw, b"")
        txn.put("staging", STAGE_BY_CID + raw + session, b"")


def clear_stage(txn: WriteTxn, session: bytes) -> int:
    """Drop a staging session and its entries; return how many blocks it held."""
    prefix = STAGE_BY_SESSION + session
    keys = [key for key, _ in txn.iterate("staging", prefix, _prefix_stop(prefix))]
    for key in keys:
        txn.delete("staging", key)
        txn.delete("staging", STAGE_BY_CID + key[len(prefix) :] + session)
    txn.delete("staging", STAGE_HEADER + session)
    return len(keys)


def _prefix_stop(prefix: bytes) -> bytes:
    stop = prefix_end(prefix)
    assert stop is not None
    return stop
