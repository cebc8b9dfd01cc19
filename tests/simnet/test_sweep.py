"""Sweeps: over seeds and values, in local processes or on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from craftnet.simnet import sweep

TEXT = """
name = "sweep"
hubs = 16
max_time_s = 120
sample_interval_s = 5
[topology]
degree = 4
[workload]
records = 8
window_s = 10
"""


def test_sweep_on_a_dask_local_cluster_matches_a_local_run(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as cluster:
        rows = sweep.sweep(
            TEXT,
            "sweep.toml",
            [1, 2],
            "topology.degree",
            [3, 4],
            scheduler=cluster.scheduler_address,
        )
    assert [(r["value"], r["seed"]) for r in rows] == [(3, 1), (3, 2), (4, 1), (4, 2)]
    assert all(r["delivery_online"] == 1.0 for r in rows)
    local = sweep.sweep(TEXT, "sweep.toml", [2], "topology.degree", [4], workers=1)
    cluster_row = next(r for r in rows if r["value"] == 4 and r["seed"] == 2)
    # Same run wherever it ran, apart from the wall time.
    assert {k: v for k, v in local[0].items() if k != "wall_s"} == {
        k: v for k, v in cluster_row.items() if k != "wall_s"
    }
    table = sweep.write(rows, tmp_path, "full_max_s")
    assert table.splitlines()[2].startswith("| 3 | 2 |")
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    assert len((tmp_path / "sweep.jsonl").read_text().splitlines()) == 4


def test_sweep_in_worker_processes() -> None:
    rows = sweep.sweep(TEXT, "sweep.toml", [1, 2], workers=2)
    assert [r["seed"] for r in rows] == [1, 2]
    assert (
        rows[0]["events"] != rows[1]["events"]
        or rows[0]["latency_p50_s"] != rows[1]["latency_p50_s"]
    )


def test_values_are_read_as_toml() -> None:
    assert sweep.parse_values("0, 0.5,true,relay") == [0, 0.5, True, "relay"]
