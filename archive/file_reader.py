"""Reading files: their nodes and parts, and their bytes chunk by chunk, checked."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeVar

from craftnet.archive.blocks import get_block
from craftnet.archive.cid import Cid
from craftnet.archive.errors import IntegrityError, NotFound
from craftnet.archive.file_node import ChunkRef, FileInfo, parse_file_node, parse_file_part
from craftnet.archive.store import Store

T = TypeVar("T")


def file_info(store: Store, cid: Cid) -> FileInfo:
    """Read and validate the file node ``cid``."""
    with store.read() as txn:
        block = get_block(txn, cid)
    return parse_file_node(cid, block)


def iter_chunk_refs(store: Store, info: FileInfo) -> Iterator[ChunkRef]:
    """Every raw chunk of the file in order, reading part nodes as needed."""
    if not info.has_parts:
        yield from info.chunks
        return
    for ref in info.chunks:
        with store.read() as txn:
            block = get_block(txn, ref.cid)
        yield from parse_file_part(ref, block)


def iter_file(store: Store, cid: Cid, *, verify: bool = True) -> Iterator[bytes]:
    """Yield the file's bytes chunk by chunk, each checked against its CID.

    Batches of chunks are read and hashed by two helper threads (BLAKE3 and LMDB
    release the GIL), a few batches ahead of the consumer, so memory stays bounded.
    """
    info = file_info(store, cid)
    batches = batches_by_size(iter_chunk_refs(store, info), _ref_size, _READ_BATCH)
    with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="craftnet-cat") as pool:
        ahead: collections.deque[Future[list[bytes]]] = collections.deque()
        try:
            for batch in batches:
                ahead.append(pool.submit(_read_batch, store, batch, verify))
                if len(ahead) > _READERS:
                    yield from ahead.popleft().result()
            while ahead:
                yield from ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()


_READ_BATCH: Final = 4 * 1024 * 1024
_READERS: Final = max(2, min(4, os.cpu_count() or 2))


def _ref_size(ref: ChunkRef) -> int:
    return ref.size


def batches_by_size(items: Iterable[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """Group ``items`` in order into lists whose sizes add up to ``limit`` or just past it."""
    batch: list[T] = []
    total = 0
    for item in items:
        batch.append(item)
        total += size(item)
        if total >= limit:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _read_batch(store: Store, refs: list[ChunkRef], verify: bool) -> list[bytes]:
    # A short transaction per batch: no snapshot is held while the caller consumes
    # the data (a long reader keeps LMDB from reusing pages and blocks map growth).
    with store.read() as txn:
        datas = [txn.get("blocks", ref.cid.bytes) for ref in refs]
    out: list[bytes] = []
    for ref, data in zip(refs, datas, strict=True):
        if data is None:
            raise NotFound(f"chunk {ref.cid} of the file is not in this store")
        if len(data) != ref.size:
            raise IntegrityError(f"chunk {ref.cid} is {len(data)} bytes, the node says {ref.size}")
        if verify and not ref.cid.verify(data):
            raise IntegrityError(f"chunk {ref.cid} does not match its CID; run `craftnet verify`")
        out.append(data)
    return out
