"""The file node's short path (one canonical layout, read in place) agrees with the
general decoder: same FileInfo where it answers, and it leaves everything else to it."""

from __future__ import annotations

import io
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.archive import codec, file_node
from craftnet.archive.blocks import MAX_BLOCK_SIZE
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import ArchiveError, CraftnetError
from craftnet.archive.file_node import ChunkRef, FileInfo
from craftnet.archive.files import add_file, file_info
from craftnet.archive.store import Store

_SIZES = st.one_of(
    st.integers(0, 30),
    st.integers(0, 70_000),
    st.sampled_from([23, 24, 255, 256, 65_535, 65_536, MAX_BLOCK_SIZE, MAX_BLOCK_SIZE + 1]),
    st.integers(0, 2**64 - 1),
)
_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["model/stl", "image/svg+xml", "a b/c", "x" * 300, "", "ok/" + "é" * 200]),
)


_VALID_SIZES = st.one_of(
    st.integers(1, 30), st.sampled_from([23, 24, 255, 256, 65_535, 65_536, MAX_BLOCK_SIZE])
)
_FAULTS = (
    "size 0", "size big", "v 2", "v 0", "type", "total", "media type", "name", "digest",
    "extra", "mixed", "no name key",
)


@st.composite
def nodes(draw: st.DrawFn) -> dict[str, Any]:
    """File nodes: half valid, half with one fault (or a few)."""
    faults = set(draw(st.lists(st.sampled_from(_FAULTS), max_size=2)))
    if draw(st.booleans()):
        faults = set()
    count = draw(st.integers(0, 30))
    codec_ = DAG_CBOR if draw(st.integers(0, 3)) == 0 else RAW
    sizes = [draw(_VALID_SIZES) for _ in range(count)]
    if sizes and "size 0" in faults:
        sizes[draw(st.integers(0, count - 1))] = 0
    if sizes and "size big" in faults:
        sizes[draw(st.integers(0, count - 1))] = draw(_SIZES)
    codecs = [codec_] * count
    if count > 1 and "mixed" in faults:
        codecs[-1] = RAW if codec_ == DAG_CBOR else DAG_CBOR
    chunks = [
        {"cid": Cid(c, blake3.blake3(bytes([i])).digest()), "size": size}
        for i, (c, size) in enumerate(zip(codecs, sizes, strict=True))
    ]
    node: dict[str, Any] = {
        "type": "file-part" if "type" in faults else "file",
        "v": 2 if "v 2" in faults else 0 if "v 0" in faults else 1,
        "chunks": chunks,
        "size": sum(sizes) + (draw(st.sampled_from([1, -1, 2**64])) if "total" in faults else 0),
        "media_type": draw(_TEXT) if "media type" in faults else "model/stl",
        "blake3": bytes(31) if "digest" in faults else bytes(32),
        "name": draw(_TEXT) if "name" in faults else draw(st.sampled_from(["gear.stl", "é.svg"])),
    }
    if "no name key" in faults:
        del node["name"]
    if "extra" in faults:
        node["extra"] = 1
    return node


def both(cid: Cid, block: bytes) -> tuple[FileInfo | None, FileInfo | str]:
    """(short path, general path: its FileInfo or its error's type and message)."""
    fast = file_node._read_file_node(cid, block)
    try:
        return fast, file_node._parse_file_node(cid, block)
    except CraftnetError as exc:
        return fast, f"{type(exc).__name__}: {exc}"


