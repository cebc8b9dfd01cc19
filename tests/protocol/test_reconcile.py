"""Range-based set reconciliation: exact differences, item sources, hostile frames."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.protocol.errors import MalformedMessage, RemoteProtocolError
from craftnet.protocol.items import MODULUS, SortedItems, item_hash, item_key, split_key
from craftnet.protocol.messages import (
    RANGE_FINGERPRINT,
    RANGE_IDLIST,
    RANGE_RESULT,
    RANGE_SKIP,
    Recon,
    ReconRange,
)
from craftnet.protocol.reconcile import (
    FINGERPRINT_SIZE,
    ReconcileSession,
    ReconConfig,
    reconcile_locally,
    separator,
)

POOL = [item_key(1_000 + (i // 3), Cid.of(i.to_bytes(4, "big"), DAG_CBOR)) for i in range(400)]
CONFIGS = [
    ReconConfig(buckets=2, leaf_size=1),
    ReconConfig(buckets=3, leaf_size=4),
    ReconConfig(),
    ReconConfig(buckets=4, leaf_size=2, ranges_per_frame=1),
]


@given(
    st.sets(st.sampled_from(POOL), max_size=120),
    st.sets(st.sampled_from(POOL), max_size=120),
    st.sampled_from(CONFIGS),
    st.integers(0, 2**32),
)
def test_reconcile_finds_exactly_the_symmetric_difference(
    a: set[bytes], b: set[bytes], config: ReconConfig, seed: int
) -> None:
    left, right, messages, _ = reconcile_locally(
        SortedItems(a), SortedItems(b), random.Random(seed), config
    )
    assert left.need == b - a
    assert left.their_need == a - b
    assert right.need == a - b
    assert right.their_need == b - a
    assert left.done and right.done
    if a == b:
        assert messages <= 2


def test_different_configs_on_each_side_still_agree() -> None:
    a = SortedItems(POOL[:300])
    b = SortedItems(POOL[100:])
    left = ReconcileSession(
        a, sid=1, initiator=True, rng=random.Random(1), config=ReconConfig(buckets=2, leaf_size=3)
    )
    right = ReconcileSession(
        b, sid=1, initiator=False, rng=random.Random(2), config=ReconConfig(buckets=7, leaf_size=20)
    )
    frames = left.start()
    sides = (right, left)
    turn = 0
    while frames:
        frames = [reply for f in frames for reply in sides[turn % 2].receive(f)]
        turn += 1
    assert left.need == set(POOL[300:]) and right.need == set(POOL[:100])


def test_one_difference_in_many_items_costs_little() -> None:
    rng = random.Random(5)
    keys = [
        item_key(rng.randrange(2**60), Cid.of(rng.randbytes(8), DAG_CBOR)) for _ in range(20_000)
    ]
    extra = item_key(2**59, Cid.of(b"the one Human Treasures record", DAG_CBOR))
    left, _right, messages, wire = reconcile_locally(
        SortedItems(keys), SortedItems([*keys, extra]), random.Random(1)
    )
    assert left.need == {extra}
    assert messages <= 8
    assert wire < 3_000


@given(st.sets(st.sampled_from(POOL), max_size=200), st.data())
def test_sorted_items_answer_like_a_plain_list(keys: set[bytes], data: st.DataObject) -> None:
    items = SortedItems()
    for key in data.draw(st.permutations(sorted(keys))):
        items.add(key)
    ordered = sorted(keys)
    assert len(items) == len(ordered)
    assert items.keys(b"", None) == ordered
    lo = data.draw(st.sampled_from([b"", *POOL]))
    hi = data.draw(st.sampled_from([None, *POOL]))
    inside = [k for k in ordered if k >= lo and (hi is None or k < hi)]
    assert items.keys(lo, hi) == inside
    assert items.summary(lo, hi) == (len(inside), sum(map(item_hash, inside)) % MODULUS)
    for offset in range(min(3, len(inside))):
        assert items.key_at(lo, offset) == inside[offset]
    assert all(k in items for k in ordered)
    assert not items.add(ordered[0]) if ordered else True


def test_sorted_items_split_large_chunks() -> None:
    items = SortedItems()
    keys = [item_key(i, b"\x01" * 36) for i in range(2000)]
    for key in reversed(keys):
        items.add(key)
    assert items.keys(b"", None) == keys
    assert items.key_at(keys[1500], 10) == keys[1510]
    assert split_key(keys[7]) == (7, b"\x01" * 36)


@given(st.binary(min_size=1, max_size=12), st.binary(min_size=1, max_size=12))
def test_separator_is_the_shortest_bound_between_two_keys(x: bytes, y: bytes) -> None:
    if x == y:
        return
    prev, nxt = min(x, y), max(x, y)
    bound = separator(prev, nxt)
    assert prev < bound <= nxt
    assert all(not prev < nxt[:n] for n in range(len(bound)))


# ------------------------------------------------------------- hostile frames


def _responder() -> ReconcileSession:
    return ReconcileSession(SortedItems(POOL[:50]), sid=3, initiator=False, rng=random.Random(0))


def _frame(
    ranges: tuple[ReconRange, ...],
    seq: int = 0,
    salt: bytes = bytes(16),
    gifts: tuple[bytes, ...] = (),
    last: bool = True,
) -> Recon:
    return Recon(3, True, seq, salt, ranges, gifts, last)


FP = ReconRange(None, RANGE_FINGERPRINT, bytes(FINGERPRINT_SIZE))


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (_frame((FP,), seq=1), "out of order"),
        (_frame((FP,), salt=b""), "salt"),
        (_frame(()), "ranges"),
        (
            _frame((ReconRange(b"\x05", RANGE_SKIP), ReconRange(b"\x05", RANGE_SKIP), FP)),
            "increase",
        ),
        (_frame((ReconRange(None, RANGE_SKIP), FP)), "open-ended"),
        (_frame((ReconRange(b"\x05", RANGE_SKIP),)), "open-ended"),
        (
            _frame((ReconRange(None, RANGE_FINGERPRINT, bytes(FINGERPRINT_SIZE - 1)),)),
            "fingerprint",
        ),
        (_frame((ReconRange(None, RANGE_IDLIST, bytes(5)),)), "idlist"),
        (_frame((ReconRange(None, RANGE_RESULT, b"\x01"),)), "no idlist"),
        (_frame((FP,), gifts=(b"12345678",)), "gift"),
        (Recon(4, True, 0, bytes(16), (FP,), (), True), "another session"),
        (Recon(3, False, 0, bytes(16), (FP,), (), True), "another session"),
    ],
)
def test_hostile_frames_raise_remote_errors(frame: Recon, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        _responder().receive(frame)


def test_result_bitfield_must_match_our_idlist() -> None:
    left = ReconcileSession(SortedItems(POOL[:5]), sid=1, initiator=True, rng=random.Random(0))
    (opening,) = left.start()
    assert opening.ranges[0].mode == RANGE_IDLIST
    bad = Recon(1, False, 0, b"", (ReconRange(None, RANGE_RESULT, b"\x00\x00"),), (), True)
    with pytest.raises(MalformedMessage, match="bitfield"):
        left.receive(bad)


def test_unanswered_idlist_is_an_error() -> None:
    left = ReconcileSession(SortedItems(POOL[:5]), sid=1, initiator=True, rng=random.Random(0))
    left.start()
    skip = Recon(1, False, 0, b"", (ReconRange(None, RANGE_SKIP),), (), True)
    with pytest.raises(RemoteProtocolError, match="unanswered"):
        left.receive(skip)


def test_a_message_without_its_last_frame_is_never_acted_on() -> None:
    a, b = SortedItems(POOL[:200]), SortedItems(POOL[100:300])
    config = ReconConfig(buckets=4, leaf_size=2, ranges_per_frame=1)
    left = ReconcileSession(a, sid=1, initiator=True, rng=random.Random(0), config=config)
    right = ReconcileSession(b, sid=1, initiator=False, rng=random.Random(0), config=config)
    frames = left.start()
    assert len(frames) > 1 and frames[-1].last and not any(f.last for f in frames[:-1])
    for frame in frames[:-1]:
        assert right.receive(frame) == []
    assert not right.done and not right.need
    assert right.receive(frames[-1])


def test_a_finished_session_refuses_more_frames() -> None:
    _left, right, _, _ = reconcile_locally(
        SortedItems(POOL[:3]), SortedItems(POOL[:3]), random.Random(0)
    )
    with pytest.raises(RemoteProtocolError, match="finished"):
        right.receive(_frame((FP,)))


def test_a_fresh_hub_gets_every_key_across_many_frames() -> None:
    rng = random.Random(11)
    keys = [
        item_key(rng.randrange(2**60), Cid.of(rng.randbytes(8), DAG_CBOR)) for _ in range(40_000)
    ]
    left, right, messages, wire = reconcile_locally(SortedItems(), SortedItems(keys), rng)
    assert left.need == set(keys) and right.their_need == set(keys)
    assert wire > 40_000 * 44  # every key travelled once, in frames under the limit
    assert messages <= 4
