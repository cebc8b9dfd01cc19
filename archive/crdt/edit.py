"""Turning what a user means ("set the title", "insert a step") into changes.

A :class:`ChangeBuilder` reads the current state to name what an edit overwrites or
removes (the values and dots it saw) and where an insert goes (the element before it).
Positions are visible positions (0-based) as the user sees them at edit time.
"""

from __future__ import annotations

from typing import Any

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.errors import EditError
from craftnet.archive.crdt.ops import (
    FIELD_NAME,
    LIST_FIELDS,
    MAX_TEXT,
    field_kind,
)
from craftnet.archive.crdt.sequence import Sequence
from craftnet.archive.crdt.state import DocState


def _ref(cid: bytes, index: int) -> list[Any]:
    return [Cid.from_bytes(cid), index]


class ChangeBuilder:
    """Collects the changes of one operation (or of a genesis, when ``state`` is None)."""

    def __init__(self, state: DocState | None = None) -> None:
        self.state = state
        self.changes: list[dict[str, Any]] = []
        self._lists: dict[str, list[list[Any]]] = {}
        self._texts_edited: set[tuple[str, int | None]] = set()

    def _field(self, field: str, wanted: str) -> None:
        if not FIELD_NAME.fullmatch(field):
            raise EditError(f"{field!r} is not a field name (lower-case letters, digits, _)")
        kind = field_kind(field)
        if kind != wanted:
            raise EditError(f"field {field!r} is a {kind} field, not a {wanted} field")

    def set(self, field: str, value: Any) -> ChangeBuilder:
        """Overwrite a register field (concurrent writes become conflicts)."""
        self._field(field, "scalar")
        preds: list[list[Any]] = []
        if self.state is not None:
            preds = [_ref(cid, i) for cid, i in sorted(self.state.registers.get(field, {}))]
        preds.extend([c["_own"]] for c in self.changes if c.get("_set") == field)
        self.changes.append(
            {"op": "set", "field": field, "value": value, "pred": preds, "_set": field,
             "_own": len(self.changes)}
        )
        return self

    def add(self, field: str, value: str | Cid) -> ChangeBuilder:
        """Add a member to a set field."""
        self._field(field, "set")
        self.changes.append({"op": "add", "field": field, "value": value})
        return self

    def remove(self, field: str, value: str | Cid) -> ChangeBuilder:
        """Remove a member from a set field (as far as this hub has seen it)."""
        self._field(field, "set")
        dots: list[list[Any]] = []
        if self.state is not None:
            seen = self.state.sets.get(field, {}).get(value, {})
            dots = [_ref(cid, i) for cid, i in sorted(seen)]
        dots.extend(
            [i] for i, c in enumerate(self.changes)
            if c["op"] == "add" and c["field"] == field and c["value"] == value
        )
        if not dots:
            raise EditError(f"{value!r} is not in {field!r}")
        self.changes.append({"op": "remove", "field": field, "value": value, "dots": dots})
        return self

    def items(self, field: str) -> list[list[Any]]:
        """The refs of the visible items of a list field, including ones added here."""
        model = self._lists.get(field)
        if model is None:
            model = []
            seq = None if self.state is None else self.state.lists.get(field)
            if seq is not None:
                model = [_ref(run.key[2], run.key[3]) for run in seq.visible_runs()]
            self._lists[field] = model
        return model

    def insert(self, field: str, index: int, value: Any) -> ChangeBuilder:
        """Insert an item so that it is at visible position ``index`` (``len`` appends)."""
        self._field(field, "list")
        model = self.items(field)
        if not 0 <= index <= len(model):
            raise EditError(f"{field!r} has {len(model)} items; cannot insert at {index + 1}")
        after = model[index - 1] if index > 0 else None
        if LIST_FIELDS[field] == "text" and len(value) > MAX_TEXT:
            raise EditError(f"a step's text is at most {MAX_TEXT} characters")
        own = len(self.changes)
        self.changes.append({"op": "insert", "field": field, "after": after, "value": value})
        model.insert(index, [own])
        return self

    def append(self, field: str, value: Any) -> ChangeBuilder:
        """Insert an item at the end of a list field."""
        return self.insert(field, len(self.items(field)), value)

    def delete(self, field: str, index: int) -> ChangeBuilder:
        """Delete the item at visible position ``index``."""
        self._field(field, "list")
        model = self.items(field)
        if not 0 <= index < len(model):
            raise EditError(f"{field!r} has {len(model)} items; there is no item {index + 1}")
        self.changes.append({"op": "delete", "field": field, "item": model.pop(index)})
        return self

    def edit_text(self, field: str, new: str, index: int | None = None) -> ChangeBuilder:
        """Make a text field (or item ``index`` of a text list) read ``new``, character-wise."""
        kind = field_kind(field)
        if kind == "list" and LIST_FIELDS[field] == "text":
            if index is None:
                raise EditError(f"say which item of {field!r} to edit")
            model = self.items(field)
            if not 0 <= index < len(model):
                raise EditError(f"{field!r} has {len(model)} items; there is no item {index + 1}")
            item: list[Any] | None = model[index]
            assert item is not None
            if len(item) == 1:
                raise EditError("give an item's text when inserting it, not in a later change")
            text = self._step_text(field, item)
        elif kind == "text":
            if index is not None:
                raise EditError(f"{field!r} is one text, not a list of items")
            item = None
            text = None if self.state is None else self.state.texts.get(field)
        else:
            raise EditError(f"field {field!r} is a {kind} field, not a text")
        if (field, index) in self._texts_edited:
            raise EditError(f"{field!r} is already edited in this operation")
        self._texts_edited.add((field, index))
        old = "" if text is None else text.string()
        ids = [] if text is None else text.chars()
        prefix = 0
        limit = min(len(old), len(new))
        while prefix < limit and old[prefix] == new[prefix]:
            prefix += 1
        suffix = 0
        while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
            suffix += 1
        gone = ids[prefix : len(old) - suffix]
        if gone:
            ranges: list[list[Any]] = []
            for cid, i, offset in gone:
                last = ranges[-1] if ranges else None
                if (
                    last is not None
                    and last[0].bytes == cid
                    and last[1] == i
                    and last[2] + last[3] == offset
                ):
                    last[3] += 1
                else:
                    ranges.append([Cid.from_bytes(cid), i, offset, 1])
            for start in range(0, len(ranges), 1000):
                self.changes.append(
                    {"op": "delete-text", "field": field, "item": item,
                     "ranges": ranges[start : start + 1000]}
                )
        added = new[prefix : len(new) - suffix]
        after: list[Any] | None = None
        if prefix:
            cid, i, offset = ids[prefix - 1]
            after = [Cid.from_bytes(cid), i, offset]
        for start in range(0, len(added), MAX_TEXT):
            chunk = added[start : start + MAX_TEXT]
            own = len(self.changes)
            self.changes.append(
                {"op": "insert-text", "field": field, "item": item, "after": after, "text": chunk}
            )
            after = [own, len(chunk) - 1]
        return self

    def _step_text(self, field: str, item: list[Any]) -> Sequence | None:
        if self.state is None:
            return None
        seq = self.state.lists.get(field)
        run = None if seq is None else seq.find(item[0].bytes, item[1])
        if run is None:
            return None
        content: Sequence = run.content
        return content

    def build(self) -> list[dict[str, Any]]:
        """The changes, ready for an operation body."""
        return [{k: v for k, v in c.items() if not k.startswith("_")} for c in self.changes]
