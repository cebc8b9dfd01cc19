"""Scenario files: every shipped example parses; mistakes are refused naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.simnet.scenario import ScenarioError, find_line, load, parse

SCENARIOS = sorted((Path(__file__).parents[2] / "simnet" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_parse(path: Path) -> None:
    scenario = load(path)
    assert scenario.hubs >= 2 and scenario.name


def test_defaults_fill_what_the_file_leaves_out() -> None:
    s = parse("hubs = 12\n[topology]\ndegree = 4\n")
    assert s.hubs == 12 and s.topology.degree == 4 and s.topology.kind == "random_regular"
    assert s.network.gossip and s.verify == "real" and s.partitions == []


BAD = [
    # (file text, the line the message must name, words it must contain)
    ('name = "x"\nhubs = "ten"\n', 2, "hubs: must be an integer, got a string"),
    ("hubs = 10\n\n[topology]\ndegre = 4\n", 4, "topology.degre: unknown option 'degre'"),
    ('hubs = 10\ncolour = "red"\n', 2, "unknown option 'colour'"),
    ("hubs = 1\n", 1, "hubs: 1 is below the minimum 2"),
    ("[network]\nloss = 1.5\n", 2, "network.loss: 1.5 is above the maximum 0.99"),
    ('[network]\ngossip = "yes"\n', 2, "network.gossip: must be true or false"),
    ('[topology]\nkind = "hypercube"\n', 2, "'hypercube' is not one of"),
    ("[engine]\nreconcile_interval_s = 0\n", 2, "must be greater than 0"),
    (
        '[[adversaries]]\nkind = "drop"\n\n[[adversaries]]\nkind = "spam"\ncount = 0\n',
        6,
        "adversaries[1].count: 0 is below the minimum 1",
    ),
    (
        "hubs = 10\n[topology]\ndegree = 4\n[[partitions]]\nstart_s = 50\nheal_s = 20\n",
        6,
        "partitions[0].heal_s: heals at 20 s, not after it opens at 50 s",
    ),
    (
        "[regions.urban]\nshare = 0.5\n[latency.matrix_ms]\nurban = { rural = 80 }\n",
        4,
        "unknown region 'rural'",
    ),
    ("hubs = 9\n[topology]\ndegree = 3\n", 3, "no random regular graph of 9 hubs"),
    ("[workload]\nbursts = 3\n", 2, "workload.bursts: must be an array of tables"),
    ('[churn]\nshare = 0.5\ndist = "pareto"\nshape = 0.8\n', 4, "tail index"),
    ('hubs = 600\nstore = "lmdb"\n', 2, "store: an LMDB environment per hub is for small runs"),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD)
def test_bad_scenarios_are_refused_naming_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse(text, "fair.toml")
    message = str(info.value)
    assert message.startswith(f"fair.toml:{line}: "), message
    assert words in message


def test_broken_toml_is_refused_with_tomllibs_position() -> None:
    with pytest.raises(ScenarioError, match=r"fair.toml: not valid TOML: .*line 2"):
        parse("hubs = 10\nname = \n", "fair.toml")


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load(tmp_path / "nope.toml")


def test_find_line_knows_tables_arrays_and_inline_tables() -> None:
    text = (
        "hubs = 5\n"
        "[latency.matrix_ms]\n"
        "urban = { urban = 15, rural = 90 }\n"
        "[[workload.bursts]]\n"
        "factor = 2\n"
        "[[workload.bursts]]\n"
        "factor = 3\n"
    )
    assert find_line(text, ("hubs",)) == 1
    assert find_line(text, ("latency", "matrix_ms", "urban", "rural")) == 3
    assert find_line(text, ("workload", "bursts", 1, "factor")) == 7
    assert find_line(text, ("workload", "bursts", 0)) == 4


def test_overrides_replace_values_and_are_checked() -> None:
    s = parse("hubs = 10\n[topology]\ndegree = 4\n", "x.toml", {"network.loss": 0.1})
    assert s.network.loss == 0.1
    with pytest.raises(ScenarioError, match=r"network\.loss"):
        parse("hubs = 10\n[topology]\ndegree = 4\n", "x.toml", {"network.loss": 3})
