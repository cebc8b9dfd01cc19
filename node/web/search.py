"""Full-text search over the archive: an SQLite FTS5 index kept beside the LMDB store.

The index is derived data: it can always be rebuilt from the store, so it lives in its
own file (``search.sqlite``) and is written without fsync-per-record. It is kept up to
date in two ways:

* records published or edited through the API are indexed as they are written;
* :meth:`SearchIndex.catch_up` compares the store's record count with the set of
  records the index has seen and indexes what is missing (records that arrived by sync,
  a bundle import or the CLI). The node calls it at start and every few seconds; when
  nothing changed it costs one count.

Techniques, designs and collections are indexed from their bodies; a CRDT document
(its genesis record, type ``doc``) is indexed from its current merged view and
re-indexed when one of its operations arrives. Words are split by FTS5's ``unicode61``
tokenizer with diacritics removed, which serves the languages written with spaces
between words (Latin, Cyrillic, Greek, ...). Scripts written without spaces (Chinese,
Japanese, Thai, ...) are also indexed as overlapping pairs of characters in a column of
their own (``cjk``), and a query's runs of those scripts become phrases of such pairs, so
that "釉薬" finds "陶芸の釉薬" (the classic bigram method; FTS5's trigram tokenizer cannot
match two-character words). Ranking is BM25 with titles weighted most. A search that
finds nothing suggests the closest spelling of its words found in the index.

Tags and materials keep their authors' spelling for display; they are matched without
regard to case.

A search costs about the same for a common word as for a rare one: FTS5 scores BM25 for
every row a ranked query considers, so at most the newest RANK_WINDOW matches are scored
(titles first when that many titles match), facets are counted over the best
FACET_SAMPLE from a packed column on the entry, and only the returned page's rows and
bodies are read. A facet filter (``licence=``, ``tag=``, ...) is part of the FTS5 query
itself: every entry's facet values are also indexed as one opaque token each (a BLAKE3
hash of name and value, see :func:`facet_token`) in a column of their own, so FTS5
intersects the word's and the facet's doclists. A filter written as SQL beside the MATCH
(``rowid IN (SELECT ...)``) made SQLite hand every filtered rowid to FTS5, which then ran
the whole query once per rowid: seconds for a licence shared by 25,000 records.

The writing connection is used by one thread at a time (the node's event loop); searches
run on worker threads, each with its own read connection.
"""

from __future__ import annotations

import difflib
import functools
import heapq
import json
import re
import sqlite3
import struct
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.ops import GENESIS_TYPE, OP_TYPE
from craftnet.archive.errors import ArchiveError
from craftnet.archive.index import count_records, get_record, record_times
from craftnet.archive.records import Record
from craftnet.archive.store import Store

SCHEMA_VERSION: Final = 5
MAX_QUERY_WORDS: Final = 16
FACET_SAMPLE: Final = 100  # facets are counted over the best-ranked matches
# BM25 is computed for every row a ranked query considers (about 1 µs each), so a word
# that matches tens of thousands of records would cost tens of milliseconds; past this
# many matches only the newest this many are ranked.
RANK_WINDOW: Final = 250
# Reader connections: the index is read through a memory map and a page cache that
# holds the hot part of the FTS5 b-trees (per worker thread).
READER_MMAP: Final = 1 << 30
READER_CACHE_KIB: Final = 16 * 1024
_UNIT: Final = "\x1e"  # between facet entries in entries.facets
_PAIR: Final = "\x1f"  # between a facet name and its value
FACETS: Final = ("type", "licence", "process", "tag", "material", "language")
SEARCH_FACETS_SHOWN: Final = ("type", "licence", "process", "tag", "material")
INDEXED_TYPES: Final = frozenset({"technique", "design", "collection", GENESIS_TYPE})
_TS: Final = struct.Struct(">Q")
_WORD: Final = re.compile(r"\w+", re.UNICODE)
# Scripts written without spaces between words: Han, kana, Thai, Lao, Khmer, Myanmar.
_UNSPACED: Final = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff"
    "\u1000-\u109f\u1780-\u17ff\U00020000-\U0002fa1f"
)
_UNSPACED_RUN: Final = re.compile(f"[{_UNSPACED}]+")
_SPLIT_RUNS: Final = re.compile(f"[{_UNSPACED}]+|[^{_UNSPACED}]+")
SUGGEST_CANDIDATES: Final = 20_000  # vocabulary terms compared when suggesting a spelling
# Facet tokens: this prefix and 20 hex digits (80 bits of BLAKE3), in the ``facets`` column.
FACET_TOKEN_PREFIX: Final = "0f"
_FACET_TOKEN_BYTES: Final = 10
# What people's words are matched against: every column but the facet tokens.
_TEXT_COLUMNS: Final = "{title body tags materials cjk}"


