"""Body schemas of the record types craftnet understands, and a builder for new bodies.

Every known type has a version (``v`` in the envelope, 1 for all types today) and a
table of fields: which are required, their kind, length limits and whether the CIDs
they hold are links. Three rules keep old and new hubs talking to each other:

* Unknown fields in a known type's body are carried unchanged (they are signed, so
  dropping them would break the signature) and validation ignores them: a newer hub
  may add optional fields without bumping ``v``.
* Unknown record types are opaque: accepted, stored, indexed by type and forwarded,
  as long as their type name is a lower-case slug.
* A known type with a ``v`` newer than this hub's schema is refused with a message
  that says to upgrade, because its meaning may have changed.

Every CID a body names (design files, parents, step media, collection items, the
design of a "fabricated" attestation) must also be in the envelope's ``links``, so
code that walks links (block fetching, bundles, garbage collection) need not know
any schema. There are no floats anywhere; numbers are integers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from craftnet.archive.cid import Cid
from craftnet.archive.errors import CidError, SchemaError
from craftnet.archive.hlc import MAX_TS
from craftnet.archive.licences import validate_licence
from craftnet.archive.records import Record
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import parse_did

TYPE_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_TYPE_NAME: Final = 64
# Well-formed BCP-47 (RFC 5646 section 2.1) without consulting the IANA registry:
# language, extlang, script, region, variants, extensions, private use.
_BCP47: Final = re.compile(
    r"(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?"
    r"|[Xx](?:-[A-Za-z0-9]{1,8})+"
)
MAX_LANGUAGE_TAG: Final = 35
MAX_STEP_MEDIA: Final = 32
_SLUG: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Control characters would let a title hide text or break terminals and logs.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")  # _CONTROL and tab, CR, LF
_SINGLE_LINE_KINDS: Final = frozenset({"line", "lines"})

KNOWN_PROCESSES: Final = (
    "3d-printing",
    "cnc-milling",
    "laser-cutting",
    "loom-weaving",
    "hand",
)
ATTESTATION_KINDS: Final = ("skill", "living-heritage", "fabricated")
SKILL_LEVELS: Final = ("apprentice", "journeyman", "master")

Kind = Literal[
    "line",
    "text",
    "lines",
    "cid",
    "cids",
    "did",
    "ts",
    "steps",
    "licence",
    "language",
    "slug",
    "choice",
    "digest",
]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One body field: its kind, whether it is required, its limits and what it means."""

    name: str
    kind: Kind
    doc: str
    required: bool = False
    max_len: int = 200  # characters of a string, or of each string in a list
    max_items: int = 64  # entries of a list
    min_items: int = 0
    choices: tuple[str, ...] = ()
    link: bool = False  # the CIDs it holds must also be in the envelope's links


@dataclass(frozen=True, slots=True)
class Schema:
    """The schema of one record type at one version."""

    type: str
    version: int
    doc: str
    fields: tuple[FieldSpec, ...]
    rules: Callable[[Mapping[str, Any], str | None], None] | None = None

    def field(self, name: str) -> FieldSpec | None:
        """The spec of field ``name``, or None if the schema does not define it."""
        return next((spec for spec in self.fields if spec.name == name), None)


def _no_self_vouching(body: Mapping[str, Any], author: str | None) -> None:
    kind = body["kind"]
    if kind == "skill" and "skill" not in body:
        raise SchemaError("an attestation of kind 'skill' needs the field 'skill'")
    if kind == "fabricated" and "design" not in body:
        raise SchemaError("an attestation of kind 'fabricated' needs the field 'design'")
    if kind in ("skill", "living-heritage") and author is not None and body["subject"] == author:
        raise SchemaError(
            f"an attestation of kind {kind!r} vouches for someone else; "
            "its subject must not be its own author"
        )


def _new_key_differs(body: Mapping[str, Any], author: str | None) -> None:
    if author is not None and body["new"] == author:
        raise SchemaError("a key succession must name a new key, not the author's own key")


