"""Have-summaries: small, signed, and they give the exact difference when it is small.

A summary is read from a stick of unknown origin, so every malformed, oversized,
re-signed or unknown-version file must be refused with a :class:`SummaryError`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.archive import codec
from craftnet.archive.have import (
    MAX_SUMMARY_BYTES,
    Cells,
    HaveSummary,
    ItemSet,
    SummaryError,
    _mix,
    _mix_array,
    build_summary,
    difference,
    read_summary,
)
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.recon_index import StoreItems
from craftnet.archive.store import ReadTxn
from craftnet.identity.keys import PrivateKey

HUB = PrivateKey.from_seed(b"h" * 32)
OTHER = PrivateKey.from_seed(b"o" * 32)


class Keys:
    """A read transaction over a fixed, sorted list of item keys (``rec_time``)."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = sorted(keys)

    def iterate(self, db: str, *args: object, **kwargs: object) -> Iterator[tuple[bytes, bytes]]:
        assert db == "rec_time"
        return ((key, b"") for key in self.keys)


def random_keys(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(44) for _ in range(count)]


def summary_of(keys: list[bytes], **kwargs: object) -> HaveSummary:
    return build_summary(Keys(keys), HUB, 1_000, **kwargs)  # type: ignore[arg-type]


def diff(summary: HaveSummary, keys: list[bytes]) -> tuple[bool, set[bytes], int]:
    items = ItemSet.read(Keys(keys), summary.salt)  # type: ignore[arg-type]
    found = difference(summary, items)
    return found.exact, set(found.ours), found.theirs


def test_numpy_and_python_mixing_agree() -> None:
    values = [0, 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15]
    array = _mix_array(np.array(values, dtype=np.uint64))
    assert [int(x) for x in array] == [_mix(v) for v in values]


def test_100k_records_fit_in_64_kib_and_100_missing_decode_exactly() -> None:
    common = random_keys(100_000, 1)
    ours_only = random_keys(100, 2)
    theirs_only = random_keys(30, 3)
    summary = read_summary(summary_of(common + theirs_only).raw)
    assert len(summary.raw) <= 64 * 1024
    exact, ours, theirs = diff(summary, common + ours_only)
    assert exact and ours == set(ours_only) and theirs == 30


def test_a_large_difference_falls_back_to_ranges_and_never_sends_less() -> None:
    common = random_keys(20_000, 4)
    ours_only = random_keys(4_000, 5)
    summary = summary_of(common, cells=300)
    exact, ours, _ = diff(summary, common + ours_only)
    assert not exact
    assert set(ours_only) <= ours  # more than needed, never less


def test_an_empty_hub_is_sent_everything() -> None:
    ours_list = random_keys(500, 6)
    # A hub with nothing gets the fewest cells (96): 500 differences do not decode
    # there, and its one empty range differs from ours, so everything goes.
    exact, ours, theirs = diff(summary_of([]), ours_list)
    assert not exact and ours == set(ours_list) and theirs == 0


@settings(max_examples=40, deadline=None)
@given(
    common=st.integers(0, 300),
    ours=st.integers(0, 40),
    theirs=st.integers(0, 40),
    seed=st.integers(0, 2**32),
)
def test_property_the_difference_is_never_too_small(
    common: int, ours: int, theirs: int, seed: int
) -> None:
    shared = random_keys(common, seed)
    mine = random_keys(ours, seed + 1)
    their = random_keys(theirs, seed + 2)
    summary = summary_of(shared + their)
    exact, sent, lacking = diff(summary, shared + mine)
    assert set(mine) <= sent
    if exact:
        assert sent == set(mine) and lacking == len(their)
    else:
        assert lacking <= len(their)


def test_cells_peel_what_was_added_and_refuse_an_overfull_table() -> None:
    table = Cells.empty(30)
    table.add_ids(np.array([5, 7, 11], dtype=np.uint64))
    assert table.minus(Cells.empty(30)).peel() == ({5, 7, 11}, set())
    crowded = Cells.empty(3)
    crowded.add_ids(np.arange(1, 50, dtype=np.uint64))
    assert crowded.peel() is None


