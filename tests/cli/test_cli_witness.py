"""``craftnet witness`` and the witness line of ``craftnet show``, in process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

# Spelled out, as in test_cli_doc.py: `from conftest import ...` is ambiguous.
Invoke = Callable[..., Result]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_flush_show_verify_and_proofs_on_a_stick(hub: Invoke, invoke: Invoke,
                                                  tmp_path: Path) -> None:
    cid = hub("publish", "technique", "--title", "Raku firing", "--step", "Fire",
              "--licence", "CC-BY-4.0").stdout.strip()
    before = as_json(hub("--json", "show", cid))["witnessed"]
    assert isinstance(before, dict) and before["summary"] == "not witnessed yet"
    assert hub("witness", "verify", cid).exit_code == 1  # nothing checks out yet

    flushed = as_json(hub("--json", "witness", "flush"))
    assert flushed["records"] == 1 and len(flushed["batches"]) == 1
    assert as_json(hub("--json", "witness", "flush"))["records"] == 0
    shown = hub("show", cid).stdout
    assert "witnessed by 1 hub of 1 organisation, earliest" in shown

    stick = tmp_path / "raku.car"
    exported = as_json(hub("--json", "export", "--proofs", str(stick), cid))
    assert exported["records"] == 2  # the technique and the batch (without its leaves)
    far = tmp_path / "far"
    assert invoke("--home", str(far), "init", "--no-passphrase").exit_code == 0
    assert invoke("--home", str(far), "import", str(stick)).exit_code == 0
    checked = as_json(invoke("--home", str(far), "--json", "witness", "verify", cid))
    assert checked["hubs"] == 1 and checked["witnesses"][0]["ok"]


def test_proofs_need_chosen_records_and_a_bad_cid_is_a_usage_error(
    hub: Invoke, tmp_path: Path
) -> None:
    result = hub("export", "--proofs", str(tmp_path / "x.car"))
    assert result.exit_code == 2 and "--proofs goes with chosen CIDs" in result.stderr
    result = hub("witness", "verify", "not-a-cid")
    assert result.exit_code == 2
