"""The discrete-event kernel: virtual time and a heap of ``(time, seq, event)``.

An event is a callable and its one argument. ``seq`` grows with every scheduled event,
so two events due at the same instant run in the order they were scheduled and a run
never depends on comparing callables. Time only jumps forward, to the next event;
nothing reads a wall clock. Randomness lives in the callers, always seeded.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Action = Callable[[Any], None]


class Kernel:
    """Virtual time and the pending events, in order."""

    __slots__ = ("_heap", "_seq", "events", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._seq = 0
        self._heap: list[tuple[float, int, Action, Any]] = []

    def at(self, time: float, action: Action, arg: Any = None) -> int:
        """Run ``action(arg)`` at virtual ``time`` (never before now); returns its seq."""
        self._seq += 1
        heapq.heappush(self._heap, (time if time > self.now else self.now, self._seq, action, arg))
        return self._seq

    def after(self, delay: float, action: Action, arg: Any = None) -> int:
        """Run ``action(arg)`` ``delay`` seconds from now; returns its seq."""
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, action, arg))
        return self._seq

    def pending(self) -> int:
        """How many events wait in the heap (cancelled ones included)."""
        return len(self._heap)

    def next_time(self) -> float | None:
        """When the next event is due, or None when nothing is pending."""
        return self._heap[0][0] if self._heap else None

    def run(self, until: float) -> int:
        """Run every event due at or before ``until``; the clock ends at ``until``.

        Returns how many events ran.
        """
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        while heap:
            event = pop(heap)
            time = event[0]
            if time > until:
                # Popped one too far: put it back (its seq keeps its place in the order).
                heapq.heappush(heap, event)
                break
            self.now = time
            event[2](event[3])
            ran += 1
        self.now = max(self.now, until)
        self.events += ran
        return ran
