"""Files go in as chunks plus one file node, and come out byte for byte, verified."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import blake3
import pytest

from craftnet.archive import codec, file_node, file_reader
from craftnet.archive.blocks import get_pin, put_block, put_raw
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError, IntegrityError, NotFound
from craftnet.archive.files import (
    CHUNK_MAX,
    CHUNK_MIN,
    FileInfo,
    add_file,
    add_path,
    file_info,
    iter_chunk_refs,
    iter_chunks,
    iter_file,
    iter_file_views,
    parse_file_node,
    write_file,
)
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.store import Store

MiB = 1024 * 1024


def design_bytes(size: int, seed: int = 7) -> bytes:
    """Deterministic, incompressible-looking bytes: a stand-in for an STL or a photo."""
    return random.Random(seed).randbytes(size)


def cat(store: Store, cid: Cid) -> bytes:
    return b"".join(iter_file(store, cid))


@pytest.mark.parametrize("size", [0, 1, CHUNK_MIN - 1, 3 * MiB + 12345])
def test_round_trip(store: Store, size: int) -> None:
    data = design_bytes(size)
    info = add_file(store, io.BytesIO(data), name="spindle-whorl.stl", media_type="model/stl")
    assert info.size == size
    assert info.blake3 == blake3.blake3(data).digest()  # what `b3sum` prints
    assert cat(store, info.cid) == data
    assert file_info(store, info.cid) == info
    assert all(1 <= ref.size <= CHUNK_MAX for ref in info.chunks)
    assert all(ref.size >= CHUNK_MIN for ref in info.chunks[:-1])
    with store.read() as txn:
        pinned = get_pin(txn, info.cid)
        assert pinned is not None and pinned.name == "spindle-whorl.stl"
        assert txn.count("staging") == 0  # the stage is gone once the node is written


def test_file_on_disk_and_stream_give_the_same_node(store: Store, tmp_path: Path) -> None:
    data = design_bytes(5 * MiB, seed=3)
    path = tmp_path / "loom-frame.step"
    path.write_bytes(data)
    from_disk = add_path(store, path)  # mapped, not read
    from_stream = add_file(
        store, io.BytesIO(data), name="loom-frame.step", media_type=from_disk.media_type
    )
    assert from_disk == from_stream
    assert from_disk.name == "loom-frame.step"


class ReadOnly:
    """A stream with only read(), as some pipes and wrappers are."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._inner.read(min(n, 1000))  # short reads, too


def test_stream_without_readinto(store: Store) -> None:
    data = design_bytes(2 * MiB + 5, seed=11)
    info = add_file(store, ReadOnly(data))  # type: ignore[arg-type]
    assert cat(store, info.cid) == data
    assert info == add_file(store, io.BytesIO(data))


def test_a_revised_design_shares_most_chunks(store: Store) -> None:
    original = design_bytes(6 * MiB, seed=21)
    revised = original[: 3 * MiB] + b"Neo-Vernacular revision" + original[3 * MiB :]
    first = add_file(store, io.BytesIO(original))
    second = add_file(store, io.BytesIO(revised))
    shared = {r.cid for r in first.chunks} & {r.cid for r in second.chunks}
    assert len(shared) >= len(first.chunks) - 2
    assert cat(store, second.cid) == revised


def test_adding_twice_stores_nothing_new(store: Store) -> None:
    data = design_bytes(MiB)
    first = add_file(store, io.BytesIO(data))
    with store.read() as txn:
        blocks = txn.count("blocks")
    assert add_file(store, io.BytesIO(data)) == first
    with store.read() as txn:
        assert txn.count("blocks") == blocks


