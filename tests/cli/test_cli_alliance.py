"""``craftnet alliance create / invite / join / revoke / show`` and ``craftnet sync``
between two real hubs (two homes, libp2p on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from craftnet.cli.main import cli


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def init(home: Path) -> str:
    code, _, err = run(home, "init", "--no-passphrase")
    assert code == 0, err
    code, out, err = run(home, "--json", "id")
    assert code == 0, err
    return str(json.loads(out)["did"])


def test_found_invite_join_show_and_revoke(tmp_path: Path) -> None:
    founder, newcomer = tmp_path / "lisbon", tmp_path / "oaxaca"
    init(founder)
    newcomer_did = init(newcomer)

    code, out, err = run(founder, "--json", "alliance", "create",
                         "Global Micro-manufacturing Alliance", "--max-cert-days", "400")
    assert code == 0, err
    alliance = json.loads(out)["alliance"]
    assert f'alliance = "{alliance}"' in (founder / "network.toml").read_text()

    code, token, err = run(founder, "alliance", "invite", newcomer_did, "--days", "90",
                           "--name", "Oaxaca makerspace")
    assert code == 0, err
    code, out, err = run(newcomer, "alliance", "join", token.strip())
    assert code == 0, err
    assert "joined 'Global Micro-manufacturing Alliance'" in out

    code, out, err = run(newcomer, "--json", "alliance", "show")
    assert code == 0, err
    shown = json.loads(out)
    assert newcomer_did in [m["did"] for m in shown["members"]]

    code, out, err = run(founder, "alliance", "revoke", newcomer_did, "--reason", "closed")
    assert code == 0, err
    code, out, err = run(founder, "--json", "alliance", "show")
    assert newcomer_did not in [m["did"] for m in json.loads(out)["members"]]


def test_invite_with_an_organisation_shows_it_in_the_member_list(tmp_path: Path) -> None:
    founder, newcomer = tmp_path / "lisbon", tmp_path / "oaxaca"
    init(founder)
    newcomer_did = init(newcomer)
    code, _, err = run(founder, "alliance", "create", "Global Micro-manufacturing Alliance")
    assert code == 0, err
    code, out, err = run(founder, "--json", "alliance", "invite", newcomer_did,
                         "--name", "Oaxaca makerspace", "--organisation", "Lisbon Makers Co-op")
    assert code == 0, err
    invited = json.loads(out)
    assert invited["organisation"] == "Lisbon Makers Co-op"
    code, _, err = run(newcomer, "alliance", "join", invited["token"])
    assert code == 0, err
    for home in (founder, newcomer):
        code, out, err = run(home, "--json", "alliance", "show")
        assert code == 0, err
        member = next(m for m in json.loads(out)["members"] if m["did"] == newcomer_did)
        assert member["organisation"] == "Lisbon Makers Co-op"
        assert member["name"] == "Oaxaca makerspace"
        code, out, err = run(home, "alliance", "show")
        line = next(ln for ln in out.splitlines() if newcomer_did in ln)
        assert line.endswith("Lisbon Makers Co-op  Oaxaca makerspace")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "needs a name"),
        ("x" * 201, "at most 200 characters"),
        ("Evil\u202eCorp", "U+202E"),
        ("Two\nLines", "U+000A"),
        ("\x1b]0;pwned\x07", "U+001B"),
        ("***", "at least one letter or digit"),
    ],
)
def test_hostile_organisations_are_usage_errors_in_one_line(
    tmp_path: Path, value: str, words: str
) -> None:
    home = tmp_path / "hub"
    init(home)
    code, _, err = run(home, "alliance", "create", "Global Micro-manufacturing Alliance")
    assert code == 0, err
    result = subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(home), "alliance", "invite",
         "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH", "--organisation", value],
        capture_output=True, text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "--organisation" in result.stderr and words in result.stderr
    code, out, _ = run(home, "--json", "ls")
    assert json.loads(out) == [] or all(r["type"] != "membership" for r in json.loads(out))


def test_mistakes_get_one_line_answers(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init(home)
    result = subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(home), "alliance", "invite",
         "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "belongs to no alliance" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "craftnet", "--home", str(home), "alliance", "join", "garbage"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "craftnet-invite:" in result.stderr


@pytest.mark.slow
def test_sync_fetches_once_from_a_running_hub(tmp_path: Path) -> None:
    serving, syncing = tmp_path / "serving", tmp_path / "syncing"
    init(serving)
    did = init(syncing)
    code, _, err = run(serving, "alliance", "create", "Maker's Fair hubs")
    assert code == 0, err
    _, token, _ = run(serving, "alliance", "invite", did)
    assert run(syncing, "alliance", "join", token.strip())[0] == 0
    code, out, err = run(serving, "--json", "publish", "technique", "--title", "Adobe bricks",
                         "--step", "mix clay and straw", "--licence", "CC-BY-4.0")
    assert code == 0, err
    cid = json.loads(out)["cid"]

    proc = subprocess.Popen(
        [sys.executable, "-m", "craftnet.node.hub", "--home", str(serving), "--no-mdns",
         "--listen", "/ip4/127.0.0.1/tcp/0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "CRAFTNET_PASSPHRASE": ""},
    )
    try:
        assert proc.stdout is not None
        addr = proc.stdout.readline().split()[1]
        code, out, err = run(syncing, "--json", "sync", addr, "--idle", "10")
        assert code == 0, out + err
        report = json.loads(out)
        assert report["records_stored"] >= 1
        assert report["reconcile"]["we_lacked"] >= 1
        assert run(syncing, "show", cid)[0] == 0
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
