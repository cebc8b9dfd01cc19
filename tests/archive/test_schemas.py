"""Record body schemas: what each type holds, what is refused, how bodies are built."""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.archive import codec
from craftnet.archive.cid import DAG_CBOR, RAW, Cid
from craftnet.archive.errors import SchemaError
from craftnet.archive.licences import LicenceError
from craftnet.archive.records import Record
from craftnet.archive.schemas import (
    KNOWN_TYPES,
    SCHEMAS,
    build,
    build_from_mapping,
    check_type_name,
    record_licence,
    record_title,
    validate_body,
    validate_record,
)
from craftnet.identity.keys import PrivateKey

POTTER = PrivateKey.from_seed(b"rustic-futurism-hub-potter-00001")
ELDER = PrivateKey.from_seed(b"living-heritage-program-elder-01")
PHOTO = Cid.of(b"raku-kiln.jpg")
VIDEO = Cid.of(b"reduction-chamber.mp4")
STEP_FILE = Cid.of(b"stool-joint.step", DAG_CBOR)
PARENT = Cid.of(b"parent stool design record", DAG_CBOR)


def technique_fields() -> dict[str, Any]:
    return {
        "title": "Raku glaze firing",
        "summary": "Low-fire glaze, pulled red hot into a reduction chamber.",
        "tradition": "Rustic Futurism",
        "region": "Alentejo",
        "language": "en",
        "materials": ["stoneware clay", "raku glaze", "sawdust"],
        "tools": ["raku kiln", "tongs"],
        "steps": [
            {"text": "Bisque fire the pot to cone 08.", "media": [PHOTO]},
            {"text": "Glaze, fire to 1000 C, pull into sawdust.", "media": [PHOTO, VIDEO]},
        ],
        "licence": "CC-BY-SA-4.0",
    }


def sign(body: dict[str, Any], links: list[Cid], rtype: str = "technique", v: int = 1) -> Record:
    return Record.create(POTTER, rtype, body, links, ts=1, v=v)


def test_a_full_technique_is_valid() -> None:
    built = build("technique", **technique_fields())
    assert built.links == (PHOTO, VIDEO)
    assert validate_body("technique", 1, built.body, built.links, POTTER.did)
    record = sign(built.body, list(built.links))
    assert validate_record(record)
    assert record_title(record) == "Raku glaze firing"
    assert record_licence(record) == "CC-BY-SA-4.0"


ALLIANCE = Cid.of(b"Global Micro-manufacturing Alliance genesis", DAG_CBOR)
# The smallest valid body of every known type, and who may sign it.
MINIMAL: dict[str, tuple[dict[str, Any], PrivateKey]] = {
    "technique": (
        {"title": "Loom warping", "steps": ["Measure the warp"], "licence": "CC0-1.0"},
        ELDER,
    ),
    "design": ({"title": "Stool", "licence": "MIT"}, ELDER),
    "attestation": ({"subject": POTTER.did, "kind": "living-heritage"}, ELDER),
    "collection": ({"title": "Maker's Fair 2035 showcase"}, ELDER),
    "key-succession": ({"new": ELDER.did}, POTTER),
    "revocation": ({"did": POTTER.did, "since": 5, "reason": "key lost"}, ELDER),
    "alliance": ({"name": "Global Micro-manufacturing Alliance", "founders": [ELDER.did]}, ELDER),
    "membership": ({"alliance": ALLIANCE, "member": POTTER.did, "expires": 5}, ELDER),
    "membership-revocation": ({"alliance": ALLIANCE, "member": POTTER.did}, ELDER),
    "witness": (
        {"root": bytes(32), "count": 1, "leaves": [Cid.of(b"leaves", RAW)], "first": 1,
         "last": 1},
        ELDER,
    ),
}