def test_progress_reports_growing_counts(store: Store, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    data = design_bytes(20 * MiB, seed=5)
    add_file(store, io.BytesIO(data), total=len(data), on_progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (len(data), len(data))
    path = tmp_path / "kiln.gcode"
    path.write_bytes(data)
    seen.clear()
    add_path(store, path, on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(data), len(data))


def test_very_large_files_use_part_nodes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_node, "MAX_ENTRIES", 5)  # as if the file had millions of chunks
    data = design_bytes(4 * MiB, seed=9)
    info = add_file(store, io.BytesIO(data))
    assert info.has_parts
    assert all(ref.cid.codec == DAG_CBOR for ref in info.chunks)
    assert cat(store, info.cid) == data
    monkeypatch.setattr(file_node, "MAX_ENTRIES", 2)
    with pytest.raises(ArchiveError, match="too large"):
        add_file(store, io.BytesIO(design_bytes(6 * MiB)))


class Boom(Exception):
    pass


class FailingStream(io.RawIOBase):
    """Gives ``good`` bytes, then fails like a USB stick pulled out."""

    def __init__(self, good: bytes) -> None:
        self._inner = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._inner.readinto(buf)
        if not n:
            raise Boom("device disconnected")
        return n


def test_a_failed_add_leaves_only_unreferenced_chunks(store: Store) -> None:
    with pytest.raises(Boom):
        add_file(store, FailingStream(design_bytes(40 * MiB)))  # > one chunk batch
    with store.read() as txn:
        assert txn.count("pins") == 0
        assert txn.count("blocks") > 0
        for key, _ in txn.iterate("blocks"):
            assert Cid.from_bytes(key).codec == RAW  # chunks only: no file node
        assert txn.count("staging") == 0  # unstaged at once: the next gc may take them


def test_bad_names_and_media_types_are_refused(store: Store) -> None:
    for kwargs in (
        {"name": "../etc/passwd"},
        {"name": ""},
        {"name": "x" * 300},
        {"media_type": "stl"},
        {"media_type": "model/ stl"},
    ):
        with pytest.raises(ArchiveError):
            add_file(store, io.BytesIO(b"x"), **kwargs)


# --- hostile file nodes ----------------------------------------------------------


def good_node(**changes: Any) -> dict[str, Any]:
    chunk = Cid.of(b"chunk")
    node: dict[str, Any] = {
        "type": "file",
        "v": 1,
        "chunks": [{"cid": chunk, "size": 5}],
        "size": 5,
        "media_type": "image/svg+xml",
        "name": "rosette.svg",
        "blake3": blake3.blake3(b"chunk").digest(),
    }
    for key, value in changes.items():
        if value is ...:
            del node[key]
        else:
            node[key] = value
    return node


def parse(node: Any) -> FileInfo:
    block = codec.encode(node)
    return parse_file_node(Cid.of(block, DAG_CBOR), block)


def test_the_good_node_parses() -> None:
    assert parse(good_node()).size == 5
    assert parse(good_node(name=...)).name is None


@pytest.mark.parametrize(
    "changes",
    [
        {"size": 6},
        {"size": -1},
        {"size": "5"},
        {"type": "design"},
        {"v": 0},
        {"v": "1"},
        {"chunks": {}},
        {"chunks": [{"cid": Cid.of(b"chunk"), "size": 0}], "size": 0},
        {"chunks": [{"cid": Cid.of(b"chunk"), "size": 5, "extra": 1}]},
        {"chunks": [{"cid": Cid.of(b"chunk").bytes, "size": 5}]},
        {"chunks": [{"cid": Cid.of(b"chunk"), "size": 3 * MiB}], "size": 3 * MiB},
        {"chunks": [{"cid": Cid.of(b"c"), "size": 1}, {"cid": Cid.of(b"p", DAG_CBOR), "size": 4}]},
        {"blake3": b"short"},
        {"blake3": ...},
        {"media_type": 7},
        {"media_type": "nonsense"},
        {"name": "a/b"},
        {"name": 3},
        {"colour": "red"},
    ],
)
def test_hostile_nodes_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        parse(good_node(**changes))


def test_a_newer_node_version_is_named() -> None:
    with pytest.raises(ArchiveError, match=r"version 2 file node.*Upgrade"):
        parse(good_node(v=2))


def test_not_a_map_or_not_a_node() -> None:
    for value in ([1, 2], "file", {"type": "file-part", "v": 1, "chunks": []}):
        with pytest.raises(IntegrityError):
            parse(value)
    raw = Cid.of(b"raw bytes")
    with pytest.raises(IntegrityError, match="raw block, not a file node"):
        parse_file_node(raw, b"raw bytes")
    block = codec.encode(good_node())
    with pytest.raises(IntegrityError, match="does not match"):
        parse_file_node(Cid.of(block + b"x", DAG_CBOR), block)
    garbage = b"\xff\x00"
    with pytest.raises(IntegrityError, match="not valid DAG-CBOR"):
        parse_file_node(Cid.of(garbage, DAG_CBOR), garbage)


def store_node(store: Store, node: dict[str, Any]) -> Cid:
    block = codec.encode(node)
    cid = Cid.of(block, DAG_CBOR)
    store.transact(lambda txn: put_block(txn, cid, block))
    return cid


def test_missing_chunk_is_not_found(store: Store) -> None:
    cid = store_node(store, good_node())
    with pytest.raises(NotFound, match=str(Cid.of(b"chunk"))):
        cat(store, cid)


def test_damaged_chunk_is_caught_on_read(store: Store) -> None:
    info = add_file(store, io.BytesIO(design_bytes(3 * MiB)))
    victim = info.chunks[1]
    rotten = bytearray(design_bytes(victim.size, seed=99))
    store.transact(lambda txn: txn.put("blocks", victim.cid.bytes, bytes(rotten)))
    with pytest.raises(IntegrityError, match=f"{victim.cid} does not match"):
        cat(store, info.cid)
    assert sum(map(len, iter_file(store, info.cid, verify=False))) == info.size


def test_chunk_of_the_wrong_length_is_caught(store: Store) -> None:
    chunk = Cid.of(b"chunk")
    store.transact(lambda txn: txn.put("blocks", chunk.bytes, b"chunk!"))
    cid = store_node(store, good_node())
    with pytest.raises(IntegrityError, match="6 bytes, the node says 5"):
        cat(store, cid)


def test_hostile_part_nodes(store: Store) -> None:
    chunk = store.transact(lambda txn: put_raw(txn, b"chunk"))
    for part in (
        {"type": "file-part", "v": 1, "chunks": [{"cid": chunk, "size": 4}]},  # wrong total
        {"type": "file-part", "v": 1, "chunks": [{"cid": chunk, "size": 5}], "x": 1},
        {"type": "file", "v": 1, "chunks": [{"cid": chunk, "size": 5}]},
        {"type": "file-part", "v": 1, "chunks": [{"cid": Cid.of(b"n", DAG_CBOR), "size": 5}]},
    ):
        part_cid = store_node(store, part)
        node = store_node(store, good_node(chunks=[{"cid": part_cid, "size": 5}]))
        with pytest.raises(IntegrityError):
            cat(store, node)


def test_reading_a_missing_file(store: Store) -> None:
    with pytest.raises(NotFound):
        file_info(store, Cid.of(b"nothing", DAG_CBOR))


def test_stopping_early_releases_everything(store: Store) -> None:
    info = add_file(store, io.BytesIO(design_bytes(12 * MiB)))
    reader = iter_file(store, info.cid)
    next(reader)
    reader.close()
    store.transact(lambda txn: txn.put("meta", b"still", b"writable"))


def test_views_and_write_file_give_the_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_node, "MAX_ENTRIES", 12)  # part nodes too
    data = design_bytes(19 * MiB + 777, seed=12)  # several batches of chunks
    info = add_file(store, io.BytesIO(data))
    assert info.has_parts
    pieces = [bytes(view) for view in iter_file_views(store, info.cid)]  # copied at once
    assert b"".join(pieces) == data
    assert [len(piece) for piece in pieces] == [ref.size for ref in iter_chunk_refs(store, info)]
    out = io.BytesIO()
    assert write_file(store, info.cid, out) == len(data)
    assert out.getvalue() == data
    refs = list(iter_chunk_refs(store, info))
    assert b"".join(iter_chunks(store, refs[3:9])) == b"".join(pieces[3:9])


