"""What every command shares: the home directory, the store, the keystore and output.

Commands receive an :class:`App` (``@pass_app``) and ask it for what they need; the
store and keystore are opened lazily, once, and closed when the command ends. Output
goes through :meth:`App.emit`: a JSON document with ``--json``, rich text otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import platformdirs
from rich.console import Console

from craftnet.errors import CraftnetError

F = TypeVar("F", bound=Callable[..., Any])

HOME_ENV = "CRAFTNET_HOME"
PASSPHRASE_ENV = "CRAFTNET_PASSPHRASE"
HUB_KEY = "hub"
HUB_KEY_FILE = "hub-key"  # holds the keystore name of the current hub key


class NotInitialised(CraftnetError):
    """The home directory has no store or key yet."""


def default_home() -> Path:
    """The per-user data directory craftnet uses when neither --home nor the env say."""
    return Path(platformdirs.user_data_dir("craftnet", appauthor=False))


class App:
    """The state of one CLI invocation."""

    def __init__(self, home: Path, as_json: bool, debug: bool) -> None:
        self.home = home
        self.as_json = as_json
        self.debug = debug
        # No emoji codes (a did:key contains ":key:") and no guessing of highlights;
        # when piped, a wide page so that CIDs in tables are never cut.
        self.out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 240)
        self.err = Console(stderr=True, highlight=False, emoji=False)
        self._store: Any = None
        self._keystore: Any = None

    @property
    def store_path(self) -> Path:
        """Where the LMDB store lives."""
        return self.home / "store"

    def require_home(self) -> None:
        """Raise a helpful error unless ``craftnet init`` has run for this home."""
        if not self.store_path.exists():
            raise NotInitialised(
                f"no craftnet archive at {self.home}; run 'craftnet init' first "
                f"(or pass --home / set {HOME_ENV})"
            )

    def store(self) -> Any:
        """The hub's store, opened on first use."""
        if self._store is None:
            self.require_home()
            from craftnet.archive.lmdb_store import LmdbStore

            self._store = LmdbStore(self.store_path)
        return self._store

    def keystore(self) -> Any:
        """The hub's keystore, opened on first use."""
        if self._keystore is None:
            from craftnet.identity.keystore import Keystore

            self._keystore = Keystore.for_home(self.home)
        return self._keystore

    def passphrase(self) -> str:
        """The keystore passphrase: from the environment, else asked at the terminal."""
        env = os.environ.get(PASSPHRASE_ENV)
        if env is not None:
            return env
        if not sys.stdin.isatty():
            raise CraftnetError(
                f"the hub key is protected by a passphrase; set {PASSPHRASE_ENV} "
                "or run in a terminal"
            )
        value: str = click.prompt("Keystore passphrase", hide_input=True, err=True)
        return value

    def new_passphrase(self) -> str:
        """A passphrase for a new key: from the environment, else asked twice."""
        value = os.environ.get(PASSPHRASE_ENV)
        if value is None:
            if not sys.stdin.isatty():
                raise CraftnetError(
                    f"set {PASSPHRASE_ENV} or run in a terminal to choose a passphrase "
                    "(or use --no-passphrase for a demo hub)"
                )
            value = click.prompt(
                "New keystore passphrase", hide_input=True, confirmation_prompt=True, err=True
            )
        if not value:
            raise CraftnetError("the passphrase is empty; use --no-passphrase for a demo hub")
        return value

    def hub_key_name(self) -> str:
        """The keystore name of the current hub key (it changes when the key rotates)."""
        try:
            name = (self.home / HUB_KEY_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return HUB_KEY
        return name or HUB_KEY

    def set_hub_key_name(self, name: str) -> None:
        """Make ``name`` the hub key, atomically."""
        target = self.home / HUB_KEY_FILE
        partial = target.with_name(target.name + ".partial")
        partial.write_text(name + "\n", encoding="utf-8")
        partial.replace(target)

    def hub_key(self) -> Any:
        """The hub's private key, decrypted with the passphrase if it has one."""
        self.require_home()
        keystore = self.keystore()
        name = self.hub_key_name()
        passphrase = self.passphrase() if keystore.info(name).encrypted else None
        return keystore.load(name, passphrase)

    def close(self) -> None:
        """Close whatever was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def emit(self, data: Any, human: Callable[[Console], None] | None = None) -> None:
        """Print ``data`` as JSON with --json, else call ``human`` (or print ``data``)."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        elif human is not None:
            human(self.out)
        else:
            self.out.print(data)

    def note(self, message: str) -> None:
        """A remark for people on stderr (never mixed into --json output)."""
        if not self.as_json:
            click.echo(message, err=True)


pass_app = click.make_pass_decorator(App)
