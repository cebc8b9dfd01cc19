"""Store-wide settings and small state (the ``meta`` database), by name.

Packages keep a few values of their own beside the archive: the node's want list,
whether the demo archive was seeded, ... A name says whose it is (``p2p.wants``). The
names archive/ keeps for itself (the store's format version, the reconcile index's
count) cannot be written through here, so no package can damage them by accident.
"""

from __future__ import annotations

from typing import Final

from craftnet.archive.errors import StoreError
from craftnet.archive.store import MAX_KEY_SIZE, ReadTxn, WriteTxn

# The store's format version and archive's own bookkeeping (see lmdb_store, recon_index).
RESERVED: Final = (b"format_version", b"recon_index.", b"archive.")


def _key(name: bytes) -> bytes:
    if type(name) is not bytes or not 0 < len(name) <= MAX_KEY_SIZE:
        raise StoreError(f"a meta name is 1..{MAX_KEY_SIZE} bytes, got {name!r:.80}")
    if name.startswith(RESERVED):
        raise StoreError(f"the meta name {name!r:.80} is archive's own")
    return name


def get_meta(txn: ReadTxn, name: bytes) -> bytes | None:
    """The value stored under ``name``, or ``None``."""
    return txn.get("meta", _key(name))


def has_meta(txn: ReadTxn, name: bytes) -> bool:
    """Tell whether a value is stored under ``name``."""
    return txn.has("meta", _key(name))


def put_meta(txn: WriteTxn, name: bytes, value: bytes) -> None:
    """Store ``value`` under ``name`` (replacing what was there)."""
    txn.put("meta", _key(name), value)


def delete_meta(txn: WriteTxn, name: bytes) -> bool:
    """Remove ``name``; return whether it was there."""
    return txn.delete("meta", _key(name))