def test_write_file_stops_before_a_damaged_chunk(tmp_path: Path) -> None:
    """A real LMDB store whose chunk bytes are overwritten in place (same size, other
    bytes): nothing of that chunk, or after it, reaches the sink."""
    store = LmdbStore(tmp_path / "store")
    try:
        data = design_bytes(24 * MiB, seed=5)
        info = add_file(store, io.BytesIO(data))
        refs = list(iter_chunk_refs(store, info))
        victim_at = len(refs) * 2 // 3  # in a later batch, after good ones were written
        victim = refs[victim_at]
        store.transact(
            lambda txn: txn.put("blocks", victim.cid.bytes, design_bytes(victim.size, seed=99))
        )
        out = io.BytesIO()
        with pytest.raises(IntegrityError, match=f"{victim.cid} does not match"):
            write_file(store, info.cid, out)
        before = sum(ref.size for ref in refs[:victim_at])
        assert len(out.getvalue()) <= before
        assert out.getvalue() == data[: len(out.getvalue())]
        with pytest.raises(IntegrityError, match=f"{victim.cid} does not match"):
            b"".join(iter_file(store, info.cid))
        # Nothing is left open: the store can still write and grow.
        store.transact(lambda txn: txn.put("meta", b"after", b"damage"))
    finally:
        store.close()


def test_views_hold_few_snapshots(tmp_path: Path) -> None:
    """A long file read through views keeps a bounded number of read snapshots open."""
    store = LmdbStore(tmp_path / "store")
    try:
        info = add_file(store, io.BytesIO(design_bytes(64 * MiB, seed=4)))  # 16 batches
        reader = iter_file_views(store, info.cid)
        for _ in reader:
            pass
        readers = store._live().info()["num_readers"]  # reader slots ever in use
        assert readers <= file_reader._AHEAD + 3 < 16, readers
        reader = iter_file_views(store, info.cid)
        next(reader)
        reader.close()
        store.transact(lambda txn: txn.put("meta", b"still", b"writable"))
    finally:
        store.close()