def test_minimal_bodies_of_every_known_type() -> None:
    assert set(MINIMAL) == KNOWN_TYPES
    for rtype, (fields, signer) in MINIMAL.items():
        built = build_from_mapping(rtype, fields)
        assert validate_body(rtype, 1, built.body, built.links, signer.did)
        record = Record.create(signer, rtype, built.body, built.links, ts=1)
        assert validate_record(Record.from_block(record.block))


@pytest.mark.parametrize(
    ("rtype", "field"),
    [
        (rtype, spec.name)
        for rtype, schema in SCHEMAS.items()
        for spec in schema.fields
        if spec.required
    ],
)
def test_required_fields(rtype: str, field: str) -> None:
    fields = technique_fields() if rtype == "technique" else MINIMAL[rtype][0]
    built = build_from_mapping(rtype, fields)
    body = dict(built.body)
    del body[field]
    with pytest.raises(SchemaError, match=f"'{field}' is required"):
        validate_body(rtype, 1, body, built.links)


BAD_TECHNIQUE_FIELDS: list[tuple[str, Any, str]] = [
    ("title", "", "empty"),
    ("title", "   ", "empty"),
    ("title", "x" * 201, "limit"),
    ("title", 7, "string"),
    ("title", "Raku\nglaze", "single line"),
    ("title", "Raku\x00glaze", "control"),
    ("summary", "x" * 4001, "limit"),
    ("language", "english!", "BCP-47"),
    ("language", "e", "BCP-47"),
    ("language", "en-" + "a" * 40, "BCP-47"),
    ("materials", "clay", "list"),
    ("materials", ["clay", ""], "empty"),
    ("materials", ["clay"] * 65, "limit"),
    ("materials", [1], "string"),
    ("steps", [], "at least 1"),
    ("steps", ["just text"], "map"),
    ("steps", [{"media": []}], "text"),
    ("steps", [{"text": "ok", "media": ["bafk"]}], "CID"),
    ("steps", [{"text": "ok", "media": [PHOTO, PHOTO]}], "twice"),
    ("steps", [{"text": "ok", "media": [PHOTO] * 33}], "at most"),
    ("steps", [{"text": "ok"}] * 201, "limit"),
    ("licence", "cc-by-4.0", "spelled"),
    ("licence", "Beerware", "unknown licence"),
    ("licence", 4, "SPDX"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_TECHNIQUE_FIELDS)
def test_bad_technique_fields(field: str, value: Any, message: str) -> None:
    body = {**technique_fields(), field: value}
    with pytest.raises(SchemaError, match=message):
        validate_body("technique", 1, body, [PHOTO, VIDEO])


def test_licence_errors_are_schema_errors() -> None:
    assert issubclass(LicenceError, SchemaError)


@pytest.mark.parametrize(
    "tag",
    ["en", "pt-BR", "zh-Hant-TW", "sr-Latn-RS", "es-419", "de-CH-1996", "x-craft", "en-x-hub"],
)
def test_language_tags(tag: str) -> None:
    assert validate_body("technique", 1, {**technique_fields(), "language": tag}, [PHOTO, VIDEO])


def test_links_in_the_body_must_be_envelope_links() -> None:
    fields = technique_fields()
    with pytest.raises(SchemaError, match="missing from the record's links"):
        validate_body("technique", 1, fields, [PHOTO])
    design = {
        "title": "Stool joint",
        "licence": "MIT",
        "files": [STEP_FILE],
        "derived_from": [PARENT],
    }
    with pytest.raises(SchemaError, match="links"):
        validate_body("design", 1, design, [STEP_FILE])
    assert validate_body("design", 1, design, [PARENT, STEP_FILE, PHOTO])  # extra links are fine


def test_unknown_fields_are_carried_and_ignored() -> None:
    body = {**technique_fields(), "kiln_atmosphere": "reduction", "firing_minutes": 45}
    record = sign(body, [PHOTO, VIDEO])
    parsed = Record.from_block(record.block)
    assert validate_record(parsed)
    assert parsed.body["kiln_atmosphere"] == "reduction"
    assert parsed.body["firing_minutes"] == 45


def test_unknown_types_are_opaque() -> None:
    record = sign({"anything": [1, 2, {"x": None}]}, [], rtype="workshop-booking", v=7)
    assert validate_record(record) is False


@pytest.mark.parametrize(
    "rtype", ["Design", "design ", "de\x00sign", "-design", "design--x", "", "x" * 65, "ddé"]
)
def test_type_names_are_slugs(rtype: str) -> None:
    with pytest.raises(SchemaError, match="slug"):
        check_type_name(rtype)


def test_newer_version_of_a_known_type_is_refused_with_advice() -> None:
    record = sign({"title": "Stool", "licence": "MIT"}, [], rtype="design", v=3)
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "record type 'design' version 3 is newer than this hub understands; upgrade craftnet"
        ),
    ):
        validate_record(record)


