# ruff: noqa: E501  (HTML templates read better unwrapped)
"""The web UI: server-rendered HTML pages over the same archive the API serves.

Pages work without JavaScript for reading; the publish, key and login forms use a small
script (``static/app.js``) that talks to the JSON API. Everything is served by the hub
itself (no CDN). Every value shown is HTML-escaped; every form control has a label.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from html import escape
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from craftnet.archive import index
from craftnet.archive.cid import Cid
from craftnet.archive.errors import ArchiveError, NotFound
from craftnet.archive.licences import KNOWN_LICENCES, check_derivative
from craftnet.archive.provenance import provenance
from craftnet.archive.records import Record
from craftnet.archive.schemas import KNOWN_PROCESSES, record_licence, record_title
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError
from craftnet.node.web.fileserve import file_meta
from craftnet.node.web.graph import render_svg, short_did
from craftnet.node.web.http import context, credentials, parse_cid, query_int, query_str
from craftnet.node.web.search import SEARCH_FACETS_SHOWN

KEY_PREFIX: Final = "artisan."
FACET_LABELS: Final = {
    "type": "Type",
    "licence": "Licence",
    "process": "Process",
    "tag": "Tag",
    "material": "Material",
    "language": "Language",
}
TYPE_LABELS: Final = {
    "technique": "Technique",
    "design": "Design",
    "collection": "Collection",
    "attestation": "Attestation",
    "doc": "Co-edited entry",
}


def e(value: object) -> str:
    """Escape for HTML text and attributes."""
    return escape("" if value is None else str(value), quote=True)


def names(ctx: NodeContext) -> dict[str, str]:
    """did -> handle for the artisans who keep a key on this hub."""
    try:
        return {
            info.did: info.name[len(KEY_PREFIX) :]
            for info in ctx.keystore.list()
            if info.name.startswith(KEY_PREFIX)
        }
    except ArchiveError:
        return {}


def who(did: str | None, known: dict[str, str]) -> str:
    """A link to an artisan's page, named by handle if this hub knows them."""
    if not did:
        return "unknown"
    label = known.get(did) or short_did(did)
    return f'<a href="/artisans/{e(did)}" title="{e(did)}">{e(label)}</a>'


