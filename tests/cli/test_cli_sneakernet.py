"""Sneakernet through the real ``craftnet`` command: have-files, delta bundles, parts,
and an import killed with SIGKILL that continues when run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

CRAFTNET = Path(sys.executable).with_name("craftnet")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAFTNET_")}
    env["CRAFTNET_HOME"] = str(home)
    return subprocess.run(
        [str(CRAFTNET), *args], env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok(home: Path, *args: str) -> Any:
    result = run(home, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def new_hub(path: Path) -> Path:
    ok(path, "init", "--no-passphrase")
    return path


def publish(home: Path, title: str) -> str:
    got = ok(home, "publish", "technique", "--title", title, "--step", "Warp the loom",
             "--licence", "CC-BY-4.0")
    return str(got["cid"])


def did(home: Path) -> str:
    return str(ok(home, "id")["did"])


def records(home: Path) -> set[str]:
    listed = ok(home, "ls", "--limit", "1000")
    assert isinstance(listed, list)
    return {row["cid"] for row in listed}


def test_a_have_file_and_one_bundle_each_way_converge(tmp_path: Path) -> None:
    maker = new_hub(tmp_path / "makerspace")
    rural = new_hub(tmp_path / "rural")
    for n in range(3):
        publish(maker, f"Rustic Futurism chair {n}")
    publish(rural, "Highland tweed finishing")
    have = ok(rural, "have", str(tmp_path / "rural.have"))
    assert int(have["bytes"]) < 64 * 1024
    out = ok(maker, "export", "--for-have", str(tmp_path / "rural.have"),
             str(tmp_path / "to-rural.car"))
    assert out["records"] == 3 and out["difference"]["exact"]  # type: ignore[index]
    got = ok(rural, "import", str(tmp_path / "to-rural.car"))
    assert got["new_records"] == 3 and got["still_missing"] == 0
    back = ok(rural, "export", "--for", did(maker), str(tmp_path / "to-maker.car"))
    assert back["records"] == 1
    got = ok(maker, "import", str(tmp_path / "to-maker.car"))
    assert got["new_records"] == 1 and got["still_missing"] == 0
    assert records(maker) == records(rural) and len(records(maker)) == 4
    again = ok(maker, "export", "--for", did(rural), "--dry-run", str(tmp_path / "x.car"))
    assert again["records"] == 0 and not (tmp_path / "x.car").exists()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["export", "--max-size", "lots", "o.car"], 2, "not a size"),
        (["export", "--max-size", "1M", "o.car"], 1, "at least 4 MiB"),
        (["export", "--for", "did:key:z6Mkx", "--for-have", "h", "o.car"], 2, "h"),
        (["export", "--for-have", "junk.have", "o.car"], 1, "not a have-summary"),
        (["import", "junk.have"], 1, "truncated"),
    ],
)
def test_hostile_arguments_and_files_fail_in_one_line(
    tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    hub = new_hub(tmp_path / "hub")
    (tmp_path / "junk.have").write_bytes(b"\xff\xfe not cbor")
    args = [str(tmp_path / a) if a.endswith((".car", ".have")) else a for a in args]
    result = run(hub, *args)
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_export_for_a_hub_we_know_nothing_of_sends_everything(tmp_path: Path) -> None:
    hub = new_hub(tmp_path / "hub")
    publish(hub, "Ikat dyeing")
    result = run(hub, "--json", "export", "--for", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKL"
                 "GpbnnEGta2doK", str(tmp_path / "all.car"))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["records"] == 1 and answer["known"] is False


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from craftnet.archive.lmdb_store import LmdbStore
    from craftnet.archive.receive import receive_bundle

    home, bundle, phase, at = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

    def progress(name, done):
        if name == phase and done >= at:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9, mid-import

    store = LmdbStore(home / "store")
    with open(bundle, "rb") as stream:
        receive_bundle(store, stream, home, now=1, on_progress=progress,
                       checkpoint_bytes=1 << 20)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["check", "checked"])
def test_an_import_killed_with_sigkill_continues_when_run_again(
    tmp_path: Path, phase: str
) -> None:
    maker = new_hub(tmp_path / "makerspace")
    design = tmp_path / "loom.step"
    design.write_bytes(os.urandom(12 * 1024 * 1024))
    added = ok(maker, "add", str(design))
    assert isinstance(added, list)
    node = added[0]["cid"]
    for n in range(4):
        publish(maker, f"Loom part {n}")
    bundle = tmp_path / "big.car"
    ok(maker, "export", str(bundle))
    rural = new_hub(tmp_path / "rural")
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(rural), str(bundle), phase,
         str(6 * 1024 * 1024)],
        capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert records(rural) == set()  # nothing is visible from a half-checked bundle
    assert any((rural / "imports").iterdir())

    got = ok(rural, "import", str(bundle))
    # It continued from its last checkpoint (every MiB) rather than starting again.
    if phase == "check":
        assert 4 * 1024 * 1024 <= int(got["resumed_at"]) < bundle.stat().st_size
    else:
        assert int(got["resumed_at"]) == bundle.stat().st_size
    assert got["new_records"] == 4
    assert ok(rural, "verify")["ok"]
    assert not any((rural / "imports").iterdir())
    copy = tmp_path / "copy.step"
    result = subprocess.run([str(CRAFTNET), "--home", str(rural), "cat", str(node)],
                            stdout=copy.open("wb"), timeout=60)
    assert result.returncode == 0 and copy.read_bytes() == design.read_bytes()
