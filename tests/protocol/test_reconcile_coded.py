"""Coded reconcile ranges (rateless IBLT symbols): results, negotiation, hostile input."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.protocol.coded import CHECK_SIZE, SYMBOL_CHECK_SIZE, encode_symbols, item_check
from craftnet.protocol.errors import MalformedMessage, RemoteProtocolError
from craftnet.protocol.framing import FrameDecoder, encode_varint
from craftnet.protocol.items import SortedItems, item_key
from craftnet.protocol.messages import (
    RANGE_CODED,
    RANGE_DECODED,
    RANGE_FINGERPRINT,
    RANGE_IDLIST,
    RANGE_MORE,
    RANGE_SKIP,
    RECON_CODED_VERSION,
    Hello,
    Recon,
    ReconRange,
)
from craftnet.protocol.reconcile import (
    CODED_FINGERPRINT_SIZE,
    MAX_CODED_SYMBOLS,
    ReconcileSession,
    ReconConfig,
    fingerprint,
    reconcile_locally,
)
from tests.protocol.protocol_helpers import Hub, Network, make_record, quick_config

WIDTH = 44
POOL = [item_key(1_000 + (i // 3), Cid.of(i.to_bytes(4, "big"), DAG_CBOR)) for i in range(600)]
# Keys of another width (raw CIDs are as long, so shorten the id): coded ranges that
# would mix widths are split as before.
ODD = [item_key(1_000 + i, i.to_bytes(12, "big")) for i in range(0, 600, 7)]
# Coded ranges for small sets: few buckets, tiny leaves, any estimate.
CODED = [
    ReconConfig(buckets=4, leaf_size=2, coded_max_estimate=1e9),
    ReconConfig(buckets=2, leaf_size=1, coded_max_estimate=1e9, coded_max_symbols=8),
    ReconConfig(buckets=8, leaf_size=4, coded_max_estimate=1e9, coded_max_items=40),
    ReconConfig(buckets=3, leaf_size=3, ranges_per_frame=1, coded_max_estimate=1e9),
    ReconConfig(),
]


def _modes_sent(a: SortedItems, b: SortedItems, config: ReconConfig, seed: int) -> list[int]:
    left = ReconcileSession(
        a, sid=1, initiator=True, rng=random.Random(seed), config=config, coded=True
    )
    right = ReconcileSession(
        b, sid=1, initiator=False, rng=random.Random(seed), config=config, coded=True
    )
    modes: list[int] = []
    frames = left.start()
    turn = 0
    while frames:
        modes += [r.mode for f in frames for r in f.ranges]
        side = right if turn % 2 == 0 else left
        frames = [reply for f in frames for reply in side.receive(f)]
        turn += 1
    return modes


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, len(POOL)),
    st.sets(st.integers(0, len(POOL) - 1), max_size=60),
    st.sets(st.integers(0, len(POOL) - 1), max_size=60),
    st.sampled_from(["both", "a empty", "b empty"]),
    st.sets(st.sampled_from(ODD), max_size=10),
    st.sampled_from(CODED),
    st.integers(0, 2**32),
)
def test_coded_reconcile_finds_exactly_the_symmetric_difference(
    shared: int,
    flip_a: set[int],
    flip_b: set[int],
    empty: str,
    odd: set[bytes],
    config: ReconConfig,
    seed: int,
) -> None:
    # Two sets that share a prefix of the pool, each with some items added or removed:
    # d = 0 when the flips are equal, up to all of both when one side is empty.
    base = set(POOL[:shared])
    a = set() if empty == "a empty" else base ^ {POOL[i] for i in flip_a}
    b = set() if empty == "b empty" else (base ^ {POOL[i] for i in flip_b}) | odd
    left, right, messages, _ = reconcile_locally(
        SortedItems(a), SortedItems(b), random.Random(seed), config, coded=True
    )
    assert left.need == b - a and left.their_need == a - b
    assert right.need == a - b and right.their_need == b - a
    assert left.done and right.done
    # Bounded: a few levels of splits, each coded range at most ~log2(512) more rounds.
    assert messages <= 40
    if a == b:
        assert messages <= 2


def test_coded_ranges_are_used_and_cost_fewer_bytes() -> None:
    rng = random.Random(5)
    keys = [
        item_key(rng.randrange(2**60), Cid.of(rng.randbytes(8), DAG_CBOR)) for _ in range(20_000)
    ]
    extra_a = [item_key(rng.randrange(2**60), Cid.of(rng.randbytes(8), RAW)) for _ in range(20)]
    extra_b = [item_key(rng.randrange(2**60), Cid.of(rng.randbytes(8), RAW)) for _ in range(20)]
    a, b = SortedItems(keys + extra_a), SortedItems(keys + extra_b)
    plain = reconcile_locally(a, b, random.Random(1))
    coded = reconcile_locally(a, b, random.Random(1), coded=True)
    for left, right, _, _ in (plain, coded):
        assert left.need == set(extra_b) and right.need == set(extra_a)
        assert left.their_need == set(extra_a) and right.their_need == set(extra_b)
    assert RANGE_CODED in _modes_sent(a, b, ReconConfig(), 1)
    assert coded[3] < plain[3]


def test_equal_sets_cost_what_they_did() -> None:
    items = SortedItems(POOL)
    plain = reconcile_locally(items, items, random.Random(3))
    coded = reconcile_locally(items, items, random.Random(3), coded=True)
    assert (plain[2], plain[3]) == (coded[2], coded[3]) == (2, plain[3])


def test_mixed_widths_fall_back_to_splitting() -> None:
    a = SortedItems(POOL[:300] + ODD)
    b = SortedItems(POOL[:299] + ODD)
    config = CODED[0]
    modes = _modes_sent(a, b, config, 2)
    left, right, _, _ = reconcile_locally(a, b, random.Random(2), config, coded=True)
    assert right.need == {POOL[299]} and left.their_need == {POOL[299]}
    assert RANGE_FINGERPRINT in modes


# ------------------------------------------------------------- hostile frames


def _session(keys: list[bytes], initiator: bool = False, coded: bool = True) -> ReconcileSession:
    return ReconcileSession(
        SortedItems(keys),
        sid=3,
        initiator=initiator,
        rng=random.Random(0),
        config=CODED[0],
        coded=coded,
    )


SALT = bytes(range(16))


def _open(ranges: tuple[ReconRange, ...]) -> Recon:
    return Recon(3, True, 0, SALT, ranges, (), True)


def _coded_data(
    keys: list[bytes], start: int = 0, count: int = 4, fp: bytes | None = None, n: int = -1
) -> bytes:
    import blake3

    salt_key = blake3.blake3(SALT).digest()
    symbols = encode_symbols(salt_key, keys, start, count)
    items = SortedItems(keys)
    head = fp if fp is not None else fingerprint(SALT, *items.summary(b"", None))
    n = len(keys) if n < 0 else n
    return (
        head[:CODED_FINGERPRINT_SIZE]
        + encode_varint(n)
        + encode_varint(start)
        + bytes([WIDTH])
        + symbols.encode(WIDTH)
    )


def _coded(data: bytes) -> Recon:
    return _open((ReconRange(None, RANGE_CODED, data),))


SYMBOL = 1 + WIDTH + SYMBOL_CHECK_SIZE


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00" * 5, "cut short"),
        (_coded_data(POOL[:20])[:-1], "whole number of symbols"),
        (_coded_data(POOL[:20], count=1)[:-SYMBOL], "whole number of symbols"),
        (_coded_data(POOL[:20])[:6] + b"\x00" + _coded_data(POOL[:20])[7:], "wide"),
        (_coded_data(POOL[:20], start=4), "continue nothing"),
        (_coded_data(POOL[:20], count=MAX_CODED_SYMBOLS + 1), "too many coded symbols"),
    ],
)
def test_hostile_coded_ranges_raise(data: bytes, error: str) -> None:
    with pytest.raises(RemoteProtocolError, match=error):
        _session(POOL[:18]).receive(_coded(data))


def test_coded_ranges_from_a_peer_that_did_not_negotiate_them_are_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="did not offer"):
        _session(POOL[:18], coded=False).receive(_coded(_coded_data(POOL[:20])))


def test_symbols_that_peel_to_garbage_are_never_taken() -> None:
    # Symbols of keys that are not even in the range's order, and of made-up junk:
    # whatever peels, nothing is wanted, the range is asked for more or split.
    mine = POOL[:18]
    junk = [item_key(5, Cid.of(bytes([i]), DAG_CBOR)) for i in range(3)]
    for data in (
        _coded_data(mine + junk, fp=bytes(12)),  # wrong fingerprint: not confirmed
        _coded_data([*mine[:-1], bytes(WIDTH)]),  # an all-zero key cannot peel
    ):
        session = _session(mine)
        (reply,) = session.receive(_coded(data))
        assert not session.need and not reply.gifts
        assert reply.ranges[-1].mode in (RANGE_MORE, RANGE_FINGERPRINT)
    # A key beyond the range's upper bound: the range is [b"", POOL[18]).
    session = _session(mine)
    data = _coded_data([*mine, POOL[30]], count=1)
    frame = _open((ReconRange(POOL[18], RANGE_CODED, data), ReconRange(None, RANGE_SKIP)))
    (reply,) = session.receive(frame)
    assert not session.need


def test_an_honest_decode_is_taken() -> None:
    mine = POOL[:18]
    session = _session(mine)
    (reply,) = session.receive(_coded(_coded_data([*mine, POOL[40]], count=1)))
    assert session.need == {POOL[40]}
    assert reply.ranges[-1].mode == RANGE_DECODED
    check = item_check(session._salt_key, POOL[40])[0].to_bytes(CHECK_SIZE, "little")
    assert reply.ranges[-1].data == check


def _coding_initiator() -> tuple[ReconcileSession, Recon]:
    """An initiator that answered a mismatching fingerprint with coded symbols."""
    left = ReconcileSession(
        SortedItems(POOL[:200]),
        sid=1,
        initiator=True,
        rng=random.Random(0),
        config=CODED[0],
        coded=True,
    )
    right = ReconcileSession(
        SortedItems(POOL[1:200]),
        sid=1,
        initiator=False,
        rng=random.Random(0),
        config=CODED[0],
        coded=True,
    )
    frames = left.start()
    sides = (right, left)
    turn = 0
    while frames:
        side = sides[turn % 2]
        frames = [r for f in frames for r in side.receive(f)]
        if any(r.mode == RANGE_CODED for f in frames for r in f.ranges):
            return side, frames[-1]
        turn += 1
    raise AssertionError("no side sent coded symbols")


def _answer_all(to: ReconcileSession, frame: Recon, mode: int, data: bytes) -> Recon:
    """The peer's answer to ``frame`` from ``to``: ``mode`` for every coded range."""
    ranges = tuple(
        ReconRange(r.upper, mode, data)
        if r.mode == RANGE_CODED
        else ReconRange(r.upper, RANGE_SKIP)
        for r in frame.ranges
    )
    return Recon(1, not to.initiator, to._seq_in, b"", ranges, (), True)


