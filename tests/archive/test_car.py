"""The CARv1 format: what we write any CAR reader can read; what we read, we read strictly.

The "independent reader" below is written from the CARv1 and unsigned-varint specs
with plain ``cbor2`` and ``blake3``; it shares no code with craftnet, so reading our
output with it shows that third-party tools can read our bundles.
"""

from __future__ import annotations

import io

import blake3
import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive import car, codec
from craftnet.archive.car import (
    MAX_HEADER_SIZE,
    MAX_SECTION_SIZE,
    CarReader,
    decode_varint,
    encode_varint,
    write_header,
    write_section,
)
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import BundleError

# --- an independent CARv1 reader, from the spec ------------------------------------


def spec_uvarint(buf: io.BytesIO) -> int | None:
    """Unsigned LEB128; None at end of input."""
    shift = result = 0
    while True:
        b = buf.read(1)
        if not b:
            assert shift == 0, "truncated varint"
            return None
        result |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return result
        shift += 7


SpecSection = tuple[bytes, int, int, bytes, bytes]


def spec_read_car(raw: bytes) -> tuple[dict[str, object], list[SpecSection]]:
    """Return (header, [(binary CID, codec, hash code, digest, data)])."""
    buf = io.BytesIO(raw)
    hlen = spec_uvarint(buf)
    assert hlen is not None
    header = cbor2.loads(buf.read(hlen))
    sections = []
    while (slen := spec_uvarint(buf)) is not None:
        section = io.BytesIO(buf.read(slen))
        version = spec_uvarint(section)
        codec_code = spec_uvarint(section)
        hash_code = spec_uvarint(section)
        dlen = spec_uvarint(section)
        assert version == 1 and dlen is not None
        digest = section.read(dlen)
        cid_len = section.tell()
        data = section.read()
        sections.append((section.getvalue()[:cid_len], codec_code, hash_code, digest, data))
    return header, sections


def tag42_cid(tag: object) -> bytes:
    """A DAG-CBOR link is tag 42 over 0x00 + binary CID."""
    assert isinstance(tag, cbor2.CBORTag) and tag.tag == 42
    assert tag.value[:1] == b"\x00"
    return bytes(tag.value[1:])


# --- helpers ------------------------------------------------------------------------


def make_car(blocks: list[tuple[Cid, bytes]], roots: list[Cid] | None = None) -> bytes:
    out = io.BytesIO()
    write_header(out, roots if roots is not None else [blocks[0][0]])
    for cid, data in blocks:
        write_section(out, cid, data)
    return out.getvalue()


def sample_blocks() -> list[tuple[Cid, bytes]]:
    chunk = b"Rustic Futurism lamp shade, layer 1 of 40\n" * 50
    chunk_cid = Cid.of(chunk, RAW)
    node = codec.encode({"chunks": [chunk_cid], "name": "lamp.stl", "size": len(chunk)})
    return [(Cid.of(node, DAG_CBOR), node), (chunk_cid, chunk)]


def read_all(raw: bytes) -> tuple[tuple[Cid, ...], list[car.Section]]:
    reader = CarReader(io.BytesIO(raw))
    return reader.roots, list(reader)


# --- writing ------------------------------------------------------------------------


def test_independent_reader_reads_what_we_write() -> None:
    blocks = sample_blocks()
    raw = make_car(blocks)
    header, sections = spec_read_car(raw)
    assert header["version"] == 1
    roots = header["roots"]
    assert isinstance(roots, list)
    assert [tag42_cid(r) for r in roots] == [blocks[0][0].bytes]
    assert len(sections) == 2
    for (cid, data), (cid_bytes, codec_code, hash_code, digest, got) in zip(
        blocks, sections, strict=True
    ):
        assert cid_bytes == cid.bytes
        assert codec_code == cid.codec
        assert hash_code == 0x1E  # blake3
        assert digest == blake3.blake3(got).digest()
        assert got == data
    # The file node decodes with plain cbor2 and links the chunk by tag 42.
    node = cbor2.loads(sections[0][4])
    assert tag42_cid(node["chunks"][0]) == blocks[1][0].bytes


def test_round_trip_through_our_reader() -> None:
    blocks = sample_blocks()
    roots, sections = read_all(make_car(blocks))
    assert roots == (blocks[0][0],)
    assert [(s.cid, s.data) for s in sections] == blocks
    assert [s.index for s in sections] == [0, 1]


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))
    assert spec_uvarint(io.BytesIO(encoded)) == value


def test_writer_refuses_no_roots_and_oversized_blocks() -> None:
    with pytest.raises(BundleError, match="at least one root"):
        write_header(io.BytesIO(), [])
    big = b"\0" * (car.MAX_BLOCK_SIZE + 1)
    with pytest.raises(BundleError, match="over the"):
        write_section(io.BytesIO(), Cid.of(big), big)


# --- hostile input ------------------------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(BundleError, match="empty"):
        read_all(b"")


def test_wrong_header_version() -> None:
    header = codec.encode({"roots": [sample_blocks()[0][0]], "version": 2})
    with pytest.raises(BundleError, match="CAR version 2 is not supported"):
        read_all(encode_varint(len(header)) + header)


def test_carv2_pragma_is_refused() -> None:
    pragma = bytes.fromhex("0aa16776657273696f6e02")  # the CARv2 pragma from the spec
    with pytest.raises(BundleError, match="version 2"):
        read_all(pragma)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"roots": [], "version": 1}, "at least one root"),
        ({"roots": ["not a cid"], "version": 1}, "must all be CIDs"),
        ({"version": 1}, "missing"),
        ({"roots": [Cid.of(b"x")], "version": 1, "extra": 1}, "unexpected"),
        (["roots"], "not a map"),
    ],
)
def test_bad_headers(header: object, match: str) -> None:
    raw = codec.encode(header)
    with pytest.raises(BundleError, match=match):
        read_all(encode_varint(len(raw)) + raw)


