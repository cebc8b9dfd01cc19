"""The web UI: pages rendered from Jinja2 templates (``templates/``, autoescaped).

Handlers gather what a page shows through :mod:`craftnet.node.web.queries` (the same
layer the API uses) and render one template. Pages work without JavaScript for reading;
publishing, logging in and search-as-you-type use ``static/app.js`` against the JSON
API, and design pages turn 3D models with ``static/viewer.js`` (three.js, served by the
hub). Everything is served by the hub itself (no CDN).
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from craftnet.archive import index
from craftnet.archive.cid import Cid
from craftnet.archive.errors import NotFound
from craftnet.archive.licences import KNOWN_LICENCES, check_derivative
from craftnet.archive.provenance import provenance
from craftnet.archive.records import Record
from craftnet.archive.schemas import KNOWN_PROCESSES, record_licence, record_title
from craftnet.node.web import assets, bundles, queries
from craftnet.node.web.context import NodeContext
from craftnet.node.web.errors import ApiError
from craftnet.node.web.graph import render_svg, short_did
from craftnet.node.web.http import (
    Caller,
    caller,
    context,
    parse_cid,
    parse_did,
    query_int,
    query_str,
)
from craftnet.node.web.jsonable import record_json
from craftnet.node.web.search import SEARCH_FACETS_SHOWN

FACET_LABELS: Final = {
    "type": "Type",
    "licence": "Licence",
    "process": "Process",
    "tag": "Tag",
    "material": "Material",
    "language": "Language",
}
# The HTML pattern attribute is compiled with the `v` flag, where a bare "-" in a class
# is an error (and the check silently never runs): escape it.
HANDLE_PATTERN: Final = r"[a-z0-9][a-z0-9\-]{0,39}"
# Licences in plain words, the common choices first.
PLAIN_LICENCES: Final = {
    "CC-BY-SA-4.0": "Share alike: anyone may use, change and sell it if they name you "
    "and share their changes the same way",
    "CC-BY-4.0": "Name me: anyone may use, change and sell it if they name you",
    "CC-BY-NC-SA-4.0": "Not for sale, share alike: anyone may use and change it, not sell "
    "it, and must share changes the same way",
    "CC0-1.0": "No conditions: give it to everyone (public domain)",
    "CC-BY-NC-4.0": "Not for sale: anyone may use and change it if they name you, not sell it",
    "CC-BY-ND-4.0": "No changes: anyone may share it as it is, naming you",
    "CC-BY-NC-ND-4.0": "No changes, not for sale: share it only as it is, naming you",
    "CERN-OHL-S-2.0": "Open hardware, share alike (CERN strongly reciprocal)",
    "CERN-OHL-W-2.0": "Open hardware, weakly reciprocal (CERN)",
    "CERN-OHL-P-2.0": "Open hardware, permissive (CERN)",
    "MIT": "Software, permissive (MIT)",
    "Apache-2.0": "Software, permissive with a patent grant (Apache 2.0)",
    "GPL-3.0-or-later": "Software, share alike (GNU GPL 3 or later)",
}
TECHNIQUE_FACTS: Final = (
    ("tradition", "Tradition"),
    ("region", "Region"),
    ("language", "Language"),
)
COMMON_LICENCES: Final = ("CC-BY-SA-4.0", "CC-BY-4.0", "CC-BY-NC-SA-4.0", "CC0-1.0")


def _who(request: web.Request) -> Caller:
    """Who is asking; on a page, a wrong bearer token is simply nobody."""
    try:
        return caller(request)
    except ApiError:
        return Caller(None)


def render(
    request: web.Request, template: str, title: str, *, status: int = 200, **values: Any
) -> web.Response:
    """A whole page from ``template`` with what every page shows (who is logged in, ...)."""
    ctx = context(request)
    base = {
        "title": title,
        "who": _who(request),
        "demo": ctx.demo,
        "request_path": request.path_qs,
        "names": values.pop("names", None) or {},
        "viewer": False,
    }
    base.update(values)
    response = aiohttp_jinja2.render_template(template, request, base, status=status)
    return response


def error_page(request: web.Request, error: ApiError) -> web.Response:
    """An HTML page for an error met while showing a page."""
    if error.status == 401:
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")
    headings = {404: "not found", 400: "not understood", 403: "not allowed"}
    return render(
        request,
        "error.html",
        "Error",
        status=error.status,
        status_code=error.status,
        heading=headings.get(error.status, error.code),
        message=error.message,
    )


def _read_gate(request: web.Request) -> None:
    ctx = context(request)
    if ctx.config.require_token_for_reads and not _who(request).known:
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")


# -- pages ------------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    """Recent and featured entries, with pictures, and how the hub is doing."""
    _read_gate(request)
    ctx = context(request)
    collections = queries.recent(ctx, "collection", 1)
    featured, featured_cards = None, []
    if collections:
        featured = queries.card(ctx, collections[0])
        items = [c for c in collections[0].body.get("items", [])[:6] if isinstance(c, Cid)]
        featured_cards = queries.cards(ctx, queries.get_records(ctx, items))
    return render(
        request,
        "home.html",
        "Home",
        names=queries.handles(ctx),
        counts=ctx.type_counts(),
        network=ctx.peers.status(),
        featured=featured,
        featured_cards=featured_cards,
        designs=queries.cards(ctx, queries.recent(ctx, "design", 8)),
        techniques=queries.cards(ctx, queries.recent(ctx, "technique", 8)),
        docs=queries.cards(ctx, queries.recent(ctx, "doc", 4)),
    )


def _facet_links(
    q: str, filters: dict[str, str], facets: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    out = []
    for name, label in FACET_LABELS.items():
        values = dict(facets.get(name) or {})
        chosen_value = filters.get(name)
        if chosen_value is not None and chosen_value.casefold() not in (
            v.casefold() for v in values
        ):
            values[chosen_value] = 0
        if not values:
            continue
        links = []
        for value, count in values.items():
            chosen = chosen_value is not None and chosen_value.casefold() == value.casefold()
            params = dict(filters)
            if chosen:
                params.pop(name)
            else:
                params[name] = value
            shown = queries.TYPE_LABELS.get(value, value) if name == "type" else value
            links.append(
                {
                    "query": urlencode({"q": q, **params} if q else params),
                    "chosen": chosen,
                    "shown": shown,
                    "count": count,
                }
            )
        out.append({"label": label, "values": links})
    return out


async def search_page(request: web.Request) -> web.Response:
    """Search with facets and pictures; ``?fragment=1`` gives just the results (as you type)."""
    _read_gate(request)
    ctx = context(request)
    q = query_str(request, "q", 500) or ""
    filters = {n: v for n in FACET_LABELS if (v := query_str(request, n)) is not None}
    offset = query_int(request, "offset", 0, 0, 10_000)
    summary, more, listed = "", "", False
    hits: list[queries.Card] = []
    suggestion: dict[str, str] | None = None
    ctx.search.catch_up()
    if q:
        result = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(ctx.search.search, q, filters, limit=20, offset=offset)
        )
        facets = result.facets
        records = queries.get_records(ctx, [Cid.parse(h.cid) for h in result.hits])
        snippets = {h.cid: h.snippet for h in result.hits}
        hits = []
        for record in records:
            found = queries.card(ctx, record)
            found.extra["snippet"] = snippets.get(found.cid, "")
            hits.append(found)
        plural = "s" if result.total != 1 else ""
        summary = f"{result.total} result{plural} for “{q}”"
        listed = True
        if result.next_offset is not None:
            more = urlencode({"q": q, **filters, "offset": result.next_offset})
        if result.suggestion:
            suggestion = {
                "text": result.suggestion,
                "query": urlencode({"q": result.suggestion, **filters}),
            }
    else:
        facets = {f: ctx.search.facet_values(f, 12) for f in SEARCH_FACETS_SHOWN}
        if filters:
            cids, _ = ctx.search.filtered(filters, limit=50, before=None)
            hits = queries.cards(ctx, queries.get_records(ctx, cids))
            summary = f"{len(hits)} entries (newest first)"
            listed = True
    values: dict[str, Any] = {
        "names": queries.handles(ctx),
        "q": q,
        "facets": _facet_links(q, filters, facets),
        "summary": summary,
        "hits": hits,
        "more": more,
        "suggestion": suggestion,
        "listed": listed,
    }
    if request.query.get("fragment") == "1":
        return render(request, "_results.html", "Search", **values)
    return render(request, "search.html", f"Search {q}" if q else "Search", **values)


def _licence_view(licence: str | None) -> dict[str, str] | None:
    if not licence:
        return None
    known = KNOWN_LICENCES.get(licence)
    return {
        "spdx": licence,
        "name": known.name if known else licence,
        "plain": PLAIN_LICENCES.get(licence, known.name if known else licence),
    }


def _facts(body: Mapping[str, Any], keys: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(label, body[key]) for key, label in keys if isinstance(body.get(key), str)]


def _linked_cards(ctx: NodeContext, cid: Cid) -> list[queries.Card]:
    try:
        linkers = queries.linked_by(ctx, cid, 50)
    except NotFound:
        return []
    shown = [s.cid for s in linkers if s.type in ("collection", "design", "attestation")]
    return queries.cards(ctx, queries.get_records(ctx, shown))


async def record_page(request: web.Request) -> web.StreamResponse:
    """A technique, design, collection or attestation."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    record = queries.get_record(ctx, cid)
    if record.type == "doc":
        raise web.HTTPSeeOther(f"/documents/{cid}")
    names = queries.handles(ctx)
    common: dict[str, Any] = {
        "names": names,
        "record": record,
        "body": record.body,
        "badges": queries.badges(ctx, record.author),
        "type_label": queries.TYPE_LABELS.get(record.type, record.type),
        "flash": "Published. Thank you!" if request.query.get("published") == "1" else None,
    }
    if record.type == "technique":
        return _technique(request, ctx, record, common)
    if record.type == "design":
        return _design(request, ctx, record, common)
    if record.type == "collection":
        items = [c for c in record.body.get("items", []) if isinstance(c, Cid)]
        title = record_title(record) or "Collection"
        return render(
            request,
            "record_collection.html",
            title,
            **common,
            items=queries.cards(ctx, queries.get_records(ctx, items)),
        )
    if record.type == "attestation":
        label = {
            "living-heritage": "Living Heritage: Human Treasure",
            "skill": "Skill",
            "fabricated": "Fabricated",
        }.get(str(record.body.get("kind")), str(record.body.get("kind")))
        title = f"Attestation: {label}"
        return render(request, "record_attestation.html", title, **common)
    dump = json.dumps(record_json(record)["body"], indent=2, ensure_ascii=False)
    return render(request, "record_generic.html", record.type, **common, dump=dump)


