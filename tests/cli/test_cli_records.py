"""``craftnet init``, ``id``, ``publish``, ``show``, ``ls`` and ``provenance``, in process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

Invoke = Callable[..., Result]

LICENCE = "CC-BY-SA-4.0"


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def publish_design(hub: Invoke, title: str, *extra: str) -> str:
    result = hub("--json", "publish", "design", "--title", title, "--licence", LICENCE, *extra)
    return str(as_json(result)["cid"])


def test_init_creates_home_and_key(invoke: Invoke, home: Path) -> None:
    first = as_json(invoke("--json", "init", "--no-passphrase"))
    assert first["created"] is True and first["did"].startswith("did:key:z6Mk")
    assert (home / "store").is_dir() and (home / "keys" / "hub.key").is_file()
    again = as_json(invoke("--json", "init", "--no-passphrase"))
    assert again == {**first, "created": False}
    assert invoke("id").stdout.strip() == first["did"]


def test_init_with_a_passphrase_from_the_environment(invoke: Invoke) -> None:
    env = {"CRAFTNET_PASSPHRASE": "Intergenerational Making Cooperative"}
    assert invoke("init", env=env).exit_code == 0
    assert as_json(invoke("--json", "id"))["encrypted"] is True
    ok = invoke("publish", "collection", "--title", "Maker's Fair", env=env)
    assert ok.exit_code == 0, ok.stderr
    wrong = invoke(
        "publish", "collection", "--title", "x", env={"CRAFTNET_PASSPHRASE": "guess"}
    )
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("error: ") and wrong.stderr.count("\n") == 1
    assert "passphrase" in wrong.stderr


def test_commands_before_init_say_what_to_do(invoke: Invoke) -> None:
    result = invoke("ls")
    assert result.exit_code == 1
    assert "run 'craftnet init' first" in result.stderr


def test_publish_show_ls(hub: Invoke) -> None:
    technique = as_json(
        hub(
            "--json", "publish", "technique", "--title", "Loom weaving for beginners",
            "--step", "Warp the loom", "--step", "Weave plain weave", "--material", "wool",
            "--licence", "CC-BY-4.0",
        )
    )["cid"]
    design = publish_design(hub, "Rustic Futurism lamp", "--material", "oak")
    shown = as_json(hub("--json", "show", design))
    assert shown["type"] == "design"
    assert shown["body"] == {"title": "Rustic Futurism lamp", "licence": LICENCE,
                             "materials": ["oak"]}
    assert shown["verification"] == {"signature": "ok", "schema": "ok", "key": "ok"}
    human = hub("show", technique).stdout
    assert "Loom weaving for beginners" in human and "signature" in human
    listed = as_json(hub("--json", "ls"))
    assert [row["cid"] for row in listed] == [design, technique]  # newest first
    only = as_json(hub("--json", "ls", "--type", "technique"))
    assert [row["cid"] for row in only] == [technique]
    assert len(as_json(hub("--json", "ls", "--limit", "1"))) == 1
    table = hub("ls").stdout
    assert design in table and "Rustic Futurism lamp" in table


def test_publish_from_toml_and_json(hub: Invoke, tmp_path: Path) -> None:
    toml = tmp_path / "lamp.toml"
    toml.write_text('title = "Neo-Vernacular stool"\nlicence = "CC0-1.0"\nmaterials = ["ash"]\n')
    cid = as_json(hub("--json", "publish", "design", "--from", str(toml)))["cid"]
    assert as_json(hub("--json", "show", cid))["body"]["materials"] == ["ash"]
    data = tmp_path / "stool.json"
    data.write_text(json.dumps({"title": "Stool", "licence": "CC0-1.0"}))
    # A flag overrides the file.
    cid = as_json(
        hub("--json", "publish", "design", "--from", str(data), "--title", "Tall stool")
    )["cid"]
    assert as_json(hub("--json", "show", cid))["body"]["title"] == "Tall stool"


def test_provenance_shows_ancestors_descendants_and_warnings(hub: Invoke) -> None:
    parent = publish_design(hub, "Rustic Futurism lamp")
    published = as_json(
        hub(
            "--json", "publish", "design", "--title", "Lamp, remixed", "--licence",
            "CC-BY-NC-4.0", "--derived-from", parent,
        )
    )
    child = published["cid"]
    assert [w["code"] for w in published["warnings"]]  # told at once, not only on request
    human = hub("publish", "design", "--title", "Lamp, remixed again", "--licence",
                "CC-BY-NC-4.0", "--derived-from", parent)
    assert human.exit_code == 0 and human.stderr.startswith("licence problem: ")
    graph = as_json(hub("--json", "provenance", child))
    assert {e["parent"] for e in graph["edges"]} == {parent}
    assert graph["warnings"]  # a share-alike parent under a different licence
    tree = hub("provenance", parent).stdout
    assert "derivatives" in tree and "Lamp, remixed" in tree


def test_id_rotate_publishes_a_succession(hub: Invoke) -> None:
    old = hub("id").stdout.strip()
    before = publish_design(hub, "Made with the old key")
    rotated = as_json(hub("--json", "id", "rotate", "--reason", "new laptop"))
    assert rotated["old"] == old and rotated["new"] != old
    assert hub("id").stdout.strip() == rotated["new"]
    succession = as_json(hub("--json", "show", rotated["record"]))
    assert succession["type"] == "key-succession"
    assert succession["body"] == {"new": rotated["new"], "reason": "new laptop"}
    # Records signed before the rotation stay valid; new ones are signed by the new key.
    assert as_json(hub("--json", "show", before))["verification"]["key"] == "ok"
    after = publish_design(hub, "Made with the new key")
    assert as_json(hub("--json", "show", after))["author"] == rotated["new"]


def test_usage_errors_exit_2_in_one_line(hub: Invoke) -> None:
    for args in (
        ["show", "not-a-cid"],
        ["publish", "recipe"],
        ["ls", "--limit", "0"],
        ["--no-such-option"],
        ["publish", "attestation", "--kind", "bribe"],
    ):
        result = hub(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args


def test_errors_exit_1_in_one_line(hub: Invoke, tmp_path: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("title = 'unterminated\n")
    unknown = "bafyr4ihhevhfuc4q4cgr6rx7ojixw6j3eddonpmfsscjcwafagnz7owhyu"
    for args, needle in (
        (["publish", "design", "--from", str(bad_toml)], "TOML"),
        (["publish", "design", "--title", "No licence"], "licence"),
        (["publish", "design", "--title", "x", "--licence", "Made-Up-1.0"], "licence"),
        (["show", unknown], "not in this hub"),
        (["provenance", unknown], "not in this hub"),
        (["ls", "--type", "Not A Type"], "slug"),
    ):
        result = hub(*args)
        assert result.exit_code == 1, (args, result.stderr)
        assert result.stderr.startswith("error: "), args
        assert result.stderr.count("\n") == 1, args
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_wrong_links_are_refused_before_signing(hub: Invoke, tmp_path: Path) -> None:
    technique = as_json(hub(
        "--json", "publish", "technique", "--title", "Steam-bending oak strips",
        "--step", "Steam the strips", "--licence", LICENCE,
    ))["cid"]
    before = as_json(hub("--json", "ls"))
    absent = "bafyr4ihhevhfuc4q4cgr6rx7ojixw6j3eddonpmfsscjcwafagnz7owhyu"
    for args, needle in (
        (["publish", "design", "--title", "Lamp", "--licence", LICENCE, "--file", technique],
         f"files: {technique} is a technique record, not a file"),
        (["publish", "collection", "--title", "Maker's Fair 2026", "--item", technique,
          "--item", absent], f"items: {absent} is not in this archive"),
    ):
        result = hub("--json", *args)
        assert result.exit_code == 1, result.stderr
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "wrong-link" and needle in error["message"]
    assert as_json(hub("--json", "ls")) == before  # nothing was published


def test_a_parent_held_elsewhere_is_published_with_a_warning(hub: Invoke) -> None:
    absent = "bafyr4ihhevhfuc4q4cgr6rx7ojixw6j3eddonpmfsscjcwafagnz7owhyu"
    result = hub("--json", "publish", "design", "--title", "Neo-Vernacular table lamp",
                 "--licence", LICENCE, "--derived-from", absent)
    out = as_json(result)
    assert [w["field"] for w in out["warnings"] if "field" in w] == ["derived_from"]
    human = hub("publish", "design", "--title", "Another remix", "--licence", LICENCE,
                "--derived-from", absent)
    assert human.exit_code == 0
    assert f"link warning: derived_from: {absent} is not in this archive" in human.stderr
