"""Hybrid logical clocks packed into one integer.

A timestamp is ``(wall_ms << 16) | counter``: milliseconds since the Unix epoch in the
high bits and a logical counter in the low 16 bits. Integers sort like the clocks they
stand for, encode compactly in CBOR and need no float.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from craftnet.archive.errors import ArchiveError

COUNTER_BITS: Final = 16
COUNTER_MASK: Final = (1 << COUNTER_BITS) - 1
MAX_TS: Final = 2**64 - 1


def pack(wall_ms: int, counter: int = 0) -> int:
    """Pack wall-clock milliseconds and a counter into one timestamp."""
    if wall_ms < 0 or not 0 <= counter <= COUNTER_MASK:
        raise ArchiveError(f"bad HLC parts: wall_ms={wall_ms}, counter={counter}")
    return (wall_ms << COUNTER_BITS) | counter


def wall_ms(ts: int) -> int:
    """The wall-clock milliseconds part of ``ts``."""
    return ts >> COUNTER_BITS


def counter(ts: int) -> int:
    """The logical counter part of ``ts``."""
    return ts & COUNTER_MASK


def _system_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """A hybrid logical clock; ``now_ms`` is injectable so simulations stay deterministic."""

    def __init__(self, now_ms: Callable[[], int] = _system_ms, last: int = 0) -> None:
        self._now_ms = now_ms
        self._last = last

    @property
    def last(self) -> int:
        """The last timestamp this clock issued or observed."""
        return self._last

    def tick(self) -> int:
        """Return a timestamp greater than every one issued or observed before."""
        physical = pack(self._now_ms())
        self._last = physical if physical > self._last else self._last + 1
        return self._last

    def observe(self, remote: int) -> int:
        """Merge a timestamp seen on a remote record; returns the new local time."""
        if not 0 <= remote <= MAX_TS:
            raise ArchiveError(f"HLC timestamp {remote} is out of range")
        physical = pack(self._now_ms())
        self._last = max(physical, self._last + 1, remote + 1)
        return self._last
