"""The parts of the engine's gossip policy that keep state: what to relay, what to hold,
what to announce and when.

* :class:`TokenBucket`: how many announcements a second we relay for others.
* :class:`HeldAnnouncements`: announcements signed by a key we do not know as a member
  yet (its certificate may still be on its way), kept, bounded, until membership says.
* :class:`Announcer`: our own announcements, paced and coalesced: what gathers while we
  wait for our turn goes out together, in as few announcements as the item limit allows.

The engine (:mod:`craftnet.protocol.engine`) owns one of each and decides with them;
their numbers are :class:`~craftnet.protocol.policy.Policy`'s.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from craftnet.archive.cid import Cid
from craftnet.identity.keys import PrivateKey
from craftnet.protocol.events import PeerId
from craftnet.protocol.messages import MAX_ANNOUNCE_ITEMS, Announce


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = float("-inf")

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(slots=True)
class Held:
    """An announcement waiting for its signer's membership to be known."""

    message: Announce
    forwarder: PeerId
    since: float


class HeldAnnouncements:
    """At most ``limit`` held announcements, ``per_signer`` per signing key, oldest out
    first; those older than ``seconds`` are let go (reconciliation fetches their records
    anyway once the signer's membership is known)."""

    def __init__(self, limit: int, per_signer: int, seconds: float) -> None:
        self.limit = limit
        self.per_signer = per_signer
        self.seconds = seconds
        self._by_signer: dict[str, deque[Held]] = {}
        self._count = 0
        self.held = 0  # ever held
        self.released = 0  # ever taken out because the signer turned out a member
        self.dropped = 0  # ever let go (too many, too old)

    def __len__(self) -> int:
        return self._count

    def hold(self, message: Announce, forwarder: PeerId, now: float) -> None:
        """Keep ``message`` (from ``forwarder``) until :meth:`release` or it expires."""
        queue = self._by_signer.setdefault(message.did, deque())
        queue.append(Held(message, forwarder, now))
        self._count += 1
        self.held += 1
        if len(queue) > self.per_signer:
            queue.popleft()
            self._count -= 1
            self.dropped += 1
        while self._count > self.limit:
            oldest = min(self._by_signer, key=lambda did: self._by_signer[did][0].since)
            self._drop_first(oldest)

    def _drop_first(self, did: str) -> None:
        queue = self._by_signer[did]
        queue.popleft()
        self._count -= 1
        self.dropped += 1
        if not queue:
            del self._by_signer[did]

    def release(self, is_member: Callable[[str], bool]) -> list[Held]:
        """Take out every held announcement whose signer ``is_member`` now."""
        out: list[Held] = []
        for did in sorted(self._by_signer):
            if is_member(did):
                queue = self._by_signer.pop(did)
                self._count -= len(queue)
                out.extend(queue)
        self.released += len(out)
        return out

    def expire(self, now: float) -> int:
        """Let go of what was held longer than ``seconds``; returns how many."""
        gone = 0
        for did in sorted(self._by_signer):
            queue = self._by_signer[did]
            while queue and queue[0].since + self.seconds <= now:
                self._drop_first(did)
                gone += 1
                if did not in self._by_signer:
                    break
        return gone

    def next_expiry(self) -> float | None:
        """When the oldest held announcement expires (None if nothing is held)."""
        if not self._by_signer:
            return None
        return min(q[0].since for q in self._by_signer.values()) + self.seconds


@dataclass(slots=True)
class Announcer:
    """Our own announcements: at most one per ``interval``, coalesced.

    :meth:`add` queues records and heads; :meth:`due` says when the next announcement
    may go out; :meth:`take` builds it from what is queued (up to the item limit).
    """

    interval: float
    records: OrderedDict[Cid, int] = field(default_factory=OrderedDict)
    heads: OrderedDict[Cid, None] = field(default_factory=OrderedDict)
    next_at: float = float("-inf")

    def add(self, records: tuple[tuple[int, Cid], ...], heads: tuple[Cid, ...] = ()) -> None:
        """Queue records ``(ts, CID)`` and document heads for announcing."""
        for ts, cid in records:
            self.records[cid] = ts
        for head in heads:
            self.heads[head] = None

    def __bool__(self) -> bool:
        return bool(self.records or self.heads)

    def due(self, now: float) -> float:
        """When the next announcement may go out (``now`` or later)."""
        return max(now, self.next_at)

    def take(
        self,
        key: PrivateKey,
        now: float,
        inline: Callable[[list[Cid]], tuple[bytes, ...]],
    ) -> Announce:
        """The next announcement: queued records (oldest first), then heads, up to the
        limit; ``inline`` gives the blocks to push along."""
        taken: list[tuple[int, Cid]] = []
        while self.records and len(taken) < MAX_ANNOUNCE_ITEMS:
            cid, at = self.records.popitem(last=False)
            taken.append((at, cid))
        taken.sort()  # by time: the same records always make the same bytes
        records = [cid for _, cid in taken]
        ts = max((at for at, _ in taken), default=0)
        heads: list[Cid] = []
        while self.heads and len(records) + len(heads) < MAX_ANNOUNCE_ITEMS:
            heads.append(self.heads.popitem(last=False)[0])
        self.next_at = now + self.interval
        return Announce.create(key, ts, tuple(records), tuple(heads), inline(records + heads))
