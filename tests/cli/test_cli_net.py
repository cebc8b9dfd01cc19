"""``craftnet serve`` in an alliance runs the hub-to-hub part too: ``craftnet peers`` and
the HTTP API see the peers; SIGTERM stops both cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from craftnet.cli.main import cli


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_runs_the_network_and_peers_reports_it(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert run(home, "init", "--no-passphrase")[0] == 0
    assert run(home, "alliance", "create", "Adopt-a-Workshop")[0] == 0
    port = free_port()
    (home / "config.toml").write_text(f'[http]\nhost = "127.0.0.1"\nport = {port}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "craftnet", "--home", str(home), "serve",
         "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CRAFTNET_PASSPHRASE": ""},
    )
    try:
        # Wait for the hub to say it serves (its networking starts before the HTTP API),
        # not for a time: under load it only takes longer.
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("craftnet hub serving at"):
                break
        else:
            errors = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"craftnet serve ended before serving: {errors}")
        code, out, err = run(home, "--json", "peers")
        assert code == 0, err
        status = json.loads(out)
        assert status["enabled"] is True
        assert status["alliance"]["name"] == "Adopt-a-Workshop"
        assert status["peers"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_peers_says_when_the_hub_is_not_running(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert run(home, "init", "--no-passphrase")[0] == 0
    (home / "config.toml").write_text(f'[http]\nport = {free_port()}\n')
    result = subprocess.run([sys.executable, "-m", "craftnet", "--home", str(home), "peers"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "craftnet serve" in result.stderr


def test_sync_with_a_hub_that_is_not_there_says_so_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert run(home, "init", "--no-passphrase")[0] == 0
    assert run(home, "alliance", "create", "Neo-Vernacular builders")[0] == 0
    peer = "12D3KooWDbXxjfgb5Vkp5i3v8jAXneTfHZpeJ3keACbFf6KbW97g"
    nobody = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{peer}"
    result = subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(home), "sync", nobody],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CRAFTNET_PASSPHRASE": ""},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no libp2p dial noise, no ExceptionGroup
    assert lines[0].startswith(f"error: cannot sync with {nobody}: cannot reach")
