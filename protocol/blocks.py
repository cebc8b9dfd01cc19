"""Block exchange: want lists, many requests in flight, several peers at once.

:class:`BlockExchange` keeps the want list (CID -> who is said to have it) and, for
every ready peer, the requests in flight. A request is a :class:`Want` of up to
``batch`` CIDs; the peer answers with blocks, haves and dont-haves and then an
:class:`End`; only the end closes the request, so a cut stream never looks like a
finished one. Every block is hashed against its CID (and records have their signature
checked) before it goes out in a :class:`StoreBlocks` command. A request not ended
in time is dropped and its CIDs are asked of another peer; a block that arrives late
is still welcome. The want list is exported to bytes so the node can persist it and
resume a large transfer after a restart.

The exchange reports offences into :attr:`offences`; the session engine charges them.
What it charges is what an honest hub never does: a block that does not match its CID
or carries a bad signature, a block nobody asked for, and a broken promise: a peer
said it held a block (a ``have``, a reconcile, or its own announcement) and then said
it did not, or, for blocks it announced itself, let the request time out while it went
on gossiping (alive, not slow: a paused or overloaded hub sends nothing at all). A
request that merely times out costs the small ``timeout`` (once per silence: a paused
hub misses all its requests at once), and its late answer is still taken (requests
that timed out are remembered per peer).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from craftnet.archive import codec
from craftnet.archive.cid import CID_BYTES_LEN, DAG_CBOR, Cid
from craftnet.archive.errors import CidError, CodecError, RecordError
from craftnet.archive.records import Record
from craftnet.identity.errors import IdentityError
from craftnet.identity.verify import BatchVerifier, KeyVerifier, Verifier
from craftnet.protocol.errors import LocalProtocolError, MalformedMessage
from craftnet.protocol.events import (
    CancelTimer,
    Command,
    PeerId,
    SetTimer,
    StoreBlocks,
    StoredBlock,
    TimerId,
    TimerKind,
)
from craftnet.protocol.framing import FrameCache, ParsedBlock, current_frame_cache
from craftnet.protocol.messages import (
    MAX_BLOCKS_PER_WANT,
    MAX_CIDS_PER_MESSAGE,
    Block,
    DontHave,
    End,
    Have,
    Message,
    Want,
)
from craftnet.protocol.policy import DEFAULT_POLICY, OffenceKind, Policy

# Version 2 packs the CIDs' 36-byte binary forms into one byte string: the want list is
# saved with every batch of blocks written, and version 1's list of DAG-CBOR links cost
# 1.3 ms per thousand wants to encode, which made a long catch-up quadratic (a sync of
# 5,000 records spent a quarter of its time re-encoding the shrinking want list).
WANTLIST_VERSION: Final = 2


# What _check made of a block: its record (checked, signature included) or None, and
# the links to follow.
_Checked = tuple[Record | None, list[Cid]]


class BlockSource(Protocol):
    """Read access to the local blocks (the store, or a dict in simulations)."""

    def has_block(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        ...

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None."""
        ...


