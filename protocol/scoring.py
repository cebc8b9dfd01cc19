"""Peer scoring: offences cost score, good deliveries earn a little back, all decays.

The weights are data (``OFFENCES``, ``RATE_LIMITS``, kept in
:mod:`craftnet.protocol.policy` with every other policy number) so the documentation
prints the same table the code uses. A peer's score starts at 0, falls by an offence's
weight, rises by :data:`DELIVERY_REWARD` per verified block up to
:data:`MAX_SCORE`, and decays towards 0 with a half-life, so old sins are forgiven.
Below :attr:`Thresholds.graylist` the peer's messages are ignored; below
:attr:`Thresholds.disconnect` it is disconnected and banned for ``ban_seconds``.
A slow but honest peer only ever pays the small ``timeout`` weight, which its
deliveries earn back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from craftnet.protocol.errors import LocalProtocolError
from craftnet.protocol.events import PeerId
from craftnet.protocol.policy import (
    DELIVERY_REWARD,
    MAX_SCORE,
    OFFENCES,
    RATE_LIMITS,
    Offence,
    OffenceKind,
    RateLimit,
    Thresholds,
    Traffic,
)

__all__ = [
    "DELIVERY_REWARD",
    "MAX_SCORE",
    "OFFENCES",
    "RATE_LIMITS",
    "Offence",
    "OffenceKind",
    "PeerScores",
    "RateLimit",
    "Thresholds",
    "Traffic",
    "Verdict",
    "offence_table",
]


class Verdict(Enum):
    """What to do with a peer after its score changed."""

    OK = "ok"
    GRAYLIST = "graylist"
    BAN = "ban"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    used: float = 0.0  # the largest share of the burst ever spent: how deep a burst went


@dataclass(slots=True)
class _Peer:
    score: float = 0.0
    at: float = 0.0
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    graylisted: list[float] = field(default_factory=list)  # when it fell below the line


class PeerScores:
    """Scores and rate buckets of every peer we have talked to."""

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        offences: dict[str, Offence] | None = None,
        rate_limits: dict[str, RateLimit] | None = None,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.offences = OFFENCES if offences is None else offences
        self.rate_limits = RATE_LIMITS if rate_limits is None else rate_limits
        self._peers: dict[PeerId, _Peer] = {}
        self._banned: dict[PeerId, float] = {}

    def _peer(self, peer: PeerId, now: float) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer(at=now)
        elif now > state.at:
            if state.score:  # a zero score stays exactly zero; skip the power
                state.score *= 0.5 ** ((now - state.at) / self.thresholds.half_life)
            state.at = now
        return state

    def score(self, peer: PeerId, now: float) -> float:
        """The peer's score at ``now``."""
        return self._peer(peer, now).score

    def offence_counts(self, peer: PeerId) -> dict[str, int]:
        """How many times ``peer`` committed each offence."""
        state = self._peers.get(peer)
        return dict(state.counts) if state else {}

    def verdict(self, peer: PeerId, now: float) -> Verdict:
        """What the peer's current score calls for."""
        # Runs for every gossip message: the ban looked up first (rarely any), the
        # score read as :meth:`_peer` decays it, without its call when nothing is due.
        if peer in self._banned and self.is_banned(peer, now):
            return Verdict.BAN
        state = self._peers.get(peer)
        if state is None or now > state.at:
            state = self._peer(peer, now)
        score = state.score
        if score < self.thresholds.disconnect:
            return Verdict.BAN
        if score < self.thresholds.graylist:
            return Verdict.GRAYLIST
        return Verdict.OK

    def ok_peers(self, peers: Iterable[PeerId], now: float) -> set[PeerId]:
        """The peers among ``peers`` whose :meth:`verdict` at ``now`` is OK.

        Exactly ``{p for p in peers if self.verdict(p, now) is Verdict.OK}``, with the same
        side effects in the same order (bans lifted, scores decayed to ``now``), inlined
        because the engine asks it for every ready peer after every event.
        """
        states = self._peers
        banned = self._banned
        half_life = self.thresholds.half_life
        graylist = self.thresholds.graylist
        disconnect = self.thresholds.disconnect
        out: set[PeerId] = set()
        for peer in peers:
            if peer in banned and self.is_banned(peer, now):
                continue
            state = states.get(peer)
            if state is None:
                state = states[peer] = _Peer(at=now)
            elif now > state.at:
                if state.score:
                    state.score *= 0.5 ** ((now - state.at) / half_life)
                state.at = now
            score = state.score
            if not (score < disconnect or score < graylist):
                out.add(peer)
        return out

    def penalize(self, peer: PeerId, offence: str, now: float, times: int = 1) -> Verdict:
        """Charge ``peer`` for ``offence``; returns the verdict afterwards."""
        kind = self.offences.get(offence)
        if kind is None:
            raise LocalProtocolError(f"unknown offence {offence!r}")
        state = self._peer(peer, now)
        was_ok = state.score >= self.thresholds.graylist
        state.score -= kind.weight * times
        state.counts[offence] = state.counts.get(offence, 0) + times
        verdict = self.verdict(peer, now)
        if verdict is Verdict.GRAYLIST and was_ok:
            # Graylisting cuts a peer off until its score recovers; one that falls below
            # the line again soon after is not having a bad day: it is banned.
            since = now - self.thresholds.ban_seconds
            state.graylisted = [t for t in state.graylisted if t > since] + [now]
            if len(state.graylisted) >= self.thresholds.repeat_ban:
                verdict = Verdict.BAN
        if verdict is Verdict.BAN and peer not in self._banned:
            self._banned[peer] = now + self.thresholds.ban_seconds
        return verdict

    def reward(self, peer: PeerId, now: float, amount: float = DELIVERY_REWARD) -> None:
        """Credit a good deed (a verified block), up to :data:`MAX_SCORE`."""
        state = self._peers.get(peer)
        if state is None or now > state.at:
            state = self._peer(peer, now)
        # Once per delivered block: min() spelled out.
        score = state.score + amount
        state.score = score if score < MAX_SCORE else MAX_SCORE

    def allow(self, peer: PeerId, kind: str, now: float) -> bool:
        """Take a token for one message of ``kind``; False when the peer is flooding."""
        limit = self.rate_limits.get(kind)
        if limit is None:
            return True
        state = self._peers.get(peer)
        if state is None or now > state.at:
            state = self._peer(peer, now)
        bucket = state.buckets.get(kind)
        burst = limit.burst
        if bucket is None:
            bucket = state.buckets[kind] = _Bucket(burst, now)
        # min() and max() spelled out: this runs for every message of every peer.
        tokens = bucket.tokens + (now - bucket.at) * limit.rate
        if tokens > burst:
            tokens = burst
        if now > bucket.at:
            bucket.at = now
        bucket.tokens = tokens
        if tokens >= 1.0:
            bucket.tokens = tokens = tokens - 1.0
            used = (burst - tokens) / burst
            if used > bucket.used:
                bucket.used = used
            return True
        bucket.used = 1.0
        return False

    def take(self, peer: PeerId, kind: str, now: float) -> Verdict | None:
        """:meth:`verdict`, and for a peer that is OK a token of ``kind`` (:meth:`allow`):
        the verdict, or None for an OK peer over its rate for ``kind``.

        Exactly ``verdict(peer, now)`` followed, when it is OK, by ``allow(peer, kind,
        now)``, with the same side effects, in one call: the engine asks it for every
        gossip message of every peer (the peer's state is looked up and decayed once).
        """
        if peer in self._banned and self.is_banned(peer, now):
            return Verdict.BAN
        thresholds = self.thresholds
        # _peer(peer, now) without its call and its second look-up.
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer(at=now)
        elif now > state.at:
            if state.score:
                state.score *= 0.5 ** ((now - state.at) / thresholds.half_life)
            state.at = now
        score = state.score
        if score < thresholds.disconnect:
            return Verdict.BAN
        if score < thresholds.graylist:
            return Verdict.GRAYLIST
        limit = self.rate_limits.get(kind)
        if limit is None:
            return Verdict.OK
        # As allow() does (state is at ``now`` already).
        bucket = state.buckets.get(kind)
        burst = limit.burst
        if bucket is None:
            bucket = state.buckets[kind] = _Bucket(burst, now)
        tokens = bucket.tokens + (now - bucket.at) * limit.rate
        if tokens > burst:
            tokens = burst
        if now > bucket.at:
            bucket.at = now
        bucket.tokens = tokens
        if tokens >= 1.0:
            bucket.tokens = tokens = tokens - 1.0
            used = (burst - tokens) / burst
            if used > bucket.used:
                bucket.used = used
            return Verdict.OK
        bucket.used = 1.0
        return None

    def deepest(self, peer: PeerId, kind: str) -> float:
        """The largest share (0..1) of ``kind``'s burst allowance ``peer`` ever spent at
        once: how close its traffic came to the limit (1.0: it was over)."""
        state = self._peers.get(peer)
        bucket = state.buckets.get(kind) if state is not None else None
        return 0.0 if bucket is None else bucket.used

    def recovers_at(self, peer: PeerId, now: float) -> float:
        """When ``peer``'s score, decaying towards 0, is back at the graylist line (``now``
        if it is there already; the end of its ban if it is banned)."""
        until = self._banned.get(peer)
        if until is not None and until > now:
            return until
        score = self.score(peer, now)
        line = self.thresholds.graylist
        if score >= line or line >= 0:
            return now
        return now + self.thresholds.half_life * math.log2(score / line) + 1e-6

    def banned_until(self, peer: PeerId) -> float | None:
        """When the ban of ``peer`` ends, if it is banned."""
        return self._banned.get(peer)

    def is_banned(self, peer: PeerId, now: float) -> bool:
        """Tell whether ``peer`` is banned at ``now`` (expired bans are lifted)."""
        until = self._banned.get(peer)
        if until is None:
            return False
        if now >= until:
            del self._banned[peer]
            # A ban served resets the score to the graylist line, not to a clean slate.
            state = self._peers.get(peer)
            if state is not None:
                state.score = max(state.score, self.thresholds.graylist)
            return False
        return True


def offence_table() -> str:
    """The offences, weights and rate limits as Markdown tables (for the docs)."""
    lines = ["| offence | weight | meaning |", "|---|---:|---|"]
    for name, off in OFFENCES.items():
        lines.append(f"| `{name}` | {off.weight:g} | {off.description} |")
    lines += ["", "| message kind | rate (per s) | burst |", "|---|---:|---:|"]
    for kind, lim in RATE_LIMITS.items():
        lines.append(f"| `{kind}` | {lim.rate:g} | {lim.burst:g} |")
    t = Thresholds()
    lines += [
        "",
        f"Below {t.graylist:g} a peer is graylisted: disconnected and refused until its score "
        f"is back at the line; graylisted {t.repeat_ban} times within {t.ban_seconds:g} s, or "
        f"below {t.disconnect:g}, it is banned for {t.ban_seconds:g} s. Scores decay towards "
        f"0 with a half-life of {t.half_life:g} s; each verified block earns "
        f"{DELIVERY_REWARD:g} up to {MAX_SCORE:g}.",
    ]
    return "\n".join(lines)
