"""Publishing through the API checks what a record links, as ``craftnet publish`` does
(archive/links.py): a target this hub should hold but does not is a 409 (upload or fetch
it first), a target of the wrong kind a 422; a body is refused exactly where its
published JSON Schema says so; and nothing is stored on a refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from craftnet.node.web.openapi import openapi_document
from tests.node.web.web_hub import Hub, make_artisan, start_hub

PASS = "clay and fire"
ABSENT = "bafyr4ia6fyoyh5qcmkhwvvfnymvqzd4p3d2mz2rfy2ie4tdpxxjuyvpxk4"
SOMEONE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    """A hub with one artisan, one uploaded file and one published technique."""
    running = start_hub(tmp_path / "hub")
    make_artisan(running)
    running.file = running.post(  # type: ignore[attr-defined]
        "/api/v1/files?name=loom.stl", raw=b"solid loom\nendsolid loom\n",
        headers={"Content-Type": "application/octet-stream"},
    ).json()["cid"]
    running.technique = publish(running, "technique", {  # type: ignore[attr-defined]
        "title": "Backstrap weaving", "steps": ["Warp the loom"], "licence": "CC-BY-SA-4.0"
    }).json()["cid"]
    yield running
    running._stop()


def publish(hub: Hub, rtype: str, body: dict[str, Any], **extra: Any) -> Any:
    return hub.post(
        "/api/v1/records",
        {"type": rtype, "artisan": "amaia", "passphrase": PASS, "body": body, **extra},
    )


def refused(hub: Hub, rtype: str, body: dict[str, Any]) -> tuple[int, str]:
    before = hub.record_count(), hub.block_count()
    reply = publish(hub, rtype, body)
    assert (hub.record_count(), hub.block_count()) == before
    return reply.status, reply.error_code


def test_a_record_given_as_a_designs_file_is_refused(hub: Any) -> None:
    body = {"title": "Loom frame", "files": [hub.technique], "licence": "CC0-1.0"}
    assert refused(hub, "design", body) == (422, "wrong-link")
    assert publish(hub, "design", {**body, "files": [hub.file]}).status == 201


def test_a_file_the_hub_lacks_is_a_conflict_to_resolve_by_uploading(hub: Any) -> None:
    body = {"title": "Loom frame", "files": [ABSENT], "licence": "CC0-1.0"}
    assert refused(hub, "design", body) == (409, "missing-file")
    steps = [{"text": "Warp", "media": [ABSENT]}]
    technique = {"title": "Warping", "steps": steps, "licence": "CC0-1.0"}
    assert refused(hub, "technique", technique) == (409, "missing-file")


def test_a_collection_of_something_the_hub_never_held_is_refused(hub: Any) -> None:
    body = {"title": "Maker's Fair 2035", "items": [hub.technique, ABSENT]}
    assert refused(hub, "collection", body) == (409, "missing-link")
    assert refused(hub, "collection", {**body, "items": [hub.file]}) == (422, "wrong-link")
    assert publish(hub, "collection", {**body, "items": [hub.technique]}).status == 201


def test_what_may_live_elsewhere_is_published_with_a_warning(hub: Any) -> None:
    body = {"subject": SOMEONE, "kind": "fabricated", "design": ABSENT}
    reply = publish(hub, "attestation", body)
    assert reply.status == 201, reply.body
    assert [w["code"] for w in reply.json()["warnings"]] == ["link"]


def test_the_operators_token_alone_does_not_sign(hub: Any) -> None:
    body = {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0"}
    before = hub.record_count()
    reply = hub.post("/api/v1/records", {"type": "technique", "body": body})
    assert (reply.status, reply.error_code) == (401, "unauthorized")
    half = hub.post("/api/v1/records", {"type": "technique", "body": body, "artisan": "amaia"})
    assert (half.status, half.error_code) == (422, "missing-field")
    assert hub.record_count() == before


# -- the published schema and the server agree, case by case -----------------------------

CASES: list[tuple[str, dict[str, Any]]] = [
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku", "steps": [{"text": "Fire"}], "licence": "CC0-1.0",
                   "summary": None, "tags": ["Kiln", "kiln"]}),
    ("technique", {"title": "Raku", "steps": [{"text": "Fire", "note": 1}], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku", "steps": [], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku\n", "steps": ["Fire"], "licence": "CC0-1.0"}),
    ("technique", {"title": "\u3000\u2003", "steps": ["Fire"], "licence": "CC0-1.0"}),
    ("technique", {"title": "\x85", "steps": ["Fire"], "licence": "CC0-1.0"}),
    ("technique", {"title": "\ufeff", "steps": ["Fire"], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku", "steps": ["Fire\n\tthen cool"], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku", "steps": ["Fire\x07"], "licence": "CC0-1.0"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "cc0-1.0"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "LicenseRef-kiln.shed-1"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0", "language": "pt-BR"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0", "language": "pt_BR"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0", "tags": [" "]}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0", "colour": "red"}),
    ("technique", {"title": "Raku", "steps": ["Fire"], "licence": "CC0-1.0", "type": "design"}),
    ("design", {"title": "Stool", "licence": "CC0-1.0", "process": "hand", "files": []}),
    ("design", {"title": "Stool", "licence": "CC0-1.0", "process": "Hand"}),
    ("design", {"title": "Stool", "licence": "CC0-1.0", "derived_from": [ABSENT, ABSENT]}),
    ("design", {"title": "Stool", "licence": "CC0-1.0", "derived_from": [ABSENT.upper()]}),
    ("design", {"title": "Stool", "licence": "CC0-1.0", "tags": None}),
    ("collection", {"title": "Fair", "tags": ["fair"]}),
    ("collection", {"title": "Fair", "items": None, "description": "The 2035 showcase"}),
    ("attestation", {"subject": SOMEONE, "kind": "skill"}),
    ("attestation", {"subject": SOMEONE, "kind": "skill", "skill": "weaving",
                     "level": "master"}),
    ("attestation", {"subject": SOMEONE, "kind": "skill", "skill": None}),
    ("attestation", {"subject": SOMEONE, "kind": "living-heritage", "level": "grand"}),
    ("attestation", {"subject": SOMEONE[:-1], "kind": "living-heritage"}),
]


@pytest.mark.parametrize(("rtype", "body"), CASES, ids=[json.dumps(c)[:60] for c in CASES])
def test_a_body_is_refused_exactly_when_its_schema_says(
    hub: Any, rtype: str, body: dict[str, Any]
) -> None:
    doc = openapi_document()
    schema = {**doc["components"]["schemas"][f"{rtype.title()}Body"],
              "components": doc["components"]}
    valid = Draft202012Validator(schema).is_valid(body)
    reply = publish(hub, rtype, body)
    assert (reply.status == 201) == valid, (valid, reply.status, reply.body[:300])
    if not valid:
        assert reply.status == 422
