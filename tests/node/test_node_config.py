"""The hub's config.toml: defaults, overrides, and refusals that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.node.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_CONFIG_BYTES,
    ConfigError,
    default_home,
    load_config,
    write_default_config,
)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert (
        (config.http_host, config.http_port) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8470)
    )
    assert config.require_token_for_reads is False
    assert config.store_path == tmp_path / "store"


def test_the_written_defaults_read_back(tmp_path: Path) -> None:
    write_default_config(tmp_path)
    assert load_config(tmp_path) == load_config(tmp_path / "nowhere").__class__(home=tmp_path)


def test_values_and_command_line_overrides(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[http]\nhost = "0.0.0.0"\nport = 9000\nrequire_token_for_reads = true\nmax_upload_mb = 2\n'
    )
    config = load_config(tmp_path)
    assert (config.http_host, config.http_port) == ("0.0.0.0", 9000)
    assert config.require_token_for_reads and config.max_upload_bytes == 2 * 2**20
    assert config.with_http(port=0).http_port == 0
    assert config.with_http(host="127.0.0.1").http_host == "127.0.0.1"


def test_unfinished_imports_are_kept_30_days_unless_configured(tmp_path: Path) -> None:
    assert load_config(tmp_path).keep_unfinished_days == 30
    (tmp_path / "config.toml").write_text("[bundles]\nkeep_unfinished_days = 0\n")
    assert load_config(tmp_path).keep_unfinished_days == 0  # never, by hand only
    (tmp_path / "config.toml").write_text("[bundles]\nkeep_unfinished_days = 7\n")
    assert load_config(tmp_path).keep_unfinished_days == 7


def test_export_folders_for_usb_bundles(tmp_path: Path) -> None:
    assert load_config(tmp_path).export_folders == ()
    (tmp_path / "config.toml").write_text('[bundles]\nexport_folders = ["/media", "/mnt/usb"]\n')
    assert load_config(tmp_path).export_folders == (Path("/media"), Path("/mnt/usb"))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "[http]\nrequre_token_for_reads = true\n",
            "config.toml:2: http.requre_token_for_reads: unknown option 'requre_token_for_reads'",
        ),
        ("[htp]\n", "config.toml:1: htp: unknown option 'htp'; known here: bundles, http"),
        ('[http]\nport = "80"\n', "config.toml:2: http.port: must be an integer, got a string"),
        ("[http]\nport = 70000\n", "config.toml:2: http.port: 70000 is above the maximum 65535"),
        ("[http]\nport = -1\n", "http.port: -1 is below the minimum 0"),
        ('[http]\nrequire_token_for_reads = "yes"\n', "must be true or false, got a string"),
        ("[http\n", "config.toml: not valid TOML"),
        ("[http]\nmax_upload_mb = 0\n", "config.toml:2: http.max_upload_mb: 0 is below"),
        ("http = 3\n", "config.toml:1: http: must be a table, got an integer"),
        ('[http]\nhost = ""\n', "config.toml:2: http.host: must be an address"),
        (
            '[bundles]\nexport_folders = ["media"]\n',
            "config.toml:2: bundles.export_folders: 'media' is not an absolute folder",
        ),
        ("[bundles]\nexport_folders = \"/media\"\n", "bundles.export_folders: must be"),
        ("[http]\nport = 80\nport = 81\n", "not valid TOML"),
        (
            '[bundles]\nkeep_unfinished_days = "thirty"\n',
            "config.toml:2: bundles.keep_unfinished_days: must be an integer, got a string",
        ),
        ("[bundles]\nkeep_unfinished_days = -1\n", "keep_unfinished_days: -1 is below the"),
        ("[bundles]\nkeep_unfinished_days = 1.5\n", "keep_unfinished_days: must be an integer"),
        ("[bundles]\nkeep_unfinished_days = true\n", "keep_unfinished_days: must be an integer"),
        ("[bundles]\nkeep_unfinished_days = 99999\n", "99999 is above the maximum 36500"),
    ],
)
def test_bad_files_are_refused_naming_line_and_key(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"\xff\xfe[http]", "not UTF-8"), (b"#" * (MAX_CONFIG_BYTES + 1), "larger than")],
)
def test_undecodable_or_huge_files_are_refused(tmp_path: Path, raw: bytes, words: str) -> None:
    (tmp_path / "config.toml").write_bytes(raw)
    with pytest.raises(ConfigError, match=words):
        load_config(tmp_path)


def test_default_home_is_the_clis() -> None:
    from craftnet.cli.context import default_home as cli_default_home

    assert default_home() == cli_default_home()
