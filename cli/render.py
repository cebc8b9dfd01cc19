"""Turning archive values into text and JSON for the terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from craftnet.archive.cid import Cid
from craftnet.archive.hlc import wall_ms


def jsonable(value: Any) -> Any:
    """A copy of a DAG-CBOR value that ``json.dumps`` can write (CIDs as text, bytes as hex)."""
    if isinstance(value, Cid):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def when(ts: int) -> str:
    """A hybrid-logical-clock timestamp as a UTC date and time."""
    try:
        moment = datetime.fromtimestamp(wall_ms(ts) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return f"ts {ts}"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def short_did(did: str) -> str:
    """A did:key shortened for tables: the start and the end of the key."""
    if len(did) <= 24:
        return did
    return f"{did[:14]}…{did[-6:]}"


def human_size(size: int) -> str:
    """Bytes in the largest unit that keeps a number of at least 1."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def safe(text: str) -> str:
    """``text`` with control characters escaped, so a hostile record cannot drive the terminal."""
    return text.translate(_CONTROL)
