"""Garbage collection: remove blocks that nothing the hub keeps can reach.

Roots are pinned blocks (``pins``), record blocks (``records``, kept by the index) and
the chunks of file adds still in progress (``staging``). Everything a root links to is
reachable: a dag-cbor block's links (tag 42 CIDs anywhere in its value), so a record's
links and a file node's chunks and parts are kept.

Mark runs in one read snapshot, so writers are never blocked while the graph is walked.
Sweep then deletes in small write transactions, and only blocks that were already
present and unreachable in that snapshot: a block added during the collection is never
a candidate. Each sweep transaction checks each candidate again against the roots as
they are *now* (a new pin, record, staged chunk or record link keeps it, together with
everything it links to), and structured blocks are swept before chunks so that a file
node that was pinned meanwhile still protects its chunks.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Final

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import ArchiveError
from craftnet.archive.staging import STAGE_BY_CID, STAGE_BY_SESSION, STAGE_HEADER, clear_stage
from craftnet.archive.store import ReadTxn, Store, WriteTxn, prefix_end

SWEEP_BATCH: Final = 1000
STALE_AFTER: Final = 24 * 3600  # seconds after which an unfinished file add is abandoned


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a collection found and removed."""

    blocks_before: int
    reachable: int
    removed: int
    bytes_freed: int
    kept_late: int  # unreachable at mark time, referenced again before the sweep
    stale_stages: int  # abandoned file adds whose chunks became collectable
    seconds: float


def links_of(block: bytes) -> Iterator[Cid]:
    """Every CID (tag 42) anywhere in a dag-cbor block; nothing if it does not decode."""
    try:
        value = codec.decode(block)
    except ArchiveError:
        return  # damaged blocks are verify's business; they link to nothing here
    yield from codec.iter_links(value)


def _walk(txn: ReadTxn, roots: Iterable[bytes], seen: set[bytes]) -> None:
    """Add to ``seen`` everything reachable from ``roots`` (as CID bytes)."""
    stack = [root for root in roots if root not in seen]
    seen.update(stack)
    while stack:
        key = stack.pop()
        if len(key) < 2 or key[1] != DAG_CBOR:
            continue  # raw chunks link to nothing; no need to read them
        block = txn.get("blocks", key)
        if block is None:
            continue
        for link in links_of(block):
            raw = link.bytes
            if raw not in seen:
                seen.add(raw)
                stack.append(raw)


def _stages(txn: ReadTxn, now: int, stale_after: int) -> tuple[list[bytes], list[bytes]]:
    """Split staging sessions into (fresh, stale) by the time they were last touched."""
    fresh: list[bytes] = []
    stale: list[bytes] = []
    stop = prefix_end(STAGE_HEADER)
    for key, value in txn.iterate("staging", STAGE_HEADER, stop):
        session = key[len(STAGE_HEADER) :]
        touched = struct.unpack(">Q", value)[0] if len(value) == 8 else 0
        (fresh if now - touched < stale_after else stale).append(session)
    return fresh, stale


def _staged_cids(txn: ReadTxn, sessions: list[bytes]) -> Iterator[bytes]:
    for session in sessions:
        prefix = STAGE_BY_SESSION + session
        for key, _ in txn.iterate("staging", prefix, prefix_end(prefix)):
            yield key[len(prefix) :]


def _has_prefix(txn: ReadTxn, db: str, prefix: bytes) -> bool:
    return any(True for _ in txn.iterate(db, prefix, prefix_end(prefix)))


def _rooted_now(txn: WriteTxn, key: bytes) -> bool:
    """Whether a pin, record, staged add or record link names ``key`` right now."""
    return (
        txn.has("pins", key)
        or txn.has("records", key)
        or _has_prefix(txn, "staging", STAGE_BY_CID + key)
        or _has_prefix(txn, "links_rev", key)
    )


def collect_garbage(
    store: Store,
    *,
    stale_after: int = STALE_AFTER,
    batch: int = SWEEP_BATCH,
    now: int | None = None,
) -> GcReport:
    """Remove unreachable blocks; see the module docstring for what stays."""
    started = time.monotonic()
    clock = int(time.time()) if now is None else now
    reachable: set[bytes] = set()
    candidates: list[bytes] = []
    with store.read() as txn:
        fresh, stale = _stages(txn, clock, stale_after)
        roots: list[bytes] = [key for key, _ in txn.iterate("pins")]
        roots.extend(key for key, _ in txn.iterate("records"))
        roots.extend(_staged_cids(txn, fresh))
        _walk(txn, roots, reachable)
        blocks_before = 0
        for key, _ in txn.iterate("blocks"):
            blocks_before += 1
            if key not in reachable:
                candidates.append(key)
    stale_count = 0
    for session in stale:
        store.transact(partial(clear_stage, session=session))
        stale_count += 1
    # Structured blocks first: one that became rooted protects its chunks in time.
    candidates.sort(key=lambda key: (len(key) < 2 or key[1] != DAG_CBOR, key))
    protected: set[bytes] = set()
    removed = freed = kept = 0
    for i in range(0, len(candidates), batch):
        part = candidates[i : i + batch]
        result = store.transact(partial(_sweep, keys=part, protected=protected))
        removed += result[0]
        freed += result[1]
        kept += result[2]
        protected.update(result[3])
    return GcReport(
        blocks_before=blocks_before,
        reachable=blocks_before - len(candidates),
        removed=removed,
        bytes_freed=freed,
        kept_late=kept,
        stale_stages=stale_count,
        seconds=time.monotonic() - started,
    )


def _sweep(
    txn: WriteTxn, keys: list[bytes], protected: set[bytes]
) -> tuple[int, int, int, set[bytes]]:
    # Pure in its inputs: the store may run it again after growing its map.
    removed = freed = kept = 0
    newly: set[bytes] = set()
    for key in keys:
        if key in protected or key in newly or _rooted_now(txn, key):
            kept += 1
            _walk(txn, [key], newly)
            continue
        block = txn.get("blocks", key)
        if block is not None and txn.delete("blocks", key):
            removed += 1
            freed += len(block)
    return removed, freed, kept, newly