def _witness_batch(body: Mapping[str, Any], author: str | None) -> None:
    # Imported here: the witness module builds on this one.
    from craftnet.archive.witness import check_batch_body

    check_batch_body(body)


def _founders_are_dids(body: Mapping[str, Any], author: str | None) -> None:
    for did in body["founders"]:
        try:
            parse_did(did)
        except IdentityError as exc:
            raise SchemaError(f"founder {did!r:.60} is not a did:key: {exc}") from exc
    if author is not None and author not in body["founders"]:
        raise SchemaError("an alliance genesis is signed by one of its founding hubs")


_TITLE = FieldSpec("title", "line", "a short name", required=True, max_len=200)
_LICENCE = FieldSpec(
    "licence", "licence", "SPDX licence id, or LicenseRef-<name>", required=True, max_len=80
)
_MATERIALS = FieldSpec("materials", "lines", "materials used", max_items=64)

SCHEMAS: Final[dict[str, Schema]] = {
    schema.type: schema
    for schema in (
        Schema(
            "technique",
            1,
            "a craft technique: how something is made, step by step",
            (
                _TITLE,
                FieldSpec("summary", "text", "what the technique is for", max_len=4000),
                FieldSpec("tradition", "line", "the craft tradition it belongs to"),
                FieldSpec("region", "line", "where it is practised"),
                FieldSpec(
                    "language",
                    "language",
                    "BCP-47 tag of the text, e.g. 'en' or 'pt-BR'",
                    max_len=MAX_LANGUAGE_TAG,
                ),
                _MATERIALS,
                FieldSpec("tools", "lines", "tools needed", max_items=64),
                FieldSpec(
                    "steps",
                    "steps",
                    "ordered steps, each {text, media: [CID]}; media are links",
                    required=True,
                    max_len=4000,
                    min_items=1,
                    max_items=200,
                    link=True,
                ),
                _LICENCE,
            ),
        ),
        Schema(
            "design",
            1,
            "a design: files to fabricate something, and what it was derived from",
            (
                _TITLE,
                FieldSpec("description", "text", "what it is and how to make it", max_len=4000),
                FieldSpec("files", "cids", "CIDs of file nodes; links", max_items=256, link=True),
                _LICENCE,
                FieldSpec(
                    "derived_from",
                    "cids",
                    "CIDs of the designs it derives from; links",
                    max_items=64,
                    link=True,
                ),
                FieldSpec(
                    "process",
                    "slug",
                    f"fabrication process, a slug such as {', '.join(KNOWN_PROCESSES)}",
                    max_len=64,
                ),
                FieldSpec("machine", "line", "machine or tool it was made for"),
                _MATERIALS,
            ),
        ),
        Schema(
            "attestation",
            1,
            "an alliance member vouching for an artisan, or for having fabricated a design",
            (
                FieldSpec("subject", "did", "did:key of the artisan it is about", required=True),
                FieldSpec(
                    "kind",
                    "choice",
                    "skill, living-heritage (a Human Treasure) or fabricated",
                    required=True,
                    choices=ATTESTATION_KINDS,
                ),
                FieldSpec("skill", "line", "the skill vouched for (kind 'skill')"),
                FieldSpec("level", "choice", "skill level", choices=SKILL_LEVELS),
                FieldSpec(
                    "design",
                    "cid",
                    "the design fabricated (kind 'fabricated'); a link",
                    link=True,
                ),
                FieldSpec("note", "text", "free text", max_len=2000),
            ),
            _no_self_vouching,
        ),
        Schema(
            "collection",
            1,
            "a curated list of records, e.g. a Maker's Fair showcase",
            (
                _TITLE,
                FieldSpec("description", "text", "what brings the items together", max_len=4000),
                FieldSpec("items", "cids", "CIDs of the records; links", max_items=1000, link=True),
            ),
        ),
        Schema(
            "key-succession",
            1,
            "the author's key hands over to a new key (signed by the old key)",
            (
                FieldSpec("new", "did", "did:key of the new key", required=True),
                FieldSpec("reason", "line", "why the key changes", max_len=500),
            ),
            _new_key_differs,
        ),
        Schema(
            "revocation",
            1,
            "a key is no longer to be trusted from a time on",
            (
                FieldSpec("did", "did", "did:key of the revoked key", required=True),
                FieldSpec(
                    "since",
                    "ts",
                    "HLC timestamp from which the key's records are void",
                    required=True,
                ),
                FieldSpec("reason", "line", "why it was revoked", required=True, max_len=500),
            ),
        ),
        # Alliance membership (rules in craftnet.identity.membership).
        Schema(
            "alliance",
            1,
            "the genesis of an alliance of hubs: its name, founding hubs and rules",
            (
                FieldSpec("name", "line", "the alliance's name", required=True, max_len=128),
                FieldSpec(
                    "founders",
                    "lines",
                    "did:keys of the founding hubs",
                    required=True,
                    max_len=128,
                    min_items=1,
                    max_items=64,
                ),
                FieldSpec("max_cert_days", "ts", "longest membership certificate, in days"),
                FieldSpec("rules", "text", "the alliance's rules, for people", max_len=4000),
            ),
            _founders_are_dids,
        ),
        Schema(
            "membership",
            1,
            "a member hub admits a hub to an alliance until an expiry time",
            (
                FieldSpec(
                    "alliance",
                    "cid",
                    "the alliance's genesis record; a link",
                    required=True,
                    link=True,
                ),
                FieldSpec("member", "did", "did:key of the admitted hub", required=True),
                FieldSpec("expires", "ts", "HLC time the membership ends", required=True),
                FieldSpec("name", "line", "the admitted hub's name"),
                FieldSpec(
                    "organisation", "line", "the organisation that runs the hub (for witnesses)"
                ),
            ),
        ),
        Schema(
            "membership-revocation",
            1,
            "a hub's membership of an alliance ends",
            (
                FieldSpec(
                    "alliance",
                    "cid",
                    "the alliance's genesis record; a link",
                    required=True,
                    link=True,
                ),
                FieldSpec("member", "did", "did:key of the hub", required=True),
                FieldSpec("reason", "line", "why", max_len=500),
            ),
        ),
        # Witnessed timestamps (rules in craftnet.archive.witness).
        Schema(
            "witness",
            1,
            "a hub's signed statement that it held records by given times, for many "
            "records at once: the root of a Merkle tree over {witnessed CID, at} leaves",
            (
                FieldSpec("root", "digest", "BLAKE3 Merkle root of the leaves", required=True),
                FieldSpec("count", "ts", "how many leaves (1..65536)", required=True),
                FieldSpec(
                    "leaves",
                    "cids",
                    "raw blocks of 44-byte leaves (at, CID), 4096 per block; links",
                    required=True,
                    min_items=1,
                    max_items=16,
                    link=True,
                ),
                FieldSpec("first", "ts", "the earliest 'at' of a leaf", required=True),
                FieldSpec("last", "ts", "the latest 'at' of a leaf", required=True),
                FieldSpec(
                    "membership",
                    "cids",
                    "the witness's certificates (the genesis, for a founder); links",
                    max_items=64,
                    link=True,
                ),
            ),
            _witness_batch,
        ),
    )
}
# The schemas' own names, checked as any type name is (check_type_name takes them at once).
_KNOWN_NAMES: Final = frozenset(
    name for name in SCHEMAS if len(name) <= MAX_TYPE_NAME and TYPE_NAME.fullmatch(name)
)
KNOWN_TYPES: Final = frozenset(SCHEMAS)


