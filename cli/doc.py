"""Document commands: ``craftnet doc new|edit|show|history|blame|ls``.

Thin: options are turned into a :class:`~craftnet.archive.crdt.edit.ChangeBuilder`'s
calls, and :class:`~craftnet.archive.crdt.documents.Documents` does the rest. Step
numbers on the command line start at 1, as people count steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from craftnet.archive.cid import Cid
from craftnet.archive.crdt.documents import Documents
from craftnet.archive.crdt.edit import ChangeBuilder
from craftnet.archive.crdt.errors import EditError
from craftnet.archive.crdt.ops import TEXT_FIELDS, field_kind
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import jsonable, safe, short_did, when


def _pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.UsageError(f"{option} takes FIELD=VALUE, got {text!r}")
    return name.strip(), value


def _apply_options(builder: ChangeBuilder, opts: dict[str, Any]) -> None:
    """Turn the edit options into builder calls, in a fixed order."""
    for text in opts.get("set_", ()):
        name, value = _pair(text, "--set")
        kind = field_kind(name)
        if kind == "text":
            builder.edit_text(name, value)
        else:
            builder.set(name, value if value != "" else None)
    for text in opts.get("add", ()):
        builder.add(*_pair(text, "--add"))
    for text in opts.get("remove", ()):
        builder.remove(*_pair(text, "--remove"))
    # step numbers are as 'doc show' shows them before the edit, so edits and deletes
    # go first (deletes from the end); inserts then number the steps as they will be
    for number, text in opts.get("edit_step", ()):
        builder.edit_text("steps", text, number - 1)
    for number in sorted(set(opts.get("delete_step", ())), reverse=True):
        builder.delete("steps", number - 1)
    for number, text in opts.get("insert_step_at", ()):
        builder.insert("steps", number - 1, text)
    for text in opts.get("insert_step", ()):
        builder.append("steps", text)
    for text in opts.get("add_media", ()):
        builder.append("media", text)


_EDIT_OPTIONS = [
    click.option("--set", "set_", multiple=True, metavar="FIELD=VALUE",
                 help="Set a field (title, region, licence, ...); an empty VALUE clears it. "
                      "summary and description are texts: the new text is merged character "
                      "by character with concurrent edits."),
    click.option("--add", multiple=True, metavar="FIELD=VALUE",
                 help="Add to a set field: tags, materials, tools, languages, links."),
    click.option("--insert-step", multiple=True, metavar="TEXT", help="Append a step."),
    click.option("--insert-step-at", multiple=True, type=(int, str), metavar="N TEXT",
                 help="Insert a step so that it becomes step N."),
    click.option("--add-media", multiple=True, metavar="VALUE",
                 help="Append to the media list (a CID or a name)."),
]


def _with_options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@click.group("doc")
def doc() -> None:
    """Documents: archive entries many hubs edit, merged automatically (CRDTs).

    A document is a signed genesis plus signed operations that merge by themselves,
    often made offline. Each edit is signed with the hub key. Step numbers start at 1,
    as `doc show` prints them.
    """


@doc.command("new")
@click.argument("kind")
@click.option("--title", metavar="TEXT", help="The title.")
@_with_options(_EDIT_OPTIONS)
@click.option("--editor", "editors", multiple=True, metavar="DID",
              help="Another hub key allowed to edit; repeat for more. Without it (and without "
                   "--alliance) only this hub may edit.")
@click.option("--alliance", is_flag=True, help="Any alliance member may edit.")
@pass_app
def new(app: App, /, kind: str, title: str | None, editors: tuple[str, ...], alliance: bool,
        **opts: Any) -> None:
    """Start a document of KIND (technique, design, ...) owned by this hub's key.

    Prints its CID, which names the document from then on.
    """
    if alliance and editors:
        raise click.UsageError("--alliance already lets every member edit; drop --editor")
    mode = "alliance" if alliance else "editors" if editors else "owner"

    def build(builder: ChangeBuilder) -> None:
        if title is not None:
            builder.set("title", title)
        _apply_options(builder, opts)

    record = Documents(app.store()).create(
        app.hub_key(), kind, build, mode=mode, editors=editors
    )
    app.emit({"cid": str(record.cid), "kind": kind, "acl": mode},
             lambda out: out.print(str(record.cid)))


@doc.command("edit")
@click.argument("cid", type=CID)
@_with_options(_EDIT_OPTIONS)
@click.option("--remove", multiple=True, metavar="FIELD=VALUE",
              help="Remove a member of a set (as far as this hub has seen it: a concurrent "
                   "add elsewhere wins).")
@click.option("--edit-step", multiple=True, type=(int, str), metavar="N TEXT",
              help="Replace the text of step N; merged character by character with "
                   "concurrent edits.")
@click.option("--delete-step", multiple=True, type=int, metavar="N", help="Delete step N.")
@pass_app
def edit(app: App, /, cid: Cid, **opts: Any) -> None:
    """Edit document CID: sign one operation with this hub's key and apply it.

    Prints the operation's CID. Step edits and deletions use the numbers `doc show`
    prints before the edit; insertions are done after them.
    """
    docs = Documents(app.store())
    record = docs.edit(app.hub_key(), cid, lambda b: _apply_options(b, opts))
    app.emit({"cid": str(record.cid), "doc": str(cid), "parents": [str(p) for p in record.links]},
             lambda out: out.print(str(record.cid)))


@doc.command("show")
@click.argument("cid", type=CID)
@pass_app
def show(app: App, /, cid: Cid) -> None:
    """Show what document CID reads now, and any conflicting edits.

    Its fields, numbered steps, and a `conflict:` line for every field that concurrent
    edits set to other values (the value shown won by clock and hub key; the others are
    listed, not lost). With `--json`: `{cid, kind, fields, conflicts, heads, missing}`.
    """
    docs = Documents(app.store())
    view = docs.view(cid)
    heads = docs.heads(cid)
    missing = docs.missing(cid)
    data = {"cid": str(cid), **jsonable(view), "heads": [str(h) for h in heads],
            "missing": [str(m) for m in missing]}

    def human(out: Console) -> None:
        fields = view["fields"]
        out.print(Text(safe(str(fields.get("title", "(untitled)"))), style="bold"))
        out.print(f"{view['kind']} · {cid}")
        for name, value in sorted(fields.items()):
            if name in ("title", "steps"):
                continue
            if isinstance(value, list):
                value = ", ".join(safe(str(v)) for v in value)
            label = f"{name}:"
            if name in TEXT_FIELDS:
                out.print(Text(label, style="bold"))
                out.print(Text(safe(str(value))))
            else:
                out.print(Text(f"{label} ") + Text(safe(str(value))))
        for number, step in enumerate(fields.get("steps", []), 1):
            out.print(Text(f"{number:>3}. ") + Text(safe(step)))
        for name, losers in sorted(view["conflicts"].items()):
            shown = "; ".join(repr(v) for v in losers)
            out.print(Text(f"conflict: {name} was also set to {safe(shown)} by concurrent "
                           f"edits (see 'craftnet doc blame {cid}')", style="yellow"))
        if missing:
            out.print(Text(f"waiting for {len(missing)} operation(s) not received yet",
                           style="yellow"))

    app.emit(data, human)


@doc.command("history")
@click.argument("cid", type=CID)
@pass_app
def history(app: App, /, cid: Cid) -> None:
    """List document CID's operations: who, when, what, and whether it applied.

    The status of each is `applied`, `rejected: why`, `pending: waiting for ...` or
    `deferred: clock ahead`.
    """
    entries = Documents(app.store()).history(cid)
    data = [
        {"cid": str(e.cid), "author": e.author, "ts": e.ts, "time": when(e.ts),
         "status": e.status, "reason": e.reason, "parents": [str(p) for p in e.parents],
         "changes": list(e.changes)}
        for e in entries
    ]

    def human(out: Console) -> None:
        table = Table("time", "author", "status", "changes", "operation")
        for e in entries:
            status = e.status if not e.reason else f"{e.status}: {e.reason}"
            table.add_row(when(e.ts), short_did(e.author), safe(status),
                          safe("\n".join(e.changes)), str(e.cid))
        out.print(table)

    app.emit(data, human)


@doc.command("blame")
@click.argument("cid", type=CID)
@pass_app
def blame(app: App, /, cid: Cid) -> None:
    """For every field of document CID: which signed operation (hub, time) wrote it.

    Also for every set member, step and piece of text, with the conflicting values
    that lost.
    """
    fields = Documents(app.store()).blame(cid)

    def who(entry: dict[str, Any]) -> str:
        return f"{short_did(entry['author'])} at {when(entry['ts'])} (op {entry['op']})"

    def human(out: Console) -> None:
        for name, info in fields.items():
            kind = info["kind"]
            if kind == "register":
                out.print(Text(f"{name} = {safe(repr(info['value']))}", style="bold"))
                out.print(f"    by {who(info)}")
                for lost in info["conflicts"]:
                    out.print(Text(f"    conflict: {safe(repr(lost['value']))} by {who(lost)}",
                                   style="yellow"))
            elif kind == "set":
                out.print(Text(name, style="bold"))
                for member in info["members"]:
                    out.print(f"    {safe(str(member['value']))}: added by "
                              + "; ".join(who(w) for w in member["added_by"]))
            elif kind == "list":
                out.print(Text(name, style="bold"))
                for number, item in enumerate(info["items"], 1):
                    out.print(f"  {number:>3}. added by {who(item)}")
                    for piece in item.get("text", []):
                        out.print(Text(f"        {safe(repr(piece['text']))} by {who(piece)}"))
                    if "value" in item:
                        out.print(f"        {safe(str(item['value']))}")
            else:
                out.print(Text(name, style="bold"))
                for piece in info["runs"]:
                    out.print(Text(f"    {safe(repr(piece['text']))} by {who(piece)}"))

    app.emit({"cid": str(cid), "fields": jsonable(fields)}, human)


@doc.command("rebuild")
@click.argument("cid", type=CID)
@pass_app
def rebuild(app: App, /, cid: Cid) -> None:
    """Recompute document CID from its operations and rewrite its cached state and view.

    What an `IntegrityError` about a damaged cached view or state asks for.
    """
    docs = Documents(app.store())
    docs.rebuild(cid)
    app.emit({"cid": str(cid), "rebuilt": True}, lambda out: out.print(f"rebuilt {cid}"))


@doc.command("ls")
@pass_app
def ls(app: App) -> None:
    """List the documents this hub holds: CID, kind, title, owner."""
    docs = Documents(app.store())
    rows = []
    for cid, kind, owner in docs.documents():
        title = docs.view(cid)["fields"].get("title")
        rows.append({"cid": str(cid), "kind": kind, "owner": owner, "title": title})

    def human(out: Console) -> None:
        table = Table("cid", "kind", "title", "owner")
        for row in rows:
            table.add_row(row["cid"], row["kind"], safe(str(row["title"] or "")),
                          short_did(row["owner"]))
        out.print(table)

    app.emit(rows, human)


__all__ = ["EditError", "doc"]
