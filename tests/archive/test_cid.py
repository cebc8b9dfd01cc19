"""CIDs: CIDv1, BLAKE3-256, dag-cbor or raw, base32 text; everything else is refused."""

from __future__ import annotations

import base64
import contextlib
import pickle

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.cid import BLAKE3_CODE, CID_BYTES_LEN, DAG_CBOR, RAW, Cid
from craftnet.archive.errors import CidError

codecs = st.sampled_from([DAG_CBOR, RAW])


def b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def test_cid_of_a_design_file_chunk() -> None:
    chunk = b"G1 X10 Y10 ; Neo-Vernacular stool joint, pass 1\n"
    cid = Cid.of(chunk)
    assert cid.codec == RAW
    assert cid.codec_name == "raw"
    assert cid.digest == blake3.blake3(chunk).digest()
    assert cid.bytes == bytes([0x01, RAW, BLAKE3_CODE, 32]) + cid.digest
    assert str(cid).startswith("bafk")  # the usual look of a CIDv1 raw block
    assert cid.verify(chunk)
    assert not cid.verify(chunk + b" ")
    assert Cid.of(chunk, DAG_CBOR) != cid  # same bytes, different codec, different CID


@given(st.binary(max_size=256), codecs)
def test_round_trips(data: bytes, codec: int) -> None:
    cid = Cid.of(data, codec)
    assert Cid.parse(str(cid)) == cid
    assert Cid.from_bytes(cid.bytes) == cid
    assert pickle.loads(pickle.dumps(cid)) == cid
    assert hash(Cid.from_bytes(cid.bytes)) == hash(cid)
    assert len(cid.bytes) == CID_BYTES_LEN


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_order_follows_bytes(a: bytes, b: bytes) -> None:
    ca, cb = Cid(RAW, a), Cid(RAW, b)
    assert (ca < cb) == (ca.bytes < cb.bytes)


def test_is_immutable() -> None:
    cid = Cid.of(b"x")
    with pytest.raises(AttributeError):
        cid._bytes = b""  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "b",
        "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",  # base58 form
        "Bafk" + str(Cid.of(b"x"))[4:],  # multibase prefix upper case
        str(Cid.of(b"x")).upper(),
        str(Cid.of(b"x"))[:-1] + "A",
        str(Cid.of(b"x"))[:-1] + "1",  # '1' is not in the base32 alphabet
        str(Cid.of(b"x"))[:-1] + "!",
        str(Cid.of(b"x")) + "=",  # padding is not used
        str(Cid.of(b"x")) + "a",  # one character too many
        str(Cid.of(b"x"))[:-2],  # truncated
        "b\u00e9" + str(Cid.of(b"x"))[2:],
    ],
)
def test_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(CidError):
        Cid.parse(text)


def test_parse_refuses_non_canonical_padding_bits() -> None:
    # 36 bytes = 288 bits, i.e. 57.6 base32 characters: the last character carries 3
    # bits of padding that must be zero. Setting one gives the same bytes, different text.
    text = str(Cid.of(b"Maker's Fair"))
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet.index(text[-1])
    assert last & 0b111 == 0
    sloppy = text[:-1] + alphabet[last | 1]
    assert base64.b32decode(sloppy[1:].upper() + "======") == Cid.parse(text).bytes
    with pytest.raises(CidError, match="non-canonical"):
        Cid.parse(sloppy)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(CidError):
        Cid.parse(b"bafk")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (bytes([0x00, RAW, BLAKE3_CODE, 32]), "CID version 0 is not supported"),
        (bytes([0x02, RAW, BLAKE3_CODE, 32]), "CID version 2 is not supported"),
        (bytes([0x01, 0x70, BLAKE3_CODE, 32]), r"codec 0x70 \(dag-pb\) is not supported"),
        (bytes([0x01, RAW, 0x12, 32]), r"hash 0x12 \(sha2-256\) is not supported"),
        (bytes([0x01, RAW, BLAKE3_CODE, 31]), "digest is 31 bytes"),
        (bytes([0x12, 0x20]), "CIDv0"),
        (bytes([0x01, RAW, 0x80]), "not a CID: .*not a minimally encoded varint"),
    ],
)
def test_refuses_other_versions_codecs_and_hashes(prefix: bytes, reason: str) -> None:
    raw = prefix + bytes(32)
    with pytest.raises(CidError, match=reason):
        Cid.from_bytes(raw)
    with pytest.raises(CidError):
        Cid.parse(b32(raw))


@pytest.mark.parametrize("length", [0, 1, 35, 37, 68])
def test_refuses_wrong_lengths(length: int) -> None:
    with pytest.raises(CidError):
        Cid.from_bytes(bytes([0x01, RAW, BLAKE3_CODE, 32]) + bytes(max(0, length - 4))[:length])


def test_constructor_checks() -> None:
    with pytest.raises(CidError, match="codec"):
        Cid(0x70, bytes(32))
    with pytest.raises(CidError, match="32 bytes"):
        Cid(RAW, bytes(31))


@given(st.binary(max_size=40))
def test_from_bytes_never_raises_anything_but_cid_error(raw: bytes) -> None:
    with contextlib.suppress(CidError):
        Cid.from_bytes(raw)


@given(st.text(max_size=70))
def test_parse_never_raises_anything_but_cid_error(text: str) -> None:
    try:
        cid = Cid.parse(text)
    except CidError:
        return
    assert str(cid) == text


@given(length=st.integers(min_value=1, max_value=400_000).filter(lambda n: n != 59))
def test_cid_text_of_any_other_length_is_refused_before_base32(length: int) -> None:
    text = "b" + "a" * (length - 1)
    original = base64.b32decode

    def refuse(*_: object) -> bytes:
        raise AssertionError("base32 decoding was reached for a CID of the wrong length")

    base64.b32decode = refuse
    try:
        with pytest.raises(CidError, match=f"a CID is 59 characters here, got {length}:"):
            Cid.parse(text)
    finally:
        base64.b32decode = original
