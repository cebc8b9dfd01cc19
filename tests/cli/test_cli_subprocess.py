"""The real ``craftnet`` executable, run as a separate process with hostile input.

Every case must end with exactly one line on stderr that starts with ``error:``, the
documented exit status (2 for usage, 1 for errors), and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CRAFTNET = Path(sys.executable).with_name("craftnet")
GOOD_CID = "bafyr4ihhevhfuc4q4cgr6rx7ojixw6j3eddonpmfsscjcwafagnz7owhyu"


Completed = subprocess.CompletedProcess[bytes]


def run(home: Path, *args: str, passphrase: str | None = None) -> Completed:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env["CRAFTNET_HOME"] = str(home)
    if passphrase is not None:
        env["CRAFTNET_PASSPHRASE"] = passphrase
    return subprocess.run(
        [str(CRAFTNET), *args],
        env=env,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=home if home.is_dir() else None,
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home set up with a passphrase-protected hub key and one small bundle."""
    home = tmp_path_factory.mktemp("hub")
    assert run(home, "init", passphrase="Living Heritage").returncode == 0
    return home


def assert_one_line_error(result: Completed, status: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == status, (result.returncode, err)
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_executable_is_installed() -> None:
    assert CRAFTNET.exists(), "run `make test`, which installs the package into .venv"


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (["add", "/no/such/lamp.stl"], 2, "does not exist"),
        (["cat", "not-a-cid"], 2, "CID"),
        (["cat", GOOD_CID], 1, "not"),
        (["show", "bafy!!"], 2, "CID"),
        (["show", GOOD_CID], 1, "not in this hub"),
        (["provenance", "QmNotACidV1"], 2, "CID"),
        (["export", "out.car", "zzz"], 2, "CID"),
        (["export", "/no/such/dir/out.car", GOOD_CID], 1, "does not exist"),
        (["export", "out.car", GOOD_CID], 1, "not in this archive"),
        (["import", "/no/such/bundle.car"], 2, "does not exist"),
        (["publish", "recipe"], 2, "recipe"),
        (["publish", "design", "--from", "/no/such.toml"], 2, "does not exist"),
        (["ls", "--type", "NOT_A_TYPE"], 1, "slug"),
        (["ls", "--limit", "many"], 2, "many"),
        (["frobnicate"], 2, "frobnicate"),
    ],
)
def test_hostile_arguments(hub: Path, args: list[str], status: int, needle: str) -> None:
    err = assert_one_line_error(run(hub, *args, passphrase="Living Heritage"), status)
    assert needle in err


def test_bad_toml(hub: Path, tmp_path: Path) -> None:
    bad = tmp_path / "design.toml"
    bad.write_text("title = [unclosed\n")
    err = assert_one_line_error(
        run(hub, "publish", "design", "--from", str(bad), passphrase="Living Heritage"), 1
    )
    assert "not valid TOML" in err


def test_wrong_passphrase(hub: Path) -> None:
    result = run(hub, "publish", "collection", "--title", "Showcase", passphrase="wrong")
    assert "passphrase" in assert_one_line_error(result, 1)


def test_no_passphrase_and_no_terminal(hub: Path) -> None:
    result = run(hub, "publish", "collection", "--title", "Showcase")
    assert "CRAFTNET_PASSPHRASE" in assert_one_line_error(result, 1)


@pytest.mark.slow
def test_corrupted_car(hub: Path, tmp_path: Path) -> None:
    published = run(
        hub, "publish", "collection", "--title", "Adopt-a-Workshop", passphrase="Living Heritage"
    )
    assert published.returncode == 0, published.stderr
    bundle = tmp_path / "stick.car"
    exported = run(hub, "export", str(bundle))
    assert exported.returncode == 0, exported.stderr
    raw = bytearray(bundle.read_bytes())
    raw[-3] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    err = assert_one_line_error(run(hub, "import", str(bundle)), 1)
    assert "block #" in err and "hash" in err
    bundle.write_bytes(b"this is not a CAR file at all")
    assert_one_line_error(run(hub, "import", str(bundle)), 1)


@pytest.mark.parametrize(
    "args", [["ls"], ["id"], ["id", "rotate"], ["verify"], ["gc"], ["show", GOOD_CID]]
)
def test_not_initialised(tmp_path: Path, args: list[str]) -> None:
    err = assert_one_line_error(run(tmp_path / "nowhere", *args), 1)
    assert "craftnet init" in err


def test_init_on_a_file(tmp_path: Path) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("Rustic Futurism")
    err = assert_one_line_error(run(home, "init", "--no-passphrase"), 2)
    assert str(home) in err


def test_init_without_a_passphrase_source(tmp_path: Path) -> None:
    err = assert_one_line_error(run(tmp_path / "hub", "init"), 1)
    assert "--no-passphrase" in err


def test_cat_is_binary_safe(hub: Path, tmp_path: Path) -> None:
    design = tmp_path / "part.gcode"
    payload = bytes(range(256)) * 1000 + b"\r\n\x00\xff"
    design.write_bytes(payload)
    added = run(hub, "--json", "add", str(design))
    assert added.returncode == 0, added.stderr
    cid = json.loads(added.stdout)[0]["cid"]
    out = run(hub, "cat", cid)
    assert out.returncode == 0 and out.stdout == payload


def test_python_dash_m_works(hub: Path) -> None:
    env = {**os.environ, "CRAFTNET_HOME": str(hub)}
    result = subprocess.run(
        [sys.executable, "-m", "craftnet", "id"], env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith(b"did:key:z6Mk")
