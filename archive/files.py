"""Files: content-defined chunks as raw blocks, listed by one DAG-CBOR file node.

Adding a file streams it once, never holding it whole in memory. The caller's thread
reads big pieces, hashes the whole file with BLAKE3 (so ``b3sum`` of the file matches
the archive's ``blake3``), cuts chunks with FastCDC (a revised design shares most chunks
with its parent) and hashes each chunk; a writer thread stores batches of chunks, each
batch one durable transaction. Both sides spend most of their time in C code that
releases the GIL (BLAKE3, FastCDC, LMDB), so they overlap; a bounded queue keeps memory
flat whatever the file's size.

Crash safety: chunks are written (and *staged*, so garbage collection leaves them
alone) in several transactions; the file node and its pin are written in one final
transaction only after every chunk is durable. An add that fails unstages its chunks at
once; a killed one leaves them staged until the stage is stale (a day). Either way only
unreferenced chunks remain, and garbage collection removes them.

The file node (``v`` 1)::

    {"type": "file", "v": 1, "size": 1234567, "media_type": "model/stl",
     "name": "spindle-whorl.stl", "blake3": <32 bytes>,
     "chunks": [{"cid": <raw CID>, "size": 262144}, ...]}

A node lists at most :data:`MAX_ENTRIES` entries. A bigger file lists *parts* instead:
entries whose CID is dag-cbor and names ``{"type": "file-part", "v": 1, "chunks": [...]}``
with up to :data:`MAX_ENTRIES` raw chunks each (one level only), which is enough for
files of many terabytes.
"""

from __future__ import annotations

import collections
import contextlib
import io
import mimetypes
import mmap
import os
import queue
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, Final, TypeVar

import blake3
from pyfastcdc import FastCDC

from craftnet.archive import codec
from craftnet.archive.blocks import MAX_BLOCK_SIZE, get_block, pin
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError, CodecError, IntegrityError, NotFound
from craftnet.archive.store import Store, WriteTxn, prefix_end

T = TypeVar("T")

CHUNK_MIN: Final = 64 * 1024
CHUNK_AVG: Final = 256 * 1024
CHUNK_MAX: Final = 1024 * 1024
MAX_ENTRIES: Final = 8192  # entries per node: ~60 bytes each keeps a node near 0.5 MiB
FILE_TYPE: Final = "file"
PART_TYPE: Final = "file-part"
FILE_VERSION: Final = 1
MAX_NAME: Final = 255
MAX_MEDIA_TYPE: Final = 255
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
DEFAULT_MEDIA_TYPE: Final = "application/octet-stream"
_FILE_KEYS: Final = frozenset({"type", "v", "chunks", "size", "media_type", "blake3"})
_PART_KEYS: Final = frozenset({"type", "v", "chunks"})

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One entry of a file node: a raw chunk, or (in very large files) a part node."""

    cid: Cid
    size: int


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A parsed, validated file node."""

    cid: Cid
    size: int
    media_type: str
    name: str | None
    blake3: bytes
    chunks: tuple[ChunkRef, ...]

    @property
    def blake3_hex(self) -> str:
        """The whole file's BLAKE3 in hex, as ``b3sum`` prints it."""
        return self.blake3.hex()

    @property
    def has_parts(self) -> bool:
        """Whether the entries are part nodes rather than chunks."""
        return bool(self.chunks) and self.chunks[0].cid.codec == DAG_CBOR


# --- staging: keeps chunks of an add in progress safe from garbage collection -------

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


# --- adding --------------------------------------------------------------------------


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
        self.builder = _Builder(self._add)

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


class _Builder:
    """Collects chunk entries; past MAX_ENTRIES it turns groups of them into parts."""

    def __init__(self, emit: Callable[[bytes, bytes], None]) -> None:
        self.entries: list[ChunkRef] = []
        self.parts: list[ChunkRef] = []
        self._emit = emit

    def add(self, cid: Cid, size: int) -> None:
        self.entries.append(ChunkRef(cid, size))
        if len(self.entries) == MAX_ENTRIES:
            self._close_part()

    def _close_part(self) -> None:
        part = {"type": PART_TYPE, "v": FILE_VERSION, "chunks": _encode(self.entries)}
        block = codec.encode(part)
        cid = Cid.of(block, DAG_CBOR)
        self._emit(cid.bytes, block)
        self.parts.append(ChunkRef(cid, sum(e.size for e in self.entries)))
        self.entries = []

    def finish(self) -> list[ChunkRef]:
        if not self.parts:
            return self.entries
        if self.entries:
            self._close_part()
        if len(self.parts) > MAX_ENTRIES:
            raise ArchiveError(
                f"file too large: more than {MAX_ENTRIES * MAX_ENTRIES} chunks "
                f"(about {MAX_ENTRIES * MAX_ENTRIES * (CHUNK_AVG + CHUNK_MIN) >> 40} TiB)"
            )
        return self.parts


def _encode(entries: list[ChunkRef]) -> list[dict[str, Any]]:
    return [{"cid": e.cid, "size": e.size} for e in entries]


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
    _check_name(name)
    _check_media_type(media_type)
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
        "chunks": _encode(entries),
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


def _check_name(name: str | None) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise ArchiveError(f"a file name is 1..{MAX_NAME} characters")
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise ArchiveError(f"a file name may not hold '/' or NUL: {name!r}")


