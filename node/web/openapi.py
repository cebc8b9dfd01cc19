"""The OpenAPI 3.1 document of the API, served at ``/api/v1/openapi.json``.

Written by hand next to the handlers (:mod:`craftnet.node.web.api`) and checked against
them by tests: every route of the app is described here, every path described here is
exercised, and responses are validated against these schemas.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from craftnet.archive.index import SUFFIX_LEN
from craftnet.archive.licences import KNOWN_LICENCES
from craftnet.node.web import record_schemas
from craftnet.node.web.bundles import (
    BUNDLE_NAME_PATTERN,
    FOLDER_PATTERN,
    MAX_FOLDER,
    SIZE_PATTERN,
)
from craftnet.node.web.http import CID_PATTERN, DID_PATTERN, FILE_NAME_PATTERN
from craftnet.node.web.record_schemas import PUBLISHABLE

VERSION: Final = "1.1.0"

_ERROR = {"$ref": "#/components/schemas/Error"}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_NSTR = {"type": ["string", "null"]}


def _obj(
    props: dict[str, Any],
    required: list[str] | None = None,
    extra: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    return schema


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(
    name: str, doc: str, schema: dict[str, Any] | None = None, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": doc,
        "schema": schema or _TEXT,
    }


def _p(name: str, doc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": doc,
        "schema": schema or _STR,
    }


def _int(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


_TEXT = {"type": "string", "maxLength": 200}  # an empty value is the same as none
_CID_STR = {"type": "string", "pattern": CID_PATTERN}
_DID_STR = {"type": "string", "pattern": DID_PATTERN}


def _or_empty(pattern: str) -> dict[str, Any]:
    """A query parameter's pattern: an empty value is the same as none given."""
    return {"type": "string", "pattern": "^(?:" + pattern.strip("^$") + ")?$"}


_SECRET = {"type": "string", "minLength": 1, "maxLength": 1024}
# A new passphrase: zxcvbn scores nothing under 8 characters "hard to guess" (10^8 guesses),
# so the shortest one the hub can accept has 8; hard to guess is still checked (422).
_NEW_SECRET = {
    "type": "string",
    "minLength": 8,
    "maxLength": 1024,
    "description": "hard to guess: zxcvbn score 3 of 4 (POST /api/v1/keys/strength rates one)",
}
_HANDLE = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"}
# Query parameters may be empty (the same as not given).
_SLUG = {"type": "string", "pattern": "^(?:[a-z][a-z0-9]*(?:-[a-z0-9]+)*)?$", "maxLength": 64}
_CID = _p("cid", "a CIDv1 in base32 (b...) with a BLAKE3 hash, as this hub makes", _CID_STR)


def _json(schema: dict[str, Any], doc: str = "OK") -> dict[str, Any]:
    return {"description": doc, "content": {"application/json": {"schema": schema}}}


