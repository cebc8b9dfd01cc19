"""Have-summaries: a small signed description of the records a hub holds.

A hub that is offline for weeks learns what another hub holds from a *have-summary*
carried on a stick (``craftnet have``, or inside every delta bundle). From it the other
hub works out what to send (:mod:`craftnet.archive.delta`). A summary must be small
(at most 64 KiB for 100,000 records), so it cannot list the records. It holds, over the
hub's record set (the reconcile items, ``ts8 + CID`` keys of ``rec_time``), each item
reduced to a 64-bit *id* (BLAKE3 of the key, keyed with a salt the summary's author
picks, so nobody can craft colliding ids in advance):

* **ranges**: the sorted key space cut into up to 512 ranges of equal count (so finer
  in time where records are dense), each with its count and the sum of its ids mod
  2**64: the reconcile fingerprint of :mod:`craftnet.archive.recon_index`, one level
  deep. Ranges whose fingerprints agree hold the same records.
* **cells**: the same (count, sum) fingerprints over *hash buckets* instead of key
  ranges, three buckets per id (an invertible Bloom lookup table), plus a 32-bit check
  sum per bucket. Subtracting the cells of the other set from these leaves only the
  records in which the two sets differ; buckets holding one such record give it away
  (its id is the sum), and removing it from its other buckets frees more. So the
  exact difference comes out whenever it is smaller than about 3/4 of the cells
  (3,000 cells: about 2,200 records), whatever the size of the sets.

Why both: ranges alone cannot meet the goal. With ``d`` records missing at random among
``n`` and ``R`` ranges, the exporter must send every record of each differing range,
about ``d * n / R``; for ``n = 100,000`` and the bundle within 10% of the missing
records' bytes that needs ``R >= n / 1.1``, which is the CID list again. The cells give
the exact difference in a fixed size; the ranges are the fallback when the difference
is larger than the cells can decode (send every record of ours in a differing range:
more than needed, never less), and a cross-check of the decoded result.

The file is one canonical DAG-CBOR map, signed by the hub's key (Ed25519 over the
canonical encoding of the map without ``sig``)::

    {type: "craftnet-have", v: 1, hub: did, at: HLC, count, salt: 32 bytes,
     ranges: bytes, cells: bytes, sig: 64 bytes}

``ranges`` is, per range, ``varint(len(bound)) bound varint(count) sum(8, LE)``; the
bound is the range's exclusive upper end (the shortest prefix that separates two
neighbouring keys), empty for the last, open-ended range. ``cells`` is ``m`` counts
(int32 LE), then ``m`` sums (uint64 LE), then ``m`` check sums (uint32 LE), ``m`` a
multiple of 3 (one sub-table per hash).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import blake3
import numpy as np
import numpy.typing as npt

from craftnet.archive import codec
from craftnet.archive.errors import ArchiveError, CodecError
from craftnet.archive.hlc import MAX_TS
from craftnet.archive.recon_index import separator
from craftnet.archive.store import ReadTxn
from craftnet.archive.varint import VarintError, decode_varint, encode_varint
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey, parse_did

HAVE_TYPE: Final = "craftnet-have"
HAVE_VERSION: Final = 1
ITEMS_DB: Final = "rec_time"
KEY_LEN: Final = 8 + 36  # ts8 + binary CID
SALT_SIZE: Final = 32
SIG_SIZE: Final = 64
HASHES: Final = 3
MAX_RANGES: Final = 512
MIN_CELLS: Final = 96
MAX_CELLS: Final = 3000
CELLS_PER_ITEM: Final = 8  # default cells: one per 8 records, within the bounds above
CELL_BYTES: Final = 16
# A decoder never takes more than this, whatever a file claims.
MAX_SUMMARY_BYTES: Final = 1 << 20
MAX_DECODE_CELLS: Final = 1 << 15
MAX_DECODE_RANGES: Final = 1 << 14
_KEYS: Final = frozenset({"type", "v", "hub", "at", "count", "salt", "ranges", "cells", "sig"})
_M64: Final = (1 << 64) - 1
_M32: Final = (1 << 32) - 1
_SEEDS: Final = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_CHECK_SEED: Final = 0x27D4EB2F165667C5

U64Array = npt.NDArray[np.uint64]


class SummaryError(ArchiveError):
    """A have-summary is malformed, has a bad signature or a version this hub cannot read."""


# ---------------------------------------------------------------------- hashing


def _mix(x: int) -> int:
    """The splitmix64 finaliser on one 64-bit integer (the same as :func:`_mix_array`)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mix_array(x: U64Array) -> U64Array:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    result: U64Array = x ^ (x >> np.uint64(31))
    return result


