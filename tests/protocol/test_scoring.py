"""Peer scores: offences, thresholds, decay, rate limits, and forgiving slow peers."""

from __future__ import annotations

import pytest

from craftnet.protocol.errors import LocalProtocolError
from craftnet.protocol.events import PeerId
from craftnet.protocol.scoring import (
    OFFENCES,
    RATE_LIMITS,
    PeerScores,
    Thresholds,
    Verdict,
    offence_table,
)

PEER = PeerId("hub-maker-fair")


def test_offences_lead_to_graylist_then_ban() -> None:
    scores = PeerScores()
    assert scores.penalize(PEER, "malformed_frame", 0.0) is Verdict.OK
    assert scores.penalize(PEER, "protocol_violation", 0.0) is Verdict.GRAYLIST
    assert scores.penalize(PEER, "bad_block", 0.0) is Verdict.BAN
    assert scores.is_banned(PEER, 10.0)
    until = scores.banned_until(PEER)
    assert until == Thresholds().ban_seconds
    assert not scores.is_banned(PEER, until)
    assert scores.offence_counts(PEER) == {
        "malformed_frame": 1,
        "protocol_violation": 1,
        "bad_block": 1,
    }


def test_scores_decay_with_the_half_life() -> None:
    scores = PeerScores(Thresholds(half_life=100.0))
    scores.penalize(PEER, "bad_block", 0.0)
    assert scores.score(PEER, 100.0) == pytest.approx(-15.0)
    assert scores.verdict(PEER, 100.0) is Verdict.OK


def test_a_slow_honest_peer_is_never_graylisted() -> None:
    scores = PeerScores()
    now = 0.0
    for _ in range(200):
        # Every request times out once and is then delivered late, block by block.
        scores.penalize(PEER, "timeout", now)
        for _ in range(4):
            scores.reward(PEER, now)
        now += 5.0
        assert scores.verdict(PEER, now) is Verdict.OK
    assert scores.score(PEER, now) > 0


def test_rewards_are_capped() -> None:
    scores = PeerScores()
    for _ in range(1000):
        scores.reward(PEER, 0.0)
    assert scores.score(PEER, 0.0) == 10.0
    # A capped reward balance does not buy immunity from a bad block and a forged signature.
    scores.penalize(PEER, "bad_block", 0.0)
    assert scores.penalize(PEER, "invalid_signature", 0.0) is Verdict.GRAYLIST


def test_token_buckets_refill_with_time() -> None:
    scores = PeerScores()
    burst = int(RATE_LIMITS["announce"].burst)
    assert all(scores.allow(PEER, "announce", 0.0) for _ in range(burst))
    assert not scores.allow(PEER, "announce", 0.0)
    assert scores.allow(PEER, "announce", 1.0 / RATE_LIMITS["announce"].rate)
    assert scores.allow(PEER, "unlimited-kind", 0.0)


def test_unknown_offence_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        PeerScores().penalize(PEER, "being-rude", 0.0)


def test_the_table_for_the_docs_lists_every_offence() -> None:
    table = offence_table()
    for name in OFFENCES:
        assert f"`{name}`" in table
    for kind in RATE_LIMITS:
        assert f"`{kind}`" in table
