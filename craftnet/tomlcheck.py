"""Strict TOML settings files, checked against dataclasses that document every option.

The hub's ``config.toml``, its ``network.toml`` and simnet's scenario files are all read
here. A file's layout is a tree of frozen dataclasses whose fields are made with
:func:`opt`: the default, the help text and the values accepted (bounds, choices, a
check of one's own), so one table serves the parser, the docs and their tests. Unknown
keys, wrong types and impossible values are refused with the caller's error class
(each package has its own, all :class:`~craftnet.errors.CraftnetError`), whose message
names the file, the line and the option::

    config.toml:3: http.port: 70000 is above the maximum 65535

``tomllib`` keeps no positions, so :func:`find_line` finds a key's line by scanning the
source text. It lives at the root of the package, beside ``errors``, because node/ and
simnet/ both read settings files and neither may import the other.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from craftnet.errors import CraftnetError

T = TypeVar("T")
KeyPath = tuple[Any, ...]  # keys (str) and array indexes (int) from the document's root
Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None

# Settings files are small; anything bigger is the wrong file (or an attack).
MAX_FILE_BYTES: Final = 1024 * 1024
_TYPE_NAMES: Final[dict[Any, str]] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
}


def opt(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Check | None = None,
    tag: str | None = None,
    one_or_many: bool = False,
) -> Any:
    """An option: its default, its help text and the values it accepts.

    ``check`` sees a value of the right type and returns what is wrong with it, if
    anything. A default that is ``list``, ``dict`` or a dataclass is a factory;
    :data:`dataclasses.MISSING` makes the option required. An array of a union of
    dataclasses needs ``tag``: the key whose value, a member's lower-cased class name,
    says which one each table is (``do = "restart"``). ``one_or_many`` lets an array
    option be written as its one item.
    """
    meta = {
        "doc": doc,
        "lo": lo,
        "hi": hi,
        "above": above,
        "choices": choices,
        "check": check,
        "tag": tag,
        "one_or_many": one_or_many,
    }
    if default in (list, dict) or (isinstance(default, type) and dataclasses.is_dataclass(default)):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class _Where:
    """Finds the line of a key path in TOML source text."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_\-.]+(?:\s*\.\s*[A-Za-z0-9_\-"]+)*)\s*=')

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: KeyPath = ()
        rows = text.splitlines()
        row = 0
        while row < len(rows):
            line = rows[row]
            header = self._HEADER.match(line)
            key = None if header else self._KEY.match(line)
            if header:
                name = tuple(self._split(header.group(2)))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (*name, counts[name])
                else:
                    table = self._index(name, counts)
                self.lines.setdefault(table, row + 1)
            elif key:
                path = (*table, *self._split(key.group(1)))
                self.lines.setdefault(path, row + 1)
                # The value may be an array or inline table over several lines.
                row = _scan_value(rows, row, key.end(), path, self.lines)
            row += 1

    @staticmethod
    def _split(dotted: str) -> list[str]:
        return [part.strip().strip('"') for part in dotted.split(".")]

    @staticmethod
    def _index(name: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> KeyPath:
        # A sub-table of an array element gets the element's index.
        for cut in range(len(name) - 1, 0, -1):
            if name[:cut] in counts:
                return (*name[:cut], counts[name[:cut]], *name[cut:])
        return name

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing key or table."""
        for cut in range(len(path), 0, -1):
            found = self.lines.get(path[:cut])
            if found is not None:
                return found
        return None


_PART: Final = r"""(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')"""
_INNER_KEY: Final = re.compile(rf"\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


class _Frame:
    """An array or inline table being read: where it is, its item or its last key."""

    def __init__(self, kind: str, path: KeyPath) -> None:
        self.kind = kind  # "[" or "{"
        self.path = path
        self.index = 0
        self.key: str | None = None


def _scan_value(
    lines: list[str], row: int, col: int, path: KeyPath, found: dict[KeyPath, int]
) -> int:
    """Records the lines of the arrays' items and inline tables' keys in the value that
    starts at ``lines[row][col]`` (set at ``path``); returns the row where it ends."""
    stack: list[_Frame] = []
    while row < len(lines):
        line = lines[row]
        while col < len(line):
            char = line[col]
            top = stack[-1] if stack else None
            if char in " \t\r":
                col += 1
                continue
            if char == "#":
                break
            if top is not None and top.kind == "{" and top.key is None:
                key = _INNER_KEY.match(line, col)
                if key:
                    top.key = key.group(1)
                    parts = tuple(p.strip().strip("\"'") for p in top.key.split("."))
                    found.setdefault((*top.path, *parts), row + 1)
                    col = key.end()
                    continue
            if char in "]}":
                if stack:
                    stack.pop()
                if not stack:
                    return row
                col += 1
                continue
            if char == ",":
                if top is not None:
                    if top.kind == "[":
                        top.index += 1
                    else:
                        top.key = None
                col += 1
                continue
            # The start of a value: where is it?
            if top is None:
                here = path
            elif top.kind == "[":
                here = (*top.path, top.index)
                found.setdefault(here, row + 1)
            else:
                here = (
                    *top.path,
                    *(p.strip().strip("\"'") for p in (top.key or "").split(".")),
                )
            if char in "[{":
                stack.append(_Frame(char, here))
                col += 1
                continue
            if char in "\"'":
                row, col = _skip_string(lines, row, col)
                if not stack:
                    return row
                continue
            # A bare scalar: up to the next delimiter.
            while col < len(line) and line[col] not in ",]}# \t":
                col += 1
            if not stack:
                return row
        row += 1
        col = 0
    return row


def _skip_string(lines: list[str], row: int, col: int) -> tuple[int, int]:
    line = lines[row]
    quote = line[col]
    triple = line.startswith(quote * 3, col)
    end = quote * 3 if triple else quote
    col += len(end)
    while row < len(lines):
        line = lines[row]
        while col < len(line):
            if quote == '"' and line[col] == "\\":
                col += 2
                continue
            if line.startswith(end, col):
                col += len(end)
                # A triple-quoted string may end with up to two more quotes.
                while triple and col < len(line) and line[col] == quote:
                    col += 1
                return row, col
            col += 1
        if not triple:
            return row, col
        row += 1
        col = 0
    return row, col


def find_line(text: str, path: KeyPath) -> int | None:
    """The 1-based line where the key at ``path`` (strings and array indexes) is set."""
    return _Where(text).line(path)


def dotted(path: KeyPath) -> str:
    """``("partitions", 0, "heal_s")`` as ``partitions[0].heal_s``."""
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


class Checker:
    """Builds dataclasses from parsed TOML, refusing what they do not describe."""

    def __init__(self, text: str, source: str, error: type[CraftnetError]) -> None:
        self.where = _Where(text)
        self.source = source
        self.error = error

    def fail(self, path: KeyPath, problem: str) -> CraftnetError:
        """An error naming the file, the line of ``path`` and the option (to raise)."""
        line = self.where.line(path)
        at = f"{self.source}:{line}" if line else self.source
        return self.error(f"{at}: {dotted(path) or 'the file'}: {problem}")

    def build(self, cls: type[T], value: Any, path: KeyPath = ()) -> T:
        """An instance of the dataclass ``cls`` from the table ``value`` at ``path``."""
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, got {_kind(value)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(typing.cast(Any, cls))}
        unknown = [k for k in value if k not in fields]
        if unknown:
            known = ", ".join(sorted(fields))
            raise self.fail(
                (*path, unknown[0]),
                f"unknown option {unknown[0]!r}; known here: {known}",
            )
        for name, f in fields.items():
            required = f.default is f.default_factory is dataclasses.MISSING
            if required and name not in value:
                raise self.fail(path, f"option {name!r} is required")
        args = {
            name: self._value(hints[name], fields[name], raw, (*path, name))
            for name, raw in value.items()
        }
        return cls(**args)

    def tagged(self, members: list[type], tag: str, value: Any, path: KeyPath) -> Any:
        """The member of a union of dataclasses that the table ``value`` names by ``tag``."""
        names = {cls.__name__.lower(): cls for cls in members}
        if not isinstance(value, dict):
            raise self.fail(
                path,
                f"must be a table with {tag!r} and its options, got {_kind(value)}",
            )
        kind = value.get(tag)
        if not isinstance(kind, str) or kind not in names:
            where = (*path, tag) if tag in value else path
            raise self.fail(where, f"{tag!r} must be one of {', '.join(names)} (got {kind!r})")
        options = {key: item for key, item in value.items() if key != tag}
        return self.build(names[kind], options, path)

    def _value(self, hint: Any, f: dataclasses.Field[Any], raw: Any, path: KeyPath) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is types.UnionType and type(None) in args:
            # An optional option: TOML has no null, so a value given is of the other type.
            (hint,) = [a for a in args if a is not type(None)]
            origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            return self.build(typing.cast(type, hint), raw, path)
        if origin in (list, tuple):
            item = args[0]
            union = _union_of_tables(item)
            table = union or dataclasses.is_dataclass(item)
            if f.metadata.get("one_or_many") and not isinstance(raw, list):
                raw = [raw]
            if not isinstance(raw, list):
                what = "an array of tables" if table else f"an array of {_plural(item)}"
                raise self.fail(path, f"must be {what}, got {_kind(raw)}")
            if union:
                tag = f.metadata.get("tag")
                if not tag:
                    raise TypeError(f"{dotted(path)}: an array of a union needs opt(tag=...)")
                items = [self.tagged(union, tag, one, (*path, i)) for i, one in enumerate(raw)]
            elif table:
                items = [self.build(item, one, (*path, i)) for i, one in enumerate(raw)]
            else:
                items = [self._scalar(item, None, one, (*path, i)) for i, one in enumerate(raw)]
            return self._checked(f, tuple(items) if origin is tuple else items, path)
        if origin is dict:
            if not isinstance(raw, dict):
                raise self.fail(path, f"must be a table, got {_kind(raw)}")
            return {key: self._value(args[1], f, item, (*path, key)) for key, item in raw.items()}
        return self._scalar(hint, f, raw, path)

    def _scalar(self, hint: Any, f: dataclasses.Field[Any] | None, raw: Any, path: KeyPath) -> Any:
        if not (type(raw) is hint or (hint is float and type(raw) is int)):
            raise self.fail(
                path,
                f"must be {_TYPE_NAMES.get(hint, hint)}, got {_kind(raw)} {raw!r:.40}",
            )
        value = float(raw) if hint is float else raw
        if hint is float and value != value:
            raise self.fail(path, "must be a number, got nan")
        meta = f.metadata if f is not None else {}
        if meta.get("choices") and value not in meta["choices"]:
            raise self.fail(path, f"{value!r} is not one of {', '.join(meta['choices'])}")
        if meta.get("lo") is not None and value < meta["lo"]:
            raise self.fail(path, f"{value} is below the minimum {meta['lo']:g}")
        if meta.get("hi") is not None and value > meta["hi"]:
            raise self.fail(path, f"{value} is above the maximum {meta['hi']:g}")
        if meta.get("above") is not None and value <= meta["above"]:
            raise self.fail(path, f"{value} must be greater than {meta['above']:g}")
        return value if f is None else self._checked(f, value, path)

    def _checked(self, f: dataclasses.Field[Any], value: Any, path: KeyPath) -> Any:
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem:
            raise self.fail(path, problem)
        return value


def _union_of_tables(hint: Any) -> list[type] | None:
    """The members of ``hint`` if it is a union of dataclasses (else None)."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return None
    members = list(typing.get_args(hint))
    return members if all(dataclasses.is_dataclass(m) for m in members) else None


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, "values")


def parse(
    text: str,
    source: str,
    schema: type[T],
    error: type[CraftnetError],
    *,
    overrides: dict[str, Any] | None = None,
) -> tuple[T, Checker]:
    """Parse and check TOML ``text`` (from ``source``) as ``schema``; raises ``error``.

    ``overrides`` maps dotted option paths (``"network.loss"``) to values that replace
    the file's; they are checked like the file's own. The :class:`Checker` is returned
    for the caller's checks that involve more than one option.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from exc
    for path, value in (overrides or {}).items():
        node = data
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise error(f"override {path}: {part} is not a table")
            node = child
        node[parts[-1]] = value
    checker = Checker(text, source, error)
    return checker.build(schema, data), checker


def read_text(path: Path, error: type[CraftnetError], *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a settings file; ``FileNotFoundError`` passes through."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise error(f"{path} is larger than {max_bytes} bytes; is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text: {exc}") from exc


def load(path: Path, schema: type[T], error: type[CraftnetError]) -> T:
    """Read and check the file at ``path`` as ``schema`` (its defaults if there is none)."""
    try:
        text = read_text(path, error)
    except FileNotFoundError:
        return schema()
    value, _ = parse(text, str(path), schema, error)
    return value


def option_rows(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, str, Any]]:
    """Every option of ``cls`` as ``(dotted path, help, default)``, for docs and tests.

    The default is :data:`dataclasses.MISSING` for options made by a factory.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        hint = hints[f.name]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            yield from option_rows(typing.cast(type, hint), path + ".")
        elif origin is list and dataclasses.is_dataclass(args[0]):
            yield from option_rows(typing.cast(type, args[0]), path + "[].")
        elif origin is dict and dataclasses.is_dataclass(args[1]):
            yield from option_rows(typing.cast(type, args[1]), path + ".NAME.")
        else:
            yield path, f.metadata.get("doc", ""), f.default
