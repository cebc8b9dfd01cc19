"""``craftnet doc``: start, edit, show, history and blame a document from the shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.ops import op_record
from craftnet.archive.lmdb_store import LmdbStore
from craftnet.identity.keys import PrivateKey

# Spelled out here: `from conftest import ...` finds whichever conftest.py comes first
# on sys.path (tests/archive/ has one too) and breaks collection of the whole suite.
Invoke = Callable[..., Result]

KYOTO = PrivateKey.from_seed(b"kyoto-raku".ljust(32, b"\0"))


def new_raku(hub: Invoke, *extra: str) -> str:
    result = hub(
        "--json", "doc", "new", "technique", "--title", "Raku glaze firing",
        "--add", "tags=raku", "--insert-step", "Bisque-fire the pot.",
        "--insert-step", "Glaze it.", "--set", "description=A low-fire technique.", *extra,
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] == "technique"
    return str(out["cid"])


def test_new_edit_show(hub: Invoke) -> None:
    doc = new_raku(hub)
    result = hub("doc", "edit", doc, "--set", "title=Raku", "--edit-step", "1",
                 "Bisque-fire the clay pot.", "--insert-step-at", "2", "Preheat the kiln.",
                 "--remove", "tags=raku", "--add", "tags=smoke", "--add-media", "kiln.jpg")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(hub("--json", "doc", "show", doc).stdout)
    assert shown["fields"] == {
        "title": "Raku",
        "tags": ["smoke"],
        "steps": ["Bisque-fire the clay pot.", "Preheat the kiln.", "Glaze it."],
        "media": ["kiln.jpg"],
        "description": "A low-fire technique.",
    }
    assert shown["heads"] == [result.stdout.strip()]
    human = hub("doc", "show", doc).stdout
    assert "  1. Bisque-fire the clay pot." in human and "Raku" in human
    listed = json.loads(hub("--json", "doc", "ls").stdout)
    assert listed[0]["cid"] == doc and listed[0]["title"] == "Raku"


def test_history_and_blame(hub: Invoke) -> None:
    doc = new_raku(hub)
    hub("doc", "edit", doc, "--delete-step", "2")
    history = json.loads(hub("--json", "doc", "history", doc).stdout)
    assert [h["status"] for h in history] == ["applied", "applied"]
    assert history[1]["changes"] == ["delete an item of steps"]
    assert "applied" in hub("doc", "history", doc).stdout
    blame = json.loads(hub("--json", "doc", "blame", doc).stdout)
    assert blame["fields"]["title"]["op"] == doc
    assert blame["fields"]["steps"]["items"][0]["text"][0]["text"] == "Bisque-fire the pot."
    assert "title = 'Raku glaze firing'" in hub("doc", "blame", doc).stdout


def test_a_conflict_is_shown_not_hidden(hub: Invoke, home: Path) -> None:
    doc = new_raku(hub, "--alliance")
    parent = Cid.parse(doc)
    store = LmdbStore(home / "store")
    try:
        docs = Documents(store)
        state = docs.state(parent)
        ts = docs.status(parent, parent).ts + (10_000 << 16)  # type: ignore[union-attr]
        concurrent = op_record(KYOTO, parent, [parent],
                               ChangeBuilder(state).set("title", "Raku (Kyoto)").build(), ts=ts)
        docs.ingest([concurrent])
    finally:
        store.close()
    hub("doc", "edit", doc, "--set", "region=Lisbon")  # does not touch the title
    shown = json.loads(hub("--json", "doc", "show", doc).stdout)
    assert shown["fields"]["title"] == "Raku (Kyoto)"
    assert shown["conflicts"] == {}  # Kyoto's edit saw the first title: no conflict
    hub("doc", "edit", doc, "--set", "title=Raku glaze firing")
    store = LmdbStore(home / "store")
    try:
        docs = Documents(store)
        # Kyoto, offline, has not seen this hub's new title: it overwrites only its own
        unseen = [{"op": "set", "field": "title", "value": "Raku", "pred": [[concurrent.cid, 0]]}]
        other = op_record(KYOTO, parent, [concurrent.cid], unseen, ts=ts + 1)
        docs.ingest([other])
    finally:
        store.close()
    human = hub("doc", "show", doc).stdout
    assert "conflict: title was also set to" in human


def test_errors_are_one_line(hub: Invoke) -> None:
    doc = new_raku(hub)
    result = hub("doc", "edit", doc, "--delete-step", "9")
    assert result.exit_code == 1
    assert "no item 9" in result.stderr
    result = hub("doc", "edit", doc, "--add", "title=x")
    assert result.exit_code == 1 and "scalar field" in result.stderr
    result = hub("doc", "show", "bafyr4idsf73cpxvdrr3v4ettnetc2hzadb6ctldbagvi3q5cvbccsxsoai")
    assert result.exit_code == 1 and "no document" in result.stderr
    result = hub("doc", "edit", doc, "--set", "oops")
    assert result.exit_code == 2


def test_rebuild(hub: Invoke) -> None:
    doc = new_raku(hub)
    before = hub("--json", "doc", "show", doc).stdout
    result = hub("doc", "rebuild", doc)
    assert result.exit_code == 0 and "rebuilt" in result.stdout
    assert hub("--json", "doc", "show", doc).stdout == before
