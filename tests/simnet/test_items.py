"""SharedItems answers every range question exactly as the protocol's SortedItems."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from craftnet.protocol.items import SortedItems
from craftnet.simnet.items import ItemTable, SharedItems

keys = st.lists(st.binary(min_size=9, max_size=12), max_size=700)


@given(keys, st.binary(max_size=10), st.binary(max_size=10))
def test_same_answers_as_sorted_items(items: list[bytes], lo: bytes, hi: bytes) -> None:
    table = ItemTable()
    shared, plain, other = SharedItems(table), SortedItems(), SharedItems(table)
    for n, key in enumerate(items):
        assert shared.add(key) == plain.add(key)
        other.add(key)
        if n % 97 == 0:  # queries between inserts: the cached prefixes must follow
            assert shared.summary(lo, hi) == plain.summary(lo, hi)
            assert (key in shared) and (key in plain)
    assert len(shared) == len(plain)
    assert shared.summary(lo, hi) == plain.summary(lo, hi)
    assert shared.summary(b"", None) == plain.summary(b"", None)
    assert shared.keys(lo, hi) == plain.keys(lo, hi)
    # The second hub's keys are the very same objects as the first's.
    assert all(a is b for a, b in zip(shared.keys(b"", None), other.keys(b"", None), strict=True))


def test_chunks_split_under_many_inserts_and_still_agree() -> None:
    rng = random.Random(6)
    shared, plain = SharedItems(ItemTable()), SortedItems()
    for n in range(3000):
        key = rng.randbytes(10)
        assert shared.add(key) == plain.add(key)
        if n % 250 == 0:
            lo, hi = sorted((rng.randbytes(3), rng.randbytes(3)))
            assert shared.summary(lo, hi) == plain.summary(lo, hi)
    assert shared.keys(b"", None) == plain.keys(b"", None)
    assert len(shared._chunks) > 4  # the inserts did split chunks
