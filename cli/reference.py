"""The command reference in docs/cli.md, generated from the click commands themselves.

What a command does is written once, in its docstring and its options' ``help``; both
``craftnet COMMAND --help`` and docs/cli.md show it. The page's hand-written parts (the
introduction, the environment, exit status) stay around the generated part, which
sits between :data:`BEGIN` and :data:`END`. ``tests/cli/test_cli_docs.py`` fails when
the committed page differs from what this module generates; after changing a command
or an option, run::

    python -m craftnet.cli.reference          # rewrites docs/cli.md
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import click

BEGIN: Final = (
    "<!-- generated from the click commands by craftnet.cli.reference; edit the commands, "
    "then run: python -m craftnet.cli.reference -->"
)
END: Final = "<!-- end of the generated command reference -->"
DOC: Final = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

# The page's sections: a title, a line of introduction, the top-level commands in them.
SECTIONS: Final = (
    ("Setting up", "", ("init", "id")),
    ("Files", "", ("add", "cat")),
    ("Records", "", ("publish", "show", "ls", "provenance")),
    (
        "Bundles (sneakernet)",
        "See [bundles.md](bundles.md) for the format and the checks.",
        ("export", "import", "imports"),
    ),
    (
        "Documents (entries many hubs edit)",
        "See [crdt.md](crdt.md) for the merge rules.",
        ("doc",),
    ),
    ("Maintenance", "", ("verify", "gc")),
    ("Running the hub", "", ("serve", "peers", "sync")),
    (
        "Alliance",
        "A hub syncs only with the hubs of its alliance. See [alliance.md](alliance.md).",
        ("alliance",),
    ),
    ("Simulation", "See [simnet.md](simnet.md) for scenarios and outputs.", ("sim",)),
)
# Metavars by click type name, where the option does not name its own.
_METAVARS: Final = {"integer": "N", "integer range": "N", "float": "N", "float range": "N"}


def _cell(text: str) -> str:
    """``text`` on one line for a table cell: pipes escaped, and angle brackets outside
    code spans (``LicenseRef-<name>`` would be read as an HTML tag)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _help(command: click.Command) -> str:
    """The command's help as Markdown paragraphs (click's ``\\b`` markers dropped)."""
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0]
    lines = [line for line in text.splitlines() if line.strip() != "\b"]
    return "\n".join(line.rstrip() for line in lines)


def _arguments(command: click.Command) -> str:
    words = []
    for param in command.params:
        if isinstance(param, click.Argument):
            if param.metavar:  # as click shows it, brackets and dots included
                words.append(param.metavar)
                continue
            name = (param.name or "").upper() + ("..." if param.nargs == -1 else "")
            words.append(name if param.required else f"[{name}]")
    return " ".join(words)


def _metavar(option: click.Option) -> str:
    if option.metavar:
        return option.metavar
    if isinstance(option.type, click.Choice):
        return (option.name or "value").upper()  # the choices are in the help
    return _METAVARS.get(option.type.name, option.type.name.upper())


def _label(option: click.Option) -> str:
    if option.is_flag and option.secondary_opts:
        return " / ".join(f"`{o}`" for o in (*option.opts, *option.secondary_opts))
    if option.is_flag or option.count:
        return ", ".join(f"`{o}`" for o in option.opts)
    metavar = _metavar(option)
    return ", ".join(f"`{o} {metavar}`" if o.startswith("--") else f"`{o}`" for o in option.opts)


def _choices(option: click.Option) -> str:
    if not isinstance(option.type, click.Choice):
        return ""
    return " One of " + ", ".join(f"`{c}`" for c in option.type.choices) + "."


def _default(option: click.Option) -> str:
    default = option.default
    if option.is_flag or option.multiple or isinstance(default, bool):
        return ""
    if not isinstance(default, str | int | float) or default == "":
        return ""
    return f" Default: `{default}`."


def _options_table(command: click.Command) -> list[str]:
    rows = [
        f"| {_label(p)} | {_cell(p.help or '')}{_choices(p)}{_default(p)} |"
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden
    ]
    return ["", "| option | meaning |", "|---|---|", *rows] if rows else []


def _command(command: click.Command, path: tuple[str, ...]) -> Iterator[str]:
    if command.hidden:
        return
    heading = " ".join(("craftnet", *path, _arguments(command))).strip()
    yield f"### `{heading}`"
    yield ""
    yield _help(command)
    yield from _options_table(command)
    yield ""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _command(sub, (*path, name))


def _global_options(root: click.Command) -> Iterator[str]:
    yield "## Global options"
    yield ""
    yield "Before the command or after it: `craftnet --json ls`, `craftnet ls --json`."
    yield from _options_table(root)
    yield "| `-h`, `--help` | Help for the command line, or for one command (`craftnet ls -h`). |"
    yield ""


def reference(root: click.Group) -> str:
    """The generated part of docs/cli.md for the command tree ``root``."""
    lines = list(_global_options(root))
    placed = {name for _, _, names in SECTIONS for name in names}
    sections = [*SECTIONS]
    others = tuple(name for name in root.commands if name not in placed)
    if others:
        sections.append(("Other commands", "", others))
    for title, intro, names in sections:
        lines += [f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        for name in names:
            if name in root.commands:
                lines += _command(root.commands[name], (name,))
    return "\n".join(lines).rstrip() + "\n"


def render_page(page: str, root: click.Group) -> str:
    """``page`` with the text between the markers replaced by :func:`reference`."""
    head, found, rest = page.partition(BEGIN + "\n")
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"docs/cli.md lacks the markers {BEGIN!r} and {END!r}")
    return head + BEGIN + "\n\n" + reference(root) + "\n" + END + tail


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated part of docs/cli.md (or of the file given)."""
    from craftnet.cli.main import cli

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DOC
    page = path.read_text(encoding="utf-8")
    path.write_text(render_page(page, cli), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