def page(request: web.Request, title: str, body: str, *, status: int = 200) -> web.Response:
    """A whole HTML page around ``body``."""
    ctx = context(request)
    logged_in = _logged_in(request)
    account = (
        '<a href="/keys">Artisans</a></li><li>'
        '<button type="button" class="linkish" id="logout">Log out</button>'
        if logged_in
        else '<a href="/login">Log in</a>'
    )
    demo = (
        '<p class="demo-banner" role="note">Demo hub: the archive is sample data and the hub '
        "key is stored unencrypted.</p>"
        if ctx.demo
        else ""
    )
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · craftnet hub</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="icon" href="data:,">
<script src="/static/app.js" defer></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><nav aria-label="Main">
<a class="brand" href="/">craftnet <span>Digital Craft Archive</span></a>
<ul>
<li><a href="/search">Search</a></li>
<li><a href="/collections">Collections</a></li>
<li><a href="/publish/technique">Publish technique</a></li>
<li><a href="/publish/design">Publish design</a></li>
<li><a href="/peers">Peers</a></li>
<li>{account}</li>
</ul></nav></header>
{demo}
<main id="main" tabindex="-1">
{body}
</main>
<footer><p>A community fabrication hub of the Global Micro-manufacturing Alliance ·
<a href="/api/v1/openapi.json">API</a></p></footer>
</body></html>"""
    return web.Response(text=html, content_type="text/html", status=status)


def _logged_in(request: web.Request) -> bool:
    try:
        return credentials(request) is not None
    except ApiError:
        return False


def error_page(request: web.Request, error: ApiError) -> web.Response:
    """An HTML page for an error met while showing a page."""
    if error.status == 401:
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path})}")
    body = f"<h1>{e(error.status)}: {e(error.code)}</h1><p>{e(error.message)}</p>"
    return page(request, "Error", body, status=error.status)


def _read_gate(request: web.Request) -> None:
    ctx = context(request)
    if ctx.config.require_token_for_reads and not _logged_in(request):
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path})}")


# -- small pieces -----------------------------------------------------------------------


def card(record: Record, known: dict[str, str], ctx: NodeContext | None = None) -> str:
    """A record in a list."""
    title = record_title(record) or TYPE_LABELS.get(record.type, record.type)
    if record.type == "doc" and ctx is not None:
        try:
            fields = ctx.documents.view(record.cid).get("fields", {})
            title = fields.get("title") if isinstance(fields.get("title"), str) else title
        except ArchiveError:
            pass
    licence = record_licence(record)
    kind = TYPE_LABELS.get(record.type, record.type)
    return (
        f'<li class="card"><a href="/records/{e(record.cid)}">{e(title)}</a>'
        f'<span class="meta">{e(kind)} · by {who(record.author, known)}'
        f"{' · ' + e(licence) if licence else ''}</span></li>"
    )


def _records_list(records: Iterable[Record], known: dict[str, str], ctx: NodeContext) -> str:
    items = "".join(card(r, known, ctx) for r in records)
    return f'<ul class="cards">{items}</ul>' if items else "<p>Nothing here yet.</p>"


def _search_form(q: str = "", autofocus: bool = False) -> str:
    focus = " autofocus" if autofocus else ""
    return (
        '<form class="search" role="search" action="/search" method="get">'
        '<label for="q">Search the archive</label>'
        f'<input id="q" name="q" type="search" value="{e(q)}" '
        f'placeholder="e.g. raku, loom, lamp"{focus}>'
        '<button type="submit">Search</button></form>'
    )


def _file_block(ctx: NodeContext, cid: Cid) -> str:
    try:
        meta = file_meta(ctx.store, cid)
    except (ArchiveError, AttributeError):
        return f'<li class="file missing">File {e(cid)} is not on this hub yet.</li>'
    url = f"/api/v1/files/{cid}"
    ctype = meta["content_type"]
    name = meta["name"] or str(cid)
    if ctype.startswith("image/"):
        preview = f'<img class="preview" src="{e(url)}" alt="Preview of {e(name)}">'
    elif ctype == "model/stl":
        preview = (
            f'<img class="preview" src="{e(url)}/preview.svg" '
            f'alt="Rendered view of the 3D model {e(name)}">'
        )
    else:
        preview = ""
    return (
        f'<li class="file"><figure>{preview}<figcaption>{e(name)} · {e(ctype.split(";")[0])} · '
        f'{meta["size"]:,} bytes · <a href="{e(url)}?download=1">Download</a></figcaption>'
        "</figure></li>"
    )


def _licence_line(licence: str | None) -> str:
    if not licence:
        return ""
    known = KNOWN_LICENCES.get(licence)
    name = known.name if known else licence
    return f'<p class="licence">Licence: <strong title="{e(name)}">{e(licence)}</strong></p>'


def _linked_by(ctx: NodeContext, cid: Cid, known: dict[str, str]) -> str:
    with ctx.store.read() as txn:
        linkers = []
        for linker in index.linking_records(txn, cid)[:50]:
            try:
                linkers.append(index.get_record(txn, linker))
            except ArchiveError:
                continue
    shown = [r for r in linkers if r.type in ("collection", "design", "attestation")]
    if not shown:
        return ""
    return "<section><h2>Referenced by</h2>" + _records_list(shown, known, ctx) + "</section>"


# -- pages ------------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    """Recent and featured entries, and how the hub is doing."""
    _read_gate(request)
    ctx = context(request)
    known = names(ctx)
    with ctx.store.read() as txn:
        techniques = index.list_records(txn, type="technique", limit=6).records
        designs = index.list_records(txn, type="design", limit=6).records
        docs = index.list_records(txn, type="doc", limit=6).records
        collections = index.list_records(txn, type="collection", limit=1).records
        featured: list[Record] = []
        if collections:
            for item in collections[0].body.get("items", [])[:6]:
                try:
                    featured.append(index.get_record(txn, item))
                except ArchiveError:
                    continue
    counts = ctx.type_counts()
    network = ctx.peers.status()
    featured_html = ""
    if collections:
        featured_html = (
            f'<section><h2>Featured: <a href="/records/{e(collections[0].cid)}">'
            f"{e(record_title(collections[0]))}</a></h2>"
            + _records_list(featured, known, ctx)
            + "</section>"
        )
    body = f"""
