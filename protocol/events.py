"""Events (nouns, fed into engines) and commands (imperatives, returned by engines).

An engine is driven as ``commands = engine.handle(event, now)``. ``now`` is a float
number of seconds on a monotonic clock chosen by the driver (``time.monotonic()`` in
node/, virtual time in simnet/ and tests); engines never read a clock themselves and
only compare ``now`` values with each other, so the epoch does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, ClassVar, Final, NewType

from craftnet.archive.cid import Cid

if TYPE_CHECKING:
    from craftnet.archive.records import Record

PeerId = NewType("PeerId", str)
"""A peer's transport identity (a libp2p peer id string); distinct from :class:`Cid`."""


class _Value:
    """Base of the few events made once per delivered record: plain slotted classes.

    A frozen dataclass sets each field through ``object.__setattr__`` (about 1 us an
    object interpreted; compiled, mypyc leaves that generated ``__init__`` as Python),
    and a hub makes five of these per record it receives. Their fields are ``Final``,
    so mypy --strict refuses any write, and compiled ones refuse it at run time too.
    Equality, hashing and repr follow the fields named in ``__match_args__``, as a
    dataclass's do.
    """

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Value)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__match_args__)
        return f"{type(self).__name__}({inner})"


class TimerKind(StrEnum):
    """What a timer is for; the first element of every :data:`TimerId`."""

    HELLO = "hello"  # (HELLO, peer): the handshake must be done by then
    RECONCILE = "recon"  # (RECONCILE, peer): reconcile with the peer again
    RECONCILE_TIMEOUT = "recon-timeout"  # (RECONCILE_TIMEOUT, peer)
    WANT = "want"  # (WANT, peer, request id): the request must have ended by then
    REDIAL = "redial"  # (REDIAL, peer): dial the peer again
    ANNOUNCE = "announce"  # (ANNOUNCE,): our next announcement may go out
    REANNOUNCE = "reannounce"  # (REANNOUNCE,): announce fetched records that are whole
    REPAIR = "repair"  # (REPAIR,): ask every peer for the missing blocks of our records
    HELD = "held"  # (HELD,): let go of held announcements that are too old


TimerId = tuple[str, ...]
"""A timer's name, e.g. ``(TimerKind.WANT, "12D3Koo...", "7")``; unique per engine."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection to ``peer`` is open; ``outbound`` when we dialled it."""

    peer: PeerId
    outbound: bool = True


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """The connection to ``peer`` is gone (closed, reset or timed out)."""

    peer: PeerId


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes arrived on the sync stream of ``peer``; any slice of the stream."""

    peer: PeerId
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer closed its side of the sync stream (end of stream)."""

    peer: PeerId


