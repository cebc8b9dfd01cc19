"""Delta bundles between two hubs that only exchange sticks, and bundles split into parts.

Every hub here is a real LMDB store in a temporary folder; bundles are real files.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from craftnet.archive import codec, files, index
from craftnet.archive.car import write_header, write_section
from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.delta import (
    MIN_PART_SIZE,
    Manifest,
    plan_all,
    plan_delta,
    read_manifest,
    section_size,
    write_bundles,
)
from craftnet.archive.errors import BundleError
from craftnet.archive.have import build_summary, read_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.peer_state import PeerStates
from craftnet.archive.receive import ReceiveReport, receive_bundle
from craftnet.archive.store import Store
from craftnet.archive.verify import verify_store
from craftnet.identity.keys import PrivateKey

LISBON = PrivateKey.from_seed(b"L" * 32)  # a market-town makerspace
HIGHLANDS = PrivateKey.from_seed(b"H" * 32)  # a rural weaving cooperative
ARTISAN = PrivateKey.from_seed(b"A" * 32)
LICENCE = "CC-BY-SA-4.0"


def clock(start: int) -> HybridClock:
    ms = itertools.count(1_764_000_000_000 + start, 7)
    return HybridClock(lambda: next(ms))


def data(size: int, seed: int) -> bytes:
    return b"".join(
        blake3.blake3(f"{seed}:{i}".encode()).digest(length=4096) for i in range(size // 4096 + 1)
    )[:size]


def technique(store: Store, n: int, tick: HybridClock) -> Cid:
    body = {"title": f"Neo-Vernacular joint {n}", "steps": [{"text": "Cut", "media": []}],
            "licence": LICENCE}
    return index.publish(store, ARTISAN, "technique", body, clock=tick).cid


def design(store: Store, n: int, size: int, tick: HybridClock) -> Cid:
    node = files.add_file(store, io.BytesIO(data(size, n)), name=f"lamp-{n}.stl").cid
    body = {"title": f"Rustic Futurism lamp {n}", "files": [node], "licence": LICENCE}
    return index.publish(store, ARTISAN, "design", body, [node], clock=tick).cid


def record_keys(store: Store) -> set[bytes]:
    with store.read() as txn:
        return {key for key, _ in txn.iterate("rec_time")}


def block_sizes(store: Store) -> dict[bytes, int]:
    with store.read() as txn:
        return {key: len(value) for key, value in txn.iterate("blocks")}


def receive(store: Store, path: Path, home: Path) -> ReceiveReport:
    with path.open("rb") as stream:
        return receive_bundle(store, stream, home, now=clock(9).tick())


def export_for(store: Store, key: PrivateKey, peer: str, out: Path) -> int:
    """``craftnet export --for``: what ``peer`` lacks as far as we know, with our summary."""
    state = PeerStates(store).get(peer)
    assert state is not None
    with store.read() as txn:
        plan = plan_delta(txn, state.summary)
        mine = build_summary(txn, key, clock(5).tick())
        written = write_bundles(txn, plan, out, have=mine)
    return written[0].bytes


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[tuple[LmdbStore, LmdbStore]]:
    a = LmdbStore(tmp_path / "lisbon" / "store")
    b = LmdbStore(tmp_path / "highlands" / "store")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_two_hubs_converge_by_stick_in_one_round_trip_each_way(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = hubs
    tick = clock(0)
    for n in range(300):  # what both hubs already share
        technique(lisbon, n, tick)
    with lisbon.read() as txn:
        shared = write_bundles(txn, plan_all(txn), tmp_path / "shared.car")[0].path
    receive(highlands, shared, tmp_path / "highlands")
    # Then weeks apart: Lisbon publishes designs, the Highlands techniques and a document.
    new_at_lisbon = [design(lisbon, n, 20_000, tick) for n in range(30)]
    for n in range(300, 310):
        technique(highlands, n, tick)
    doc = Documents(highlands).create(HIGHLANDS, "technique",
                                      lambda b: b.set("title", "Ikat dyeing"))
    assert new_at_lisbon and doc

    # 1. The Highlands hub sends a have-file; Lisbon answers with a delta bundle.
    with highlands.read() as txn:
        have = build_summary(txn, HIGHLANDS, clock(1).tick())
    PeerStates(lisbon).record(read_summary(have.raw), "have-file", clock(2).tick())
    before = block_sizes(highlands)
    lacked = sum(section_size(size) for key, size in block_sizes(lisbon).items()
                 if key not in before)
    size = export_for(lisbon, LISBON, HIGHLANDS.did, tmp_path / "to-highlands.car")
    report = receive(highlands, tmp_path / "to-highlands.car", tmp_path / "highlands")
    assert report.new_records == 30 and report.still_missing == 0
    assert size <= 1.1 * lacked, (size, lacked)

    # 2. The Highlands hub answers from what Lisbon's bundle said Lisbon holds.
    before = block_sizes(lisbon)
    lacked = sum(section_size(s) for key, s in block_sizes(highlands).items() if key not in before)
    size = export_for(highlands, HIGHLANDS, LISBON.did, tmp_path / "to-lisbon.car")
    report = receive(lisbon, tmp_path / "to-lisbon.car", tmp_path / "lisbon")
    assert report.new_records == 11 and report.still_missing == 0
    assert size <= lacked + 16 * 1024  # a small difference: the summary is most of it

    assert record_keys(lisbon) == record_keys(highlands)
    assert verify_store(lisbon).ok and verify_store(highlands).ok
    assert Documents(lisbon).view(doc.cid)["fields"]["title"] == "Ikat dyeing"


def test_documents_travel_as_their_missing_operations_only(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = hubs
    docs = Documents(lisbon)
    doc = docs.create(LISBON, "technique", lambda b: b.set("title", "Loom warping"))
    for n in range(40):
        docs.edit(LISBON, doc.cid, lambda b, n=n: b.set("region", f"v{n}"))
    with lisbon.read() as txn:
        write_bundles(txn, plan_all(txn), tmp_path / "all.car")
    receive(highlands, tmp_path / "all.car", tmp_path / "h")
    with highlands.read() as txn:
        PeerStates(lisbon).record(build_summary(txn, HIGHLANDS, clock(3).tick()), "have-file",
                                  clock(4).tick())
    new_ops = [docs.edit(LISBON, doc.cid, lambda b, n=n: b.set("region", f"r{n}")).cid
               for n in range(3)]
    state = PeerStates(lisbon).get(HIGHLANDS.did)
    assert state is not None
    with lisbon.read() as txn:
        plan = plan_delta(txn, state.summary)
    assert [cid for cid, _ in plan.blocks] == new_ops  # not the 41 operations before them
    export_for(lisbon, LISBON, HIGHLANDS.did, tmp_path / "ops.car")
    receive(highlands, tmp_path / "ops.car", tmp_path / "h")
    assert Documents(highlands).view(doc.cid)["fields"]["region"] == "r2"


def test_a_stale_belief_is_caught_on_the_next_round_trip(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    """Lisbon believes the Highlands hold a record they lost: the bundle leaves it out,
    the Highlands see that, and their answer lets Lisbon's next bundle bring it."""
    lisbon, highlands = hubs
    tick = clock(0)
    kept = [technique(lisbon, n, tick) for n in range(20)]
    with lisbon.read() as txn:
        optimistic = build_summary(txn, HIGHLANDS, clock(1).tick())  # as if they held all
    PeerStates(lisbon).record(optimistic, "have-file", clock(2).tick())
    technique(lisbon, 99, tick)
    export_for(lisbon, LISBON, HIGHLANDS.did, tmp_path / "1.car")
    report = receive(highlands, tmp_path / "1.car", tmp_path / "h")
    assert report.new_records == 1 and report.still_missing == 20  # never silently incomplete
    export_for(highlands, HIGHLANDS, LISBON.did, tmp_path / "2.car")
    receive(lisbon, tmp_path / "2.car", tmp_path / "l")
    export_for(lisbon, LISBON, HIGHLANDS.did, tmp_path / "3.car")
    report = receive(highlands, tmp_path / "3.car", tmp_path / "h")
    assert report.new_records == 20 and report.still_missing == 0
    assert record_keys(lisbon) == record_keys(highlands) and kept


