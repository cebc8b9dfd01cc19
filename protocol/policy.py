"""Peer policy: every number that decides how a hub treats its peers, in one place.

The sync engine (:mod:`craftnet.protocol.engine`) reads these and nothing else; the
node's driver and simnet run that engine, so a real hub and a simulated one judge
peers identically. What each number protects against, and why an honest hub never
reaches it, is said next to it; docs/protocol.md prints the tables from here.

The rule behind them: nothing an honest hub can cause is punished. Offences are
things an honest implementation never does (a block that does not hash to its CID, a
bad signature, a promise it breaks while it is clearly alive). Rate limits are flood
detectors sized from what an honest hub can send, with headroom: an honest hub's
gossip to one neighbour is at most what it publishes (paced by
:attr:`Policy.publish_interval`) plus what it relays (:attr:`Policy.relay_rate`), and
the clumps real traffic comes in (py-libp2p's queue and cache handed over when a peer
is admitted, a hub whose writer stalled: 427 in one second from one hub measured in the
lab) fit in the allowance of a minute's traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Final


class OffenceKind(StrEnum):
    """The kinds of misbehaviour a peer is charged for."""

    MALFORMED_FRAME = "malformed_frame"
    OVERSIZED_FRAME = "oversized_frame"
    INVALID_SIGNATURE = "invalid_signature"
    BAD_BLOCK = "bad_block"
    PROTOCOL_VIOLATION = "protocol_violation"
    FLOOD = "flood"
    BROKEN_PROMISE = "broken_promise"
    UNSOLICITED_BLOCK = "unsolicited_block"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Offence:
    """One kind of misbehaviour and what it costs."""

    weight: float
    description: str


OFFENCES: Final[dict[str, Offence]] = {
    OffenceKind.MALFORMED_FRAME: Offence(
        20.0,
        "a frame that is not a valid message (garbage, bad CBOR, wrong field types, unknown type)",
    ),
    OffenceKind.OVERSIZED_FRAME: Offence(30.0, "a frame declaring a length over the limit"),
    OffenceKind.INVALID_SIGNATURE: Offence(
        25.0, "an announcement, hello, proof or record whose signature does not verify"
    ),
    OffenceKind.BAD_BLOCK: Offence(30.0, "a block whose bytes do not hash to its CID"),
    OffenceKind.PROTOCOL_VIOLATION: Offence(
        10.0,
        "a well-formed message at the wrong time (unknown request, "
        "reconcile out of order, second hello)",
    ),
    OffenceKind.FLOOD: Offence(2.0, "a message over the per-peer rate limit of its kind (dropped)"),
    OffenceKind.BROKEN_PROMISE: Offence(
        4.0,
        "said it had a block (have, reconcile, its own announcement) then said it did not, "
        "or let the request time out while it kept gossiping",
    ),
    OffenceKind.UNSOLICITED_BLOCK: Offence(2.0, "a block nobody asked for"),
    OffenceKind.TIMEOUT: Offence(1.0, "a request not answered in time (earned back by deliveries)"),
}

DELIVERY_REWARD: Final = 0.5
MAX_SCORE: Final = 10.0


class Traffic(StrEnum):
    """The kinds of message a peer's rate is limited for."""

    ANNOUNCE = "announce"
    WANT = "want"
    STALE_ANSWER = "stale_answer"
    RECON = "recon"
    GRAYLISTED = "graylisted"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``rate`` messages a second on average, ``burst`` at once: a token bucket,
    which is a limit of ``burst + rate * t`` messages over any window of ``t`` seconds."""

    rate: float
    burst: float


# Flood detectors, not throttles. Honest figures (docs/protocol.md, "Policy"): a hub
# sends one neighbour at most 8 announcements a second of its own and relays at most
# 12, so 20/s sustained. Answers to our own requests, even late ones, are never
# limited (our window bounds them); only answers to requests we never made are.
RATE_LIMITS: Final[dict[str, RateLimit]] = {
    # 30 a second over a minute: honest traffic comes in clumps (a hub whose writer
    # stalled, py-libp2p's queue and cache handed over on admission: 427 in one second,
    # 1,055 in a minute from one hub measured in the lab under load).
    Traffic.ANNOUNCE: RateLimit(30.0, 1800),
    Traffic.WANT: RateLimit(2000.0, 4000),
    Traffic.STALE_ANSWER: RateLimit(50.0, 200),
    Traffic.RECON: RateLimit(200.0, 1000),
    # Everything a graylisted peer sends is dropped unread, but not for free.
    Traffic.GRAYLISTED: RateLimit(10.0, 20),
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where a score starts to matter, and how fast it is forgiven."""

    graylist: float = -20.0
    disconnect: float = -50.0
    ban_seconds: float = 3600.0
    half_life: float = 600.0
    # Graylisted this many times within ban_seconds: banned.
    repeat_ban: int = 2


def _setting(default: int | float, doc: str) -> Any:
    """A policy number and what it is for (docs/protocol.md prints the table)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class Policy:
    """How a hub treats its peers beyond the offences' weights: rate limits, gossip,
    relaying, holding, repairing, room for peers, redialling."""

    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: dict(RATE_LIMITS))
    publish_interval: float = _setting(
        0.125,
        "seconds between our own announcements; what gathers meanwhile goes out together "
        "(GossipSub drops silently over its spam limit)",
    )
    relay_rate: float = _setting(
        12.0,
        "announcements a second we relay for others, all forwarders together: with our own, "
        "below every neighbour's announce limit",
    )
    relay_burst: float = _setting(48.0, "... and at most this many at once")
    reannounce_delay: float = _setting(
        0.01,
        "a record fetched here is announced anew once its whole DAG is stored (hubs two hops "
        "from the publisher fetch from us); a burst within this many seconds is one announcement",
    )
    repair_interval: float = _setting(
        10.0, "seconds between asks of every ready hub for the missing blocks of our records"
    )
    repair_records: int = _setting(1000, "records whose missing blocks one repair asks for")
    held_max: int = _setting(
        512,
        "announcements held because their signer is not known as a member yet (its "
        "certificate may be on its way): at most this many",
    )
    held_per_signer: int = _setting(64, "... at most this many per signing key")
    held_seconds: float = _setting(120.0, "... for at most this many seconds")
    wants_per_peer: int = _setting(
        4096,
        "blocks one peer's own announcements may put on our want list (a member announcing "
        "what does not exist)",
    )
    late_requests: int = _setting(
        256,
        "requests that timed out, remembered per peer: their late answers are taken, not "
        "counted as stale",
    )
    timeouts_per_silence: int = _setting(
        1,
        "timeouts charged to a peer that has sent nothing since: a paused or starved hub "
        "misses every request in flight at once, one lapse, not dozens",
    )
    max_peers: int = _setting(64, "inbound connections beyond this are refused, with the reason")
    redial_min: float = _setting(
        1.0, "seconds before redialling a hub we keep a connection to (doubling, jittered)"
    )
    redial_max: float = _setting(60.0, "... up to this many seconds")


def policy_table() -> str:
    """The policy numbers as a Markdown table (for the docs)."""
    policy = Policy()
    lines = ["| setting | value | what it is for |", "|---|---:|---|"]
    for item in fields(Policy):
        doc = item.metadata.get("doc")
        if doc is not None:
            lines.append(f"| `{item.name}` | {getattr(policy, item.name):g} | {doc} |")
    return "\n".join(lines)


DEFAULT_POLICY: Final = Policy()
