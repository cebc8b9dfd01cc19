"""Records: listing, reading, links, provenance, and publishing a signed record."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from craftnet.archive import index
from craftnet.archive.cid import Cid
from craftnet.archive.errors import SchemaError
from craftnet.archive.links import kind_of, link_problems
from craftnet.archive.provenance import provenance
from craftnet.archive.records import Record
from craftnet.archive.schemas import TYPE_NAME, build_from_mapping, schema_for, validate_body
from craftnet.archive.store import WriteTxn
from craftnet.node.web.api.common import PREFIX, Route, etag_match, json_response, signing_key
from craftnet.node.web.errors import ApiError, bad_request
from craftnet.node.web.http import (
    context,
    field,
    parse_cid,
    parse_did,
    query_int,
    query_str,
    read_json,
    require_read,
    require_write,
)
from craftnet.node.web.jsonable import record_json
from craftnet.node.web.queries import get_record as fetch_record
from craftnet.node.web.queries import licence_findings, linked_by
from craftnet.node.web.record_schemas import MAX_TAGS, PUBLISHABLE, TAGGED, check_request_shape
from craftnet.node.witness import witnessed_json

TAG: Final = re.compile(r"[^\x00-\x1f\x7f]{1,40}")
LIST_FILTERS: Final = ("tag", "material", "licence", "process")
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9_-]{8,128}")


async def list_records(request: web.Request) -> web.Response:
    """Records newest first, filtered, one page at a time."""
    require_read(request)
    ctx = context(request)
    rtype = query_str(request, "type", 64)
    if rtype is not None and not TYPE_NAME.fullmatch(rtype):
        raise bad_request(f"{rtype[:40]!r} is not a record type like 'design'", "bad-query")
    author = query_str(request, "author", 200)
    if author is not None:
        parse_did(author)
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
    """One record with its checked witnesses, as JSON; the ETag is its CID (and the
    witness count, since witnesses arrive after the record)."""
    require_read(request)
    cid = parse_cid(request.match_info["cid"])
    ctx = context(request)
    record = fetch_record(ctx, cid)
    witnessed = witnessed_json(ctx.store, cid)
    count = len(witnessed["witnesses"])
    etag = f'"{cid}.{count}"' if count else f'"{cid}"'
    if etag_match(request, etag):
        return web.Response(status=304, headers={"ETag": etag})
    return json_response(
        {**record_json(record), "witnessed": witnessed},
        headers={"ETag": etag, "Cache-Control": "max-age=60"},
    )


async def get_record_raw(request: web.Request) -> web.Response:
    """The signed record block itself (DAG-CBOR), to verify elsewhere."""
    require_read(request)
    cid = parse_cid(request.match_info["cid"])
    record = fetch_record(context(request), cid)
    return web.Response(
        body=record.block,
        content_type="application/vnd.ipld.dag-cbor",
        headers={"ETag": f'"{cid}"'},
    )


async def get_links(request: web.Request) -> web.Response:
    """The records that link this one: derivatives, collections, attestations."""
    require_read(request)
    cid = parse_cid(request.match_info["cid"])
    out = [
        {"cid": str(s.cid), "type": s.type, "author": s.author, "ts": s.ts}
        for s in linked_by(context(request), cid)
    ]
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


# -- publishing -------------------------------------------------------------------------


def _tags(value: Any) -> list[str]:
    """Tags in their author's own spelling, without repeats that differ only in case."""
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ApiError(422, "invalid-record", f"tags is a list of at most {MAX_TAGS} strings")
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not TAG.fullmatch(tag) or not tag.strip():
            raise ApiError(422, "invalid-record", "each tag is 1-40 printable characters")
        if tag.strip().casefold() not in (t.casefold() for t in out):
            out.append(tag.strip())
    return out


