"""How the command line fails: exit statuses as documented, JSON errors, options anywhere.

docs/cli.md's "Exit status and errors" table is compared with ``EXIT_CODES``, and every
status in it is produced here by a real command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from craftnet.archive import index
from craftnet.cli.main import EXIT_CODES, error_code, hoist_global_options
from craftnet.errors import CraftnetError

Invoke = Callable[..., Result]
DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
ABSENT = "bafyr4ih7n4wpo5ilbuzilc3vr3y426lrazhvh2a6yyx7kyfjkn4slgokne"


def documented_statuses() -> dict[int, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Exit status and errors") :]
    section = section[: section.index("\n## ", 1)]
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    }


def test_the_documented_exit_statuses_are_the_code_s() -> None:
    assert set(documented_statuses()) == set(EXIT_CODES)


def json_error(result: Result) -> dict[str, object]:
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert set(error) == {"code", "message", "exit"}
    assert error["exit"] == result.exit_code
    assert "\n" not in str(error["message"])
    return dict(error)


def test_a_bad_derived_from_cid_is_a_usage_error(hub: Invoke) -> None:
    # It exited 1 while the docs said 2: now the option parses CIDs itself.
    result = hub(
        "publish", "design", "--title", "Lamp", "--licence", "CC-BY-4.0",
        "--derived-from", "bafy-not-a-cid",
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '--derived-from'")
    error = json_error(hub(
        "--json", "publish", "design", "--title", "Lamp", "--licence", "CC-BY-4.0",
        "--derived-from", "bafy-not-a-cid",
    ))
    assert error["code"] == "usage" and error["exit"] == 2


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (("ls",), 0, None),
        (("show", ABSENT), 1, "not-found"),
        (("import", "/nonexistent/lamps.car"), 2, "usage"),
        (("cat", ABSENT), 1, "not-found"),
        (("show", "bafy"), 2, "usage"),
        (("frobnicate",), 2, "usage"),
    ],
)
def test_every_failure_is_one_json_document_on_stderr(
    hub: Invoke, args: tuple[str, ...], status: int, code: str | None
) -> None:
    result = hub("--json", *args)
    assert result.exit_code == status, result.stderr
    if code is None:
        json.loads(result.stdout)
        assert result.stderr == ""
    else:
        assert json_error(result)["code"] == code


def test_an_uninitialised_home_says_so_in_json(invoke: Invoke) -> None:
    error = json_error(invoke("--json", "ls"))
    assert error["code"] == "not-initialised" and "craftnet init" in str(error["message"])


def test_interrupted_is_130(hub: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(index, "list_records", interrupted)
    assert hub("ls").exit_code == 130
    assert json_error(hub("ls", "--json")) == {
        "code": "interrupted", "message": "interrupted", "exit": 130
    }


def test_an_unexpected_error_is_json_too(hub: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the loom jammed")

    monkeypatch.setattr(index, "list_records", broken)
    error = json_error(hub("ls", "--json"))
    assert error["code"] == "unexpected" and "the loom jammed" in str(error["message"])


def test_global_options_after_the_command(hub: Invoke, tmp_path: Path) -> None:
    published = hub("publish", "technique", "--title", "Loom weaving", "--step", "Warp",
                    "--licence", "CC-BY-4.0")
    cid = published.stdout.strip()
    shown = hub("show", cid, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["cid"] == cid
    other = tmp_path / "other-hub"
    assert hub("init", "--no-passphrase", "--home", str(other)).exit_code == 0
    listed = hub("ls", f"--home={other}", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_doc_show_accepts_json_after_the_command(hub: Invoke) -> None:
    created = hub("doc", "new", "technique", "--title", "Raku glaze firing", "--json")
    assert created.exit_code == 0, created.stderr
    doc = json.loads(created.stdout)["cid"]
    shown = hub("doc", "show", doc, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["cid"] == doc


def test_hoisting_stops_at_double_dash() -> None:
    assert hoist_global_options(["show", "X", "--json", "--home", "H", "--", "--json"]) == [
        "--json", "--home", "H", "show", "X", "--", "--json"
    ]
    assert hoist_global_options(["ls", "--home"]) == ["ls", "--home"]  # click says what's wrong


def test_error_codes_are_kebab_case_kinds() -> None:
    from craftnet.archive.errors import BundleError, NotFound
    from craftnet.identity.errors import MalformedDid, WrongPassphrase

    assert error_code(NotFound("x")) == "not-found"
    assert error_code(BundleError("x")) == "bundle"
    assert error_code(MalformedDid("x")) == "malformed-did"
    assert error_code(WrongPassphrase("x")) == "wrong-passphrase"
    assert error_code(CraftnetError("x")) == "error"
