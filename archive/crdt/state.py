"""The pure, deterministic fold of a document: operations in, state out. No I/O.

:class:`DocState` holds what the document *is* (registers, sets, lists, texts, with the
ids that later operations refer to) but not its history: operation records stay in the
store. Operations must be applied in causal order (see :mod:`craftnet.archive.crdt.causal`);
then any order gives the same state and the same :meth:`DocState.encode` bytes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import cbor2

from craftnet.archive import codec
from craftnet.archive.cid import Cid
from craftnet.archive.crdt.errors import InvalidOp
from craftnet.archive.crdt.ops import (
    LIST_FIELDS,
    Acl,
    AddMember,
    DeleteItem,
    InsertItem,
    InsertText,
    Op,
    Ref,
    RemoveMember,
    SetField,
)
from craftnet.archive.crdt.sequence import Key, Run, Sequence
from craftnet.archive.errors import CidError, CodecError, IntegrityError

STATE_VERSION: Final = 1


class Rejected(Exception):  # an outcome, not an error: it never leaves this package
    """An operation is well-formed but cannot apply here; the reason is recorded."""


def _member_sort(value: Any) -> bytes:
    encoded: bytes = codec.encode(value)
    return encoded


def _cid_to_tag(_encoder: Any, value: Any) -> Any:
    if isinstance(value, Cid):
        _encoder.encode(cbor2.CBORTag(42, b"\x00" + value.bytes))
        return None
    raise CodecError(f"cannot encode a {type(value).__name__} in a document state")


def _tag_to_cid(*args: Any) -> Any:
    tag = next(arg for arg in args if isinstance(arg, cbor2.CBORTag))
    if tag.tag != 42:
        raise ValueError(f"unexpected CBOR tag {tag.tag}")
    return Cid.from_bytes(tag.value[1:])


def fast_decode(data: bytes) -> Any:
    """Decode bytes that :func:`fast_encode` wrote into this hub's own store.

    Skips :func:`craftnet.archive.codec.decode`'s canonical re-encoding check, which is
    for bytes from elsewhere; damaged bytes still raise :class:`IntegrityError`.
    """
    try:
        return cbor2.loads(data, tag_hook=_tag_to_cid)
    except (cbor2.CBORError, CidError, ValueError, TypeError) as exc:
        raise IntegrityError(
            f"cached document data is damaged ({exc}); run 'craftnet doc rebuild CID'"
        ) from exc


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building many small, acyclic objects: with a large
    state alive, its full collections would otherwise cost more than the work itself."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def fast_encode(value: Any) -> bytes:
    """Canonical DAG-CBOR of a value made of decoded DAG-CBOR parts, at C speed.

    Gives the same bytes as :func:`craftnet.archive.codec.encode` for such values (both
    are cbor2's canonical mode with links as tag 42) without walking the value in Python
    first; used for the view and the state, which are large and rewritten often.
    """
    encoded: bytes = cbor2.dumps(value, canonical=True, default=_cid_to_tag)
    return encoded


class DocState:
    """The merged state of one document, updated one causally-ready operation at a time."""

    __slots__ = ("_authors", "acl", "doc", "kind", "lists", "registers", "sets", "texts")

    def __init__(self, doc: Cid, kind: str, acl: Acl) -> None:
        self.doc = doc
        self.kind = kind
        self.acl = acl
        # field -> {(op CID, change index) -> (key, value)}: the live (not overwritten) writes
        self.registers: dict[str, dict[Ref, tuple[Key, Any]]] = {}
        # field -> {member -> {dot -> key}}: a member is present while it has a dot
        self.sets: dict[str, dict[Any, dict[Ref, Key]]] = {}
        self.lists: dict[str, Sequence] = {}
        self.texts: dict[str, Sequence] = {}
        self._authors: dict[str, str] = {}

    @classmethod
    def from_genesis(cls, op: Op) -> DocState:
        """Start a document from its genesis operation (raises :class:`InvalidOp` if unusable)."""
        if op.genesis is None:
            raise InvalidOp(f"record {op.cid} is an operation, not a document genesis")
        state = cls(op.cid, op.genesis.kind, op.genesis.acl)
        try:
            state.apply(op)
        except Rejected as exc:
            raise InvalidOp(f"document genesis {op.cid}: {exc}") from exc
        return state

    # -- applying ---------------------------------------------------------------------

    def refusal(self, author: str) -> str | None:
        """Why ``author`` may not edit this document, or None."""
        return self.acl.refusal(author)

    def apply(self, op: Op) -> None:
        """Apply a causally-ready operation, or raise :class:`Rejected` leaving state unchanged."""
        self.check(op)
        author = self._authors.setdefault(op.author, op.author)
        cid = op.cid.bytes
        for index, change in enumerate(op.changes):
            key: Key = (op.ts, author, cid, index)
            if isinstance(change, SetField):
                register = self.registers.setdefault(change.field, {})
                for pred in change.preds:
                    register.pop(pred, None)
                register[(cid, index)] = (key, change.value)
            elif isinstance(change, AddMember):
                members = self.sets.setdefault(change.field, {})
                members.setdefault(change.value, {})[(cid, index)] = key
            elif isinstance(change, RemoveMember):
                members = self.sets.get(change.field, {})
                dots = members.get(change.value)
                if dots is not None:
                    for dot in change.dots:
                        dots.pop(dot, None)
                    if not dots:
                        del members[change.value]
            elif isinstance(change, InsertItem):
                seq = self.lists.get(change.field)
                if seq is None:
                    seq = self.lists[change.field] = Sequence(text=False)
                content: Any = change.value
                if LIST_FIELDS[change.field] == "text":
                    content = Sequence(text=True)
                    if change.value:
                        content.insert(None, Run(key, 0, len(change.value), change.value))
                after = None if change.after is None else (*change.after, 0)
                seq.insert(after, Run(key, 0, 1, content))
            elif isinstance(change, DeleteItem):
                seq = self.lists.get(change.field)
                if seq is not None:
                    seq.delete(change.item[0], change.item[1], 0, 1)
            elif isinstance(change, InsertText):
                text = self._text(change.field, change.item, create=True)
                assert text is not None
                text.insert(change.after, Run(key, 0, len(change.text), change.text))
            else:
                text = self._text(change.field, change.item, create=False)
                if text is not None:
                    for rcid, rindex, start, length in change.ranges:
                        text.delete(rcid, rindex, start, length)

    def _text(self, field: str, item: Ref | None, *, create: bool) -> Sequence | None:
        if item is None:
            text = self.texts.get(field)
            if text is None and create:
                text = self.texts[field] = Sequence(text=True)
            return text
        seq = self.lists.get(field)
        run = None if seq is None else seq.find(item[0], item[1])
        if run is None:
            return None
        content = run.content
        assert isinstance(content, Sequence)
        return content

    def check(self, op: Op) -> None:
        """Raise :class:`Rejected` if a change refers to an element it cannot be placed after."""
        cid = op.cid.bytes
        made_items: dict[tuple[str, int], int] = {}  # (field, change index) -> 1
        made_text: dict[tuple[str, Ref | None, int], int] = {}  # -> characters inserted
        for index, change in enumerate(op.changes):
            key: Key = (op.ts, op.author, cid, index)
            if isinstance(change, InsertItem):
                if change.after is not None:
                    self._check_item(change.field, change.after, key, cid, made_items, index)
                made_items[(change.field, index)] = 1
                if LIST_FIELDS[change.field] == "text":
                    made_text[(change.field, (cid, index), index)] = len(change.value)
            elif isinstance(change, InsertText):
                item = change.item
                if item is not None:
                    self._check_item(change.field, item, None, cid, made_items, index)
                if change.after is not None:
                    acid, aindex, offset = change.after
                    if acid == cid:
                        length = made_text.get((change.field, item, aindex))
                        if length is None or offset >= length:
                            raise Rejected(
                                f"change {index} inserts text after a character that change "
                                f"{aindex} of the same operation did not make"
                            )
                    else:
                        text = self._text(change.field, item, create=False)
                        run = None if text is None else text.find(acid, aindex, offset)
                        if run is None:
                            raise Rejected(
                                f"change {index} inserts text after character "
                                f"{Cid.from_bytes(acid)}/{aindex}/{offset}, which is not in "
                                f"that text"
                            )
                        if run.key >= key:
                            raise Rejected(
                                f"change {index} inserts text after a character made later "
                                "than itself (its clock is not after that edit)"
                            )
                made_text[(change.field, item, index)] = len(change.text)

    def _check_item(
        self,
        field: str,
        ref: Ref,
        key: Key | None,
        cid: bytes,
        made: dict[tuple[str, int], int],
        index: int,
    ) -> None:
        if ref[0] == cid:
            if (field, ref[1]) not in made:
                raise Rejected(
                    f"change {index} refers to change {ref[1]} of the same operation, "
                    f"which made no {field!r} item"
                )
            return
        seq = self.lists.get(field)
        found = None if seq is None else seq.key_of(*ref)
        if found is None:
            raise Rejected(
                f"change {index} refers to {field!r} item {Cid.from_bytes(ref[0])}/{ref[1]}, "
                "which is not in this document"
            )
        if key is not None and found >= key:
            raise Rejected(
                f"change {index} inserts after an item made later than itself "
                "(its clock is not after that edit)"
            )

    # -- reading ----------------------------------------------------------------------

    def _winner(self, register: dict[Ref, tuple[Key, Any]]) -> tuple[Key, Any]:
        return max(register.values(), key=lambda entry: entry[0])

    def view(self) -> dict[str, Any]:
        """The document as a reader sees it: ``{kind, fields, conflicts}``."""
        fields: dict[str, Any] = {}
        conflicts: dict[str, Any] = {}
        for name, register in self.registers.items():
            entries = sorted(register.values(), key=lambda entry: entry[0], reverse=True)
            if entries[0][1] is not None:
                fields[name] = entries[0][1]
            if len(entries) > 1:
                conflicts[name] = [value for _key, value in entries[1:]]
        for name, members in self.sets.items():
            if members:
                fields[name] = sorted(members, key=_member_sort)
        for name, seq in self.lists.items():
            if seq.visible:
                if LIST_FIELDS[name] == "text":
                    fields[name] = [run.content.string() for run in seq.visible_runs()]
                else:
                    fields[name] = [run.content for run in seq.visible_runs()]
        for name, text in self.texts.items():
            if text.visible:
                fields[name] = text.string()
        return {"kind": self.kind, "fields": fields, "conflicts": conflicts}

    def view_bytes(self) -> bytes:
        """The canonical DAG-CBOR encoding of :meth:`view`."""
        return fast_encode(self.view())

    def step_texts(self, field: str = "steps") -> list[Sequence]:
        """The text of each visible item of a text list, in order."""
        seq = self.lists.get(field)
        return [] if seq is None else [run.content for run in seq.visible_runs()]

    def blame(self) -> dict[str, Any]:
        """For every field, part of a list and run of text: the operation that wrote it."""
        fields: dict[str, Any] = {}
        for name, register in sorted(self.registers.items()):
            entries = sorted(register.values(), key=lambda entry: entry[0], reverse=True)
            (key, value), losers = entries[0], entries[1:]
            fields[name] = {
                "kind": "register",
                "value": value,
                **_who(key),
                "conflicts": [{"value": v, **_who(k)} for k, v in losers],
            }
        for name, members in sorted(self.sets.items()):
            if members:
                fields[name] = {
                    "kind": "set",
                    "members": [
                        {
                            "value": value,
                            "added_by": [_who(k) for k in sorted(members[value].values())],
                        }
                        for value in sorted(members, key=_member_sort)
                    ],
                }
        for name, seq in sorted(self.lists.items()):
            items = []
            for run in seq.visible_runs():
                entry = {"item": _ref_text(run.key), **_who(run.key)}
                if LIST_FIELDS[name] == "text":
                    entry["text"] = _text_blame(run.content)
                else:
                    entry["value"] = run.content
                items.append(entry)
            fields[name] = {"kind": "list", "items": items}
        for name, text in sorted(self.texts.items()):
            fields[name] = {"kind": "text", "runs": _text_blame(text)}
        return fields

    # -- saving and loading -------------------------------------------------------------

    def _keys(self) -> Iterator[Key]:
        for register in self.registers.values():
            for key, _value in register.values():
                yield key
        for members in self.sets.values():
            for dots in members.values():
                yield from dots.values()
        for seq in self.lists.values():
            for run in seq.runs():
                yield run.key
                if isinstance(run.content, Sequence):
                    for inner in run.content.runs():
                        yield inner.key
        for text in self.texts.values():
            for run in text.runs():
                yield run.key

    def encode(self) -> bytes:
        """The canonical bytes of the state: equal states give equal bytes."""
        with gc_paused():
            return self._encode()

    def _encode(self) -> bytes:
        ops: dict[bytes, tuple[int, str]] = {}
        for key in self._keys():
            ops[key[2]] = (key[0], key[1])
        order = sorted(ops)
        authors = sorted({author for _ts, author in ops.values()})
        author_at = {author: i for i, author in enumerate(authors)}
        op_at = {cid: i for i, cid in enumerate(order)}

        def runs(seq: Sequence) -> list[list[Any]]:
            return [
                [op_at[key[2]], key[3], start, length, content]
                for key, start, length, _deleted, content in seq.canonical_runs()
            ]

        def items(name: str, seq: Sequence) -> list[list[Any]]:
            text = LIST_FIELDS[name] == "text"
            return [
                [
                    op_at[run.key[2]],
                    run.key[3],
                    run.deleted,
                    runs(run.content) if text else run.content,
                ]
                for run in seq.runs()
            ]

        value = {
            "v": STATE_VERSION,
            "doc": self.doc,
            "kind": self.kind,
            "owner": self.acl.owner,
            "acl": self.acl.to_value(),
            "authors": authors,
            "ops": [[cid, ops[cid][0], author_at[ops[cid][1]]] for cid in order],
            "reg": {
                name: sorted([op_at[ref[0]], ref[1], value] for ref, (_k, value) in reg.items())
                for name, reg in self.registers.items()
                if reg
            },
            "set": {
                name: [
                    [m, sorted([op_at[dot[0]], dot[1]] for dot in members[m])]
                    for m in sorted(members, key=_member_sort)
                ]
                for name, members in self.sets.items()
                if members
            },
            "list": {name: items(name, seq) for name, seq in self.lists.items()},
            "text": {name: runs(seq) for name, seq in self.texts.items()},
        }
        return fast_encode(value)

    @classmethod
    def decode(cls, data: bytes) -> DocState:
        """Load a state saved by :meth:`encode`; raise :class:`IntegrityError` if it is damaged."""
        try:
            # our own cache, written by encode(): parsed without the strict canonical check
            with gc_paused():
                return cls._decode(cbor2.loads(data, tag_hook=_tag_to_cid))
        except (cbor2.CBORError, CidError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"saved document state is damaged ({exc}); rebuild it from the operations"
            ) from exc

    @classmethod
    def _decode(cls, value: dict[str, Any]) -> DocState:
        if value["v"] != STATE_VERSION:
            raise ValueError(f"state version {value['v']} is not {STATE_VERSION}")
        acl_value = value["acl"]
        acl = Acl(value["owner"], acl_value["mode"], frozenset(acl_value["editors"]))
        state = cls(value["doc"], value["kind"], acl)
        authors = [state._authors.setdefault(a, a) for a in value["authors"]]
        cids = [bytes(cid) for cid, _ts, _a in value["ops"]]
        meta = [(ts, authors[a]) for _cid, ts, a in value["ops"]]

        def key(op: int, index: int) -> Key:
            ts, author = meta[op]
            return (ts, author, cids[op], index)

        def runs(raw: list[list[Any]]) -> Sequence:
            return Sequence.load(
                [(key(o, i), start, length, content is None, content) for o, i, start, length,
                 content in raw],
                text=True,
            )

        for name, entries in value["reg"].items():
            state.registers[name] = {(cids[o], i): (key(o, i), v) for o, i, v in entries}
        for name, members in value["set"].items():
            state.sets[name] = {
                m: {(cids[o], i): key(o, i) for o, i in dots} for m, dots in members
            }
        for name, raw_items in value["list"].items():
            text = LIST_FIELDS[name] == "text"
            state.lists[name] = Sequence.load(
                [
                    (key(o, i), 0, 1, deleted, runs(content) if text else content)
                    for o, i, deleted, content in raw_items
                ],
                text=False,
            )
        for name, raw_runs in value["text"].items():
            state.texts[name] = runs(raw_runs)
        return state


def _who(key: Key) -> dict[str, Any]:
    return {"op": Cid.from_bytes(key[2]), "author": key[1], "ts": key[0]}


def _ref_text(key: Key) -> str:
    return f"{Cid.from_bytes(key[2])}/{key[3]}"


def _text_blame(text: Sequence) -> list[dict[str, Any]]:
    """Visible text cut into pieces by the operation that typed them."""
    out: list[dict[str, Any]] = []
    for run in text.visible_runs():
        if out and out[-1]["op"].bytes == run.key[2] and out[-1]["ts"] == run.key[0]:
            out[-1]["text"] += run.content
        else:
            out.append({"text": run.content, **_who(run.key)})
    return out
