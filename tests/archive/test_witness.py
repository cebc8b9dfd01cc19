"""Witnessed timestamps: Merkle batches, inclusion proofs, offline checks, hostile input."""

from __future__ import annotations

import itertools
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from craftnet.archive import codec, index
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.delta import add_witness_proofs, plan_all, plan_roots, write_bundles
from craftnet.archive.hlc import HybridClock
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.archive.receive import receive_bundle
from craftnet.archive.records import Record
from craftnet.archive.store import Store
from craftnet.archive.witness import (
    INDEX_DB,
    MAX_PATH,
    Proof,
    WitnessError,
    _levels,
    inclusion_path,
    leaf_bytes,
    make_batch,
    merkle_root,
    parse_leaves,
    proofs_for,
    read_proof,
    store_batch,
    store_proof,
    verify_path,
    verify_witnesses,
    witness_pending,
)
from craftnet.identity.keys import PrivateKey

HUB = PrivateKey.from_seed(b"w" * 32)  # a hub of the Global Micro-manufacturing Alliance
OTHER_HUB = PrivateKey.from_seed(b"v" * 32)
ARTISAN = PrivateKey.from_seed(b"a" * 32)
AT = 120_000_000_000_000_000


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162's Merkle Tree Hash, written as the RFC defines it (recursively)."""
    if len(leaves) == 1:
        return blake3.blake3(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return blake3.blake3(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162's PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def some_leaves(n: int) -> list[bytes]:
    return [leaf_bytes(AT + i, Cid.of(i.to_bytes(4, "big"), DAG_CBOR)) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_the_tree_and_every_path_are_rfc_9162s(n: int) -> None:
    leaves = some_leaves(n)
    levels = _levels(leaves)
    assert merkle_root(leaves) == mth(leaves)
    for m in range(n):
        path = inclusion_path(levels, m)
        assert path == rfc_path(m, leaves)
        assert verify_path(leaves[m], m, n, path, mth(leaves))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), m=st.integers(0, 69), flip=st.integers(0, 31))
def test_a_proof_for_another_leaf_index_or_root_fails(n: int, m: int, flip: int) -> None:
    m %= n
    leaves = some_leaves(n)
    root = merkle_root(leaves)
    path = inclusion_path(_levels(leaves), m)
    assert verify_path(leaves[m], m, n, path, root)
    assert not verify_path(leaves[(m + 1) % n], m, n, path, root) or n == 1
    # The leaf count is the batch's signed one; a path alone does not fix it.
    assert not verify_path(leaves[m], m, m, path, root)
    if path:
        bad = bytearray(path[0])
        bad[flip] ^= 1
        assert not verify_path(leaves[m], m, n, [bytes(bad), *path[1:]], root)
    assert not verify_path(leaves[m], n, n, path, root)
    assert not verify_path(leaves[m], m, n, [*path, bytes(32)], root)


def publish_many(store: Store, count: int) -> list[Cid]:
    ticks = itertools.count(1_764_000_000_000)
    clock = HybridClock(lambda: next(ticks))
    records = [
        Record.create(ARTISAN, "technique",
                      {"title": f"Rustic Futurism stool {n}", "licence": "CC-BY-4.0",
                       "steps": [{"text": "Turn the legs", "media": []}]}, clock=clock)
        for n in range(count)
    ]
    for start in range(0, count, 5000):
        index.put_records(store, records[start : start + 5000])
    return [r.cid for r in records]


def test_one_signature_covers_10000_records(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "store") as store:
        cids = publish_many(store, 10_000)
        made = witness_pending(store, HUB, AT)
        assert len(made) == 1 and made[0].body["count"] == 10_000  # one batch, one signature
        assert witness_pending(store, HUB, AT + 1) == []  # nothing left to witness
        for cid in cids[::997]:
            found = verify_witnesses(store, cid)
            assert [w.ok for w in found.witnesses] == [True]
            assert found.hubs == 1 and found.earliest == AT


def test_inclusion_proofs_verify_from_a_bundle_at_a_hub_that_never_met_the_witness(
    tmp_path: Path,
) -> None:
    with LmdbStore(tmp_path / "w" / "store") as witness_hub, LmdbStore(
        tmp_path / "far" / "store"
    ) as far, LmdbStore(tmp_path / "whole" / "store") as whole:
        cids = publish_many(witness_hub, 50)
        witness_pending(witness_hub, HUB, AT)
        with witness_hub.read() as txn:
            plan = plan_roots(txn, cids[:3])
            assert add_witness_proofs(txn, plan) == 3
            chosen = write_bundles(txn, plan, tmp_path / "chosen.car")[0]
            everything = write_bundles(txn, plan_all(txn), tmp_path / "all.car")[0]
        assert chosen.bytes < everything.bytes / 4  # proofs, not the 50 leaves
        for store, bundle, home in ((far, chosen.path, "far"), (whole, everything.path, "whole")):
            with bundle.open("rb") as stream:
                receive_bundle(store, stream, tmp_path / home, now=1)
            found = verify_witnesses(store, cids[1])
            assert found.hubs == 1 and found.valid[0].hub == HUB.did, found
        with far.read() as txn:
            assert txn.count("blocks") < 10  # three records, one batch: no proof blocks kept
            assert txn.count(INDEX_DB) == 3


def test_a_forged_batch_or_proof_is_not_a_witness(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "store") as store:
        cids = publish_many(store, 8)
        batch = make_batch(HUB, [(cid, AT) for cid in cids], AT)
        store.transact(lambda txn: store_batch(txn, batch, mine=False))
        levels = _levels(list(batch.leaves))
        i = [leaf[8:] for leaf in batch.leaves].index(cids[0].bytes)  # leaves sort by CID
        good = Proof(batch.record.cid, cids[0], AT, i, tuple(inclusion_path(levels, i)))
        assert proofs_for_each(store, cids[0]) == [good]
        earlier = Proof(batch.record.cid, cids[0], AT - 10**9, i, good.path)  # backdated
        other = Proof(batch.record.cid, cids[1], AT, i, good.path)
        assert not store.transact(lambda txn: store_proof(txn, earlier))
        assert not store.transact(lambda txn: store_proof(txn, other))


def proofs_for_each(store: Store, cid: Cid) -> list[Proof]:
    with store.read() as txn:
        return proofs_for(txn, cid)


def test_a_batch_signed_before_its_leaves_times_is_refused() -> None:
    with pytest.raises(WitnessError, match="before"):
        make_batch(HUB, [(Cid.of(b"x", DAG_CBOR), AT + 5)], AT)
    with pytest.raises(WitnessError, match=r"1\.\."):
        make_batch(HUB, [], AT)


# ---------------------------------------------------------------------- hostile input


def proof_value(**changes: object) -> bytes:
    value: dict[str, object] = {
        "type": "witness-proof", "v": 1, "batch": Cid.of(b"b", DAG_CBOR),
        "witnessed": Cid.of(b"r", DAG_CBOR), "at": AT, "index": 0, "path": [bytes(32)],
    }
    value.update(changes)
    return codec.encode({k: v for k, v in value.items() if v is not None})


def test_a_good_proof_block_reads() -> None:
    assert read_proof(proof_value()).at == AT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "version 2 is not supported"),
        ({"type": "witness"}, "not a witness proof"),
        ({"batch": "bafy"}, "links"),
        ({"at": -1}, "integers"),
        ({"index": 70_000}, "integers"),
        ({"path": [bytes(31)]}, "32-byte"),
        ({"path": [bytes(32)] * (MAX_PATH + 1)}, "at most"),
        ({"path": "none"}, "32-byte"),
        ({"extra": 1}, "fields"),
        ({"path": None}, "fields"),
    ],
)
def test_hostile_proof_blocks_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(WitnessError, match=message):
        read_proof(proof_value(**changes))


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_proof_blocks_are_refused(cut: int) -> None:
    with pytest.raises(WitnessError):
        read_proof(proof_value()[:-cut])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_proof_blocks_raise_only_witness_errors(raw: bytes) -> None:
    with pytest.raises(WitnessError):
        read_proof(raw)


def test_hostile_leaf_blocks_are_refused() -> None:
    leaves = some_leaves(3)
    assert parse_leaves(b"".join(leaves), 3) == leaves
    with pytest.raises(WitnessError, match="not 3 leaves"):
        parse_leaves(b"".join(leaves)[:-1], 3)
    raw_cid = leaf_bytes(AT, Cid.of(b"chunk", RAW))
    with pytest.raises(WitnessError, match="not a record"):
        parse_leaves(raw_cid, 1)


def test_a_batch_with_a_broken_signature_does_not_count(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "store") as store:
        cids = publish_many(store, 2)
        batch = make_batch(OTHER_HUB, [(cid, AT) for cid in cids], AT)
        value = codec.decode(batch.record.block)
        value["sig"] = bytes(64)
        forged = Record.from_block(codec.encode(value))
        store.transact(lambda txn: store_batch(
            txn, type(batch)(forged, batch.leaf_blocks, batch.leaves), mine=False))
        found = verify_witnesses(store, cids[0])
        assert found.witnesses and not found.valid
        assert "does not verify" in found.witnesses[0].problems[0]