class GossipReceived(_Value):
    """One gossip message (one frame) arrived from ``peer`` on the alliance topic."""

    __slots__ = ("data", "peer")
    __match_args__ = ("peer", "data")

    def __init__(self, peer: PeerId, data: bytes) -> None:
        self.peer: Final = peer
        self.data: Final = data


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set with :class:`SetTimer` is due."""

    timer: TimerId


@dataclass(frozen=True, slots=True)
class BlocksWanted:
    """The local node wants these blocks (e.g. a user opened a design's files)."""

    cids: tuple[Cid, ...]


@dataclass(frozen=True, slots=True)
class RecordsAdded:
    """Records were stored locally (published here); announce them to the alliance."""

    records: tuple[tuple[int, Cid], ...]
    heads: tuple[Cid, ...] = ()


class BlocksStored(_Value):
    """The driver committed a :class:`StoreBlocks`: the store now answers for ``cids``;
    ``records`` are the ``(ts, CID)`` of the records among them that were new."""

    __slots__ = ("cids", "records")
    __match_args__ = ("cids", "records")

    def __init__(
        self, cids: tuple[Cid, ...], records: tuple[tuple[int, Cid], ...] = ()
    ) -> None:
        self.cids: Final = cids
        self.records: Final = records


@dataclass(frozen=True, slots=True)
class StoreFailed:
    """Writing these blocks failed; they are wanted again."""

    cids: tuple[Cid, ...]


@dataclass(frozen=True, slots=True)
class PeerDiscovered:
    """A hub to stay connected to (a bootstrap address, mDNS): dial it, and redial it
    whenever it is away."""

    peer: PeerId


@dataclass(frozen=True, slots=True)
class DialFailed:
    """A :class:`Dial` did not reach ``peer``."""

    peer: PeerId
    reason: str


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """Who is a member may have changed (membership records arrived, time passed)."""


Event = (
    PeerConnected
    | PeerDisconnected
    | DataReceived
    | StreamEnded
    | GossipReceived
    | TimerFired
    | BlocksWanted
    | RecordsAdded
    | BlocksStored
    | StoreFailed
    | PeerDiscovered
    | DialFailed
    | MembershipChanged
)

# ------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` to the sync stream of ``peer``."""

    peer: PeerId
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``data`` (one frame) on the alliance gossip topic."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Deliver ``TimerFired(timer)`` at time ``at`` (same clock as ``now``); replaces any
    earlier timer of the same id."""

    timer: TimerId
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer ``timer`` if it is still pending."""

    timer: TimerId


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a connection to ``peer``."""

    peer: PeerId


class StoredBlock(_Value):
    """One verified block; ``ts`` is set when the block is a record (a reconcile item).

    ``record``: that record as the engine parsed it from ``data`` (when it did), so the
    writer need not decode the block again in its thread, where the work holds the GIL
    the engine's thread needs. It takes no part in equality.
    """

    __slots__ = ("cid", "data", "record", "ts")
    __match_args__ = ("cid", "data", "ts")

    def __init__(
        self, cid: Cid, data: bytes, ts: int | None = None, record: Record | None = None
    ) -> None:
        self.cid: Final = cid
        self.data: Final = data
        self.ts: Final = ts
        self.record: Final = record


class StoreBlocks(_Value):
    """Write these verified blocks, and add the records among them to the reconcile index."""

    __slots__ = ("blocks", "source")
    __match_args__ = ("blocks", "source")

    def __init__(self, blocks: tuple[StoredBlock, ...], source: PeerId | None = None) -> None:
        self.blocks: Final = blocks
        self.source: Final = source


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection to ``peer``."""

    peer: PeerId
    reason: str


@dataclass(frozen=True, slots=True)
class Ban:
    """Refuse connections from and to ``peer`` until time ``until``."""

    peer: PeerId
    until: float
    reason: str = ""


class Validation(Enum):
    """The engine's verdict on one gossip message (as GossipSub validators answer)."""

    ACCEPT = "accept"  # deliver and relay it
    IGNORE = "ignore"  # drop it, no fault of the forwarder's (a repeat, held, over budget)
    REJECT = "reject"  # drop it; the forwarder was charged for it


class GossipVerdict(_Value):
    """What to do with the gossip message of the :class:`GossipReceived` just handled;
    ``handle`` returns exactly one for each."""

    __slots__ = ("peer", "reason", "signer", "validation")
    __match_args__ = ("peer", "validation", "reason", "signer")

    def __init__(
        self, peer: PeerId, validation: Validation, reason: str = "", signer: str | None = None
    ) -> None:
        self.peer: Final = peer
        self.validation: Final = validation
        self.reason: Final = reason
        self.signer: Final = signer  # the announcement's did, when it is one


class Side(Enum):
    """Who ended a connection."""

    LOCAL = "local"  # we refused or dropped the peer
    REMOTE = "remote"  # the peer refused us or went away


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A report: the connection to ``peer`` ended, ended by ``side``, and why (for logs
    and the user: which side refused whom)."""

    peer: PeerId
    side: Side
    reason: str
    did: str | None = None
    # Closed because of the peer's score (graylisted or banned), not a refusal or accident.
    punished: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileFinished:
    """A reconcile with ``peer`` ended: what we lacked and what the peer lacked."""

    peer: PeerId
    we_lacked: int
    they_lacked: int
    round_trips: int
    bytes_sent: int
    bytes_received: int
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PeerSynced:
    """A report: the hub ``did`` at ``peer`` now holds at least every record we held when
    our latest reconcile with it ended (it lacked none of them, or has fetched them all
    from us). The node records that as what the hub holds, for delta bundles."""

    peer: PeerId
    did: str


Command = (
    Send
    | Publish
    | SetTimer
    | CancelTimer
    | Dial
    | StoreBlocks
    | Disconnect
    | Ban
    | GossipVerdict
    | ConnectionClosed
    | ReconcileFinished
    | PeerSynced
)
