"""docs/lab.md documents every scenario option, step and bundled scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.node.lab.report import INVARIANTS
from craftnet.node.lab.scenario import STEPS, bundled, steps_markdown

DOC = (Path(__file__).parents[3] / "docs" / "lab.md").read_text(encoding="utf-8")


def test_the_reference_tables_are_the_ones_the_code_prints() -> None:
    assert steps_markdown() in DOC, "regenerate with craftnet.node.lab.scenario.steps_markdown()"


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_has_a_docstring(step: str) -> None:
    assert (STEPS[step].__doc__ or "").strip()


@pytest.mark.parametrize("name", sorted(bundled()))
def test_every_bundled_scenario_is_described(name: str) -> None:
    assert f"`{name}.toml`" in DOC


@pytest.mark.parametrize("invariant", INVARIANTS)
def test_every_invariant_is_explained(invariant: str) -> None:
    assert f"| `{invariant}` |" in DOC
