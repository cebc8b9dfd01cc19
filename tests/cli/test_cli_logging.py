"""``CRAFTNET_LOG``: the level of the log records a command writes to stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CRAFTNET = Path(sys.executable).with_name("craftnet")


def run(home: Path, level: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env.update(CRAFTNET_HOME=str(home), CRAFTNET_LOG=level)
    return subprocess.run(
        [str(CRAFTNET), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_level_turns_on_timestamped_records(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert run(home, "", "init", "--no-passphrase").returncode == 0
    # `alliance create` logs nothing at INFO today; `sync` to nowhere logs its hub's start.
    result = run(home, "info", "alliance", "create", "Global Micro-manufacturing Alliance")
    assert result.returncode == 0, result.stderr
    nowhere = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWSA2Gzi39rijmheGUXpAmo6N8Fhn4q88GwTCJ9Ru6yr7R"
    result = run(home, "INFO", "sync", nowhere, "--timeout", "1")
    lines = [line for line in result.stderr.splitlines() if " INFO craftnet.hub: " in line]
    assert lines and lines[0][:4].isdigit(), result.stderr  # "2031-05-04 12:00:00,123 INFO ..."


def test_an_unknown_level_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path / "hub", "chatty", "id")
    assert result.returncode == 2
    assert result.stderr.startswith("error: CRAFTNET_LOG='CHATTY' is not a log level")
    assert result.stderr.count("\n") == 1


def test_unset_keeps_the_quiet_default(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    result = run(home, "", "init", "--no-passphrase")
    assert result.returncode == 0 and " INFO " not in result.stderr
