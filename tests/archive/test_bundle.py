"""CAR bundles: export what a hub holds, import it elsewhere, refuse anything hostile.

Every refused import must leave the store exactly as it was: the same number of
entries in every database, and a store that still verifies.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from craftnet.archive import blocks, codec, files, index
from craftnet.archive import bundle as bundle_module
from craftnet.archive.bundle import ImportReport, check_block, export_car, import_car
from craftnet.archive.car import (
    Section,
    decode_varint,
    encode_varint,
    write_header,
    write_section,
)
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.errors import BundleError, NotFound
from craftnet.archive.gc import collect_garbage
from craftnet.archive.hlc import HybridClock
from craftnet.archive.key_facts import key_history
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.recon_index import ReconIndex
from craftnet.archive.records import Record
from craftnet.archive.store import DATABASES, Store
from craftnet.archive.verify import verify_store
from craftnet.errors import CraftnetError
from craftnet.identity.keys import PrivateKey

ARTISAN = PrivateKey.from_seed(bytes(range(32)))
LICENCE = "CC-BY-SA-4.0"


def fixed_clock() -> HybridClock:
    ms = iter(range(1_764_000_000_000, 1_764_000_000_000 + 10_000_000, 1000))
    return HybridClock(lambda: next(ms))


def stl_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that chunk into several pieces."""
    out = bytearray()
    counter = seed
    while len(out) < size:
        out += blake3.blake3(counter.to_bytes(8, "big")).digest(length=4096)
        counter += 1
    return bytes(out[:size])


class Archive:
    """A hub's archive with a technique, a design with a file, and a derived design."""

    def __init__(self, store: Store) -> None:
        self.store = store
        clock = fixed_clock()
        self.file_bytes = stl_bytes(600_000)
        self.file_cid = files.add_file(store, io.BytesIO(self.file_bytes), name="lamp.stl").cid
        self.technique = index.publish(
            store,
            ARTISAN,
            "technique",
            {"title": "Steam-bent oak", "steps": [{"text": "Steam for an hour", "media": []}],
             "licence": LICENCE},
            clock=clock,
        )
        self.parent = index.publish(
            store,
            ARTISAN,
            "design",
            {"title": "Rustic Futurism lamp", "files": [self.file_cid], "licence": LICENCE},
            [self.file_cid],
            clock=clock,
        )
        self.child = index.publish(
            store,
            ARTISAN,
            "design",
            {"title": "Neo-Vernacular lamp", "derived_from": [self.parent.cid],
             "licence": LICENCE},
            [self.parent.cid],
            clock=clock,
        )


def counts(store: Store) -> dict[str, int]:
    with store.read() as txn:
        return {db: txn.count(db) for db in DATABASES}


def snapshot(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    with store.read() as txn:
        return {db: list(txn.iterate(db)) for db in DATABASES}


def assert_verifies(store: Store) -> None:
    report = verify_store(store)
    assert not report.problems, report.problems


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Archive]:
    store = LmdbStore(tmp_path / "source")
    try:
        yield Archive(store)
    finally:
        store.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[LmdbStore]:
    store = LmdbStore(tmp_path / "target")
    try:
        yield store
    finally:
        store.close()


def export_bytes(store: Store, roots: list[Cid] | None = None) -> bytes:
    out = io.BytesIO()
    export_car(store, out, roots)
    return out.getvalue()


def do_import(store: Store, raw: bytes, tmp_path: Path | None = None) -> ImportReport:
    return import_car(store, io.BytesIO(raw), spill_dir=tmp_path)


# --- round trips ----------------------------------------------------------------------


def test_whole_archive_round_trip(source: Archive, target: LmdbStore, tmp_path: Path) -> None:
    raw = export_bytes(source.store)
    report = do_import(target, raw, tmp_path)
    assert report.records == 3 and report.new_records == 3
    assert snapshot(target)["records"] == snapshot(source.store)["records"]
    assert snapshot(target)["blocks"] == snapshot(source.store)["blocks"]
    with target.read() as txn:
        assert index.get_record(txn, source.child.cid) == source.child
    assert b"".join(files.iter_file(target, source.file_cid)) == source.file_bytes
    assert counts(target)["staging"] == 0  # the import's staging entries are gone
    with target.read() as txn:
        assert ReconIndex().is_current(txn)  # reconciliation sees the new records at once
    with target.read() as txn:
        assert blocks.get_pin(txn, source.file_cid) is not None  # the file survives gc
    assert_verifies(target)


class _Unseekable(io.RawIOBase):
    """A bundle as a pipe gives it: read once, no seeking."""

    def __init__(self, raw: bytes) -> None:
        self._inner = io.BytesIO(raw)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._inner.readinto(buffer)


