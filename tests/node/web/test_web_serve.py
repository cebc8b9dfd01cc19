"""``craftnet serve --demo`` as ``make run`` starts it: a real process, stopped by a signal."""

from __future__ import annotations

import html
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


def start(
    home: Path, *extra: str, log: str | None = None
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Start the hub; return it, its URL and the lines it printed before serving
    (with its log records at ``log`` level, if given)."""
    env = {**os.environ, "CRAFTNET_HOME": str(home)}
    env.pop("CRAFTNET_LOG", None)
    if log is not None:
        env["CRAFTNET_LOG"] = log
    proc = subprocess.Popen(
        [sys.executable, "-m", "craftnet", "serve", "--demo", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("press Ctrl+C"):
            break
    url = next((ln.split(" at ", 1)[1] for ln in lines if "serving at" in ln), None)
    if url is None:
        proc.kill()
        pytest.fail("the hub did not start:\n" + "\n".join(lines))
    return proc, url, lines


def stop(proc: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig``; return what the hub printed while stopping (it must exit 0)."""
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    return rest


@pytest.mark.slow
def test_demo_hub_starts_seeded_on_loopback_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, url, lines = start(home)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert any(line.startswith("demo API token: cnt_") for line in lines)
        assert any("DEMO hub" in line and "unencrypted" in line for line in lines)
        with urllib.request.urlopen(url + "api/v1/status", timeout=10) as response:
            status = json.load(response)
        assert status["demo"] is True and status["by_type"]["design"] == 4
        with urllib.request.urlopen(url, timeout=10) as response:
            assert "Maker's Fair 2035 showcase" in html.unescape(response.read().decode())
    finally:
        rest = stop(proc, signal.SIGINT)
    assert "stopped" in rest
    # A second start finds the archive and the demo token; it seeds nothing again.
    proc, url, lines = start(home)
    try:
        with urllib.request.urlopen(url + "api/v1/status", timeout=10) as response:
            assert json.load(response)["records"] == status["records"]
        assert not any("seeding" in line for line in lines)
        assert any(line.startswith("demo API token: cnt_") for line in lines)
    finally:
        stop(proc, signal.SIGTERM)
    assert (home / "http-token").read_text().startswith("sha256:")


@pytest.mark.slow
def test_a_started_hub_has_frozen_its_start_up_objects(tmp_path: Path) -> None:
    """Before it serves, the hub moves what start-up left (imports, store, web app) out
    of the cyclic GC's reach: its full collections then skip those 100,000+ objects."""
    proc, _, lines = start(tmp_path / "home", log="DEBUG")
    try:
        frozen = [line for line in lines if "craftnet.startup" in line and " froze " in line]
        assert len(frozen) == 1, "\n".join(lines[-40:])
        count = int(frozen[0].split(" froze ", 1)[1].split()[0])
        assert count > 50_000, frozen[0]
        # Frozen after start-up: the line comes before the hub says it serves.
        assert lines.index(frozen[0]) < next(
            i for i, line in enumerate(lines) if "serving at" in line
        )
    finally:
        stop(proc, signal.SIGTERM)


def test_serve_without_init_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "CRAFTNET_HOME": str(tmp_path / "empty")}
    done = subprocess.run(
        [sys.executable, "-m", "craftnet", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "craftnet init" in done.stderr and "Traceback" not in done.stderr


def test_a_taken_port_loses_no_token(tmp_path: Path) -> None:
    """The token is written only once the hub serves: a start that cannot bind leaves none,
    and the next start makes one and shows it."""
    home = tmp_path / "home"
    env = {**os.environ, "CRAFTNET_HOME": str(home)}
    init = subprocess.run(
        [sys.executable, "-m", "craftnet", "init", "--no-passphrase"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = subprocess.run(
            [sys.executable, "-m", "craftnet", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert not (home / "http-token").exists()
    env_port = [sys.executable, "-m", "craftnet", "serve", "--port", "0"]
    proc = subprocess.Popen(
        env_port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    shown = None
    for line in proc.stdout:
        if line.startswith("API token (shown once"):
            shown = line.split(": ", 1)[1].strip()
        if line.startswith("press Ctrl+C"):
            break
    try:
        assert shown is not None and shown.startswith("cnt_")
        assert (home / "http-token").read_text().startswith("sha256:")
    finally:
        stop(proc, signal.SIGTERM)
