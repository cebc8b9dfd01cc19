"""The one strict TOML checker behind config.toml, network.toml and scenario files.

A file is a tree of dataclasses; whatever they do not describe is refused with the
caller's error class, naming the file, the line and the option. Hostile text (any
bytes, any TOML) gets that error or a checked value, never another exception.
"""

# opt() returns dataclasses.field(...); ruff cannot see that through the helper.
# ruff: noqa: RUF009
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from craftnet.errors import CraftnetError
from craftnet.tomlcheck import dotted, find_line, load, opt, option_rows, parse, read_text


class FairError(CraftnetError):
    """The test's own error class, as each package has its own."""


def _even(value: int) -> str | None:
    return None if value % 2 == 0 else "must be even"


@dataclass(frozen=True)
class Stall:
    maker: str = opt("", "who runs it")
    tables: int = opt(1, "tables", lo=1, check=_even)


@dataclass(frozen=True)
class Fair:
    name: str = opt("Maker's Fair", "its name")
    share: float = opt(0.5, "a share", lo=0, hi=1)
    kind: str = opt("open", "the kind", choices=("open", "juried"))
    region: str | None = opt(None, "where it is held")
    tags: tuple[str, ...] = opt((), "tags")
    delays: dict[str, dict[str, float]] = opt(dict, "ms between regions", lo=0)
    stalls: list[Stall] = opt(list, "`[[stalls]]`")
    host: Stall = opt(Stall, "`[host]`")


def check(text: str) -> Fair:
    return parse(text, "fair.toml", Fair, FairError)[0]


def test_defaults_values_and_nested_tables() -> None:
    assert check("") == Fair()
    fair = check(
        'name = "Neo-Vernacular days"\nshare = 1\nregion = "Oaxaca"\ntags = ["raku", "ikat"]\n'
        "delays = { urban = { rural = 80 } }\n"
        '[[stalls]]\nmaker = "weaver"\ntables = 2\n[[stalls]]\n[host]\ntables = 4\n'
    )
    assert fair.share == 1.0 and type(fair.share) is float
    assert fair.region == "Oaxaca" and fair.tags == ("raku", "ikat")
    assert fair.delays == {"urban": {"rural": 80.0}}
    assert fair.stalls == [Stall("weaver", 2), Stall()] and fair.host == Stall(tables=4)


BAD = [
    ('name = "x"\nshare = "half"\n', "fair.toml:2: share: must be a number, got a string"),
    ("colour = 1\n", "fair.toml:1: colour: unknown option 'colour'; known here: delays, host"),
    ("share = 1.5\n", "fair.toml:1: share: 1.5 is above the maximum 1"),
    ("share = nan\n", "fair.toml:1: share: must be a number, got nan"),
    ('kind = "secret"\n', "fair.toml:1: kind: 'secret' is not one of open, juried"),
    ("region = 3\n", "fair.toml:1: region: must be a string, got an integer"),
    ('tags = "raku"\n', "fair.toml:1: tags: must be an array of strings, got a string"),
    ('tags = ["raku", 2]\n', "fair.toml:1: tags[1]: must be a string, got an integer"),
    ("stalls = 3\n", "fair.toml:1: stalls: must be an array of tables, got an integer"),
    ("[[stalls]]\n[[stalls]]\ntables = 3\n", "fair.toml:3: stalls[1].tables: must be even"),
    ("[[stalls]]\ntables = 0\n", "fair.toml:2: stalls[0].tables: 0 is below the minimum 1"),
    ("[host]\nowner = 1\n", "fair.toml:2: host.owner: unknown option 'owner'"),
    ("host = 1\n", "fair.toml:1: host: must be a table, got an integer"),
    ("delays = { urban = { rural = -1 } }\n", "fair.toml:1: delays.urban.rural: -1.0 is below"),
    ("name = 1979-05-27\n", "name: must be a string, got date"),
    ("name = \n", "fair.toml: not valid TOML"),
]


@pytest.mark.parametrize(("text", "words"), BAD)
def test_refusals_name_the_file_the_line_and_the_option(text: str, words: str) -> None:
    with pytest.raises(FairError) as info:
        check(text)
    assert words in str(info.value)


def test_overrides_replace_values_and_are_checked_too() -> None:
    fair, _ = parse("share = 0.1\n", "fair.toml", Fair, FairError, overrides={"host.tables": 6})
    assert fair.host.tables == 6 and fair.share == 0.1
    with pytest.raises(FairError, match=r"host\.tables: must be even"):
        parse("", "fair.toml", Fair, FairError, overrides={"host.tables": 3})
    with pytest.raises(FairError, match=r"override name\.x: name is not a table"):
        parse('name = "a"\n', "fair.toml", Fair, FairError, overrides={"name.x": 1})


def test_the_checker_names_lines_for_checks_across_options() -> None:
    text = 'name = "x"\n[[stalls]]\nmaker = "potter"\n'
    fair, checker = parse(text, "fair.toml", Fair, FairError)
    error = checker.fail(("stalls", 0, "maker"), f"{fair.stalls[0].maker} has no table")
    assert isinstance(error, FairError)
    assert str(error) == "fair.toml:3: stalls[0].maker: potter has no table"
    assert find_line(text, ("stalls", 0)) == 2
    assert dotted(("a", 1, "b")) == "a[1].b"


