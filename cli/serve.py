"""``craftnet serve``: run this hub's node with its HTTP API and web UI.

``--demo`` makes a ready-to-browse hub on first start: it initialises the home folder
with an UNENCRYPTED demo hub key and seeds the demo archive (:mod:`craftnet.archive.demo`).
"""

from __future__ import annotations

import click

from craftnet.cli.context import App, NotInitialised, pass_app
from craftnet.errors import CraftnetError
from craftnet.startup import freeze_start_up

DEMO_TOKEN_FILE = "demo-token"


def _init_demo(app: App) -> None:
    """Initialise a demo home: store, plaintext hub key (labelled demo), default config."""
    from craftnet.node.config import write_default_config

    app.home.mkdir(parents=True, exist_ok=True)
    app.store_path.mkdir(parents=True, exist_ok=True)
    app.store()
    keystore = app.keystore()
    name = app.hub_key_name()
    if not keystore.has(name):
        keystore.create(name, None, allow_plaintext=True)
        app.set_hub_key_name(name)
    write_default_config(app.home)
    app.note(f"created a DEMO hub at {app.home} (hub key stored unencrypted: demo use only)")


@click.command()
@click.option(
    "--demo",
    is_flag=True,
    help="On first start, create a demo hub (unencrypted demo key) and seed it with a demo "
    "archive of artisans, techniques and designs.",
)
@click.option(
    "--host",
    default=None,
    metavar="ADDRESS",
    help="Address of the HTTP API and web UI (config http.host; default 127.0.0.1; 0.0.0.0 "
    "serves the hub's local network).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the HTTP API and web UI (config http.port; default 8470; 0 = any free port).",
)
@click.option("--new-token", is_flag=True, help="Replace the API token and print the new one.")
@click.option("--listen", multiple=True, metavar="MULTIADDR",
              help="Hub-to-hub address to listen on, repeatable (network.toml listen; default "
              "/ip4/0.0.0.0/tcp/4710).")
@click.option("--bootstrap", multiple=True, metavar="MULTIADDR",
              help="A member hub to connect to, /ip4/.../tcp/.../p2p/12D3Koo..., repeatable "
              "(added to network.toml bootstrap).")
@click.option("--alliance", default=None, metavar="ID",
              help="The alliance id (network.toml alliance, written by alliance create/join).")
@click.option("--mdns/--no-mdns", default=None,
              help="Find hubs on the local network (network.toml mdns; on).")
@pass_app
def serve(app: App, demo: bool, host: str | None, port: int | None, new_token: bool,
          listen: tuple[str, ...] = (), bootstrap: tuple[str, ...] = (),
          alliance: str | None = None, mdns: bool | None = None) -> None:
    """Run the hub: the HTTP API, the web UI and, in an alliance, hub-to-hub sync.

    The HTTP API and the web UI listen on http://127.0.0.1:8470/ unless `config.toml`
    in the home directory or the options say otherwise. When the hub is a member of an
    alliance it also syncs with the other hubs over libp2p (announcements,
    reconciliation, block exchange). Writing through the API needs the API token,
    which is printed when it is created. Stop with Ctrl+C. `make run` runs
    `craftnet serve --demo`. Once started, the hub leaves what start-up made (some
    135,000 objects) out of Python's garbage collection passes (gc.freeze).
    """
    from craftnet.archive import demo as demo_data
    from craftnet.node.config import load_config
    from craftnet.node.web import auth, server
    from craftnet.node.web.context import NodeContext

    if not app.store_path.exists():
        if not demo:
            raise NotInitialised(
                f"no craftnet archive at {app.home}; run 'craftnet init' first "
                "(or 'craftnet serve --demo' for a demo hub)"
            )
        _init_demo(app)
    config = load_config(app.home).with_http(host, port)
    store = app.store()
    keystore = app.keystore()
    # A new token is written only once the hub serves: a start that fails (the port is
    # taken) must not leave a token on disk that nobody was ever shown.
    token: str | None = None
    pending_hash: str | None = None
    if new_token or not config.token_path.exists():
        token, pending_hash = auth.make_token()
    demo_token = app.home / DEMO_TOKEN_FILE
    if demo and token is None and demo_token.exists():
        token = demo_token.read_text(encoding="utf-8").strip()
    if demo and not demo_data.is_seeded(store):
        app.note("seeding the demo archive ...")
        demo_data.seed(store, keystore)
    try:
        hub_did = keystore.info(app.hub_key_name()).did
    except CraftnetError:
        hub_did = None
    gate = auth.Gate(pending_hash or auth.load_token_hash(config.token_path))
    from craftnet.cli.net import start_network

    network = start_network(app, store, listen=listen, bootstrap=bootstrap, alliance=alliance,
                            mdns=mdns)
    ctx = NodeContext.open(config, store, keystore, gate, peers=network, hub_did=hub_did,
                           demo=demo)

    def ready(url: str) -> None:
        if pending_hash is not None and token is not None:
            auth.save_token_hash(config.token_path, pending_hash)
            if demo:
                # A demo hub is for trying things out: keep its token readable (clearly named).
                demo_token.write_text(token + "\n", encoding="utf-8")
        click.echo(f"craftnet hub serving at {url}", err=False)
        if token is not None:
            label = "demo API token" if demo else "API token (shown once; keep it safe)"
            click.echo(f"{label}: {token}")
        if demo:
            click.echo(
                f"demo artisans: {', '.join(demo_data.ARTISANS)} "
                f"(passphrase '{demo_data.DEMO_PASSPHRASE}')"
            )
        click.echo("press Ctrl+C to stop")

    # Imports done, store open, networking started: what exists now lives as long as the
    # hub, so the cyclic GC need not walk it on every full collection (freeze_start_up).
    freeze_start_up(collect=True)
    try:
        server.run(ctx, config.http_host, config.http_port, ready)
    finally:
        if hasattr(network, "stop"):
            network.stop()  # saves the want list; every block is already committed
    app.note("stopped")


COMMANDS = [serve]
