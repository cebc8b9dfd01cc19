"""The change feed: a numbered log of the records a store gained, for readers elsewhere.

Every record written through :func:`craftnet.archive.index.put_record` (publish, ingest,
bundle import, CRDT operations, sync) is appended here in the same write transaction,
as ``seq -> ts(8) + CID``, with ``seq`` counting up from 1. So a reader in another
thread or process (``craftnet serve`` while the CLI publishes) learns of new records by
reading on from the last ``seq`` it handled, and after a crash the feed agrees with the
records: both were in one transaction, or neither was.

The feed keeps the newest :data:`FEED_KEEP` entries, so it costs a bounded amount of
space whatever the archive's size. A reader that falls further behind (a bundle of
many thousand records imported while the node was stopped) is told how many entries
it missed and resumes at the oldest kept one; such records reach other hubs by
reconciliation rather than announcement.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from craftnet.archive.cid import CID_BYTES_LEN, Cid
from craftnet.archive.errors import ArchiveError, StoreError
from craftnet.archive.store import ReadTxn, WriteTxn

FEED_DB: Final = "changes"
FEED_KEEP: Final = 4096
_SEQ: Final = struct.Struct(">Q")
_TS: Final = struct.Struct(">Q")
_ENTRY_LEN: Final = _TS.size + CID_BYTES_LEN


@dataclass(frozen=True, slots=True)
class Change:
    """One record the store gained: its place in the feed, HLC timestamp and CID."""

    seq: int
    ts: int
    cid: Cid


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """What :func:`changes_after` read: the changes, where to go on from, what was lost."""

    changes: list[Change]
    cursor: int  # the seq of the last change read (pass it back next time)
    missed: int  # entries dropped from the feed before this reader got to them


def append(txn: WriteTxn, item_keys: Sequence[bytes]) -> int:
    """Log records newly stored in ``txn`` (item keys: ts(8) + CID), in order; return the
    seq of the last one (the newest before, if ``item_keys`` is empty)."""
    for item_key in item_keys:
        if len(item_key) != _ENTRY_LEN:
            raise StoreError(
                f"a change is ts(8) + a {CID_BYTES_LEN}-byte CID, got {len(item_key)} bytes"
            )
    head = latest(txn)
    seq = head + len(item_keys)
    txn.put_all(FEED_DB, [(_SEQ.pack(head + n), key) for n, key in enumerate(item_keys, 1)])
    # Drop what fell out of the window (read FEED_KEEP at call time: tests lower it).
    keep = FEED_KEEP
    for old in range(max(1, head + 1 - keep), seq + 1 - keep):
        txn.delete(FEED_DB, _SEQ.pack(old))
    return seq


def latest(txn: ReadTxn) -> int:
    """The seq of the newest change (0 if the store never gained a record)."""
    last = next(txn.iterate(FEED_DB, reverse=True), None)
    return 0 if last is None else _seq(last[0])


def changes_after(txn: ReadTxn, cursor: int, limit: int = FEED_KEEP) -> ChangeBatch:
    """Up to ``limit`` changes after ``cursor`` (a seq this store gave out, or 0), oldest first."""
    if type(cursor) is not int or cursor < 0:
        raise ArchiveError(f"a change feed cursor is a seq (an int >= 0), got {cursor!r:.40}")
    if type(limit) is not int or limit < 1:
        raise ArchiveError(f"a change feed read takes at least 1 change, got {limit!r:.40}")
    changes: list[Change] = []
    missed = 0
    for key, value in txn.iterate(FEED_DB, _SEQ.pack(cursor + 1)):
        seq = _seq(key)
        if not changes:
            missed = seq - cursor - 1
        if len(value) != _ENTRY_LEN:
            raise StoreError(f"change {seq} of the feed is damaged ({len(value)} bytes)")
        changes.append(Change(seq, _TS.unpack_from(value)[0], Cid.from_bytes(value[_TS.size :])))
        if len(changes) >= limit:
            break
    if not changes:
        head = latest(txn)
        if head < cursor:
            raise ArchiveError(f"cursor {cursor} is ahead of this store's feed (at {head})")
        return ChangeBatch([], cursor, 0)
    return ChangeBatch(changes, changes[-1].seq, missed)


def _seq(key: bytes) -> int:
    if len(key) != _SEQ.size:
        raise StoreError(f"the change feed holds a damaged key {key.hex()[:40]}")
    return int(_SEQ.unpack(key)[0])
