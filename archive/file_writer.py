"""Adding files: the caller's thread cuts, writer threads hash and commit.

Adding a file streams it once, never holding it whole in memory. The caller's thread
reads big pieces (or maps a regular file), cuts chunks with FastCDC (a revised design
shares most chunks with its parent) and hands each piece to two threads: one hashes the
whole file with BLAKE3 (so ``b3sum`` of the file matches the archive's ``blake3``), the
other hashes each chunk and gathers batches that a committer thread stores, each batch
one transaction. All of them spend most of their time in C code that releases the GIL
(BLAKE3, FastCDC, LMDB), so they overlap; bounded queues keep memory flat whatever the
file's size.

Crash safety: chunks are written (and *staged*, :mod:`~craftnet.archive.staging`, so
garbage collection leaves them alone) in several transactions; the file node and its
pin are written in one final transaction only after every chunk is durable. An add that
fails unstages its chunks at once; a killed one leaves them staged until the stage is
stale (a day). Either way only unreferenced chunks remain, and garbage collection
removes them.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import mmap
import os
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, Final

import blake3
from pyfastcdc import FastCDC

from craftnet.archive import codec
from craftnet.archive.blocks import pin
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import IntegrityError
from craftnet.archive.file_node import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    DEFAULT_MEDIA_TYPE,
    FILE_TYPE,
    FILE_VERSION,
    EntryBuilder,
    FileInfo,
    check_media_type,
    check_name,
    encode_entries,
)
from craftnet.archive.staging import SESSION_LEN, clear_stage, stage_blocks
from craftnet.archive.store import Store, WriteTxn

READ_SIZE: Final = 8 * 1024 * 1024
# Bytes of chunks per transaction. LMDB holds a transaction's dirty pages in memory,
# and a stream's chunks sit in our buffers until their batch commits; chunks of a
# mapped file are views of the page cache, so that path affords bigger batches. Every
# commit flushes its data (fdatasync), and on a disk others write to as well each
# flush waits for their data too: a 512 MiB add under load (5-6 on 2 cores) took 1.68 s
# in batches of 32 MiB and 0.73 s in batches of 64 MiB (medians of 5; 96 MiB: 0.72 s),
# for about 32 MiB more anonymous memory. On a quiet disk the size barely matters.
BATCH_BYTES = 16 * 1024 * 1024
MAPPED_BATCH_BYTES = 64 * 1024 * 1024

Progress = Callable[[int, "int | None"], None]


class _Stage(threading.Thread):
    """A pipeline stage: takes items from a bounded queue, remembers the first error."""

    def __init__(self, name: str, depth: int) -> None:
        super().__init__(name=name, daemon=True)
        self.inbox: queue.Queue[_Piece | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                break
            if self.error is None:
                try:
                    self.handle(item)
                except BaseException as exc:
                    self.error = exc
        if self.error is None:
            try:
                self.finish()
            except BaseException as exc:
                self.error = exc

    def handle(self, piece: _Piece) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after the last piece."""

    def send(self, piece: _Piece | None) -> None:
        if self.error is not None and piece is not None:
            raise self.error
        self.inbox.put(piece)


@dataclass(frozen=True, slots=True)
class _Piece:
    """A stretch of the stream cut into whole chunks: ``data[cuts[i-1]:cuts[i]]``."""

    data: memoryview
    fresh: int  # where the bytes not seen in an earlier piece start
    cuts: tuple[int, ...]


class _Hasher(_Stage):
    """BLAKE3 of the whole stream, so ``b3sum`` of the file matches."""

    def __init__(self) -> None:
        super().__init__("craftnet-file-hash", depth=2)
        self.hash = blake3.blake3()

    def handle(self, piece: _Piece) -> None:
        self.hash.update(piece.data[piece.fresh :])


