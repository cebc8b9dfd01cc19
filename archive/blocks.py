"""Blocks and pins inside a transaction: the content-addressed layer over the store.

A block is stored under its CID's bytes in the ``blocks`` database and is checked
against that CID before it is written, so the store never holds bytes that do not
match their name. A pin (``pins`` database) keeps a block, and everything it links to,
safe from garbage collection; it carries a name and the time it was made.

Code outside archive/ reads and writes blocks only through these functions (and
:class:`StoreBlockSource`, the engine's view of a store's blocks), never by table name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from craftnet.archive import codec
from craftnet.archive.cid import RAW, Cid
from craftnet.archive.errors import ArchiveError, IntegrityError, NotFound
from craftnet.archive.store import ReadTxn, Store, WriteTxn

MAX_BLOCK_SIZE: Final = codec.MAX_BLOCK_SIZE
MAX_PIN_NAME: Final = 255


def put_block(txn: WriteTxn, cid: Cid, data: bytes, *, verified: bool = False) -> bool:
    """Store ``data`` under ``cid`` after checking it hashes to it; return whether it is new.

    ``verified=True`` skips hashing for bytes the caller has just checked against
    ``cid`` itself (the block exchange checks every block it receives).
    """
    if len(data) > MAX_BLOCK_SIZE:
        raise IntegrityError(
            f"block {cid} is {len(data)} bytes; blocks are at most {MAX_BLOCK_SIZE} bytes"
        )
    if not verified and not cid.verify(data):
        raise IntegrityError(f"the bytes given for block {cid} do not hash to that CID")
    key = cid.bytes
    if txn.has("blocks", key):
        return False  # same CID, same bytes: writing again would only cost I/O
    txn.put("blocks", key, bytes(data))
    return True


def put_or_repair(txn: WriteTxn, cid: Cid, data: bytes) -> Literal["new", "repaired", "kept"]:
    """Store a copy of ``cid`` that hashes to it, replacing a damaged stored copy.

    :func:`put_block` keeps whatever is stored under a CID it has; a block damaged on
    disk then stays damaged whatever good copies arrive. Here the stored bytes are
    compared with the verified ones (a plain comparison, cheaper than hashing them
    again): a CID names exactly one byte string, so a stored copy that differs is damaged
    and is replaced. Returns ``"new"``, ``"repaired"`` or ``"kept"``.
    """
    if len(data) > MAX_BLOCK_SIZE:
        raise IntegrityError(
            f"block {cid} is {len(data)} bytes; blocks are at most {MAX_BLOCK_SIZE} bytes"
        )
    if not cid.verify(data):
        raise IntegrityError(f"the bytes given for block {cid} do not hash to that CID")
    stored = txn.get("blocks", cid.bytes)
    if stored is not None and stored == data:
        return "kept"
    txn.put("blocks", cid.bytes, bytes(data))
    return "new" if stored is None else "repaired"


def remove_damaged(txn: WriteTxn, cids: Iterable[Cid]) -> list[Cid]:
    """Delete the stored blocks among ``cids`` whose bytes do not hash to their CID.

    Each is checked again inside this transaction, so a block repaired meanwhile is
    kept. Returns the CIDs removed; whatever links to them now finds them missing, and a
    good copy from a bundle or a peer is then stored as new.
    """
    removed = []
    for cid in cids:
        stored = txn.get("blocks", cid.bytes)
        if stored is not None and not cid.verify(stored):
            txn.delete("blocks", cid.bytes)
            removed.append(cid)
    return removed


def put_raw(txn: WriteTxn, data: bytes, codec_: int = RAW) -> Cid:
    """Store ``data`` as a block of ``codec_`` (raw by default) and return its CID."""
    if len(data) > MAX_BLOCK_SIZE:
        raise IntegrityError(f"a block is at most {MAX_BLOCK_SIZE} bytes, got {len(data)}")
    cid = Cid.of(data, codec_)
    if not txn.has("blocks", cid.bytes):
        txn.put("blocks", cid.bytes, bytes(data))
    return cid


def get_block(txn: ReadTxn, cid: Cid, *, verify: bool = False) -> bytes:
    """Return the bytes of ``cid``; :class:`NotFound` names the CID if it is missing."""
    data = txn.get("blocks", cid.bytes)
    if data is None:
        raise NotFound(f"block {cid} is not in this store")
    if verify and not cid.verify(data):
        raise IntegrityError(f"stored block {cid} does not match its CID; run `craftnet verify`")
    return data


def find_block(txn: ReadTxn, cid: Cid) -> bytes | None:
    """The bytes of ``cid``, or ``None`` if it is not stored (not checked against the CID)."""
    return txn.get("blocks", cid.bytes)


def has_block(txn: ReadTxn, cid: Cid) -> bool:
    """Tell whether the block ``cid`` is stored."""
    return txn.has("blocks", cid.bytes)


class StoreBlockSource:
    """A store's blocks as the sync engine reads them (``protocol.blocks.BlockSource``).

    Each call reads its own snapshot: the engine asks between writes that other
    threads and processes make (one block at a time, or all of a want at once).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def has_block(self, cid: Cid) -> bool:
        """Tell whether the block is stored."""
        with self.store.read() as txn:
            return has_block(txn, cid)

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None."""
        with self.store.read() as txn:
            return find_block(txn, cid)

    def has_blocks(self, cids: Sequence[Cid]) -> list[bool]:
        """For each CID, whether the block is stored (one snapshot for all: a read
        transaction costs several times what a lookup in it costs)."""
        with self.store.read() as txn:
            return [has_block(txn, cid) for cid in cids]

    def get_blocks(self, cids: Sequence[Cid]) -> list[bytes | None]:
        """For each CID, the block's bytes or None (one snapshot for all)."""
        with self.store.read() as txn:
            return [find_block(txn, cid) for cid in cids]