def item_id(salt: bytes, key: bytes) -> int:
    """An item's 64-bit id in a summary: BLAKE3 of its key, keyed with the salt."""
    return int.from_bytes(blake3.blake3(key, key=salt).digest(8), "little")


def _check(ident: int) -> int:
    return _mix(ident ^ _CHECK_SEED) & _M32


def _slots(ident: int, sub: int) -> list[int]:
    return [j * sub + _mix(ident ^ seed) % sub for j, seed in enumerate(_SEEDS)]


# ---------------------------------------------------------------------- the sketch


@dataclass(slots=True)
class Cells:
    """An invertible Bloom lookup table of 64-bit ids: counts, id sums, check sums."""

    counts: npt.NDArray[np.int64]
    sums: U64Array
    checks: npt.NDArray[np.uint32]

    @classmethod
    def empty(cls, size: int) -> Cells:
        """A table of ``size`` cells (a multiple of 3) holding nothing."""
        return cls(
            np.zeros(size, np.int64), np.zeros(size, np.uint64), np.zeros(size, np.uint32)
        )

    @property
    def size(self) -> int:
        """The number of cells."""
        return int(self.counts.shape[0])

    def add_ids(self, ids: U64Array) -> None:
        """Put every id of ``ids`` into its three cells."""
        if not ids.size:
            return
        sub = np.uint64(self.size // HASHES)
        checks = (_mix_array(ids ^ np.uint64(_CHECK_SEED)) & np.uint64(_M32)).astype(np.uint32)
        for j, seed in enumerate(_SEEDS):
            slot = (_mix_array(ids ^ np.uint64(seed)) % sub).astype(np.int64) + j * int(sub)
            np.add.at(self.counts, slot, 1)
            with np.errstate(over="ignore"):
                np.add.at(self.sums, slot, ids)
                np.add.at(self.checks, slot, checks)

    def minus(self, other: Cells) -> Cells:
        """The cell-wise difference ``self - other`` (sums wrap)."""
        with np.errstate(over="ignore"):
            return Cells(
                self.counts - other.counts, self.sums - other.sums, self.checks - other.checks
            )

    def peel(self) -> tuple[set[int], set[int]] | None:
        """Decode a difference table: ``(ids only in self, ids only in other)`` or None."""
        counts = [int(c) for c in self.counts]
        sums = [int(s) for s in self.sums]
        checks = [int(c) for c in self.checks]
        sub = self.size // HASHES
        mine: set[int] = set()
        theirs: set[int] = set()
        queue = list(range(len(counts)))
        while queue:
            i = queue.pop()
            count = counts[i]
            if count == 1:
                ident, sign, target = sums[i], 1, mine
            elif count == -1:
                ident, sign, target = (-sums[i]) & _M64, -1, theirs
            else:
                continue
            if _check(ident) != (checks[i] * sign) & _M32 or i not in _slots(ident, sub):
                continue
            if ident in mine or ident in theirs:
                return None  # an id decoded twice: the table is inconsistent
            target.add(ident)
            check = _check(ident)
            for slot in _slots(ident, sub):
                counts[slot] -= sign
                sums[slot] = (sums[slot] - sign * ident) & _M64
                checks[slot] = (checks[slot] - sign * check) & _M32
                queue.append(slot)
        if any(counts) or any(sums) or any(checks):
            return None
        return mine, theirs

    def encode(self) -> bytes:
        """The packed form: counts (int32 LE), sums (uint64 LE), checks (uint32 LE)."""
        if self.counts.size and (self.counts.min() < -(2**31) or self.counts.max() >= 2**31):
            raise SummaryError("a summary cell count does not fit 32 bits")
        return (
            self.counts.astype("<i4").tobytes()
            + self.sums.astype("<u8").tobytes()
            + self.checks.astype("<u4").tobytes()
        )

    @classmethod
    def decode(cls, raw: bytes) -> Cells:
        """Unpack :meth:`encode`'s bytes, checking the length."""
        if len(raw) % (CELL_BYTES * HASHES):
            raise SummaryError(
                f"the summary's cells are {len(raw)} bytes, not a multiple of {CELL_BYTES * HASHES}"
            )
        size = len(raw) // CELL_BYTES
        if not HASHES <= size <= MAX_DECODE_CELLS:
            raise SummaryError(f"the summary has {size} cells; 3..{MAX_DECODE_CELLS} are read")
        counts = np.frombuffer(raw, "<i4", size, 0).astype(np.int64)
        sums = np.frombuffer(raw, "<u8", size, 4 * size).astype(np.uint64)
        checks = np.frombuffer(raw, "<u4", size, 12 * size).astype(np.uint32)
        return cls(counts, sums, checks)


def default_cells(count: int) -> int:
    """How many cells a summary of ``count`` records gets (a multiple of 3)."""
    cells = min(MAX_CELLS, max(MIN_CELLS, count // CELLS_PER_ITEM))
    return cells - cells % HASHES


# ---------------------------------------------------------------------- ranges


@dataclass(frozen=True, slots=True)
class Range:
    """A key range ``[previous upper, upper)`` (``upper`` None: to the end) with its fingerprint."""

    upper: bytes | None
    count: int
    total: int  # sum of ids mod 2**64


def _make_ranges(keys: Sequence[bytes], ids: Sequence[int], parts: int) -> list[Range]:
    n = len(keys)
    if n == 0:
        return [Range(None, 0, 0)]
    parts = max(1, min(parts, n))
    out: list[Range] = []
    start = 0
    for p in range(1, parts + 1):
        end = p * n // parts
        upper = None if p == parts else separator(keys[end - 1], keys[end])
        out.append(Range(upper, end - start, sum(ids[start:end]) & _M64))
        start = end
    return out


def _encode_ranges(ranges: Sequence[Range]) -> bytes:
    out = bytearray()
    for rng in ranges:
        bound = rng.upper or b""
        out += encode_varint(len(bound)) + bound + encode_varint(rng.count)
        out += rng.total.to_bytes(8, "little")
    return bytes(out)


def _decode_ranges(raw: bytes) -> list[Range]:
    out: list[Range] = []
    pos = 0
    previous = b""
    try:
        while pos < len(raw):
            if len(out) >= MAX_DECODE_RANGES:
                raise SummaryError(f"the summary has over {MAX_DECODE_RANGES} ranges")
            got = decode_varint(raw, pos)
            if got is None:
                raise SummaryError("the summary's ranges are cut short")
            size, pos = got
            if size > KEY_LEN or pos + size > len(raw):
                raise SummaryError("a range bound in the summary is cut short or too long")
            bound = raw[pos : pos + size]
            pos += size
            got = decode_varint(raw, pos)
            if got is None or got[1] + 8 > len(raw):
                raise SummaryError("the summary's ranges are cut short")
            count, pos = got
            total = int.from_bytes(raw[pos : pos + 8], "little")
            pos += 8
            if out and out[-1].upper is None:
                raise SummaryError("only the last range of a summary is open-ended")
            if bound and bound <= previous:
                raise SummaryError("the summary's range bounds do not increase")
            out.append(Range(bound or None, count, total))
            previous = bound
    except VarintError as exc:
        raise SummaryError(f"the summary's ranges: {exc}") from None
    if not out or out[-1].upper is not None:
        raise SummaryError("the summary's ranges must end with an open-ended range")
    return out


# ---------------------------------------------------------------------- the summary


@dataclass(frozen=True, slots=True)
class HaveSummary:
    """A hub's signed description of its record set (see the module docstring)."""

    hub: str
    at: int
    count: int
    salt: bytes
    ranges: tuple[Range, ...]
    cells: Cells
    sig: bytes
    raw: bytes  # the signed file, as written and read

    def ids_total(self) -> int:
        """The sum of all ids mod 2**64 (the ranges' fingerprints added up)."""
        return sum(rng.total for rng in self.ranges) & _M64

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (not the data)."""
        return {
            "hub": self.hub,
            "at": self.at,
            "records": self.count,
            "ranges": len(self.ranges),
            "cells": self.cells.size,
            "bytes": len(self.raw),
        }


def _unsigned(hub: str, at: int, count: int, salt: bytes, ranges: bytes, cells: bytes) -> dict[
    str, Any
]:
    return {
        "type": HAVE_TYPE,
        "v": HAVE_VERSION,
        "hub": hub,
        "at": at,
        "count": count,
        "salt": salt,
        "ranges": ranges,
        "cells": cells,
    }


@dataclass(frozen=True, slots=True)
class ItemSet:
    """One hub's items as a summary sees them: sorted keys and their ids under a salt."""

    salt: bytes
    keys: list[bytes]
    ids: list[int]

    @classmethod
    def read(cls, txn: ReadTxn, salt: bytes) -> ItemSet:
        """Every item of this store (``rec_time`` keys, in order), with its id."""
        keys = [bytes(key) for key, _ in txn.iterate(ITEMS_DB)]
        return cls(salt, keys, [item_id(salt, key) for key in keys])

    def id_array(self) -> U64Array:
        """The ids as a numpy array."""
        return np.fromiter(self.ids, np.uint64, len(self.ids))


def build_summary(
    txn: ReadTxn,
    key: PrivateKey,
    at: int,
    *,
    cells: int | None = None,
    ranges: int = MAX_RANGES,
    salt: bytes | None = None,
) -> HaveSummary:
    """Describe the store's record set, signed with ``key`` (the hub's key) at HLC ``at``."""
    salt = salt if salt is not None else os.urandom(SALT_SIZE)
    items = ItemSet.read(txn, salt)
    size = cells if cells is not None else default_cells(len(items.keys))
    if size < HASHES or size % HASHES or size > MAX_DECODE_CELLS:
        raise SummaryError(f"a summary has a multiple of 3 cells, 3..{MAX_DECODE_CELLS}")
    if not 1 <= ranges <= MAX_DECODE_RANGES:
        raise SummaryError(f"a summary has 1..{MAX_DECODE_RANGES} ranges")
    table = Cells.empty(size)
    table.add_ids(items.id_array())
    cut = _make_ranges(items.keys, items.ids, ranges)
    unsigned = _unsigned(
        key.did, at, len(items.keys), salt, _encode_ranges(cut), table.encode()
    )
    sig = key.sign(codec.encode(unsigned))
    raw = codec.encode({**unsigned, "sig": sig})
    return HaveSummary(key.did, at, len(items.keys), salt, tuple(cut), table, sig, raw)


def read_summary(raw: bytes) -> HaveSummary:
    """Parse and verify a summary file; raises :class:`SummaryError` on anything wrong."""
    if len(raw) > MAX_SUMMARY_BYTES:
        raise SummaryError(
            f"the summary is {len(raw)} bytes, over the {MAX_SUMMARY_BYTES}-byte limit"
        )
    try:
        value = codec.decode(raw, max_size=MAX_SUMMARY_BYTES)
    except CodecError as exc:
        raise SummaryError(f"not a have-summary (not canonical DAG-CBOR: {exc})") from None
    if not isinstance(value, dict) or value.get("type") != HAVE_TYPE:
        raise SummaryError("not a have-summary (no 'type': 'craftnet-have')")
    version = value.get("v")
    if type(version) is not int or version != HAVE_VERSION:
        raise SummaryError(
            f"have-summary version {version!r} is not supported; this hub reads version "
            f"{HAVE_VERSION} (upgrade craftnet?)"
        )
    if set(value) != _KEYS:
        raise SummaryError(
            f"the have-summary has missing or unknown fields: {sorted(set(value) ^ _KEYS)}"
        )
    hub, at, count = value["hub"], value["at"], value["count"]
    salt, ranges_raw, cells_raw, sig = (
        value["salt"], value["ranges"], value["cells"], value["sig"]
    )
    if not isinstance(hub, str):
        raise SummaryError("the have-summary's hub must be a did:key")
    for name, number in (("at", at), ("count", count)):
        if type(number) is not int or not 0 <= number <= MAX_TS:
            raise SummaryError(f"the have-summary's {name} must be a non-negative integer")
    for name, blob in (("salt", salt), ("ranges", ranges_raw), ("cells", cells_raw), ("sig", sig)):
        if not isinstance(blob, bytes):
            raise SummaryError(f"the have-summary's {name} must be bytes")
    if len(salt) != SALT_SIZE or len(sig) != SIG_SIZE:
        raise SummaryError("the have-summary's salt or signature has the wrong length")
    try:
        parse_did(hub).verify(sig, codec.encode({k: v for k, v in value.items() if k != "sig"}))
    except IdentityError as exc:
        raise SummaryError(f"the have-summary's signature does not verify: {exc}") from None
    ranges = _decode_ranges(ranges_raw)
    if sum(rng.count for rng in ranges) != count:
        raise SummaryError("the have-summary's ranges do not add up to its count")
    cells = Cells.decode(cells_raw)
    return HaveSummary(hub, at, count, salt, tuple(ranges), cells, sig, bytes(raw))


# ---------------------------------------------------------------------- differences


@dataclass(frozen=True, slots=True)
class Difference:
    """What one set holds that a summarised one lacks.

    ``exact``: the cells decoded, ``ours`` is exactly what the other lacks and
    ``theirs`` exactly how many of theirs we lack. Otherwise the ranges decided:
    ``ours`` is every item of ours in a range whose fingerprint differs (a superset of
    what the other lacks) and ``theirs`` is a lower bound.
    """

    exact: bool
    ours: tuple[bytes, ...]
    theirs: int
    differing_ranges: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {
            "exact": self.exact,
            "we_have_they_lack": len(self.ours),
            "they_have_we_lack": self.theirs,
            "differing_ranges": self.differing_ranges,
        }


def difference(summary: HaveSummary, items: ItemSet) -> Difference:
    """Compare our ``items`` (read with the summary's salt) with a summarised set."""
    if items.salt != summary.salt:
        raise SummaryError("the items were read with another salt than the summary's")
    ours = Cells.empty(summary.cells.size)
    ours.add_ids(items.id_array())
    peeled = summary.cells.minus(ours).peel()
    differing = _differing_ranges(summary, items)
    if peeled is not None:
        theirs_only, ours_only = peeled
        by_id = dict(zip(items.ids, items.keys, strict=True))
        ok = all(i in by_id for i in ours_only) and not any(i in by_id for i in theirs_only)
        total = (sum(items.ids) - sum(ours_only) + sum(theirs_only)) & _M64
        count = len(items.ids) - len(ours_only) + len(theirs_only)
        if ok and count == summary.count and total == summary.ids_total():
            keys = sorted(by_id[i] for i in ours_only)
            return Difference(True, tuple(keys), len(theirs_only), len(differing))
    # Too many differences to decode: every item of ours in a differing range.
    ours_keys: list[bytes] = []
    lower = 0
    for lo, hi, rng in differing:
        ours_keys.extend(items.keys[lo:hi])
        lower += max(0, rng.count - (hi - lo))
    return Difference(False, tuple(ours_keys), lower, len(differing))


def _differing_ranges(summary: HaveSummary, items: ItemSet) -> list[tuple[int, int, Range]]:
    """The summary's ranges whose fingerprints ours do not match, as index spans of ours."""
    out: list[tuple[int, int, Range]] = []
    lo = 0
    for rng in summary.ranges:
        hi = len(items.keys) if rng.upper is None else bisect.bisect_left(items.keys, rng.upper)
        if hi - lo != rng.count or sum(items.ids[lo:hi]) & _M64 != rng.total:
            out.append((lo, hi, rng))
        lo = hi
    return out


def keys_to_cids(keys: Iterable[bytes]) -> list[bytes]:
    """The binary record CIDs of item keys (``ts8 + CID``)."""
    return [key[8:] for key in keys]