@pytest.mark.parametrize("piped", [False, True], ids=["file", "pipe"])
@pytest.mark.parametrize("keep", [0, 1 << 24], ids=["records-read-back", "records-kept"])
def test_every_staging_path_imports_the_same(
    source: Archive,
    target: LmdbStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    piped: bool,
    keep: int,
) -> None:
    # A file is staged in place, a pipe in memory and then a spill file (made tiny here so
    # both are used); records are kept parsed or read back at commit.
    monkeypatch.setattr(bundle_module, "KEEP_RECORDS_BYTES", keep)
    monkeypatch.setattr(bundle_module, "SPILL_IN_MEMORY", 4096)
    raw = export_bytes(source.store)
    stream: Any = _Unseekable(raw) if piped else io.BytesIO(raw)
    report = import_car(target, stream, spill_dir=tmp_path)
    assert report.new_records == 3
    assert snapshot(target)["records"] == snapshot(source.store)["records"]
    assert snapshot(target)["blocks"] == snapshot(source.store)["blocks"]
    assert b"".join(files.iter_file(target, source.file_cid)) == source.file_bytes
    assert_verifies(target)


def test_export_of_one_design_carries_its_ancestry_and_files(
    source: Archive, target: LmdbStore
) -> None:
    raw = export_bytes(source.store, [source.child.cid])
    report = do_import(target, raw)
    assert report.roots == (source.child.cid,)
    with target.read() as txn:
        assert index.has_record(txn, source.child.cid)
        assert index.has_record(txn, source.parent.cid)  # the design it derives from
        assert not index.has_record(txn, source.technique.cid)  # not linked: not carried
    assert b"".join(files.iter_file(target, source.file_cid)) == source.file_bytes
    assert_verifies(target)


def test_importing_twice_changes_nothing(source: Archive, target: LmdbStore) -> None:
    raw = export_bytes(source.store)
    do_import(target, raw)
    before = snapshot(target)
    again = do_import(target, raw)
    assert again.new_records == 0 and again.new_blocks == 0
    assert snapshot(target) == before


def test_documents_travel_with_their_merged_state(source: Archive, target: LmdbStore) -> None:
    docs = Documents(source.store)
    genesis = docs.create(ARTISAN, "technique", lambda b: b.set("title", "Loom weaving"))
    docs.edit(ARTISAN, genesis.cid, lambda b: b.set("title", "Loom weaving for beginners"))
    do_import(target, export_bytes(source.store))
    assert Documents(target).view(genesis.cid) == docs.view(genesis.cid)
    assert Documents(target).heads(genesis.cid) == docs.heads(genesis.cid)
    assert_verifies(target)


def test_key_history_of_the_authors_travels_along(target: LmdbStore) -> None:
    source = MemoryStore()
    clock = fixed_clock()
    successor = PrivateKey.from_seed(b"\x02" * 32)
    before = index.publish(
        source, ARTISAN, "design", {"title": "Loom, v1", "licence": LICENCE}, clock=clock
    )
    handover = index.publish(
        source, ARTISAN, "key-succession", {"new": successor.did, "reason": "new laptop"},
        clock=clock,
    )
    after = index.publish(
        source, successor, "design", {"title": "Loom, v2", "licence": LICENCE}, clock=clock
    )
    for exported in (before, after):
        fresh = MemoryStore()
        do_import(fresh, export_bytes(source, [exported.cid]))
        with fresh.read() as txn:
            assert index.has_record(txn, handover.cid)
            history = key_history(txn)
        assert history.valid_at(ARTISAN.did, before.ts)
        assert not history.valid_at(ARTISAN.did, after.ts)  # the old key was handed over
        assert history.valid_at(successor.did, after.ts)


def test_export_names_missing_root(source: Archive) -> None:
    with pytest.raises(NotFound, match="not in this archive"):
        export_bytes(source.store, [Cid.of(b"never stored", DAG_CBOR)])


def test_export_of_an_empty_archive_is_refused() -> None:
    with pytest.raises(BundleError, match="empty"):
        export_bytes(MemoryStore())


def test_a_linked_block_this_hub_lacks_is_reported_not_fatal(target: LmdbStore) -> None:
    absent = Cid.of(b"a parent design held by another hub", DAG_CBOR)
    record = index.publish(
        target, ARTISAN, "design",
        {"title": "Loom frame", "derived_from": [absent], "licence": LICENCE}, [absent],
    )
    out = io.BytesIO()
    report = export_car(target, out, [record.cid])
    assert report.missing == (absent,)
    fresh = MemoryStore()
    assert do_import(fresh, out.getvalue()).new_records == 1


