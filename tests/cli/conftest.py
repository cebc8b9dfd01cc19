"""Fixtures for CLI tests: a fresh home directory and a runner that uses it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from craftnet.cli.main import cli

Invoke = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty craftnet home; CRAFTNET_HOME points at it and no passphrase is set."""
    path = tmp_path / "home"
    monkeypatch.setenv("CRAFTNET_HOME", str(path))
    monkeypatch.delenv("CRAFTNET_PASSPHRASE", raising=False)
    return path


@pytest.fixture
def invoke(home: Path) -> Invoke:
    """Run ``craftnet ARGS`` in-process; stdout and stderr are kept apart."""
    runner = CliRunner()

    def run(
        *args: str, input: bytes | str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return run


@pytest.fixture
def hub(invoke: Invoke) -> Invoke:
    """A home where ``craftnet init --no-passphrase`` has run."""
    result = invoke("init", "--no-passphrase")
    assert result.exit_code == 0, result.stderr
    return invoke
