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
not silently change what a hub does, naming the file, the line and the key
(:mod:`craftnet.tomlcheck`). The file is separate from ``config.toml`` (the HTTP
side) so each part of the node owns its own settings.
"""

# opt() returns dataclasses.field(...); ruff cannot see that through the helper.
# ruff: noqa: RUF009
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from craftnet import tomlcheck
from craftnet.errors import CraftnetError
from craftnet.tomlcheck import opt

SETTINGS_FILE: Final = "network.toml"
KEY_FILE: Final = "p2p-key"
DEFAULT_PORT: Final = 4710
DEFAULT_LISTEN: Final = (f"/ip4/0.0.0.0/tcp/{DEFAULT_PORT}",)


class SettingsError(CraftnetError):
    """network.toml is unreadable or holds a bad value."""


def _nonempty(value: str) -> str | None:
    return None if value else "must not be empty"


def _addrs(value: tuple[str, ...]) -> str | None:
    return None if all(value) else "must be a list of multiaddr strings, none of them empty"


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """How this hub takes part in its alliance's network (the ``[network]`` table)."""

    alliance: str | None = opt(
        None, "the alliance's id (its genesis CID); set by 'alliance create/join'", check=_nonempty
    )
    listen: tuple[str, ...] = opt(DEFAULT_LISTEN, "multiaddrs to listen on", check=_addrs)
    bootstrap: tuple[str, ...] = opt((), "multiaddrs of hubs to dial", check=_addrs)
    mdns: bool = opt(True, "find hubs on the local network")
    mdns_interface: str = opt("", 'e.g. "192.168.1.20": the address mDNS announces')
    max_peers: int = opt(64, "most hubs connected at once", lo=1, hi=100_000)
    reconcile_interval: int = opt(
        300, "seconds between reconciles with each dialled hub", lo=1, hi=100_000
    )

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


@dataclass(frozen=True)
class _SettingsFile:
    """network.toml as a whole."""

    network: NetworkSettings = opt(NetworkSettings, "`[network]`")


def load_settings(home: Path) -> NetworkSettings:
    """Read ``home/network.toml`` (defaults for whatever it does not say)."""
    return tomlcheck.load(home / SETTINGS_FILE, _SettingsFile, SettingsError).network


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
