"""Ports a lab holds: below the ephemeral range, never shared by two labs at once."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from craftnet.node.lab.ports import PortPool, free_range


def test_ports_are_below_the_ephemeral_range_and_free(tmp_path: Path) -> None:
    low, high = free_range()
    pool = PortPool(random.Random(1), tmp_path)
    try:
        ports = [pool.claim() for _ in range(5)]
        assert len(set(ports)) == 5 and all(low <= p < high for p in ports)
        for port in ports:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
        assert pool.held == sorted(ports)
    finally:
        pool.close()
    assert pool.held == []


def test_two_labs_never_hold_the_same_port(tmp_path: Path) -> None:
    first, second = PortPool(random.Random(7), tmp_path), PortPool(random.Random(7), tmp_path)
    try:
        # The same seed proposes the same ports: the second lab must skip the first's.
        taken = first.claim()
        assert second.claim() != taken
    finally:
        first.close()
        second.close()
    # Released: the next lab may take it again.
    third = PortPool(random.Random(7), tmp_path)
    try:
        assert third.claim() == taken
    finally:
        third.close()


def test_a_port_in_use_is_skipped(tmp_path: Path) -> None:
    probe = PortPool(random.Random(3), tmp_path / "probe")
    first_choice = probe.claim()
    probe.close()
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", first_choice))
        busy.listen()
        # The same seed proposes the same port first; someone listens there now.
        pool = PortPool(random.Random(3), tmp_path / "lab")
        try:
            assert pool.claim() != first_choice
        finally:
            pool.close()
