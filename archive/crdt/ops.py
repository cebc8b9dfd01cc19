"""Operation records: the wire format of document edits, parsed strictly into :class:`Op`.

A document starts with a *genesis* record (type ``doc``) and grows by *operation*
records (type ``doc-op``). Both are ordinary signed records (see
:mod:`craftnet.archive.records`); the CID of the genesis names the document.

Genesis body::

    {"kind": "technique",                      # what the document is
     "acl": {"mode": "editors", "editors": [did, ...]},   # or "owner" / "alliance"
     "changes": [change, ...]}                 # the initial fields (may be empty)

Operation body (``links`` of the record = the heads its author saw)::

    {"doc": CID of the genesis, "changes": [change, ...]}

A change is a map with ``op`` and ``field`` (see :data:`CHANGE_KEYS`). Elements made by
a change are named by a *ref* ``[CID, index]``: the operation's CID and the change's
position in its list. Inside one operation, ``[index]`` names an element made by an
earlier change of the same operation (its CID is not known before signing). Characters
of a text are ``[CID, index, offset]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from craftnet.archive import codec
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.errors import InvalidOp, OpTooLarge
from craftnet.archive.errors import CodecError
from craftnet.archive.records import Record
from craftnet.identity.errors import IdentityError
from craftnet.identity.keys import PrivateKey, parse_did

GENESIS_TYPE: Final = "doc"
OP_TYPE: Final = "doc-op"

MAX_OP_BYTES: Final = 64 * 1024
MAX_CHANGES: Final = 1000
MAX_TEXT: Final = 16 * 1024  # characters inserted by one change
MAX_VALUE_BYTES: Final = 4096  # encoded size of one scalar or list value
MAX_ITEM_CHARS: Final = 1000  # characters of one set member or media entry
MAX_REFS: Final = 1000  # refs in one change (preds, dots, ranges)
MAX_PARENTS: Final = 64
MAX_EDITORS: Final = 256

FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
KIND_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SET_FIELDS: Final = frozenset({"tags", "materials", "tools", "languages", "links"})
LIST_FIELDS: Final = {"steps": "text", "media": "value"}  # element kind of each list
TEXT_FIELDS: Final = frozenset({"summary", "description"})
ACL_MODES: Final = ("owner", "editors", "alliance")

FieldKind = Literal["scalar", "set", "list", "text"]
Ref = tuple[bytes, int]  # (op CID bytes, change index)
CharRef = tuple[bytes, int, int]  # (op CID bytes, change index, character offset)
Range = tuple[bytes, int, int, int]  # (op CID bytes, change index, start, length)


def field_kind(name: str) -> FieldKind:
    """How field ``name`` merges: a register, a set, a list or a text."""
    if name in SET_FIELDS:
        return "set"
    if name in LIST_FIELDS:
        return "list"
    if name in TEXT_FIELDS:
        return "text"
    return "scalar"


@dataclass(frozen=True, slots=True)
class SetField:
    """Write a last-writer-wins register; ``preds`` are the values it overwrites."""

    field: str
    value: Any
    preds: tuple[Ref, ...]


@dataclass(frozen=True, slots=True)
class AddMember:
    """Add ``value`` to an observed-remove set (a new dot)."""

    field: str
    value: str | Cid


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """Remove the observed ``dots`` of ``value`` from a set; unseen adds survive."""

    field: str
    value: str | Cid
    dots: tuple[Ref, ...]


@dataclass(frozen=True, slots=True)
class InsertItem:
    """Insert an element after ``after`` (None: at the start) in a list."""

    field: str
    after: Ref | None
    value: Any


@dataclass(frozen=True, slots=True)
class DeleteItem:
    """Delete a list element (it stays as a tombstone so concurrent inserts find it)."""

    field: str
    item: Ref


@dataclass(frozen=True, slots=True)
class InsertText:
    """Insert characters after ``after`` in a text field or in the text of list element ``item``."""

    field: str
    item: Ref | None
    after: CharRef | None
    text: str


@dataclass(frozen=True, slots=True)
class DeleteText:
    """Delete character ranges of a text."""

    field: str
    item: Ref | None
    ranges: tuple[Range, ...]


Change = SetField | AddMember | RemoveMember | InsertItem | DeleteItem | InsertText | DeleteText

CHANGE_KEYS: Final[dict[str, frozenset[str]]] = {
    "set": frozenset({"op", "field", "value", "pred"}),
    "add": frozenset({"op", "field", "value"}),
    "remove": frozenset({"op", "field", "value", "dots"}),
    "insert": frozenset({"op", "field", "after", "value"}),
    "delete": frozenset({"op", "field", "item"}),
    "insert-text": frozenset({"op", "field", "item", "after", "text"}),
    "delete-text": frozenset({"op", "field", "item", "ranges"}),
}


@dataclass(frozen=True, slots=True)
class Acl:
    """Who may edit: the owner (genesis author), listed editors, or any alliance member."""

    owner: str
    mode: str
    editors: frozenset[str]

    def refusal(self, author: str) -> str | None:
        """Why ``author`` may not edit, or None if they may."""
        if author == self.owner or self.mode == "alliance":
            return None
        if self.mode == "editors" and author in self.editors:
            return None
        allowed = "only its owner" if self.mode == "owner" else "only its owner and editors"
        return f"author {author} has no edit rights: {allowed} may edit this document"

    def to_value(self) -> dict[str, Any]:
        """The ACL as it appears in a genesis body."""
        return {"mode": self.mode, "editors": sorted(self.editors)}


@dataclass(frozen=True, slots=True)
class Genesis:
    """What a genesis record says beyond its changes."""

    kind: str
    acl: Acl


@dataclass(frozen=True, slots=True, eq=False)
class Op:
    """A parsed operation (or genesis) record; its signature is checked separately."""

    record: Record
    cid: Cid
    doc: Cid
    author: str
    ts: int
    parents: tuple[Cid, ...]
    changes: tuple[Change, ...]
    genesis: Genesis | None
    deps: tuple[Cid, ...]  # parents, the document and every op a change refers to

    @property
    def key(self) -> tuple[int, str, bytes]:
        """The total order of operations: (HLC, author, CID)."""
        return (self.ts, self.author, self.cid.bytes)


def _fail(record: Record, message: str) -> InvalidOp:
    return InvalidOp(f"operation {record.cid}: {message}")


def _index(record: Record, value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < MAX_CHANGES:
        raise _fail(record, f"{what} must be a change index 0..{MAX_CHANGES - 1}")
    return value


def _offset(record: Record, value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < 2**32:
        raise _fail(record, f"{what} must be a non-negative integer")
    return value


# Field names already found well-formed (a document uses a handful; bounded for hostile
# streams of ever new names).
_GOOD_FIELDS: set[str] = set()
_GOOD_FIELDS_MAX: Final = 1024


class _Parser:
    """Parses the changes of one record; collects the ops they refer to."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.self_bytes = record.cid.bytes
        self.refs: dict[bytes, Cid] = {}
        self.position = 0

    def fail(self, message: str) -> InvalidOp:
        return _fail(self.record, f"change {self.position}: {message}")

    def _head(self, raw: list[Any], size: int, what: str) -> tuple[bytes, list[Any]]:
        """Split a ref-like list into the op CID bytes and the integers after it."""
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{what} must be a list like [CID, index, ...]")
        if isinstance(raw[0], Cid):
            if len(raw) != size + 1:
                raise self.fail(f"{what} must have {size + 1} items")
            cid = raw[0].bytes
            if cid != self.self_bytes:
                self.refs[cid] = raw[0]
            rest = raw[1:]
        else:
            if len(raw) != size:
                raise self.fail(f"{what} within the same operation must have {size} items")
            cid = self.self_bytes
            rest = raw
            if _index(self.record, rest[0], what) >= self.position:
                raise self.fail(f"{what} must name an earlier change of this operation")
        return cid, rest

    def ref(self, raw: Any, what: str) -> Ref:
        cid, rest = self._head(raw, 1, what)
        return cid, _index(self.record, rest[0], what)

    def char_ref(self, raw: Any, what: str) -> CharRef:
        cid, rest = self._head(raw, 2, what)
        return cid, _index(self.record, rest[0], what), _offset(self.record, rest[1], what)

    def range(self, raw: Any) -> Range:
        cid, rest = self._head(raw, 3, "a range")
        start = _offset(self.record, rest[1], "range start")
        length = _offset(self.record, rest[2], "range length")
        if length == 0:
            raise self.fail("a deleted range must not be empty")
        return cid, _index(self.record, rest[0], "a range"), start, length

    def refs_list(self, raw: Any, what: str) -> tuple[Ref, ...]:
        if not isinstance(raw, list):
            raise self.fail(f"{what} must be a list")
        if len(raw) > MAX_REFS:
            raise OpTooLarge(
                f"operation {self.record.cid}: change {self.position} lists {len(raw)} "
                f"{what}; the limit is {MAX_REFS}"
            )
        return tuple(sorted({self.ref(item, what) for item in raw}))

    def member(self, raw: Any) -> str | Cid:
        if isinstance(raw, Cid):
            return raw
        if isinstance(raw, str) and 0 < len(raw) <= MAX_ITEM_CHARS:
            return raw
        raise self.fail(f"a set member or media entry is a CID or a string of 1..{MAX_ITEM_CHARS}")

    def scalar(self, raw: Any) -> Any:
        try:
            size = len(codec.encode(raw))
        except CodecError as exc:  # pragma: no cover - the record decoded, so it encodes
            raise self.fail(str(exc)) from exc
        if size > MAX_VALUE_BYTES:
            raise OpTooLarge(
                f"operation {self.record.cid}: change {self.position} holds a value of "
                f"{size} bytes; the limit is {MAX_VALUE_BYTES}. Store it as a file and link it."
            )
        return raw

    def text(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise self.fail("text must be a string")
        if len(raw) > MAX_TEXT:
            raise OpTooLarge(
                f"operation {self.record.cid}: change {self.position} inserts {len(raw)} "
                f"characters; the limit is {MAX_TEXT} per change"
            )
        return raw

    def change(self, raw: Any) -> Change:
        if not isinstance(raw, dict):
            raise self.fail("a change must be a map")
        name = raw.get("op")
        keys = CHANGE_KEYS.get(name) if isinstance(name, str) else None
        if keys is None or not isinstance(name, str):
            raise self.fail(f"unknown change op {name!r:.40}; expected {sorted(CHANGE_KEYS)}")
        if raw.keys() != keys:
            raise self.fail(f"a {name!r} change has exactly the keys {sorted(keys)}")
        field = raw["field"]
        if type(field) is not str or field not in _GOOD_FIELDS:  # lists do not hash
            if not isinstance(field, str) or not FIELD_NAME.fullmatch(field):
                raise self.fail("field names are lower-case identifiers of 1..32 characters")
            if len(_GOOD_FIELDS) < _GOOD_FIELDS_MAX:
                _GOOD_FIELDS.add(field)
        kind = field_kind(field)
        if name == "set":
            self.need(kind, "scalar", name, field)
            return SetField(field, self.scalar(raw["value"]), self.refs_list(raw["pred"], "preds"))
        if name == "add":
            self.need(kind, "set", name, field)
            return AddMember(field, self.member(raw["value"]))
        if name == "remove":
            self.need(kind, "set", name, field)
            member = self.member(raw["value"])
            return RemoveMember(field, member, self.refs_list(raw["dots"], "dots"))
        if name == "insert":
            self.need(kind, "list", name, field)
            after = None if raw["after"] is None else self.ref(raw["after"], "'after'")
            if LIST_FIELDS[field] == "text":
                value: Any = self.text(raw["value"])
            else:
                value = self.member(raw["value"])
            return InsertItem(field, after, value)
        if name == "delete":
            self.need(kind, "list", name, field)
            return DeleteItem(field, self.ref(raw["item"], "'item'"))
        item = self.text_item(kind, field, raw["item"], name)
        if name == "insert-text":
            char = None if raw["after"] is None else self.char_ref(raw["after"], "'after'")
            text = self.text(raw["text"])
            if not text:
                raise self.fail("inserted text must not be empty")
            return InsertText(field, item, char, text)
        ranges = raw["ranges"]
        if not isinstance(ranges, list) or not ranges:
            raise self.fail("'ranges' must be a non-empty list")
        if len(ranges) > MAX_REFS:
            raise OpTooLarge(
                f"operation {self.record.cid}: change {self.position} deletes {len(ranges)} "
                f"ranges; the limit is {MAX_REFS}"
            )
        return DeleteText(field, item, tuple(self.range(r) for r in ranges))

    def text_item(self, kind: FieldKind, field: str, raw: Any, name: str) -> Ref | None:
        if kind == "text":
            if raw is not None:
                raise self.fail(f"text field {field!r} has no items; 'item' must be null")
            return None
        if kind == "list" and LIST_FIELDS[field] == "text":
            if raw is None:
                raise self.fail(f"{name!r} on {field!r} must name the item whose text it edits")
            return self.ref(raw, "'item'")
        raise self.fail(f"field {field!r} holds no text; {name!r} does not apply")

    def need(self, kind: FieldKind, wanted: FieldKind, name: str, field: str) -> None:
        if kind != wanted:
            raise self.fail(f"{name!r} does not apply to {field!r}, which is a {kind} field")

    def changes(self, raw: Any) -> tuple[Change, ...]:
        if not isinstance(raw, list):
            raise _fail(self.record, "'changes' must be a list")
        if len(raw) > MAX_CHANGES:
            raise OpTooLarge(
                f"operation {self.record.cid} has {len(raw)} changes; the limit is {MAX_CHANGES}"
            )
        out = []
        for position, item in enumerate(raw):
            self.position = position
            out.append(self.change(item))
        return tuple(out)


def _acl(record: Record, raw: Any) -> Acl:
    if not isinstance(raw, dict) or set(raw) != {"mode", "editors"}:
        raise _fail(record, "'acl' must be a map with exactly 'mode' and 'editors'")
    mode = raw["mode"]
    if mode not in ACL_MODES:
        raise _fail(record, f"acl mode must be one of {list(ACL_MODES)}")
    editors = raw["editors"]
    if not isinstance(editors, list) or len(editors) > MAX_EDITORS:
        raise _fail(record, f"acl editors must be a list of at most {MAX_EDITORS} did:keys")
    for did in editors:
        try:
            parse_did(did)
        except IdentityError as exc:
            raise _fail(record, f"acl editor: {exc}") from exc
    if editors != sorted(set(editors)):
        raise _fail(record, "acl editors must be sorted and unique")
    if mode != "editors" and editors:
        raise _fail(record, f"acl mode {mode!r} takes no editors list")
    return Acl(record.author, mode, frozenset(editors))


def parse_op(record: Record) -> Op:
    """Parse a ``doc`` or ``doc-op`` record; raise :class:`InvalidOp` or :class:`OpTooLarge`."""
    if len(record.block) > MAX_OP_BYTES:
        raise OpTooLarge(
            f"operation {record.cid} is {len(record.block)} bytes; the limit is {MAX_OP_BYTES}. "
            "Split the edit into several operations."
        )
    if record.v != 1:
        raise _fail(record, f"version {record.v} is not understood here (only 1); upgrade craftnet")
    body = record.body
    parser = _Parser(record)
    if record.type == GENESIS_TYPE:
        if set(body) != {"kind", "acl", "changes"}:
            raise _fail(record, "a genesis body has exactly 'kind', 'acl' and 'changes'")
        kind = body["kind"]
        if not isinstance(kind, str) or len(kind) > 64 or not KIND_NAME.fullmatch(kind):
            raise _fail(record, "document kind must be a slug like 'technique'")
        if record.links:
            raise _fail(record, "a genesis has no parents")
        genesis: Genesis | None = Genesis(kind, _acl(record, body["acl"]))
        doc = record.cid
    elif record.type == OP_TYPE:
        if set(body) != {"doc", "changes"}:
            raise _fail(record, "an operation body has exactly 'doc' and 'changes'")
        doc = body["doc"]
        if not isinstance(doc, Cid):
            raise _fail(record, "'doc' must be the CID of the document's genesis")
        if not record.links:
            raise _fail(record, "an operation must link the heads it saw (at least the genesis)")
        if len(record.links) > MAX_PARENTS:
            raise OpTooLarge(
                f"operation {record.cid} links {len(record.links)} parents; "
                f"the limit is {MAX_PARENTS}"
            )
        if len(set(record.links)) != len(record.links):
            raise _fail(record, "parents must not repeat")
        genesis = None
    else:
        raise _fail(record, f"record type {record.type!r} is not {GENESIS_TYPE!r} or {OP_TYPE!r}")
    changes = parser.changes(body["changes"])
    if genesis is not None and parser.refs:
        raise _fail(record, "a genesis may only refer to elements it makes itself")
    deps = set(record.links)
    if genesis is None:
        deps.add(doc)
    deps.update(parser.refs.values())
    deps.discard(record.cid)
    return Op(
        record=record,
        cid=record.cid,
        doc=doc,
        author=record.author,
        ts=record.ts,
        parents=tuple(record.links),
        changes=changes,
        genesis=genesis,
        deps=tuple(sorted(deps)),
    )


def genesis_record(
    key: PrivateKey,
    kind: str,
    changes: list[dict[str, Any]],
    *,
    mode: str = "owner",
    editors: Iterable[str] = (),
    ts: int,
) -> Record:
    """Sign the genesis of a new document of ``kind`` with its ACL and initial changes."""
    acl = {"mode": mode, "editors": sorted(set(editors))}
    return Record.create(key, GENESIS_TYPE, {"kind": kind, "acl": acl, "changes": changes}, ts=ts)


def op_record(
    key: PrivateKey, doc: Cid, parents: Iterable[Cid], changes: list[dict[str, Any]], *, ts: int
) -> Record:
    """Sign an operation on ``doc`` that saw ``parents`` (the heads at edit time)."""
    return Record.create(key, OP_TYPE, {"doc": doc, "changes": changes}, sorted(parents), ts=ts)


def ref_value(ref: Ref, own: bytes | None = None) -> list[Any]:
    """The wire form of ``ref``; ``[index]`` when it names an element of the op ``own``."""
    if own is not None and ref[0] == own:
        return [ref[1]]
    return [Cid.from_bytes(ref[0]), ref[1]]
