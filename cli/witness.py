"""``craftnet witness``: sign witness batches now, and check a record's witnesses offline."""

from __future__ import annotations

import click
from rich.console import Console

from craftnet.archive.cid import Cid
from craftnet.cli.context import App, pass_app
from craftnet.cli.params import CID
from craftnet.cli.render import safe, short_did, when
from craftnet.node.witness import check_witnesses, witnessed_line


@click.group()
def witness() -> None:
    """Witnessed timestamps: hubs sign that they held records by a time.

    A running hub in an alliance signs a batch every 10 minutes (one signature per batch
    of up to 65,536 records, a Merkle tree over them); docs/witness.md says what a
    witness binds and what colluding hubs can and cannot fake.
    """


@witness.command()
@pass_app
def flush(app: App) -> None:
    """Sign witness batches now for every record this hub has not witnessed yet.

    Needs the hub key.
    """
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

    Checks each witness's batch signature, the inclusion proof against its signed root,
    the times, the witness's key and its alliance membership at that time. Prints
    "witnessed by N hubs of M organisations, earliest D" and one line per witness
    (`craftnet show` prints the same summary line). Exits with status 1 if no witness
    checks out.
    """
    found = check_witnesses(app.store(), cid)

    def human(out: Console) -> None:
        out.print(witnessed_line(found), markup=False)
        for w in found.witnesses:
            mark = "ok" if w.ok else "FAILED: " + "; ".join(w.problems)
            organisation = "" if w.organisation == w.hub else f"  {safe(w.organisation)}"
            out.print(f"  {when(w.at)}  {short_did(w.hub)}{organisation}  ", end="",
                      markup=False)
            out.print(mark, style="green" if w.ok else "red", markup=False)

    app.emit(found.as_dict(), human)
    if not found.valid:
        raise click.exceptions.Exit(1)


COMMANDS = [witness]