@settings(max_examples=300, deadline=None)
@given(node=nodes(), cut=st.integers(0, 2_000), byte=st.integers(0, 255), how=st.integers(0, 3))
def test_short_path_agrees_with_the_decoder(
    node: dict[str, Any], cut: int, byte: int, how: int
) -> None:
    try:
        block = codec.encode(node)
    except CraftnetError:
        return  # not encodable (an over-long integer): no such node can be stored
    if how == 1 and block:  # one byte changed
        at = cut % len(block)
        block = block[:at] + bytes([byte]) + block[at + 1 :]
    elif how == 2:  # one byte more
        at = cut % (len(block) + 1)
        block = block[:at] + bytes([byte]) + block[at:]
    elif how == 3 and block:  # cut short
        block = block[: cut % len(block)]
    cid = Cid.of(block, DAG_CBOR)
    fast, general = both(cid, block)
    if fast is not None:
        assert fast == general
    # The short path takes every valid node left as encoded.
    if how == 0 and isinstance(general, FileInfo):
        assert fast is not None


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(_SIZES, max_size=20),
    part_codec=st.sampled_from([RAW, DAG_CBOR]),
    claim=st.integers(-1, 1),
    extra=st.booleans(),
)
def test_part_short_path_agrees(sizes: list[int], part_codec: int, claim: int, extra: bool) -> None:
    chunks = [
        {"cid": Cid(part_codec if i == 3 else RAW, blake3.blake3(bytes([i])).digest()), "size": s}
        for i, s in enumerate(sizes)
    ]
    part: dict[str, Any] = {"type": "file-part", "v": 1, "chunks": chunks}
    if extra:
        part["x"] = 1
    try:
        block = codec.encode(part)
    except CraftnetError:
        return
    ref = ChunkRef(Cid.of(block, DAG_CBOR), sum(sizes) + claim)
    fast = file_node._read_file_part(ref, block)
    try:
        general: tuple[ChunkRef, ...] | str = file_node._parse_file_part(ref, block)
    except CraftnetError as exc:
        general = str(exc)
    if fast is not None:
        assert fast == general
    elif not extra and claim == 0 and part_codec == RAW and all(
        1 <= s <= MAX_BLOCK_SIZE for s in sizes
    ):
        assert isinstance(general, tuple)
        pytest.fail("a valid part went the general way")


@pytest.mark.parametrize("entries", [3, 8192])
def test_a_stored_file_takes_the_short_path(store: Store, entries: int) -> None:
    chunks = [ChunkRef(Cid.of(i.to_bytes(2, "big")), 65_536 + i) for i in range(entries)]
    node = {
        "type": "file",
        "v": 1,
        "chunks": file_node.encode_entries(chunks),
        "size": sum(c.size for c in chunks),
        "media_type": "model/stl",
        "name": "lamp-base.stl",
        "blake3": bytes(32),
    }
    block = codec.encode(node)
    cid = Cid.of(block, DAG_CBOR)
    fast = file_node._read_file_node(cid, block)
    assert fast is not None and fast == file_node._parse_file_node(cid, block)
    assert fast.chunks == tuple(chunks)


def test_an_added_file_reads_the_same_both_ways(store: Store) -> None:
    info = add_file(store, io.BytesIO(bytes(range(256)) * 4000), name="gear.stl")
    assert file_info(store, info.cid) == info
    with store.read() as txn:
        block = txn.get("blocks", info.cid.bytes)
    assert block is not None
    assert file_node._read_file_node(info.cid, block) == info


def test_too_many_entries_go_the_general_way() -> None:
    chunks = [ChunkRef(Cid.of(i.to_bytes(2, "big")), 1) for i in range(3)]
    node = {"type": "file-part", "v": 1, "chunks": file_node.encode_entries(chunks)}
    block = codec.encode(node)
    ref = ChunkRef(Cid.of(block, DAG_CBOR), 3)
    assert file_node._read_file_part(ref, block) == tuple(chunks)
    old = file_node.MAX_ENTRIES
    file_node.MAX_ENTRIES = 2  # type: ignore[misc]
    try:
        assert file_node._read_file_part(ref, block) is None
        with pytest.raises(ArchiveError, match="at most 2"):
            file_node.parse_file_part(ref, block)
    finally:
        file_node.MAX_ENTRIES = old  # type: ignore[misc]
