"""Record commands: ``publish``, ``show``, ``ls`` and ``provenance``.

``publish``'s options are generated from the body schemas in
:mod:`craftnet.archive.schemas`, so a field added there appears here (and must then be
in docs/cli.md once it is regenerated: ``python -m craftnet.cli.reference``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from craftnet.archive import index, schemas
from craftnet.archive.cid import Cid
from craftnet.archive.errors import SchemaError
from craftnet.archive.links import check_links
from craftnet.archive.records import Record
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import jsonable, safe, short_did, when
from craftnet.errors import CraftnetError

PUBLISHABLE = ("technique", "design", "attestation", "collection")
_LIST_KINDS = ("lines", "cids", "steps")
# What a flag's value is called in the help, by the kind of the field.
_METAVARS = {"cid": "CID", "cids": "CID", "did": "DID", "ts": "N"}


def option_name(spec: schemas.FieldSpec) -> str:
    """The command-line flag of a body field: lists take one value per flag, singular."""
    name = spec.name
    if spec.kind in _LIST_KINDS and name.endswith("s"):
        name = name[:-1]
    return "--" + name.replace("_", "-")


def read_body_file(path: Path) -> dict[str, Any]:
    """Read record fields from a TOML or JSON file (by extension; TOML otherwise)."""
    raw = path.read_bytes()
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        data = json.loads(raw) if kind == "JSON" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SchemaError(f"{path}: not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: expected a table/object of record fields")
    return data


def _publish_command(rtype: str) -> click.Command:
    schema = schemas.schema_for(rtype)
    assert schema is not None, rtype

    @pass_app
    def publish_type(app: App, /, from_file: Path | None, **flags: Any) -> None:
        data: dict[str, Any] = read_body_file(from_file) if from_file is not None else {}
        for spec in schema.fields:
            value = flags.get(spec.name)
            if value is None or value == ():
                continue
            data[spec.name] = list(value) if isinstance(value, tuple) else value
        built = schemas.build_from_mapping(rtype, data)
        with app.store().read() as txn:
            # A record CID given as --file, an item this hub lacks: refused before signing.
            link_warnings = [p.as_dict() for p in check_links(txn, rtype, built.body)]
        key = app.hub_key()
        record = index.publish(app.store(), key, rtype, built.body, built.links)
        warnings = _licence_warnings(app, record.cid)
        app.emit(
            {"cid": str(record.cid), "type": rtype, "warnings": [*link_warnings, *warnings]},
            lambda out: out.print(str(record.cid)),
        )
        for link in link_warnings:
            app.note(f"link warning: {safe(link['message'])}")
        for warning in warnings:
            severity = "problem" if warning["severity"] == "error" else warning["severity"]
            app.note(f"licence {severity}: {safe(warning['message'])}")

    params: list[click.Parameter] = [
        click.Option(
            ["--from", "from_file"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            metavar="FILE",
            help="Read the fields from a TOML file, or JSON if the name ends in .json. Keys "
            "are the field names (derived_from, materials, ...); flags override them.",
        )
    ]
    for spec in schema.fields:
        multiple = spec.kind in _LIST_KINDS
        kind: click.ParamType[Any, Any] | None = (
            click.Choice(spec.choices) if spec.kind == "choice" else None
        )
        if spec.kind == "ts":
            kind = click.INT
        elif spec.kind in ("cid", "cids"):
            kind = CID  # a malformed CID on the command line is a usage error (status 2)
        required = " (required)" if spec.required else ""
        repeat = " Repeat for more." if multiple else ""
        if spec.name == "licence":
            metavar = "ID"
        elif spec.kind == "choice":
            metavar = spec.name.upper()
        else:
            metavar = _METAVARS.get(spec.kind, "TEXT")
        params.append(
            click.Option(
                [option_name(spec), spec.name],
                multiple=multiple,
                type=kind,
                metavar=metavar,
                help=f"{spec.doc[:1].upper()}{spec.doc[1:]}{required}.{repeat}",
            )
        )
    return click.Command(
        rtype,
        callback=publish_type,
        params=params,
        help=f"Publish {schema.doc}.",
    )


@click.group()
def publish() -> None:
    """Sign a record with the hub key and store it; print its CID.

    Fields come from flags, from a file (`--from`), or both (flags win). Options that
    take a list are repeated: `--material oak --material linseed-oil`. CIDs are given
    in their `b...` text form. When the record derives from others, the licence
    findings for each parent are printed on stderr (`licence problem: ...`,
    `licence warning: ...`) and listed under `warnings` with `--json`; they do not stop
    the publication.

    Links are checked before anything is signed: a design's `--file` and a technique's
    step media must be files this hub holds (the CIDs `craftnet add` prints), a
    collection's `--item` must be records this hub holds, and a `--derived-from` parent
    or an attestation's `--design` that this hub holds must be a design. A link to the
    wrong kind of block, or to a file or item this hub lacks, is refused (exit status 1,
    error code `wrong-link`); a parent design or attested design this hub does not hold
    (it may live on another hub) is published with a `link warning: ...` on stderr,
    listed under `warnings` with `--json`.
    """


for _rtype in PUBLISHABLE:
    publish.add_command(_publish_command(_rtype))


def _check(action: Callable[[], object]) -> str:
    try:
        result = action()
    except CraftnetError as exc:
        return f"FAILED: {exc}"
    return "opaque type (not checked)" if result is False else "ok"


def verification(app: App, record: Record) -> dict[str, str]:
    """Check a stored record again: its signature, its schema, and its key at its time."""
    status = {
        "signature": _check(record.verify),
        "schema": _check(lambda: schemas.validate_record(record)),
    }
    status["key"] = key_status(app, record)
    return status


def key_status(app: App, record: Record) -> str:
    """Whether the author's key was valid at the record's time (succession, revocation)."""
    from craftnet.archive.key_facts import key_history

    with app.store().read() as txn:
        history = key_history(txn)
    if history.valid_at(record.author, record.ts):
        return "ok"
    end = history.end(record.author)
    if end is not None and record.ts >= end:
        return f"FAILED: the key was retired or revoked before this record ({when(end)})"
    return "FAILED: the key was not valid at the record's time"


@click.command()
@click.argument("cid", type=CID)
@pass_app
def show(app: App, cid: Cid) -> None:
    """Show one record (type, author, time, body fields, links) and check it again.

    The checks: **signature** (the author's Ed25519 signature over the record),
    **schema** (the body matches its type; unknown types are shown as opaque), **key**
    (the author's key was valid at the record's time: not yet succeeded or revoked).
    Each says `ok` or `FAILED: why`.
    """
    with app.store().read() as txn:
        record = index.get_record(txn, cid)
    status = verification(app, record)
    from craftnet.node.witness import check_witnesses, witnessed_line

    witnesses = check_witnesses(app.store(), cid)
    data = {
        "cid": str(record.cid),
        "type": record.type,
        "v": record.v,
        "author": record.author,
        "ts": record.ts,
        "time": when(record.ts),
        "body": jsonable(record.body),
        "links": [str(link) for link in record.links],
        "verification": status,
        "witnessed": {**witnesses.as_dict(), "summary": witnessed_line(witnesses)},
    }

    def human(out: Console) -> None:
        out.print(f"{safe(record.type)} {record.cid}", style="bold", markup=False)
        out.print(f"{'author':<12} {record.author}")
        out.print(f"{'time':<12} {when(record.ts)}")
        for name, value in record.body.items():
            out.print(f"{name:<12} {_text(value)}", markup=False)
        for link in record.links:
            out.print(f"{'link':<12} {link}")
        for name, value in status.items():
            style = "green" if value == "ok" else "yellow" if "opaque" in value else "red"
            out.print(f"{name:<12} ", end="")
            out.print(value, style=style, markup=False)
        out.print(f"{'witnessed':<12} {witnessed_line(witnesses)}", markup=False)

    app.emit(data, human)


def _text(value: Any) -> str:
    plain = jsonable(value)
    return safe(plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False))


@click.command(name="ls")
@click.option(
    "--type",
    "rtype",
    metavar="TYPE",
    help="Only records of this type (technique, design, attestation, collection, "
    "key-succession, ...).",
)
@click.option("--author", metavar="DID", help="Only records signed by this did:key.")
@click.option(
    "--limit",
    type=click.IntRange(1, index.MAX_LIMIT),
    default=20,
    show_default=True,
    help="How many records to show (1-1000).",
)
@pass_app
def ls(app: App, rtype: str | None, author: str | None, limit: int) -> None:
    """List records, newest first, as a table (cid, type, title, author, time)."""
    with app.store().read() as txn:
        page = index.list_records(txn, type=rtype, author=author, limit=limit)
    rows = [
        {
            "cid": str(r.cid),
            "type": r.type,
            "title": schemas.record_title(r),
            "author": r.author,
            "ts": r.ts,
            "time": when(r.ts),
        }
        for r in page.records
    ]

    def human(out: Console) -> None:
        table = Table(box=None)
        table.add_column("cid", no_wrap=True)
        table.add_column("type", no_wrap=True)
        table.add_column("title")
        table.add_column("author", no_wrap=True)
        table.add_column("time", no_wrap=True)
        for r in page.records:
            table.add_row(
                str(r.cid),
                safe(r.type),
                safe(schemas.record_title(r) or ""),
                safe(short_did(r.author)),
                when(r.ts),
            )
        out.print(table)
        if not rows:
            out.print("no records")

    app.emit(rows, human)


@click.command()
@click.argument("cid", type=CID)
@click.option(
    "--depth",
    type=click.IntRange(0, 64),
    default=16,
    show_default=True,
    help="How many generations to follow each way (0-64).",
)
@pass_app
def provenance(app: App, cid: Cid, depth: int) -> None:
    """Show the derivation graph around a record as a tree, with licence warnings.

    What it was **derived from** (ancestors, recursively) and its **derivatives**
    (records that derive from it), each with type, title, author, licence and the
    attestations this hub holds about the author or the design. Parents this hub does
    not hold are marked missing. Below the tree, licence warnings per derivation edge
    (a share-alike parent under another licence, a non-commercial or no-derivatives
    parent, ...). With `--json`: nodes, edges, warnings.
    """
    from craftnet.archive.provenance import provenance as walk

    with app.store().read() as txn:
        graph = walk(txn, cid, max_depth=depth)

    def human(out: Console) -> None:
        tree = Tree(_label(graph, cid))
        _branch(tree.add("[bold]derived from[/bold]"), graph, cid, graph.parents, {cid})
        _branch(tree.add("[bold]derivatives[/bold]"), graph, cid, graph.children, {cid})
        out.print(tree)
        for warning in graph.warnings:
            colour = "red" if warning.severity == "error" else "yellow"
            edge = f"{_title(graph, warning.child)} <- {_title(graph, warning.parent)}: "
            out.print(f"[{colour}]{warning.severity}[/{colour}] ", end="")
            out.print(safe(edge + warning.message), markup=False)
        if graph.truncated:
            out.print("[yellow]note[/yellow]: the graph was cut at the depth or size limit")

    app.emit(graph.to_dict(), human)


def _licence_warnings(app: App, cid: Cid) -> list[dict[str, Any]]:
    """Licence findings between a new record and the parents it derives from."""
    from craftnet.archive.provenance import provenance as walk

    with app.store().read() as txn:
        graph = walk(txn, cid, max_depth=1, descendants=False, attestations=False)
    found: list[dict[str, Any]] = graph.to_dict()["warnings"]
    return found


def _title(graph: Any, cid: Cid) -> str:
    node = graph.nodes.get(cid)
    title = node.title if node is not None else None
    return repr(title) if title else str(cid)


def _label(graph: Any, cid: Cid) -> Text:
    node = graph.nodes.get(cid)
    text = Text()
    if node is None or node.status != "present":
        status = node.status if node is not None else "missing"
        text.append(f"{cid} ", style="dim")
        text.append(f"({status} from this archive)", style="yellow")
        return text
    text.append(f"{safe(node.type or '?')} ", style="bold")
    text.append(f"{safe(node.title or '(untitled)')!r} ")
    text.append(f"by {safe(short_did(node.author or '?'))} ")
    if node.licence:
        text.append(f"[{safe(node.licence)}] ", style="cyan")
    text.append(str(cid), style="dim")
    for att in node.attestations:
        what = att.kind + (f" {att.skill}" if att.skill else "")
        text.append(f"\n  vouched: {safe(what)} by {safe(short_did(att.attester))}", style="green")
    return text


def _branch(
    tree: Tree,
    graph: Any,
    cid: Cid,
    step: Callable[[Cid], list[Cid]],
    path: set[Cid],
) -> None:
    for nxt in step(cid):
        if nxt in path:  # a cycle: show the node once, do not follow it again
            tree.add(_label(graph, nxt)).add("(cycle)")
            continue
        _branch(tree.add(_label(graph, nxt)), graph, nxt, step, path | {nxt})


COMMANDS = [publish, show, ls, provenance]
