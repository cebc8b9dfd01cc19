"""SharedItems answers every range question exactly as the protocol's SortedItems."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from craftnet.protocol.items import SortedItems
from craftnet.simnet.items import ItemTable, SharedItems

keys = st.lists(st.binary(min_size=9, max_size=12), max_size=700)


@given(keys, st.binary(max_size=10), st.binary(max_size=10))
def test_same_answers_as_sorted_items(items: list[bytes], lo: bytes, hi: bytes) -> None:
    table = ItemTable()
    shared, plain, other = SharedItems(table), SortedItems(), SharedItems(table)
    for key in items:
        assert shared.add(key) == plain.add(key)
        other.add(key)
    assert len(shared) == len(plain)
    assert shared.summary(lo, hi) == plain.summary(lo, hi)
    assert shared.summary(b"", None) == plain.summary(b"", None)
    assert shared.keys(lo, hi) == plain.keys(lo, hi)
    # The second hub's keys are the very same objects as the first's.
    assert all(a is b for a, b in zip(shared.keys(b"", None), other.keys(b"", None), strict=True))
