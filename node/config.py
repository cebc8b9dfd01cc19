"""The hub's settings: where its data lives and how its HTTP API listens.

Settings live in ``config.toml`` in the hub's home folder (the same folder that holds
the archive store and the keystore)::

    [http]
    host = "127.0.0.1"          # "0.0.0.0" to serve the hub's local network
    port = 8470
    require_token_for_reads = false   # true: reading needs the token as writing does
    max_upload_mb = 256

    [bundles]
    export_folders = ["/media"]  # where the web may write USB bundles (besides bundles/)
    keep_unfinished_days = 30    # unfinished imports idle this long are removed; 0: never

A missing file or a missing key means the default. Unknown keys are refused, so a typo
("requre_token...") does not silently leave a hub open; every refusal names the file,
the line and the key (:mod:`craftnet.tomlcheck`).
"""

# opt() returns dataclasses.field(...); ruff cannot see that through the helper.
# ruff: noqa: RUF009

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import platformdirs

from craftnet import tomlcheck
from craftnet.errors import CraftnetError
from craftnet.tomlcheck import opt

CONFIG_FILE: Final = "config.toml"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8470
DEFAULT_MAX_UPLOAD_MB: Final = 256
DEFAULT_KEEP_UNFINISHED_DAYS: Final = 30
MAX_CONFIG_BYTES: Final = 64 * 1024


class ConfigError(CraftnetError):
    """The hub's config.toml is unreadable or holds a bad value."""


def default_home() -> Path:
    """The per-user data folder used when no home is given (as the CLI's ``--home``)."""
    return Path(platformdirs.user_data_dir("craftnet", appauthor=False))


@dataclass(frozen=True, slots=True)
class HubConfig:
    """The settings of one hub."""

    home: Path
    http_host: str = DEFAULT_HOST
    http_port: int = DEFAULT_PORT
    require_token_for_reads: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    # Where the operator may have the web write USB bundles, besides bundles/ in the home.
    export_folders: tuple[Path, ...] = ()
    # Held parts of split bundles and interrupted imports idle this long are removed while
    # the hub serves (node.housekeeping); 0 keeps them until removed by hand.
    keep_unfinished_days: int = DEFAULT_KEEP_UNFINISHED_DAYS

    @property
    def store_path(self) -> Path:
        """The LMDB store (the same place the CLI uses)."""
        return self.home / "store"

    @property
    def search_path(self) -> Path:
        """The SQLite full-text index, rebuilt from the store if lost."""
        return self.home / "search.sqlite"

    @property
    def token_path(self) -> Path:
        """The hash of the API's bearer token."""
        return self.home / "http-token"

    def with_http(self, host: str | None = None, port: int | None = None) -> HubConfig:
        """A copy listening elsewhere (command-line options override the file)."""
        return replace(
            self,
            http_host=self.http_host if host is None else host,
            http_port=self.http_port if port is None else port,
        )


def _host(value: str) -> str | None:
    if not value or len(value) > 255:
        return "must be an address such as 127.0.0.1"
    return None


@dataclass(frozen=True)
class HttpFile:
    """The ``[http]`` table of config.toml."""

    host: str = opt(DEFAULT_HOST, '"0.0.0.0" serves the hub\'s local network', check=_host)
    port: int = opt(DEFAULT_PORT, "the HTTP port (0: any free port)", lo=0, hi=65535)
    require_token_for_reads: bool = opt(False, "true: reading needs the API token too")
    max_upload_mb: int = opt(
        DEFAULT_MAX_UPLOAD_MB, "the largest file an upload may hold, in MiB", lo=1, hi=64 * 1024
    )


def _folders(value: tuple[str, ...]) -> str | None:
    for folder in value:
        if "\x00" in folder or not os.path.isabs(folder):
            return f"{folder[:80]!r} is not an absolute folder such as /media"
    return None


@dataclass(frozen=True)
class BundlesFile:
    """The ``[bundles]`` table of config.toml."""

    export_folders: tuple[str, ...] = opt(
        (),
        "folders the web UI may write USB bundles into, and any folder inside them (where "
        "sticks are mounted, e.g. /media); bundles/ in the home folder always",
        check=_folders,
    )
    keep_unfinished_days: int = opt(
        DEFAULT_KEEP_UNFINISHED_DAYS,
        "days after which unfinished imports are removed while the hub serves: held parts "
        "of split bundles no part of which arrived since, and interrupted imports' job "
        "folders (imports/) untouched since; 0 keeps them until 'craftnet imports prune'",
        lo=0,
        hi=36500,
    )


@dataclass(frozen=True)
class ConfigFile:
    """config.toml as a whole."""

    http: HttpFile = opt(HttpFile, "`[http]`")
    bundles: BundlesFile = opt(BundlesFile, "`[bundles]`")


def load_config(home: Path) -> HubConfig:
    """Read ``home/config.toml`` (defaults for whatever it does not say)."""
    path = home / CONFIG_FILE
    try:
        text = tomlcheck.read_text(path, ConfigError, max_bytes=MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return HubConfig(home=home)
    parsed = tomlcheck.parse(text, str(path), ConfigFile, ConfigError)[0]
    http = parsed.http
    return HubConfig(
        home=home,
        http_host=http.host,
        http_port=http.port,
        require_token_for_reads=http.require_token_for_reads,
        max_upload_bytes=http.max_upload_mb * 2**20,
        export_folders=tuple(Path(f) for f in parsed.bundles.export_folders),
        keep_unfinished_days=parsed.bundles.keep_unfinished_days,
    )


def write_default_config(home: Path) -> Path:
    """Write a commented config.toml with the defaults, unless one exists; return its path."""
    path = home / CONFIG_FILE
    if path.exists():
        return path
    path.write_text(
        "# craftnet hub settings (see docs/api.md)\n"
        "[http]\n"
        f'host = "{DEFAULT_HOST}"  # "0.0.0.0" serves the hub\'s local network\n'
        f"port = {DEFAULT_PORT}\n"
        "require_token_for_reads = false  # true: reads need the API token too\n"
        f"max_upload_mb = {DEFAULT_MAX_UPLOAD_MB}\n",
        encoding="utf-8",
    )
    return path
