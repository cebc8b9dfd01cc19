"""docs/cli.md is generated from the click tree, and documents every command and option.

Its command reference is :func:`craftnet.cli.reference.reference`'s output, between two
markers: the committed page must be exactly what it generates now (as docs/api.md's
endpoint table is). Then, as a check of the generator itself, the page is cut into
sections at each command heading (``### `craftnet ls` ``); every option of a command
must be named in that command's own section, the global options in "Global options".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from craftnet.cli.main import cli
from craftnet.cli.reference import BEGIN, END, reference, render_page

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_COMMAND_LINE = re.compile(r"^(?:#+ )?`craftnet ([^`]*)`")


def sections() -> dict[tuple[str, ...], str]:
    """Map a command path (``("publish", "design")``) to the text of its section."""
    found: dict[tuple[str, ...], str] = {}
    current: tuple[str, ...] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _COMMAND_LINE.match(line)
        if match:
            words = tuple(w for w in match.group(1).split() if re.fullmatch(r"[a-z][a-z-]*", w))
            current = words
            found.setdefault(current, "")
        elif line.startswith("## "):
            current = ("",) if line.strip() == "## Global options" else None
            if current is not None:
                found.setdefault(current, "")
        if current is not None:
            found[current] += line + "\n"
    return found


def commands(
    group: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``group``, with its path of names."""
    yield path, group
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from commands(command, (*path, name))


def long_options(command: click.Command) -> list[str]:
    names = []
    for param in command.params:
        if isinstance(param, click.Option):
            names.extend(opt for opt in param.opts if opt.startswith("--"))
    return names


def test_every_command_and_option_is_documented() -> None:
    docs = sections()
    missing = []
    for path, command in commands(cli):
        key = path or ("",)
        if key not in docs:
            missing.append(f"command 'craftnet {' '.join(path)}' has no section")
            continue
        for option in long_options(command):
            if option == "--help":
                continue
            # An option every subcommand shares may be documented once, at the group.
            text = docs[key] + docs.get(path[:-1], "")
            if not re.search(rf"`{re.escape(option)}(?![\w-])", text):
                missing.append(f"'craftnet {' '.join(path)}' option {option} is not documented")
    assert not missing, "docs/cli.md is missing:\n" + "\n".join(missing)


def test_the_check_would_notice_an_undocumented_option() -> None:
    # Guard against a check that passes vacuously: a made-up option is not found.
    docs = sections()
    assert ("ls",) in docs and "`--limit" in docs[("ls",)]
    assert "`--frobnicate" not in docs[("ls",)]


def test_docs_cli_md_is_what_the_commands_generate() -> None:
    page = DOC.read_text(encoding="utf-8")
    assert render_page(page, cli) == page, (
        "docs/cli.md is not what the click commands generate; "
        "run: python -m craftnet.cli.reference"
    )
    # The hand-written parts stay around the generated one.
    assert page.index("## Exit status and errors") < page.index(BEGIN) < page.index(END)


def test_a_changed_help_text_makes_the_page_stale() -> None:
    page = DOC.read_text(encoding="utf-8")
    ls_command = cli.commands["ls"]
    saved = ls_command.help
    ls_command.help = "List the records of the Rustic Futurism hub."
    try:
        assert render_page(page, cli) != page
        assert "Rustic Futurism hub" in reference(cli)
    finally:
        ls_command.help = saved


def test_a_page_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        render_page("# The craftnet command\n", cli)