def _technique(
    request: web.Request, ctx: NodeContext, record: Record, common: dict[str, Any]
) -> web.Response:
    title = record_title(record) or "Technique"
    steps: list[dict[str, Any]] = []
    images: list[queries.FileView] = []
    for step in record.body.get("steps", []):
        if not isinstance(step, dict):
            continue
        media = [queries.file_view(ctx, m) for m in step.get("media", []) if isinstance(m, Cid)]
        images.extend(m for m in media if m.picture)
        steps.append({"text": step.get("text", ""), "media": media})
    return render(
        request,
        "record_technique.html",
        title,
        **common,
        steps=steps,
        images=images[:12],
        facts=_facts(record.body, TECHNIQUE_FACTS),
        licence=_licence_view(record_licence(record)),
        linked=_linked_cards(ctx, record.cid),
    )


def _design(
    request: web.Request, ctx: NodeContext, record: Record, common: dict[str, Any]
) -> web.Response:
    title = record_title(record) or "Design"
    files = [queries.file_view(ctx, f) for f in record.body.get("files", []) if isinstance(f, Cid)]
    # Models first: the one an artisan turns in the viewer leads the page.
    files.sort(key=lambda f: (f.kind != "model", f.kind != "image"))
    parents, missing, warnings = [], [], []
    for parent in [p for p in record.body.get("derived_from", []) if isinstance(p, Cid)]:
        try:
            found = queries.get_record(ctx, parent)
        except NotFound:
            missing.append(str(parent))
            continue
        parents.append(queries.card(ctx, found))
        for w in check_derivative(record_licence(record), record_licence(found)):
            if w.severity in ("error", "warning"):
                warnings.append({"severity": w.severity, "message": w.message})
    return render(
        request,
        "record_design.html",
        title,
        **common,
        files=files,
        viewer=any(f.viewer for f in files) and assets.viewer_available(),
        facts=_facts(record.body, (("process", "Process"), ("machine", "Machine"))),
        licence=_licence_view(record_licence(record)),
        warnings=warnings,
        parents=parents,
        missing_parents=missing,
        linked=_linked_cards(ctx, record.cid),
    )


