"""Reading files: their nodes and parts, and their bytes chunk by chunk, checked."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import BinaryIO, Final, TypeVar, cast

import blake3

from craftnet.archive.blocks import get_block
from craftnet.archive.cid import Cid
from craftnet.archive.errors import IntegrityError, NotFound
from craftnet.archive.file_node import ChunkRef, FileInfo, parse_file_node, parse_file_part
from craftnet.archive.store import Store, ViewStore

T = TypeVar("T")
_blake3: Final = blake3.blake3


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

    Each chunk is a copy the caller may keep. Chunks are hashed by helper threads a few
    batches ahead of the consumer (BLAKE3 releases the GIL) straight from the store's
    memory, and copied once, after their check; memory stays bounded.
    """
    yield from iter_chunks(store, iter_chunk_refs(store, file_info(store, cid)), verify=verify)


def iter_chunks(store: Store, refs: Iterable[ChunkRef], *, verify: bool = True) -> Iterator[bytes]:
    """Yield the bytes of the chunks ``refs`` in order, each checked like :func:`iter_file`.

    For reading part of a file (the web API's ranges): pass the chunks that overlap it.
    """
    for batch in _checked_batches(store, refs, verify, copy=True):
        yield from batch  # type: ignore[misc]  # copy=True: every item is bytes


def iter_file_views(store: Store, cid: Cid, *, verify: bool = True) -> Iterator[memoryview]:
    """Yield the file's bytes chunk by chunk as read-only views, each checked first.

    Zero-copy: on a store with :meth:`~craftnet.archive.store.ViewStore.read_views`
    the views point into the store's memory, so **a view is valid only until the
    next one is asked for** (or the generator is closed): write it out or copy it at
    once (``b"".join(iter_file_views(...))`` is wrong; use :func:`iter_file`). For
    streaming a file to a sink: ``craftnet cat``, :func:`write_file`.
    """
    refs = iter_chunk_refs(store, file_info(store, cid))
    for batch in _checked_batches(store, refs, verify, copy=False):
        for view in batch:
            yield view  # type: ignore[misc]  # copy=False: every item is a view
            # Drop our reference before the batch's transaction ends.
            del view


def write_file(store: Store, cid: Cid, out: BinaryIO, *, verify: bool = True) -> int:
    """Write the file's bytes to ``out``, each chunk checked before it is written.

    Zero-copy from the store to ``out.write`` (see :func:`iter_file_views`); returns the
    number of bytes written. On a damaged chunk the bytes before it have been written.
    """
    written = 0
    for view in iter_file_views(store, cid, verify=verify):
        out.write(view)
        written += len(view)
    return written


def _checked_batches(
    store: Store, refs: Iterable[ChunkRef], verify: bool, *, copy: bool
) -> Iterator[list[bytes] | list[memoryview]]:
    """The file's chunks in batches of about _READ_BATCH bytes, each batch checked.

    Views of a batch are taken on this thread from a read transaction of its own, the
    batch is hashed on a helper thread, and the transaction stays open until the
    consumer asks for the batch after it (a copied batch closes it at once). At most
    _AHEAD batches are in flight: memory and open snapshots stay bounded.
    """
    views = isinstance(store, ViewStore)
    # Copies stay alive until the consumer drops them: in small batches fewer are alive
    # at once, and a helper's next copy lands in memory still in the cache.
    batches = batches_by_size(refs, _ref_size, _COPY_BATCH if copy else _READ_BATCH)
    with ExitStack() as open_reads, ThreadPoolExecutor(
        max_workers=_HASHERS, thread_name_prefix="craftnet-cat"
    ) as pool:
        ahead: collections.deque[tuple[ExitStack, Future[list[bytes] | list[memoryview]]]]
        ahead = collections.deque()
        try:
            for refs in batches:
                snapshot = ExitStack()
                open_reads.callback(snapshot.close)  # closed on errors and early exits
                datas = _take(snapshot, store, refs, views)
                ahead.append((snapshot, pool.submit(_check_batch, refs, datas, verify, copy)))
                if len(ahead) > _AHEAD:
                    yield from _hand_out(ahead.popleft(), copy)
            while ahead:
                yield from _hand_out(ahead.popleft(), copy)
        finally:
            for _, future in ahead:
                future.cancel()
            # Helper threads may still hash views of open snapshots: wait for them
            # (the pool's exit) before the snapshots close (open_reads' exit).
            pool.shutdown(wait=True)


