"""Idempotency answers that survive a restart, kept in the store's ``meta`` database.

``POST /api/v1/records`` with an ``Idempotency-Key`` publishes once per (signer, key): a
second request gets the first answer again. The answer is written in the same LMDB
transaction as the record it reports, so after a crash or a restart either both are
there (the retry is answered, nothing is published twice) or neither (the retry
publishes). The last :data:`KEPT` answers are kept, in a ring:

* ``web.idem.slot.<16 bytes>`` -> the answer (JSON: the record's CID and the warnings);
  the 16 bytes are a BLAKE3 hash of the signer's did and the key, so neither is stored;
* ``web.idem.ring.<2 bytes>`` -> the slot written at that place of the ring;
* ``web.idem.next`` -> the next place, whose old slot is dropped when it is reused.

All names go through :mod:`craftnet.archive.meta`, under the ``web.`` prefix that is
this package's own.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final

import blake3

from craftnet.archive.meta import delete_meta, get_meta, put_meta
from craftnet.archive.store import ReadTxn, WriteTxn

KEPT: Final = 1000
_SLOT: Final = b"web.idem.slot."
_RING: Final = b"web.idem.ring."
_NEXT: Final = b"web.idem.next"
_PLACE: Final = struct.Struct(">H")

Slot = tuple[str, str]  # (signer's did, idempotency key)


def _slot_name(slot: Slot) -> bytes:
    did, key = slot
    return _SLOT + blake3.blake3(f"{did}\x00{key}".encode()).digest(length=16)


class Replies:
    """The answers to the last :data:`KEPT` publishes that carried an idempotency key."""

    def __init__(self, kept: int = KEPT) -> None:
        if not 0 < kept <= 1 << 16:
            raise ValueError("between 1 and 65536 answers are kept")
        self.kept = kept

    def get(self, txn: ReadTxn, slot: Slot) -> dict[str, Any] | None:
        """The answer given for ``slot``, or None."""
        raw = get_meta(txn, _slot_name(slot))
        if raw is None:
            return None
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def put(self, txn: WriteTxn, slot: Slot, answer: dict[str, Any]) -> None:
        """Remember ``answer`` for ``slot`` in ``txn`` (the oldest is forgotten)."""
        raw_next = get_meta(txn, _NEXT)
        place = _PLACE.unpack(raw_next)[0] % self.kept if raw_next is not None else 0
        ring = _RING + _PLACE.pack(place)
        old = get_meta(txn, ring)
        name = _slot_name(slot)
        if old is not None and old != name:
            delete_meta(txn, old)
        put_meta(txn, name, json.dumps(answer, separators=(",", ":")).encode())
        put_meta(txn, ring, name)
        put_meta(txn, _NEXT, _PLACE.pack((place + 1) % self.kept))
