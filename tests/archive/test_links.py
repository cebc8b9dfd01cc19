"""Links checked before publishing: a design's files are files, a collection's items exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from craftnet.archive import files, index
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import WrongLink
from craftnet.archive.links import check_links, kind_of, link_problems
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey

ARTISAN = PrivateKey.from_seed(b"makers-fair-hub-artisan-00000001")
ABSENT = Cid.of(b"a design file no hub has", DAG_CBOR)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LmdbStore]:
    opened = LmdbStore(tmp_path / "store")
    yield opened
    opened.close()


def technique(store: LmdbStore) -> Cid:
    body = {"title": "Steam-bending oak", "steps": [{"text": "Steam", "media": []}],
            "licence": "CC-BY-4.0"}
    return index.publish(store, ARTISAN, "technique", body).cid


def lamp_file(store: LmdbStore, tmp_path: Path) -> Cid:
    path = tmp_path / "lamp.stl"
    path.write_bytes(b"solid Rustic Futurism pendant lamp\n" * 100)
    return files.add_path(store, path).cid


def test_kinds(store: LmdbStore, tmp_path: Path) -> None:
    record, file = technique(store), lamp_file(store, tmp_path)
    with store.read() as txn:
        assert kind_of(txn, record) == "technique"
        assert kind_of(txn, file) == "file"
        assert kind_of(txn, ABSENT) is None
        chunk = next(c for c in (Cid.from_bytes(k) for k, _ in txn.iterate("blocks"))
                     if c.codec == RAW)
        assert kind_of(txn, chunk) == "block"


def test_a_technique_record_given_as_a_design_file_is_refused(
    store: LmdbStore, tmp_path: Path
) -> None:
    record = technique(store)
    body = {"title": "Lamp", "files": [lamp_file(store, tmp_path), record]}
    with store.read() as txn, pytest.raises(WrongLink) as info:
        check_links(txn, "design", body)
    assert str(info.value) == (
        f"files: {record} is a technique record, not a file (from 'craftnet add')"
    )


def test_a_collection_item_this_hub_lacks_is_refused(store: LmdbStore) -> None:
    body = {"title": "Maker's Fair 2026", "items": [technique(store), ABSENT]}
    with store.read() as txn, pytest.raises(WrongLink, match=f"items: {ABSENT} is not in"):
        check_links(txn, "collection", body)


def test_a_parent_design_held_elsewhere_is_only_a_warning(store: LmdbStore) -> None:
    with store.read() as txn:
        problems = check_links(txn, "design", {"title": "Remix", "derived_from": [ABSENT]})
    assert [(p.field, p.severity) for p in problems] == [("derived_from", "warning")]


def test_a_parent_that_is_not_a_design_is_refused(store: LmdbStore) -> None:
    record = technique(store)
    with store.read() as txn:
        problems = link_problems(txn, "design", {"derived_from": [record]})
    assert [p.severity for p in problems] == ["error"]
    assert "is a technique record, not a design record" in problems[0].message


def test_technique_media_must_be_files(store: LmdbStore, tmp_path: Path) -> None:
    good = {"steps": [{"text": "Bend", "media": [lamp_file(store, tmp_path)]}]}
    bad = {"steps": [{"text": "Bend", "media": [technique(store)]}]}
    with store.read() as txn:
        assert link_problems(txn, "technique", good) == []
        assert [p.field for p in link_problems(txn, "technique", bad)] == ["steps"]
