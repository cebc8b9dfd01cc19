"""Operation records are parsed strictly; every bad one gets a typed error naming the problem."""

from __future__ import annotations

from typing import Any

import pytest
from crdt_helpers import KEYS, raku_genesis

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.causal import verified_op
from craftnet.archive.crdt.errors import BadOpSignature, DocumentError, InvalidOp, OpTooLarge
from craftnet.archive.crdt.ops import (
    MAX_CHANGES,
    MAX_OP_BYTES,
    MAX_PARENTS,
    MAX_TEXT,
    AddMember,
    InsertText,
    SetField,
    op_record,
    parse_op,
)
from craftnet.archive.errors import ArchiveError
from craftnet.archive.hlc import pack
from craftnet.archive.records import Record
from craftnet.errors import CraftnetError

GENESIS = raku_genesis()
DOC = GENESIS.cid
LISBON = KEYS["lisbon-fablab"]
TS = pack(1_780_000_001_000)


def op(changes: list[Any], *, parents: list[Cid] | None = None, body: Any = None) -> Record:
    if body is None:
        body = {"doc": DOC, "changes": changes}
    return Record.create(LISBON, "doc-op", body, parents or [DOC], ts=TS)


def test_genesis_parses_with_kind_acl_and_changes() -> None:
    parsed = parse_op(GENESIS)
    assert parsed.doc == GENESIS.cid and parsed.genesis is not None
    assert parsed.genesis.kind == "technique"
    assert parsed.genesis.acl.mode == "alliance"
    assert isinstance(parsed.changes[0], SetField)
    assert parsed.deps == ()


def test_operation_parses_refs_and_deps() -> None:
    other = Cid.of(b"another op", 0x71)
    record = op(
        [
            {"op": "add", "field": "tags", "value": "smoke"},
            {"op": "insert-text", "field": "steps", "item": [other, 2], "after": [other, 2, 5],
             "text": "slowly "},
            {"op": "insert-text", "field": "steps", "item": [other, 2], "after": [1, 6],
             "text": "!"},
        ]
    )
    parsed = parse_op(record)
    assert isinstance(parsed.changes[0], AddMember)
    third = parsed.changes[2]
    assert isinstance(third, InsertText)
    assert third.after == (record.cid.bytes, 1, 6)  # [index, offset] names this very op
    assert set(parsed.deps) == {DOC, other}


def test_errors_are_archive_errors() -> None:
    assert issubclass(InvalidOp, DocumentError)
    assert issubclass(DocumentError, ArchiveError)
    assert issubclass(OpTooLarge, InvalidOp) and issubclass(BadOpSignature, InvalidOp)
    assert issubclass(DocumentError, CraftnetError)