class _Writer(_Stage):
    """Hashes chunks and gathers them into batches for the committer."""

    def __init__(self, store: Store, session: bytes) -> None:
        super().__init__("craftnet-file-writer", depth=2)
        self.committer = _Committer(store, session)
        # Chunks are views into the pieces, which stay alive until their batch commits.
        self.batch: list[tuple[bytes, bytes | memoryview]] = []
        self.batch_bytes = 0
        self.limit = BATCH_BYTES
        self.builder = EntryBuilder(self._add)

    def start(self) -> None:
        self.committer.start()
        super().start()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.committer.hand(None)
            self.committer.join()
            if self.error is None:
                self.error = self.committer.error

    def handle(self, piece: _Piece) -> None:
        view = piece.data
        start = 0
        for end in piece.cuts:
            chunk = view[start:end]
            cid = Cid.of(chunk, RAW)
            self._add(cid.bytes, chunk)
            self.builder.add(cid, end - start)
            start = end

    def _add(self, key: bytes, data: bytes | memoryview) -> None:
        self.batch.append((key, data))
        self.batch_bytes += len(data)
        if self.batch_bytes >= self.limit:
            self._flush()

    def finish(self) -> None:
        self.entries = self.builder.finish()
        self._flush()

    def _flush(self) -> None:
        batch = self.batch
        if batch:
            self.batch, self.batch_bytes = [], 0
            self.committer.hand(batch)


_Batch = list[tuple[bytes, bytes | memoryview]]


class _Committer(threading.Thread):
    """Commits batches of chunks, so that an fsync overlaps hashing the next batch.

    It takes a batch only when idle: one batch commits while the next is gathered,
    which bounds memory to two batches.
    """

    def __init__(self, store: Store, session: bytes) -> None:
        super().__init__(name="craftnet-file-commit", daemon=True)
        self.store = store
        self.session = session
        self.idle = threading.Semaphore(1)
        self.inbox: queue.Queue[_Batch | None] = queue.Queue()
        self.error: BaseException | None = None

    def hand(self, batch: _Batch | None) -> None:
        if batch is not None:
            self.idle.acquire()
            if self.error is not None:
                self.idle.release()
                raise self.error
        self.inbox.put(batch)

    def run(self) -> None:
        while (batch := self.inbox.get()) is not None:
            try:
                if self.error is None:
                    self._commit(batch)
            except BaseException as exc:
                self.error = exc
            finally:
                del batch
                self.idle.release()

    def _commit(self, batch: _Batch) -> None:
        def fn(txn: WriteTxn) -> None:
            for key, data in batch:
                if not txn.has("blocks", key):
                    txn.put("blocks", key, data)
            stage_blocks(txn, self.session, [key for key, _ in batch])

        # Not durable one by one: the final, durable commit of the file node flushes
        # these too, and nothing refers to the chunks before it.
        self.store.transact(fn, durable=False)