<h1>Digital Craft Archive</h1>
<p class="lead">Techniques and designs of community fabrication hubs, with where they came from and who vouches for their makers.</p>
{_search_form()}
<section class="status" aria-label="Hub status"><h2>This hub</h2>
<dl><dt>Techniques</dt><dd>{counts.get("technique", 0)}</dd>
<dt>Designs</dt><dd>{counts.get("design", 0)}</dd>
<dt>Co-edited entries</dt><dd>{counts.get("doc", 0)}</dd>
<dt>Network</dt><dd><a href="/peers">{e(network["state"])}</a></dd></dl></section>
{featured_html}
<div class="columns">
<section><h2>Recent techniques</h2>{_records_list(techniques, known, ctx)}</section>
<section><h2>Recent designs</h2>{_records_list(designs, known, ctx)}</section>
<section><h2>Co-edited entries</h2>{_records_list(docs, known, ctx)}</section>
</div>"""
    return page(request, "Home", body)


async def search_page(request: web.Request) -> web.Response:
    """Search with facets."""
    _read_gate(request)
    ctx = context(request)
    known = names(ctx)
    q = query_str(request, "q", 500) or ""
    filters = {n: v for n in FACET_LABELS if (v := query_str(request, n)) is not None}
    offset = query_int(request, "offset", 0, 0, 10_000)
    parts = ["<h1>Search</h1>", _search_form(q, autofocus=not q)]
    summary, listing, more = "", "", ""
    ctx.search.catch_up()
    if q:
        result = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(ctx.search.search, q, filters, limit=20, offset=offset)
        )
        facets = result.facets
        hits = "".join(
            f'<li class="card"><a href="/records/{e(h.cid)}">{e(h.title or h.cid)}</a>'
            f'<span class="meta">{e(TYPE_LABELS.get(h.type, h.type))} · by {who(h.author, known)}'
            f"{' · ' + e(h.licence) if h.licence else ''}</span>"
            f'<p class="snippet">{_snippet(h.snippet)}</p></li>'
            for h in result.hits
        )
        plural = "s" if result.total != 1 else ""
        summary = f'<p role="status">{result.total} result{plural} for “{e(q)}”</p>'
        listing = f'<ul class="cards results">{hits}</ul>' if hits else "<p>No matches.</p>"
        if result.next_offset is not None:
            link = urlencode({"q": q, **filters, "offset": result.next_offset})
            more = f'<p><a href="/search?{e(link)}">More results</a></p>'
    else:
        facets = {f: ctx.search.facet_values(f, 12) for f in SEARCH_FACETS_SHOWN}
        if filters:
            cids, _ = ctx.search.filtered(filters, limit=50, before=None)
            with ctx.store.read() as txn:
                records = [index.get_record(txn, c) for c in cids]
            summary = f'<p role="status">{len(records)} entries (newest first)</p>'
            listing = _records_list(records, known, ctx)
    facet_html = []
    for name, label in FACET_LABELS.items():
        values = dict(facets.get(name) or {})
        if name in filters and filters[name] not in values:
            values[filters[name]] = 0
        if not values:
            continue
        links = []
        for value, count in values.items():
            chosen = filters.get(name) == value
            params = dict(filters)
            if chosen:
                params.pop(name)
            else:
                params[name] = value
            query = urlencode({"q": q, **params} if q else params)
            shown = TYPE_LABELS.get(value, value) if name == "type" else value
            current = ' aria-current="true" class="chosen"' if chosen else ""
            links.append(
                f'<li><a href="/search?{e(query)}"{current}>'
                f'{e(shown)} <span class="count">{count}</span></a></li>'
            )
        facet_html.append(f"<section><h2>{e(label)}</h2><ul>{''.join(links)}</ul></section>")
    parts.append(
        f'<div class="search-layout"><aside class="facets" aria-label="Filters">{"".join(facet_html)}</aside>'
        f'<div class="search-results">{summary}{listing}{more}</div></div>'
    )
    return page(request, f"Search {q}" if q else "Search", "".join(parts))


def _snippet(text: str) -> str:
    # The index marks matches with [ ]; show them as <mark> after escaping the rest.
    return e(text).replace("[", "<mark>").replace("]", "</mark>")


async def record_page(request: web.Request) -> web.StreamResponse:
    """A technique, design, collection or attestation."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    with ctx.store.read() as txn:
        record = index.get_record(txn, cid)
    if record.type == "doc":
        raise web.HTTPSeeOther(f"/documents/{cid}")
    known = names(ctx)
    renderer = {
        "technique": _technique,
        "design": _design,
        "collection": _collection,
        "attestation": _attestation,
    }.get(record.type, _generic)
    title, body = renderer(ctx, record, known)
    return page(request, title, body)


def _badges(ctx: NodeContext, did: str) -> str:
    """Badges for what alliance members vouch about an author (Human Treasure, skills)."""
    shown: list[str] = []
    with ctx.store.read() as txn:
        for cid in index.attestations_about(txn, did)[:20]:
            try:
                body = index.get_record(txn, cid).body
            except ArchiveError:
                continue
            if body.get("kind") == "living-heritage":
                label = "★ Human Treasure"
            elif body.get("kind") == "skill" and isinstance(body.get("level"), str):
                label = f"✓ {body['level']}"
            else:
                continue
            if label not in shown:
                shown.append(label)
    return "".join(f' <span class="badge-inline">{e(label)}</span>' for label in shown)