async def provenance_page(request: web.Request) -> web.Response:
    """The drawn remix graph of a design."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    with ctx.store.read() as txn:
        graph = provenance(txn, cid).to_dict()
        root = index.get_record(txn, cid)
    names = queries.handles(ctx)
    return render(
        request,
        "provenance.html",
        "Provenance",
        names=names,
        root_title=record_title(root) or str(cid),
        svg=render_svg(graph, names),
        warnings=[w for w in graph["warnings"] if w["severity"] != "info"],
        nodes=graph["nodes"],
    )


def _text_of(item: dict[str, Any]) -> str:
    if "text" in item:
        runs = item["text"]
        return "".join(r.get("text", "") for r in runs) if isinstance(runs, list) else str(runs)
    return str(item.get("value", ""))


async def document_page(request: web.Request) -> web.Response:
    """A co-edited entry: its merged fields, conflicts, and who edited what."""
    _read_gate(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    view = ctx.documents.view(cid)
    blame = ctx.documents.blame(cid)
    history = ctx.documents.history(cid)
    names = queries.handles(ctx)
    fields = view.get("fields", {})
    title = fields.get("title") if isinstance(fields.get("title"), str) else "Co-edited entry"
    rows = []
    for name, info in blame.items():
        row: dict[str, Any] = {"name": name, "kind": info["kind"], "writers": []}
        if info["kind"] == "register":
            row["value"] = info["value"]
            row["lost"] = info["conflicts"]
            row["writers"] = [info.get("author")]
        elif info["kind"] == "set":
            row["members"] = [m["value"] for m in info["members"]]
            row["writers"] = sorted(
                {a.get("author") for m in info["members"] for a in m["added_by"]} - {None}
            )
        elif info["kind"] == "list":
            row["entries"] = [
                {"text": _text_of(item), "author": item.get("author")} for item in info["items"]
            ]
        elif info["kind"] == "text":
            row["runs"] = [
                {
                    "text": r.get("text", ""),
                    "by": names.get(r.get("author", ""), short_did(r.get("author"))),
                }
                for r in info["runs"]
            ]
            row["writers"] = sorted({r.get("author") for r in info["runs"]} - {None})
        else:
            continue
        rows.append(row)
    return render(
        request,
        "document.html",
        str(title),
        names=names,
        cid=str(cid),
        kind=view.get("kind"),
        conflicts=list(view.get("conflicts", {})),
        rows=rows,
        history=history,
    )


async def artisan_page(request: web.Request) -> web.Response:
    """An artisan's work and the attestations they hold; 404 for a did nobody here knows."""
    _read_gate(request)
    ctx = context(request)
    did = parse_did(request.match_info["did"])
    profile = queries.artisan_profile(ctx, did, 100)
    names = queries.handles(ctx)
    works = [r for r in profile.works if r.type in ("technique", "design", "collection", "doc")]
    badges = []
    for att in profile.attestations:
        kind = att.body.get("kind")
        if kind == "living-heritage":
            label = "★ Human Treasure (Living Heritage Program)"
        elif kind == "skill":
            label = f"✓ {att.body.get('skill', '')} · {att.body.get('level', '')}"
        else:
            label = str(kind)
        note = att.body.get("note")
        badges.append(
            {
                "cid": str(att.cid),
                "label": label,
                "author": att.author,
                "note": note if isinstance(note, str) else None,
            }
        )
    name = profile.handle or short_did(did)
    return render(
        request,
        "artisan.html",
        f"Artisan {name}",
        names=names,
        did=did,
        name=name,
        badges=badges,
        works=queries.cards(ctx, works),
    )


