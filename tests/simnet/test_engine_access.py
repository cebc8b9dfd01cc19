"""simnet reads the engines it drives through their public accessors only: the engine's
scoring table (``engine.scores``) is the engine's own, so that what the simulator
measures is what the engine's API says, whatever the table becomes."""

from __future__ import annotations

import ast
from pathlib import Path

SIMNET = Path(__file__).resolve().parents[2] / "simnet"


def test_simnet_never_reads_an_engines_scores_table() -> None:
    found = []
    for path in sorted(SIMNET.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "scores"
                and "engine" in ast.unparse(node.value)
            ):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "use SyncEngine.standing(): " + "; ".join(found)
