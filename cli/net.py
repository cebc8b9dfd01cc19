"""``craftnet peers`` and ``craftnet sync ADDR``: the hub's network, from the terminal.

``peers`` asks the running hub (``craftnet serve``) over its HTTP API. ``sync`` starts
the networking part for one reconcile with the hub at ADDR, shows its progress, and
stops once everything the reconcile found missing is stored (or nothing moves for a
while); it works whether or not ``craftnet serve`` runs (LMDB is multi-process).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import click
from rich.console import Console

from craftnet.cli.context import App, pass_app
from craftnet.errors import CraftnetError
from craftnet.startup import freeze_start_up


@click.command()
@pass_app
def peers(app: App) -> None:
    """The hubs the running node is connected to, and how syncing goes.

    Asks the running hub (`craftnet serve`, at the address of `config.toml`): peer id,
    did, state, direction, score, bytes each way, and how many blocks are still wanted.
    """
    from craftnet.node.config import load_config

    app.require_home()
    config = load_config(app.home)
    host = "127.0.0.1" if config.http_host in ("0.0.0.0", "::") else config.http_host
    url = f"http://{host}:{config.http_port}/api/v1/peers"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            status: dict[str, Any] = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CraftnetError(
            f"the hub does not answer at {url} ({exc}); start it with 'craftnet serve'"
        ) from exc

    def human(out: Console) -> None:
        out.print(f"{status.get('state')}: {status.get('message', '')}")
        for p in status.get("peers", []):
            if isinstance(p, dict):
                out.print(f"  {p.get('peer')}  {p.get('did') or '?'}  {p.get('state')} "
                          f"({p.get('direction')}) score {p.get('score')}  "
                          f"in {p.get('bytes_in')} B  out {p.get('bytes_out')} B")
            else:
                out.print(f"  {p}")
        sync = status.get("sync")
        if sync:
            out.print(f"wanted blocks: {sync.get('wanted_blocks')}, "
                      f"stored this run: {sync.get('stored_records')} records, "
                      f"{sync.get('stored_blocks')} blocks")

    app.emit(status, human)


@click.command()
@click.argument("addr", metavar="ADDR")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=600.0, show_default=True,
              metavar="SECONDS", help="Give up after this many seconds.")
@click.option("--idle", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              metavar="SECONDS", help="Stop when nothing arrived for this many seconds.")
@pass_app
def sync(app: App, addr: str, timeout: float, idle: float) -> None:
    """Reconcile once with the hub at ADDR and fetch what this hub lacks.

    ADDR is the other hub's multiaddr (`/ip4/192.0.2.7/tcp/4710/p2p/12D3KooW...`).
    Shows progress; exits 1 if it stopped before everything arrived. Works whether or
    not `craftnet serve` runs.
    """
    result = fetch_from(app, addr, timeout, idle)

    def human(out: Console) -> None:
        rec = result.get("reconcile")
        if rec:
            out.print(f"reconciled with {result['peer']} in {rec['round_trips']} round trips "
                      f"({rec['bytes']} bytes): we lacked {rec['we_lacked']}, "
                      f"they lacked {rec['they_lacked']}")
        out.print(f"stored {result['records_stored']} records, {result['blocks_stored']} blocks; "
                  f"{result['still_wanted']} still wanted")
        if result.get("incomplete"):
            out.print(f"[yellow]stopped early[/yellow]: {result.get('reason', 'no progress')}")

    app.emit(result, human)
    if result.get("incomplete"):
        raise click.exceptions.Exit(1)


COMMANDS = [peers, sync]


SYNC_CHECK = 0.05  # seconds between looks at how a craftnet sync goes


def sync_engine_config(settings: Any) -> Any:
    """The engine of a one-off ``craftnet sync``: it announces nothing it fetches.

    Its only peer is ADDR, which sent it all of it: announcing each record back cost
    both hubs a signature check per record (about 10% of a sync of 1,000 records,
    tests/bench/test_bench_sync.py). A ``craftnet serve`` on the same store announces
    them from the change feed as usual. None without an alliance (the hub says so).
    """
    from craftnet.protocol.engine import EngineConfig
    from craftnet.protocol.gossip import Reannounce

    if not settings.alliance:
        return None
    return EngineConfig(
        alliance=settings.alliance,
        reconcile_interval=float(settings.reconcile_interval),
        reannounce=Reannounce.NONE,
    )


def fetch_from(app: App, addr: str, timeout: float, idle: float) -> dict[str, Any]:
    """Reconcile once with the hub at ADDR and fetch what is missing, the want list too.

    The hub's saved want list (what a cut-short sync or ``verify --repair`` left) is
    loaded when the networking starts, so those blocks are asked of ADDR as well.
    Returns what ``sync`` reports; ``incomplete`` is set when it stopped early.
    """
    import logging

    import trio

    from craftnet.node.hub import Hub
    from craftnet.node.p2p.net import NetworkError
    from craftnet.node.p2p.settings import load_settings

    # Only ADDR: no listening beyond loopback, no bootstrap hubs, no mDNS.
    settings = replace(load_settings(app.home), listen=("/ip4/127.0.0.1/tcp/0",),
                       bootstrap=(), mdns=False)
    # A peer id of its own, so that it does not clash with a 'craftnet serve' running
    # with this hub's (the hello still proves this hub's membership).
    hub = Hub(app.home, app.store(), app.hub_key(), settings, transport_key=os.urandom(32),
              engine_config=sync_engine_config(settings))
    result: dict[str, Any] = {}
    failure: list[str] = []
    show = not app.as_json and sys.stderr.isatty()
    if not app.debug:
        # libp2p logs every failed dial attempt; the one line below says what failed.
        logging.getLogger("craftnet.libp2p").setLevel(logging.CRITICAL)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: hub.run(task_status=task_status))
            driver = hub.driver
            try:
                peer = await driver.connect_once(addr)
            except NetworkError as exc:
                failure.append(str(exc))
                nursery.cancel_scope.cancel()
                return
            start = last_change = time.monotonic()
            last_seen = (-1, -1, -1)
            while True:
                # Checks are cheap; each one the sync is done before adds to its time.
                await trio.sleep(SYNC_CHECK)
                now = time.monotonic()
                done = [r for r in driver.reconciles if r.peer == peer]
                seen = (driver.stored_blocks, driver.wanted(), driver.unwritten)
                if seen != last_seen:
                    last_seen, last_change = seen, now
                if show:
                    click.echo(
                        f"\r{'reconciled' if done else 'reconciling'}: "
                        f"{driver.stored_records} records, {driver.stored_blocks} blocks "
                        f"stored, {driver.wanted()} wanted   ",
                        err=True, nl=False,
                    )
                # Received is not yet stored: the report counts what is in the store.
                if done and driver.wanted() == 0 and driver.unwritten == 0:
                    break
                if now - start > timeout or now - last_change > idle:
                    result["incomplete"] = True
                    break
                if peer not in driver.links and (peer in driver.closed or now - start > 5):
                    result["incomplete"] = True
                    result["reason"] = driver.refusal(peer) or "the connection was lost"
                    break
            if show:
                click.echo("", err=True)
            last = [r for r in driver.reconciles if r.peer == peer]
            result.update({
                "peer": peer,
                "records_stored": driver.stored_records,
                "blocks_stored": driver.stored_blocks,
                "still_wanted": driver.wanted(),
                "reconcile": None if not last else {
                    "we_lacked": last[-1].we_lacked,
                    "they_lacked": last[-1].they_lacked,
                    "round_trips": last[-1].round_trips,
                    "bytes": last[-1].bytes_sent + last[-1].bytes_received,
                },
            })
            nursery.cancel_scope.cancel()

    # The imports are done: a sync need not walk what they left on each full collection.
    freeze_start_up(collect=False)
    trio.run(main)
    if failure:
        raise CraftnetError(f"cannot sync with {addr}: {failure[0]}")
    return result


def start_network(
    app: App,
    store: Any,
    *,
    listen: tuple[str, ...] = (),
    bootstrap: tuple[str, ...] = (),
    alliance: str | None = None,
    mdns: bool | None = None,
) -> Any:
    """For ``craftnet serve``: start the hub's networking in its own thread if the hub
    is in an alliance; returns the web app's peers provider (with ``stop()`` if running)."""
    from craftnet.node.hub import Hub, NotInAlliance
    from craftnet.node.p2p.settings import load_settings

    settings = load_settings(app.home).with_options(
        alliance=alliance, listen=listen, bootstrap=bootstrap, mdns=mdns
    )
    if not settings.alliance:
        app.note("networking off: this hub is in no alliance ('craftnet alliance --help')")
        return NotInAlliance()
    hub = Hub(app.home, store, app.hub_key(), settings)

    def ready(running: Hub) -> None:
        app.note(f"hub network: peer {running.peer_id} in {running.membership.genesis.name!r}")
        for addr in running.addrs:
            app.note(f"  listening on {addr}")

    handle = hub.start_thread(ready)
    if handle.failure is not None:
        raise CraftnetError(f"the hub's networking did not start: {handle.failure}")
    return handle