@dataclass(slots=True)
class Entry:
    """What the index keeps about one record or document."""

    cid: Cid
    type: str
    author: str
    ts: int
    title: str
    text: str
    tags: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    licence: str | None = None
    process: str | None = None
    language: str | None = None
    kind: str | None = None  # a document's kind: searchable and a facet, never a tag


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result."""

    cid: str
    type: str
    author: str
    ts: int
    title: str
    snippet: str
    licence: str | None
    process: str | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page of ranked hits, the facet counts and the offset of the next page."""

    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]]
    next_offset: int | None
    suggestion: str | None = None


def _ints(cursor: sqlite3.Cursor) -> list[int]:
    """The integers of a one-row ``json_group_array`` answer."""
    found: list[int] = json.loads(cursor.fetchone()[0])
    return found


def _count_facets(packed: str) -> dict[str, dict[str, int]]:
    """Facet counts from entries' packed facets joined by _UNIT: per facet the 20
    commonest values."""
    tally = Counter(packed.split(_UNIT))
    tally.pop("", None)
    # One count per value whatever its case, shown in its commonest spelling.
    merged: dict[tuple[str, str], Counter[str]] = {}
    for pair, count in tally.items():
        facet, _, value = pair.partition(_PAIR)
        merged.setdefault((facet, value.casefold()), Counter())[value] += count
    groups: dict[str, list[tuple[int, str]]] = {}
    for (facet, _), spellings in merged.items():
        shown = min(spellings, key=lambda v: (-spellings[v], v))
        groups.setdefault(facet, []).append((-sum(spellings.values()), shown))
    return {
        facet: {value: -negative for negative, value in heapq.nsmallest(20, items)}
        for facet, items in groups.items()
    }


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _steps_text(value: object) -> list[str]:
    out: list[str] = []
    if isinstance(value, list):
        for step in value:
            if isinstance(step, str):
                out.append(step)
            elif isinstance(step, dict) and isinstance(step.get("text"), str):
                out.append(step["text"])
    return out


def _one(value: object) -> str | None:
    return value if isinstance(value, str) else None


def entry_from_fields(
    cid: Cid, rtype: str, author: str, ts: int, fields: Mapping[str, Any]
) -> Entry:
    """An index entry from a record body or a document view's fields."""
    text_parts = [
        *_strings(fields.get("summary")),
        *_strings(fields.get("description")),
        *_steps_text(fields.get("steps")),
        *_strings(fields.get("tradition")),
        *_strings(fields.get("region")),
        *_strings(fields.get("tools")),
        *_strings(fields.get("machine")),
    ]
    return Entry(
        cid=cid,
        type=rtype,
        author=author,
        ts=ts,
        title=_one(fields.get("title")) or "",
        text="\n".join(text_parts),
        tags=_strings(fields.get("tags"))[:64],
        materials=_strings(fields.get("materials"))[:64],
        licence=_one(fields.get("licence")),
        process=_one(fields.get("process")),
        language=_one(fields.get("language")),
    )


def bigrams(text: str) -> str:
    """The runs of unspaced scripts in ``text`` as overlapping character pairs
    ("陶芸の釉薬" -> "陶芸 芸の の釉 釉薬"); a lone character stays as it is."""
    out: list[str] = []
    for run in _UNSPACED_RUN.findall(text):
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return " ".join(out)


def _query_terms(text: str) -> list[str]:
    """FTS5 terms for what a person typed: plain words quoted, runs of unspaced scripts
    as phrases of pairs (or, for one character, a prefix of the pairs it starts)."""
    terms: list[str] = []
    for word in _WORD.findall(text):
        for run in _SPLIT_RUNS.findall(word):
            if _UNSPACED_RUN.fullmatch(run):
                terms.append(f'"{bigrams(run)}"' + ("*" if len(run) == 1 else ""))
            else:
                terms.append('"' + run.replace('"', "") + '"')
    return terms[:MAX_QUERY_WORDS]