# ---------------------------------------------------------------------- parts


def visible_files_are_whole(store: Store) -> bool:
    """Every design record visible has its files whole (or not at all)."""
    with store.read() as txn:
        cids = [Cid.from_bytes(key[8:]) for key, _ in txn.iterate("rec_time")]
        records = [index.get_record(txn, cid) for cid in cids]
    for record in records:
        for node in record.body.get("files", []):
            with store.read() as txn:
                if not txn.has("blocks", node.bytes):
                    continue
            assert b"".join(files.iter_file(store, node)), node
    return verify_store(store).ok


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_parts_import_in_any_order_and_never_show_a_broken_record(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path, order: tuple[int, ...]
) -> None:
    lisbon, highlands = hubs
    tick = clock(0)
    big = design(lisbon, 1, 9 * 1024 * 1024, tick)  # larger than a part: runs over three
    small = [design(lisbon, n, 300_000, tick) for n in range(2, 6)]
    for n in range(20):
        technique(lisbon, n, tick)
    with lisbon.read() as txn:
        parts = write_bundles(txn, plan_all(txn), tmp_path / "stick.car", max_size=MIN_PART_SIZE)
    assert len(parts) == len(order)
    assert all(part.bytes <= MIN_PART_SIZE for part in parts)
    assert parts[0].path.name == "stick-1-of-4.car"
    for step, i in enumerate(order):
        report = receive(highlands, parts[i].path, tmp_path / "h")
        assert visible_files_are_whole(highlands)
        assert len(report.parts_seen) == step + 1
    assert report.held == 0
    assert record_keys(highlands) == record_keys(lisbon)
    with highlands.read() as txn:
        assert txn.count("bundle_held") == 0 and txn.count("bundle_sets") == 0
        node = index.get_record(txn, big).body["files"][0]
    assert b"".join(files.iter_file(highlands, node)) == data(9 * 1024 * 1024, 1)
    assert small