class ManyBlockSource(Protocol):
    """A :class:`BlockSource` that also reads many blocks at once (the store: one read
    transaction for a whole want, not one per block).

    It repeats BlockSource's methods instead of deriving from it, and is recognised by
    its ``get_blocks`` rather than by a runtime-checkable isinstance: mypyc (simnet's
    compiled mode) supports neither a protocol deriving from a protocol nor
    ``runtime_checkable``.
    """

    def has_block(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        ...

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None."""
        ...

    def has_blocks(self, cids: Sequence[Cid]) -> list[bool]:
        """For each CID, whether the block is stored."""
        ...

    def get_blocks(self, cids: Sequence[Cid]) -> list[bytes | None]:
        """For each CID, the block's bytes or None."""
        ...


class DictBlocks:
    """A :class:`BlockSource` over a dict; the executor of tests and simnet writes it."""

    def __init__(self) -> None:
        self.blocks: dict[Cid, bytes] = {}

    def has_block(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        return cid in self.blocks

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None."""
        return self.blocks.get(cid)


@dataclass(frozen=True, slots=True)
class BlockConfig:
    """Limits of the block exchange."""

    window: int = 128
    batch: int = 32
    timeout: float = 15.0
    per_block_timeout: float = 0.5
    follow_links: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= MAX_BLOCKS_PER_WANT or self.window < self.batch:
            raise LocalProtocolError(
                f"batch must be 1..{MAX_BLOCKS_PER_WANT} and the window at least one batch"
            )


@dataclass(slots=True)
class _Wanted:
    providers: set[PeerId] = field(default_factory=set)
    promised: set[PeerId] = field(default_factory=set)
    asked: set[PeerId] = field(default_factory=set)
    inflight: PeerId | None = None
    # Peers that announced the block themselves (signed it as theirs): a promise, and
    # what counts against their share of the want list.
    claimed: set[PeerId] = field(default_factory=set)
    announced: bool = False
    relayed: bool = False  # an announcement naming it was relayed by us


@dataclass(slots=True)
class _Request:
    cids: set[Cid]
    have_only: bool
    sent: float = 0.0


@dataclass(slots=True)
class _PeerBlocks:
    requests: dict[int, _Request] = field(default_factory=dict)
    inflight: int = 0
    queue: deque[Cid] = field(default_factory=deque)
    queued: set[Cid] = field(default_factory=set)
    late: deque[int] = field(default_factory=deque)  # requests that timed out, newest last
    stream_at: float = float("-inf")  # when it last sent us anything on the stream
    gossip_at: float = float("-inf")  # ... and on the gossip topic
    silent_timeouts: int = 0  # timeouts charged since it last sent anything
    charged_at: float = float("-inf")  # when the last of those was charged


def _parse_block(cid: Cid, data: bytes) -> ParsedBlock:
    """Decode a DAG-CBOR block whose bytes match ``cid``: canonical?, its record, its links.

    Thousands of simulated hubs receive the same block; with a frame cache in use the
    parse (a pure function of the bytes, which the verified CID fixes) is done once.
    """
    return _parse_block_in(cid, data, current_frame_cache())


def _parse_block_in(cid: Cid, data: bytes, cache: FrameCache | None) -> ParsedBlock:
    """:func:`_parse_block` with the frame cache (or None) the caller looked up already."""
    if cache is not None:
        parsed = cache.get_parsed(cid)
        if parsed is not None:
            return parsed
    try:
        value = codec.decode(data)
    except CodecError:
        parsed = (False, None, ())
    else:
        links = tuple(codec.iter_links(value))
        try:
            # The value decoded here, taken over, and the CID the caller checked:
            # Record.from_block would hash the bytes twice more and decode them again
            # (a record over MAX_RECORD_SIZE is refused by from_decoded too).
            record: Record | None = Record.from_decoded(value, data, cid=cid)
        except RecordError:
            record = None
        parsed = (True, record, links)
    if cache is not None:
        cache.put_parsed(cid, len(data), parsed)
    return parsed


def block_links(cid: Cid, data: bytes) -> tuple[Cid, ...]:
    """The links in a block whose bytes match ``cid`` (a raw block has none)."""
    if cid.codec != DAG_CBOR:
        return ()
    return _parse_block(cid, data)[2]


def missing_blocks(
    blocks: BlockSource, root: Cid, *, first_only: bool = False, limit: int = 100_000
) -> list[Cid]:
    """The blocks reachable from ``root`` that ``blocks`` lacks (walking at most ``limit``
    blocks; with ``first_only``, stop at the first one found)."""
    stack = [root]
    seen: set[Cid] = set()
    missing: list[Cid] = []
    while stack and len(seen) <= limit:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        data = blocks.get_block(current)
        if data is None:
            missing.append(current)
            if first_only:
                break
            continue
        stack.extend(block_links(current, data))
    return missing


class BlockExchange:
    """The want list and the block requests in flight to every ready peer."""

    def __init__(
        self,
        blocks: BlockSource,
        rng: random.Random,
        config: BlockConfig | None = None,
        *,
        verifier: Verifier | None = None,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        self.blocks = blocks
        self._many = cast(ManyBlockSource, blocks) if hasattr(blocks, "get_blocks") else None
        self.rng = rng
        self.config = config or BlockConfig()
        self.verifier: Verifier = verifier or KeyVerifier()
        self._batch_verifier = self.verifier if isinstance(self.verifier, BatchVerifier) else None
        # Blocks parsed ahead by prepare(), for _check (only within one prepare/settle).
        # What prepare() made of a block: the bytes it hashed against the CID, the parse.
        self._prepared: dict[Cid, tuple[bytes, ParsedBlock]] = {}
        self.policy = policy
        self.wants: dict[Cid, _Wanted] = {}
        # Counts every block ever put on the want list: a saved list is a superset of
        # the current one until this moves (taking blocks off needs no saving at once).
        self.wants_added = 0
        self.peers: dict[PeerId, _PeerBlocks] = {}
        self.offences: list[tuple[PeerId, str]] = []
        self.received = 0
        # Blocks handed to the store that came with or for an announcement we relayed
        # (kept only when someone asks, by setting track_gossiped).
        self.gossiped: set[Cid] = set()
        self.track_gossiped = False
        self._next_req = 1
        self._stored: set[Cid] = set()
        self._discover: deque[Cid] = deque()
        self._busy: set[PeerId] = set()  # peers whose request queue may hold CIDs
        self._claims: dict[PeerId, int] = {}  # wants each peer's own announcements made

    # ------------------------------------------------------------- want list

    def have(self, cid: Cid) -> bool:
        """Tell whether the block is stored (or handed to the store already)."""
        return cid in self._stored or self.blocks.has_block(cid)

    def want(
        self,
        cids: tuple[Cid, ...] | list[Cid],
        provider: PeerId | None = None,
        *,
        promised: bool = False,
        announced: bool = False,
        claimed: bool = False,
        relayed: bool = False,
    ) -> int:
        """Add blocks to the want list; ``provider`` is a peer said to hold them.

        ``announced``: an announcement named them (``relayed``: one we relayed, so we
        need not announce them again once fetched); ``claimed``: the provider announced
        them itself, which is a promise, and counts against its share of the want list
        (:attr:`Policy.wants_per_peer`): what is beyond it is not added. Returns how
        many of ``cids`` were refused for that.
        """
        refused = 0
        stored = self._stored
        many = self._many
        held: set[Cid] | None = None
        if many is not None and len(cids) > 1:
            # One read of the store for the lot (a reconcile hands over thousands).
            fresh = [cid for cid in cids if cid not in stored]
            held = {cid for cid, has in zip(fresh, many.has_blocks(fresh), strict=True) if has}
        for cid in cids:
            if held is not None:
                if cid in stored or cid in held:
                    continue
            elif self.have(cid):
                continue
            entry = self.wants.get(cid)
            if (
                claimed
                and provider is not None
                and (entry is None or provider not in entry.claimed)
                and self._claims.get(provider, 0) >= self.policy.wants_per_peer
            ):
                refused += 1
                continue
            if entry is None:
                entry = self.wants[cid] = _Wanted()
                self.wants_added += 1
                if provider is None:
                    self._discover.append(cid)
            if announced:
                entry.announced = True
            if relayed:
                entry.relayed = True
            if provider is not None:
                self._add_provider(cid, entry, provider)
                if promised or claimed:
                    entry.promised.add(provider)
                if claimed and provider not in entry.claimed:
                    entry.claimed.add(provider)
                    self._claims[provider] = self._claims.get(provider, 0) + 1
        return refused

    def _forget(self, cid: Cid) -> _Wanted | None:
        """Take ``cid`` off the want list (delivered, stored, or given up on)."""
        entry = self.wants.pop(cid, None)
        if entry is not None:
            for peer in entry.claimed:
                self._unclaim(peer)
        return entry

    def _unclaim(self, peer: PeerId) -> None:
        left = self._claims.get(peer, 0) - 1
        if left > 0:
            self._claims[peer] = left
        else:
            self._claims.pop(peer, None)

    def _withdraw(self, cid: Cid, entry: _Wanted, peer: PeerId) -> None:
        """``peer`` no longer counts as holding ``cid``; a block only ever claimed by
        peers that turned out not to hold it is given up on (it may never have existed)."""
        entry.providers.discard(peer)
        entry.promised.discard(peer)
        if peer in entry.claimed:
            entry.claimed.discard(peer)
            self._unclaim(peer)
            if not entry.providers and not entry.claimed and entry.announced:
                self._forget(cid)

    def claims(self, peer: PeerId) -> int:
        """How many wanted blocks ``peer``'s own announcements account for."""
        return self._claims.get(peer, 0)

    def heard(self, peer: PeerId, now: float) -> None:
        """``peer`` sent us something on the sync stream now."""
        state = self.peers.get(peer)
        if state is not None:
            state.stream_at = now

    def heard_gossip(self, peer: PeerId, now: float) -> None:
        """``peer`` sent us gossip now: it is alive."""
        state = self.peers.get(peer)
        if state is not None:
            state.gossip_at = now

    def _add_provider(self, cid: Cid, entry: _Wanted, peer: PeerId) -> None:
        entry.providers.add(peer)
        state = self.peers.get(peer)
        if state is not None and cid not in state.queued:
            state.queue.append(cid)
            state.queued.add(cid)
            self._busy.add(peer)

    def export_wants(self) -> bytes:
        """The want list as DAG-CBOR, to persist and :meth:`import_wants` after a restart."""
        packed = b"".join(sorted(cid.bytes for cid in self.wants))
        return codec.encode({"v": WANTLIST_VERSION, "cids": packed})

    def import_wants(self, data: bytes) -> int:
        """Restore a want list written by :meth:`export_wants` (this version or version
        1, a list of links); returns how many were new."""
        try:
            value = codec.decode(data)
        except CodecError as exc:
            raise MalformedMessage(f"saved want list is corrupt: {exc}") from exc
        if type(value) is not dict:
            raise MalformedMessage("saved want list is not a want list")
        cids = value.get("cids")
        if value.get("v") == 1 and type(cids) is list and all(type(c) is Cid for c in cids):
            wanted: list[Cid] = cids
        elif value.get("v") == WANTLIST_VERSION and type(cids) is bytes:
            if len(cids) % CID_BYTES_LEN:
                raise MalformedMessage("saved want list is cut short inside a CID")
            try:
                wanted = [
                    Cid.from_bytes(cids[at : at + CID_BYTES_LEN])
                    for at in range(0, len(cids), CID_BYTES_LEN)
                ]
            except CidError as exc:
                raise MalformedMessage(f"saved want list holds a bad CID: {exc}") from exc
        else:
            raise MalformedMessage(
                f"saved want list is not a version-1 or version-{WANTLIST_VERSION} want list"
            )
        before = len(self.wants)
        self.want(wanted)
        return len(self.wants) - before

    # ------------------------------------------------------------------ peers

    def peer_ready(self, peer: PeerId) -> None:
        """Start using ``peer``; every want is worth asking it about."""
        state = self.peers.setdefault(peer, _PeerBlocks())
        for cid, entry in self.wants.items():
            if peer in entry.providers and cid not in state.queued:
                state.queue.append(cid)
                state.queued.add(cid)
                self._busy.add(peer)
            elif not entry.providers:
                self._discover.append(cid)

    def peer_gone(self, peer: PeerId) -> list[Command]:
        """Forget ``peer``; what it had in flight goes back to the want list."""
        state = self.peers.pop(peer, None)
        commands: list[Command] = []
        if state is None:
            return commands
        for req_id, req in state.requests.items():
            commands.append(CancelTimer((TimerKind.WANT, peer, str(req_id))))
            self._release(peer, req)
        for cid, entry in self.wants.items():
            entry.providers.discard(peer)
            entry.promised.discard(peer)
            # If it comes back it is worth asking again.
            entry.asked.discard(peer)
            if peer in entry.claimed:
                entry.claimed.discard(peer)
                self._unclaim(peer)
            if not entry.providers and entry.inflight is None:
                self._discover.append(cid)
        return commands

    def _release(self, peer: PeerId, req: _Request) -> None:
        for cid in req.cids:
            entry = self.wants.get(cid)
            if entry is not None and entry.inflight == peer:
                entry.inflight = None
                # Sorted: set order varies between processes, simulations must not.
                others = sorted(p for p in entry.providers if p != peer and p in self.peers)
                for other in others:
                    self._requeue(other, cid)
                if not others and peer in entry.providers:
                    self._requeue(peer, cid)

    def _requeue(self, peer: PeerId, cid: Cid) -> None:
        state = self.peers.get(peer)
        if state is not None and cid not in state.queued:
            state.queue.append(cid)
            state.queued.add(cid)
            self._busy.add(peer)

    # ---------------------------------------------------------------- sending

    def has_work(self) -> bool:
        """Tell whether :meth:`pump` could send anything: a peer's queue or CIDs to find."""
        if self._discover:
            return True
        busy = self._busy
        if busy:
            # A superset of the peers with a queue: pruned here, so mostly empty.
            for peer in list(busy):
                state = self.peers.get(peer)
                if state is None or not state.queue:
                    busy.discard(peer)
        return bool(busy)

    def pump(self, now: float, usable: set[PeerId]) -> list[tuple[PeerId, Want] | Command]:
        """Send requests while peers in ``usable`` have room in their window."""
        out: list[tuple[PeerId, Want] | Command] = []
        peers = [p for p in self.peers if p in usable]
        # Only peers with queued CIDs take part in the shuffle that spreads the load.
        busy = [p for p in peers if self.peers[p].queue]
        if len(busy) > 1:
            self.rng.shuffle(busy)
        for peer in busy:
            state = self.peers[peer]
            while state.inflight < self.config.window and state.queue:
                room = min(self.config.batch, self.config.window - state.inflight)
                batch: list[Cid] = []
                while state.queue and len(batch) < room:
                    cid = state.queue.popleft()
                    state.queued.discard(cid)
                    entry = self.wants.get(cid)
                    if entry is not None and self.have(cid):
                        # Stored meanwhile by another path (published here, a retry).
                        self._forget(cid)
                        continue
                    if entry is None or entry.inflight is not None:
                        continue
                    entry.inflight = peer
                    batch.append(cid)
                if not batch:
                    break
                out.extend(self._request(peer, state, batch, False, now))
        if self._discover and peers:
            pending: list[Cid] = []
            seen: set[Cid] = set()
            while self._discover and len(pending) < MAX_CIDS_PER_MESSAGE:
                cid = self._discover.popleft()
                if cid in self.wants and cid not in seen:
                    seen.add(cid)
                    pending.append(cid)
            for peer in peers:
                ask = [c for c in pending if peer not in self.wants[c].asked]
                for cid in ask:
                    self.wants[cid].asked.add(peer)
                if ask:
                    out.extend(self._request(peer, self.peers[peer], ask, True, now))
        return out

    def _request(
        self, peer: PeerId, state: _PeerBlocks, cids: list[Cid], have_only: bool, now: float
    ) -> list[tuple[PeerId, Want] | Command]:
        req_id = self._next_req
        self._next_req += 1
        state.requests[req_id] = _Request(set(cids), have_only, now)
        if not have_only:
            state.inflight += len(cids)
        deadline = now + self.config.timeout + self.config.per_block_timeout * len(cids)
        return [
            (peer, Want(req_id, tuple(cids), have_only)),
            SetTimer((TimerKind.WANT, peer, str(req_id)), deadline),
        ]

    def timer(self, timer: TimerId, now: float) -> list[Command]:
        """A request timed out: drop it, and ask others for what it still lacked."""
        _, peer_s, req_s = timer
        peer = PeerId(peer_s)
        state = self.peers.get(peer)
        req = state.requests.pop(int(req_s), None) if state is not None else None
        if state is None or req is None:
            return []
        state.late.append(int(req_s))
        if len(state.late) > self.policy.late_requests:
            state.late.popleft()
        if not req.have_only:
            state.inflight -= len(req.cids)
            if state.stream_at > state.charged_at:
                state.silent_timeouts = 0  # it said something since the last charge
            if state.silent_timeouts < self.policy.timeouts_per_silence:
                state.silent_timeouts += 1
                state.charged_at = now
                self.offences.append((peer, OffenceKind.TIMEOUT))
            if state.gossip_at > req.sent and state.stream_at <= req.sent:
                # Alive (it gossips) yet silent on the stream: it does not serve what it
                # announced. A paused or overloaded hub sends nothing at all.
                for cid in sorted(req.cids):
                    entry = self.wants.get(cid)
                    if entry is not None and peer in entry.claimed:
                        self.offences.append((peer, OffenceKind.BROKEN_PROMISE))
                        self._withdraw(cid, entry, peer)
        self._release(peer, req)
        return []

    # -------------------------------------------------------------- receiving

    def is_open(self, peer: PeerId, req: int) -> bool:
        """Tell whether request ``req`` to ``peer`` still awaits its end marker."""
        state = self.peers.get(peer)
        return state is not None and req in state.requests

    def is_late(self, peer: PeerId, req: int) -> bool:
        """Tell whether ``req`` is a request to ``peer`` that timed out (its answer is late,
        not stale)."""
        state = self.peers.get(peer)
        return state is not None and req in state.late

    def serve(self, want: Want) -> list[Message]:
        """Answer a peer's want: blocks (or haves), dont-haves, then the end marker."""
        out: list[Message] = []
        have: list[Cid] = []
        missing: list[Cid] = []
        many = self._many
        found = (
            many.get_blocks(want.cids)
            if many is not None
            else [self.blocks.get_block(cid) for cid in want.cids]
        )
        for cid, data in zip(want.cids, found, strict=True):
            if data is None:
                missing.append(cid)
            elif want.have_only:
                have.append(cid)
            else:
                out.append(Block(want.req, cid, data))
        if have:
            out.append(Have(want.req, tuple(have)))
        if missing:
            out.append(DontHave(want.req, tuple(missing)))
        out.append(End(want.req))
        return out

    def receive(
        self, peer: PeerId, msg: Have | DontHave | Block | End, now: float
    ) -> list[Command]:
        """Take one answer from ``peer``."""
        state = self.peers.get(peer)
        if state is None:
            return []
        req = state.requests.get(msg.req)
        if isinstance(msg, Block):
            return self._block(peer, state, req, msg)
        if req is None:
            # Answers to a request that already timed out: harmless, unless it is a block.
            return []
        if isinstance(msg, Have):
            for cid in msg.cids:
                entry = self.wants.get(cid)
                if cid in req.cids and entry is not None:
                    self._add_provider(cid, entry, peer)
                    entry.promised.add(peer)
            return []
        if isinstance(msg, DontHave):
            for cid in msg.cids:
                entry = self.wants.get(cid)
                if cid not in req.cids or entry is None:
                    continue
                if peer in entry.promised:
                    self.offences.append((peer, OffenceKind.BROKEN_PROMISE))
                self._withdraw(cid, entry, peer)
            return []
        # End: whatever the peer did not deliver goes back to the want list.
        del state.requests[msg.req]
        if not req.have_only:
            state.inflight -= len(req.cids)
            for cid in sorted(req.cids):
                entry = self.wants.get(cid)
                if entry is not None and entry.inflight == peer:
                    if peer in entry.promised:
                        self.offences.append((peer, OffenceKind.BROKEN_PROMISE))
                    self._withdraw(cid, entry, peer)
        self._release(peer, req)
        for cid in req.cids:
            entry = self.wants.get(cid)
            if entry is not None and not entry.providers:
                self._discover.append(cid)
        return [CancelTimer((TimerKind.WANT, peer, str(msg.req)))]

    def _block(
        self, peer: PeerId, state: _PeerBlocks, req: _Request | None, msg: Block
    ) -> list[Command]:
        entry = self.wants.get(msg.cid)
        if req is not None and msg.cid not in req.cids:
            self.offences.append((peer, OffenceKind.UNSOLICITED_BLOCK))
            return []
        if entry is None:
            # Already stored (a duplicate from a retry), given up on, or never wanted.
            late = req is None and msg.req in state.late
            if req is None and not late and not self.have(msg.cid):
                self.offences.append((peer, OffenceKind.UNSOLICITED_BLOCK))
            return []
        prepared = self._prepared.get(msg.cid)
        # prepare() hashed these very bytes against the CID already (a record: hashed
        # once, not twice); other bytes under the same CID are hashed here.
        if (prepared is None or prepared[0] is not msg.data) and not msg.cid.verify(msg.data):
            self.offences.append((peer, OffenceKind.BAD_BLOCK))
            entry.providers.discard(peer)
            entry.promised.discard(peer)
            return []
        checked = self._check(peer, msg.cid, msg.data, current_frame_cache())
        if checked is None:
            entry.providers.discard(peer)
            return []
        if req is not None:
            req.cids.discard(msg.cid)
            if not req.have_only:
                state.inflight -= 1
        self._forget(msg.cid)
        if entry.relayed and self.track_gossiped:
            self.gossiped.add(msg.cid)
        return [self._accept(peer, msg.cid, msg.data, checked)]

    def prepare(self, answers: list[Block]) -> None:
        """Parse the wanted records among the ``answers`` one read brought and check their
        signatures together (on every core, once a catch-up makes that pay), before the
        answers are taken one by one; :meth:`settle_prepared` ends it."""
        verifier = self._batch_verifier
        if verifier is None:
            return
        signed: list[tuple[str, bytes, bytes]] = []
        for msg in answers:
            cid = msg.cid
            # Only what _block would check: wanted, DAG-CBOR, bytes that match the CID.
            if cid.codec != DAG_CBOR or cid not in self.wants or cid in self._prepared:
                continue
            if not cid.verify(msg.data):
                continue
            parsed = _parse_block(cid, msg.data)
            self._prepared[cid] = (msg.data, parsed)
            record = parsed[1]
            if parsed[0] and record is not None:
                signed.append((record.author, record.sig, record.signed_bytes()))
        if signed:
            verifier.prime(signed)

    def settle_prepared(self) -> None:
        """Forget what :meth:`prepare` parsed and checked that no answer used."""
        self._prepared.clear()
        if self._batch_verifier is not None:
            self._batch_verifier.forget_primed()

    def _check(
        self, peer: PeerId, cid: Cid, data: bytes, cache: FrameCache | None
    ) -> _Checked | None:
        """``(the record or None, links to follow)`` of a block whose bytes match ``cid``
        (``cache``: the frame cache in use, or None).

        None when the block is not canonical DAG-CBOR or holds a badly signed record;
        the offence is noted against ``peer``.
        """
        checked: Record | None = None
        links: list[Cid] = []
        if cid.codec == DAG_CBOR:
            # data matches cid here, as it did for prepare(): the same bytes.
            prepared = self._prepared.pop(cid, None) if self._prepared else None
            canonical, record, found = (
                _parse_block_in(cid, data, cache) if prepared is None else prepared[1]
            )
            if not canonical:
                self.offences.append((peer, OffenceKind.BAD_BLOCK))
                return None
            if record is not None:
                signed = record.signed_bytes() if cache is None else cache.signed_of(record)
                try:
                    self.verifier.verify(record.author, record.sig, signed)
                except IdentityError:
                    self.offences.append((peer, OffenceKind.INVALID_SIGNATURE))
                    return None
                checked = record
            if self.config.follow_links:
                links = list(found)
        return checked, links

    def _accept(self, peer: PeerId, cid: Cid, data: bytes, checked: _Checked) -> StoreBlocks:
        record, links = checked
        self._stored.add(cid)
        self.received += 1
        if links:
            self.want(links, peer)
        ts = None if record is None else record.ts
        return StoreBlocks((StoredBlock(cid, data, ts, record),), peer)

    def pushed(
        self,
        peer: PeerId,
        announced: tuple[Cid, ...],
        blocks: tuple[bytes, ...],
        *,
        relayed: bool = False,
    ) -> list[Command]:
        """Take the blocks an announcement from ``peer`` carried inline.

        Each must hash to one of the ``announced`` CIDs (the signed part of the
        announcement); one that does not is a bad block from whoever forwarded it.
        Blocks already held are skipped; the rest are checked as requested ones are.
        ``relayed``: we relay the announcement (so these need no announcing again).
        """
        commands: list[Command] = []
        cache = current_frame_cache()
        stored = self._stored
        source = self.blocks
        for data in blocks:
            if cache is None:
                cid = Cid.of(data, DAG_CBOR)
            else:
                cid = cache.cid_of(data, DAG_CBOR, announced)
            if cid not in announced:
                self.offences.append((peer, OffenceKind.BAD_BLOCK))
                continue
            # self.have(cid); the set is mostly empty here, and asking it still hashes.
            if (stored and cid in stored) or source.has_block(cid):
                continue
            checked = self._check(peer, cid, data, cache)
            if checked is None:
                continue
            # A request for it may be in flight; its answer is then a harmless duplicate.
            # (Without the call when nothing is wanted at all: mostly so.)
            if self.wants:
                self._forget(cid)
            if relayed and self.track_gossiped:
                self.gossiped.add(cid)
            commands.append(self._accept(peer, cid, data, checked))
        return commands

    def stored(self, cids: tuple[Cid, ...] | list[Cid]) -> None:
        """The executor wrote these blocks; the engine need not remember them any more."""
        self._stored.difference_update(cids)