def schema_for(rtype: str) -> Schema | None:
    """The schema of ``rtype``, or None for a type this hub treats as opaque."""
    return SCHEMAS.get(rtype)


def check_type_name(rtype: object) -> str:
    """Return ``rtype`` if it is a valid record type name (a lower-case slug)."""
    if type(rtype) is str and rtype in _KNOWN_NAMES:
        return rtype  # the names of this hub's schemas: checked once, when defined
    if not isinstance(rtype, str) or len(rtype) > MAX_TYPE_NAME or not TYPE_NAME.fullmatch(rtype):
        raise SchemaError(
            f"record type {rtype!r:.80} is not a lower-case slug like 'design' or 'key-succession'"
        )
    return rtype


def check_version(rtype: str, v: int) -> Schema | None:
    """Return the schema for ``rtype`` at ``v``; None if opaque; raise if ``v`` is unsupported."""
    schema = SCHEMAS.get(rtype)
    if schema is None or schema.version == v:
        return schema
    if v > schema.version:
        raise SchemaError(
            f"record type {rtype!r} version {v} is newer than this hub understands; "
            f"upgrade craftnet (this version knows {rtype} records up to version {schema.version})"
        )
    raise SchemaError(f"record type {rtype!r} version {v} is not supported (only {schema.version})")


