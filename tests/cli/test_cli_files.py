"""``add``, ``cat``, ``export``, ``import``, ``verify`` and ``gc`` through the CLI, in process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

Invoke = Callable[..., Result]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_add_cat_round_trip(hub: Invoke, tmp_path: Path) -> None:
    svg = tmp_path / "inlay.svg"
    svg.write_bytes(b"<svg>Neo-Vernacular inlay</svg>\n")
    photo = tmp_path / "loom.jpg"
    photo.write_bytes(os.urandom(700_000))
    added = as_json(hub("--json", "add", str(svg), str(photo)))
    assert [item["size"] for item in added] == [svg.stat().st_size, 700_000]
    assert hub("cat", added[1]["cid"]).stdout_bytes == photo.read_bytes()
    assert hub("add", "-q", str(svg)).stdout.strip() == added[0]["cid"]  # same bytes, same CID


def test_cat_of_a_record_is_an_error(hub: Invoke) -> None:
    record = hub("publish", "collection", "--title", "Showcase").stdout.strip()
    result = hub("cat", record)
    assert result.exit_code == 1 and "not a file node" in result.stderr


def test_export_import_verify_gc(hub: Invoke, invoke: Invoke, tmp_path: Path) -> None:
    stl = tmp_path / "whorl.stl"
    stl.write_bytes(os.urandom(400_000))
    file_cid = hub("add", "-q", str(stl)).stdout.strip()
    design = hub(
        "publish", "design", "--title", "Spindle whorl", "--file", file_cid,
        "--licence", "CC-BY-4.0",
    ).stdout.strip()
    bundle = tmp_path / "stick" / "whorl.car"
    bundle.parent.mkdir()
    exported = as_json(hub("--json", "export", str(bundle), design))
    assert exported["records"] == 1 and exported["roots"] == [design]
    assert not bundle.with_name("whorl.car.partial").exists()

    other = tmp_path / "other-hub"
    assert invoke("--home", str(other), "init", "--no-passphrase").exit_code == 0
    imported = as_json(invoke("--home", str(other), "--json", "import", str(bundle)))
    assert imported["new_records"] == 1
    assert invoke("--home", str(other), "cat", file_cid).stdout_bytes == stl.read_bytes()
    checked = as_json(invoke("--home", str(other), "--json", "verify"))
    assert checked["ok"] is True and checked["records"] == 1
    again = as_json(invoke("--home", str(other), "--json", "import", str(bundle)))
    assert again["new_records"] == 0 and again["new_blocks"] == 0
    swept = as_json(invoke("--home", str(other), "--json", "gc"))
    assert swept["removed"] == 0  # everything is referenced by the record
    assert "removed 0 of" in invoke("--home", str(other), "gc").stdout


def test_import_refuses_a_damaged_bundle_and_changes_nothing(
    hub: Invoke, tmp_path: Path
) -> None:
    hub("publish", "collection", "--title", "Adopt-a-Workshop")
    bundle = tmp_path / "archive.car"
    assert hub("export", str(bundle)).exit_code == 0
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    bundle.write_bytes(bytes(raw))
    before = as_json(hub("--json", "ls"))
    result = hub("import", str(bundle))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: block #") and result.stderr.count("\n") == 1
    assert as_json(hub("--json", "ls")) == before


def test_verify_exits_1_on_problems(hub: Invoke, home: Path) -> None:
    from craftnet.archive.cid import Cid
    from craftnet.archive.lmdb_store import LmdbStore

    cid = hub("publish", "collection", "--title", "Showcase").stdout.strip()
    store = LmdbStore(home / "store")
    try:  # damage the record's block behind the archive's back
        store.transact(lambda txn: txn.put("blocks", Cid.parse(cid).bytes, b"\xa0"))
    finally:
        store.close()
    result = hub("verify")
    assert result.exit_code == 1
    assert "problem" in result.stdout and cid in result.stdout
    assert as_json_failure(hub("--json", "verify"))["ok"] is False


def as_json_failure(result: Result) -> Any:
    assert result.exit_code == 1
    return json.loads(result.stdout)