def _byline(record: Record, known: dict[str, str], ctx: NodeContext | None = None) -> str:
    badges = _badges(ctx, record.author) if ctx is not None else ""
    return (
        f'<p class="byline">{e(TYPE_LABELS.get(record.type, record.type))} by '
        f"{who(record.author, known)}{badges} · "
        f'<code class="cid">{e(record.cid)}</code></p>'
    )


def _list_section(title: str, values: Any) -> str:
    if not isinstance(values, list) or not values:
        return ""
    items = "".join(f"<li>{e(v)}</li>" for v in values if isinstance(v, str))
    return f'<section><h2>{e(title)}</h2><ul class="chips">{items}</ul></section>'


def _technique(ctx: NodeContext, record: Record, known: dict[str, str]) -> tuple[str, str]:
    body = record.body
    title = record_title(record) or "Technique"
    facts = []
    for key, label in (("tradition", "Tradition"), ("region", "Region"), ("language", "Language")):
        if isinstance(body.get(key), str):
            facts.append(f"<dt>{label}</dt><dd>{e(body[key])}</dd>")
    steps = []
    for step in body.get("steps", []):
        if not isinstance(step, dict):
            continue
        media = "".join(_file_block(ctx, m) for m in step.get("media", []) if isinstance(m, Cid))
        steps.append(
            f"<li><p>{e(step.get('text'))}</p>{f'<ul class=files>{media}</ul>' if media else ''}</li>"
        )
    html = (
        f'<article class="technique"><h1>{e(title)}</h1>{_byline(record, known, ctx)}'
        f'<p class="summary">{e(body.get("summary", ""))}</p>'
        f"{'<dl class=facts>' + ''.join(facts) + '</dl>' if facts else ''}"
        f"{_list_section('Materials', body.get('materials'))}"
        f"{_list_section('Tools', body.get('tools'))}"
        f"{_list_section('Tags', body.get('tags'))}"
        f'<section><h2>Steps</h2><ol class="steps">{"".join(steps)}</ol></section>'
        f"{_licence_line(record_licence(record))}"
        f"{_linked_by(ctx, record.cid, known)}</article>"
    )
    return title, html


def _design(ctx: NodeContext, record: Record, known: dict[str, str]) -> tuple[str, str]:
    body = record.body
    title = record_title(record) or "Design"
    files = "".join(_file_block(ctx, f) for f in body.get("files", []) if isinstance(f, Cid))
    parents = [p for p in body.get("derived_from", []) if isinstance(p, Cid)]
    parent_items = []
    warnings = []
    with ctx.store.read() as txn:
        for parent in parents:
            try:
                prec = index.get_record(txn, parent)
            except NotFound:
                parent_items.append(f"<li><code>{e(parent)}</code> (not on this hub)</li>")
                continue
            parent_items.append(card(prec, known))
            for w in check_derivative(record_licence(record), record_licence(prec)):
                if w.severity in ("error", "warning"):
                    warnings.append(f'<li class="{e(w.severity)}">{e(w.message)}</li>')
    facts = []
    for key, label in (("process", "Process"), ("machine", "Machine")):
        if isinstance(body.get(key), str):
            facts.append(f"<dt>{label}</dt><dd>{e(body[key])}</dd>")
    warn_html = (
        f'<div class="warning" role="note"><h2>Licence warnings</h2><ul>{"".join(warnings)}</ul></div>'
        if warnings
        else ""
    )
    html = (
        f'<article class="design"><h1>{e(title)}</h1>{_byline(record, known, ctx)}'
        f'<p class="summary">{e(body.get("description", ""))}</p>'
        f"{'<dl class=facts>' + ''.join(facts) + '</dl>' if facts else ''}"
        f"{_list_section('Materials', body.get('materials'))}"
        f"{_list_section('Tags', body.get('tags'))}"
        f'<section><h2>Files</h2><ul class="files">{files or "<li>No files.</li>"}</ul></section>'
        f"{_licence_line(record_licence(record))}{warn_html}"
        + (
            f'<section><h2>Derived from</h2><ul class="cards">{"".join(parent_items)}</ul></section>'
            if parent_items
            else ""
        )
        + f'<p><a class="button" href="/records/{e(record.cid)}/provenance">See its provenance graph</a></p>'
        f"{_linked_by(ctx, record.cid, known)}</article>"
    )
    return title, html