def _check_links(ctx: Any, rtype: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """What the body links must be what its fields say (archive/links.py, as the CLI checks):
    a target this hub must hold but does not is a conflict with what is here (409: upload
    the file first); a target of the wrong kind is a wrong body (422). Returns warnings."""
    with ctx.store.read() as txn:
        problems = link_problems(txn, rtype, body)
        absent = {p.cid for p in problems if kind_of(txn, p.cid) is None}
    for problem in problems:
        if problem.severity != "error":
            continue
        if problem.cid not in absent:
            raise ApiError(422, "wrong-link", problem.message)
        code = "missing-file" if problem.field in ("files", "steps") else "missing-link"
        raise ApiError(409, code, problem.message + "; upload or fetch it first")
    return [
        {"code": "link", "severity": p.severity, "message": p.message}
        for p in problems
        if p.field != "derived_from"  # the licence findings say that already
    ]


async def publish_record(request: web.Request) -> web.Response:
    """Sign a record with an artisan's key and store it.

    A derivative whose licence conflicts with a parent's is refused (409) unless
    ``confirm_licence`` is true: the artisan is shown the warnings first. A request that
    carries an ``Idempotency-Key`` already used by the same signer publishes nothing new:
    the first answer is given again (200), so a double submit makes one record.
    """
    who = require_write(request)
    ctx = context(request)
    data = await read_json(request)
    idem = request.headers.get(IDEMPOTENCY_HEADER)
    if idem is not None and not IDEMPOTENCY_KEY.fullmatch(idem):
        raise bad_request(f"{IDEMPOTENCY_HEADER} is 8-128 letters, digits, '-' or '_'")
    rtype = field(data, "type", str, max_len=64)
    if rtype not in PUBLISHABLE:
        raise ApiError(422, "invalid-record", f"type must be one of {', '.join(PUBLISHABLE)}")
    body = dict(field(data, "body", dict))
    confirm = field(data, "confirm_licence", bool, required=False) or False
    tags = _tags(body.pop("tags")) if "tags" in body and rtype in TAGGED else None
    check_request_shape(rtype, body)
    try:
        built = build_from_mapping(rtype, body)
    except SchemaError as exc:
        raise ApiError(422, "invalid-record", str(exc)) from None
    final_body = dict(built.body)
    if tags:
        final_body["tags"] = tags
    link_warnings = _check_links(ctx, rtype, built.body)
    findings: list[dict[str, Any]] = []
    parents = list(built.body.get("derived_from", []))
    if parents:
        findings = licence_findings(ctx, built.body.get("licence", ""), parents)
        if any(f["severity"] == "error" for f in findings) and not confirm:
            raise ApiError(
                409,
                "licence-conflict",
                "the licence conflicts with a parent's; read the warnings, then publish "
                "again with confirm_licence: true, or change the licence",
                warnings=findings,
            )
    key = await signing_key(ctx, who, data)
    validate_body(rtype, built_version(rtype), final_body, built.links, key.did)
    record = Record.create(key, rtype, final_body, built.links, v=built_version(rtype))
    warnings = findings + link_warnings
    slot = (key.did, idem) if idem is not None else None

    def write(txn: WriteTxn) -> dict[str, Any] | None:
        # The answer is kept in the record's own transaction: after a crash or a restart,
        # a retry finds both or neither (node/web/replies.py).
        earlier = ctx.published.get(txn, slot) if slot is not None else None
        if earlier is None:
            index.put_record(txn, record)
            if slot is not None:
                ctx.published.put(txn, slot, {"cid": str(record.cid), "warnings": warnings})
        return earlier

    earlier = ctx.store.transact(write)
    if earlier is not None:  # the same submit again: the first answer, no second record
        first = fetch_record(ctx, Cid.parse(earlier["cid"]))
        replay = {"cid": earlier["cid"], "record": record_json(first)}
        replay["warnings"] = earlier["warnings"]
        return json_response(replay, status=200, headers={"Idempotent-Replayed": "true"})
    ctx.search.add([record])
    answer = {"cid": str(record.cid), "record": record_json(record), "warnings": warnings}
    return json_response(answer, status=201, headers={"Location": f"{PREFIX}/records/{record.cid}"})


def built_version(rtype: str) -> int:
    """The schema version this hub writes records of ``rtype`` in."""
    schema = schema_for(rtype)
    return schema.version if schema is not None else 1

ROUTES: Final[list[Route]] = [
    ("GET", "/records", list_records),
    ("POST", "/records", publish_record),
    ("GET", "/records/{cid}", get_record),
    ("GET", "/records/{cid}/raw", get_record_raw),
    ("GET", "/records/{cid}/links", get_links),
    ("GET", "/records/{cid}/provenance", get_provenance),
]
