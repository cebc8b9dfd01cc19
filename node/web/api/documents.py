"""Co-edited entries (CRDT documents): their merged state, history, blame, and edits."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.ops import SET_FIELDS, field_kind
from craftnet.archive.errors import ArchiveError
from craftnet.node.web.api.common import PREFIX, Route, json_response, signing_key
from craftnet.node.web.errors import ApiError, bad_request
from craftnet.node.web.http import (
    context,
    field,
    parse_cid,
    read_json,
    require_read,
    require_write,
)
from craftnet.node.web.jsonable import to_json


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
    who = require_write(request)
    ctx = context(request)
    data = await read_json(request)
    kind = field(data, "kind", str, max_len=64)
    if not re.fullmatch(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*", kind):
        raise ApiError(422, "invalid-record", "kind must be a slug like 'technique'")
    fields = field(data, "fields", dict)
    mode = field(data, "mode", str, required=False) or "alliance"
    editors = field(data, "editors", list, required=False) or []
    key = await signing_key(ctx, who, data)
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
    who = require_write(request)
    ctx = context(request)
    cid = parse_cid(request.match_info["cid"])
    data = await read_json(request)
    fields = field(data, "fields", dict, required=False) or {}
    remove = field(data, "remove", dict, required=False) or {}
    key = await signing_key(ctx, who, data)

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


ROUTES: Final[list[Route]] = [
    ("GET", "/documents", list_documents),
    ("POST", "/documents", create_document),
    ("GET", "/documents/{cid}", get_document),
    ("GET", "/documents/{cid}/history", get_document_history),
    ("GET", "/documents/{cid}/blame", get_document_blame),
    ("POST", "/documents/{cid}/edits", edit_document),
]