BAD_BODIES: list[tuple[Any, str]] = [
    ({"doc": DOC}, "exactly 'doc' and 'changes'"),
    ({"doc": DOC, "changes": [], "extra": 1}, "exactly 'doc' and 'changes'"),
    ({"doc": "not a cid", "changes": []}, "CID of the document"),
    ({"doc": DOC, "changes": {}}, "must be a list"),
    ({"doc": DOC, "changes": [1]}, "must be a map"),
    ({"doc": DOC, "changes": [{"op": "explode", "field": "title"}]}, "unknown change op"),
    ({"doc": DOC, "changes": [{"op": "set", "field": "title", "value": 1}]}, "exactly the keys"),
    ({"doc": DOC, "changes": [{"op": "set", "field": "Title!", "value": 1, "pred": []}]},
     "lower-case identifiers"),
    ({"doc": DOC, "changes": [{"op": "add", "field": ["tags"], "value": "raku"}]},
     "lower-case identifiers"),
    ({"doc": DOC, "changes": [{"op": "add", "field": {"tags": 1}, "value": "raku"}]},
     "lower-case identifiers"),
    ({"doc": DOC, "changes": [{"op": "set", "field": "tags", "value": 1, "pred": []}]},
     "'set' does not apply to 'tags'"),
    ({"doc": DOC, "changes": [{"op": "add", "field": "tags", "value": 7}]}, "a CID or a string"),
    ({"doc": DOC, "changes": [{"op": "add", "field": "tags", "value": ""}]}, "a CID or a string"),
    ({"doc": DOC, "changes": [{"op": "set", "field": "title", "value": 1, "pred": [[0]]}]},
     "earlier change"),
    ({"doc": DOC, "changes": [{"op": "set", "field": "title", "value": 1, "pred": [["x", 1]]}]},
     "within the same operation must have"),
    ({"doc": DOC, "changes": [{"op": "delete", "field": "steps", "item": [DOC, -1]}]},
     "change index"),
    ({"doc": DOC, "changes": [{"op": "insert", "field": "steps", "after": None, "value": 5}]},
     "text must be a string"),
    ({"doc": DOC, "changes": [
        {"op": "insert-text", "field": "title", "item": None, "after": None, "text": "x"}]},
     "holds no text"),
    ({"doc": DOC, "changes": [
        {"op": "insert-text", "field": "steps", "item": None, "after": None, "text": "x"}]},
     "must name the item"),
    ({"doc": DOC, "changes": [
        {"op": "insert-text", "field": "description", "item": None, "after": None, "text": ""}]},
     "must not be empty"),
    ({"doc": DOC, "changes": [
        {"op": "delete-text", "field": "description", "item": None, "ranges": [[DOC, 0, 0, 0]]}]},
     "must not be empty"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_malformed_operations_are_refused(body: Any, message: str) -> None:
    with pytest.raises(InvalidOp, match=message):
        parse_op(op([], body=body))


def test_wrong_record_type_and_version() -> None:
    record = Record.create(LISBON, "technique", {"doc": DOC, "changes": []}, [DOC], ts=TS)
    with pytest.raises(InvalidOp, match="not 'doc' or 'doc-op'"):
        parse_op(record)
    newer = Record.create(LISBON, "doc-op", {"doc": DOC, "changes": []}, [DOC], ts=TS, v=2)
    with pytest.raises(InvalidOp, match="upgrade craftnet"):
        parse_op(newer)


def test_parents_are_required_bounded_and_unique() -> None:
    with pytest.raises(InvalidOp, match="must link the heads"):
        parse_op(Record.create(LISBON, "doc-op", {"doc": DOC, "changes": []}, [], ts=TS))
    many = [Cid.of(bytes([i, j]), 0x71) for i in range(2) for j in range(MAX_PARENTS)]
    with pytest.raises(OpTooLarge, match="parents"):
        parse_op(op([], parents=many))
    with pytest.raises(InvalidOp, match="must not repeat"):
        parse_op(op([], parents=[DOC, DOC]))


def test_genesis_rules() -> None:
    def genesis(body: Any, links: list[Cid] | None = None) -> Record:
        return Record.create(LISBON, "doc", body, links or [], ts=TS)

    acl = {"mode": "owner", "editors": []}
    with pytest.raises(InvalidOp, match="no parents"):
        parse_op(genesis({"kind": "technique", "acl": acl, "changes": []}, [DOC]))
    with pytest.raises(InvalidOp, match="slug"):
        parse_op(genesis({"kind": "Technique!", "acl": acl, "changes": []}))
    with pytest.raises(InvalidOp, match="acl mode"):
        parse_op(genesis({"kind": "technique", "acl": {"mode": "anyone", "editors": []},
                          "changes": []}))
    editors = sorted([KEYS["porto-ceramics"].did, KEYS["kyoto-raku"].did], reverse=True)
    with pytest.raises(InvalidOp, match="sorted and unique"):
        parse_op(genesis({"kind": "technique", "acl": {"mode": "editors", "editors": editors},
                          "changes": []}))
    with pytest.raises(InvalidOp, match="acl editor"):
        parse_op(genesis({"kind": "technique",
                          "acl": {"mode": "editors", "editors": ["did:key:zNope"]},
                          "changes": []}))
    with pytest.raises(InvalidOp, match="takes no editors"):
        parse_op(genesis({"kind": "technique",
                          "acl": {"mode": "alliance", "editors": [KEYS["kyoto-raku"].did]},
                          "changes": []}))
    with pytest.raises(InvalidOp, match="only refer to elements it makes"):
        parse_op(genesis({"kind": "technique", "acl": acl, "changes": [
            {"op": "delete", "field": "steps", "item": [DOC, 0]}]}))


def test_oversize_operations_are_refused() -> None:
    with pytest.raises(OpTooLarge, match="characters; the limit"):
        parse_op(op([{"op": "insert-text", "field": "description", "item": None, "after": None,
                      "text": "a" * (MAX_TEXT + 1)}]))
    with pytest.raises(OpTooLarge, match="changes; the limit"):
        parse_op(op([{"op": "add", "field": "tags", "value": "raku"}] * (MAX_CHANGES + 1)))
    with pytest.raises(OpTooLarge, match="bytes; the limit"):
        parse_op(op([{"op": "set", "field": "notes", "value": "x" * 5000, "pred": []}]))
    big = [{"op": "insert-text", "field": "description", "item": None, "after": None,
            "text": "a" * MAX_TEXT}] * 5
    with pytest.raises(OpTooLarge, match=f"the limit is {MAX_OP_BYTES}"):
        parse_op(op(big))


def test_bad_signature_is_refused() -> None:
    record = op_record(LISBON, DOC, [DOC], [{"op": "add", "field": "tags", "value": "raku"}],
                       ts=TS)
    unsigned = record.unsigned()
    forged = Record.from_block(
        __import__("craftnet.archive.codec", fromlist=["encode"]).encode(
            {**unsigned, "body": {**unsigned["body"], "changes": []}, "sig": record.sig}
        )
    )
    with pytest.raises(BadOpSignature, match="not validly signed"):
        verified_op(forged)
    assert verified_op(record).cid == record.cid
