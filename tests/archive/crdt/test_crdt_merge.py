"""Merge rules, shown with hubs of the Global Micro-manufacturing Alliance editing offline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crdt_helpers import KEYS, START_MS, raku_genesis

from craftnet.archive.crdt.causal import Replica
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import EditError
from craftnet.archive.crdt.ops import op_record
from craftnet.archive.crdt.state import DocState
from craftnet.archive.errors import IntegrityError
from craftnet.archive.hlc import pack
from craftnet.archive.records import Record


class Hub:
    """A hub's replica plus a helper to sign edits against what it has seen."""

    def __init__(self, name: str, genesis: Record) -> None:
        self.name = name
        self.key = KEYS[name]
        self.replica = Replica(genesis.cid)
        self.replica.receive(genesis)

    @property
    def state(self) -> DocState:
        state = self.replica.state()
        assert state is not None
        return state

    def edit(self, build: Callable[[ChangeBuilder], object], at_ms: int) -> Record:
        builder = ChangeBuilder(self.state)
        build(builder)
        ts = max(pack(START_MS + at_ms), self.replica.head_ts() + 1)
        record = op_record(self.key, self.replica.doc, self.replica.heads, builder.build(), ts=ts)
        assert self.replica.receive(record)[0].status == "applied"
        return record

    def receive(self, *records: Record) -> None:
        for record in records:
            self.replica.receive(record)

    def fields(self) -> dict[str, object]:
        return dict(self.state.view()["fields"])


def two_hubs() -> tuple[Hub, Hub]:
    genesis = raku_genesis()
    return Hub("lisbon-fablab", genesis), Hub("kyoto-raku", genesis)


def test_register_last_writer_wins_and_the_loser_is_a_conflict() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.set("title", "Raku firing"), at_ms=1000)
    k = kyoto.edit(lambda b: b.set("title", "Raku glaze firing (Kyoto style)"), at_ms=2000)
    lisbon.receive(k)
    kyoto.receive(a)
    for hub in (lisbon, kyoto):
        view = hub.state.view()
        assert view["fields"]["title"] == "Raku glaze firing (Kyoto style)"  # later HLC wins
        assert view["conflicts"] == {"title": ["Raku firing"]}
    assert lisbon.replica.encode_state() == kyoto.replica.encode_state()
    blame = lisbon.state.blame()["title"]
    assert blame["author"] == KEYS["kyoto-raku"].did and blame["op"] == k.cid
    assert blame["conflicts"][0]["author"] == KEYS["lisbon-fablab"].did
    # an edit that saw both values resolves the conflict
    lisbon.edit(lambda b: b.set("title", "Raku glaze firing"), at_ms=3000)
    assert lisbon.state.view()["conflicts"] == {}


def test_register_ties_on_the_clock_are_broken_by_author() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.set("region", "Lisbon"), at_ms=1000)
    k = kyoto.edit(lambda b: b.set("region", "Kyoto"), at_ms=1000)
    assert a.ts == k.ts
    lisbon.receive(k)
    kyoto.receive(a)
    winner = max([(a.author, "Lisbon"), (k.author, "Kyoto")])[1]
    assert lisbon.fields()["region"] == kyoto.fields()["region"] == winner


def test_set_add_wins_over_a_concurrent_remove() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.remove("tags", "raku"), at_ms=1000)
    k = kyoto.edit(lambda b: b.add("tags", "raku").add("tags", "smoke"), at_ms=1000)
    lisbon.receive(k)
    kyoto.receive(a)
    assert lisbon.fields()["tags"] == kyoto.fields()["tags"] == ["raku", "smoke"]
    # a remove that saw every add does remove
    lisbon.edit(lambda b: b.remove("tags", "raku"), at_ms=2000)
    assert lisbon.fields()["tags"] == ["smoke"]
    with pytest.raises(EditError, match="not in 'tags'"):
        ChangeBuilder(lisbon.state).remove("tags", "raku")


def test_concurrent_step_inserts_keep_each_hubs_steps_together() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(
        lambda b: b.insert("steps", 1, "L1 wax resist").insert("steps", 2, "L2 dry")
        .insert("steps", 3, "L3 check"),
        at_ms=1000,
    )
    ks = [
        kyoto.edit(lambda b, i=i: b.insert("steps", 1 + i, f"K{i + 1} reduction"), at_ms=1000 + i)
        for i in range(3)
    ]
    lisbon.receive(*ks)
    kyoto.receive(a)
    steps = lisbon.fields()["steps"]
    assert steps == kyoto.fields()["steps"]
    middle = steps[1:-1]
    assert middle in (
        ["L1 wax resist", "L2 dry", "L3 check", "K1 reduction", "K2 reduction", "K3 reduction"],
        ["K1 reduction", "K2 reduction", "K3 reduction", "L1 wax resist", "L2 dry", "L3 check"],
    )