def test_output_is_readable_with_plain_cbor2_and_blake3(source: Archive) -> None:
    raw = export_bytes(source.store, [source.parent.cid])
    buf = io.BytesIO(raw)

    def uvarint() -> int | None:
        shift = value = 0
        while byte := buf.read(1):
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7
        return None

    header_len = uvarint()
    assert header_len is not None
    header = cbor2.loads(buf.read(header_len))
    assert header["version"] == 1
    seen_codecs = set()
    while (length := uvarint()) is not None:
        section = buf.read(length)
        assert section[0] == 1 and section[2] == 0x1E and section[3] == 32  # CIDv1, blake3-256
        cid, data = section[:36], section[36:]
        assert blake3.blake3(data).digest() == cid[4:]
        seen_codecs.add(cid[1])
        if cid[1] == 0x71:
            cbor2.loads(data)  # plain cbor2 decodes every dag-cbor block
    assert seen_codecs == {0x71, 0x55}


def test_an_import_cut_before_its_final_transaction_leaves_only_collectable_blocks(
    source: Archive, target: LmdbStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = export_bytes(source.store)

    def power_cut(*args: object) -> bool:
        raise OSError("power cut")

    monkeypatch.setattr(index, "put_many", power_cut)
    with pytest.raises(OSError, match="power cut"):
        do_import(target, raw)
    monkeypatch.undo()
    after = counts(target)
    assert after["records"] == 0 and after["pins"] == 0
    assert after["blocks"] > 0 and after["staging"] > 0  # chunks, staged
    assert_verifies(target)
    # A collection while the stage is fresh keeps the chunks (the import may resume)...
    assert collect_garbage(target).removed == 0
    # ...and once the stage is stale, removes every one of them.
    day_later = int(time.time()) + 2 * 24 * 3600
    assert collect_garbage(target, now=day_later).removed == after["blocks"]
    assert counts(target) == {db: 0 for db in DATABASES} | {"meta": after["meta"]}
    # Importing again completes the job.
    assert do_import(target, raw).new_records == 3
    assert_verifies(target)


# --- hostile bundles -------------------------------------------------------------------


@pytest.fixture
def good_bundle(source: Archive) -> bytes:
    return export_bytes(source.store)


def section_spans(raw: bytes) -> list[tuple[int, int, int]]:
    """(start of section, start of data, end) for every section."""
    hlen, pos = decode_varint(raw)
    offset = pos + hlen
    spans = []
    while offset < len(raw):
        slen, spos = decode_varint(raw, offset)
        spans.append((offset, spos + 36, spos + slen))
        offset = spos + slen
    return spans


def assert_refused(store: Store, raw: bytes, match: str | None) -> None:
    before = snapshot(store)
    with pytest.raises(BundleError, match=match):
        do_import(store, raw)
    assert snapshot(store) == before
    assert_verifies(store)


@pytest.fixture
def busy_target(target: LmdbStore) -> LmdbStore:
    """A target that already holds something, so 'unchanged' means more than 'empty'."""
    index.publish(
        target, ARTISAN, "collection", {"title": "Maker's Fair 2026 showcase", "items": []}
    )
    return target


def test_flipped_byte_in_a_block(good_bundle: bytes, busy_target: LmdbStore) -> None:
    _, data_start, end = section_spans(good_bundle)[-1]
    raw = bytearray(good_bundle)
    raw[(data_start + end) // 2] ^= 0x40
    index_of_last = len(section_spans(good_bundle)) - 1
    assert_refused(busy_target, bytes(raw), rf"block #{index_of_last} \(b[a-z2-7]+\).*hash")


def test_truncated_at_many_offsets(good_bundle: bytes, busy_target: LmdbStore) -> None:
    boundaries = {end for _, _, end in section_spans(good_bundle)}
    step = max(1, len(good_bundle) // 40)
    for cut in [0, 1, 5, *range(7, len(good_bundle), step), len(good_bundle) - 1]:
        if cut in boundaries:
            continue
        assert_refused(busy_target, good_bundle[:cut], None)


def test_truncated_at_a_section_boundary_loses_a_root(source: Archive, target: LmdbStore) -> None:
    raw = export_bytes(source.store, [source.child.cid])
    spans = section_spans(raw)
    # The root is the first block; keep it and drop what follows. The bundle is then a
    # valid CAR that lacks nothing the header names, so it imports what it has.
    assert do_import(target, raw[: spans[0][2]]).records == 1
    # Cutting before the root leaves a header naming a root that is not there.
    fresh = MemoryStore()
    assert_refused(fresh, raw[: spans[0][0]], "names root .* does not contain it")


def test_a_file_whose_chunks_did_not_arrive_is_refused(
    source: Archive, busy_target: LmdbStore
) -> None:
    raw = export_bytes(source.store, [source.parent.cid])
    spans = section_spans(raw)
    assert len(spans) > 3  # the record, the file node, several chunks
    # Cut exactly after the second chunk: a valid CAR, but the file is incomplete.
    assert_refused(busy_target, raw[: spans[3][2]], r"block #1 .*neither in the bundle")


def test_wrong_cid(good_bundle: bytes, busy_target: LmdbStore) -> None:
    _, data_start, _ = section_spans(good_bundle)[1]
    other = Cid.of(b"Adopt-a-Workshop", RAW).bytes
    raw = good_bundle[: data_start - 36] + other + good_bundle[data_start:]
    assert_refused(busy_target, raw, r"block #1 .*do not hash")


def bundle_of(blocks: list[tuple[Cid, bytes]], roots: list[Cid] | None = None) -> bytes:
    out = io.BytesIO()
    write_header(out, roots or [blocks[0][0]])
    for cid, data in blocks:
        write_section(out, cid, data)
    return out.getvalue()


def test_bad_signature(busy_target: LmdbStore) -> None:
    good = Record.create(
        ARTISAN, "technique",
        {"title": "Loom weaving", "steps": [{"text": "Warp", "media": []}], "licence": LICENCE},
    )
    value = codec.decode(good.block)
    value["sig"] = bytes([value["sig"][0] ^ 1]) + value["sig"][1:]
    forged = codec.encode(value)
    cid = Cid.of(forged, DAG_CBOR)
    assert_refused(busy_target, bundle_of([(cid, forged)]), rf"block #0 \({cid}\).*signature")


def _forged(record: Record) -> tuple[Cid, bytes]:
    value = codec.decode(record.block)
    value["sig"] = bytes([value["sig"][0] ^ 1]) + value["sig"][1:]
    forged = codec.encode(value)
    return Cid.of(forged, DAG_CBOR), forged


def _techniques(count: int) -> list[tuple[Cid, bytes]]:
    made = [
        Record.create(
            ARTISAN, "technique",
            {"title": f"Indigo dye bath {i}", "steps": [{"text": "Steep", "media": []}],
             "licence": LICENCE},
        )
        for i in range(count)
    ]
    return [(record.cid, record.block) for record in made]


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_signatures_checked_in_batches_name_the_first_bad_block(
    busy_target: LmdbStore, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # Signatures are checked a batch at a time; whatever the batch, the first bad
    # block of the bundle is the one named, even when a later one is malformed too.
    monkeypatch.setattr(bundle_module, "SIGNATURE_BATCH", batch)
    sections = _techniques(7)
    bad_cid, bad_block = _forged(Record.from_block(sections[4][1]))
    sections[4] = (bad_cid, bad_block)
    malformed = b"\xa2" + cbor2.dumps("zz") + b"\x01" + cbor2.dumps("aa") + b"\x02"
    sections.append((Cid.of(malformed, DAG_CBOR), malformed))
    assert_refused(busy_target, bundle_of(sections), rf"block #4 \({bad_cid}\).*signature")


def test_a_bad_signature_is_named_before_the_schema_of_its_record(
    busy_target: LmdbStore,
) -> None:
    unlicensed = Record.create(ARTISAN, "design", {"title": "Unlicensed chair"})
    cid, forged = _forged(unlicensed)
    assert_refused(busy_target, bundle_of([(cid, forged)]), r"block #0 .*signature")


def test_malformed_document_operation(busy_target: LmdbStore) -> None:
    bad = Record.create(ARTISAN, "doc-op", {"doc": "not a CID", "changes": []})
    assert_refused(busy_target, bundle_of([(bad.cid, bad.block)]), r"block #0 .*operation")


def test_schema_violation(busy_target: LmdbStore) -> None:
    # Signed correctly, but a design without a licence breaks the design schema.
    bad = Record.create(ARTISAN, "design", {"title": "Unlicensed chair"})
    assert_refused(busy_target, bundle_of([(bad.cid, bad.block)]), r"block #0 .*licence")


def test_non_canonical_cbor_block(busy_target: LmdbStore) -> None:
    # Keys out of canonical order: decodes with any CBOR library, but is not DAG-CBOR.
    block = b"\xa2" + cbor2.dumps("zz") + b"\x01" + cbor2.dumps("aa") + b"\x02"
    cid = Cid.of(block, DAG_CBOR)
    assert_refused(busy_target, bundle_of([(cid, block)]), rf"block #0 \({cid}\).*canonical")


def test_deep_nesting(busy_target: LmdbStore) -> None:
    block = b"\x81" * 5000 + b"\x00"
    cid = Cid.of(block, DAG_CBOR)
    assert_refused(busy_target, bundle_of([(cid, block)]), r"block #0 .*(deep|depth)")


def test_huge_declared_length(good_bundle: bytes, busy_target: LmdbStore) -> None:
    start = section_spans(good_bundle)[0][0]
    raw = good_bundle[:start] + encode_varint(2**60) + good_bundle[start + 3 :]
    assert_refused(busy_target, raw, r"block #0 at byte \d+: section declares")


def test_wrong_header_version(good_bundle: bytes, busy_target: LmdbStore) -> None:
    hlen, pos = decode_varint(good_bundle)
    header = codec.decode(good_bundle[pos : pos + hlen])
    header["version"] = 2
    new = codec.encode(header)
    assert_refused(
        busy_target, encode_varint(len(new)) + new + good_bundle[pos + hlen :], "version 2"
    )


def test_empty_file(busy_target: LmdbStore) -> None:
    assert_refused(busy_target, b"", "empty")


def test_bad_block_after_good_ones_leaves_nothing(
    good_bundle: bytes, busy_target: LmdbStore
) -> None:
    # All good sections first, then one bad one: nothing of the good ones may stay.
    junk = b"Human Treasures"
    raw = good_bundle + encode_varint(36 + len(junk)) + Cid.of(b"x", RAW).bytes + junk
    n = len(section_spans(good_bundle))
    assert_refused(busy_target, raw, rf"block #{n} ")


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_flips_are_refused_or_harmless(
    good_bundle: bytes, busy_target: LmdbStore, data: st.DataObject
) -> None:
    raw = bytearray(good_bundle)
    at = data.draw(st.integers(0, len(raw) - 1), label="offset")
    raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    before = snapshot(busy_target)
    try:
        do_import(busy_target, bytes(raw))
    except BundleError:
        assert snapshot(busy_target) == before
    assert_verifies(busy_target)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_truncations_are_refused_or_complete(
    good_bundle: bytes, busy_target: LmdbStore, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(good_bundle) - 1), label="cut")
    before = counts(busy_target)
    try:
        do_import(busy_target, good_bundle[:cut])
    except BundleError:
        assert counts(busy_target) == before
    assert_verifies(busy_target)


_CIDS = st.sampled_from([Cid.of(b"chunk", RAW), Cid.of(b"node", DAG_CBOR)])
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.text(max_size=8),
    st.binary(max_size=40), _CIDS,
)
_KEYS = st.sampled_from(
    ["cid", "size", "type", "v", "chunks", "doc", "changes", "kind", "acl", "media_type",
     "blake3", "name", "title", "licence", "steps", "text", "media"]
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)
    ),
    max_leaves=30,
)