def _collection(ctx: NodeContext, record: Record, known: dict[str, str]) -> tuple[str, str]:
    title = record_title(record) or "Collection"
    items = []
    with ctx.store.read() as txn:
        for item in record.body.get("items", []):
            try:
                items.append(index.get_record(txn, item))
            except ArchiveError:
                continue
    html = (
        f"<article><h1>{e(title)}</h1>{_byline(record, known)}"
        f'<p class="summary">{e(record.body.get("description", ""))}</p>'
        f"<section><h2>{len(items)} entries</h2>{_records_list(items, known, ctx)}</section></article>"
    )
    return title, html


def _attestation(ctx: NodeContext, record: Record, known: dict[str, str]) -> tuple[str, str]:
    body = record.body
    kind = body.get("kind")
    label = {
        "living-heritage": "Living Heritage: Human Treasure",
        "skill": "Skill",
        "fabricated": "Fabricated",
    }.get(str(kind), str(kind))
    html = (
        f"<article><h1>Attestation: {e(label)}</h1>{_byline(record, known)}"
        f'<dl class="facts"><dt>About</dt><dd>{who(body.get("subject"), known)}</dd>'
        f"<dt>Vouched by</dt><dd>{who(record.author, known)}</dd>"
        + (f"<dt>Skill</dt><dd>{e(body['skill'])}</dd>" if "skill" in body else "")
        + (f"<dt>Level</dt><dd>{e(body['level'])}</dd>" if "level" in body else "")
        + f"</dl><p>{e(body.get('note', ''))}</p></article>"
    )
    return f"Attestation: {label}", html


def _generic(ctx: NodeContext, record: Record, known: dict[str, str]) -> tuple[str, str]:
    import json

    from craftnet.node.web.jsonable import record_json

    dump = json.dumps(record_json(record)["body"], indent=2, ensure_ascii=False)
    html = (
        f"<article><h1>{e(TYPE_LABELS.get(record.type, record.type))}</h1>{_byline(record, known)}"
        f"<pre>{e(dump)}</pre></article>"
    )
    return record.type, html


async def provenance_page(request: web.Request) -> web.Response:
    """The drawn remix graph of a design."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    with ctx.store.read() as txn:
        graph = provenance(txn, cid).to_dict()
        root = index.get_record(txn, cid)
    known = names(ctx)
    svg = render_svg(graph, known)
    warnings = "".join(
        f'<li class="{e(w["severity"])}"><strong>{e(w["code"])}</strong>: {e(w["message"])}</li>'
        for w in graph["warnings"]
        if w["severity"] != "info"
    )
    rows = "".join(
        f'<tr><td><a href="/records/{e(n["cid"])}">{e(n["title"] or n["cid"])}</a></td>'
        f"<td>{e(n['role'])}</td><td>{who(n['author'], known)}</td><td>{e(n['licence'] or '')}</td>"
        f"<td>{e(', '.join(a['kind'] for a in n['attestations']))}</td></tr>"
        for n in graph["nodes"]
    )
    body = (
        f"<h1>Provenance of {e(record_title(root) or cid)}</h1>"
        "<p>Arrows point from a design to the one derived from it; ancestors above, "
        "remixes below. A red dashed arrow marks a licence conflict.</p>"
        f'<div class="graph">{svg}</div>'
        + (
            f'<div class="warning" role="note"><h2>Licence findings</h2><ul>{warnings}</ul></div>'
            if warnings
            else ""
        )
        + "<table><caption>Designs in this graph</caption><thead><tr><th scope=col>Title</th>"
        "<th scope=col>Role</th><th scope=col>Author</th><th scope=col>Licence</th>"
        f"<th scope=col>Attestations</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return page(request, "Provenance", body)


async def document_page(request: web.Request) -> web.Response:
    """A co-edited entry: its merged fields, conflicts, and who edited what."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    view = ctx.documents.view(cid)
    blame = ctx.documents.blame(cid)
    history = ctx.documents.history(cid)
    known = names(ctx)
    fields = view.get("fields", {})
    conflicts = view.get("conflicts", {})
    title = fields.get("title") if isinstance(fields.get("title"), str) else "Co-edited entry"
    rows = []
    for name, info in blame.items():
        if info["kind"] == "register":
            value = e(info["value"])
            writer = who(info.get("author"), known)
            lost = "".join(
                f"<li>{e(c['value'])} by {who(c.get('author'), known)}</li>"
                for c in info["conflicts"]
            )
            extra = (
                f'<div class="conflict"><strong>Conflicting edit(s):</strong><ul>{lost}</ul></div>'
                if lost
                else ""
            )
            rows.append(
                f"<tr><th scope=row>{e(name)}</th><td>{value}{extra}</td><td>{writer}</td></tr>"
            )
        elif info["kind"] == "set":
            members = ", ".join(e(m["value"]) for m in info["members"])
            writers = {a.get("author") for m in info["members"] for a in m["added_by"]}
            rows.append(
                f"<tr><th scope=row>{e(name)}</th><td>{members}</td><td>{', '.join(who(w, known) for w in writers)}</td></tr>"
            )
        elif info["kind"] == "list":
            items = "".join(
                f"<li>{e(_text_of(item))} <span class=meta>({who(item.get('author'), known)})</span></li>"
                for item in info["items"]
            )
            rows.append(f"<tr><th scope=row>{e(name)}</th><td><ol>{items}</ol></td><td></td></tr>")
        elif info["kind"] == "text":
            text = "".join(
                f'<span title="{e(known.get(r.get("author", ""), short_did(r.get("author"))))}">{e(r.get("text", ""))}</span>'
                for r in info["runs"]
            )
            writers = {r.get("author") for r in info["runs"]}
            rows.append(
                f"<tr><th scope=row>{e(name)}</th><td>{text}</td><td>{', '.join(who(w, known) for w in writers)}</td></tr>"
            )
    hist = "".join(
        f"<li><code>{e(h.status)}</code> by {who(h.author, known)}: {e('; '.join(h.changes))}</li>"
        for h in history
    )
    conflict_note = (
        f'<div class="warning" role="note">This entry has conflicting edits in: {e(", ".join(conflicts))}. '
        "The value shown is the latest; the others are listed with it.</div>"
        if conflicts
        else ""
    )
    body = (
        f"<article><h1>{e(title)}</h1><p class=byline>Co-edited {e(view.get('kind'))} · "
        f"<code class=cid>{e(cid)}</code></p>{conflict_note}"
        "<table class=blame><caption>Fields and who edited what</caption><thead><tr>"
        "<th scope=col>Field</th><th scope=col>Value</th><th scope=col>Edited by</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<section><h2>History</h2><ol>{hist}</ol></section></article>"
    )
    return page(request, str(title), body)


