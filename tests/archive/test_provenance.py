"""Provenance graphs: ancestors, descendants, attestations and licence findings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive.cid import DAG_CBOR, Cid
from craftnet.archive.errors import NotFound
from craftnet.archive.hlc import pack
from craftnet.archive.index import ingest_records
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.provenance import provenance
from craftnet.archive.records import Record
from craftnet.archive.schemas import build
from craftnet.archive.store import Store
from craftnet.identity.keys import PrivateKey

POTTER = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
WEAVER = PrivateKey.from_seed(b"intergenerational-making-coop-02")
ELDER = PrivateKey.from_seed(b"living-heritage-program-elder-01")
T0 = pack(2_000_000_000_000)
MISSING = Cid.of(b"a design held only by a hub that is offline", DAG_CBOR)


def design(
    key: PrivateKey, title: str, licence: str, ts: int, parents: tuple[Cid, ...] = ()
) -> Record:
    built = build("design", title=title, licence=licence, derived_from=list(parents))
    return Record.create(key, "design", built.body, built.links, ts=ts)


@dataclass
class Lineage:
    store: Store
    stool: Record  # grandparent
    wide: Record  # parent
    joint: Record  # the root of the queries
    rocker: Record  # child
    rocker_kit: Record  # grandchild
    treasure: Record  # attestation about POTTER
    made: Record  # attestation about the joint


@pytest.fixture
def lineage(store: Store) -> Lineage:
    """Neo-Vernacular stool -> wide seat -> stool joint (+ a missing parent) -> rocker -> kit."""
    stool = design(POTTER, "Neo-Vernacular stool", "CC-BY-SA-4.0", T0)
    wide = design(WEAVER, "Stool, wide seat", "CC-BY-SA-4.0", T0 + 1, (stool.cid,))
    joint = design(POTTER, "Neo-Vernacular stool joint", "CC-BY-4.0", T0 + 2, (wide.cid, MISSING))
    rocker = design(WEAVER, "Rocking stool", "CC-BY-NC-4.0", T0 + 3, (joint.cid,))
    kit = design(WEAVER, "Rocking stool flat-pack kit", "CC-BY-NC-4.0", T0 + 4, (rocker.cid,))
    treasure = Record.create(
        ELDER,
        "attestation",
        {"subject": POTTER.did, "kind": "living-heritage", "note": "Human Treasure, 2034"},
        ts=T0 + 5,
    )
    made = Record.create(
        WEAVER,
        "attestation",
        {"subject": WEAVER.did, "kind": "fabricated", "design": joint.cid},
        [joint.cid],
        ts=T0 + 6,
    )
    records = [stool, wide, joint, rocker, kit, treasure, made]
    assert ingest_records(store, [r.block for r in records]).ok
    return Lineage(store, stool, wide, joint, rocker, kit, treasure, made)


def test_ancestors_descendants_and_missing(lineage: Lineage) -> None:
    with lineage.store.read() as txn:
        graph = provenance(txn, lineage.joint.cid)
    nodes = graph.nodes
    assert nodes[lineage.joint.cid].role == "root"
    assert {cid for cid, n in nodes.items() if n.role == "ancestor"} == {
        lineage.wide.cid,
        lineage.stool.cid,
        MISSING,
    }
    assert {cid for cid, n in nodes.items() if n.role == "descendant"} == {
        lineage.rocker.cid,
        lineage.rocker_kit.cid,
    }
    assert nodes[lineage.stool.cid].depth == 2
    assert nodes[lineage.rocker_kit.cid].depth == 2
    assert graph.parents(lineage.joint.cid) == [lineage.wide.cid, MISSING]
    assert graph.children(lineage.joint.cid) == [lineage.rocker.cid]
    assert graph.missing() == [MISSING]
    assert nodes[MISSING].status == "missing" and nodes[MISSING].title is None
    assert nodes[lineage.wide.cid].title == "Stool, wide seat"
    assert nodes[lineage.wide.cid].author == WEAVER.did
    assert nodes[lineage.wide.cid].licence == "CC-BY-SA-4.0"
    assert not graph.truncated
    assert len(graph.edges) == 5


def test_licence_findings_per_edge(lineage: Lineage) -> None:
    with lineage.store.read() as txn:
        graph = provenance(txn, lineage.joint.cid)
    found = {(w.child, w.parent, w.code) for w in graph.warnings}
    assert found == {
        (lineage.joint.cid, lineage.wide.cid, "share-alike"),  # CC-BY-4.0 from BY-SA
        (lineage.joint.cid, MISSING, "parent-missing"),
        (lineage.rocker_kit.cid, lineage.rocker.cid, "non-commercial"),
    }


def test_attestations_about_the_author_and_the_design(lineage: Lineage) -> None:
    with lineage.store.read() as txn:
        graph = provenance(txn, lineage.joint.cid)
    root = graph.nodes[lineage.joint.cid]
    assert [(a.cid, a.about, a.kind, a.attester) for a in root.attestations] == [
        (lineage.treasure.cid, "author", "living-heritage", ELDER.did),
        (lineage.made.cid, "record", "fabricated", WEAVER.did),
    ]
    assert root.attestations[0].note == "Human Treasure, 2034"
    # The stool is POTTER's too, so it shows the Human Treasure attestation, not the fabrication.
    assert [a.cid for a in graph.nodes[lineage.stool.cid].attestations] == [lineage.treasure.cid]
    assert graph.nodes[lineage.wide.cid].attestations == ()
    with lineage.store.read() as txn:
        bare = provenance(txn, lineage.joint.cid, attestations=False)
    assert bare.nodes[lineage.joint.cid].attestations == ()


def test_depth_and_size_limits(lineage: Lineage) -> None:
    with lineage.store.read() as txn:
        shallow = provenance(txn, lineage.joint.cid, max_depth=1)
        small = provenance(txn, lineage.joint.cid, max_nodes=2)
        only_up = provenance(txn, lineage.joint.cid, descendants=False)
        only_down = provenance(txn, lineage.joint.cid, ancestors=False)
        alone = provenance(txn, lineage.joint.cid, max_depth=0)
    assert shallow.truncated
    assert set(shallow.nodes) == {
        lineage.joint.cid,
        lineage.wide.cid,
        MISSING,
        lineage.rocker.cid,
    }
    assert small.truncated and len(small.nodes) == 2
    assert {n.role for n in only_up.nodes.values()} == {"root", "ancestor"}
    assert {n.role for n in only_down.nodes.values()} == {"root", "descendant"}
    assert list(alone.nodes) == [lineage.joint.cid] and alone.truncated


def test_diamonds_give_one_node_and_distinct_edges(store: Store) -> None:
    top = design(POTTER, "Loom frame", "MIT", T0)
    left = design(POTTER, "Loom frame, left beam", "MIT", T0 + 1, (top.cid,))
    right = design(WEAVER, "Loom frame, right beam", "MIT", T0 + 2, (top.cid,))
    bottom = design(WEAVER, "Loom frame, both beams", "MIT", T0 + 3, (left.cid, right.cid))
    ingest_records(store, [r.block for r in (top, left, right, bottom)])
    with store.read() as txn:
        up = provenance(txn, bottom.cid)
        down = provenance(txn, top.cid)
    assert len(up.nodes) == 4 and len(up.edges) == 4
    assert len(down.nodes) == 4 and len(down.edges) == 4
    assert up.warnings == [] and down.warnings == []


def test_a_parent_that_is_a_block_but_not_a_record(store: Store) -> None:
    chunk = b"STL bytes, not a record"
    chunk_cid = Cid.of(chunk)
    child = design(POTTER, "Remix of a bare file", "MIT", T0, (chunk_cid,))
    store.transact(lambda txn: txn.put("blocks", chunk_cid.bytes, chunk))
    ingest_records(store, [child.block])
    with store.read() as txn:
        graph = provenance(txn, child.cid)
    assert graph.nodes[chunk_cid].status == "not-a-record"


def test_root_must_be_held(store: Store) -> None:
    with store.read() as txn, pytest.raises(NotFound):
        provenance(txn, MISSING)


def test_to_dict_is_json(lineage: Lineage) -> None:
    with lineage.store.read() as txn:
        data = provenance(txn, lineage.joint.cid).to_dict()
    text = json.dumps(data)
    assert str(lineage.joint.cid) in text
    assert data["root"] == str(lineage.joint.cid)
    assert {w["code"] for w in data["warnings"]} == {
        "share-alike",
        "parent-missing",
        "non-commercial",
    }


dags = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.lists(
        st.sets(st.integers(min_value=0, max_value=n - 1), max_size=3), min_size=n, max_size=n
    )
)


@given(dags, st.data())
def test_walks_find_exactly_the_transitive_closures(
    parent_sets: list[set[int]], data: st.DataObject
) -> None:
    # Node i may only derive from nodes before it, as content addressing forces.
    parents = [sorted(p for p in ps if p < i) for i, ps in enumerate(parent_sets)]
    records: list[Record] = []
    for i, ps in enumerate(parents):
        records.append(
            design(POTTER, f"Design {i}", "MIT", T0 + i, tuple(records[p].cid for p in ps))
        )
    store = MemoryStore()
    ingest_records(store, [r.block for r in records])
    root = data.draw(st.integers(min_value=0, max_value=len(records) - 1))

    def closure(start: int, step: list[list[int]]) -> set[int]:
        found: set[int] = set()
        todo = list(step[start])
        while todo:
            node = todo.pop()
            if node not in found:
                found.add(node)
                todo.extend(step[node])
        return found

    children = [[c for c, ps in enumerate(parents) if i in ps] for i in range(len(parents))]
    with store.read() as txn:
        graph = provenance(txn, records[root].cid, max_depth=100)
    roles = {cid: node.role for cid, node in graph.nodes.items()}
    assert {cid for cid, r in roles.items() if r == "ancestor"} == {
        records[i].cid for i in closure(root, parents)
    }
    assert {cid for cid, r in roles.items() if r == "descendant"} == {
        records[i].cid for i in closure(root, children)
    }
    assert not graph.truncated


def test_fan_out_is_bounded(store: Store) -> None:
    stool = design(POTTER, "Neo-Vernacular stool", "MIT", T0)
    remixes = [
        design(WEAVER, f"Stool remix {i}", "MIT", T0 + 1 + i, (stool.cid,)) for i in range(5)
    ]
    ingest_records(store, [r.block for r in [stool, *remixes]])
    with store.read() as txn:
        bounded = provenance(txn, stool.cid, max_linkers=3)
        full = provenance(txn, stool.cid)
    assert bounded.truncated and len(bounded.nodes) == 4
    assert not full.truncated and len(full.nodes) == 6
