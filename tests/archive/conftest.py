"""Shared fixtures for archive tests: ``store`` runs a test against every Store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.store import Store


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store: once a MemoryStore, once an LmdbStore in a temporary folder."""
    if request.param == "memory":
        made: Store = MemoryStore()
    else:
        made = LmdbStore(tmp_path / "store")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def lmdb_store(tmp_path: Path) -> Iterator[LmdbStore]:
    """An empty LmdbStore in a temporary folder."""
    opened = LmdbStore(tmp_path / "store")
    try:
        yield opened
    finally:
        opened.close()