async def collections_page(request: web.Request) -> web.Response:
    """Every collection on this hub."""
    _read_gate(request)
    ctx = context(request)
    return render(
        request,
        "collections.html",
        "Collections",
        names=queries.handles(ctx),
        collections=queries.cards(ctx, queries.recent(ctx, "collection", 100)),
    )


async def peers_page(request: web.Request) -> web.Response:
    """Peers and sync status."""
    _read_gate(request)
    ctx = context(request)
    return render(request, "peers.html", "Peers", network=ctx.peers.status(), hub_did=ctx.hub_did)


def _licence_choices() -> dict[str, list[dict[str, str]]]:
    def entry(spdx: str) -> dict[str, str]:
        return {"spdx": spdx, "plain": PLAIN_LICENCES.get(spdx, KNOWN_LICENCES[spdx].name)}

    return {
        "common": [entry(s) for s in COMMON_LICENCES],
        "other": [entry(s) for s in KNOWN_LICENCES if s not in COMMON_LICENCES],
    }


def _publish_values(ctx: NodeContext) -> dict[str, Any]:
    return {
        "handles": sorted(queries.handles(ctx).values()),
        "licences": _licence_choices(),
        # A fresh key per form shown: the same form submitted twice publishes once.
        "idempotency": secrets.token_urlsafe(18),
    }