@pytest.mark.parametrize(
    ("mode", "data", "error"),
    [
        (RANGE_MORE, b"", "one varint"),
        (RANGE_MORE, b"\x80", "one varint"),
        (RANGE_MORE, encode_varint(MAX_CODED_SYMBOLS), "past"),
        (RANGE_DECODED, b"\x01" * 5, "checks"),
        (RANGE_DECODED, b"\x01" * CHECK_SIZE, "do not hold"),
        (RANGE_DECODED, b"\x01" * 2 * CHECK_SIZE, "twice"),
    ],
)
def test_hostile_answers_to_our_symbols_raise(mode: int, data: bytes, error: str) -> None:
    left, sent = _coding_initiator()
    with pytest.raises(RemoteProtocolError, match=error):
        left.receive(_answer_all(left, sent, mode, data))


def test_more_or_decoded_for_a_range_we_did_not_code_raise() -> None:
    for mode in (RANGE_MORE, RANGE_DECODED):
        with pytest.raises(RemoteProtocolError, match="no symbols"):
            _session(POOL[:18]).receive(_open((ReconRange(None, mode, encode_varint(1)),)))


def test_endless_requests_for_more_symbols_end_in_an_error() -> None:
    left, sent = _coding_initiator()
    with pytest.raises(RemoteProtocolError, match="past"):
        for _ in range(20):
            frames = left.receive(
                _answer_all(left, sent, RANGE_MORE, encode_varint(MAX_CODED_SYMBOLS // 4))
            )
            sent = frames[-1]


def test_malformed_more_is_a_malformed_message() -> None:
    left, sent = _coding_initiator()
    with pytest.raises(MalformedMessage):
        left.receive(_answer_all(left, sent, RANGE_MORE, b"\x01\x01"))


# ------------------------------------------------------------- negotiation


def _pair(coded_a: bool, coded_b: bool) -> tuple[Network, Hub, Hub]:
    net = Network()
    small = dict(buckets=4, leaf_size=2, coded_max_estimate=1e9)
    a = net.add(Hub("hub-lisbon", 1, quick_config(recon=ReconConfig(coded=coded_a, **small))))
    b = net.add(Hub("hub-nairobi", 2, quick_config(recon=ReconConfig(coded=coded_b, **small))))
    for n in range(120):
        record = make_record(a.key, n)
        a.add_record(record)
        b.add_record(record)
    a.add_record(make_record(a.key, 1000))
    b.add_record(make_record(b.key, 2000))
    return net, a, b


def _sent(net: Network, owner: Hub) -> list[object]:
    decoder = FrameDecoder()
    for who, cmd in net.execute_log:
        if who == owner.peer and getattr(cmd, "data", None) is not None:
            decoder.receive_data(cmd.data)  # type: ignore[attr-defined]
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def _coded_ranges(messages: list[object]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, Recon)
        for r in m.ranges
        if r.mode in (RANGE_CODED, RANGE_MORE, RANGE_DECODED)
    )


@pytest.mark.parametrize(("coded_a", "coded_b"), [(True, True), (True, False), (False, True)])
def test_hubs_use_coded_ranges_only_when_both_offered_them(coded_a: bool, coded_b: bool) -> None:
    net, a, b = _pair(coded_a, coded_b)
    net.connect(a.peer, b.peer)
    net.settle()
    assert a.record_keys() == b.record_keys() and len(a.record_keys()) == 122
    sent_a, sent_b = _sent(net, a), _sent(net, b)
    (hello_a,) = [m for m in sent_a if isinstance(m, Hello)]
    (hello_b,) = [m for m in sent_b if isinstance(m, Hello)]
    assert (RECON_CODED_VERSION in hello_a.versions) is coded_a
    assert (RECON_CODED_VERSION in hello_b.versions) is coded_b
    used = _coded_ranges(sent_a) + _coded_ranges(sent_b)
    assert bool(used) is (coded_a and coded_b)
    assert not any(owner for owner, _ban in net.bans)


def test_coding_work_per_session_is_bounded() -> None:
    # A peer that keeps sending symbols that never decode gets "more" until our
    # budget (about eight walks over our set) is spent, then the range is split.
    mine = [item_key(1_000 + i, Cid.of(i.to_bytes(4, "big"), DAG_CBOR)) for i in range(3_000)]
    session = ReconcileSession(
        SortedItems(mine),
        sid=3,
        initiator=False,
        rng=random.Random(0),
        config=ReconConfig(coded_max_items=4_000),
        coded=True,
    )
    junk = [item_key(2_000_000 + i, Cid.of(bytes([i]), DAG_CBOR)) for i in range(200)]
    data = _coded_data(mine[:2_000] + junk, count=32, n=3_000)
    answers = []
    for seq in range(8):
        frame = Recon(3, True, seq, SALT if seq == 0 else b"", _coded(data).ranges, (), True)
        (reply,) = session.receive(frame)
        answers.append(reply.ranges[-1].mode)
    assert answers[0] == RANGE_MORE
    assert answers[-1] == RANGE_FINGERPRINT
    assert not session.need


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([RANGE_CODED, RANGE_MORE, RANGE_DECODED, RANGE_FINGERPRINT]),
            st.one_of(
                st.binary(max_size=300),
                st.builds(
                    lambda n, start, count: _coded_data(POOL[: n % 40], start, count),
                    st.integers(1, 40),
                    st.integers(0, 3),
                    st.integers(1, 6),
                ),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_coded_input_only_ever_raises_remote_errors(
    ranges: list[tuple[int, bytes]],
) -> None:
    session = _session(POOL[:30])
    bounds = [POOL[i * 10] for i in range(1, len(ranges))] + [None]
    frame = _open(tuple(ReconRange(b, m, d) for b, (m, d) in zip(bounds, ranges, strict=True)))
    with contextlib.suppress(RemoteProtocolError):
        session.receive(frame)
    assert session.need <= set(POOL)


def test_more_past_our_coding_budget_is_answered_by_splitting() -> None:
    left, sent = _coding_initiator()
    left._work_budget = left._work  # spent: as after a long hostile session
    (reply,) = left.receive(_answer_all(left, sent, RANGE_MORE, encode_varint(4)))
    modes = {r.mode for r in reply.ranges}
    assert RANGE_CODED not in modes
    assert modes & {RANGE_FINGERPRINT, RANGE_IDLIST}
