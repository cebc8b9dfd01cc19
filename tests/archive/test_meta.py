"""Packages keep small values in the store by name; archive's own names are out of reach."""

from __future__ import annotations

import pytest

from craftnet.archive.errors import StoreError
from craftnet.archive.meta import delete_meta, get_meta, has_meta, put_meta
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.store import MAX_KEY_SIZE, Store


def test_put_get_delete(store: Store) -> None:
    store.transact(lambda txn: put_meta(txn, b"demo.seeded", b"1"))
    with store.read() as txn:
        assert has_meta(txn, b"demo.seeded")
        assert get_meta(txn, b"demo.seeded") == b"1"
        assert get_meta(txn, b"p2p.wants") is None
    assert store.transact(lambda txn: delete_meta(txn, b"demo.seeded")) is True
    assert store.transact(lambda txn: delete_meta(txn, b"demo.seeded")) is False


@pytest.mark.parametrize(
    "name",
    [b"format_version", b"recon_index.count", b"archive.anything", b"", b"x" * (MAX_KEY_SIZE + 1)],
)
def test_archive_s_own_names_and_bad_names_are_refused(store: Store, name: bytes) -> None:
    with pytest.raises(StoreError):
        store.transact(lambda txn: put_meta(txn, name, b"99"))
    # The reconcile index's own count is untouched.
    with store.read() as txn:
        assert ReconIndex().is_current(txn)


@pytest.mark.parametrize("name", ["p2p.wants", 7, None, bytearray(b"p2p.wants")])
def test_names_are_bytes(store: Store, name: object) -> None:
    with store.read() as txn, pytest.raises(StoreError, match="bytes"):
        get_meta(txn, name)  # type: ignore[arg-type]
