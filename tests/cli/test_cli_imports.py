"""``craftnet imports list|prune`` and ``craftnet import -`` through the real executable:
unfinished imports listed and removed by hand, a piped bundle that continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CRAFTNET = Path(sys.executable).with_name("craftnet")


def run(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env["CRAFTNET_HOME"] = str(home)
    return subprocess.run(
        [str(CRAFTNET), *args], env=env, capture_output=True, timeout=120,
        input=stdin if stdin is not None else b"",
    )


def ok(home: Path, *args: str, stdin: bytes | None = None) -> Any:
    result = run(home, "--json", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == status, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A split bundle of one big design (three parts) from a hub of its own."""
    base = tmp_path_factory.mktemp("maker")
    maker = base / "maker"
    ok(maker, "init", "--no-passphrase")
    (base / "lamp.stl").write_bytes(os.urandom(9 * 1024 * 1024))
    added = ok(maker, "add", str(base / "lamp.stl"))
    cid = added[0]["cid"] if isinstance(added, list) else added["cid"]
    ok(maker, "publish", "design", "--title", "Rustic Futurism lamp", "--file", cid,
       "--licence", "CC-BY-4.0")
    out = ok(maker, "export", "--max-size", "4M", str(base / "stick.car"))
    return [Path(part["file"]) for part in out["files"]]


def test_list_and_prune_a_split_import_left_half_done(parts: list[Path], tmp_path: Path) -> None:
    hub = tmp_path / "rural"
    ok(hub, "init", "--no-passphrase")
    empty = ok(hub, "imports", "list")
    assert empty["held"]["blocks"] == 0 and empty["jobs"]["count"] == 0
    got = ok(hub, "import", str(parts[0]))
    assert got["held_blocks"] > 0
    listed = ok(hub, "imports", "list")
    assert listed["held"]["blocks"] == got["held_blocks"] and listed["held"]["bytes"] > 0
    assert listed["held"]["oldest_ms"] <= listed["now_ms"]
    assert listed["held"]["sets"][0]["seen"] == [1] and listed["held"]["sets"][0]["parts"] == 3
    human = run(hub, "imports", "list").stdout.decode()
    assert "held blocks of split bundles: " in human and "parts 1 of 3 in" in human
    # The default limit (30 days) keeps it; a dry run with 0 says what would go.
    assert ok(hub, "imports", "prune")["removed_blocks"] == 0
    dry = ok(hub, "imports", "prune", "--older-than", "0", "--dry-run")
    assert dry["removed_blocks"] == got["held_blocks"] and dry["removed_sets"] == 1
    assert ok(hub, "imports", "list")["held"]["blocks"] == got["held_blocks"]
    human = run(hub, "imports", "prune", "--older-than", "0").stdout.decode()
    assert human.startswith(f"removed {got['held_blocks']} held block(s)")
    assert ok(hub, "imports", "list")["held"]["blocks"] == 0
    assert ok(hub, "verify")["ok"]


def test_a_piped_bundle_cut_short_continues_when_piped_again(parts: list[Path],
                                                            tmp_path: Path) -> None:
    hub = tmp_path / "rural"
    ok(hub, "init", "--no-passphrase")
    raw = parts[1].read_bytes()
    err = one_line_error(run(hub, "import", "-", stdin=raw[: len(raw) * 2 // 3]), 1)
    assert "(file truncated?)" in err and "import the whole bundle again to continue" in err
    jobs = ok(hub, "imports", "list")["jobs"]
    assert jobs["count"] == 1 and jobs["folders"][0]["resumable"]
    result = run(hub, "import", "-", stdin=raw)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "continued an interrupted import: " in out and "already there" in out
    assert "imported stdin: " in out
    assert ok(hub, "imports", "list")["jobs"]["count"] == 0
    for part in (parts[0], parts[2]):
        ok(hub, "import", "-", stdin=part.read_bytes())
    assert len(ok(hub, "ls")) == 1 and ok(hub, "verify")["ok"]


@pytest.mark.parametrize(
    ("args", "config", "status", "message"),
    [
        (["imports", "prune", "--older-than", "-3d"], None, 2, "is not an age like 30d"),
        (["imports", "prune", "--older-than", "soon"], None, 2, "is not an age like 30d"),
        (["imports", "prune", "--older-than", "99999999d"], None, 2, "is not an age"),
        (["imports", "prune"], "[bundles]\nkeep_unfinished_days = 0\n", 2, "give --older-than"),
        (["imports", "prune"], '[bundles]\nkeep_unfinished_days = "x"\n', 1,
         "bundles.keep_unfinished_days: must be an integer"),
        (["imports", "list", "extra"], None, 2, "extra"),
        (["import", "-"], None, 1, "the bundle is empty"),
    ],
)
def test_hostile_arguments_fail_in_one_line(tmp_path: Path, args: list[str], config: str | None,
                                             status: int, message: str) -> None:
    hub = tmp_path / "hub"
    ok(hub, "init", "--no-passphrase")
    if config is not None:
        (hub / "config.toml").write_text(config)
    assert message in one_line_error(run(hub, *args), status)


def test_import_dash_from_a_terminal_says_to_pipe_a_bundle(tmp_path: Path) -> None:
    import pty

    hub = tmp_path / "hub"
    ok(hub, "init", "--no-passphrase")
    leader, follower = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
        env["CRAFTNET_HOME"] = str(hub)
        result = subprocess.run([str(CRAFTNET), "import", "-"], env=env, stdin=follower,
                                capture_output=True, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert "pipe one in" in one_line_error(result, 2)
