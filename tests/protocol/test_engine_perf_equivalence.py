"""The engine's fast paths are observationally identical to the plain ones.

simnet runs thousands of engines in one process through a :class:`FrameCache` (each
distinct frame body decoded once, each verified block parsed once) and the scores'
inlined :meth:`PeerScores.ok_peers`. These tests hold them to the plain code: same
bytes, same messages, same refusals of hostile input, same float scores.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable

import pytest
import test_engine
import test_engine_fuzz
from hypothesis import given
from hypothesis import strategies as st
from protocol_helpers import ALLIANCE, make_key, make_record

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.identity.errors import IdentityError
from craftnet.protocol.blocks import _parse_block
from craftnet.protocol.errors import FrameError, MalformedMessage, RemoteProtocolError
from craftnet.protocol.events import PeerId
from craftnet.protocol.framing import (
    FrameCache,
    current_frame_cache,
    decode_body,
    encode_frame,
    frame_cache,
)
from craftnet.protocol.messages import (
    RANGE_FINGERPRINT,
    RANGE_SKIP,
    Announce,
    Block,
    DontHave,
    End,
    Have,
    Hello,
    Message,
    Recon,
    ReconRange,
    Want,
)
from craftnet.protocol.scoring import OFFENCES, PeerScores, RateLimit, Traffic, Verdict

CID = Cid.of(b"Intergenerational Making Cooperative loom notes")
KEY = make_key(11)

EXAMPLES: list[Message] = [
    Hello.create(KEY, (2,), ALLIANCE, "12D3KooWLoom", (b"a proof record",)),
    Announce.create(KEY, 7, (CID,), (Cid.of(b"a head"),)),
    Want(3, (CID,), False),
    Want(4, (CID, CID), True),
    Have(4, (CID,)),
    DontHave(4, (CID,)),
    Block(3, CID, b"Intergenerational Making Cooperative loom notes"),
    End(3),
    Recon(
        5,
        False,
        2,
        bytes(16),
        (ReconRange(b"\x02", RANGE_FINGERPRINT, bytes(16)), ReconRange(None, RANGE_SKIP)),
        (bytes(20),),
        False,
    ),
]


def _body(frame: bytes) -> bytes:
    # The varint prefix of these small frames is one or two bytes.
    start = 1 if frame[0] < 0x80 else 2
    return frame[start:]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.KIND)
def test_frames_are_the_same_bytes_and_messages_with_a_cache(message: Message) -> None:
    plain = encode_frame(message)
    cache = FrameCache()
    with frame_cache(cache):
        cached = encode_frame(message)
        assert cached == plain
        # The receiver gets, from the cache, the message a strict decode gives.
        got = decode_body(_body(cached))
    assert got == decode_body(_body(plain)) == message
    assert cache.hits == 1
    assert current_frame_cache() is None


def test_a_locally_built_bad_message_is_still_refused_by_its_receiver() -> None:
    # An empty want passes the encoder but not the message checks: it must not be
    # entered into the cache, so the receiver refuses it as it always did.
    bad = Want(9, (), False)
    with frame_cache(FrameCache()):
        body = _body(encode_frame(bad))
        with pytest.raises(MalformedMessage, match="at least one CID"):
            decode_body(body)
        with pytest.raises(MalformedMessage, match="at least one CID"):
            decode_body(body)


def test_hostile_bodies_are_refused_every_time_with_a_cache() -> None:
    good = _body(encode_frame(End(1)))
    hostile = [
        good + b"\x00",  # trailing bytes
        b"\xa4" + good[1:],  # a map header counting one entry too many
        codec.encode({"v": 2, "t": "end", "req": -1}),
        codec.encode({"v": 1, "t": "end", "req": 1}),
        b"\xff",
    ]
    refusals = []
    for body in hostile:
        with pytest.raises(RemoteProtocolError) as plain_error:
            decode_body(body)
        refusals.append((plain_error.type, str(plain_error.value)))
    with frame_cache(FrameCache()) as cache:
        assert decode_body(good) == End(1)
        for body, refusal in zip(hostile, refusals, strict=True):
            for _ in range(2):
                with pytest.raises(RemoteProtocolError) as cached_error:
                    decode_body(body)
                assert (cached_error.type, str(cached_error.value)) == refusal
        assert len(cache) == 1


def test_a_cached_body_still_obeys_the_receivers_frame_limit() -> None:
    body = _body(encode_frame(Block(1, CID, bytes(300))))
    with frame_cache(FrameCache()):
        assert decode_body(body).KIND == "block"
        with pytest.raises(FrameError, match="limit"):
            decode_body(body, max_frame_size=100)


def test_the_cache_is_bounded_and_lets_a_sent_body_go_at_its_first_use() -> None:
    cache = FrameCache(max_entries=3, max_body=64, max_sent=2)
    with frame_cache(cache):
        bodies = [_body(encode_frame(End(req))) for req in range(10)]
        encode_frame(Block(1, CID, bytes(200)))  # over max_body: not kept
        assert len(cache) == 2
        assert decode_body(bodies[9]) == End(9)  # entered by its encoder, let go now
        assert len(cache) == 1
        for req, body in enumerate(bodies):
            assert decode_body(body) == End(req)  # decoded strictly, kept (LRU)
        assert len(cache) == 3
    assert cache.hits == 2  # End(9) and End(8), the two sent bodies still held


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40)
    | st.builds(Cid.of, st.binary(max_size=8)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _in_order(value: object) -> object:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _in_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_in_order(v) for v in value]
    return value


@given(_values)
def test_encode_checked_gives_exactly_the_canonical_bytes(value: object) -> None:
    assert codec.encode_checked(_in_order(value)) == codec.encode(value)


def _block_outcomes(cid: Cid, data: bytes) -> tuple[bool, object, tuple[Cid, ...]]:
    canonical, record, links = _parse_block(cid, data)
    return canonical, None if record is None else record.block, links


def test_block_parses_are_the_same_with_a_cache() -> None:
    record = make_record(KEY, 1, (CID,))
    plain_map = codec.encode({"k": [CID, {"x": CID}], "n": 1})
    not_canonical = b"\xa1\x61k\x18\x01"  # 1 written in two bytes
    blocks = [
        (record.cid, record.block),
        (Cid.of(plain_map, DAG_CBOR), plain_map),
        (Cid.of(not_canonical, DAG_CBOR), not_canonical),
    ]
    plain = [_block_outcomes(c, d) for c, d in blocks]
    assert plain[0] == (True, record.block, (CID,))
    assert plain[1] == (True, None, (CID, CID))
    assert plain[2] == (False, None, ())
    with frame_cache(FrameCache()) as cache:
        for _ in range(2):
            assert [_block_outcomes(c, d) for c, d in blocks] == plain
    assert len(cache.parsed) == 3


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["penalize", "reward", "check", "later"]),
            st.integers(min_value=0, max_value=4),
            st.sampled_from(sorted(OFFENCES)),
            st.floats(min_value=0.0, max_value=4000.0),
        ),
        max_size=60,
    )
)
def test_ok_peers_is_the_verdict_of_each_peer_with_the_same_side_effects(
    steps: list[tuple[str, int, str, float]],
) -> None:
    fast, slow = PeerScores(), PeerScores()
    peers = [PeerId(f"hub-{i}") for i in range(5)]
    now = 0.0
    for action, who, offence, dt in steps:
        peer = peers[who]
        if action == "penalize":
            assert fast.penalize(peer, offence, now) is slow.penalize(peer, offence, now)
        elif action == "reward":
            fast.reward(peer, now)
            slow.reward(peer, now)
        elif action == "later":
            now += dt
        else:
            asked = peers[: who + 1]
            expected = {p for p in asked if slow.verdict(p, now) is Verdict.OK}
            assert fast.ok_peers(asked, now) == expected
        # Bit for bit: the same scores, decayed at the same moments.
        assert {p: (s.score, s.at) for p, s in fast._peers.items()} == {
            p: (s.score, s.at) for p, s in slow._peers.items()
        }
        assert fast._banned == slow._banned


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["penalize", "reward", "take", "later"]),
            st.integers(min_value=0, max_value=2),
            st.sampled_from(sorted(OFFENCES)),
            st.floats(min_value=0.0, max_value=30.0),
        ),
        max_size=80,
    )
)
def test_take_is_the_verdict_then_a_token_with_the_same_side_effects(
    steps: list[tuple[str, int, str, float]],
) -> None:
    # A small bucket, so that some takes find it empty.
    limits = {Traffic.ANNOUNCE: RateLimit(0.5, 3.0)}
    fast, slow = PeerScores(rate_limits=limits), PeerScores(rate_limits=limits)
    peers = [PeerId(f"hub-{i}") for i in range(3)]
    now = 0.0
    for action, who, offence, dt in steps:
        peer = peers[who]
        if action == "penalize":
            assert fast.penalize(peer, offence, now) is slow.penalize(peer, offence, now)
        elif action == "reward":
            fast.reward(peer, now)
            slow.reward(peer, now)
        elif action == "later":
            now += dt
        else:
            verdict = slow.verdict(peer, now)
            if verdict is Verdict.OK and not slow.allow(peer, Traffic.ANNOUNCE, now):
                assert fast.take(peer, Traffic.ANNOUNCE, now) is None
            else:
                assert fast.take(peer, Traffic.ANNOUNCE, now) is verdict
        # Bit for bit: the same scores and buckets, decayed at the same moments.
        assert {p: (s.score, s.at, s.buckets) for p, s in fast._peers.items()} == {
            p: (s.score, s.at, s.buckets) for p, s in slow._peers.items()
        }
        assert fast._banned == slow._banned


def _engine_tests() -> list[Callable[[], None]]:
    found = []
    for module in (test_engine, test_engine_fuzz):
        for name, func in sorted(vars(module).items()):
            if (
                name.startswith("test_")
                and callable(func)
                and not inspect.signature(func).parameters
            ):
                found.append(func)
    return found


@pytest.mark.parametrize("engine_test", _engine_tests(), ids=lambda f: f.__name__)
def test_the_engine_tests_pass_through_a_frame_cache(engine_test: Callable[[], None]) -> None:
    random.seed(0)
    with frame_cache(FrameCache()):
        engine_test()


def test_announcement_signed_bytes_are_the_same_through_the_memo() -> None:
    ann = Announce.create(KEY, 9, (CID,))
    forged = Announce(ann.did, 10, ann.records, ann.heads, ann.sig)
    plain = [ann.signed_bytes(), forged.signed_bytes()]
    with frame_cache(FrameCache()) as cache:
        for _ in range(2):
            assert [ann.signed_bytes(), forged.signed_bytes()] == plain
            ann.verify()
            with pytest.raises(IdentityError):
                forged.verify()
        assert len(cache.signed) == 2
