"""The search index on its own: queries people type, languages, and staying in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.archive import index
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.memory_store import MemoryStore
from craftnet.identity.keys import PrivateKey
from craftnet.node.web.search import SearchIndex, fts_query, snippet

KEY = PrivateKey.from_seed(b"search-test-hub-neo-vernacular-1")


def technique(store: MemoryStore, title: str, summary: str, language: str = "en") -> str:
    """Publish a technique; return its CID as text."""
    record = index.publish(
        store,
        KEY,
        "technique",
        {
            "title": title,
            "summary": summary,
            "language": language,
            "steps": [{"text": "Begin.", "media": []}],
            "licence": "CC-BY-4.0",
        },
    )
    return str(record.cid)


@pytest.fixture
def store() -> MemoryStore:
    """An empty in-memory store."""
    return MemoryStore()


@pytest.fixture
def search(store: MemoryStore, tmp_path: Path) -> SearchIndex:
    """A search index over ``store``."""
    return SearchIndex(tmp_path / "search.sqlite", store, Documents(store))


@pytest.mark.parametrize(
    "typed",
    [
        '"',
        "*",
        "NEAR(a b)",
        "a OR b",
        "title:x",
        "-x",
        "(((",
        "'; DROP TABLE fts; --",
        "a\x00b",
        "🙂",
        "^x",
        "x AND",
    ],
)
def test_anything_typed_is_a_safe_query(
    search: SearchIndex, store: MemoryStore, typed: str
) -> None:
    technique(store, "Raku", "a OR b title x")
    search.catch_up()
    search.search(typed)  # never an SQLite syntax error
    assert search.search("raku").total == 1


def test_fts_query_quotes_words_and_makes_the_last_a_prefix() -> None:
    assert fts_query('raku "kiln') == '"raku" "kiln"*'
    assert fts_query("  ,;  ") is None


def test_accents_and_languages(search: SearchIndex, store: MemoryStore) -> None:
    pt = technique(store, "Cerâmica de Barcelos", "Olaria tradicional do Minho", "pt")
    technique(store, "Ткачество на бердо", "Ручное ткачество", "ru")
    search.catch_up()
    assert [h.cid for h in search.search("ceramica").hits] == [pt]
    assert search.search("ткачество").total == 1
    assert search.search("olaria", {"language": "pt"}).total == 1
    assert search.search("olaria", {"language": "en"}).total == 0


def test_snippet_marks_matches_around_the_first_one() -> None:
    body = ("Bisque-fire the pots. " * 10) + "Then pull the glowing raku pot from the kiln."
    text = snippet(body, ["raku", "ki"])
    assert "[raku]" in text and "[kiln]" in text and text.startswith("… ")
    assert snippet(None, ["x"]) == ""


def test_documents_are_reindexed_as_they_are_edited(
    search: SearchIndex, store: MemoryStore
) -> None:
    docs = Documents(store)
    genesis = docs.create(KEY, "technique", lambda b: b.set("title", "Kiln care"), mode="alliance")
    search.catch_up()
    assert search.search("kiln").total == 1
    op = docs.edit(KEY, genesis.cid, lambda b: b.set("title", "Wood kiln care"))
    search.add([op])
    hits = search.search("wood").hits
    assert [h.cid for h in hits] == [str(genesis.cid)]
    assert search.indexed == 1  # the edit updated the entry, it did not add one


def test_a_lost_index_is_rebuilt_from_the_store(store: MemoryStore, tmp_path: Path) -> None:
    for n in range(30):
        technique(store, f"Weave pattern {n}", "strip weaving")
    first = SearchIndex(tmp_path / "a.sqlite", store, Documents(store))
    assert first.catch_up() == 30
    assert first.catch_up() == 0  # nothing new: one count
    first.close()
    (tmp_path / "a.sqlite").unlink()
    again = SearchIndex(tmp_path / "a.sqlite", store, Documents(store))
    assert again.catch_up() == 30
    assert again.search("weave").total == 30


def test_cached_answers_end_when_the_index_changes(search: SearchIndex, store: MemoryStore) -> None:
    technique(store, "Loom warping", "on a backstrap loom")
    search.catch_up()
    assert search.search("loom").total == 1
    assert search.search("loom") is search.search("loom")  # the second answer is cached
    technique(store, "Loom repair", "replace the heddle")
    search.catch_up()
    assert search.search("loom").total == 2


def test_words_of_unspaced_scripts_are_found_inside_longer_runs(
    store: MemoryStore, search: SearchIndex
) -> None:
    glaze = technique(store, "陶芸の釉薬", "灰釉と長石釉の作り方", language="ja")
    technique(store, "Raku firing", "A shared kiln at the hub")
    search.catch_up()
    for typed in ("釉薬", "陶芸", "陶芸の釉薬", "長石", "釉"):
        hits = search.search(typed).hits
        assert [h.cid for h in hits] == [glaze], typed
    assert "釉薬" in search.search("釉薬").hits[0].snippet or search.search("釉薬").hits[0].title
    assert search.search("薬の").total == 0  # the pairs must follow each other
    assert fts_query("釉薬 kiln") == '"釉薬" "kiln"*'


def test_a_misspelt_word_gets_a_suggestion_that_finds_something(
    store: MemoryStore, search: SearchIndex
) -> None:
    technique(store, "Rustic Futurism lamp", "A lamp base turned at the hub")
    search.catch_up()
    missed = search.search("lmap")
    assert missed.total == 0 and missed.suggestion == "lamp"
    assert search.search(missed.suggestion).total == 1
    assert search.search("lamp").suggestion is None
    assert search.search("qqqqqq").suggestion is None  # nothing close: no suggestion


def test_facets_keep_the_records_spelling_and_hide_the_document_kind(
    store: MemoryStore, search: SearchIndex, tmp_path: Path
) -> None:
    for title in ("Bowl", "Cup"):
        index.publish(
            store,
            KEY,
            "design",
            {"title": title, "licence": "CC-BY-4.0", "materials": ["Recycled PETG"]},
            [],
        )
    index.publish(
        store,
        KEY,
        "design",
        {"title": "Vase", "licence": "CC-BY-4.0", "materials": ["recycled PETG"]},
        [],
    )
    docs = Documents(store)
    docs.create(KEY, "technique", lambda b: b.set("title", "Kiln care"))
    search.catch_up()
    assert search.search("bowl").facets["material"] == {"Recycled PETG": 1}
    assert search.facet_values("material") == {"Recycled PETG": 3}  # one value, any case
    assert search.filtered({"material": "recycled petg"}, limit=10, before=None)[0]
    every_tag = search.facet_values("tag")
    assert not any(tag.startswith("kind:") for tag in every_tag)
    kiln = search.search("kiln")
    assert kiln.total == 1 and "tag" not in kiln.facets
    assert search.search("technique").total == 1  # the kind is still found by its word