def _fail(rtype: str, name: str, problem: str) -> SchemaError:
    return SchemaError(f"{rtype}: field {name!r} {problem}")


def _check_string(
    rtype: str, spec: FieldSpec, value: object, index: int | None = None, part: str = ""
) -> str:
    """Check a string of field ``spec`` (entry ``index`` of a list, its ``part``)."""
    if type(value) is not str and not isinstance(value, str):
        where = _where(index, part)
        raise _fail(rtype, spec.name + where, f"must be a string, got {type(value).__name__}")
    if len(value) > spec.max_len:
        where = _where(index, part)
        raise _fail(
            rtype, spec.name + where, f"is {len(value)} characters; the limit is {spec.max_len}"
        )
    # A printable string holds no control character at all (tab and line breaks
    # included), so it keeps both rules; only the others (multi-line text) pay for the
    # scan. ``isspace`` is ``not strip()`` without the copy.
    if value.isprintable() and value and not value.isspace():
        return value
    # One scan for every character a line may not hold; which rule broke is told after.
    single_line = spec.kind in _SINGLE_LINE_KINDS
    if (_ANY_CONTROL if single_line else _CONTROL).search(value) is not None or not value.strip():
        where = _where(index, part)
        if not value.strip():
            raise _fail(rtype, spec.name + where, "must not be empty")
        if _CONTROL.search(value):
            raise _fail(rtype, spec.name + where, "must not contain control characters")
        raise _fail(rtype, spec.name + where, "must be a single line (no tabs or line breaks)")
    return value


def _where(index: int | None, part: str) -> str:
    """Where in a field a problem is, for messages: ``[2].text``; built only on failure."""
    return "" if index is None else f"[{index}]{part}"