def _text_of(item: dict[str, Any]) -> str:
    if "text" in item:
        runs = item["text"]
        return "".join(r.get("text", "") for r in runs) if isinstance(runs, list) else str(runs)
    return str(item.get("value", ""))


async def artisan_page(request: web.Request) -> web.Response:
    """An artisan's work and the attestations they hold."""
    _read_gate(request)
    ctx = context(request)
    did = request.match_info["did"]
    if not did.startswith("did:key:") or len(did) > 200:
        raise ApiError(400, "bad-did", "that is not a did:key")
    known = names(ctx)
    with ctx.store.read() as txn:
        works = [
            r
            for r in index.list_records(txn, author=did, limit=100).records
            if r.type in ("technique", "design", "collection", "doc")
        ]
        atts = [index.get_record(txn, c) for c in index.attestations_about(txn, did)[:50]]
    badges = []
    for att in atts:
        kind = att.body.get("kind")
        label = (
            "★ Human Treasure (Living Heritage Program)"
            if kind == "living-heritage"
            else (
                f"✓ {att.body.get('skill', '')} · {att.body.get('level', '')}"
                if kind == "skill"
                else str(kind)
            )
        )
        note = att.body.get("note")
        badges.append(
            f'<li class="badge"><a href="/records/{e(att.cid)}">{e(label)}</a> vouched by '
            f"{who(att.author, known)}{': ' + e(note) if isinstance(note, str) else ''}</li>"
        )
    name = known.get(did)
    body = (
        f"<h1>Artisan {e(name or short_did(did))}</h1><p><code class=cid>{e(did)}</code></p>"
        f"<section><h2>Attestations</h2>{'<ul class=badges>' + ''.join(badges) + '</ul>' if badges else '<p>None on this hub.</p>'}</section>"
        f"<section><h2>Work</h2>{_records_list(works, known, ctx)}</section>"
    )
    return page(request, f"Artisan {name or short_did(did)}", body)


async def collections_page(request: web.Request) -> web.Response:
    """Every collection on this hub."""
    _read_gate(request)
    ctx = context(request)
    known = names(ctx)
    with ctx.store.read() as txn:
        cols = index.list_records(txn, type="collection", limit=100).records
    body = "<h1>Collections</h1>" + _records_list(cols, known, ctx)
    return page(request, "Collections", body)


