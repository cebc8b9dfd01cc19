"""Identity commands: ``init`` (a new hub home) and ``id`` (show or rotate the hub key)."""

from __future__ import annotations

import click
from rich.console import Console

from craftnet.archive import index
from craftnet.cli.context import App, pass_app
from craftnet.errors import CraftnetError


@click.command()
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Store the hub key unencrypted. For demo and development hubs only.",
)
@pass_app
def init(app: App, no_passphrase: bool) -> None:
    """Create the home directory, the archive store and the hub key.

    The hub key is an Ed25519 key, shown as a `did:key`. It is encrypted with a
    passphrase taken from CRAFTNET_PASSPHRASE or asked twice at the terminal. Running
    `init` again on a set-up home changes nothing and shows the existing key.
    """
    app.home.mkdir(parents=True, exist_ok=True)
    app.store_path.mkdir(parents=True, exist_ok=True)
    app.store()  # creates the LMDB environment
    keystore = app.keystore()
    created = False
    name = app.hub_key_name()
    if keystore.has(name):
        did = keystore.info(name).did
    else:
        passphrase = None if no_passphrase else app.new_passphrase()
        did = keystore.create(name, passphrase, allow_plaintext=no_passphrase).did
        app.set_hub_key_name(name)
        created = True
    data = {"home": str(app.home), "did": did, "created": created}

    def human(out: Console) -> None:
        verb = "created" if created else "already set up"
        out.print(f"{verb}: craftnet home {app.home}")
        out.print(f"hub key  {did}")
        if created and no_passphrase:
            out.print("[yellow]warning[/yellow]: the hub key is stored UNENCRYPTED (demo use)")

    app.emit(data, human)


@click.group(name="id", invoke_without_command=True)
@click.pass_context
def id_group(ctx: click.Context) -> None:
    """Print the hub's `did:key`; `id rotate` replaces the key.

    With `--json`: the did, the keystore name of the key, whether it is encrypted and
    when it was created.
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    assert app is not None
    app.require_home()
    name = app.hub_key_name()
    info = app.keystore().info(name)
    data = {"did": info.did, "key": name, "encrypted": info.encrypted, "created": info.created}
    app.emit(data, lambda out: out.print(info.did))


@id_group.command()
@click.option("--reason", default="routine key rotation", show_default=True,
              help="Why the key changes; goes into the signed record.")
@pass_app
def rotate(app: App, reason: str) -> None:
    """Make a new hub key and publish a key-succession record signed by the old one.

    The record names the new key. Records signed by the old key before the rotation
    stay valid; new records are signed by the new key. The old key stays in the
    keystore; the new one is stored as `hub.2`, `hub.3`, ... and becomes the hub key.
    """
    app.require_home()
    keystore = app.keystore()
    old_name = app.hub_key_name()
    old_info = keystore.info(old_name)
    passphrase = app.passphrase() if old_info.encrypted else None
    old_key = keystore.load(old_name, passphrase)
    new_name = _next_name(keystore.names(), old_name)
    # Order matters for crashes: the new key is saved before anything names it, and
    # the hub switches to it only after the succession record is stored.
    new_key = keystore.create(new_name, passphrase, allow_plaintext=not old_info.encrypted)
    record = index.publish(
        app.store(), old_key, "key-succession", {"new": new_key.did, "reason": reason}
    )
    app.set_hub_key_name(new_name)
    data = {"old": old_key.did, "new": new_key.did, "key": new_name, "record": str(record.cid)}

    def human(out: Console) -> None:
        out.print(f"old key  {old_key.did}")
        out.print(f"new key  {new_key.did}  (stored as {new_name!r})")
        out.print(f"succession record {record.cid}")

    app.emit(data, human)


def _next_name(names: list[str], current: str) -> str:
    base = current.split(".")[0]
    taken = set(names)
    for number in range(2, 10_000):
        candidate = f"{base}.{number}"
        if candidate not in taken:
            return candidate
    raise CraftnetError("too many rotated keys in the keystore")  # pragma: no cover


COMMANDS = [init, id_group]
