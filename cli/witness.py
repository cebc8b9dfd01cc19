"""``craftnet witness``: sign witness batches now, and check a record's witnesses offline."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from craftnet.archive.cid import Cid
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import safe, short_did, when


def membership_of(store: Any) -> Any:
    """A function giving an alliance's membership as this hub's store knows it (or None)."""
    from craftnet.identity.errors import IdentityError
    from craftnet.node.p2p.alliance import load_membership

    cache: dict[str, Any] = {}

    def lookup(alliance: str) -> Any:
        if alliance not in cache:
            try:
                cache[alliance] = load_membership(store, alliance)
            except IdentityError:
                cache[alliance] = None
        return cache[alliance]

    return lookup


def witnessed_line(found: Any) -> str:
    """"witnessed by 5 hubs of 3 organisations, earliest 2026-12-04" (or "not witnessed")."""
    if not found.valid:
        return "not witnessed yet" if not found.witnesses else "no witness checks out"
    hubs = f"{found.hubs} hub{'s' if found.hubs != 1 else ''}"
    orgs = f"{found.organisations} organisation{'s' if found.organisations != 1 else ''}"
    line = f"witnessed by {hubs} of {orgs}, earliest {when(found.earliest)[:10]}"
    two = found.agreed_by(2)
    if two is not None:
        line += f" (two organisations by {when(two)[:10]})"
    return line


def check(app: App, cid: Cid) -> Any:
    """Every witness of ``cid``, checked against what this hub holds."""
    from craftnet.archive.witness import verify_witnesses

    store = app.store()
    return verify_witnesses(store, cid, membership_of(store))


@click.group()
def witness() -> None:
    """Witnessed timestamps: hubs sign that they held records by a time."""


@witness.command()
@pass_app
def flush(app: App) -> None:
    """Sign witness batches now for every record this hub has not witnessed yet."""
    from craftnet.node.witness import WitnessService

    made = WitnessService(app.store(), app.hub_key()).flush()
    data = {
        "batches": [str(r.cid) for r in made],
        "records": sum(int(r.body["count"]) for r in made),
    }
    app.emit(data, lambda out: out.print(
        f"witnessed {data['records']} record(s) in {len(made)} batch(es), "
        f"{len(made)} signature(s)"
    ))


@witness.command()
@click.argument("cid", type=CID)
@pass_app
def verify(app: App, cid: Cid) -> None:
    """Check a record's witnesses offline: signatures, proofs, times, keys, membership.

    Exits with status 1 if no witness checks out.
    """
    found = check(app, cid)

    def human(out: Console) -> None:
        out.print(witnessed_line(found), markup=False)
        for w in found.witnesses:
            mark = "ok" if w.ok else "FAILED: " + "; ".join(w.problems)
            out.print(f"  {when(w.at)}  {short_did(w.hub)}  {safe(w.organisation)}  ",
                      end="", markup=False)
            out.print(mark, style="green" if w.ok else "red", markup=False)

    app.emit(found.as_dict(), human)
    if not found.valid:
        raise click.exceptions.Exit(1)


COMMANDS = [witness]