async def publish_page(request: web.Request) -> web.Response:
    """What would you like to publish?"""
    _read_gate(request)
    return render(request, "publish.html", "Publish")


async def publish_technique_page(request: web.Request) -> web.Response:
    """The guided form to publish a technique: what, steps with photos, materials, licence."""
    _read_gate(request)
    ctx = context(request)
    return render(request, "publish_technique.html", "Publish a technique", **_publish_values(ctx))


async def publish_design_page(request: web.Request) -> web.Response:
    """The guided form to publish a design: files first, then about, origin, licence."""
    _read_gate(request)
    ctx = context(request)
    names = queries.handles(ctx)
    parents = [
        {
            "cid": str(d.cid),
            "title": record_title(d),
            "licence": record_licence(d),
            "by": names.get(d.author) or short_did(d.author),
        }
        for d in queries.recent(ctx, "design", 200)
    ]
    return render(
        request,
        "publish_design.html",
        "Publish a design",
        parents=parents,
        processes=KNOWN_PROCESSES,
        **_publish_values(ctx),
    )


def _next_path(request: web.Request) -> str:
    nxt = query_str(request, "next", 200) or "/"
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        nxt = "/"
    return nxt


async def login_page(request: web.Request) -> web.Response:
    """Log in: artisans with handle and passphrase; the operator with the hub's token."""
    ctx = context(request)
    nxt = _next_path(request)
    return render(
        request,
        "login.html",
        "Log in",
        next_path=nxt,
        handle_pattern=HANDLE_PATTERN,
        walk_in=ctx.policy.walk_in_keys,
        operator_first=nxt.startswith(("/operator", "/bundles")),
    )


async def keys_page(request: web.Request) -> web.Response:
    """Artisans' keys on this hub: make, bring, export."""
    _read_gate(request)
    ctx = context(request)
    names = queries.handles(ctx)
    operator = _who(request).operator
    return render(
        request,
        "keys.html",
        "Artisans",
        names=names,
        artisans=sorted(names.items(), key=lambda kv: kv[1]),
        may_add=operator or ctx.policy.walk_in_keys,
        handle_pattern=HANDLE_PATTERN,
    )