def test_lines_inside_values_written_over_several_lines() -> None:
    text = (
        "tags = [\n"
        '  "raku",  # a comment, ] and { do not count\n'
        '  "a ] in a string",\n'
        "  7,\n"
        "]\n"
        'notes = """\n'
        "stalls = not a key\n"
        '"""\n'
        "delays = { urban = { rural = 80,\n"
        "  coast = 20 }, 'hill' = {} }\n"
        "event = [{kind = 'demo'},\n"
        "  {kind = 'talk', speakers = ['a',\n"
        "    'b']}]\n"
    )
    assert find_line(text, ("tags", 2)) == 4
    assert find_line(text, ("stalls",)) is None
    assert find_line(text, ("delays", "urban", "coast")) == 10
    assert find_line(text, ("delays", "hill")) == 10
    assert find_line(text, ("event", 1, "speakers", 1)) == 13
    assert find_line(text, ("event", 1, "kind")) == 12
    with pytest.raises(FairError, match=r"fair.toml:4: tags\[2\]: must be a string"):
        check(text.split("notes")[0])


def test_files_missing_unreadable_huge_or_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "fair.toml"
    assert load(path, Fair, FairError) == Fair()
    with pytest.raises(FileNotFoundError):
        read_text(path, FairError)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(FairError, match="not UTF-8"):
        load(path, Fair, FairError)
    path.write_bytes(b"#" * 100)
    with pytest.raises(FairError, match="larger than 10 bytes"):
        read_text(path, FairError, max_bytes=10)
    path.unlink()
    path.mkdir()
    with pytest.raises(FairError, match="cannot read"):
        load(path, Fair, FairError)


@dataclass(frozen=True)
class Demo:
    """A demonstration at a Maker's Fair: its technique is required."""

    technique: str = opt(dataclasses.MISSING, "what is shown")
    minutes: int = opt(30, "how long", lo=1)


@dataclass(frozen=True)
class Talk:
    """A talk by one or more Human Treasures."""

    speakers: tuple[str, ...] = opt((), "who speaks", one_or_many=True)


@dataclass(frozen=True)
class Programme:
    """Events dispatched on ``kind``; a demo may hold more events (a union of tables)."""

    event: list[Demo | Talk] = opt(list, "`[[event]]` tables", tag="kind")


def programme(text: str) -> Programme:
    return parse(text, "fair.toml", Programme, FairError)[0]


def test_a_tag_picks_the_table_of_a_union_and_required_options_are_asked_for() -> None:
    got = programme(
        '[[event]]\nkind = "demo"\ntechnique = "raku"\n'
        '[[event]]\nkind = "talk"\nspeakers = "a weaver"\n'
    )
    assert got.event == [Demo("raku"), Talk(("a weaver",))]
    inline = programme(
        'event = [{kind = "talk", speakers = ["b", "c"]}, {kind = "demo", technique = "ikat"}]'
    )
    assert inline.event == [Talk(("b", "c")), Demo("ikat")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '[[event]]\nkind = "dance"\n',
            "fair.toml:2: event[0].kind: 'kind' must be one of demo, talk",
        ),
        ("[[event]]\nminutes = 3\n", "fair.toml:1: event[0]: 'kind' must be one of"),
        ('[[event]]\nkind = "demo"\n', "fair.toml:1: event[0]: option 'technique' is required"),
        (
            '[[event]]\nkind = "demo"\ntechnique = "x"\nminutes = 0\n',
            "fair.toml:4: event[0].minutes",
        ),
        (
            '[[event]]\nkind = "talk"\nminutes = 5\n',
            "fair.toml:3: event[0].minutes: unknown option",
        ),
        (
            '[[event]]\nkind = "talk"\nspeakers = 5\n',
            "fair.toml:3: event[0].speakers[0]: must be a string",
        ),
        ("event = [1]\n", "fair.toml:1: event[0]: must be a table with 'kind'"),
        ('event = "demo"\n', "fair.toml:1: event: must be an array of tables, got a string"),
    ],
)
def test_union_tables_are_refused_with_their_line(text: str, words: str) -> None:
    with pytest.raises(FairError) as info:
        programme(text)
    assert words in str(info.value)


def test_a_union_without_a_tag_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Untagged:
        event: list[Demo | Talk] = opt(list, "no tag")

    with pytest.raises(TypeError, match="needs opt"):
        parse('event = [{technique = "x"}]', "fair.toml", Untagged, FairError)


def test_option_rows_list_every_option_once() -> None:
    rows = {path: default for path, _, default in option_rows(Fair)}
    assert rows["share"] == 0.5 and rows["stalls[].tables"] == 1 and rows["host.maker"] == ""
    assert rows["delays"] is dataclasses.MISSING
    assert len(rows) == 10


@given(st.text(max_size=200))
def test_any_text_is_a_value_or_the_callers_error(text: str) -> None:
    with contextlib.suppress(FairError):
        check(text)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["name", "host", "tables", "x"]), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_value_under_any_option_is_checked(value: object) -> None:
    # Overrides put values TOML could not even express (None) where options expect others.
    for option in ("name", "share", "tags", "stalls", "host", "delays", "host.tables"):
        with contextlib.suppress(FairError):
            parse("", "fair.toml", Fair, FairError, overrides={option: value})
