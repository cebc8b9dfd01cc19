"""Archive values as JSON: CIDs and bytes in the DAG-JSON style (``{"/": ...}``)."""

from __future__ import annotations

import base64
from typing import Any

from craftnet.archive.cid import Cid
from craftnet.archive.records import Record


def to_json(value: Any) -> Any:
    """A JSON-ready copy of a decoded DAG-CBOR value."""
    if isinstance(value, Cid):
        return {"/": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"/": {"bytes": base64.b64encode(bytes(value)).decode().rstrip("=")}}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def record_json(record: Record) -> dict[str, Any]:
    """A record as the API shows it (the signed block itself is at ``.../raw``)."""
    return {
        "cid": str(record.cid),
        "type": record.type,
        "v": record.v,
        "author": record.author,
        "ts": record.ts,
        "links": [str(link) for link in record.links],
        "body": to_json(record.body),
    }
