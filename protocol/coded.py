"""Rateless coded symbols of a reconcile range (the ``coded`` range mode).

A rateless IBLT (Yang et al., "Practical Rateless Set Reconciliation", SIGCOMM 2024,
with riblt's index mapping): coded symbol ``i`` of a set holds each item with
probability about ``1 / (1 + i/2)``; it records how many items it holds, the xor of
their keys (all of one width, read as big-endian integers) and the xor of their
*checks*. An item's check and the seed of the symbols it goes into come from its key
hashed with the session's salt key, so nobody can craft, in advance, items that
collide. Subtracting one side's symbols from the other's leaves symbols of the
symmetric difference; a symbol holding one item (count +-1 and a check that matches
its key) names that item, and removing it from the other symbols it went into frees
more (peeling). Any prefix of the symbol sequence decodes a difference of about
``prefix / 1.4`` items, so a side that fails asks for the next symbols.

The peeled result is only taken when it is consistent: keys inside the range, of the
width, "theirs" not ours and "ours" ours, and the peer's fingerprint of the range
equal to ours minus ours-only plus theirs-only. Anything else counts as a failure
(ask for more or fall back to splitting the range), never as a result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import blake3

from craftnet.archive.recon_index import MODULUS, item_hash

CHECK_SIZE: Final = 8  # an item's check, as a 'decoded' range names it
SYMBOL_CHECK_SIZE: Final = 4  # the low bytes of the checks a symbol carries
_SYMBOL_CHECK_MASK: Final = (1 << (8 * SYMBOL_CHECK_SIZE)) - 1
_U64: Final = (1 << 64) - 1
_MULT: Final = 0xDA942042E4DD58B5
_TWO32: Final = float(1 << 32)


def item_check(salt_key: bytes, key: bytes) -> tuple[int, int]:
    """``(check, seed)`` of ``key`` in a session: its salted hash, two 64-bit halves."""
    digest = blake3.blake3(key, key=salt_key).digest(16)
    return int.from_bytes(digest[:CHECK_SIZE], "little"), int.from_bytes(digest[8:], "little")


@dataclass(slots=True)
class Symbols:
    """Coded symbols ``start .. start + len(counts)`` of a set of keys of one width."""

    start: int
    counts: list[int]
    values: list[int]
    checks: list[int]

    def encode(self, width: int) -> bytes:
        """Each symbol as ``count mod 256`` (1 byte), key xor (``width``), check xor (4).

        Four bytes of check suffice: a cell that passes by chance only makes the peel
        fail (the result is checked against the peer's fingerprint)."""
        out = bytearray()
        for count, value, check in zip(self.counts, self.values, self.checks, strict=True):
            out.append(count & 0xFF)
            out += value.to_bytes(width, "big")
            out += (check & _SYMBOL_CHECK_MASK).to_bytes(SYMBOL_CHECK_SIZE, "little")
        return bytes(out)

    def extend(self, more: Symbols) -> None:
        """Append the symbols that follow these (``more.start`` is where these end)."""
        self.counts += more.counts
        self.values += more.values
        self.checks += more.checks

    @classmethod
    def decode(cls, start: int, data: bytes, width: int) -> Symbols | None:
        """Parse symbols encoded by :meth:`encode`; None if ``data`` is not whole symbols."""
        size = 1 + width + SYMBOL_CHECK_SIZE
        if not data or len(data) % size:
            return None
        counts, values, checks = [], [], []
        for pos in range(0, len(data), size):
            counts.append(data[pos])
            values.append(int.from_bytes(data[pos + 1 : pos + 1 + width], "big"))
            checks.append(int.from_bytes(data[pos + 1 + width : pos + size], "little"))
        return cls(start, counts, values, checks)


def encode_symbols(
    salt_key: bytes,
    keys: list[bytes],
    start: int,
    count: int,
    key_checks: list[int] | None = None,
) -> Symbols:
    """Symbols ``start .. start + count`` of ``keys`` (all of one width); appends each
    key's check to ``key_checks`` if given."""
    end = start + count
    counts = [0] * count
    values = [0] * count
    checks = [0] * count
    sqrt, ceil, blake = math.sqrt, math.ceil, blake3.blake3
    from_bytes = int.from_bytes
    if start == 0:
        # Symbol 0 holds every item: count it without the walk (most coded ranges
        # differ by one item, and one symbol decodes that).
        counts[0] = len(keys)
    if end == 1:
        value = check = 0
        for key in keys:
            digest = blake(key, key=salt_key).digest(16)
            item = from_bytes(digest[:8], "little")
            value ^= from_bytes(key, "big")
            check ^= item
            if key_checks is not None:
                key_checks.append(item)
        values[0], checks[0] = value, check
        return Symbols(start, counts, values, checks)
    for key in keys:
        digest = blake(key, key=salt_key).digest(16)
        check = from_bytes(digest[:8], "little")
        value = from_bytes(key, "big")
        if key_checks is not None:
            key_checks.append(check)
        if start == 0:
            values[0] ^= value
            checks[0] ^= check
            if end == 1:
                continue
            state = (from_bytes(digest[8:], "little") or 1) * _MULT & _U64
            index = ceil(1.5 * (_TWO32 / sqrt(state + 1) - 1))
        else:
            state = from_bytes(digest[8:], "little") or 1
            index = 0
        # The walk over an item's symbols is riblt's: each next index is drawn so that
        # symbol i holds the item with probability about 1 / (1 + i/2).
        while index < end:
            if index >= start:
                j = index - start
                counts[j] += 1
                values[j] ^= value
                checks[j] ^= check
            state = (state * _MULT) & _U64
            index += ceil((index + 1.5) * (_TWO32 / sqrt(state + 1) - 1))
    return Symbols(start, counts, values, checks)


def _indices(seed: int, end: int) -> list[int]:
    out, index, state = [], 0, seed or 1
    while index < end:
        out.append(index)
        state = (state * _MULT) & _U64
        index += math.ceil((index + 1.5) * (_TWO32 / math.sqrt(state + 1) - 1))
    return out


@dataclass(frozen=True, slots=True)
class Peeled:
    """A decoded difference: keys only the peer holds and keys only we hold."""

    theirs: list[bytes]
    ours: list[bytes]


def peel(
    theirs: Symbols,
    ours: Symbols,
    *,
    width: int,
    salt_key: bytes,
    lo: bytes,
    upper: bytes | None,
    mine: set[bytes],
) -> Peeled | None:
    """Peel ``theirs - ours`` (both from symbol 0, same length); None if it is stuck or
    the result is inconsistent with the range or with our items."""
    size = len(theirs.counts)
    if theirs.start or ours.start or len(ours.counts) != size:
        return None
    counts = [(a - b) & 0xFF for a, b in zip(theirs.counts, ours.counts, strict=True)]
    values = [a ^ b for a, b in zip(theirs.values, ours.values, strict=True)]
    mask = _SYMBOL_CHECK_MASK
    checks = [(a ^ b) & mask for a, b in zip(theirs.checks, ours.checks, strict=True)]
    found_theirs: list[bytes] = []
    found_ours: list[bytes] = []
    seen: set[bytes] = set()
    # A difference of d items needs about 1.4 d symbols; peeling far more than the
    # symbols can hold means the symbols were made up: stop.
    limit = 2 * size + 2
    queue = list(range(size))
    while queue:
        i = queue.pop()
        count = counts[i]
        if count not in (1, 0xFF) or not values[i]:
            continue
        value = values[i]
        if value.bit_length() > 8 * width:
            return None
        key = value.to_bytes(width, "big")
        check, seed = item_check(salt_key, key)
        check &= mask
        if check != checks[i]:
            continue
        if key < lo or (upper is not None and key >= upper) or key in seen:
            return None
        is_theirs = count == 1
        if is_theirs == (key in mine):
            return None
        seen.add(key)
        (found_theirs if is_theirs else found_ours).append(key)
        if len(seen) > limit:
            return None
        step = -1 if is_theirs else 1
        for j in _indices(seed, size):
            counts[j] = (counts[j] + step) & 0xFF
            values[j] ^= value
            checks[j] ^= check
            queue.append(j)
    if any(counts) or any(values) or any(checks):
        return None
    return Peeled(found_theirs, found_ours)


def adjusted_summary(count: int, total: int, peeled: Peeled) -> tuple[int, int]:
    """The peer's ``(count, sum)`` of the range if ``peeled`` is the whole difference."""
    for key in peeled.theirs:
        total += item_hash(key)
    for key in peeled.ours:
        total -= item_hash(key)
    return count + len(peeled.theirs) - len(peeled.ours), total % MODULUS


__all__ = [
    "CHECK_SIZE",
    "SYMBOL_CHECK_SIZE",
    "Peeled",
    "Symbols",
    "adjusted_summary",
    "encode_symbols",
    "item_check",
    "peel",
]
