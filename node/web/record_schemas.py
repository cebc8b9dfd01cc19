"""JSON Schemas of the record bodies the API publishes, made from ``archive/schemas.py``.

The OpenAPI document describes ``POST /api/v1/records`` with one body schema per record
type, so that a client (or an OpenAPI fuzzer) knows every rule a body must follow. Each
rule is spelt so that any regex engine reads it as the archive's Python code does:
"blank" is spelt out as exactly the characters ``str.isspace`` knows, control characters
as ranges. Two rules cannot be a pattern and are a *format* instead, with a name and a
description: a ``did-key`` must be a point on the Ed25519 curve (about half of all
well-formed did:keys are not).

What the archive would accept beyond these schemas, the API refuses too
(:func:`check_request_shape`), so a body is refused exactly when it breaks the schema,
save for the rules that depend on the hub's state (a file that is not uploaded yet, a
linked record of the wrong type) or on who signs (an artisan does not vouch for
themselves).
"""

from __future__ import annotations

from typing import Any, Final

from craftnet.archive.licences import KNOWN_LICENCES
from craftnet.archive.schemas import (
    _BCP47,
    _SLUG,
    MAX_STEP_MEDIA,
    SCHEMAS,
    FieldSpec,
)
from craftnet.identity.keys import DID_KEY_LEN, DID_KEY_PREFIX
from craftnet.node.web.errors import ApiError
from craftnet.node.web.http import CID_PATTERN

PUBLISHABLE: Final = ("technique", "design", "collection", "attestation")
TAGGED: Final = ("technique", "design")
MAX_TAGS: Final = 32
MAX_TAG: Final = 40
# The characters Python's str.isspace() calls blank, which the archive's strip() removes.
_BLANK: Final = (
    r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_BLANK: Final = f"[^{_BLANK}]"  # at least one character that is not blank
LINE_CONTROL: Final = r"[\x00-\x1f\x7f]"  # none in a one-line field (a title, a tag)
TEXT_CONTROL: Final = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # tabs and line breaks are text
DID_KEY_PATTERN: Final = (
    "^" + DID_KEY_PREFIX + f"[1-9A-HJ-NP-Za-km-z]{{{DID_KEY_LEN - len(DID_KEY_PREFIX)}}}$"
)
DID_KEY_FORMAT: Final = "did-key"
_STEP_KEYS: Final = frozenset({"text", "media"})


def _string(max_len: int, control: str, min_len: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "string",
        "maxLength": max_len,
        "pattern": NOT_BLANK,
        "not": {"type": "string", "pattern": control},
    }
    if min_len:
        schema["minLength"] = min_len
    return schema


def line(max_len: int) -> dict[str, Any]:
    """One line of text: no control characters, not blank."""
    return _string(max_len, LINE_CONTROL)


def text(max_len: int) -> dict[str, Any]:
    """Text that may hold tabs and line breaks, not blank."""
    return _string(max_len, TEXT_CONTROL)


def did_key() -> dict[str, Any]:
    """An Ed25519 did:key (its form a pattern, its point on the curve a format)."""
    return {
        "type": "string",
        "pattern": DID_KEY_PATTERN,
        "format": DID_KEY_FORMAT,
        "description": "an Ed25519 did:key naming a point on the curve",
    }


def _cid() -> dict[str, Any]:
    return {"type": "string", "pattern": CID_PATTERN}


def _cids(spec: FieldSpec, max_items: int) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "array",
        "items": _cid(),
        "maxItems": max_items,
        "uniqueItems": True,
    }
    if spec.min_items:
        schema["minItems"] = spec.min_items
    return schema


def _steps(spec: FieldSpec) -> dict[str, Any]:
    step_text = text(spec.max_len)
    return {
        "type": "array",
        "minItems": spec.min_items,
        "maxItems": spec.max_items,
        "items": {
            "oneOf": [
                step_text,
                {
                    "type": "object",
                    "properties": {
                        "text": step_text,
                        "media": {
                            "type": "array",
                            "items": _cid(),
                            "maxItems": MAX_STEP_MEDIA,
                            "uniqueItems": True,
                        },
                    },
                    "required": ["text"],
                    "additionalProperties": False,
                },
            ]
        },
        "description": "steps, each a text or {text, media: [CID of a photo]}",
    }


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    """The JSON Schema of one body field as the API takes it (CIDs as strings)."""
    kind = spec.kind
    if kind == "line":
        schema = line(spec.max_len)
    elif kind == "text":
        schema = text(spec.max_len)
    elif kind == "lines":
        schema = {"type": "array", "items": line(spec.max_len), "maxItems": spec.max_items}
        if spec.min_items:
            schema["minItems"] = spec.min_items
    elif kind == "cid":
        schema = _cid()
    elif kind == "cids":
        schema = _cids(spec, spec.max_items)
    elif kind == "did":
        schema = did_key()
    elif kind == "steps":
        schema = _steps(spec)
    elif kind == "licence":
        schema = {
            "anyOf": [
                {"enum": sorted(KNOWN_LICENCES)},
                {"type": "string", "pattern": r"^LicenseRef-[A-Za-z0-9.\-]{1,64}$"},
            ]
        }
    elif kind == "language":
        schema = {
            "type": "string",
            "maxLength": spec.max_len,
            "pattern": "^(?:" + _BCP47.pattern + ")$",
        }
    elif kind == "slug":
        schema = {"type": "string", "maxLength": spec.max_len, "pattern": f"^{_SLUG.pattern}$"}
    elif kind == "choice":
        schema = {"enum": list(spec.choices)}
    else:  # ts and digest fields are in no type the API publishes
        raise ValueError(f"no JSON Schema for a {kind} field")
    return {**schema, "description": spec.doc} if "description" not in schema else schema


def tags_schema() -> dict[str, Any]:
    """Tags in their author's spelling (repeats that differ only in case are dropped)."""
    return {
        "type": "array",
        "maxItems": MAX_TAGS,
        "items": _string(MAX_TAG, LINE_CONTROL, min_len=1),
    }


def body_schema(rtype: str) -> dict[str, Any]:
    """The JSON Schema of a ``rtype`` body (null for an optional field: left out)."""
    schema = SCHEMAS[rtype]
    properties: dict[str, Any] = {"type": {"const": rtype}}
    for spec in schema.fields:
        found = field_schema(spec)
        properties[spec.name] = found if spec.required else {"anyOf": [found, {"type": "null"}]}
    if rtype in TAGGED:
        properties["tags"] = tags_schema()
    body: dict[str, Any] = {
        "type": "object",
        "description": schema.doc,
        "properties": properties,
        "required": [spec.name for spec in schema.fields if spec.required],
        "additionalProperties": False,
    }
    if rtype == "attestation":
        # archive.schemas._no_self_vouching: what each kind needs.
        body["allOf"] = [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"properties": {needed: {"not": {"type": "null"}}}, "required": [needed]},
            }
            for kind, needed in (("skill", "skill"), ("fabricated", "design"))
        ]
    return body


def check_request_shape(rtype: str, body: dict[str, Any]) -> None:
    """Refuse what the archive would take but the schema does not allow: a step map with
    keys other than ``text`` and ``media``."""
    steps = body.get("steps") if rtype == "technique" else None
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, dict) and not set(step) <= _STEP_KEYS:
            extra = ", ".join(sorted(str(k) for k in set(step) - _STEP_KEYS))[:80]
            raise ApiError(422, "invalid-record", f"a step holds text and media only, not {extra}")