def fts_query(text: str) -> str | None:
    """Turn what a person typed into a safe FTS5 query: every word, the last as a prefix."""
    terms = _query_terms(text)
    if not terms:
        return None
    if not terms[-1].endswith("*"):
        terms[-1] += "*"
    return " ".join(terms)


@functools.lru_cache(maxsize=512)
def _words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """The query's words as one pattern (built once per query, not once per hit)."""
    spaced = [w for w in words if not _UNSPACED_RUN.search(w)]
    unspaced = [w for w in words if _UNSPACED_RUN.search(w)]
    alternatives = [re.escape(word) + r"\b" for word in spaced[:-1]]
    if spaced:
        alternatives.append(re.escape(spaced[-1]) + r"\w*")
    found = r"\b(?:" + "|".join(alternatives) + ")" if alternatives else ""
    if unspaced:  # no word boundaries inside these scripts
        found = "|".join([*([found] if found else []), *map(re.escape, unspaced)])
    return re.compile(found, re.IGNORECASE)


def snippet(body: str | None, words: list[str], width: int = 90) -> str:
    """About ``width`` characters of ``body`` around the first query word, matches marked
    ``[like this]`` (the last word also as a prefix, as the search treats it)."""
    if not body or not words:
        return (body or "")[:width]
    pattern = _words_pattern(tuple(words))
    found = pattern.search(body)
    start = 0 if found is None else max(0, found.start() - width // 4)
    if start:
        space = body.find(" ", start)
        start = space + 1 if 0 <= space < found.start() else start  # type: ignore[union-attr]
    end = min(len(body), start + width)
    if end < len(body):
        space = body.rfind(" ", start, end)
        end = space if space > start else end
    text = pattern.sub(r"[\g<0>]", body[start:end].replace("\n", " "))
    return ("… " if start else "") + text + (" …" if end < len(body) else "")


def facet_token(name: str, value: str) -> str:
    """The one FTS5 token that stands for ``name=value`` (value as matched: tags and
    materials lower-cased). Hex digits only, so unicode61 keeps it whole."""
    data = f"{name}\x1f{value}".encode("utf-8", "surrogatepass")
    return FACET_TOKEN_PREFIX + blake3.blake3(data).hexdigest(length=_FACET_TOKEN_BYTES)


def _pack_facets(facets: Iterable[tuple[str, str]]) -> str:
    """The facets a search counts (all but the author), as one string kept on the entry."""
    return _UNIT.join(
        name + _PAIR + value.replace(_UNIT, " ").replace(_PAIR, " ")
        for name, value in sorted(facets)
        if name != "author"
    )


class SearchIndex:
    """The FTS5 index of one hub."""

    def __init__(
        self, path: Path | str, store: Store, documents: Documents, *, cache_size: int = 256
    ) -> None:
        self.store = store
        self.documents = documents
        # Opened by whoever builds the node, then used only by the event loop thread.
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # derived data: rebuilt if lost
        self.path = path
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Popular queries repeat: answers are kept until the index next changes.
        self._cache: OrderedDict[tuple[Any, ...], SearchResult] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._generation = 0
        self._facet_cache: dict[tuple[str, str, int], dict[str, int]] = {}
        self._create()
        self._seen_count = self._count_seen()

    def _create(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            for table in ("entries", "facets", "seen", "fts"):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS entries(
                id INTEGER PRIMARY KEY, cid BLOB UNIQUE NOT NULL, suffix BLOB NOT NULL,
                name TEXT NOT NULL,
                type TEXT NOT NULL, author TEXT NOT NULL, ts INTEGER NOT NULL,
                title TEXT NOT NULL, licence TEXT, process TEXT, facets TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS entries_suffix ON entries(suffix);
            CREATE TABLE IF NOT EXISTS facets(
                facet TEXT NOT NULL, value TEXT NOT NULL, entry INTEGER NOT NULL,
                shown TEXT NOT NULL,
                PRIMARY KEY(facet, value, entry)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS facets_entry ON facets(entry);
            CREATE TABLE IF NOT EXISTS seen(cid BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
                title, body, tags, materials, cjk, facets,
                tokenize='unicode61 remove_diacritics 2');
            """
        )
        # Titles weigh most, then tags and materials, then summaries and steps; a facet
        # token only filters, it never ranks.
        self.db.execute(
            "INSERT INTO fts(fts, rank) VALUES('rank', 'bm25(10.0, 1.0, 4.0, 4.0, 2.0, 0.0)')"
        )
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the SQLite connections."""
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self.db.close()

    def _count_seen(self) -> int:
        count: int = self.db.execute("SELECT count(*) FROM seen").fetchone()[0]
        return count

    @property
    def indexed(self) -> int:
        """How many entries (records and documents) are searchable."""
        count: int = self.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        return count

    # -- writing ------------------------------------------------------------------------

    def _put(self, entry: Entry) -> None:
        db = self.db
        # (facet, value as matched, value as its author spelled it)
        facets: set[tuple[str, str, str]] = {
            ("type", entry.type, entry.type),
            ("author", entry.author, entry.author),
        }
        facets.update(("tag", tag.lower(), tag) for tag in entry.tags)
        facets.update(("material", m.lower(), m) for m in entry.materials)
        for name in ("licence", "process", "language", "kind"):
            value = getattr(entry, name)
            if value:
                facets.add((name, value, value))
        key = entry.cid.bytes
        row = db.execute("SELECT id FROM entries WHERE cid=?", (key,)).fetchone()
        if row is not None:
            db.execute("DELETE FROM fts WHERE rowid=?", (row[0],))
            db.execute("DELETE FROM facets WHERE entry=?", (row[0],))
            db.execute("DELETE FROM entries WHERE id=?", (row[0],))
        cur = db.execute(
            "INSERT INTO entries(cid, suffix, name, type, author, ts, title, licence, process, "
            "facets) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                key,
                _TS.pack(entry.ts) + key,
                str(entry.cid),  # the CID as text, so that a search need not encode it
                entry.type,
                entry.author,
                entry.ts,
                entry.title,
                entry.licence,
                entry.process,
                _pack_facets((name, shown) for name, _, shown in facets if name != "kind"),
            ),
        )
        rowid = cur.lastrowid
        tags = " ".join([*entry.tags, *([entry.kind] if entry.kind else [])])
        materials = " ".join(entry.materials)
        unspaced = bigrams("\n".join((entry.title, entry.text, tags, materials)))
        tokens = " ".join(sorted(facet_token(name, value) for name, value, _ in facets))
        db.execute(
            "INSERT INTO fts(rowid, title, body, tags, materials, cjk, facets) "
            "VALUES (?,?,?,?,?,?,?)",
            (rowid, entry.title, entry.text, tags, materials, unspaced, tokens),
        )
        db.executemany(
            "INSERT OR IGNORE INTO facets(facet, value, entry, shown) VALUES (?,?,?,?)",
            [(name, value, rowid, shown) for name, value, shown in facets],
        )

    def _entry_for(self, record: Record) -> Entry | None:
        if record.type == GENESIS_TYPE:
            try:
                view = self.documents.view(record.cid)
            except ArchiveError:
                return None  # the genesis was rejected; nothing to show
            kind = view.get("kind")
            fields = view.get("fields", {})
            entry = entry_from_fields(record.cid, GENESIS_TYPE, record.author, record.ts, fields)
            entry.kind = kind if isinstance(kind, str) else None
            return entry
        if record.type in INDEXED_TYPES:
            return entry_from_fields(record.cid, record.type, record.author, record.ts, record.body)
        return None

    def add(self, records: Iterable[Record]) -> int:
        """Index records (and the documents their operations edit); return entries written."""
        written = 0
        docs: set[Cid] = set()
        self.db.execute("BEGIN")
        try:
            for record in records:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO seen(cid) VALUES (?)", (record.cid.bytes,)
                )
                self._seen_count += cur.rowcount
                if record.type == OP_TYPE:
                    doc = record.body.get("doc")
                    if isinstance(doc, Cid):
                        docs.add(doc)
                    continue
                entry = self._entry_for(record)
                if entry is not None:
                    self._put(entry)
                    written += 1
            for doc in docs:
                written += self._reindex_doc(doc)
            self.db.execute("COMMIT")
            if written:
                with self._cache_lock:
                    self._generation += 1
                    self._cache.clear()
                    self._facet_cache.clear()
        except BaseException:
            self.db.execute("ROLLBACK")
            self._seen_count = self._count_seen()
            raise
        return written

    def _reindex_doc(self, doc: Cid) -> int:
        try:
            with self.store.read() as txn:
                genesis = get_record(txn, doc)
        except ArchiveError:
            return 0
        entry = self._entry_for(genesis)
        if entry is None:
            return 0
        self._put(entry)
        return 1

    def catch_up(self, batch: int = 2000) -> int:
        """Index every stored record the index has not seen; return how many were new."""
        with self.store.read() as txn:
            total = count_records(txn)
        if total == self._seen_count:
            return 0
        seen = {row[0] for row in self.db.execute("SELECT cid FROM seen")}
        new = 0
        pending: list[Record] = []
        for record in self._unseen(seen):
            pending.append(record)
            if len(pending) >= batch:
                self.add(pending)
                new += len(pending)
                pending = []
        if pending:
            self.add(pending)
            new += len(pending)
        return new

    def _unseen(self, seen: set[bytes]) -> Iterator[Record]:
        # Sorted by time so that a document's genesis is indexed before its operations.
        with self.store.read() as txn:
            keys = [cid.bytes for _, cid in record_times(txn) if cid.bytes not in seen]
        for start in range(0, len(keys), 500):
            with self.store.read() as txn:
                records = []
                for raw in keys[start : start + 500]:
                    try:
                        records.append(get_record(txn, Cid.from_bytes(raw)))
                    except ArchiveError:
                        continue  # fsck's business; search just skips it
            yield from records

    # -- reading ------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (searches run on worker threads, in parallel)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            # Per-term document counts, for counting a one-word search's matches.
            conn.execute("CREATE VIRTUAL TABLE temp.fts_terms USING fts5vocab(main, fts, row)")
            conn.execute("PRAGMA query_only=ON")
            conn.execute(f"PRAGMA mmap_size={READER_MMAP}")
            conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @staticmethod
    def _matched(name: str, value: str) -> str:
        """A filter's value as the index matches it (tags and materials in any case)."""
        return value.lower() if name in ("tag", "material") else value

    def _filters(self, filters: dict[str, str], column: str) -> tuple[str, list[Any]]:
        """SQL for listing by facets (no words): ``column`` in each facet's entries."""
        clauses: list[str] = []
        params: list[Any] = []
        for name, value in sorted(filters.items()):
            clauses.append(f"{column} IN (SELECT entry FROM facets WHERE facet=? AND value=?)")
            params.extend([name, self._matched(name, value)])
        return " AND ".join(clauses), params

    def _facet_match(self, filters: dict[str, str] | None) -> str:
        """The facet filters as FTS5 terms to AND with the words (empty when none)."""
        if not filters:
            return ""
        tokens = " ".join(
            f'"{facet_token(name, self._matched(name, value))}"'
            for name, value in sorted(filters.items())
        )
        return f" AND facets : ({tokens})"

    def search(
        self,
        text: str,
        filters: dict[str, str] | None = None,
        *,
        limit: int = 20,
        offset: int = 0,
    ) -> SearchResult:
        """Ranked matches of ``text`` (all words; the last one as a prefix), with facets.

        Safe to call from several threads at once: each uses its own read connection.
        """
        key = (text, tuple(sorted((filters or {}).items())), limit, offset)
        with self._cache_lock:
            cached = self._cache.get(key)
            generation = self._generation
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        result = self._search(text, filters, limit, offset)
        with self._cache_lock:
            if generation == self._generation and self._cache_size:
                self._cache[key] = result
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def _search(
        self, text: str, filters: dict[str, str] | None, limit: int, offset: int
    ) -> SearchResult:
        query = fts_query(text)
        if query is None:
            return SearchResult([], 0, {}, None)
        db = self._reader()
        result = self._ranked_search(db, text, query, filters, limit, offset)
        if result.total == 0:
            suggestion = self._suggest(db, text, filters)
            if suggestion is not None:
                return SearchResult([], 0, result.facets, None, suggestion)
        return result

    def _ranked_search(
        self,
        db: sqlite3.Connection,
        text: str,
        query: str,
        filters: dict[str, str] | None,
        limit: int,
        offset: int,
    ) -> SearchResult:
        narrow = self._facet_match(filters)
        want = max(FACET_SAMPLE, offset + limit)
        words = _WORD.findall(text)[:MAX_QUERY_WORDS]
        title = f"title : ({query})" + narrow
        anywhere = f"{_TEXT_COLUMNS} : ({query})" + narrow
        # Titles first: BM25 weighs a title match ten times a body match, so when many
        # titles match, those lead; ranking just them is cheaper.
        title_edge, _ = self._edge(db, title)
        edge, newest = None, 0
        if title_edge is None:
            edge, newest = self._edge(db, anywhere)
        if title_edge is None and edge is None:
            # Fewer matches than the window: all of them ranked by BM25 together.
            ranked = self._ranked(db, anywhere, want, None)
            total = newest
        else:
            ranked = self._ranked(db, title, want, title_edge)
            if len(ranked) < want:
                # Only when the titles do not fill the sample are the rest ranked.
                if title_edge is not None:
                    edge = self._edge(db, anywhere)[0]
                seen = set(ranked)
                rest = self._ranked(db, anywhere, want, edge)
                ranked += [i for i in rest if i not in seen][: want - len(ranked)]
            total = self._count(db, anywhere, [] if narrow else words)
        page_ids = ranked[offset : offset + limit]
        sample = ranked[:FACET_SAMPLE]
        hits = self._hits(db, words, page_ids)
        packed = db.execute(
            "SELECT group_concat(facets, char(30)) FROM entries "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sample),),
        ).fetchone()[0]
        facets = _count_facets(packed or "")
        more = offset + limit < total
        return SearchResult(hits, total, facets, offset + limit if more else None)

    def _suggest(
        self, db: sqlite3.Connection, text: str, filters: dict[str, str] | None
    ) -> str | None:
        """The query with each word the index does not know replaced by the closest word
        it does (same first or second letter, length within two), if that finds anything."""
        words = _WORD.findall(text)[:MAX_QUERY_WORDS]
        out, changed = [], False
        for word in words:
            lower = word.lower()
            if _UNSPACED_RUN.search(word) or len(lower) < 3 or self._known_prefix(db, lower):
                out.append(word)
                continue
            candidates: list[str] = []
            for first in dict.fromkeys(lower[:2]):
                candidates += [
                    row[0]
                    for row in db.execute(
                        "SELECT term FROM fts_terms WHERE term >= ? AND term < ? "
                        "AND length(term) BETWEEN ? AND ? AND term NOT GLOB ? LIMIT ?",
                        (
                            first,
                            chr(ord(first) + 1),
                            len(lower) - 2,
                            len(lower) + 2,
                            FACET_TOKEN_PREFIX + "*",
                            SUGGEST_CANDIDATES,
                        ),
                    )
                ]
            best = difflib.get_close_matches(lower, candidates, n=1, cutoff=0.6)
            out.append(best[0] if best else word)
            changed = changed or bool(best)
        if not changed:
            return None
        suggestion = " ".join(out)
        query = fts_query(suggestion)
        if query is None:
            return None
        narrow = self._facet_match(filters)
        found = self._count(
            db, f"{_TEXT_COLUMNS} : ({query})" + narrow, [] if narrow else _WORD.findall(suggestion)
        )
        return suggestion if found else None

    @staticmethod
    def _known_prefix(db: sqlite3.Connection, word: str) -> bool:
        after = word[:-1] + chr(ord(word[-1]) + 1)
        row = db.execute(
            "SELECT 1 FROM fts_terms WHERE term >= ? AND term < ? LIMIT 1", (word, after)
        ).fetchone()
        return row is not None

    def _count(self, db: sqlite3.Connection, match: str, words: list[str]) -> int:
        """How many entries ``match`` finds: from the term list when it is one plain word
        (``words``; empty when facets narrow it) that can only be one indexed term (a common
        word; walking its matches costs more), else by counting."""
        word = words[0].lower() if len(words) == 1 else ""
        if word.isascii() and word.isalnum() and not word.startswith(FACET_TOKEN_PREFIX):
            # unicode61 lowercases ASCII and keeps letters and digits: the word is its term.
            after = word[:-1] + chr(ord(word[-1]) + 1)
            terms = db.execute(
                "SELECT doc FROM fts_terms WHERE term >= ? AND term < ? LIMIT 2", (word, after)
            ).fetchall()
            if len(terms) == 1:
                return int(terms[0][0])
        return int(db.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", [match]).fetchone()[0])

    def _edge(self, db: sqlite3.Connection, match: str) -> tuple[int | None, int]:
        """The rowid of the RANK_WINDOW-th newest match (None when there are fewer), and
        how many of the newest RANK_WINDOW there are."""
        # FTS5 walks a doclist backwards cheaply, and the edge bounds what BM25 scores.
        oldest, count = db.execute(
            "SELECT min(rowid), count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ?"
            " ORDER BY rowid DESC LIMIT ?)",
            [match, RANK_WINDOW],
        ).fetchone()
        return (oldest if count == RANK_WINDOW else None), int(count)

    def _ranked(
        self, db: sqlite3.Connection, match: str, want: int, edge: int | None
    ) -> list[int]:
        """The best ``want`` rowids for one MATCH: the matches from ``edge`` on (the newest
        RANK_WINDOW) ranked by BM25, then (for deep pages) the older ones among themselves."""
        # One row holding the list: each row stepped is a trip through the GIL, which
        # sixteen searches at once would queue for. Ties go to the newer entry, so that a
        # longer page starts with the shorter one and pages follow on without repeats.
        ranked_sql = "SELECT json_group_array(rowid) FROM (SELECT rowid FROM fts WHERE fts MATCH ?"
        order = " ORDER BY rank, rowid DESC LIMIT ?)"
        if edge is None:
            return _ints(db.execute(ranked_sql + order, [match, want]))
        ranked = _ints(db.execute(ranked_sql + " AND rowid >= ?" + order, [match, edge, want]))
        if want > len(ranked):
            ranked += _ints(
                db.execute(
                    ranked_sql + " AND rowid < ?" + order, [match, edge, want - len(ranked)]
                )
            )
        return ranked

    def _hits(
        self,
        db: sqlite3.Connection,
        words: list[str],
        ids: list[int],
    ) -> list[Hit]:
        if not ids:
            return []
        wanted = (json.dumps(ids),)
        rows = {
            row[0]: row
            for row in db.execute(
                "SELECT id, name, type, author, ts, title, licence, process FROM entries "
                "WHERE id IN (SELECT value FROM json_each(?))",
                wanted,
            )
        }
        # Bodies by rowid, without MATCH: a second MATCH would walk every match again.
        bodies = dict(
            db.execute(
                "SELECT rowid, body FROM fts WHERE rowid IN (SELECT value FROM json_each(?))",
                wanted,
            )
        )
        return [
            Hit(
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                snippet(bodies.get(r[0]), words),
                r[6],
                r[7],
            )
            for r in (rows[i] for i in ids if i in rows)
        ]

    def filtered(
        self, filters: dict[str, str], *, limit: int, before: bytes | None
    ) -> tuple[list[Cid], bytes | None]:
        """CIDs matching every facet filter, newest first, for listing; and the next cursor."""
        where, params = self._filters(filters, "e.id")
        if before is not None:
            where = (where + " AND " if where else "") + "e.suffix < ?"
            params.append(before)
        rows = (
            self._reader()
            .execute(
                "SELECT e.cid, e.suffix FROM entries e"
                + (" WHERE " + where if where else "")
                + " ORDER BY e.suffix DESC LIMIT ?",
                [*params, limit + 1],
            )
            .fetchall()
        )
        cids = [Cid.from_bytes(row[0]) for row in rows[:limit]]
        cursor = rows[limit - 1][1] if len(rows) > limit else None
        return cids, cursor

    def facet_values(self, facet: str, limit: int = 50) -> dict[str, int]:
        """The most common values of one facet over the whole index (cached like searches)."""
        key = ("facet-values", facet, limit)
        with self._cache_lock:
            cached = self._facet_cache.get(key)
            generation = self._generation
        if cached is not None:
            return dict(cached)
        values = {
            shown: count
            for shown, count in self._reader().execute(
                "SELECT min(shown), count(*) FROM facets WHERE facet=? GROUP BY value "
                "ORDER BY count(*) DESC, value LIMIT ?",
                (facet, limit),
            )
        }
        with self._cache_lock:
            if generation == self._generation:
                self._facet_cache[key] = values
        return dict(values)
