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
the burst py-libp2p delivers when a peer is admitted (up to 100 queued messages plus
its message cache) fits in the burst allowance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


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
# 12, so 20/s sustained, and on admission py-libp2p hands over up to 100 queued
# messages plus its 3-second cache at once. Answers to our own requests, even late
# ones, are never limited (our window bounds them); only answers to requests we never
# made are.
RATE_LIMITS: Final[dict[str, RateLimit]] = {
    Traffic.ANNOUNCE: RateLimit(30.0, 300),
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


@dataclass(frozen=True, slots=True)
class Policy:
    """How a hub treats its peers beyond the offences' weights: rate limits, gossip,
    relaying, holding, repairing, room for peers, redialling."""

    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: dict(RATE_LIMITS))

    # Our own announcements: at most one per interval, what gathers meanwhile goes out
    # together (GossipSub drops silently over its spam limit).
    publish_interval: float = 0.125
    # What we relay for others, all forwarders together: below every neighbour's
    # announce limit together with our own announcements.
    relay_rate: float = 12.0
    relay_burst: float = 48.0
    # A record fetched here is announced anew once its whole DAG is stored, so hubs
    # two hops from the publisher fetch from us; a burst within this delay is one
    # announcement.
    reannounce_delay: float = 0.01
    # Records whose files are still incomplete: their missing blocks are asked of every
    # ready hub this often.
    repair_interval: float = 10.0
    repair_records: int = 1000
    # Announcements signed by a key we do not know as a member (its certificate may
    # not have reached us) are held, not charged, and looked at again when membership
    # changes: at most this many, this many per signer, for this long.
    held_max: int = 512
    held_per_signer: int = 64
    held_seconds: float = 120.0
    # Blocks one peer's announcements may put on our want list before we stop adding
    # what it names (a hostile member announcing what does not exist).
    wants_per_peer: int = 4096
    # Requests that timed out, remembered per peer so that their late answers are
    # taken without counting as stale.
    late_requests: int = 256
    # Timeouts charged to a peer that has sent nothing since: a paused or starved hub
    # (SIGSTOP, a loaded CPU) misses every request in flight at once, and that is one
    # lapse, not dozens.
    timeouts_per_silence: int = 1
    # Inbound connections beyond this many are refused (politely, with the reason).
    max_peers: int = 64
    # Reconnecting to hubs we dial: the delay doubles from min to max (with jitter).
    redial_min: float = 1.0
    redial_max: float = 60.0


DEFAULT_POLICY: Final = Policy()
