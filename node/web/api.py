"""The JSON API under ``/api/v1/``: reading, searching and writing the archive.

Handlers parse and check their input, call the archive, and raise; the error middleware
(:mod:`craftnet.node.web.app`) turns every exception into ``{"error": {code, message}}``.
Every route here is described in :mod:`craftnet.node.web.openapi`, and a test fails when
the two disagree.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from craftnet.archive import index
from craftnet.archive.blocks import has_block
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.ops import SET_FIELDS, field_kind
from craftnet.archive.errors import ArchiveError, NotFound, SchemaError
from craftnet.archive.licences import KNOWN_LICENCES, check_derivative, validate_licence
from craftnet.archive.provenance import provenance
from craftnet.archive.schemas import (
    KNOWN_PROCESSES,
    TYPE_NAME,
    build_from_mapping,
    record_licence,
)
from craftnet.identity.keys import PrivateKey
from craftnet.identity.keystore import check_name
from craftnet.node.web import fileserve
from craftnet.node.web.auth import SESSION_COOKIE, SESSION_SECONDS
from craftnet.node.web.errors import ApiError, bad_request
from craftnet.node.web.http import (
    context,
    credentials,
    field,
    parse_cid,
    query_int,
    query_str,
    read_json,
    require_read,
    require_write,
)
from craftnet.node.web.jsonable import record_json, to_json
from craftnet.node.web.openapi import openapi_document

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX: Final = "/api/v1"
HANDLE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
KEY_PREFIX: Final = "artisan."
TAG: Final = re.compile(r"[^\x00-\x1f\x7f]{1,40}")
MAX_TAGS: Final = 32
MAX_PASSPHRASE: Final = 1024
PUBLISHABLE: Final = ("technique", "design", "collection", "attestation")
LIST_FILTERS: Final = ("tag", "material", "licence", "process")
SEARCH_FILTERS: Final = ("type", "author", "tag", "material", "licence", "process", "language")


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response with the API's content type."""
    return web.json_response(data, status=status, headers=headers)


