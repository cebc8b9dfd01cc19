"""The OpenAPI document and the app agree, and docs/api.md agrees with both.

* every route the app serves under /api/v1 is documented, and every documented
  operation is a route of the app;
* every documented operation is exercised here against a real hub holding the demo
  archive, and each answer's status is one the document lists and its JSON body
  validates against the documented schema (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from craftnet.node.web.app import create_app
from craftnet.node.web.openapi import endpoint_table, openapi_document
from tests.node.web.web_hub import Hub, Reply

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
DEMO_PASS = "demo-passphrase"
FAR_HUB = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"  # a hub met by stick


def documented() -> set[tuple[str, str]]:
    """(METHOD, path template) of every documented operation."""
    return {
        (method.upper(), path)
        for path, ops in openapi_document()["paths"].items()
        for method in ops
    }


def test_every_route_is_documented_and_every_documented_route_exists(demo_hub: Hub) -> None:
    app = create_app(demo_hub.ctx)
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }
    assert served == documented()


def test_the_document_is_openapi_3_1_and_valid_json_schema() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["summary"] and op["responses"]
            for param in op.get("parameters", []):
                assert param["in"] in ("query", "path", "header") and param["description"]


# -- exercising every operation --------------------------------------------------------

Call = Callable[[Hub], Reply]


def _cid(hub: Hub, label: str) -> str:
    assert hub.seeded is not None
    return str(hub.seeded.records[label])


def _file(hub: Hub, name: str) -> str:
    assert hub.seeded is not None
    return str(hub.seeded.files[name])


def _doc(hub: Hub) -> str:
    assert hub.seeded is not None
    return str(hub.seeded.document)


def _did(hub: Hub, handle: str) -> str:
    assert hub.seeded is not None
    return hub.seeded.artisans[handle]


EXAMPLES: list[tuple[str, str, Call]] = [
    ("GET", "/api/v1/openapi.json", lambda h: h.get("/api/v1/openapi.json")),
    ("GET", "/api/v1/status", lambda h: h.get("/api/v1/status")),
    ("GET", "/api/v1/records", lambda h: h.get("/api/v1/records?type=design&limit=2")),
    ("GET", "/api/v1/records", lambda h: h.get("/api/v1/records?limit=0")),
    (
        "POST",
        "/api/v1/records",
        lambda h: h.post(
            "/api/v1/records",
            {
                "type": "design",
                "artisan": "rosa",
                "passphrase": DEMO_PASS,
                "body": {
                    "title": "Contract remix",
                    "licence": "CC-BY-4.0",
                    "derived_from": [_cid(h, "shade")],
                },
            },
        ),
    ),
    (
        "POST",
        "/api/v1/records",
        lambda h: h.post(
            "/api/v1/records",
            {
                "type": "technique",
                "artisan": "rosa",
                "passphrase": DEMO_PASS,
                "body": {
                    "title": "Filament from bottles",
                    "steps": ["Cut", "Extrude"],
                    "licence": "CC-BY-4.0",
                    "tags": ["recycling"],
                },
            },
        ),
    ),
    ("POST", "/api/v1/records", lambda h: h.request("POST", "/api/v1/records", {})),
    ("GET", "/api/v1/records/{cid}", lambda h: h.get(f"/api/v1/records/{_cid(h, 'raku')}")),
    ("GET", "/api/v1/records/{cid}", lambda h: h.get("/api/v1/records/nope")),
    ("GET", "/api/v1/records/{cid}/raw", lambda h: h.get(f"/api/v1/records/{_cid(h, 'raku')}/raw")),
    (
        "GET",
        "/api/v1/records/{cid}/links",
        lambda h: h.get(f"/api/v1/records/{_cid(h, 'base')}/links"),
    ),
    (
        "GET",
        "/api/v1/records/{cid}/provenance",
        lambda h: h.get(f"/api/v1/records/{_cid(h, 'desk')}/provenance"),
    ),
    ("GET", "/api/v1/artisans/{did}", lambda h: h.get(f"/api/v1/artisans/{_did(h, 'amaia')}")),
    ("GET", "/api/v1/search", lambda h: h.get("/api/v1/search?q=lamp&process=3d-printing")),
    ("GET", "/api/v1/peers", lambda h: h.get("/api/v1/peers")),
    ("GET", "/api/v1/licences", lambda h: h.get("/api/v1/licences")),
    (
        "GET",
        "/api/v1/licences/check",
        lambda h: h.get(f"/api/v1/licences/check?licence=MIT&parent={_cid(h, 'shade')}"),
    ),
    ("GET", "/api/v1/documents", lambda h: h.get("/api/v1/documents")),
    (
        "POST",
        "/api/v1/documents",
        lambda h: h.post(
            "/api/v1/documents",
            {
                "artisan": "lin",
                "passphrase": DEMO_PASS,
                "kind": "technique",
                "fields": {"title": "Shared laser settings", "tags": ["laser"]},
            },
        ),
    ),
    ("GET", "/api/v1/documents/{cid}", lambda h: h.get(f"/api/v1/documents/{_doc(h)}")),
    (
        "GET",
        "/api/v1/documents/{cid}/history",
        lambda h: h.get(f"/api/v1/documents/{_doc(h)}/history"),
    ),
    ("GET", "/api/v1/documents/{cid}/blame", lambda h: h.get(f"/api/v1/documents/{_doc(h)}/blame")),
    (
        "POST",
        "/api/v1/documents/{cid}/edits",
        lambda h: h.post(
            f"/api/v1/documents/{_doc(h)}/edits",
            {"artisan": "rosa", "passphrase": DEMO_PASS, "fields": {"tags": ["community"]}},
        ),
    ),
    ("GET", "/api/v1/keys", lambda h: h.get("/api/v1/keys")),
    (
        "POST",
        "/api/v1/keys",
        lambda h: h.post("/api/v1/keys", {"handle": "contract", "passphrase": "four words here"}),
    ),
    (
        "POST",
        "/api/v1/keys/import",
        lambda h: h.post(
            "/api/v1/keys/import",
            {
                "handle": "moved",
                "passphrase": "new passphrase on a quiet hub",
                "export_passphrase": "usb stick in the kiln shed",
                "key_file": h.post(
                    "/api/v1/keys/kofi/export",
                    {"passphrase": DEMO_PASS, "export_passphrase": "usb stick in the kiln shed"},
                ).json()["key_file"],
            },
        ),
    ),
    (
        "POST",
        "/api/v1/keys/{handle}/export",
        lambda h: h.post(
            "/api/v1/keys/amaia/export",
            {"passphrase": DEMO_PASS, "export_passphrase": "usb stick in the kiln shed"},
        ),
    ),
    (
        "POST",
        "/api/v1/files",
        lambda h: h.post(
            "/api/v1/files?name=note.txt", raw=b"hello", headers={"Content-Type": "text/plain"}
        ),
    ),
    (
        "GET",
        "/api/v1/files/{cid}",
        lambda h: h.get(f"/api/v1/files/{_file(h, 'lamp-shade-panel.svg')}"),
    ),
    (
        "GET",
        "/api/v1/files/{cid}",
        lambda h: h.get(
            f"/api/v1/files/{_file(h, 'raku-bowl.png')}", headers={"Range": "bytes=0-7"}
        ),
    ),
    (
        "GET",
        "/api/v1/files/{cid}/info",
        lambda h: h.get(f"/api/v1/files/{_file(h, 'heddle.stl')}/info"),
    ),
    (
        "GET",
        "/api/v1/files/{cid}/preview.svg",
        lambda h: h.get(f"/api/v1/files/{_file(h, 'heddle.stl')}/preview.svg"),
    ),
    (
        "GET",
        "/api/v1/files/{cid}/info",
        lambda h: h.get(f"/api/v1/files/{_cid(h, 'raku')}/info"),  # a record: 404
    ),
    (
        "POST",
        "/api/v1/keys/strength",
        lambda h: h.request("POST", "/api/v1/keys/strength", {"passphrase": "1234"}),
    ),
    ("GET", "/api/v1/policy", lambda h: h.get("/api/v1/policy")),
    (
        "PUT",
        "/api/v1/policy",
        lambda h: h.request("PUT", "/api/v1/policy", {"walk_in_keys": True}, auth=True),
    ),
    ("POST", "/api/v1/session", lambda h: h.request("POST", "/api/v1/session", {"token": h.token})),
    (
        "POST",
        "/api/v1/session",
        lambda h: h.request(
            "POST", "/api/v1/session", {"handle": "amaia", "passphrase": DEMO_PASS}
        ),
    ),
    ("DELETE", "/api/v1/session", lambda h: h.request("DELETE", "/api/v1/session")),
    ("GET", "/api/v1/bundles/hubs", lambda h: h.get("/api/v1/bundles/hubs", auth=True)),
    (
        "GET",
        "/api/v1/bundles/plan",
        lambda h: h.get(f"/api/v1/bundles/plan?for={FAR_HUB}&max_size=4G", auth=True),
    ),
    ("POST", "/api/v1/bundles", lambda h: h.post("/api/v1/bundles", {"for": FAR_HUB})),
    (
        "GET",
        "/api/v1/bundles/download",
        lambda h: h.get(f"/api/v1/bundles/download?for={FAR_HUB}", auth=True),
    ),
    (
        "POST",
        "/api/v1/bundles/unlock",
        lambda h: h.post("/api/v1/bundles/unlock", {"passphrase": "not needed"}),
    ),
    (
        "POST",
        "/api/v1/bundles/have",
        lambda h: h.post(
            "/api/v1/bundles/have",
            raw=b"not a have-file",
            headers={"Content-Type": "application/octet-stream"},
        ),
    ),
]


def test_examples_cover_every_documented_operation() -> None:
    assert {(method, path) for method, path, _ in EXAMPLES} == documented()


def _validator(schema: dict[str, Any], components: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": components})


@pytest.mark.parametrize(
    ("method", "path", "call"), EXAMPLES, ids=[f"{m} {p}" for m, p, _ in EXAMPLES]
)
def test_answers_match_the_document(demo_hub: Hub, method: str, path: str, call: Call) -> None:
    doc = openapi_document()
    op = doc["paths"][path][method.lower()]
    reply = call(demo_hub)
    assert str(reply.status) in op["responses"], (reply.status, reply.body[:300])
    response = op["responses"][str(reply.status)]
    content = response.get("content", {})
    if "application/json" in content:
        assert reply.headers["content-type"].startswith("application/json")
        errors = sorted(
            _validator(content["application/json"]["schema"], doc["components"]).iter_errors(
                reply.json()
            ),
            key=str,
        )
        assert not errors, [e.message for e in errors]
    elif content:
        wanted = next(iter(content))
        if wanted != "*/*":
            assert reply.headers["content-type"].startswith(wanted)


def test_docs_api_md_holds_the_generated_endpoint_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert endpoint_table() in text, "docs/api.md is stale: paste endpoint_table() output in it"
    mentioned = {
        (method, path.split("?")[0])
        for method, path in re.findall(r"`(GET|POST|DELETE|PUT) (/api/v1/[^`]*)`", text)
    }
    assert mentioned <= documented(), mentioned - documented()