@given(
    st.sampled_from(["file", "file-part", "doc", "doc-op", "design", "technique", "x-custom"]),
    _VALUES,
    st.booleans(),
)
def test_checking_any_block_raises_only_typed_errors(
    kind: str, value: object, signed: bool
) -> None:
    """Whatever a hostile bundle holds, a block check answers with a CraftnetError or passes."""
    try:
        if signed:
            body = value if isinstance(value, dict) else {"x": value}
            record = Record.create(ARTISAN, kind, body)
            cid, data = record.cid, record.block
        else:
            data = codec.encode({**(value if isinstance(value, dict) else {"chunks": value}),
                                 "type": kind})
            cid = Cid.of(data, DAG_CBOR)
    except CraftnetError:
        return  # not even encodable: no bundle can hold it
    with contextlib.suppress(CraftnetError):
        check_block(Section(0, 0, cid, data))


def test_a_bundle_of_records_with_huge_authors_is_refused_before_base58(
    busy_target: LmdbStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 262 KB bundle like this one cost 88 s of CPU when each author was base58-decoded.
    import base58

    def refuse(*_: object) -> bytes:
        raise AssertionError("base58 decoding was reached")

    good = Record.create(ARTISAN, "collection", {"title": "Maker's Fair", "items": []})
    value = {**codec.decode(good.block), "author": "did:key:z" + "6" * 250_000}
    block = codec.encode(value)
    cid = Cid.of(block, DAG_CBOR)
    monkeypatch.setattr(base58, "b58decode", refuse)
    assert_refused(
        busy_target, bundle_of([(cid, block)]), r"block #0 .*56 characters, got 250009"
    )