def _readinto_func(stream: BinaryIO) -> Callable[[memoryview], int]:
    readinto = getattr(stream, "readinto", None)
    if callable(readinto):
        return readinto  # type: ignore[no-any-return]

    def fallback(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return fallback


def add_file(
    store: Store,
    stream: BinaryIO,
    *,
    name: str | None = None,
    media_type: str = DEFAULT_MEDIA_TYPE,
    total: int | None = None,
    on_progress: Progress | None = None,
    pin_it: bool = True,
) -> FileInfo:
    """Chunk ``stream`` into the store; write and pin its file node last. Returns its info.

    ``total`` (the size, if known) is only passed on to ``on_progress(done, total)``.
    """
    check_name(name)
    check_media_type(media_type)
    session = os.urandom(SESSION_LEN)
    mapped = _map_regular_file(stream)
    hasher = _Hasher()
    writer = _Writer(store, session)
    if mapped is not None:
        writer.limit = MAPPED_BATCH_BYTES
    hasher.start()
    writer.start()
    size = 0
    try:
        try:
            if mapped is None:
                size = _cut_stream(stream, (hasher, writer), total, on_progress)
            else:
                size = _cut_mapped(mapped, (hasher, writer), on_progress)
                stream.seek(0, os.SEEK_END)
        finally:
            for stage in (hasher, writer):
                stage.inbox.put(None)
                stage.join()
            if mapped is not None:
                # An error's traceback may still hold a view; the GC unmaps it later then.
                with contextlib.suppress(BufferError):
                    mapped.close()
        for stage in (hasher, writer):
            if stage.error is not None:
                raise stage.error
    except BaseException:
        # Unstage what was written, so the next gc may take it; if even that fails
        # (the disk is gone), the stage expires on its own.
        with contextlib.suppress(Exception):
            store.transact(partial(clear_stage, session=session))
        raise
    entries = writer.entries
    digest = hasher.hash.digest()
    value: dict[str, Any] = {
        "type": FILE_TYPE,
        "v": FILE_VERSION,
        "chunks": encode_entries(entries),
        "size": size,
        "media_type": media_type,
        "blake3": digest,
    }
    if name is not None:
        value["name"] = name
    node = codec.encode(value)
    cid = Cid.of(node, DAG_CBOR)

    def final(txn: WriteTxn) -> None:
        for entry in entries:
            if not txn.has("blocks", entry.cid.bytes):
                raise IntegrityError(
                    f"chunk {entry.cid} vanished while adding the file; add it again"
                )
        if not txn.has("blocks", cid.bytes):
            txn.put("blocks", cid.bytes, node)
        if pin_it:
            pin(txn, cid, name or "")
        clear_stage(txn, session)

    store.transact(final)
    return FileInfo(cid, size, media_type, name, digest, tuple(entries))


def _map_regular_file(stream: BinaryIO) -> mmap.mmap | None:
    """Map a regular file read from its start: cutting the map saves a copy per byte."""
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0 or stream.tell() != 0:
            return None
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def _cut_mapped(
    mapped: mmap.mmap, stages: tuple[_Stage, ...], on_progress: Progress | None
) -> int:
    """Cut a mapped file into pieces of about READ_SIZE, each ending on a chunk boundary."""
    chunker = FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX)
    whole = memoryview(mapped)
    total = len(whole)
    try:
        start = 0
        cuts: list[int] = []
        for chunk in chunker.cut_buf(whole):
            end = chunk.offset + chunk.length
            cuts.append(end - start)
            if end - start >= READ_SIZE or end == total:
                piece = _Piece(whole[start:end], 0, tuple(cuts))
                for stage in stages:
                    stage.send(piece)
                start, cuts = end, []
                if on_progress is not None:
                    on_progress(end, total)
            del chunk  # pyfastcdc's chunks hold views of the map
    finally:
        whole.release()
    return total


def _cut_stream(
    stream: BinaryIO,
    stages: tuple[_Stage, ...],
    total: int | None,
    on_progress: Progress | None,
) -> int:
    """Read ``stream`` in pieces cut at chunk boundaries and hand them to ``stages``."""
    chunker = FastCDC(CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX)
    readinto = _readinto_func(stream)
    carry = b""  # the tail of the previous piece, not yet a whole chunk
    done = 0
    eof = False
    while not eof:
        # A fresh buffer per piece: the stages still read the previous ones.
        buf = bytearray(len(carry) + READ_SIZE)
        buf[: len(carry)] = carry
        view = memoryview(buf)
        filled = len(carry)
        while filled < len(buf):
            n = readinto(view[filled:])
            if not n:
                eof = True
                break
            filled += n
        if filled < len(buf):
            view.release()
            del buf[filled:]
            view = memoryview(buf)
        if not filled:
            break
        done += filled - len(carry)
        cuts = [chunk.offset + chunk.length for chunk in chunker.cut_buf(view)]
        # The last cut of a piece may end only because the piece does; cut it again
        # together with what follows, unless the stream is over.
        keep = cuts if eof else cuts[:-1]
        last = keep[-1] if keep else 0
        piece = _Piece(view, len(carry), tuple(keep))
        carry = bytes(view[last:filled]) if not eof else b""
        for stage in stages:
            stage.send(piece)
        if on_progress is not None:
            on_progress(done, total)
    return done


def add_path(
    store: Store,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    media_type: str | None = None,
    on_progress: Progress | None = None,
    pin_it: bool = True,
) -> FileInfo:
    """Add the file at ``path``; name and media type default to its file name's."""
    path = os.fspath(path)
    base = os.path.basename(path)
    if media_type is None:
        media_type = mimetypes.guess_type(base)[0] or DEFAULT_MEDIA_TYPE
    with open(path, "rb", buffering=0) as stream:
        return add_file(
            store,
            stream,
            name=base if name is None else name,
            media_type=media_type,
            on_progress=on_progress,
            pin_it=pin_it,
        )
