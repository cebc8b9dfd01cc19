"""Ports a lab holds for its whole run, so that a restarted hub comes back at its address.

Hubs name each other by address (``/ip4/127.0.0.1/tcp/PORT/p2p/...``), so a hub must get
the same port at every restart, and nothing else may take it while the hub is down. Two
things could: a program binding port 0 (the kernel picks from the ephemeral range), and
another lab on the same machine. So ports are drawn *below* the ephemeral range, and each
is claimed with an ``flock`` on a file in a shared folder that is held until the lab ends
(a lab that died leaves only unlocked files, which the next one takes over).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import Final

from craftnet.node.lab.errors import LabError

LOCK_DIR: Final = Path(tempfile.gettempdir()) / "craftnet-lab-ports"
LOWEST: Final = 20_000
RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
ATTEMPTS: Final = 200


def free_range() -> tuple[int, int]:
    """Ports ``[low, high)`` that the kernel never hands out for port 0."""
    high = 32_768
    with contextlib.suppress(OSError, ValueError, IndexError):
        high = int(RANGE_FILE.read_text().split()[0])
    if high - LOWEST < 1000:
        raise LabError(f"no ports below the ephemeral range ({high}) to run a lab in")
    return LOWEST, high


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortPool:
    """Claims loopback ports for one lab; :meth:`close` gives them back."""

    def __init__(self, rng: random.Random, lock_dir: Path = LOCK_DIR) -> None:
        self.rng = rng
        self.lock_dir = lock_dir
        self._held: dict[int, int] = {}

    def claim(self) -> int:
        """A port free now, that no other lab will take while this one runs."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        low, high = free_range()
        for _ in range(ATTEMPTS):
            port = self.rng.randrange(low, high)
            if port in self._held:
                continue
            fd = os.open(self.lock_dir / str(port), os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # another lab holds it
                continue
            if not _bindable(port):
                os.close(fd)  # some service listens there
                continue
            self._held[port] = fd
            return port
        raise LabError(f"found no free port in {low}..{high} after {ATTEMPTS} tries")

    @property
    def held(self) -> list[int]:
        """The ports claimed so far."""
        return sorted(self._held)

    def close(self) -> None:
        """Release every port (the lock files stay, unlocked, for the next lab)."""
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()
