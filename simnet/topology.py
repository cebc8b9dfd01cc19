"""Topologies: which hubs keep a link to which, and who dials.

Built with networkx from the scenario's ``[topology]`` and the hubs' regions, seeded
from the run's seed. Every edge gets a dialler at random, so every hub both dials and
is dialled (the dialler starts reconciles, as in the engine).
"""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx  # type: ignore[import-untyped]

from craftnet.simnet.scenario import ScenarioError, TopologySpec


def assign_regions(n: int, shares: dict[str, float], rng: random.Random) -> list[int]:
    """Region index of each hub: shares rounded to whole hubs, in shuffled order."""
    names = list(shares)
    total = sum(shares.values())
    counts = [int(n * shares[name] / total) for name in names]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    out = [r for r, count in enumerate(counts) for _ in range(count)]
    rng.shuffle(out)
    return out


def build(spec: TopologySpec, n: int, regions: list[int], rng: random.Random) -> nx.Graph:
    """The topology graph on nodes 0..n-1."""
    seed = rng.randrange(2**32)
    if spec.kind == "random_regular":
        graph = nx.random_regular_graph(spec.degree, n, seed=seed)
    elif spec.kind == "small_world":
        graph = nx.connected_watts_strogatz_graph(n, spec.degree, spec.rewire_p, seed=seed)
    elif spec.kind == "geographic":
        graph = _geographic(spec, n, regions, rng)
    else:
        graph = read_file(spec.path, spec.format, n)
    return graph


def _geographic(spec: TopologySpec, n: int, regions: list[int], rng: random.Random) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    members: dict[int, list[int]] = {}
    for hub, region in enumerate(regions):
        members.setdefault(region, []).append(hub)
    for hubs in members.values():
        k = min(spec.degree, len(hubs) - 1)
        if k <= 0:
            continue
        if k * len(hubs) % 2:
            k -= 1
        if k <= 0:
            continue
        inner = nx.random_regular_graph(k, len(hubs), seed=rng.randrange(2**32))
        graph.add_edges_from((hubs[a], hubs[b]) for a, b in inner.edges())
    keys = sorted(members)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            for _ in range(spec.bridges):
                graph.add_edge(rng.choice(members[a]), rng.choice(members[b]))
    return graph


def read_file(path: str, fmt: str, n: int) -> nx.Graph:
    """An edge list or GraphML file; its nodes are mapped to hubs 0..n-1 in sorted order."""
    p = Path(path)
    if fmt == "auto":
        fmt = "graphml" if p.suffix.lower() in (".graphml", ".xml") else "edgelist"
    try:
        # Directed, so that a file can say who dials: the first hub of an edge dials.
        graph = (
            nx.read_graphml(p, force_multigraph=False)
            if fmt == "graphml"
            else nx.read_edgelist(p, create_using=nx.DiGraph)
        )
    except (OSError, nx.NetworkXError, ValueError) as exc:
        raise ScenarioError(f"cannot read topology {path}: {exc}") from exc
    nodes = sorted(graph.nodes(), key=lambda v: (len(str(v)), str(v)))
    if len(nodes) != n:
        raise ScenarioError(
            f"topology {path} has {len(nodes)} hubs but the scenario says hubs = {n}"
        )
    index = {v: i for i, v in enumerate(nodes)}
    out: nx.Graph = nx.DiGraph() if graph.is_directed() else nx.Graph()
    out.add_nodes_from(range(n))
    out.add_edges_from((index[a], index[b]) for a, b in graph.edges() if a != b)
    return out


def oriented(graph: nx.Graph, rng: random.Random) -> list[tuple[int, int]]:
    """The edges as ``(dialler, listener)`` in a stable order.

    A directed graph (an edge list or a directed GraphML file) names the dialler first;
    otherwise each edge's dialler is drawn at random.
    """
    if graph.is_directed():
        seen: set[tuple[int, int]] = set()
        out = []
        for a, b in sorted(graph.edges()):
            if (b, a) not in seen and a != b:
                seen.add((a, b))
                out.append((a, b))
        return out
    edges = sorted((min(a, b), max(a, b)) for a, b in graph.edges())
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in edges]