def test_design_rules() -> None:
    base = {"title": "Neo-Vernacular stool joint", "licence": "CERN-OHL-S-2.0"}
    assert validate_body("design", 1, {**base, "process": "cnc-milling"}, [])
    assert validate_body("design", 1, {**base, "process": "ceramic-extrusion"}, [])  # open set
    with pytest.raises(SchemaError, match="slug"):
        validate_body("design", 1, {**base, "process": "CNC Milling"}, [])
    with pytest.raises(SchemaError, match="twice"):
        validate_body("design", 1, {**base, "files": [STEP_FILE, STEP_FILE]}, [STEP_FILE])
    with pytest.raises(SchemaError, match="CIDs"):
        validate_body("design", 1, {**base, "derived_from": [str(PARENT)]}, [])
    with pytest.raises(SchemaError, match="limit"):
        many = [Cid.of(bytes([i, j])) for i in range(2) for j in range(40)]
        validate_body("design", 1, {**base, "derived_from": many}, many)


def test_attestation_rules() -> None:
    skill = {"subject": POTTER.did, "kind": "skill", "skill": "raku firing", "level": "master"}
    assert validate_body("attestation", 1, skill, [], ELDER.did)
    with pytest.raises(SchemaError, match="own author"):
        validate_body("attestation", 1, skill, [], POTTER.did)
    with pytest.raises(SchemaError, match="needs the field 'skill'"):
        validate_body("attestation", 1, {"subject": POTTER.did, "kind": "skill"}, [], ELDER.did)
    with pytest.raises(SchemaError, match="one of"):
        validate_body("attestation", 1, {**skill, "level": "grandmaster"}, [], ELDER.did)
    with pytest.raises(SchemaError, match="one of"):
        validate_body("attestation", 1, {**skill, "kind": "friend"}, [], ELDER.did)
    with pytest.raises(SchemaError, match="did:key"):
        validate_body("attestation", 1, {**skill, "subject": "did:web:hub.example"}, [], ELDER.did)
    fabricated = {"subject": POTTER.did, "kind": "fabricated", "design": PARENT}
    assert validate_body("attestation", 1, fabricated, [PARENT], POTTER.did)  # I made this
    with pytest.raises(SchemaError, match="links"):
        validate_body("attestation", 1, fabricated, [], POTTER.did)
    with pytest.raises(SchemaError, match="needs the field 'design'"):
        validate_body("attestation", 1, {"subject": POTTER.did, "kind": "fabricated"}, [])


def test_key_records() -> None:
    assert validate_body("key-succession", 1, {"new": ELDER.did}, [], POTTER.did)
    with pytest.raises(SchemaError, match="new key"):
        validate_body("key-succession", 1, {"new": POTTER.did}, [], POTTER.did)
    revocation = {"did": POTTER.did, "since": 2**40, "reason": "laptop stolen at the fair"}
    assert validate_body("revocation", 1, revocation, [], ELDER.did)
    for since in (-1, 2**64, "yesterday", True):
        with pytest.raises(SchemaError, match="since"):
            validate_body("revocation", 1, {**revocation, "since": since}, [])


