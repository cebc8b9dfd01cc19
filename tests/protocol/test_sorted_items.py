"""Range summaries of the in-memory reconcile items against a plain sum over the keys."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.protocol.items import MODULUS, SortedItems, item_hash
from craftnet.simnet.items import ItemTable, SharedItems

keys = st.lists(st.binary(min_size=2, max_size=4), min_size=1, max_size=1300)
bounds = st.lists(st.binary(max_size=3), max_size=12)


def expected(items: set[bytes], lo: bytes, hi: bytes | None) -> tuple[int, int]:
    inside = [k for k in items if k >= lo and (hi is None or k < hi)]
    return len(inside), sum(map(item_hash, inside)) % MODULUS


@settings(max_examples=60, deadline=None)
@given(keys, bounds, st.integers(min_value=1, max_value=400))
def test_consecutive_ranges_sum_as_the_keys_do(
    inserted: list[bytes], cuts: list[bytes], every: int
) -> None:
    """A message's ranges are asked for in order, each from where the last one ended,
    while inserts land between messages; every answer is the plain sum of its keys."""
    for items in (SortedItems(), SharedItems(ItemTable())):
        held: set[bytes] = set()
        edges = [b"", *sorted(set(cuts)), None]
        for n, key in enumerate(inserted, 1):
            items.add(key)
            held.add(key)
            if n % every and n != len(inserted):
                continue
            for lo, hi in pairwise(edges):
                assert lo is not None
                if hi is not None and hi <= lo:
                    continue
                assert items.summary(lo, hi) == expected(held, lo, hi)
            # From each cut to the end: a range whose start has the rank where an
            # earlier one ended, before inserts moved what lies below it.
            for lo in edges[:-1]:
                assert lo is not None
                assert items.summary(lo, None) == expected(held, lo, None)
        # Out of order too: the kept prefix must not answer a range it does not start.
        for lo, hi in reversed(list(pairwise(edges))):
            assert lo is not None
            if hi is None or hi > lo:
                assert items.summary(lo, hi) == expected(held, lo, hi)


def test_an_insert_below_a_kept_prefix_is_summed() -> None:
    """The prefix kept from the last range is forgotten when a key lands below it."""
    for items in (SortedItems([b"b", b"d"]), SharedItems(ItemTable())):
        items.add(b"b")
        items.add(b"d")
        assert items.summary(b"", b"c") == expected({b"b"}, b"", None)
        items.add(b"a")  # "b" now has rank 1, where the last range ended
        assert items.summary(b"b", None) == expected({b"b", b"d"}, b"", None)