async def operator_page(request: web.Request) -> web.Response:
    """The operator's page: what the hub allows walk-in artisans."""
    ctx = context(request)
    if not _who(request).operator:
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path})}")
    return render(
        request,
        "operator.html",
        "Operator",
        walk_in=ctx.policy.walk_in_keys,
        count=len(queries.artisan_keys(ctx.keystore)),
    )


BUNDLE_SIZES: Final = (
    ("", "one file (no split)"),
    ("1G", "1 GB sticks"),
    ("4G", "4 GB sticks (FAT32's largest file)"),
    ("8G", "8 GB sticks"),
    ("16G", "16 GB sticks"),
    ("32G", "32 GB sticks"),
    ("64G", "64 GB sticks"),
)
VIA_LABELS: Final = {"bundle": "last bundle", "have-file": "have-file", "sync": "last sync"}


def _bundle_choice(request: web.Request, ctx: NodeContext) -> tuple[str | None, str | None]:
    """The hub a bundle is for, from the form: one of the known hubs or another did."""
    chosen = query_str(request, "for")
    other = query_str(request, "other")
    if chosen == "other":
        chosen = other
    if chosen is not None:
        chosen = parse_did(chosen)
        if chosen == ctx.hub_did:
            raise ApiError(422, "bad-hub", "that is this hub itself; choose another hub")
    return chosen, other


async def bundles_page(request: web.Request) -> web.Response:
    """The operator prepares a USB bundle for another hub: the size first, then writing."""
    ctx = context(request)
    if not _who(request).operator:
        raise web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")
    chosen, other = _bundle_choice(request, ctx)
    max_size_text = query_str(request, "max_size", 40) or ""
    plan = None
    if chosen is not None:
        try:
            max_size = bundles.parse_size(max_size_text) if max_size_text else None
        except ValueError as exc:
            raise ApiError(400, "bad-query", str(exc)) from None
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            None, bundles.prepare, ctx.store, chosen, max_size
        )
        plan = prepared.as_dict()
    # Mounted sticks first: the likely place; then the hub's own folder and the others.
    folders = [{"path": path, "label": "Mounted stick"} for path in bundles.sticks(ctx.config)]
    labels = ["This hub's bundles folder"] + ["Export folder"] * len(ctx.config.export_folders)
    folders += [
        {"path": str(path), "label": label}
        for path, label in zip(bundles.export_folders(ctx.config), labels, strict=True)
    ]
    return render(
        request,
        "bundles.html",
        "USB bundles",
        hubs=bundles.known_hubs(ctx.store),
        chosen=chosen,
        other=other if other and other == chosen else None,
        max_size=max_size_text,
        sizes=BUNDLE_SIZES,
        plan=plan,
        folders=folders,
        default_name=bundles.default_name(chosen) if chosen else "",
        hub_key=ctx.signer.state(),
        via_labels=VIA_LABELS,
        human_size=bundles.human_size,
    )


def add_routes(app: web.Application) -> None:
    """Register the pages."""
    app.router.add_get("/", home)
    app.router.add_get("/search", search_page)
    app.router.add_get("/collections", collections_page)
    app.router.add_get("/peers", peers_page)
    app.router.add_get("/login", login_page)
    app.router.add_get("/keys", keys_page)
    app.router.add_get("/operator", operator_page)
    app.router.add_get("/bundles", bundles_page)
    app.router.add_get("/publish", publish_page)
    app.router.add_get("/publish/technique", publish_technique_page)
    app.router.add_get("/publish/design", publish_design_page)
    app.router.add_get("/records/{cid}", record_page)
    app.router.add_get("/records/{cid}/provenance", provenance_page)
    app.router.add_get("/documents/{cid}", document_page)
    app.router.add_get("/artisans/{did}", artisan_page)