@dataclass(frozen=True, slots=True)
class Pin:
    """A pinned block: kept by garbage collection together with all it links to."""

    cid: Cid
    name: str
    time: int  # seconds since the Unix epoch


def pin(txn: WriteTxn, cid: Cid, name: str = "", *, when: int | None = None) -> None:
    """Pin the stored block ``cid`` under ``name`` (replacing an earlier pin of it)."""
    if not isinstance(name, str) or len(name) > MAX_PIN_NAME:
        raise IntegrityError(f"a pin name is a string of at most {MAX_PIN_NAME} characters")
    if not txn.has("blocks", cid.bytes):
        raise NotFound(f"cannot pin {cid}: the block is not in this store")
    stamp = int(time.time()) if when is None else when
    txn.put("pins", cid.bytes, codec.encode({"name": name, "time": stamp}))


def unpin(txn: WriteTxn, cid: Cid) -> bool:
    """Remove the pin of ``cid``; return whether there was one."""
    return txn.delete("pins", cid.bytes)


def get_pin(txn: ReadTxn, cid: Cid) -> Pin | None:
    """The pin of ``cid``, or ``None``."""
    raw = txn.get("pins", cid.bytes)
    return None if raw is None else _parse_pin(cid.bytes, raw)


def pins(txn: ReadTxn) -> Iterator[Pin]:
    """Every pin, in CID byte order."""
    for key, raw in txn.iterate("pins"):
        yield _parse_pin(key, raw)


def _parse_pin(key: bytes, raw: bytes) -> Pin:
    try:
        cid = Cid.from_bytes(key)
        value = codec.decode(raw)
    except ArchiveError as exc:  # a bad CID key or bad DAG-CBOR
        raise IntegrityError(f"a pin entry is damaged: {exc}") from exc
    if (
        not isinstance(value, dict)
        or set(value) != {"name", "time"}
        or not isinstance(value["name"], str)
        or type(value["time"]) is not int
    ):
        raise IntegrityError(f"the pin of {key.hex()} is damaged; expected {{name, time}}")
    return Pin(cid=cid, name=value["name"], time=value["time"])
