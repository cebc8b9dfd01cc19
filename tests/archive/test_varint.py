"""Varints: one encoding per value, and clear refusals of the others."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.varint import VarintError, decode_varint, encode_varint


@given(st.integers(min_value=0, max_value=2**63 - 1), st.binary(max_size=4))
def test_round_trip_with_trailing_bytes(value: int, tail: bytes) -> None:
    raw = encode_varint(value)
    assert decode_varint(raw + tail) == (value, len(raw))


@given(st.integers(min_value=128, max_value=2**63 - 1))
def test_every_cut_prefix_is_incomplete_not_wrong(value: int) -> None:
    raw = encode_varint(value)
    for cut in range(len(raw)):
        assert decode_varint(raw[:cut]) is None


@pytest.mark.parametrize("value", [-1, 2**63])
def test_out_of_range_values_are_refused(value: int) -> None:
    with pytest.raises(VarintError, match="outside"):
        encode_varint(value)


def test_non_minimal_and_overlong_encodings_are_refused() -> None:
    with pytest.raises(VarintError, match="frame length is not a minimally encoded"):
        decode_varint(b"\x80\x00", what="frame length")
    with pytest.raises(VarintError, match="longer than 9 bytes"):
        decode_varint(b"\xff" * 10)
