"""``craftnet sim run`` writes every output; bad files are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from craftnet.cli.main import cli


def test_sim_run_writes_metrics_summary_report_and_plots(tmp_path: Path) -> None:
    scenario = tmp_path / "fair.toml"
    scenario.write_text(
        'name = "fair"\nhubs = 12\nmax_time_s = 60\n[topology]\ndegree = 4\n'
        '[workload]\nrecords = 5\nwindow_s = 5\n[[adversaries]]\nkind = "spam"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["sim", "run", str(scenario), "--seed", "4", "--out", str(out)],
        standalone_mode=False,
    )
    assert result.exit_code == 0, result.output
    assert "scenario 'fair', seed 4: 12 hubs + 1 adversaries" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_published"] == 5 and summary["seed"] == 4
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["t"] == 5.0
    for png in ("delivery_cdf", "holders", "bytes_per_hub", "convergence", "adversary_scores"):
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bad_scenario_is_one_line_naming_the_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text("hubs = 12\n[network]\nlos = 0.1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sim", "run", str(scenario), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{scenario}:3: network.los: unknown option 'los'" in result.output


@pytest.mark.slow
def test_sim_sweep_writes_the_table_and_plot(tmp_path: Path) -> None:
    scenario = tmp_path / "sweep.toml"
    scenario.write_text(
        "hubs = 10\nmax_time_s = 60\n[topology]\ndegree = 4\n[workload]\nrecords = 3\n"
        "window_s = 3\n",
        encoding="utf-8",
    )
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "sweep",
            str(scenario),
            "--seeds",
            "1..2",
            "--param",
            "network.loss",
            "--values",
            "0,0.2",
            "--workers",
            "1",
            "--out",
            str(out),
        ],
        standalone_mode=False,
    )
    assert result.exit_code == 0, result.output
    table = (out / "table.md").read_text()
    assert table.splitlines()[2].startswith("| 0 | 2 |")
    assert table.splitlines()[3].startswith("| 0.2 | 2 |")
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