def test_two_edits_to_one_paragraph_both_survive() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.edit_text("steps", "Bisque-fire the pot slowly.", 0), at_ms=1000)
    k = kyoto.edit(lambda b: b.edit_text("steps", "Bisque-fire the clay pot.", 0), at_ms=1000)
    lisbon.receive(k)
    kyoto.receive(a)
    assert lisbon.fields()["steps"][0] == "Bisque-fire the clay pot slowly."
    assert lisbon.replica.encode_state() == kyoto.replica.encode_state()
    pieces = lisbon.state.blame()["steps"]["items"][0]["text"]
    assert [(p["text"], p["author"][-6:]) for p in pieces] == [
        ("Bisque-fire the ", KEYS["lisbon-fablab"].did[-6:]),
        ("clay ", KEYS["kyoto-raku"].did[-6:]),
        ("pot", KEYS["lisbon-fablab"].did[-6:]),
        (" slowly", KEYS["lisbon-fablab"].did[-6:]),
        (".", KEYS["lisbon-fablab"].did[-6:]),
    ]


def test_concurrent_delete_and_replace_of_the_same_words() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.edit_text("description", "A technique from Kyoto."), at_ms=1000)
    k = kyoto.edit(lambda b: b.edit_text("description", "A low-fire method from Kyoto."), 1000)
    lisbon.receive(k)
    kyoto.receive(a)
    # both deleted "low-fire "/"technique": each hub's delete applies, each insert survives
    assert lisbon.fields()["description"] == kyoto.fields()["description"]
    assert "method" in str(lisbon.fields()["description"])


def test_deleting_a_step_while_another_hub_edits_it() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.delete("steps", 0), at_ms=1000)
    k = kyoto.edit(lambda b: b.edit_text("steps", "Bisque-fire the pot twice.", 0), at_ms=1000)
    lisbon.receive(k)
    kyoto.receive(a)
    assert lisbon.fields()["steps"] == kyoto.fields()["steps"] == ["Glaze and fire to 1000 °C."]
    assert lisbon.replica.encode_state() == kyoto.replica.encode_state()


def test_media_list_and_save_load_round_trip() -> None:
    lisbon, kyoto = two_hubs()
    a = lisbon.edit(lambda b: b.append("media", "kiln-opening.jpg"), at_ms=1000)
    k = kyoto.edit(lambda b: b.append("media", "reduction-bin.mp4"), at_ms=1000)
    lisbon.receive(k)
    kyoto.receive(a)
    assert sorted(lisbon.fields()["media"]) == ["kiln-opening.jpg", "reduction-bin.mp4"]
    saved = lisbon.replica.encode_state()
    loaded = DocState.decode(saved)
    assert loaded.encode() == saved
    assert loaded.view() == lisbon.state.view()
    assert loaded.blame() == lisbon.state.blame()


def test_damaged_state_bytes_are_an_integrity_error() -> None:
    lisbon, _ = two_hubs()
    saved = lisbon.replica.encode_state()
    with pytest.raises(IntegrityError, match="rebuild it from the operations"):
        DocState.decode(saved[:-3])
    with pytest.raises(IntegrityError):
        DocState.decode(b"\xa0")


def test_builder_refuses_edits_it_cannot_express() -> None:
    lisbon, _ = two_hubs()
    builder = ChangeBuilder(lisbon.state)
    with pytest.raises(EditError, match="is a scalar field, not a set"):
        builder.add("title", "x")
    with pytest.raises(EditError, match="no item 9"):
        builder.delete("steps", 8)
    with pytest.raises(EditError, match="cannot insert at 5"):
        builder.insert("steps", 4, "x")
    with pytest.raises(EditError, match="say which item"):
        builder.edit_text("steps", "x")
    with pytest.raises(EditError, match="not a text"):
        builder.edit_text("title", "x")
    builder.insert("steps", 0, "new")
    with pytest.raises(EditError, match="when inserting"):
        builder.edit_text("steps", "newer", 0)
    builder.edit_text("description", "x")
    with pytest.raises(EditError, match="already edited"):
        builder.edit_text("description", "y")