def test_a_part_imported_twice_changes_nothing(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = hubs
    design(lisbon, 1, 6 * 1024 * 1024, clock(0))
    with lisbon.read() as txn:
        parts = write_bundles(txn, plan_all(txn), tmp_path / "s.car", max_size=MIN_PART_SIZE)
    first = receive(highlands, parts[-1].path, tmp_path / "h")
    again = receive(highlands, parts[-1].path, tmp_path / "h")
    assert first.held == again.held > 0 and again.new_blocks == 0
    for part in parts[:-1]:
        receive(highlands, part.path, tmp_path / "h")
    assert record_keys(highlands) == record_keys(lisbon)


# ---------------------------------------------------------------------- hostile manifests


def manifest_value(**changes: object) -> bytes:
    value: dict[str, object] = {"type": "craftnet-bundle", "v": 1, "set": b"s" * 16,
                                "part": 1, "parts": 2}
    value.update(changes)
    return codec.encode({k: v for k, v in value.items() if v is not None})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "version 2 is not supported"),
        ({"set": b"short"}, "16 bytes"),
        ({"part": 3}, "part number"),
        ({"part": 0}, "part number"),
        ({"parts": 0}, "part count"),
        ({"parts": "two"}, "part count"),
        ({"have": "text"}, "bytes"),
        ({"pins": ["not a cid"]}, "pins"),
        ({"extra": 1}, "unexpected"),
        ({"set": None}, "missing"),
    ],
)
def test_hostile_manifests_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(BundleError, match=message):
        read_manifest(manifest_value(**changes))


def test_truncated_manifest_is_refused() -> None:
    with pytest.raises(BundleError, match="canonical"):
        read_manifest(manifest_value()[:-3])


def bundle_with_manifest(manifest: bytes, tmp_path: Path) -> Path:
    cid = Cid.of(manifest, DAG_CBOR)
    out = io.BytesIO()
    write_header(out, [cid])
    write_section(out, cid, manifest)
    path = tmp_path / "hostile.car"
    path.write_bytes(out.getvalue())
    return path


def test_a_bundle_with_a_bad_have_summary_adds_nothing(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    _, highlands = hubs
    path = bundle_with_manifest(manifest_value(parts=1, have=b"\xa0"), tmp_path)
    with pytest.raises(BundleError, match="have-summary"):
        receive(highlands, path, tmp_path / "h")
    assert PeerStates(highlands).all() == []
    assert not (tmp_path / "h" / "imports").exists() or not any(
        (tmp_path / "h" / "imports").iterdir()
    )


def test_a_manifest_with_a_signed_summary_records_the_sender(
    hubs: tuple[LmdbStore, LmdbStore], tmp_path: Path
) -> None:
    lisbon, highlands = hubs
    with lisbon.read() as txn:
        have = build_summary(txn, LISBON, 77)
    manifest = Manifest(b"x" * 16, 1, 1, have.raw)
    path = bundle_with_manifest(manifest.block()[1], tmp_path)
    report = receive(highlands, path, tmp_path / "h")
    assert report.sender is not None and report.still_missing == 0
    state = PeerStates(highlands).get(LISBON.did)
    assert state is not None and state.summary.at == 77 and state.via == "bundle"
