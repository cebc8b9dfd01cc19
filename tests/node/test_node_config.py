"""The hub's config.toml: defaults, overrides, and refusals that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.node.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
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


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[http]\nrequre_token_for_reads = true\n", "unknown [http] key"),
        ("[htp]\n", "unknown section"),
        ('[http]\nport = "80"\n', "must be a int"),
        ("[http]\nport = 70000\n", "0..65535"),
        ('[http]\nrequire_token_for_reads = "yes"\n', "must be a bool"),
        ("[http\n", "not valid TOML"),
        ("[http]\nmax_upload_mb = 0\n", "1..65536"),
        ("http = 3\n", "must be a table"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_config(tmp_path)


def test_default_home_is_the_clis() -> None:
    from craftnet.cli.context import default_home as cli_default_home

    assert default_home() == cli_default_home()
