"""Range-based set reconciliation over the sorted set of (timestamp, record CID).

The two sides walk the key space together, as in negentropy
(https://logperiodic.com/rbsr.html). A message is a list of consecutive ranges that
cover the whole key space; each range names only its upper bound (the lower bound is
the previous range's upper bound, the first starts at the empty key) and says one of:

- ``skip``: nothing to do here (the sides agree, or it is settled);
- ``fingerprint``: a hash of the sender's items in the range (count and sum of item
  hashes); the receiver compares with its own and, if they differ, splits its items
  in the range into ``buckets`` ranges of equal count and answers with their
  fingerprints, or, when it holds at most ``leaf_size`` items there, with an idlist;
- ``idlist``: the sender's items in the range as 4-byte *short ids*, hashes keyed
  with the session's random salt (so nobody can craft colliding ids in advance);
  the receiver answers ``result``: a bitfield over that list marking the ids it lacks,
  and puts its own items that the sender lacks, as full keys, in the message's gifts;
- ``result``: the answer to our idlist; every marked item goes into our next gifts;
- ``coded`` (only with a peer whose hello offered it): rateless IBLT symbols of the
  sender's items in the range (:mod:`craftnet.protocol.coded`), sent instead of bucket
  fingerprints when a mismatching range is of moderate size and the message suggests
  few differences per range. The receiver peels them against its own symbols; if it
  gets a consistent result it wants what it lacks, gifts what the sender lacks and
  answers ``decoded`` (the checks of the sender's keys it lacks, so the sender knows
  what it owes); otherwise it answers ``more`` (send the next symbols) or, past its
  limits, splits the range as for a mismatching fingerprint.

A message needs an answer while it holds a fingerprint, an idlist, coded symbols, a
``more`` or a result with a marked bit; the side that receives a message needing none
is done, and so is the side that sends one. At the end both sides know exactly which
items they lack and which the other lacks. Bounds are the shortest prefix that
separates two neighbouring keys, so a bound costs a few bytes. The buckets and leaf
size are each side's own choice.

A logical message may span several ``Recon`` frames; it is acted upon only when the
frame marked ``last`` arrives, so a cut-off message is never taken as complete.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Final

import blake3

from craftnet.archive.recon_index import separator
from craftnet.protocol.coded import (
    CHECK_SIZE,
    Symbols,
    adjusted_summary,
    encode_symbols,
    item_check,
    peel,
)
from craftnet.protocol.errors import (
    FrameError,
    LocalProtocolError,
    MalformedMessage,
    RemoteProtocolError,
)
from craftnet.protocol.framing import decode_varint, encode_varint
from craftnet.protocol.items import TS_BYTES, ItemSource
from craftnet.protocol.messages import (
    MAX_GIFTS,
    MAX_ITEM_KEY,
    MAX_RANGE_DATA,
    MAX_RANGES,
    RANGE_CODED,
    RANGE_DECODED,
    RANGE_FINGERPRINT,
    RANGE_IDLIST,
    RANGE_MORE,
    RANGE_RESULT,
    RANGE_SKIP,
    Recon,
    ReconRange,
)

FINGERPRINT_SIZE: Final = 12
# A coded range carries 4 bytes of the sender's fingerprint to confirm a peeled
# result: with the symbols' 4-byte checks, a wrong result passes both about 2**-64.
CODED_FINGERPRINT_SIZE: Final = 4
SHORT_ID_SIZE: Final = 4
SALT_SIZE: Final = 16
MAX_FRAMES_PER_MESSAGE: Final = 4096
MAX_PENDING_RANGES: Final = 1 << 18
MAX_SESSION_GIFTS: Final = 1 << 22
FRAME_BUDGET: Final = 1 << 20  # bytes of ranges and gifts we put in one frame
MAX_SESSION_MESSAGES: Final = 256  # an honest reconcile takes a few dozen at most
MAX_SESSION_SYMBOLS: Final = 1 << 16  # coded symbols received in one reconcile
MAX_CODED_SYMBOLS: Final = 512  # coded symbols of one range, whatever the config says


@dataclass(frozen=True, slots=True)
class ReconConfig:
    """Local tuning: how many buckets a mismatching range splits into (``deep_buckets``
    for ranges of at most ``deep_below`` items: fewer bytes, more round trips), and the
    size under which a range is sent as an idlist instead."""

    buckets: int = 16
    leaf_size: int = 32
    ranges_per_frame: int = 4096
    deep_buckets: int = 16
    deep_below: int = 0
    # Coded ranges (with a peer that announced them): a mismatching range of at most
    # ``coded_max_items`` of our items is answered with coded symbols instead of
    # bucket fingerprints, when the message suggests few differences per range; a
    # range whose symbols do not decode by ``coded_max_symbols`` is split as before.
    # "Few" is at most ``coded_max_estimate`` per mismatching range on average: symbols
    # cost a salted hash and a walk per item, more CPU than fingerprints as the
    # differences grow, for fewer bytes.
    coded: bool = True
    coded_max_items: int = 2048
    coded_max_symbols: int = 128
    coded_max_estimate: float = 2.0

    def __post_init__(self) -> None:
        if not (2 <= self.buckets <= 1024 and 2 <= self.deep_buckets <= 1024):
            raise LocalProtocolError("buckets must be 2..1024")
        if not (1 <= self.coded_max_symbols <= MAX_CODED_SYMBOLS and self.coded_max_items >= 1):
            raise LocalProtocolError(f"coded_max_symbols must be 1..{MAX_CODED_SYMBOLS}")
        if not 1 <= self.leaf_size <= MAX_RANGE_DATA // SHORT_ID_SIZE:
            raise LocalProtocolError(f"leaf_size must be 1..{MAX_RANGE_DATA // SHORT_ID_SIZE}")
        if not 1 <= self.ranges_per_frame <= MAX_RANGES:
            raise LocalProtocolError(f"ranges_per_frame must be 1..{MAX_RANGES}")


def fingerprint(salt: bytes, count: int, total: int) -> bytes:
    """The fingerprint of a range with ``count`` items whose hashes sum to ``total``."""
    data = salt + total.to_bytes(32, "little") + encode_varint(count)
    return blake3.blake3(data).digest(FINGERPRINT_SIZE)


def short_id(salt_key: bytes, key: bytes) -> bytes:
    """An item's short id in a session: its key hashed with the session's salt."""
    return blake3.blake3(key, key=salt_key).digest(SHORT_ID_SIZE)


@dataclass(slots=True)
class _Outgoing:
    ranges: list[ReconRange] = field(default_factory=list)
    gifts: list[bytes] = field(default_factory=list)
    needs_reply: bool = False

    def add(self, rng: ReconRange) -> None:
        # Neighbouring skips merge into one: a settled stretch costs one small range.
        if rng.mode == RANGE_SKIP and self.ranges and self.ranges[-1].mode == RANGE_SKIP:
            self.ranges[-1] = rng
        else:
            self.ranges.append(rng)
        if rng.mode in (RANGE_FINGERPRINT, RANGE_IDLIST, RANGE_CODED, RANGE_MORE) or (
            rng.mode == RANGE_RESULT and any(rng.data)
        ):
            self.needs_reply = True


@dataclass(slots=True)
class _CodedOut:
    """A range we sent coded symbols of: our keys there and how many symbols went."""

    keys: list[bytes]
    sent: int
    header: bytes  # short fingerprint and count, repeated with every batch
    checks: list[int] = field(default_factory=list)  # each key's check, once encoded


@dataclass(slots=True)
class _CodedIn:
    """A range the peer sent coded symbols of, while we ask for more."""

    header: bytes
    count: int
    width: int
    symbols: Symbols
    ours: Symbols  # our own symbols of the range so far, extended as theirs come


def _coded_batch(estimate: float, config: ReconConfig) -> int:
    """How many symbols to send first for a range expected to differ by ``estimate``
    items: one for a single difference (symbol 0 holds every item, so it decodes one),
    then about 1.5 more per further difference; a range that needs more asks."""
    return max(1, min(config.coded_max_symbols, round(1.5 * (estimate - 1)) + 1))


class ReconcileSession:
    """One reconcile conversation with one peer, from one side.

    Drive it with :meth:`start` (initiator only) and :meth:`receive` for every
    incoming :class:`Recon` frame; both return frames to send. When :attr:`done` is
    set, :attr:`need` holds the keys we lack and :attr:`their_need` those the peer lacks.
    """

    def __init__(
        self,
        source: ItemSource,
        *,
        sid: int,
        initiator: bool,
        rng: random.Random,
        config: ReconConfig | None = None,
        coded: bool = False,
    ) -> None:
        self.source = source
        self.sid = sid
        self.initiator = initiator
        self.config = config or ReconConfig()
        self.salt = rng.randbytes(SALT_SIZE) if initiator else b""
        self._salt_key = blake3.blake3(self.salt).digest() if initiator else b""
        self.need: set[bytes] = set()
        self.their_need: set[bytes] = set()
        self.done = False
        self.messages_sent = 0
        self.messages_received = 0
        self._seq_out = 0
        self._seq_in = 0
        self._pending: list[ReconRange] = []
        self._pending_frames = 0
        self._sent_idlists: dict[tuple[bytes, bytes | None], list[bytes]] = {}
        # Coded ranges only with a peer that announced them (see Hello.versions).
        self.coded = coded and self.config.coded
        self._sent_coded: dict[tuple[bytes, bytes | None], _CodedOut] = {}
        self._coded_in: dict[tuple[bytes, bytes | None], _CodedIn] = {}
        self._symbols_in = 0
        self._work = 0.0
        self._work_budget = -1.0

    @property
    def round_trips(self) -> int:
        """Messages exchanged so far, counted in round trips (two messages each)."""
        return (self.messages_sent + self.messages_received + 1) // 2

    def start(self) -> list[Recon]:
        """Open the conversation (initiator only): fingerprints of our whole set."""
        if not self.initiator or self._seq_out:
            raise LocalProtocolError("only a fresh initiating session can start")
        out = _Outgoing()
        self._describe(b"", None, out)
        return self._emit(out)

    def receive(self, frame: Recon) -> list[Recon]:
        """Take one incoming frame; answer once its logical message is complete."""
        if self.done:
            raise RemoteProtocolError(f"reconcile session {self.sid} is already finished")
        if frame.sid != self.sid or frame.initiator == self.initiator:
            raise RemoteProtocolError("reconcile frame for another session")
        if frame.seq != self._seq_in:
            raise RemoteProtocolError(
                f"reconcile frame {frame.seq} out of order (want {self._seq_in})"
            )
        self._seq_in += 1
        if not self.initiator and frame.seq == 0:
            if len(frame.salt) != SALT_SIZE:
                raise MalformedMessage(f"the first reconcile frame carries a {SALT_SIZE}-byte salt")
            self.salt = frame.salt
            self._salt_key = blake3.blake3(self.salt).digest()
        elif frame.salt:
            raise MalformedMessage("only the first reconcile frame carries a salt")
        # Gifts only ever become wants when the session finishes, so they are taken as
        # they come and a message cut short never leaves a half-read list behind.
        for gift in frame.gifts:
            if len(gift) <= TS_BYTES or len(gift) > MAX_ITEM_KEY:
                raise MalformedMessage("a reconcile gift is not an item key")
            self.need.add(gift)
        if len(self.need) > MAX_SESSION_GIFTS:
            raise RemoteProtocolError(f"over {MAX_SESSION_GIFTS} gifts in one reconcile")
        self._pending.extend(frame.ranges)
        self._pending_frames += 1
        if len(self._pending) > MAX_PENDING_RANGES:
            raise RemoteProtocolError("reconcile message holds too many ranges")
        if not frame.last:
            if self._pending_frames >= MAX_FRAMES_PER_MESSAGE:
                raise RemoteProtocolError("reconcile message spans too many frames")
            return []
        ranges, self._pending, self._pending_frames = self._pending, [], 0
        self.messages_received += 1
        if self.messages_received > MAX_SESSION_MESSAGES:
            raise RemoteProtocolError(f"over {MAX_SESSION_MESSAGES} messages in one reconcile")
        return self._answer(ranges)

    # ----------------------------------------------------------------- internals

    def _answer(self, ranges: list[ReconRange]) -> list[Recon]:
        if not ranges:
            raise MalformedMessage("a reconcile message covers the key space with ranges")
        out = _Outgoing()
        sent, self._sent_idlists = self._sent_idlists, {}
        sent_coded, self._sent_coded = self._sent_coded, {}
        coded_in, self._coded_in = self._coded_in, {}
        needs_reply = False
        checked: dict[int, tuple[int, int, bool]] = {}
        estimate = self._estimate(ranges, checked) if self.coded else math.inf
        lo = b""
        for i, rng in enumerate(ranges):
            upper = rng.upper
            if upper is None and i != len(ranges) - 1:
                raise MalformedMessage("only the last reconcile range may be open-ended")
            if upper is not None and upper <= lo:
                raise MalformedMessage("reconcile range bounds must increase")
            if rng.mode == RANGE_SKIP:
                out.add(ReconRange(upper, RANGE_SKIP))
            elif rng.mode == RANGE_FINGERPRINT:
                needs_reply = True
                if len(rng.data) != FINGERPRINT_SIZE:
                    raise MalformedMessage(f"a fingerprint is {FINGERPRINT_SIZE} bytes")
                if i in checked:
                    count, total, same = checked[i]
                else:
                    count, total = self.source.summary(lo, upper)
                    same = fingerprint(self.salt, count, total) == rng.data
                if same:
                    out.add(ReconRange(upper, RANGE_SKIP))
                elif not (
                    self.config.leaf_size < count <= self.config.coded_max_items
                    and estimate <= self.config.coded_max_estimate
                    and self._send_coded(lo, upper, count, total, estimate, out)
                ):
                    self._describe(lo, upper, out, count)
            elif rng.mode == RANGE_IDLIST:
                needs_reply = True
                out.add(ReconRange(upper, RANGE_RESULT, self._compare(lo, upper, rng.data, out)))
            elif rng.mode == RANGE_CODED:
                needs_reply = True
                self._decode(lo, upper, rng.data, coded_in.pop((lo, upper), None), out)
            elif rng.mode == RANGE_MORE:
                needs_reply = True
                self._more(lo, upper, rng.data, sent_coded.pop((lo, upper), None), out)
            elif rng.mode == RANGE_DECODED:
                self._decoded(rng.data, sent_coded.pop((lo, upper), None))
                out.add(ReconRange(upper, RANGE_SKIP))
            else:
                mine = sent.pop((lo, upper), None)
                if mine is None:
                    raise RemoteProtocolError("reconcile result for a range we sent no idlist for")
                if len(rng.data) != (len(mine) + 7) // 8:
                    raise MalformedMessage("reconcile result bitfield has the wrong length")
                for j, key in enumerate(mine):
                    if rng.data[j // 8] >> (j % 8) & 1:
                        self.their_need.add(key)
                        out.gifts.append(key)
                if any(rng.data):
                    needs_reply = True
                out.add(ReconRange(upper, RANGE_SKIP))
            lo = upper if upper is not None else lo
        if ranges[-1].upper is not None:
            raise MalformedMessage("the last reconcile range must be open-ended")
        if sent:
            raise RemoteProtocolError("the peer left our idlists unanswered")
        if not needs_reply:
            # The peer's message settled everything: nothing more to say.
            self.done = True
            return []
        return self._emit(out)

    # ------------------------------------------------------------- coded ranges

    def _estimate(
        self, ranges: list[ReconRange], checked: dict[int, tuple[int, int, bool]]
    ) -> float:
        """Expected differences in one mismatching range of this message, from the share
        of its fingerprints that mismatch (differences spread at random over ranges of
        equal count: a share f mismatching means lambda = -ln(1 - f) per range). Fills
        ``checked`` with each fingerprint range's count, sum and whether it matches."""
        fingerprints = mismatched = 0
        lo = b""
        for i, rng in enumerate(ranges):
            if rng.mode == RANGE_FINGERPRINT:
                fingerprints += 1
                count, total = self.source.summary(lo, rng.upper)
                same = fingerprint(self.salt, count, total) == rng.data
                checked[i] = (count, total, same)
                mismatched += not same
            lo = rng.upper if rng.upper is not None else lo
        if not mismatched or mismatched >= fingerprints:
            # All mismatch: the differences may be many per range; split as before.
            return math.inf
        lam = -math.log1p(-mismatched / fingerprints)
        return lam / -math.expm1(-lam)

    def _send_coded(
        self,
        lo: bytes,
        upper: bytes | None,
        count: int,
        total: int,
        estimate: float,
        out: _Outgoing,
    ) -> bool:
        """Describe our items in [lo, upper) by coded symbols; False if their keys are
        not all of one width (then the range is split as before)."""
        keys = self.source.keys(lo, upper)
        width = len(keys[0])
        if set(map(len, keys)) != {width}:
            return False
        header = fingerprint(self.salt, count, total)[:CODED_FINGERPRINT_SIZE]
        header += encode_varint(count)
        batch = _coded_batch(estimate, self.config)
        if not self._spend(len(keys), batch):
            return False
        self._sent_coded[(lo, upper)] = _CodedOut(keys, 0, header)
        out.add(ReconRange(upper, RANGE_CODED, self._coded_data(lo, upper, batch)))
        return True

    def _coded_data(self, lo: bytes, upper: bytes | None, batch: int) -> bytes:
        entry = self._sent_coded[(lo, upper)]
        width = len(entry.keys[0])
        # Each key's check is kept the first time the keys are coded ('decoded' names them).
        keep = entry.checks if not entry.checks else None
        symbols = encode_symbols(self._salt_key, entry.keys, entry.sent, batch, keep)
        data = entry.header + encode_varint(entry.sent) + bytes([width]) + symbols.encode(width)
        entry.sent += batch
        return data

    def _spend(self, keys: int, end: int) -> bool:
        """Account for coding ``keys`` keys up to symbol ``end`` (a salted hash and a
        walk of about 2 ln(1 + end/2) steps each); False once the session's budget,
        8 units per key of our set plus 65,536, would be exceeded: roughly one symbol
        of our whole set eight times, or 128 of it once. An honest reconcile codes the keys
        of some ranges a few times with a few symbols (100,000 items differing by
        100: about 33,000 keys, under 2 units each)."""
        if self._work_budget < 0:
            self._work_budget = 8.0 * (self.source.summary(b"", None)[0] + 8192)
        cost = keys * (1.0 + 2.0 * math.log1p(end / 2))
        if self._work + cost > self._work_budget:
            return False
        self._work += cost
        return True

    def _more(
        self, lo: bytes, upper: bytes | None, data: bytes, entry: _CodedOut | None, out: _Outgoing
    ) -> None:
        """The peer could not decode our symbols of a range: send as many again."""
        if entry is None:
            raise RemoteProtocolError("reconcile 'more' for a range we sent no symbols of")
        try:
            parsed = decode_varint(data) if data else None
        except FrameError:
            parsed = None
        if parsed is None or parsed[1] != len(data):
            raise MalformedMessage("a reconcile 'more' is one varint: how many symbols")
        batch = parsed[0]
        if not 1 <= batch <= MAX_CODED_SYMBOLS - entry.sent:
            raise RemoteProtocolError(f"reconcile 'more' past {MAX_CODED_SYMBOLS} symbols")
        if not self._spend(len(entry.keys), entry.sent + batch):
            # Our coding budget is spent: split the range instead (the peer takes the
            # fingerprints as for any range; a peer that asks on gets no symbols).
            self._describe(lo, upper, out)
            return
        self._sent_coded[(lo, upper)] = entry
        out.add(ReconRange(upper, RANGE_CODED, self._coded_data(lo, upper, batch)))

    def _decoded(self, data: bytes, entry: _CodedOut | None) -> None:
        """The peer decoded our symbols: ``data`` names (by check) our keys it lacks."""
        if entry is None:
            raise RemoteProtocolError("reconcile 'decoded' for a range we sent no symbols of")
        if len(data) % CHECK_SIZE:
            raise MalformedMessage(f"a reconcile 'decoded' is {CHECK_SIZE}-byte checks")
        if not data:
            return
        wanted = {
            int.from_bytes(data[i : i + CHECK_SIZE], "little")
            for i in range(0, len(data), CHECK_SIZE)
        }
        if len(wanted) * CHECK_SIZE != len(data):
            raise RemoteProtocolError("a reconcile 'decoded' names a key twice")
        found = 0
        for key, check in zip(entry.keys, entry.checks, strict=True):
            if check in wanted:
                self.their_need.add(key)
                found += 1
        if found != len(wanted):
            raise RemoteProtocolError("a reconcile 'decoded' names keys we do not hold")

    def _decode(
        self,
        lo: bytes,
        upper: bytes | None,
        data: bytes,
        prior: _CodedIn | None,
        out: _Outgoing,
    ) -> None:
        """Take the peer's coded symbols of [lo, upper); peel them against ours."""
        if not self.coded:
            raise RemoteProtocolError("coded reconcile range from a peer that did not offer them")
        if len(data) < CODED_FINGERPRINT_SIZE + 3:
            raise MalformedMessage("a coded range is cut short")
        try:
            parsed = decode_varint(data, CODED_FINGERPRINT_SIZE)
            if parsed is None:
                raise MalformedMessage("a coded range is cut short")
            their_count, pos = parsed
            header = data[:pos]
            parsed = decode_varint(data, pos)
            if parsed is None or parsed[1] >= len(data):
                raise MalformedMessage("a coded range is cut short")
            start, pos = parsed
        except FrameError as exc:
            raise MalformedMessage(f"a coded range has a bad varint: {exc}") from None
        width = data[pos]
        if not TS_BYTES < width <= MAX_ITEM_KEY:
            raise MalformedMessage(f"coded keys are {TS_BYTES + 1}..{MAX_ITEM_KEY} bytes wide")
        batch = Symbols.decode(start, data[pos + 1 :], width)
        if batch is None:
            raise MalformedMessage("a coded range holds a whole number of symbols")
        if start:
            if prior is None or prior.symbols.start + len(prior.symbols.counts) != start:
                raise RemoteProtocolError("coded symbols that continue nothing we asked for")
            if prior.header != header or prior.width != width:
                raise RemoteProtocolError("coded symbols of a range changed their header")
            prior.symbols.extend(batch)
            theirs = prior.symbols
        else:
            theirs = batch
        size = len(theirs.counts)
        self._symbols_in += len(batch.counts)
        if size > MAX_CODED_SYMBOLS or self._symbols_in > MAX_SESSION_SYMBOLS:
            raise RemoteProtocolError("too many coded symbols in one reconcile")
        count, total = self.source.summary(lo, upper)
        if count > 4 * self.config.coded_max_items:
            # Too many of ours to code here (the peer holds far fewer): split instead.
            self._describe(lo, upper, out, count)
            return
        keys = self.source.keys(lo, upper)
        if (
            (keys and set(map(len, keys)) != {width})
            or size > max(self.config.coded_max_symbols, 3)
            or not self._spend(len(keys), size)
        ):
            # Keys of another width, more symbols than we would ever ask for (a peer
            # with other settings), or our budget spent: split the range instead.
            self._describe(lo, upper, out, count)
            return
        if prior is not None and start:
            ours = prior.ours
            ours.extend(encode_symbols(self._salt_key, keys, start, len(batch.counts)))
        else:
            ours = encode_symbols(self._salt_key, keys, 0, size)
        # A difference of d items needs about 1.4 d symbols, and d >= |count difference|.
        if abs(count - their_count) <= size:
            peeled = peel(
                theirs,
                ours,
                width=width,
                salt_key=self._salt_key,
                lo=lo,
                upper=upper,
                mine=set(keys),
            )
            if (
                peeled is not None
                and header[:CODED_FINGERPRINT_SIZE]
                == fingerprint(self.salt, *adjusted_summary(count, total, peeled))[
                    :CODED_FINGERPRINT_SIZE
                ]
            ):
                self.need.update(peeled.theirs)
                self.their_need.update(peeled.ours)
                out.gifts.extend(peeled.ours)
                names = b"".join(
                    item_check(self._salt_key, k)[0].to_bytes(CHECK_SIZE, "little")
                    for k in peeled.theirs
                )
                out.add(ReconRange(upper, RANGE_DECODED, names))
                return
        # Ask for as many again, at least 3 (two differences rarely peel from 2 symbols)
        # and enough for the count difference (a lower bound of the differences).
        more = max(size, 3, math.ceil(1.6 * abs(count - their_count)) + 1 - size)
        limit = min(self.config.coded_max_symbols, MAX_CODED_SYMBOLS)
        if size + more <= limit and 3 * abs(count - their_count) <= 2 * limit:
            self._coded_in[(lo, upper)] = _CodedIn(header, their_count, width, theirs, ours)
            out.add(ReconRange(upper, RANGE_MORE, encode_varint(more)))
        else:
            self._describe(lo, upper, out, count)

    def _describe(self, lo: bytes, upper: bytes | None, out: _Outgoing, count: int = -1) -> None:
        """Describe our items in [lo, upper): an idlist if few, else bucket fingerprints."""
        if count < 0:
            count, _ = self.source.summary(lo, upper)
        if count <= self.config.leaf_size:
            keys = self.source.keys(lo, upper)
            self._sent_idlists[(lo, upper)] = keys
            data = b"".join(short_id(self._salt_key, k) for k in keys)
            out.add(ReconRange(upper, RANGE_IDLIST, data))
            return
        # Deep in the tree a mismatch is usually one item: fewer buckets cost fewer bytes.
        config = self.config
        buckets = config.deep_buckets if count <= config.deep_below else config.buckets
        parts = min(buckets, count)
        start = lo
        for p in range(1, parts + 1):
            if p == parts:
                bound = upper
            else:
                rank = p * count // parts
                bound = separator(self.source.key_at(lo, rank - 1), self.source.key_at(lo, rank))
            sub_count, sub_total = self.source.summary(start, bound)
            out.add(
                ReconRange(bound, RANGE_FINGERPRINT, fingerprint(self.salt, sub_count, sub_total))
            )
            start = bound if bound is not None else start

    def _compare(self, lo: bytes, upper: bytes | None, data: bytes, out: _Outgoing) -> bytes:
        """Answer an idlist: bitfield of theirs we lack; ours they lack go to gifts."""
        if len(data) % SHORT_ID_SIZE:
            raise MalformedMessage(f"an idlist is a whole number of {SHORT_ID_SIZE}-byte ids")
        theirs = [data[i : i + SHORT_ID_SIZE] for i in range(0, len(data), SHORT_ID_SIZE)]
        their_set = set(theirs)
        mine = self.source.keys(lo, upper)
        my_shorts = set()
        for key in mine:
            short = short_id(self._salt_key, key)
            my_shorts.add(short)
            if short not in their_set:
                self.their_need.add(key)
                out.gifts.append(key)
        bits = bytearray((len(theirs) + 7) // 8)
        for j, short in enumerate(theirs):
            if short not in my_shorts:
                bits[j // 8] |= 1 << (j % 8)
        return bytes(bits)

    def _emit(self, out: _Outgoing) -> list[Recon]:
        if not out.needs_reply:
            self.done = True
        self.messages_sent += 1
        per = self.config.ranges_per_frame
        parts: list[tuple[list[ReconRange], list[bytes]]] = [([], [])]
        size = 0
        for rng in out.ranges:
            cost = len(rng.upper or b"") + len(rng.data) + 8
            cur_r, cur_g = parts[-1]
            if cur_r and (len(cur_r) >= per or size + cost > FRAME_BUDGET):
                parts.append(([], []))
                size = 0
            parts[-1][0].append(rng)
            size += cost
        for gift in out.gifts:
            cost = len(gift) + 2
            cur_r, cur_g = parts[-1]
            if (cur_r or cur_g) and (len(cur_g) >= MAX_GIFTS or size + cost > FRAME_BUDGET):
                parts.append(([], []))
                size = 0
            parts[-1][1].append(gift)
            size += cost
        frames: list[Recon] = []
        for chunk_r, chunk_g in parts:
            salt = self.salt if self.initiator and self._seq_out == 0 else b""
            frames.append(
                Recon(
                    self.sid,
                    self.initiator,
                    self._seq_out,
                    salt,
                    tuple(chunk_r),
                    tuple(chunk_g),
                    False,
                )
            )
            self._seq_out += 1
        last = frames[-1]
        frames[-1] = Recon(
            last.sid, last.initiator, last.seq, last.salt, last.ranges, last.gifts, True
        )
        return frames


def reconcile_locally(
    a: ItemSource,
    b: ItemSource,
    rng: random.Random,
    config: ReconConfig | None = None,
    *,
    coded: bool = False,
) -> tuple[ReconcileSession, ReconcileSession, int, int]:
    """Run a whole reconcile between two sources in memory (tests, benchmarks, simnet).

    ``coded``: both sides announced coded ranges (as two current hubs do).
    Returns both sessions, the number of messages and the encoded bytes on the wire.
    """
    from craftnet.protocol.framing import encode_frame

    left = ReconcileSession(a, sid=1, initiator=True, rng=rng, config=config, coded=coded)
    right = ReconcileSession(b, sid=1, initiator=False, rng=rng, config=config, coded=coded)
    frames = left.start()
    sender, receiver = left, right
    messages = 0
    wire = 0
    while frames:
        messages += 1
        wire += sum(len(encode_frame(f)) for f in frames)
        replies: list[Recon] = []
        for frame in frames:
            replies.extend(receiver.receive(frame))
        frames = replies
        sender, receiver = receiver, sender
    if not (left.done and right.done):
        raise LocalProtocolError("reconcile stopped before both sides were done")
    return left, right, messages, wire


__all__ = [
    "FINGERPRINT_SIZE",
    "SHORT_ID_SIZE",
    "ReconConfig",
    "ReconcileSession",
    "fingerprint",
    "reconcile_locally",
    "separator",
    "short_id",
]
