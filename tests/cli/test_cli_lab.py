"""``craftnet lab run`` refuses what it cannot run before any hub starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CRAFTNET = Path(sys.executable).with_name("craftnet")


def lab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env["CRAFTNET_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [str(CRAFTNET), "lab", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_an_unknown_scenario_name(tmp_path: Path) -> None:
    err = one_line_error(lab(tmp_path, "marathon"), 2)
    assert "neither a file nor a bundled scenario (flood, long, short)" in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[lab\n", "not valid TOML"),
        ('[lab]\nname = "x"\n[[step]]\ndo = "restart"\n', "first step must be 'found'"),
    ],
)
def test_a_broken_scenario_file(tmp_path: Path, text: str, needle: str) -> None:
    scenario = tmp_path / "broken.toml"
    scenario.write_text(text)
    assert needle in one_line_error(lab(tmp_path, str(scenario)), 1)


def test_a_missing_scenario_file(tmp_path: Path) -> None:
    assert "cannot read" in one_line_error(lab(tmp_path, "nowhere.toml"), 1)


def test_an_executable_that_is_not_there(tmp_path: Path) -> None:
    err = one_line_error(lab(tmp_path, "short", "--craftnet", str(tmp_path / "craftnet")), 1)
    assert "is not an executable craftnet" in err


def test_an_output_folder_in_use(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert "is not empty" in one_line_error(lab(tmp_path, "short", "--out", str(out)), 1)
