"""docs/threat-model.md names a test for every attack: each named test file and test exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "threat-model.md"
# `tests/x/test_y.py::test_z`, `tests/x/test_y.py`, and `::test_w` continuing the last file.
_REF = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def references() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    current = ""
    for match in _REF.finditer(DOC.read_text(encoding="utf-8")):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = path or current
        found.append((current, name))
    return found


def test_every_test_the_threat_model_names_exists() -> None:
    refs = references()
    assert len(refs) > 30
    missing = []
    for path, name in refs:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name is not None and not re.search(
            rf"^(?:async )?def {name}\(", file.read_text(encoding="utf-8"), re.MULTILINE
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/threat-model.md names tests that do not exist: {missing}"
