"""Deterministic DAG-CBOR: one value, one encoding; anything else is a CodecError."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.codec import MAX_BLOCK_SIZE, MAX_DEPTH, decode, encode
from craftnet.archive.errors import CodecError

cids = st.builds(Cid.of, st.binary(max_size=16), st.sampled_from([DAG_CBOR, RAW]))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | cids
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1 and bytes from str, as CBOR does."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert same(decode(data), value)
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(max_size=30), st.integers(-(2**63), 2**63), max_size=8))
def test_map_order_does_not_change_the_bytes(mapping: dict[str, int]) -> None:
    reversed_map = dict(reversed(list(mapping.items())))
    assert encode(reversed_map) == encode(mapping)


def _tagged(value: Any) -> Any:
    if isinstance(value, Cid):
        return cbor2.CBORTag(42, b"\x00" + value.bytes)
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    return value


@given(values)
def test_encode_gives_cbor2s_canonical_bytes(value: Any) -> None:
    # encode() orders maps itself and writes with cbor2's plain mode; the bytes must be
    # exactly those of cbor2's canonical mode, the definition it replaced.
    assert encode(value) == cbor2.dumps(_tagged(value), canonical=True)


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 5), min_size=2, max_size=6))
def test_decode_refuses_every_other_key_order(mapping: dict[str, int]) -> None:
    data = encode(mapping)
    shuffled = dict(reversed(list(decode(data).items())))
    with pytest.raises(CodecError, match="out of order"):
        decode(cbor2.dumps(shuffled))


def test_known_encodings() -> None:
    # DAG-CBOR sorts keys by length first, then bytewise.
    assert encode({"aa": 1, "b": 2}) == bytes.fromhex("a2 61 62 02 62 61 61 01".replace(" ", ""))
    assert encode(23) == b"\x17"
    assert encode(24) == b"\x18\x18"
    assert encode(-1) == b"\x20"
    assert encode(2**64 - 1) == b"\x1b" + b"\xff" * 8
    assert encode(-(2**64)) == b"\x3b" + b"\xff" * 8
    cid = Cid.of(b"Raku glaze firing")
    assert encode(cid) == b"\xd8\x2a\x58\x25\x00" + cid.bytes
    assert encode(("Rustic", "Futurism")) == encode(["Rustic", "Futurism"])


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        float("nan"),
        {1: "int key"},
        {b"bytes key": 1},
        {"x", "set"},
        2**64,
        -(2**64) - 1,
        object(),
        [1.0],
    ],
)
def test_encode_refuses(value: Any) -> None:
    with pytest.raises(CodecError):
        encode(value)


def test_encode_refuses_deep_nesting() -> None:
    value: Any = 0
    for _ in range(MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(CodecError, match="deeper"):
        encode(value)


HOSTILE = {
    "unsorted keys (bytewise instead of length-first)": "a2 62 6161 01 61 62 02",
    "unsorted keys (reversed)": "a2 61 62 01 61 61 02",
    "non-minimal int 1 byte": "18 01",
    "non-minimal int 2 bytes": "19 0001",
    "non-minimal int 4 bytes": "1a 00000001",
    "non-minimal int 8 bytes": "1b 0000000000000001",
    "non-minimal negative": "38 00",
    "non-minimal string length": "78 01 61",
    "non-minimal array length": "98 01 00",
    "indefinite array": "9f 01 ff",
    "indefinite map": "bf 61 61 01 ff",
    "indefinite text": "7f 61 61 ff",
    "indefinite bytes": "5f 41 00 ff",
    "duplicate keys": "a2 61 61 01 61 61 02",
    "float16": "f9 3c00",
    "float32": "fa 3f800000",
    "float64": "fb 3ff0000000000000",
    "float64 NaN": "fb 7ff8000000000000",
    "undefined": "f7",
    "simple value 16": "f0",
    "simple value 255": "f8 ff",
    "break on its own": "ff",
    "tag 0 (date string)": "c0 74 323032362d31312d32355431323a30303a30305a",
    "tag 1 (epoch)": "c1 00",
    "tag 2 (bignum)": "c2 41 01",
    "tag 2 bignum beyond 64 bits": "c2 49 01 0000000000000000",
    "tag 3 negative bignum beyond 64 bits": "c3 49 01 0000000000000000",
    "tag 43": "d8 2b 40",
    "tag 258 (set)": "d9 0102 81 01",
    "tag 28 (shared value)": "d8 1c 80",
    "tag 42 without 0x00 prefix": "d8 2a 58 24 01711e20" + "00" * 32,
    "tag 42 holding text": "d8 2a 61 61",
    "tag 42 with a CIDv0-like body": "d8 2a 42 0012",
    "tag 42 with sha2-256": "d8 2a 58 25 00 01711220" + "00" * 32,
    "trailing bytes": "01 00",
    "two values": "61 61 61 61",
    "int map key": "a1 01 02",
    "bytes map key": "a1 41 61 01",
    "array map key": "a1 80 01",
    "invalid utf-8": "62 c328",
    "empty": "",
    "reserved additional info": "1c",
}


@pytest.mark.parametrize("hexdata", list(HOSTILE.values()), ids=list(HOSTILE))
def test_decode_refuses_hostile_input(hexdata: str) -> None:
    with pytest.raises(CodecError):
        decode(bytes.fromhex(hexdata.replace(" ", "")))


@given(values)
def test_every_truncation_is_refused(value: Any) -> None:
    data = encode(value)
    for end in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:end])


@given(values, st.binary(min_size=1, max_size=4))
def test_trailing_garbage_is_refused(value: Any, extra: bytes) -> None:
    with pytest.raises(CodecError):
        decode(encode(value) + extra)


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    try:
        value = decode(data)
    except CodecError:
        return
    assert encode(value) == data


@pytest.mark.parametrize(
    "header",
    [
        b"\x5b" + struct.pack(">Q", 2**40),  # byte string of 1 TiB
        b"\x7b" + struct.pack(">Q", 2**40),  # text string of 1 TiB
        b"\x9b" + struct.pack(">Q", 2**40),  # array of 2**40 items
        b"\xbb" + struct.pack(">Q", 2**40),  # map of 2**40 pairs
        b"\x5b" + struct.pack(">Q", 2**64 - 1),
        b"\x9a" + struct.pack(">I", 2**32 - 1),
    ],
)
def test_huge_declared_lengths_fail_fast_without_allocating(header: bytes) -> None:
    data = header + b"\x00" * 1024
    tracemalloc.start()
    try:
        with pytest.raises(CodecError):
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_nesting_beyond_the_cap_is_refused() -> None:
    within = b"\x81" * MAX_DEPTH + b"\x00"
    assert decode(within) is not None
    for depth in (MAX_DEPTH + 1, MAX_DEPTH + 2, 10_000):
        with pytest.raises(CodecError):
            decode(b"\x81" * depth + b"\x00")
    with pytest.raises(CodecError):
        decode(b"\xa1\x61a" * 10_000 + b"\x00")


def test_size_cap() -> None:
    big = encode(b"\x00" * (MAX_BLOCK_SIZE - 16))
    assert len(decode(big)) == MAX_BLOCK_SIZE - 16
    with pytest.raises(CodecError, match="limit"):
        decode(encode(b"\x00" * MAX_BLOCK_SIZE))
    with pytest.raises(CodecError, match="limit"):
        decode(encode("Digital Craft Archive"), max_size=8)


def test_accepts_memoryview_and_bytearray() -> None:
    data = encode({"hub": "Intergenerational Making Cooperative"})
    assert decode(memoryview(data)) == decode(bytearray(data))