def test_a_summary_from_a_real_store_matches_its_records(tmp_path: object) -> None:
    with LmdbStore(f"{tmp_path}/store") as store:
        items = StoreItems(store)
        for key in random_keys(50, 8):
            items.add(int.from_bytes(key[:8], "big") >> 1, _cid(key))
        with store.read() as txn:
            summary = build_summary(txn, HUB, 5)
            assert summary.count == 50
            assert difference(summary, ItemSet.read(txn, summary.salt)).ours == ()


def _cid(key: bytes) -> object:
    from craftnet.archive.cid import DAG_CBOR, Cid

    return Cid.of(key, DAG_CBOR)


# ---------------------------------------------------------------------- hostile files


def resign(value: dict[str, object], key: PrivateKey = HUB) -> bytes:
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    return codec.encode({**unsigned, "sig": key.sign(codec.encode(unsigned))})


@pytest.fixture
def good() -> dict[str, object]:
    value = codec.decode(summary_of(random_keys(200, 9)).raw)
    assert isinstance(value, dict)
    return value


def test_the_good_file_reads(good: dict[str, object]) -> None:
    assert read_summary(codec.encode(good)).count == 200


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -1])
def test_truncated_files_are_refused(good: dict[str, object], cut: int) -> None:
    raw = codec.encode(good)
    with pytest.raises(SummaryError):
        read_summary(raw[:cut])


def test_an_oversized_file_is_refused_before_decoding() -> None:
    with pytest.raises(SummaryError, match="over the"):
        read_summary(b"\x00" * (MAX_SUMMARY_BYTES + 1))


def test_a_changed_field_breaks_the_signature(good: dict[str, object]) -> None:
    with pytest.raises(SummaryError, match="signature"):
        read_summary(codec.encode({**good, "count": 201}))
    with pytest.raises(SummaryError, match="signature"):
        read_summary(codec.encode({**good, "hub": OTHER.did}))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("v", 2, "version 2 is not supported"),
        ("v", "1", "version"),
        ("type", "craftnet-bundle", "not a have-summary"),
        ("hub", 7, "did:key"),
        ("at", -1, "non-negative"),
        ("count", "many", "non-negative"),
        ("salt", b"short", "wrong length"),
        ("salt", "text", "bytes"),
        ("cells", b"\x00" * 47, "multiple of 48"),
        ("cells", b"", "cells"),
        ("ranges", b"\x05ab", "cut short"),
        ("ranges", b"", "open-ended"),
        ("count", 5, "add up"),
    ],
)
def test_wrong_types_and_values_are_refused(
    good: dict[str, object], field: str, value: object, message: str
) -> None:
    with pytest.raises(SummaryError, match=message):
        read_summary(resign({**good, field: value}))


def test_unknown_and_missing_fields_are_refused(good: dict[str, object]) -> None:
    with pytest.raises(SummaryError, match="fields"):
        read_summary(resign({**good, "extra": 1}))
    without = {k: v for k, v in good.items() if k != "ranges"}
    with pytest.raises(SummaryError, match="fields"):
        read_summary(resign(without))


def test_ranges_must_increase(good: dict[str, object]) -> None:
    entry = b"\x01\x05" + b"\x00" + bytes(8)
    ranges = entry + entry + b"\x00\x00" + bytes(8)
    with pytest.raises(SummaryError, match="increase"):
        read_summary(resign({**good, "ranges": ranges, "count": 0}))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzzed_bytes_never_raise_anything_but_summary_error(raw: bytes) -> None:
    with pytest.raises(SummaryError):
        read_summary(raw)


def test_items_read_with_another_salt_are_refused() -> None:
    summary = summary_of(random_keys(5, 10))
    txn: ReadTxn = Keys([])  # type: ignore[assignment]
    with pytest.raises(SummaryError, match="salt"):
        difference(summary, ItemSet.read(txn, b"\x01" * 32))