def _check_media_type(media_type: str) -> None:
    if not isinstance(media_type, str) or not 0 < len(media_type) <= MAX_MEDIA_TYPE:
        raise ArchiveError(f"a media type is 1..{MAX_MEDIA_TYPE} characters, like model/stl")
    if "/" not in media_type or any(c.isspace() for c in media_type):
        raise ArchiveError(f"not a media type (type/subtype): {media_type!r}")


# --- reading -------------------------------------------------------------------------


def parse_file_node(cid: Cid, block: bytes) -> FileInfo:
    """Validate a file node's bytes (hostile input) and return its info."""
    if cid.codec != DAG_CBOR:
        raise IntegrityError(f"{cid} is a {cid.codec_name} block, not a file node")
    if not cid.verify(block):
        raise IntegrityError(f"block {cid} does not match its CID")
    value = _decode(cid, block)
    if not isinstance(value, dict) or value.get("type") != FILE_TYPE:
        raise IntegrityError(f"{cid} is not a file node (type must be 'file')")
    _check_version(cid, value)
    keys = set(value)
    if not keys >= _FILE_KEYS or keys - _FILE_KEYS - {"name"}:
        raise IntegrityError(
            f"file node {cid} has fields {sorted(keys)}; expected {sorted(_FILE_KEYS)} (+ name)"
        )
    size = value["size"]
    if type(size) is not int or not 0 <= size < 2**63:
        raise IntegrityError(f"file node {cid}: size must be a non-negative integer")
    media_type = value["media_type"]
    name = value.get("name")
    try:
        _check_media_type(media_type)
        _check_name(name)
    except ArchiveError as exc:
        raise IntegrityError(f"file node {cid}: {exc}") from exc
    digest = value["blake3"]
    if type(digest) is not bytes or len(digest) != 32:
        raise IntegrityError(f"file node {cid}: blake3 must be 32 bytes")
    entries = _parse_entries(cid, value["chunks"], allow_parts=True)
    if sum(e.size for e in entries) != size:
        raise IntegrityError(f"file node {cid}: chunk sizes do not add up to size {size}")
    return FileInfo(cid, size, media_type, name, digest, entries)


def _decode(cid: Cid, block: bytes) -> Any:
    try:
        return codec.decode(block)
    except CodecError as exc:
        raise IntegrityError(f"block {cid} is not valid DAG-CBOR: {exc}") from exc


def _check_version(cid: Cid, value: dict[str, Any]) -> None:
    version = value.get("v")
    if type(version) is not int or version < 1:
        raise IntegrityError(f"{cid}: version 'v' must be a positive integer")
    if version != FILE_VERSION:
        raise ArchiveError(
            f"{cid} is a version {version} file node; this craftnet reads version "
            f"{FILE_VERSION}. Upgrade craftnet to read it."
        )


def _parse_entries(cid: Cid, raw: Any, *, allow_parts: bool) -> tuple[ChunkRef, ...]:
    if not isinstance(raw, list):
        raise IntegrityError(f"{cid}: chunks must be a list")
    if len(raw) > MAX_ENTRIES:
        raise IntegrityError(f"{cid}: {len(raw)} entries; a node lists at most {MAX_ENTRIES}")
    entries: list[ChunkRef] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"cid", "size"}:
            raise IntegrityError(f"{cid}: a chunk entry is {{cid, size}}")
        link, size = item["cid"], item["size"]
        if not isinstance(link, Cid):
            raise IntegrityError(f"{cid}: a chunk entry's cid must be a link")
        if type(size) is not int or size < 1:
            raise IntegrityError(f"{cid}: chunk sizes are positive integers")
        if link.codec == RAW:
            if size > MAX_BLOCK_SIZE:
                raise IntegrityError(f"{cid}: chunk {link} claims {size} bytes, over the limit")
        elif not allow_parts:
            raise IntegrityError(f"{cid}: a file part lists raw chunks only, not {link}")
        elif size > MAX_ENTRIES * MAX_BLOCK_SIZE:
            raise IntegrityError(f"{cid}: part {link} claims {size} bytes, over the limit")
        entries.append(ChunkRef(link, size))
    if len({e.cid.codec for e in entries}) > 1:
        raise IntegrityError(f"{cid}: entries mix chunks and parts")
    return tuple(entries)


def parse_file_part(ref: ChunkRef, block: bytes) -> tuple[ChunkRef, ...]:
    """Check a file-part node (of a very large file) against ``ref``; return its entries."""
    if not ref.cid.verify(block):
        raise IntegrityError(f"file part {ref.cid} does not match its CID")
    value = _decode(ref.cid, block)
    if not isinstance(value, dict) or value.get("type") != PART_TYPE:
        raise IntegrityError(f"{ref.cid} is not a file part")
    _check_version(ref.cid, value)
    if set(value) != _PART_KEYS:
        raise IntegrityError(f"file part {ref.cid} has fields {sorted(value)}")
    entries = _parse_entries(ref.cid, value["chunks"], allow_parts=False)
    if sum(e.size for e in entries) != ref.size:
        raise IntegrityError(f"file part {ref.cid} does not hold the {ref.size} bytes claimed")
    return entries


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
