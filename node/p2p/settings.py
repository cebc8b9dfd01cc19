"""The hub's networking settings: ``network.toml`` in the hub's home folder.

::

    [network]
    alliance = "bafyrei..."     # the alliance's id (its genesis CID); set by 'alliance create/join'
    listen = ["/ip4/0.0.0.0/tcp/4710"]
    bootstrap = ["/ip4/192.0.2.7/tcp/4710/p2p/12D3KooW..."]
    mdns = true                 # find hubs on the local network
    mdns_interface = ""         # e.g. "192.168.1.20": the address mDNS announces
    max_peers = 64
    reconcile_interval = 300    # seconds between reconciles with each dialled hub

A missing file or key means the default; unknown keys are refused so that a typo does
not silently change what a hub does. The file is separate from ``config.toml`` (the HTTP
side) so each part of the node owns its own settings.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from craftnet.errors import CraftnetError

SETTINGS_FILE: Final = "network.toml"
KEY_FILE: Final = "p2p-key"
DEFAULT_PORT: Final = 4710
DEFAULT_LISTEN: Final = (f"/ip4/0.0.0.0/tcp/{DEFAULT_PORT}",)
_KEYS: Final = {
    "alliance",
    "listen",
    "bootstrap",
    "mdns",
    "mdns_interface",
    "max_peers",
    "reconcile_interval",
}


class SettingsError(CraftnetError):
    """network.toml is unreadable or holds a bad value."""


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """How this hub takes part in its alliance's network."""

    alliance: str | None = None
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True
    mdns_interface: str = ""
    max_peers: int = 64
    reconcile_interval: int = 300

    def with_options(
        self,
        *,
        alliance: str | None = None,
        listen: tuple[str, ...] = (),
        bootstrap: tuple[str, ...] = (),
        mdns: bool | None = None,
    ) -> NetworkSettings:
        """A copy with command-line options applied (they override the file)."""
        return replace(
            self,
            alliance=alliance or self.alliance,
            listen=listen or self.listen,
            bootstrap=self.bootstrap + tuple(b for b in bootstrap if b not in self.bootstrap),
            mdns=self.mdns if mdns is None else mdns,
        )


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(f"{path}: [network] {key} must be a list of multiaddr strings")
    return tuple(value)


def _count(path: Path, key: str, value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 100_000:
        raise SettingsError(f"{path}: {key} must be a whole number 1..100000")
    return int(value)


def load_settings(home: Path) -> NetworkSettings:
    """Read ``home/network.toml`` (defaults for whatever it does not say)."""
    path = home / SETTINGS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return NetworkSettings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    if set(data) - {"network"}:
        raise SettingsError(f"{path}: only a [network] section belongs here")
    table = data.get("network", {})
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise SettingsError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    settings = NetworkSettings()
    if "alliance" in table:
        if not isinstance(table["alliance"], str) or not table["alliance"]:
            raise SettingsError(f"{path}: alliance must be an alliance id (a CID)")
        settings = replace(settings, alliance=table["alliance"])
    if "listen" in table:
        settings = replace(settings, listen=_strings(path, "listen", table["listen"]))
    if "bootstrap" in table:
        settings = replace(settings, bootstrap=_strings(path, "bootstrap", table["bootstrap"]))
    if "mdns" in table:
        if type(table["mdns"]) is not bool:
            raise SettingsError(f"{path}: mdns must be true or false")
        settings = replace(settings, mdns=table["mdns"])
    if "mdns_interface" in table:
        if not isinstance(table["mdns_interface"], str):
            raise SettingsError(f"{path}: mdns_interface must be an address string")
        settings = replace(settings, mdns_interface=table["mdns_interface"])
    if "max_peers" in table:
        settings = replace(settings, max_peers=_count(path, "max_peers", table["max_peers"]))
    if "reconcile_interval" in table:
        interval = _count(path, "reconcile_interval", table["reconcile_interval"])
        settings = replace(settings, reconcile_interval=interval)
    return settings


def _quote(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def save_settings(home: Path, settings: NetworkSettings) -> Path:
    """Write ``home/network.toml`` atomically; return its path."""
    path = home / SETTINGS_FILE
    lines = ["# craftnet networking (see docs/alliance.md)", "[network]"]
    if settings.alliance:
        lines.append(f'alliance = "{settings.alliance}"')
    lines += [
        f"listen = {_quote(settings.listen)}",
        f"bootstrap = {_quote(settings.bootstrap)}",
        f"mdns = {'true' if settings.mdns else 'false'}",
        f'mdns_interface = "{settings.mdns_interface}"',
        f"max_peers = {settings.max_peers}",
        f"reconcile_interval = {settings.reconcile_interval}",
    ]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def transport_seed(home: Path) -> bytes:
    """The hub's libp2p key seed (made on first use), so its peer id stays the same."""
    path = home / KEY_FILE
    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        seed = os.urandom(32)
        fd = os.open(
            path.with_name(KEY_FILE + ".partial"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        with os.fdopen(fd, "wb") as out:
            out.write(seed)
        path.with_name(KEY_FILE + ".partial").replace(path)
        return seed
    if len(seed) != 32:
        raise SettingsError(f"{path} is not a 32-byte key seed; delete it to make a new peer id")
    return seed
