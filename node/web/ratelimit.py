"""How often walk-in artisans may make or bring a key: token buckets, per address and hub-wide.

A walk-in (nobody logged in, on a hub whose operator allows it) who makes a key costs the
hub a scrypt run (tens of milliseconds of a core, 32 MiB) and a file in its keystore;
bringing one costs a scrypt run to decrypt it. Without a limit, anyone on the hub's
network could fill the keystore or keep the cores busy. Each client address has a small
bucket (a family at the counter may make a few keys at once), and the hub one larger
bucket shared by all addresses (a crowd at a Maker's Fair stand, or one address
spoofing many on a LAN). A request takes a token from both or from neither; without
one it is answered ``429`` with ``Retry-After``, the seconds until a token is back.

The operator (token or operator session) is never limited. Behind a reverse proxy every
request has the proxy's address, and the per-address bucket becomes a second hub-wide one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# (burst, seconds per token): 3 keys at once from one address, then one every 10 minutes;
# 20 at once for the whole hub, then one a minute.
PER_ADDRESS: Final = (3, 600.0)
HUB_WIDE: Final = (20, 60.0)
# Addresses remembered, the least recently seen forgotten first (a forgotten address starts
# with a full bucket again; the hub-wide bucket still holds).
MAX_ADDRESSES: Final = 4096


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class WalkInLimit:
    """Token buckets for walk-in key creation and import (see the module doc)."""

    def __init__(
        self,
        per_address: tuple[int, float] = PER_ADDRESS,
        hub_wide: tuple[int, float] = HUB_WIDE,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._per_address = per_address
        self._hub_wide = hub_wide
        self._clock = clock
        self._max = max_addresses
        self._addresses: OrderedDict[str, _Bucket] = OrderedDict()
        self._hub = _Bucket(float(hub_wide[0]), clock())
        self._lock = threading.Lock()

    @staticmethod
    def _refill(bucket: _Bucket, rule: tuple[int, float], now: float) -> None:
        burst, every = rule
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) / every)
        bucket.stamp = now

    @staticmethod
    def _wait(bucket: _Bucket, rule: tuple[int, float]) -> float:
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) * rule[1]

    def take(self, address: str) -> int | None:
        """Take a token for ``address``: None if granted, else whole seconds to wait."""
        with self._lock:
            now = self._clock()
            mine = self._addresses.pop(address, None) or _Bucket(
                float(self._per_address[0]), now
            )
            self._refill(mine, self._per_address, now)
            self._refill(self._hub, self._hub_wide, now)
            self._addresses[address] = mine  # the most recently seen last
            while len(self._addresses) > self._max:
                self._addresses.popitem(last=False)
            wait = max(self._wait(mine, self._per_address), self._wait(self._hub, self._hub_wide))
            if wait > 0:
                return max(1, math.ceil(wait))
            mine.tokens -= 1
            self._hub.tokens -= 1
            return None