def test_build_from_toml() -> None:
    text = f'''
type = "design"
title = "Neo-Vernacular stool joint"
licence = "CC-BY-SA-4.0"
files = ["{STEP_FILE}"]
derived_from = ["{PARENT}"]
process = "cnc-milling"
machine = "Shapeoko 4"
materials = ["ash", "beeswax"]
'''
    built = build_from_mapping("design", tomllib.loads(text))
    assert built.body["files"] == [STEP_FILE]
    assert built.links == (STEP_FILE, PARENT)
    assert "type" not in built.body


def test_build_from_json_with_steps_as_maps() -> None:
    data = json.loads(
        json.dumps(
            {
                **technique_fields(),
                "steps": [{"text": "Bisque fire", "media": [str(PHOTO)]}, "Glaze and fire"],
            }
        )
    )
    built = build_from_mapping("technique", data)
    assert built.body["steps"] == [
        {"text": "Bisque fire", "media": [PHOTO]},
        {"text": "Glaze and fire", "media": []},
    ]
    assert built.links == (PHOTO,)


def test_builder_refuses_typos_floats_and_bad_cids() -> None:
    with pytest.raises(SchemaError, match=r"unknown field.*titel.*accepted: title"):
        build("design", titel="Stool", licence="MIT")
    with pytest.raises(SchemaError, match="float"):
        build("technique", **{**technique_fields(), "materials": [1.5]})
    with pytest.raises(SchemaError, match="bad CID"):
        build("design", title="Stool", licence="MIT", files=["bafknotacid"])
    with pytest.raises(SchemaError, match="known types"):
        build("workshop-booking", title="x")
    with pytest.raises(SchemaError, match="says type"):
        build_from_mapping("design", {"type": "technique", "title": "x"})


def test_builder_leaves_out_none_and_adds_extra_links() -> None:
    built = build_from_mapping(
        "collection",
        {"title": "Maker's Fair 2035 showcase", "description": None, "items": [PARENT]},
        extra_links=[PHOTO, PARENT],
    )
    assert "description" not in built.body
    assert built.links == (PARENT, PHOTO)


lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200
).filter(str.strip)


@given(
    title=lines,
    materials=st.lists(lines, max_size=5),
    steps=st.lists(lines, min_size=1, max_size=5),
    licence=st.sampled_from(["CC0-1.0", "CC-BY-4.0", "MIT", "LicenseRef-Hub-Commons-1.0"]),
)
def test_built_bodies_validate_and_survive_signing(
    title: str, materials: list[str], steps: list[str], licence: str
) -> None:
    built = build("technique", title=title, materials=materials, steps=steps, licence=licence)
    record = sign(built.body, list(built.links))
    assert validate_record(Record.from_block(record.block))


@given(
    st.dictionaries(
        st.sampled_from(["title", "licence", "files", "derived_from", "process", "x"]),
        st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
    )
)
def test_validation_raises_only_schema_errors(body: dict[str, Any]) -> None:
    with contextlib.suppress(SchemaError):
        validate_body("design", 1, body, [])


DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def test_every_type_and_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for rtype, schema in SCHEMAS.items():
        section = text.split(f"#### `{rtype}` (v{schema.version})", 1)
        assert len(section) == 2, f"docs/data-model.md has no section for {rtype}"
        table = section[1].split("####", 1)[0]
        for spec in schema.fields:
            assert f"| `{spec.name}` |" in table, f"{rtype}.{spec.name} is not documented"


def test_the_documented_cid_example_is_right() -> None:
    text = DOC.read_text(encoding="utf-8")
    value = codec.encode({"v": 1, "title": "Raku glaze firing"})
    assert str(Cid.of(value, DAG_CBOR)) in text
