"""docs/simnet.md documents every scenario option, example and output (as datasette does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.simnet.scenario import option_paths, options_markdown

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "simnet.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [p for p, _ in option_paths()])
def test_every_option_is_documented(path: str) -> None:
    assert f"`{path}`" in DOC, f"scenario option {path} is missing from docs/simnet.md"


def test_the_options_table_is_the_one_the_code_prints() -> None:
    assert options_markdown() in DOC, "regenerate the table with options_markdown()"


def test_every_option_has_help_text() -> None:
    assert all(doc for _, doc in option_paths())


@pytest.mark.parametrize(
    "path", sorted((ROOT / "simnet" / "scenarios").glob("*.toml")), ids=lambda p: p.name
)
def test_every_example_scenario_is_mentioned(path: Path) -> None:
    assert path.name in DOC


@pytest.mark.parametrize(
    "name",
    [
        "metrics.jsonl",
        "summary.json",
        "report.txt",
        "delivery_cdf.png",
        "holders.png",
        "bytes_per_hub.png",
        "convergence.png",
        "adversary_scores.png",
        "sweep.jsonl",
        "table.md",
        "sweep.png",
    ],
)
def test_every_output_is_explained(name: str) -> None:
    assert f"`{name}`" in DOC


def test_every_image_the_docs_show_exists() -> None:
    import re

    for image in re.findall(r"\]\((img/simnet/[^)]+)\)", DOC):
        assert (ROOT / "docs" / image).exists(), image