def test_non_canonical_header() -> None:
    cid = Cid.of(b"x")
    # Keys in the wrong order: valid CBOR, but not what a DAG-CBOR encoder writes.
    raw = b"\xa2" + cbor2.dumps("version") + b"\x01" + cbor2.dumps("roots")
    raw += b"\x81" + cbor2.dumps(cbor2.CBORTag(42, b"\x00" + cid.bytes))
    with pytest.raises(BundleError, match="canonical"):
        read_all(encode_varint(len(raw)) + raw)


def test_huge_declared_lengths_are_refused_without_reading() -> None:
    with pytest.raises(BundleError, match="over the"):
        read_all(encode_varint(MAX_HEADER_SIZE + 1))
    good = make_car(sample_blocks())
    header_end = decode_varint(good)[0] + len(encode_varint(decode_varint(good)[0]))
    hostile = good[:header_end] + encode_varint(2**62) + b"tiny"
    with pytest.raises(BundleError, match=r"block #0 at byte \d+: section declares"):
        read_all(hostile)
    hostile = good[:header_end] + encode_varint(MAX_SECTION_SIZE + 1)
    with pytest.raises(BundleError, match="over the"):
        read_all(hostile)


def test_overlong_and_non_minimal_varints() -> None:
    with pytest.raises(BundleError, match="longer than 9"):
        read_all(b"\xff" * 12)
    with pytest.raises(BundleError, match="minimal"):
        read_all(b"\x80\x00")


def test_flipped_byte_names_the_block() -> None:
    raw = bytearray(make_car(sample_blocks()))
    raw[-5] ^= 0x01  # inside the chunk (the last block)
    with pytest.raises(BundleError, match=r"block #1 \(b[a-z2-7]+\) at byte \d+: .*do not hash"):
        read_all(bytes(raw))


def test_wrong_cid() -> None:
    node_cid, node = sample_blocks()[0]
    raw = make_car([(node_cid, node), (Cid.of(b"other"), b"Maker's Fair")], roots=[node_cid])
    with pytest.raises(BundleError, match="block #1"):
        read_all(raw)


@pytest.mark.parametrize(
    ("cid_prefix", "match"),
    [
        (bytes([0x12, 0x20]) + b"\0" * 32, "CIDv0"),
        (bytes([0x01, 0x70, 0x1E, 0x20]) + b"\0" * 32, r"0x70 \(dag-pb\)"),
        (bytes([0x01, 0x55, 0x12, 0x20]) + b"\0" * 32, r"0x12 \(sha2-256\)"),
        (bytes([0x01, 0x55, 0x1E, 0x10]) + b"\0" * 16, "32"),
        (bytes([0x02, 0x55, 0x1E, 0x20]) + b"\0" * 32, "CID version 2"),
        (bytes([0x01, 0x55, 0x1E, 0x20]) + b"\0" * 5, "CID ends after 13 of its 36 bytes"),
    ],
)
def test_unknown_cid_codecs_and_hashes(cid_prefix: bytes, match: str) -> None:
    good = make_car(sample_blocks())
    hlen, pos = decode_varint(good)
    section = cid_prefix + b"data"
    raw = good[: pos + hlen] + encode_varint(len(section)) + section
    with pytest.raises(BundleError, match=match):
        read_all(raw)


def test_every_truncation_is_detected() -> None:
    raw = make_car(sample_blocks())
    hlen, pos = decode_varint(raw)
    boundaries = {pos + hlen}
    offset = pos + hlen
    while offset < len(raw):
        slen, spos = decode_varint(raw, offset)
        offset = spos + slen
        boundaries.add(offset)
    for cut in range(len(raw)):
        if cut in boundaries:
            # Cutting exactly between sections leaves a shorter but valid CAR.
            read_all(raw[:cut])
            continue
        with pytest.raises(BundleError):
            read_all(raw[:cut])


@given(st.data())
def test_random_byte_flips_never_pass_silently(data: st.DataObject) -> None:
    blocks = sample_blocks()
    raw = bytearray(make_car(blocks))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    try:
        _roots, sections = read_all(bytes(raw))
    except BundleError:
        return
    # A flip the reader accepts must still give only blocks that match their CIDs.
    for section in sections:
        assert section.cid.verify(section.data)


def sha2_car(codec_code: int = 0x71) -> bytes:
    """A valid CARv1 as `ipfs dag export` writes it: a sha2-256 root and its block."""
    import hashlib

    import cbor2

    block = cbor2.dumps({"title": "Neo-Vernacular lamp"})
    cid = bytes([0x01, codec_code, 0x12, 0x20]) + hashlib.sha256(block).digest()
    header = cbor2.dumps({"roots": [cbor2.CBORTag(42, b"\x00" + cid)], "version": 1})
    section = cid + block
    return encode_varint(len(header)) + header + encode_varint(len(section)) + section


@pytest.mark.parametrize(("codec_code", "name"), [(0x71, "dag-cbor"), (0x70, "dag-pb")])
def test_an_ipfs_export_with_sha2_cids_is_refused_for_its_hash(codec_code: int, name: str) -> None:
    # Not "the CAR header is not canonical DAG-CBOR": the header is fine, the hash is not.
    with pytest.raises(BundleError) as info:
        read_all(sha2_car(codec_code))
    message = str(info.value)
    assert "not canonical" not in message
    if codec_code == 0x71:
        assert "hash 0x12 (sha2-256) is not supported" in message
    else:
        assert f"codec 0x70 ({name}) is not supported" in message
    assert message.startswith("the CAR header names a root craftnet cannot read")
