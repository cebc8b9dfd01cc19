"""Causal delivery: pending until parents arrive, nothing lost, nothing applied twice."""

from __future__ import annotations

from typing import Any

import pytest
from crdt_helpers import KEYS, START_MS, raku_genesis

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.causal import Replica
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import BadOpSignature, InvalidOp
from craftnet.archive.crdt.ops import op_record
from craftnet.archive.hlc import pack
from craftnet.archive.records import Record

GENESIS = raku_genesis(mode="editors", editors=("kyoto-raku",))
DOC = GENESIS.cid


def fresh() -> Replica:
    replica = Replica(DOC)
    replica.receive(GENESIS)
    return replica


def edit(hub: str, parents: list[Cid], changes: list[dict[str, Any]], at_ms: int) -> Record:
    return op_record(KEYS[hub], DOC, parents, changes, ts=pack(START_MS + at_ms))


def tag(value: str) -> list[dict[str, Any]]:
    return ChangeBuilder(None).add("tags", value).build()


def test_child_waits_for_its_parent_then_both_apply() -> None:
    first = edit("lisbon-fablab", [DOC], tag("glaze"), 1000)
    second = edit("kyoto-raku", [first.cid], tag("smoke"), 2000)
    replica = fresh()
    out = replica.receive(second)
    assert [o.status for o in out] == ["pending"]
    assert str(first.cid) in out[0].reason
    assert replica.missing() == [first.cid]
    assert "smoke" not in replica.state().sets["tags"]  # type: ignore[union-attr]
    out = replica.receive(first)
    assert [(o.cid, o.status) for o in out] == [(first.cid, "applied"), (second.cid, "applied")]
    assert replica.heads == [second.cid]
    assert replica.missing() == []
    # duplicates change nothing
    assert replica.receive(second)[0].status == "duplicate"
    assert replica.receive(first)[0].status == "duplicate"
    assert replica.log.count(second.cid) == 1


def test_ops_arriving_before_the_genesis_wait_for_it() -> None:
    first = edit("lisbon-fablab", [DOC], tag("glaze"), 1000)
    replica = Replica(DOC)
    assert replica.receive(first)[0].status == "pending"
    assert replica.encode_state() == b""
    outcomes = replica.receive(GENESIS)
    assert [o.status for o in outcomes] == ["applied", "applied"]


def test_a_parent_that_never_arrives_leaves_state_untouched() -> None:
    ghost = Cid.of(b"an op nobody has", 0x71)
    orphan = edit("lisbon-fablab", [ghost], tag("lost"), 1000)
    replica = fresh()
    before = replica.encode_state()
    assert replica.receive(orphan)[0].status == "pending"
    assert replica.encode_state() == before
    assert replica.missing() == [ghost]
    assert orphan.cid in replica.pending()
    # later edits that do not depend on it go ahead
    ok = edit("lisbon-fablab", [DOC], tag("fine"), 2000)
    assert replica.receive(ok)[0].status == "applied"
    assert replica.heads == [ok.cid]


def test_an_author_without_rights_is_stored_but_changes_nothing() -> None:
    replica = fresh()
    before = replica.encode_state()
    spam = ChangeBuilder(None).set("title", "spam").build()
    intruder = edit("oaxaca-textiles", [DOC], spam, 1000)
    out = replica.receive(intruder)
    assert out[0].status == "rejected"
    assert "no edit rights" in out[0].reason and KEYS["oaxaca-textiles"].did in out[0].reason
    assert replica.encode_state() == before
    assert replica.status(intruder.cid).state == "rejected"  # type: ignore[union-attr]
    # an editor's later op that saw it still applies
    later = edit("kyoto-raku", [intruder.cid], tag("smoke"), 2000)
    assert replica.receive(later)[0].status == "applied"


