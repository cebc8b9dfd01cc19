"""The hub's settings: where its data lives and how its HTTP API listens.

Settings live in ``config.toml`` in the hub's home folder (the same folder that holds
the archive store and the keystore)::

    [http]
    host = "127.0.0.1"          # "0.0.0.0" to serve the hub's local network
    port = 8470
    require_token_for_reads = false   # true: reading needs the token as writing does
    max_upload_mb = 256

A missing file or a missing key means the default. Unknown keys are refused, so a typo
("requre_token...") does not silently leave a hub open.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import platformdirs

from craftnet.errors import CraftnetError

CONFIG_FILE: Final = "config.toml"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8470
DEFAULT_MAX_UPLOAD_MB: Final = 256
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


_HTTP_KEYS: Final = {"host", "port", "require_token_for_reads", "max_upload_mb"}


def _check(table: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    value = table[key]
    if type(value) is not kind:
        raise ConfigError(f"{where}: [http] {key} must be a {kind.__name__}, got {value!r:.40}")
    return value


def load_config(home: Path) -> HubConfig:
    """Read ``home/config.toml`` (defaults for whatever it does not say)."""
    path = home / CONFIG_FILE
    config = HubConfig(home=home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return config
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes; is it the right file?")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"http"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: http")
    http = data.get("http", {})
    if not isinstance(http, dict):
        raise ConfigError(f"{path}: http must be a table")
    unknown = sorted(set(http) - _HTTP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown [http] key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_HTTP_KEYS))}"
        )
    if "host" in http:
        host = _check(http, "host", str, path)
        if not host or len(host) > 255:
            raise ConfigError(f"{path}: [http] host must be an address such as 127.0.0.1")
        config = replace(config, http_host=host)
    if "port" in http:
        port = _check(http, "port", int, path)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{path}: [http] port must be 0..65535 (0: any free port)")
        config = replace(config, http_port=port)
    if "require_token_for_reads" in http:
        config = replace(
            config,
            require_token_for_reads=_check(http, "require_token_for_reads", bool, path),
        )
    if "max_upload_mb" in http:
        size = _check(http, "max_upload_mb", int, path)
        if not 1 <= size <= 64 * 1024:
            raise ConfigError(f"{path}: [http] max_upload_mb must be 1..65536")
        config = replace(config, max_upload_bytes=size * 2**20)
    return config


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