def _check_list(rtype: str, spec: FieldSpec, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(rtype, spec.name, f"must be a list, got {type(value).__name__}")
    if len(value) > spec.max_items:
        raise _fail(rtype, spec.name, f"has {len(value)} entries; the limit is {spec.max_items}")
    if len(value) < spec.min_items:
        raise _fail(rtype, spec.name, f"needs at least {spec.min_items} entries")
    return value


def _check_cids(rtype: str, name: str, value: list[Any]) -> list[Cid]:
    for item in value:
        if not isinstance(item, Cid):
            raise _fail(rtype, name, f"must hold CIDs (links), got {type(item).__name__}")
    if len(set(value)) != len(value):
        raise _fail(rtype, name, "lists the same CID twice")
    return value


def _check_field(rtype: str, spec: FieldSpec, value: object) -> list[Cid]:
    """Check one field's value; return the CIDs it holds (for the links rule)."""
    kind = spec.kind
    if kind in ("line", "text"):
        _check_string(rtype, spec, value)
    elif kind == "lines":
        for index, item in enumerate(_check_list(rtype, spec, value)):
            _check_string(rtype, spec, item, index)
    elif kind == "cid":
        if not isinstance(value, Cid):
            raise _fail(rtype, spec.name, f"must be a CID (link), got {type(value).__name__}")
        return [value]
    elif kind == "cids":
        return _check_cids(rtype, spec.name, _check_list(rtype, spec, value))
    elif kind == "did":
        if not isinstance(value, str):
            raise _fail(rtype, spec.name, f"must be a did:key string, got {type(value).__name__}")
        try:
            parse_did(value)
        except IdentityError as exc:
            raise _fail(rtype, spec.name, f"is not a usable did:key: {exc}") from exc
    elif kind == "ts":
        if type(value) is not int or not 0 <= value <= MAX_TS:
            raise _fail(rtype, spec.name, "must be a 64-bit hybrid logical clock integer")
    elif kind == "steps":
        cids: list[Cid] = []
        for index, step in enumerate(_check_list(rtype, spec, value)):
            if not isinstance(step, dict):
                raise _fail(rtype, f"{spec.name}[{index}]", "must be a map {text, media}")
            if "text" not in step:
                raise _fail(rtype, f"{spec.name}[{index}]", "needs 'text'")
            _check_string(rtype, spec, step["text"], index, ".text")
            media = step.get("media", [])
            if not isinstance(media, list) or len(media) > MAX_STEP_MEDIA:
                raise _fail(
                    rtype,
                    f"{spec.name}[{index}].media",
                    f"must be a list of at most {MAX_STEP_MEDIA} CIDs",
                )
            if media:
                cids.extend(_check_cids(rtype, f"{spec.name}[{index}].media", media))
        return cids
    elif kind == "licence":
        validate_licence(value)
    elif kind == "language":
        if not isinstance(value, str) or len(value) > spec.max_len or not _BCP47.fullmatch(value):
            raise _fail(rtype, spec.name, f"{value!r:.40} is not a BCP-47 language tag like 'en'")
    elif kind == "slug":
        if not isinstance(value, str) or len(value) > spec.max_len or not _SLUG.fullmatch(value):
            raise _fail(rtype, spec.name, f"{value!r:.40} is not a lower-case slug like 'hand'")
    elif kind == "choice" and value not in spec.choices:
        raise _fail(rtype, spec.name, f"must be one of {', '.join(spec.choices)}")
    elif kind == "digest" and (type(value) is not bytes or len(value) != 32):
        raise _fail(rtype, spec.name, "must be a 32-byte digest")
    return []


def validate_body(
    rtype: str,
    v: int,
    body: Mapping[str, Any],
    links: Iterable[Cid],
    author: str | None = None,
) -> bool:
    """Check ``body`` against the schema of ``rtype`` at ``v``; return False if ``rtype`` is opaque.

    Raises :class:`SchemaError` naming the first problem found.
    """
    check_type_name(rtype)
    schema = check_version(rtype, v)
    if schema is None:
        return False
    linked: list[Cid] = []
    for spec in schema.fields:
        if spec.name not in body:
            if spec.required:
                raise _fail(rtype, spec.name, "is required")
            continue
        linked.extend(_check_field(rtype, spec, body[spec.name]))
    if schema.rules is not None:
        schema.rules(body, author)
    if linked:
        missing = set(linked).difference(links)
        if missing:
            raise SchemaError(
                f"{rtype}: the body names {len(missing)} CID(s) missing from the record's "
                f"links, e.g. {min(missing)}; every CID in the body must also be a link"
            )
    return True


def validate_record(record: Record) -> bool:
    """Check a record's body against its type's schema; return False if the type is opaque."""
    return validate_body(record.type, record.v, record.body, record.links, record.author)


def record_title(record: Record) -> str | None:
    """The record's title if its body has a string one (any type, known or not)."""
    title = record.body.get("title")
    return title if isinstance(title, str) else None


def record_licence(record: Record) -> str | None:
    """The record's licence if its body has a string one."""
    licence = record.body.get("licence")
    return licence if isinstance(licence, str) else None


# -- building bodies ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltBody:
    """A validated body and the links the envelope must carry for it."""

    type: str
    body: dict[str, Any]
    links: tuple[Cid, ...]


def _to_cid(rtype: str, name: str, value: object) -> Cid:
    if isinstance(value, Cid):
        return value
    if isinstance(value, str):
        try:
            return Cid.parse(value)
        except CidError as exc:
            raise _fail(rtype, name, f"holds a bad CID: {exc}") from exc
    raise _fail(rtype, name, f"must hold CIDs, got {type(value).__name__}")


def _as_list(rtype: str, name: str, value: object) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise _fail(rtype, name, f"must be a list, got {type(value).__name__}")


def _plain(rtype: str, name: str, value: Any, depth: int = 0) -> Any:
    """Copy a value from TOML/JSON/keywords into DAG-CBOR terms (no floats, lists not tuples)."""
    if depth > 16:
        raise _fail(rtype, name, "nests too deeply")
    if isinstance(value, float):
        raise _fail(rtype, name, "is a float; craftnet stores no floats, use an integer or text")
    if isinstance(value, list | tuple):
        return [_plain(rtype, name, item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _plain(rtype, name, item, depth + 1) for key, item in value.items()}
    return value


def _coerce(rtype: str, spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "cid":
        return _to_cid(rtype, spec.name, value)
    if spec.kind == "cids":
        return [_to_cid(rtype, spec.name, item) for item in _as_list(rtype, spec.name, value)]
    if spec.kind == "steps":
        steps = []
        for item in _as_list(rtype, spec.name, value):
            if isinstance(item, str):
                steps.append({"text": item, "media": []})
                continue
            if not isinstance(item, dict):
                raise _fail(rtype, spec.name, "entries are text or maps {text, media}")
            step = _plain(rtype, spec.name, item)
            step["media"] = [
                _to_cid(rtype, spec.name + ".media", cid)
                for cid in _as_list(rtype, spec.name + ".media", item.get("media", []))
            ]
            steps.append(step)
        return steps
    return _plain(rtype, spec.name, value)


def build_from_mapping(
    rtype: str, data: Mapping[str, Any], *, extra_links: Iterable[Cid] = ()
) -> BuiltBody:
    """Build and validate a body of a known type from a TOML/JSON-like mapping.

    CIDs may be given as base32 strings, steps as plain strings; ``None`` values are
    left out; a ``type`` key, if present, must equal ``rtype``. Unknown field names are
    refused here (they are probably typos), unlike in received records.
    """
    schema = schema_for(rtype)
    if schema is None:
        raise SchemaError(
            f"cannot build a {rtype!r:.40} record: known types are {', '.join(sorted(SCHEMAS))}"
        )
    fields = dict(data)
    declared = fields.pop("type", rtype)
    if declared != rtype:
        raise SchemaError(f"the data says type {declared!r:.40} but a {rtype} was asked for")
    unknown = sorted(name for name in fields if schema.field(name) is None)
    if unknown:
        accepted = ", ".join(spec.name for spec in schema.fields)
        raise SchemaError(f"{rtype}: unknown field(s) {', '.join(unknown)}; accepted: {accepted}")
    body: dict[str, Any] = {}
    for spec in schema.fields:
        value = fields.get(spec.name)
        if value is not None:
            body[spec.name] = _coerce(rtype, spec, value)
    links = _body_links(schema, body)
    for cid in extra_links:
        if cid not in links:
            links.append(cid)
    validate_body(rtype, schema.version, body, links)
    return BuiltBody(rtype, body, tuple(links))


def build(rtype: str, /, **fields: Any) -> BuiltBody:
    """Build and validate a body from keyword arguments: ``build("design", title=..., ...)``."""
    return build_from_mapping(rtype, fields)


def _body_links(schema: Schema, body: Mapping[str, Any]) -> list[Cid]:
    """The CIDs the body's link fields hold, in field order, without repeats."""
    links: list[Cid] = []
    for spec in schema.fields:
        if not spec.link or spec.name not in body:
            continue
        value = body[spec.name]
        if spec.kind == "cid":
            found = [value]
        elif spec.kind == "steps":
            found = [cid for step in value if isinstance(step, dict) for cid in step["media"]]
        else:
            found = list(value)
        for cid in found:
            if isinstance(cid, Cid) and cid not in links:
                links.append(cid)
    return links