def test_a_clock_not_after_the_parents_is_rejected() -> None:
    first = edit("lisbon-fablab", [DOC], tag("glaze"), 1000)
    backwards = edit("kyoto-raku", [first.cid], tag("smoke"), 500)
    replica = fresh()
    replica.receive(first)
    out = replica.receive(backwards)
    assert out[0].status == "rejected" and "not after its parent" in out[0].reason


def test_a_clock_far_in_the_future_is_deferred_until_it_is_due() -> None:
    replica = Replica(DOC, max_drift_ms=60_000)
    replica.receive(GENESIS, now_ms=START_MS)
    year = 365 * 24 * 3600 * 1000
    future = edit("lisbon-fablab", [DOC], ChangeBuilder(None).set("title", "Mine forever").build(),
                  year)
    child = edit("kyoto-raku", [future.cid], tag("smoke"), year + 1)
    out = replica.receive(future, now_ms=START_MS)
    assert out[0].status == "deferred" and "ahead of this hub" in out[0].reason
    assert replica.receive(child, now_ms=START_MS)[0].status == "deferred"  # also ahead
    assert replica.state().view()["fields"]["title"] == "Raku glaze firing"  # type: ignore[union-attr]
    assert replica.release(START_MS + 1000) == []
    out = replica.release(START_MS + year)
    assert [o.status for o in out] == ["applied", "applied"]
    assert replica.state().view()["fields"]["title"] == "Mine forever"  # type: ignore[union-attr]


def test_an_insert_after_an_element_of_a_concurrent_op_waits_for_it() -> None:
    """A hostile editor may refer to an element it never saw; it waits for that op."""
    lisbon = fresh()
    steps = ChangeBuilder(lisbon.state()).insert("steps", 0, "Wear gloves.").build()
    first = edit("lisbon-fablab", [DOC], steps, 1000)
    sneaky = edit("kyoto-raku", [DOC], [
        {"op": "insert", "field": "steps", "after": [first.cid, 0], "value": "Then tongs."}
    ], 2000)
    assert first.cid in __import__("craftnet.archive.crdt.ops", fromlist=["parse_op"]).parse_op(
        sneaky).deps
    a, b = fresh(), fresh()
    a.receive(first)
    a.receive(sneaky)
    assert b.receive(sneaky)[0].status == "pending"
    b.receive(first)
    assert a.encode_state() == b.encode_state()
    assert a.state().view()["fields"]["steps"][:2] == ["Wear gloves.", "Then tongs."]  # type: ignore[union-attr]


def test_an_insert_after_a_later_element_is_rejected_everywhere() -> None:
    first = edit("lisbon-fablab", [DOC], ChangeBuilder(None).append("steps", "x").build(), 5000)
    early = edit("kyoto-raku", [DOC], [
        {"op": "insert", "field": "steps", "after": [first.cid, 0], "value": "before?"}
    ], 1000)
    for order in ([first, early], [early, first]):
        replica = fresh()
        statuses = {o.cid: o.status for r in order for o in replica.receive(r)}
        assert statuses[early.cid] == "rejected"


def test_a_bad_signature_is_refused_before_anything_is_kept() -> None:
    good = edit("lisbon-fablab", [DOC], tag("glaze"), 1000)
    value = good.unsigned()
    value["ts"] += 1
    forged = Record.from_block(
        __import__("craftnet.archive.codec", fromlist=["encode"]).encode({**value, "sig": good.sig})
    )
    replica = fresh()
    before = replica.encode_state()
    with pytest.raises(BadOpSignature):
        replica.receive(forged)
    assert replica.status(forged.cid) is None and replica.encode_state() == before


def test_an_op_of_another_document_is_refused() -> None:
    other = raku_genesis(owner="kyoto-raku")
    stray = op_record(KEYS["kyoto-raku"], other.cid, [other.cid], tag("x"), ts=pack(START_MS + 9))
    with pytest.raises(InvalidOp, match="belongs to document"):
        fresh().receive(stray)