async def peers_page(request: web.Request) -> web.Response:
    """Peers and sync status."""
    _read_gate(request)
    ctx = context(request)
    status = ctx.peers.status()
    peers = "".join(f"<li>{_facts(p)}</li>" for p in status.get("peers", []))
    sync = status.get("sync")
    body = (
        "<h1>Peers and sync</h1>"
        f'<p class="status-line" role="status">Status: <strong>{e(status["state"])}</strong>'
        f"{' — ' + e(status.get('message')) if status.get('message') else ''}</p>"
        f"<p>Hub key: <code class=cid>{e(ctx.hub_did or 'unknown')}</code></p>"
        f"<h2>Peers</h2>{'<ul class=peers>' + peers + '</ul>' if peers else '<p>No peers connected.</p>'}"
        + (f"<h2>Sync</h2>{_facts(sync)}" if sync else "")
    )
    return page(request, "Peers", body)


def _facts(value: Any) -> str:
    """A peer or sync report (whatever the networking part gives) as a small list."""
    if isinstance(value, dict):
        rows = "".join(f"<dt>{e(k)}</dt><dd>{_facts(v)}</dd>" for k, v in value.items())
        return f'<dl class="facts">{rows}</dl>'
    if isinstance(value, list):
        return ", ".join(_facts(v) for v in value) or "—"
    return e(value)


def _licence_options(selected: str = "CC-BY-SA-4.0") -> str:
    return "".join(
        f'<option value="{e(s)}"{" selected" if s == selected else ""}>{e(s)} — {e(lic.name)}</option>'
        for s, lic in KNOWN_LICENCES.items()
    )


def _artisan_fields(ctx: NodeContext) -> str:
    handles = sorted(names(ctx).values())
    options = "".join(f'<option value="{e(h)}">{e(h)}</option>' for h in handles)
    return (
        "<fieldset><legend>Sign as</legend>"
        '<label for="artisan">Artisan</label>'
        f'<select id="artisan" name="artisan" required>{options}</select>'
        '<label for="passphrase">Passphrase of your key</label>'
        '<input id="passphrase" name="passphrase" type="password" required autocomplete="current-password">'
        '<p class="hint">No key yet? <a href="/keys">Create or import one</a>.</p></fieldset>'
    )


def _login_hint(request: web.Request) -> str:
    if _logged_in(request):
        return ""
    return '<p class="warning" role="note">Publishing needs this hub\'s API token: <a href="/login">log in</a> first.</p>'


async def publish_technique_page(request: web.Request) -> web.Response:
    """The form to publish a technique."""
    _read_gate(request)
    ctx = context(request)
    body = f"""<h1>Publish a technique</h1>{_login_hint(request)}
<form id="publish-technique" class="publish" data-type="technique" novalidate>
<label for="title">Title</label><input id="title" name="title" required maxlength="200">
<label for="summary">Summary</label><textarea id="summary" name="summary" rows="3" maxlength="4000"></textarea>
<label for="tradition">Tradition</label><input id="tradition" name="tradition" maxlength="200">
<label for="region">Region</label><input id="region" name="region" maxlength="200">
<label for="language">Language (BCP-47, e.g. en, pt-BR)</label><input id="language" name="language" value="en" maxlength="35">
<label for="materials">Materials (comma-separated)</label><input id="materials" name="materials">
<label for="tools">Tools (comma-separated)</label><input id="tools" name="tools">
<label for="tags">Tags (comma-separated)</label><input id="tags" name="tags">
<label for="steps">Steps (one per line)</label><textarea id="steps" name="steps" rows="6" required></textarea>
<label for="licence">Licence</label><select id="licence" name="licence">{_licence_options()}</select>
{_artisan_fields(ctx)}
<div id="form-messages" role="alert" aria-live="assertive"></div>
<button type="submit">Publish technique</button>
</form>"""
    return page(request, "Publish a technique", body)


