"""The top-level command: global options, help, and how errors are shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from craftnet.archive import index
from craftnet.cli.context import default_home

Invoke = Callable[..., Result]


def test_help_lists_every_command(invoke: Invoke) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "id", "add", "cat", "publish", "show", "ls", "provenance",
                    "verify", "gc", "export", "import"):
        assert f"  {command} " in result.stdout or f"  {command}\n" in result.stdout, command


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "craftnet" in result.stdout


def test_home_option_beats_the_environment(invoke: Invoke, tmp_path: Path, home: Path) -> None:
    other = tmp_path / "elsewhere"
    assert invoke("--home", str(other), "init", "--no-passphrase").exit_code == 0
    assert (other / "store").is_dir()
    assert not home.exists()


def test_default_home_is_the_user_data_dir() -> None:
    assert default_home().name == "craftnet"


def test_unexpected_errors_are_one_line_with_a_hint(
    hub: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the loom jammed")

    monkeypatch.setattr(index, "list_records", broken)
    result = hub("ls")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: unexpected RuntimeError: the loom jammed "
        "(rerun with --debug to see the traceback)\n"
    )
    debug = hub("--debug", "ls")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "the loom jammed" in debug.stderr


def test_json_errors_still_go_to_stderr(hub: Invoke) -> None:
    result = hub("--json", "show", "bafkr4ih7n4wpo5ilbuzilc3vr3y426lrazhvh2a6yyx7kyfjkn4slgokne")
    assert result.exit_code == 1
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "not-found" and error["exit"] == 1
    assert "is not in this hub's archive" in error["message"]