def _take(
    snapshot: ExitStack, store: Store, refs: list[ChunkRef], views: bool
) -> list[memoryview | None]:
    """Views of the batch's chunks (``None`` where missing) from a new snapshot."""
    if views:
        view_txn = snapshot.enter_context(cast(ViewStore, store).read_views())
        return [view_txn.get_view("blocks", ref.cid.bytes) for ref in refs]
    # Any other store hands out bytes (the memory store keeps them): view them.
    with store.read() as txn:
        found = [txn.get("blocks", ref.cid.bytes) for ref in refs]
    return [None if data is None else memoryview(data) for data in found]


def _hand_out(
    entry: tuple[ExitStack, Future[list[bytes] | list[memoryview]]], copy: bool
) -> Iterator[list[bytes] | list[memoryview]]:
    """Yield one checked batch, then close its snapshot.

    Copies need no snapshot: it closes before they are handed out. Views need it until
    the consumer asks for the next batch, which is when the ``yield`` returns. On an
    error the caller's ExitStack closes it.
    """
    snapshot, future = entry
    batch = future.result()
    if copy:
        snapshot.close()
    yield batch
    snapshot.close()


def _check_batch(
    refs: list[ChunkRef], datas: list[memoryview | None], verify: bool, copy: bool
) -> list[bytes] | list[memoryview]:
    """On a helper thread: check each chunk's size and hash (a copy, if asked for)."""
    # Few Python steps a chunk: a helper holds the GIL only between its hashes, and the
    # other helper and the consumer wait for it then (blake3 itself releases it).
    out: list[bytes] = []
    keep = out.append
    hasher = _blake3
    for ref, view in zip(refs, datas, strict=True):
        if view is None:
            raise NotFound(f"chunk {ref.cid} of the file is not in this store")
        if len(view) != ref.size:
            raise IntegrityError(f"chunk {ref.cid} is {len(view)} bytes, the node says {ref.size}")
        # A copy is taken first and hashed while it is still in the core's cache (a
        # chunk is at most 1 MiB): one pass over memory, and the bytes handed out are
        # the very bytes checked.
        data = bytes(view) if copy else view
        # BLAKE3 releases the GIL while it hashes: the helpers hash at once.
        if verify and hasher(data).digest() != ref.cid.digest:
            raise IntegrityError(f"chunk {ref.cid} does not match its CID; run `craftnet verify`")
        if copy:
            keep(data)  # type: ignore[arg-type]  # bytes when copying
    if copy:
        return out
    return cast(list[memoryview], datas)


# 4 MiB batches: few Python steps per byte, and two batches in flight per helper keep
# both cores hashing while the consumer writes out an earlier batch. Copies come in
# 2 MiB batches: up to _AHEAD + 1 batches of them are alive at once, and their memory
# is the next copies' destination; one thread copying and hashing 512 MiB chunk by
# chunk took 0.117 CPU s keeping 4 chunks alive, 0.141 s keeping 64 (about 20 MiB:
# 4 MiB batches), as the copies then write to memory no longer in the cache.
_READ_BATCH: Final = 4 * 1024 * 1024
_COPY_BATCH: Final = 2 * 1024 * 1024
_HASHERS: Final = max(2, min(4, os.cpu_count() or 2))
_AHEAD: Final = 2 * _HASHERS


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
