"""Topologies from generators and from files."""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import pytest

from craftnet.simnet import topology
from craftnet.simnet.scenario import ScenarioError, TopologySpec, load


def test_generated_topologies_have_the_asked_shape() -> None:
    rng = random.Random(1)
    g = topology.build(TopologySpec(kind="random_regular", degree=4), 20, [0] * 20, rng)
    assert all(d == 4 for _, d in g.degree())
    regions = topology.assign_regions(30, {"urban": 2.0, "rural": 1.0}, rng)
    assert regions.count(0) == 20 and regions.count(1) == 10
    geo = topology.build(TopologySpec(kind="geographic", degree=4, bridges=2), 30, regions, rng)
    crossing = [e for e in geo.edges() if regions[e[0]] != regions[e[1]]]
    assert 1 <= len(crossing) <= 2 and nx.is_connected(geo)


def test_edge_list_and_graphml_files(tmp_path: Path) -> None:
    ring = nx.cycle_graph([f"hub{i}" for i in range(6)])
    nx.write_edgelist(ring, tmp_path / "ring.edges", data=False)
    nx.write_graphml(ring, tmp_path / "ring.graphml")
    for name in ("ring.edges", "ring.graphml"):
        (tmp_path / f"{name}.toml").write_text(
            f'hubs = 6\n[topology]\nkind = "file"\npath = "{name}"\n', encoding="utf-8"
        )
        spec = load(tmp_path / f"{name}.toml")
        g = topology.build(spec.topology, 6, [0] * 6, random.Random(1))
        assert sorted(d for _, d in g.degree()) == [2] * 6


def test_a_file_with_the_wrong_number_of_hubs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.edges").write_text("a b\nb c\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="has 3 hubs but the scenario says hubs = 5"):
        topology.read_file(str(tmp_path / "t.edges"), "auto", 5)
