"""The RGA sequence: tree order kept in a flat list of runs, whatever the arrival order."""

from __future__ import annotations

import random
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.crdt.sequence import BLOCK, Key, Run, Sequence


def key(n: int, hub: str = "lisbon") -> Key:
    return (n, hub, n.to_bytes(4, "big"), 0)


def insert(seq: Sequence, after: tuple[int, int] | None, n: int, text: str) -> None:
    """Insert ``text`` as change ``n`` after character ``(change, offset)``."""
    origin = None if after is None else (after[0].to_bytes(4, "big"), 0, after[1])
    seq.insert(origin, Run(key(n), 0, len(text), text))


def test_inserts_after_the_same_origin_go_newest_first() -> None:
    seq = Sequence(text=True)
    insert(seq, None, 1, "Raku")
    insert(seq, (1, 3), 2, " firing")
    insert(seq, (1, 3), 3, " glaze")  # later, same origin: comes first
    assert seq.string() == "Raku glaze firing"


def test_insert_inside_a_run_splits_it() -> None:
    seq = Sequence(text=True)
    insert(seq, None, 1, "Bisque the pot")
    insert(seq, (1, 5), 2, "-fire")
    assert seq.string() == "Bisque-fire the pot"
    assert [run.content for run in seq.runs()] == ["Bisque", "-fire", " the pot"]
    # the canonical form does not merge fragments separated by another run
    assert len(list(seq.canonical_runs())) == 3


def test_delete_ranges_and_canonical_merge() -> None:
    seq = Sequence(text=True)
    insert(seq, None, 1, "Raku glaze firing")
    assert seq.delete((1).to_bytes(4, "big"), 0, 5, 3) == 3
    assert seq.string() == "Raku ze firing"
    assert seq.delete((1).to_bytes(4, "big"), 0, 4, 6) == 3  # 3 of the 6 were still visible
    assert seq.string() == "Raku firing"
    assert seq.visible == len("Raku firing")
    runs = list(seq.canonical_runs())
    assert [(r[1], r[2], r[3]) for r in runs] == [(0, 4, False), (4, 6, True), (10, 7, False)]
    again = Sequence.load(runs, text=True)
    assert again.string() == "Raku firing"
    assert list(again.canonical_runs()) == runs


def test_concurrent_typing_runs_do_not_interleave() -> None:
    """Two hubs type a word after the same character, one keystroke per operation."""
    base = Sequence(text=True)
    insert(base, None, 1, "Glaze: ")
    lisbon = [(10 + i, "copper"[i]) for i in range(6)]  # keys 10..15
    porto = [(20 + i, "cobalt"[i]) for i in range(6)]  # keys 20..25, concurrent
    results = set()
    for order in range(20):
        rng = random.Random(order)
        seq = Sequence(text=True)
        insert(seq, None, 1, "Glaze: ")
        queues = [lisbon[:], porto[:]]
        while any(queues):
            q = rng.choice([q for q in queues if q])
            n, char = q.pop(0)
            prev = (1, 6) if n in (10, 20) else (n - 1, 0)
            insert(seq, prev, n, char)
        results.add(seq.string())
    assert results == {"Glaze: cobaltcopper"}


Insert = tuple[int, tuple[int, int] | None, str]


def reference_order(inserts: list[Insert]) -> list[tuple[int, int]]:
    """RGA as a tree: children of a character, newest first, depth-first."""
    children: dict[tuple[int, int] | None, list[tuple[int, int]]] = {}
    for n, after, text in inserts:
        chars = [(n, i) for i in range(len(text))]
        children.setdefault(after, []).append(chars[0])
        for prev, nxt in pairwise(chars):
            children.setdefault(prev, []).append(nxt)
    out: list[tuple[int, int]] = []

    def walk(node: tuple[int, int] | None) -> None:
        for child in sorted(children.get(node, []), reverse=True):
            out.append(child)
            walk(child)

    walk(None)
    return out


@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_any_causal_order_gives_the_tree_order(seed: int, count: int) -> None:
    rng = random.Random(seed)
    inserts: list[tuple[int, tuple[int, int] | None, str]] = []
    chars: list[tuple[int, int]] = []
    for n in range(1, count + 1):
        after = rng.choice(chars) if chars and rng.random() < 0.9 else None
        text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 4)))
        inserts.append((n, after, text))
        chars.extend((n, i) for i in range(len(text)))
    # a random causal order: an insert comes after the one that made its origin
    pending = inserts[:]
    done: set[int] = set()
    order = []
    while pending:
        ready = [i for i in pending if i[1] is None or i[1][0] in done]
        pick = rng.choice(ready)
        pending.remove(pick)
        done.add(pick[0])
        order.append(pick)
    seqs = []
    for sequence_order in (inserts, order):
        seq = Sequence(text=True)
        for n, after, text in sequence_order:
            insert(seq, after, n, text)
        seqs.append(seq)
    expected = reference_order(inserts)
    for seq in seqs:
        got = [(int.from_bytes(c[0], "big"), c[2]) for c in seq.chars()]
        assert got == expected
    assert list(seqs[0].canonical_runs()) == list(seqs[1].canonical_runs())
    assert len(seqs[0].blocks) >= sum(1 for _ in seqs[0].runs()) // (2 * BLOCK)