_TOO_MANY: Final = {
    "429": {
        **_json(
            {"$ref": "#/components/schemas/Error"},
            "a walk-in made too many keys just now (per address and hub-wide)",
        ),
        "headers": {
            "Retry-After": {
                "description": "seconds until a walk-in may try again",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}


def _errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "bad input",
        401: "no or wrong token",
        403: "refused",
        405: "method not allowed (the Allow header lists what is)",
        404: "not found",
        409: "conflict",
        413: "too large",
        415: "wrong media type",
        416: "bad range",
        422: "invalid content",
        429: "too many requests (the Retry-After header says when to try again)",
        507: "no space left where the file was to be written",
    }
    return {str(code): _json(_ERROR, names.get(code, "error")) for code in codes}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    write: bool = False,
    operator: bool = False,
    walk_in: bool = False,
    tag: str = "archive",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if write or operator:
        op["security"] = [{"bearer": []}, {"session": []}]
    if walk_in:  # the operator's policy may open it to walk-in artisans: no credentials
        op["security"] = [{"bearer": []}, {"session": []}, {}]
        op["x-walk-in"] = True
    if operator:
        op["x-operator-only"] = True  # the token, or a session opened with it
    return op


_LIST_PARAMS = [
    _q("type", "record type: technique, design, collection, attestation, doc, ...", _SLUG),
    _q("author", "did:key of the author", _or_empty(DID_PATTERN)),
    _q("tag", "a tag (any case)"),
    _q("material", "a material (any case)"),
    _q("licence", "an SPDX licence id"),
    _q("process", "a fabrication process slug, e.g. 3d-printing"),
    _q("limit", "page size, 1..200 (default 20)", _int(1, 200)),
    _q(
        "cursor",
        "the cursor of the previous page",
        _or_empty(f"^[0-9a-f]{{{2 * SUFFIX_LEN}}}$"),
    ),
]

_SCHEMAS: Final[dict[str, Any]] = {
    "Error": _obj({"error": _obj({"code": _STR, "message": _STR}, ["code", "message"])}, ["error"]),
    "Record": _obj(
        {
            "cid": _STR,
            "type": _STR,
            "v": _INT,
            "author": _STR,
            "ts": _INT,
            "links": _arr(_STR),
            "body": {"type": "object", "description": 'CIDs appear as {"/": "b..."}'},
            "witnessed": {
                "type": "object",
                "description": "GET /records/{cid} only: the record's witnesses, checked "
                "(summary, hubs, organisations, earliest, witnesses); see docs/witness.md",
            },
        },
        ["cid", "type", "v", "author", "ts", "links", "body"],
    ),
    "RecordPage": _obj({"records": _arr(_ref("Record")), "cursor": _NSTR}, ["records", "cursor"]),
    "Warning": _obj(
        {
            "parent": _STR,
            "code": _STR,
            "severity": {"enum": ["error", "warning", "info"]},
            "message": _STR,
        },
        ["code", "severity", "message"],
    ),
    "Provenance": _obj(
        {
            "root": _STR,
            "truncated": {"type": "boolean"},
            "nodes": _arr(
                _obj(
                    {
                        "cid": _STR,
                        "status": _STR,
                        "role": _STR,
                        "depth": _INT,
                        "type": _NSTR,
                        "title": _NSTR,
                        "author": _NSTR,
                        "licence": _NSTR,
                        "attestations": _arr({"type": "object"}),
                    },
                    ["cid", "status", "role", "depth"],
                )
            ),
            "edges": _arr(_obj({"child": _STR, "parent": _STR, "kind": _STR}, ["child", "parent"])),
            "warnings": _arr(
                _obj(
                    {"child": _STR, "parent": _STR, "code": _STR, "severity": _STR, "message": _STR}
                )
            ),
        },
        ["root", "nodes", "edges", "warnings"],
    ),
    "Network": _obj(
        {
            "enabled": {"type": "boolean"},
            "state": _STR,
            "message": _STR,
            "peers": _arr({"type": "object"}),
            "sync": {"type": ["object", "null"]},
        },
        ["enabled", "state", "peers"],
    ),
    "Published": _obj(
        {"cid": _STR, "record": _ref("Record"), "warnings": _arr(_ref("Warning"))},
        ["cid", "record"],
    ),
    "Policy": _obj({"walk_in_keys": {"type": "boolean"}}, ["walk_in_keys"]),
    "FileInfo": _obj(
        {"cid": _STR, "name": _NSTR, "size": _INT, "content_type": _STR},
        ["cid", "size", "content_type"],
    ),
    "Signer": {
        **_obj(
            {
                "artisan": {**_HANDLE, "description": "the artisan's handle on this hub"},
                "passphrase": {**_SECRET, "description": "the passphrase of their key"},
            },
            description="who signs: both, or neither when an artisan's session is logged in "
            "(with the operator's token alone, 401)",
        ),
        "dependentRequired": {"artisan": ["passphrase"], "passphrase": ["artisan"]},
    },
    **{
        f"{rtype.title()}Body": record_schemas.body_schema(rtype)
        for rtype in record_schemas.PUBLISHABLE
    },
    **{
        f"Publish{rtype.title()}": _obj(
            {"type": {"const": rtype}, "body": _ref(f"{rtype.title()}Body")}, ["type", "body"]
        )
        for rtype in record_schemas.PUBLISHABLE
    },
    "BundleHub": _obj(
        {
            "did": _STR,
            "records": {**_INT, "description": "how many records it held, by its summary"},
            "as_of": {**_STR, "description": "when it made that summary (UTC)"},
            "via": {"enum": ["bundle", "have-file", "sync"]},
            "recorded": _NSTR,
        },
        ["did", "records", "as_of", "via"],
    ),
    "BundlePlan": _obj(
        {
            "for": _STR,
            "known": {"type": "boolean", "description": "false: nothing known, all is sent"},
            "hub": _ref("BundleHub"),
            "records": _INT,
            "blocks": _INT,
            "bytes": {**_INT, "description": "the blocks' bytes, as CAR sections"},
            "missing": {**_INT, "description": "linked blocks this hub does not hold"},
            "difference": {"type": "object"},
            "max_size": {"type": ["integer", "null"]},
            "parts": _arr(_obj({"part": _INT, "blocks": _INT, "bytes": _INT}, ["part", "bytes"])),
            "overhead_per_part": {
                **_INT,
                "description": "at most this many more bytes per file: header, this hub's summary",
            },
        },
        ["for", "known", "records", "blocks", "bytes", "parts"],
    ),
}


def _signed(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"allOf": [_ref("Signer"), _obj(props, required)]}


_PATHS: Final[dict[str, Any]] = {
    "/api/v1/openapi.json": {
        "get": _op("This document", {"200": _json({"type": "object"})}, tag="meta")
    },
    "/api/v1/status": {
        "get": _op(
            "The hub: its key, record counts, search index and network state",
            {
                "200": _json(
                    _obj(
                        {
                            "hub": _NSTR,
                            "demo": {"type": "boolean"},
                            "records": _INT,
                            "by_type": {"type": "object"},
                            "searchable": _INT,
                            "network": _ref("Network"),
                            "reads_need_token": {"type": "boolean"},
                            "logged_in": {"type": "boolean"},
                            "artisan": {**_NSTR, "description": "the logged-in artisan"},
                            "operator": {"type": "boolean"},
                            "walk_in_keys": {"type": "boolean"},
                        },
                        ["records", "by_type", "network"],
                    )
                ),
                **_errors(401),
            },
            tag="meta",
        )
    },
    "/api/v1/records": {
        "get": _op(
            "Records newest first, filtered, with cursor pagination",
            {"200": _json(_ref("RecordPage")), **_errors(400, 401)},
            params=_LIST_PARAMS,
        ),
        "post": _op(
            "Publish a record signed by an artisan's key (a derivative with a conflicting "
            "licence needs confirm_licence: true)",
            {
                "201": _json(_ref("Published"), "published"),
                "200": _json(
                    _ref("Published"),
                    "published before with this Idempotency-Key: the first answer again",
                ),
                **_errors(400, 401, 403, 404, 409, 413, 415, 422),
            },
            params=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "one per submit: the same key again publishes nothing new",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$"},
                }
            ],
            body={
                "allOf": [
                    _ref("Signer"),
                    _obj(
                        {
                            "type": {"enum": list(PUBLISHABLE)},
                            "body": {"type": "object"},
                            "confirm_licence": {"type": ["boolean", "null"]},
                        },
                        ["type", "body"],
                    ),
                ],
                "oneOf": [_ref(f"Publish{rtype.title()}") for rtype in PUBLISHABLE],
                "discriminator": {
                    "propertyName": "type",
                    "mapping": {
                        rtype: f"#/components/schemas/Publish{rtype.title()}"
                        for rtype in PUBLISHABLE
                    },
                },
            },
            write=True,
        ),
    },
    "/api/v1/records/{cid}": {
        "get": _op(
            "One record with its checked witnesses (ETag = CID, and the witness count)",
            {
                "200": _json(_ref("Record")),
                "304": {"description": "not modified"},
                **_errors(400, 401, 404),
            },
            params=[_CID],
        )
    },
    "/api/v1/records/{cid}/raw": {
        "get": _op(
            "The signed record block (DAG-CBOR)",
            {
                "200": {
                    "description": "the block",
                    "content": {"application/vnd.ipld.dag-cbor": {"schema": {}}},
                },
                **_errors(400, 401, 404),
            },
            params=[_CID],
        )
    },
    "/api/v1/records/{cid}/links": {
        "get": _op(
            "Records that link this one (derivatives, collections, attestations)",
            {
                "200": _json(
                    _obj(
                        {
                            "cid": _STR,
                            "linked_by": _arr(
                                _obj({"cid": _STR, "type": _STR, "author": _STR, "ts": _INT})
                            ),
                        },
                        ["linked_by"],
                    )
                ),
                **_errors(400, 401, 404),
            },
            params=[_CID],
        )
    },
    "/api/v1/records/{cid}/provenance": {
        "get": _op(
            "The derivation graph: ancestors, descendants, attestations, licence findings",
            {"200": _json(_ref("Provenance")), **_errors(400, 401, 404)},
            params=[
                _CID,
                _q("depth", "how many generations each way, 0..64 (default 16)", _int(0, 64)),
            ],
        )
    },
    "/api/v1/artisans/{did}": {
        "get": _op(
            "An artisan: their work and the attestations about them",
            {
                "200": _json(
                    _obj(
                        {
                            "did": _STR,
                            "handle": _NSTR,
                            "records": _arr(_ref("Record")),
                            "cursor": _NSTR,
                            "attestations": _arr(_ref("Record")),
                        },
                        ["did", "records", "attestations"],
                    )
                ),
                **_errors(400, 401, 404),
            },
            params=[_p("did", "a did:key", _DID_STR), _q("limit", "1..200", _int(1, 200))],
        )
    },
    "/api/v1/search": {
        "get": _op(
            "Ranked full-text search over titles, summaries, steps, tags and materials",
            {
                "200": _json(
                    _obj(
                        {
                            "query": _STR,
                            "total": _INT,
                            "hits": _arr(
                                _obj(
                                    {
                                        "cid": _STR,
                                        "type": _STR,
                                        "author": _STR,
                                        "ts": _INT,
                                        "title": _STR,
                                        "snippet": _STR,
                                        "licence": _NSTR,
                                        "process": _NSTR,
                                    },
                                    ["cid", "type", "title"],
                                )
                            ),
                            "facets": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": _INT,
                                },
                            },
                            "next_offset": {"type": ["integer", "null"]},
                            "suggestion": {
                                **_NSTR,
                                "description": "when nothing matched: a spelling that does",
                            },
                        },
                        ["total", "hits", "facets"],
                    )
                ),
                **_errors(400, 401),
            },
            params=[
                _q(
                    "q",
                    "words to find (all must match; the last may be a prefix)",
                    {"type": "string", "maxLength": 500},
                ),
                *[p for p in _LIST_PARAMS if p["name"] not in ("limit", "cursor")],
                _q("language", "a BCP-47 language tag"),
                _q("limit", "1..100 (default 20)", _int(1, 100)),
                _q("offset", "0..10000", _int(0, 10_000)),
            ],
        )
    },
    "/api/v1/peers": {
        "get": _op(
            "Peers and sync status", {"200": _json(_ref("Network")), **_errors(401)}, tag="network"
        )
    },
    "/api/v1/licences": {
        "get": _op(
            "Known licences and fabrication processes",
            {
                "200": _json(
                    _obj(
                        {
                            "licences": _arr(_obj({"spdx": _STR, "name": _STR})),
                            "processes": _arr(_STR),
                        },
                        ["licences"],
                    )
                )
            },
            tag="meta",
        )
    },
    "/api/v1/licences/check": {
        "get": _op(
            "What to tell the author of a derivative licensed `licence` of the `parent`s",
            {
                "200": _json(
                    _obj({"licence": _STR, "warnings": _arr(_ref("Warning"))}, ["warnings"])
                ),
                **_errors(400, 401, 422),
            },
            params=[
                _q(
                    "licence",
                    "the derivative's SPDX id",
                    {"enum": list(KNOWN_LICENCES)},
                    required=True,
                ),
                _q("parent", "a parent's CID (repeat for several)", _or_empty(CID_PATTERN)),
            ],
        )
    },
    "/api/v1/documents": {
        "get": _op(
            "Every CRDT document on this hub",
            {
                "200": _json(
                    _obj(
                        {
                            "documents": _arr(
                                _obj({"cid": _STR, "kind": _STR, "owner": _STR, "title": _NSTR})
                            )
                        },
                        ["documents"],
                    )
                ),
                **_errors(401),
            },
            tag="documents",
        ),
        "post": _op(
            "Start a document (text fields are texts, tags/materials/tools are sets, steps a list)",
            {
                "201": _json(_obj({"cid": _STR}, ["cid"]), "created"),
                **_errors(400, 401, 403, 404, 415, 422),
            },
            body=_signed(
                {
                    "kind": _STR,
                    "fields": {"type": "object"},
                    "mode": {"enum": ["owner", "editors", "alliance"]},
                    "editors": _arr(_STR),
                },
                ["kind", "fields"],
            ),
            write=True,
            tag="documents",
        ),
    },
    "/api/v1/documents/{cid}": {
        "get": _op(
            "A document's merged state and its conflicts",
            {
                "200": _json(
                    _obj(
                        {
                            "cid": _STR,
                            "kind": _STR,
                            "fields": {"type": "object"},
                            "conflicts": {"type": "object"},
                            "heads": _arr(_STR),
                        },
                        ["cid", "kind", "fields", "conflicts"],
                    )
                ),
                **_errors(400, 401, 404),
            },
            params=[_CID],
            tag="documents",
        )
    },
    "/api/v1/documents/{cid}/history": {
        "get": _op(
            "Every operation of a document",
            {
                "200": _json(
                    _obj(
                        {
                            "cid": _STR,
                            "history": _arr(
                                _obj(
                                    {
                                        "cid": _STR,
                                        "author": _STR,
                                        "ts": _INT,
                                        "status": _STR,
                                        "changes": _arr(_STR),
                                    }
                                )
                            ),
                        },
                        ["history"],
                    )
                ),
                **_errors(400, 401, 404),
            },
            params=[_CID],
            tag="documents",
        )
    },
    "/api/v1/documents/{cid}/blame": {
        "get": _op(
            "Who wrote each field",
            {
                "200": _json(_obj({"cid": _STR, "fields": {"type": "object"}}, ["fields"])),
                **_errors(400, 401, 404),
            },
            params=[_CID],
            tag="documents",
        )
    },
    "/api/v1/documents/{cid}/edits": {
        "post": _op(
            "Edit a document as an artisan",
            {
                "201": _json(_obj({"cid": _STR, "doc": _STR}, ["cid"]), "applied"),
                **_errors(400, 401, 403, 404, 415, 422),
            },
            params=[_CID],
            body=_signed({"fields": {"type": "object"}, "remove": {"type": "object"}}, []),
            write=True,
            tag="documents",
        )
    },
    "/api/v1/keys": {
        "get": _op(
            "Artisans with a key on this hub",
            {
                "200": _json(
                    _obj(
                        {"artisans": _arr(_obj({"handle": _STR, "did": _STR, "created": _INT}))},
                        ["artisans"],
                    )
                ),
                **_errors(401),
            },
            tag="keys",
        ),
        "post": _op(
            "Create an artisan's key, encrypted with their passphrase (the operator, or a "
            "walk-in when the hub's policy allows; a walk-in is then logged in as them)",
            {
                "201": _json(_obj({"handle": _STR, "did": _STR}, ["handle", "did"]), "created"),
                **_errors(400, 401, 403, 409, 415, 422),
                **_TOO_MANY,
            },
            body=_obj({"handle": _HANDLE, "passphrase": _NEW_SECRET}, ["handle", "passphrase"]),
            walk_in=True,
            tag="keys",
        ),
    },
    "/api/v1/keys/import": {
        "post": _op(
            "Import an artisan's exported key (who may: as for creating one)",
            {
                "201": _json(_obj({"handle": _STR, "did": _STR}, ["handle", "did"]), "imported"),
                **_errors(400, 401, 403, 409, 415, 422),
                **_TOO_MANY,
            },
            body=_obj(
                {
                    "handle": _HANDLE,
                    "passphrase": _NEW_SECRET,
                    "key_file": {**_STR, "maxLength": 16 * 1024},
                    "export_passphrase": _SECRET,
                },
                ["handle", "passphrase", "key_file", "export_passphrase"],
            ),
            walk_in=True,
            tag="keys",
        )
    },
    "/api/v1/keys/{handle}/export": {
        "post": _op(
            "Export an artisan's key under an export passphrase",
            {
                "200": _json(_obj({"handle": _STR, "key_file": _STR}, ["key_file"])),
                **_errors(400, 401, 403, 404, 415, 422),
            },
            params=[_p("handle", "the artisan's handle", _HANDLE)],
            body=_obj(
                {"passphrase": _SECRET, "export_passphrase": _NEW_SECRET},
                ["passphrase", "export_passphrase"],
            ),
            write=True,
            tag="keys",
        )
    },
    "/api/v1/keys/strength": {
        "post": _op(
            "How hard a passphrase is to guess (zxcvbn score 0-4), with a hint in plain words",
            {
                "200": _json(
                    _obj(
                        {"score": _int(0, 4), "ok": {"type": "boolean"}, "hint": _STR},
                        ["score", "ok", "hint"],
                    )
                ),
                **_errors(400, 413, 415, 422),
            },
            body=_obj(
                {
                    "passphrase": {"type": "string", "maxLength": 1024},
                    "handle": {"type": ["string", "null"], "maxLength": 40},
                },
                ["passphrase"],
            ),
            tag="keys",
        )
    },
    "/api/v1/policy": {
        "get": _op(
            "What the operator allows: may walk-in artisans add keys?",
            {"200": _json(_ref("Policy"))},
            tag="meta",
        ),
        "put": _op(
            "Change what the operator allows (the operator only)",
            {"200": _json(_ref("Policy")), **_errors(400, 401, 403, 415, 422)},
            body=_obj({"walk_in_keys": {"type": "boolean"}}, ["walk_in_keys"]),
            operator=True,
            tag="meta",
        ),
    },
    "/api/v1/files": {
        "post": {
            **_op(
                "Upload a file (the raw bytes are the body; streamed; size-limited)",
                {"201": _json(_ref("FileInfo"), "stored"), **_errors(400, 401, 403, 413)},
                params=[
                    _q(
                        "name",
                        "the file's name, e.g. lamp.stl (no folders)",
                        {"type": "string", "pattern": FILE_NAME_PATTERN},
                        required=True,
                    )
                ],
                write=True,
                tag="files",
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "minLength": 1,
                            "contentMediaType": "application/octet-stream",
                        }
                    }
                },
            },
        }
    },
    "/api/v1/files/{cid}": {
        "get": _op(
            "A file's bytes (Range supported; ETag = CID)",
            {
                "200": {"description": "the file", "content": {"*/*": {"schema": {}}}},
                "206": {"description": "part of the file", "content": {"*/*": {"schema": {}}}},
                "304": {"description": "not modified"},
                **_errors(400, 401, 404, 409, 416),
            },
            params=[_CID, _q("download", "1: send as an attachment", {"enum": ["0", "1"]})],
            tag="files",
        )
    },
    "/api/v1/files/{cid}/info": {
        "get": _op(
            "A file's name, size and media type",
            {"200": _json(_ref("FileInfo")), **_errors(400, 401, 404)},
            params=[_CID],
            tag="files",
        )
    },
    "/api/v1/files/{cid}/preview.svg": {
        "get": _op(
            "A drawing of a file: an STL model shaded, any other file a card naming its kind",
            {
                "200": {"description": "SVG", "content": {"image/svg+xml": {"schema": {}}}},
                **_errors(400, 401, 404, 409, 413),
            },
            params=[_CID],
            tag="files",
        )
    },
    "/api/v1/session": {
        "post": _op(
            "Log a browser in (sets an HttpOnly session cookie): an artisan with handle and "
            "passphrase, the operator with the hub's API token",
            {
                "200": _json(
                    _obj(
                        {"logged_in": {"type": "boolean"}, "role": _STR, "handle": _NSTR},
                        ["logged_in"],
                    )
                ),
                **_errors(400, 401, 415, 422),
            },
            body={
                "oneOf": [
                    _obj(
                        {"handle": _HANDLE, "passphrase": _SECRET}, ["handle", "passphrase"], False
                    ),
                    _obj({"token": {"type": "string", "maxLength": 200}}, ["token"], False),
                ]
            },
            tag="meta",
        ),
        "delete": _op(
            "Log out",
            {"200": _json(_obj({"logged_in": {"type": "boolean"}}, ["logged_in"]))},
            tag="meta",
        ),
    },
    "/api/v1/bundles/hubs": {
        "get": _op(
            "Hubs whose holdings this one knows (for USB bundles), export folders, the hub key",
            {
                "200": _json(
                    _obj(
                        {
                            "hub": _NSTR,
                            "hubs": _arr(_ref("BundleHub")),
                            "hub_key": {"enum": ["unlocked", "locked", "missing"]},
                            "export_folders": _arr(_STR),
                            "sticks": {
                                **_arr(_STR),
                                "description": "mounted file systems inside the export folders",
                            },
                        },
                        ["hubs", "hub_key", "export_folders", "sticks"],
                    )
                ),
                **_errors(401, 403),
            },
            operator=True,
            tag="bundles",
        )
    },
    "/api/v1/bundles/plan": {
        "get": _op(
            "What a bundle for a hub would hold and its size, before writing (split with max_size)",
            {"200": _json(_ref("BundlePlan")), **_errors(400, 401, 403, 422)},
            params=[
                _q("for", "the did:key of the hub the bundle is for", _DID_STR, required=True),
                _q(
                    "max_size",
                    "split into parts of at most this size: 4M..., 1G, 4G, 1T, or bytes",
                    {"type": "string", "pattern": SIZE_PATTERN},
                ),
            ],
            operator=True,
            tag="bundles",
        )
    },
    "/api/v1/bundles": {
        "post": _op(
            "Write the bundle for a hub (or its numbered parts) into the export folder",
            {
                "201": _json(
                    {
                        "allOf": [
                            _ref("BundlePlan"),
                            _obj(
                                {
                                    "files": _arr(
                                        _obj({"file": _STR, "blocks": _INT, "bytes": _INT})
                                    ),
                                    "bytes_written": _INT,
                                    "summary": {"type": "boolean"},
                                },
                                ["files", "bytes_written"],
                            ),
                        ]
                    },
                    "written",
                ),
                **_errors(400, 401, 403, 409, 413, 415, 422, 507),
            },
            body=_obj(
                {
                    "for": _DID_STR,
                    "max_size": {"type": ["string", "null"], "pattern": SIZE_PATTERN},
                    "name": {
                        "type": ["string", "null"],
                        "pattern": BUNDLE_NAME_PATTERN,
                        "description": "the file name (default to-<hub>-<date>.car)",
                    },
                    "folder": {
                        "type": ["string", "null"],
                        "pattern": FOLDER_PATTERN,
                        "maxLength": MAX_FOLDER,
                        "description": "where to write: an export folder or a folder inside "
                        "one (made if missing); default bundles/ in the hub's home",
                    },
                    "replace": {"type": ["boolean", "null"]},
                    "hub_passphrase": {**_SECRET, "type": ["string", "null"]},
                },
                ["for"],
            ),
            operator=True,
            tag="bundles",
        )
    },
    "/api/v1/bundles/download": {
        "get": _op(
            "The bundle for a hub as one file to save (needs the hub key unlocked)",
            {
                "200": {
                    "description": "a CARv1 bundle",
                    "content": {"application/vnd.ipld.car": {"schema": {}}},
                },
                **_errors(400, 401, 403, 409, 422),
            },
            params=[_q("for", "the did:key of the hub the bundle is for", _DID_STR, required=True)],
            operator=True,
            tag="bundles",
        )
    },
    "/api/v1/bundles/unlock": {
        "post": _op(
            "Unlock the hub's key for this run, so bundles carry its signed summary",
            {
                "200": _json(
                    _obj({"hub_key": {"enum": ["unlocked", "locked", "missing"]}}, ["hub_key"])
                ),
                **_errors(400, 401, 403, 413, 415, 422),
            },
            body=_obj({"passphrase": _SECRET}, ["passphrase"]),
            operator=True,
            tag="bundles",
        )
    },
    "/api/v1/bundles/have": {
        "post": {
            **_op(
                "Take in another hub's have-file (craftnet have): what that hub holds",
                {
                    "200": _json(
                        _obj({"kept": {"type": "boolean"}, "hub": _ref("BundleHub")}, ["hub"])
                    ),
                    **_errors(400, 401, 403, 413, 422),
                },
                operator=True,
                tag="bundles",
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh copy)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "craftnet hub API",
            "version": VERSION,
            "description": (
                "The Digital Craft Archive as one community fabrication hub holds it. "
                'Errors are always {"error": {"code", "message"}}. Reads are open '
                "unless the hub requires its token; writes need the token (Bearer) or a "
                "browser session (cookie plus the header X-Requested-With: craftnet)."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": copy.deepcopy(_PATHS),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "craftnet_session"},
            },
        },
    }


def endpoint_table() -> str:
    """The Markdown table of every operation, as docs/api.md holds it (a test compares)."""
    lines = ["| Method | Path | What it does | Needs |", "| --- | --- | --- | --- |"]
    for path, ops in _PATHS.items():
        for method, op in ops.items():
            needs = "token or session" if "security" in op else "—"
            if op.get("x-operator-only"):
                needs = "operator"
            if op.get("x-walk-in"):
                needs = "operator, or anyone when walk-ins may add keys"
            summary = op["summary"].replace("|", "\\|")
            lines.append(f"| `{method.upper()}` | `{path}` | {summary} | {needs} |")
    return "\n".join(lines) + "\n"