def _etag_match(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*") for tag in wanted.split(","))


# -- reading ----------------------------------------------------------------------------


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API."""
    return json_response(openapi_document())


async def get_status(request: web.Request) -> web.Response:
    """The hub: its key, what it holds, whether it syncs."""
    require_read(request)
    ctx = context(request)
    counts = ctx.type_counts()
    total = sum(counts.values())
    return json_response(
        {
            "hub": ctx.hub_did,
            "demo": ctx.demo,
            "records": total,
            "by_type": counts,
            "searchable": ctx.search.indexed,
            "network": ctx.peers.status(),
            "reads_need_token": ctx.config.require_token_for_reads,
            "logged_in": credentials(request) is not None,
        }
    )


async def list_records(request: web.Request) -> web.Response:
    """Records newest first, filtered, one page at a time."""
    require_read(request)
    ctx = context(request)
    rtype = query_str(request, "type", 64)
    if rtype is not None and not TYPE_NAME.fullmatch(rtype):
        raise bad_request(f"{rtype[:40]!r} is not a record type like 'design'", "bad-query")
    author = query_str(request, "author", 200)
    limit = query_int(request, "limit", 20, 1, 200)
    cursor = query_str(request, "cursor", 200)
    facets = {
        name: value for name in LIST_FILTERS if (value := query_str(request, name)) is not None
    }
    if facets:
        if rtype is not None:
            facets["type"] = rtype
        if author is not None:
            facets["author"] = author
        before = _cursor_bytes(cursor)
        ctx.search.catch_up()
        cids, nxt = ctx.search.filtered(facets, limit=limit, before=before)
        with ctx.store.read() as txn:
            records = [index.get_record(txn, cid) for cid in cids]
        next_cursor = nxt.hex() if nxt is not None else None
    else:
        with ctx.store.read() as txn:
            page = index.list_records(txn, type=rtype, author=author, limit=limit, cursor=cursor)
        records, next_cursor = page.records, page.cursor
    return json_response({"records": [record_json(r) for r in records], "cursor": next_cursor})


def _cursor_bytes(cursor: str | None) -> bytes | None:
    if cursor is None:
        return None
    try:
        raw = bytes.fromhex(cursor)
    except ValueError:
        raw = b""
    if len(raw) != index.SUFFIX_LEN:
        raise bad_request(
            "this page cursor is malformed; start again from the first page", "bad-query"
        )
    return raw


async def get_record(request: web.Request) -> web.Response:
    """One record, as JSON; the ETag is its CID."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    etag = f'"{cid}"'
    if _etag_match(request, etag):
        return web.Response(status=304, headers={"ETag": etag})
    with ctx.store.read() as txn:
        record = index.get_record(txn, cid)
    return json_response(
        record_json(record), headers={"ETag": etag, "Cache-Control": "max-age=3600"}
    )


async def get_record_raw(request: web.Request) -> web.Response:
    """The signed record block itself (DAG-CBOR), to verify elsewhere."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    with ctx.store.read() as txn:
        record = index.get_record(txn, cid)
    return web.Response(
        body=record.block,
        content_type="application/vnd.ipld.dag-cbor",
        headers={"ETag": f'"{cid}"'},
    )


async def get_links(request: web.Request) -> web.Response:
    """The records that link this one: derivatives, collections, attestations."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    with ctx.store.read() as txn:
        if not index.has_record(txn, cid) and not has_block(txn, cid):
            raise NotFound(f"{cid} is not in this hub's archive")
        linkers = index.linking_records(txn, cid)[:500]
        out = []
        for linker in linkers:
            summary = index.get_summary(txn, linker)
            out.append(
                {
                    "cid": str(linker),
                    "type": summary.type,
                    "author": summary.author,
                    "ts": summary.ts,
                }
            )
    return json_response({"cid": str(cid), "linked_by": out})


async def get_provenance(request: web.Request) -> web.Response:
    """The derivation graph around a record: ancestors, descendants, licence findings."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    depth = query_int(request, "depth", 16, 0, 64)
    with ctx.store.read() as txn:
        graph = provenance(txn, cid, max_depth=depth)
    return json_response(graph.to_dict())


async def get_artisan(request: web.Request) -> web.Response:
    """An artisan (any did:key): their recent work and the attestations about them."""
    require_read(request)
    ctx = context(request)
    did = request.match_info["did"]
    if not did.startswith("did:key:") or len(did) > 200:
        raise bad_request(f"{did[:80]!r} is not a did:key", "bad-did")
    limit = query_int(request, "limit", 50, 1, 200)
    with ctx.store.read() as txn:
        page = index.list_records(txn, author=did, limit=limit)
        attestations = [index.get_record(txn, c) for c in index.attestations_about(txn, did)[:100]]
    local = [info.name[len(KEY_PREFIX) :] for info in _artisan_keys(ctx) if info.did == did]
    return json_response(
        {
            "did": did,
            "handle": local[0] if local else None,
            "records": [record_json(r) for r in page.records if r.type != "doc-op"],
            "cursor": page.cursor,
            "attestations": [record_json(r) for r in attestations],
        }
    )


async def search(request: web.Request) -> web.Response:
    """Ranked full-text search with facet counts."""
    require_read(request)
    ctx = context(request)
    text = query_str(request, "q", 500) or ""
    limit = query_int(request, "limit", 20, 1, 100)
    offset = query_int(request, "offset", 0, 0, 10_000)
    filters = {n: v for n in SEARCH_FILTERS if (v := query_str(request, n)) is not None}
    ctx.search.catch_up()  # one count when nothing arrived since; indexes what did
    # SQLite ranks without holding the GIL: searches run side by side on worker threads.
    result = await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(ctx.search.search, text, filters, limit=limit, offset=offset)
    )
    return json_response(
        {
            "query": text,
            "total": result.total,
            "hits": [
                {
                    "cid": hit.cid,
                    "type": hit.type,
                    "author": hit.author,
                    "ts": hit.ts,
                    "title": hit.title,
                    "snippet": hit.snippet,
                    "licence": hit.licence,
                    "process": hit.process,
                }
                for hit in result.hits
            ],
            "facets": result.facets,
            "next_offset": result.next_offset,
        }
    )


async def get_peers(request: web.Request) -> web.Response:
    """Peers and sync status (from the node's networking part, if it runs)."""
    require_read(request)
    return json_response(context(request).peers.status())


async def list_licences(request: web.Request) -> web.Response:
    """The licences this hub knows, and what each allows."""
    return json_response(
        {
            "licences": [
                {
                    "spdx": lic.spdx,
                    "name": lic.name,
                    "share_alike": lic.share_alike,
                    "non_commercial": lic.non_commercial,
                    "no_derivatives": lic.no_derivatives,
                }
                for lic in KNOWN_LICENCES.values()
            ],
            "processes": list(KNOWN_PROCESSES),
        }
    )


def _licence_findings(ctx: Any, licence: str, parents: list[Cid]) -> list[dict[str, Any]]:
    findings = []
    with ctx.store.read() as txn:
        for parent in parents:
            try:
                parent_licence = record_licence(index.get_record(txn, parent))
            except NotFound:
                findings.append(
                    {
                        "parent": str(parent),
                        "code": "parent-missing",
                        "severity": "info",
                        "message": f"the parent {parent} is not in this hub's archive",
                    }
                )
                continue
            for warning in check_derivative(licence, parent_licence):
                findings.append(
                    {
                        "parent": str(parent),
                        "code": warning.code,
                        "severity": warning.severity,
                        "message": warning.message,
                    }
                )
    return findings


async def check_licence(request: web.Request) -> web.Response:
    """What to tell the author of a derivative before publishing it."""
    require_read(request)
    ctx = context(request)
    licence = query_str(request, "licence", 80)
    if licence is None:
        raise bad_request("give ?licence=<SPDX id>", "bad-query")
    validate_licence(licence)
    parents_raw = request.query.getall("parent", [])
    if len(parents_raw) > 64:
        raise bad_request("at most 64 parents", "bad-query")
    parents = [parse_cid(p) for p in parents_raw]
    return json_response({"licence": licence, "warnings": _licence_findings(ctx, licence, parents)})


# -- documents --------------------------------------------------------------------------


async def list_documents(request: web.Request) -> web.Response:
    """Every CRDT document this hub holds."""
    require_read(request)
    ctx = context(request)
    docs = ctx.documents.documents()[:1000]
    out = []
    for cid, kind, owner in docs:
        try:
            title = ctx.documents.view(cid).get("fields", {}).get("title")
        except ArchiveError:  # a document whose genesis was rejected has no view
            title = None
        out.append(
            {
                "cid": str(cid),
                "kind": kind,
                "owner": owner,
                "title": title if isinstance(title, str) else None,
            }
        )
    return json_response({"documents": out})


async def get_document(request: web.Request) -> web.Response:
    """A document's merged state: fields and conflicting values."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    view = ctx.documents.view(cid)
    heads = ctx.documents.heads(cid)
    return json_response(
        {
            "cid": str(cid),
            "kind": view["kind"],
            "fields": to_json(view["fields"]),
            "conflicts": to_json(view["conflicts"]),
            "heads": [str(h) for h in heads],
        }
    )


async def get_document_history(request: web.Request) -> web.Response:
    """Every operation of a document, in the order this hub applied them."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    entries = ctx.documents.history(cid)
    return json_response(
        {
            "cid": str(cid),
            "history": [
                {
                    "cid": str(e.cid),
                    "author": e.author,
                    "ts": e.ts,
                    "status": e.status,
                    "reason": e.reason,
                    "parents": [str(p) for p in e.parents],
                    "changes": list(e.changes),
                }
                for e in entries
            ],
        }
    )


async def get_document_blame(request: web.Request) -> web.Response:
    """Which signed operation wrote each field (and the values that lost)."""
    require_read(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    return json_response({"cid": str(cid), "fields": to_json(ctx.documents.blame(cid))})


def _apply_fields(builder: ChangeBuilder, fields: dict[str, Any]) -> None:
    """Turn ``{field: value}`` into changes: set scalars, retype texts, add set members,
    append list items."""
    for name, value in fields.items():
        if not isinstance(name, str):
            raise bad_request("field names are strings")
        kind = field_kind(name) if re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name) else None
        if kind is None:
            raise ApiError(422, "edit-refused", f"{name[:40]!r} is not a field name")
        if kind == "text":
            if not isinstance(value, str):
                raise ApiError(422, "wrong-type", f"{name} is a text field; give a string")
            builder.edit_text(name, value)
        elif kind == "set":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(422, "wrong-type", f"{name} is a set; give a list of strings")
            for member in value:
                builder.add(name, member)
        elif kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(422, "wrong-type", f"{name} is a list; give a list of strings")
            for item in value:
                builder.append(name, item)
        else:
            if isinstance(value, float | dict | list):
                raise ApiError(422, "wrong-type", f"{name} takes a string, integer or boolean")
            builder.set(name, value)


async def create_document(request: web.Request) -> web.Response:
    """Start a CRDT document (e.g. a technique many hubs co-edit), signed by an artisan."""
    require_write(request)
    ctx = context(request)
    data = await read_json(request)
    kind = field(data, "kind", str, max_len=64)
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", kind):
        raise ApiError(422, "invalid-record", "kind must be a slug like 'technique'")
    fields = field(data, "fields", dict)
    mode = field(data, "mode", str, required=False) or "alliance"
    editors = field(data, "editors", list, required=False) or []
    key = await _artisan_key(ctx, data)
    record = ctx.documents.create(
        key, kind, lambda b: _apply_fields(b, fields), mode=mode, editors=editors
    )
    ctx.search.add([record])
    return json_response(
        {"cid": str(record.cid)},
        status=201,
        headers={"Location": f"{PREFIX}/documents/{record.cid}"},
    )


async def edit_document(request: web.Request) -> web.Response:
    """Apply a signed edit: set/retype fields, add or remove set members, append items."""
    require_write(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    data = await read_json(request)
    fields = field(data, "fields", dict, required=False) or {}
    remove = field(data, "remove", dict, required=False) or {}
    key = await _artisan_key(ctx, data)

    def build(builder: ChangeBuilder) -> None:
        _apply_fields(builder, fields)
        for name, members in remove.items():
            if name not in SET_FIELDS or not isinstance(members, list):
                raise ApiError(
                    422, "edit-refused", f"remove takes set fields: {sorted(SET_FIELDS)}"
                )
            for member in members:
                if not isinstance(member, str):
                    raise ApiError(422, "wrong-type", "set members are strings")
                builder.remove(name, member)

    record = ctx.documents.edit(key, cid, build)
    ctx.search.add([record])
    return json_response({"cid": str(record.cid), "doc": str(cid)}, status=201)


# -- artisans' keys ---------------------------------------------------------------------


def _artisan_keys(ctx: Any) -> list[Any]:
    return [info for info in ctx.keystore.list() if info.name.startswith(KEY_PREFIX)]


def _handle(value: Any) -> str:
    if not isinstance(value, str) or not HANDLE.fullmatch(value):
        raise ApiError(
            422,
            "bad-handle",
            "an artisan handle is 1-40 lower-case letters, digits and dashes, like 'amaia'",
        )
    return value


def _passphrase(data: dict[str, Any], name: str = "passphrase") -> str:
    value = field(data, name, str, max_len=MAX_PASSPHRASE)
    if len(value) < 4:
        raise ApiError(422, "weak-passphrase", f"{name} must be at least 4 characters")
    return str(value)


async def _artisan_key(ctx: Any, data: dict[str, Any]) -> PrivateKey:
    """The artisan's key, decrypted with their passphrase (off the event loop: scrypt)."""
    handle = _handle(field(data, "artisan", str, max_len=40))
    passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
    name = KEY_PREFIX + handle
    if not ctx.keystore.has(name):
        raise ApiError(
            404, "not-found", f"no artisan {handle!r} on this hub; create or import a key"
        )
    loop = asyncio.get_running_loop()
    key: PrivateKey = await loop.run_in_executor(None, ctx.keystore.load, name, passphrase)
    return key


async def list_keys(request: web.Request) -> web.Response:
    """The artisans who keep a key on this hub (handles and did:keys; no secrets)."""
    require_read(request)
    ctx = context(request)
    return json_response(
        {
            "artisans": [
                {"handle": i.name[len(KEY_PREFIX) :], "did": i.did, "created": i.created}
                for i in _artisan_keys(ctx)
            ]
        }
    )


async def create_key(request: web.Request) -> web.Response:
    """Make an artisan's own key, kept here encrypted with their passphrase."""
    require_write(request)
    ctx = context(request)
    data = await read_json(request)
    handle = _handle(data.get("handle"))
    passphrase = _passphrase(data)
    name = check_name(KEY_PREFIX + handle)
    if ctx.keystore.has(name):
        raise ApiError(409, "exists", f"the handle {handle!r} is taken on this hub")
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(None, ctx.keystore.create, name, passphrase)
    return json_response({"handle": handle, "did": key.did}, status=201)


async def import_key(request: web.Request) -> web.Response:
    """Bring an artisan's exported key from another hub."""
    require_write(request)
    ctx = context(request)
    data = await read_json(request)
    handle = _handle(data.get("handle"))
    passphrase = _passphrase(data)
    key_file = field(data, "key_file", str, max_len=16 * 1024)
    export_passphrase = field(data, "export_passphrase", str, max_len=MAX_PASSPHRASE)
    name = check_name(KEY_PREFIX + handle)
    if ctx.keystore.has(name):
        raise ApiError(409, "exists", f"the handle {handle!r} is taken on this hub")
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(
        None,
        lambda: ctx.keystore.import_key(
            name, key_file.encode(), passphrase, export_passphrase=export_passphrase
        ),
    )
    return json_response({"handle": handle, "did": key.did}, status=201)


async def export_key(request: web.Request) -> web.Response:
    """An artisan's key, encrypted under an export passphrase, to carry to another hub."""
    require_write(request)
    ctx = context(request)
    handle = _handle(request.match_info["handle"])
    data = await read_json(request)
    passphrase = field(data, "passphrase", str, max_len=MAX_PASSPHRASE)
    export_passphrase = _passphrase(data, "export_passphrase")
    name = KEY_PREFIX + handle
    if not ctx.keystore.has(name):
        raise ApiError(404, "not-found", f"no artisan {handle!r} on this hub")
    loop = asyncio.get_running_loop()
    blob = await loop.run_in_executor(
        None, ctx.keystore.export, name, passphrase, export_passphrase
    )
    return json_response({"handle": handle, "key_file": blob.decode()})


# -- publishing -------------------------------------------------------------------------


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ApiError(422, "invalid-record", f"tags is a list of at most {MAX_TAGS} strings")
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not TAG.fullmatch(tag) or not tag.strip():
            raise ApiError(422, "invalid-record", "each tag is 1-40 printable characters")
        if tag.strip().lower() not in out:
            out.append(tag.strip().lower())
    return out


async def publish_record(request: web.Request) -> web.Response:
    """Sign a record with an artisan's key and store it.

    A derivative whose licence conflicts with a parent's is refused (409) unless
    ``confirm_licence`` is true: the artisan is shown the warnings first.
    """
    require_write(request)
    ctx = context(request)
    data = await read_json(request)
    rtype = field(data, "type", str, max_len=64)
    if rtype not in PUBLISHABLE:
        raise ApiError(422, "invalid-record", f"type must be one of {', '.join(PUBLISHABLE)}")
    body = dict(field(data, "body", dict))
    confirm = field(data, "confirm_licence", bool, required=False) or False
    tags = _tags(body.pop("tags")) if "tags" in body and rtype in ("technique", "design") else None
    try:
        built = build_from_mapping(rtype, body)
    except SchemaError as exc:
        raise ApiError(422, "invalid-record", str(exc)) from None
    final_body = dict(built.body)
    if tags:
        final_body["tags"] = tags
    findings: list[dict[str, Any]] = []
    with ctx.store.read() as txn:
        for cid in built.body.get("files", []):
            if not has_block(txn, cid):
                raise ApiError(
                    422, "missing-file", f"file {cid} is not on this hub; upload it first"
                )
    parents = list(built.body.get("derived_from", []))
    if parents:
        findings = _licence_findings(ctx, built.body.get("licence", ""), parents)
        if any(f["severity"] == "error" for f in findings) and not confirm:
            raise ApiError(
                409,
                "licence-conflict",
                "the licence conflicts with a parent's; read the warnings, then publish "
                "again with confirm_licence: true, or change the licence",
                warnings=findings,
            )
    key = await _artisan_key(ctx, data)
    record = index.publish(ctx.store, key, rtype, final_body, built.links)
    ctx.search.add([record])
    return json_response(
        {"cid": str(record.cid), "record": record_json(record), "warnings": findings},
        status=201,
        headers={"Location": f"{PREFIX}/records/{record.cid}"},
    )


# -- sessions ---------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    """Exchange the API token for a browser session cookie."""
    ctx = context(request)
    data = await read_json(request)
    token = field(data, "token", str, max_len=200)
    if not ctx.gate.token_ok(token):
        raise ApiError(401, "unauthorized", "that is not this hub's API token")
    response = json_response({"logged_in": True})
    response.set_cookie(
        SESSION_COOKIE,
        ctx.gate.open_session(),
        httponly=True,
        samesite="Strict",
        max_age=SESSION_SECONDS,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End the browser session."""
    ctx = context(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        ctx.gate.close_session(sid)
    response = json_response({"logged_in": False})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- the route table --------------------------------------------------------------------

ROUTES: Final[list[tuple[str, str, Handler]]] = [
    ("GET", "/openapi.json", get_openapi),
    ("GET", "/status", get_status),
    ("GET", "/records", list_records),
    ("POST", "/records", publish_record),
    ("GET", "/records/{cid}", get_record),
    ("GET", "/records/{cid}/raw", get_record_raw),
    ("GET", "/records/{cid}/links", get_links),
    ("GET", "/records/{cid}/provenance", get_provenance),
    ("GET", "/artisans/{did}", get_artisan),
    ("GET", "/search", search),
    ("GET", "/peers", get_peers),
    ("GET", "/licences", list_licences),
    ("GET", "/licences/check", check_licence),
    ("GET", "/documents", list_documents),
    ("POST", "/documents", create_document),
    ("GET", "/documents/{cid}", get_document),
    ("GET", "/documents/{cid}/history", get_document_history),
    ("GET", "/documents/{cid}/blame", get_document_blame),
    ("POST", "/documents/{cid}/edits", edit_document),
    ("GET", "/keys", list_keys),
    ("POST", "/keys", create_key),
    ("POST", "/keys/import", import_key),
    ("POST", "/keys/{handle}/export", export_key),
    ("POST", "/files", fileserve.upload),
    ("GET", "/files/{cid}", fileserve.download),
    ("GET", "/files/{cid}/info", fileserve.info),
    ("GET", "/files/{cid}/preview.svg", fileserve.preview),
    ("POST", "/session", login),
    ("DELETE", "/session", logout),
]


def add_routes(app: web.Application) -> None:
    """Register every API route under ``/api/v1``."""
    for method, path, handler in ROUTES:
        app.router.add_route(method, PREFIX + path, handler)