async def publish_design_page(request: web.Request) -> web.Response:
    """The form to publish a design with files, warning about licence conflicts first."""
    _read_gate(request)
    ctx = context(request)
    known = names(ctx)
    with ctx.store.read() as txn:
        designs = index.list_records(txn, type="design", limit=200).records
    parent_opts = "".join(
        f'<option value="{e(d.cid)}">{e(record_title(d))} — {e(record_licence(d))} '
        f"(by {e(known.get(d.author) or short_did(d.author))})</option>"
        for d in designs
    )
    processes = "".join(f'<option value="{p}">{p}</option>' for p in KNOWN_PROCESSES)
    body = f"""<h1>Publish a design</h1>{_login_hint(request)}
<form id="publish-design" class="publish" data-type="design" novalidate>
<label for="title">Title</label><input id="title" name="title" required maxlength="200">
<label for="description">Description</label><textarea id="description" name="description" rows="3" maxlength="4000"></textarea>
<label for="files">Files (STL, STEP, SVG, G-code, PDF, photos)</label><input id="files" name="files" type="file" multiple>
<progress id="upload-progress" max="100" value="0" hidden aria-label="Upload progress"></progress>
<label for="process">Process</label><select id="process" name="process"><option value="">(none)</option>{processes}</select>
<label for="machine">Machine</label><input id="machine" name="machine" maxlength="200">
<label for="materials">Materials (comma-separated)</label><input id="materials" name="materials">
<label for="tags">Tags (comma-separated)</label><input id="tags" name="tags">
<label for="derived_from">Derived from (optional)</label>
<select id="derived_from" name="derived_from"><option value="">(an original design)</option>{parent_opts}</select>
<label for="licence">Licence</label><select id="licence" name="licence">{_licence_options()}</select>
<div id="licence-warnings" class="warning" role="status" aria-live="polite" hidden></div>
<p id="confirm-row" hidden><input type="checkbox" id="confirm_licence" name="confirm_licence">
<label for="confirm_licence" class="inline">I have read the licence warnings and publish anyway</label></p>
{_artisan_fields(ctx)}
<div id="form-messages" role="alert" aria-live="assertive"></div>
<button type="submit">Publish design</button>
</form>"""
    return page(request, "Publish a design", body)


async def login_page(request: web.Request) -> web.Response:
    """Log in with the hub's API token."""
    nxt = query_str(request, "next", 200) or "/"
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    body = f"""<h1>Log in</h1>
<p>Enter the API token that <code>craftnet serve</code> printed when this hub first started.</p>
<form id="login" data-next="{e(nxt)}">
<label for="token">API token</label><input id="token" name="token" type="password" required autocomplete="current-password">
<div id="form-messages" role="alert" aria-live="assertive"></div>
<button type="submit">Log in</button></form>"""
    return page(request, "Log in", body)


async def keys_page(request: web.Request) -> web.Response:
    """Artisans' keys on this hub: create, import, export."""
    _read_gate(request)
    ctx = context(request)
    known = names(ctx)
    rows = "".join(
        f"<li>{e(h)} — {who(d, known)}</li>" for d, h in sorted(known.items(), key=lambda kv: kv[1])
    )
    body = f"""<h1>Artisans on this hub</h1>{_login_hint(request)}
<p>Each artisan signs with their own key, kept here encrypted with their passphrase. Export it to move to another hub.</p>
<ul>{rows or "<li>None yet.</li>"}</ul>
<div class="columns">
<form id="key-create" class="keyform"><h2>Create a key</h2>
<label for="c-handle">Handle (lower case, e.g. amaia)</label><input id="c-handle" name="handle" required pattern="[a-z0-9][a-z0-9-]*">
<label for="c-pass">Passphrase</label><input id="c-pass" name="passphrase" type="password" required autocomplete="new-password">
<button type="submit">Create</button></form>
<form id="key-import" class="keyform"><h2>Import a key</h2>
<label for="i-handle">Handle</label><input id="i-handle" name="handle" required>
<label for="i-file">Exported key file</label><textarea id="i-file" name="key_file" rows="4" required></textarea>
<label for="i-export">Passphrase it was exported with</label><input id="i-export" name="export_passphrase" type="password" required>
<label for="i-pass">New passphrase on this hub</label><input id="i-pass" name="passphrase" type="password" required autocomplete="new-password">
<button type="submit">Import</button></form>
<form id="key-export" class="keyform"><h2>Export a key</h2>
<label for="x-handle">Handle</label><input id="x-handle" name="handle" required>
<label for="x-pass">Your passphrase</label><input id="x-pass" name="passphrase" type="password" required>
<label for="x-export">Export passphrase</label><input id="x-export" name="export_passphrase" type="password" required>
<button type="submit">Export</button>
<label for="x-out">Exported key (copy it to a USB stick)</label><textarea id="x-out" rows="4" readonly></textarea></form>
</div>
<div id="form-messages" role="alert" aria-live="assertive"></div>"""
    return page(request, "Artisans", body)


def add_routes(app: web.Application) -> None:
    """Register the pages."""
    app.router.add_get("/", home)
    app.router.add_get("/search", search_page)
    app.router.add_get("/collections", collections_page)
    app.router.add_get("/peers", peers_page)
    app.router.add_get("/login", login_page)
    app.router.add_get("/keys", keys_page)
    app.router.add_get("/publish/technique", publish_technique_page)
    app.router.add_get("/publish/design", publish_design_page)
    app.router.add_get("/records/{cid}", record_page)
    app.router.add_get("/records/{cid}/provenance", provenance_page)
    app.router.add_get("/documents/{cid}", document_page)
    app.router.add_get("/artisans/{did}", artisan_page)
