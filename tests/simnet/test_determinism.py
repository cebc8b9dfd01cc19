"""The same seed and scenario give byte-identical outputs, even across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from simnet_helpers import scenario

from craftnet.simnet.report import write_outputs
from craftnet.simnet.sim import Simulation

TEXT = """
name = "determinism"
hubs = 30
max_time_s = 120
sample_interval_s = 5
[topology]
kind = "small_world"
degree = 4
[latency]
jitter_ms = 20
[network]
loss = 0.05
[workload]
records = 20
window_s = 30
[churn]
share = 0.3
online_mean_s = 40
offline_mean_s = 10
[[adversaries]]
kind = "spam"
rate_per_s = 2
"""

OUTPUTS = ("metrics.jsonl", "summary.json", "delivery_cdf.png", "holders.png")


def _run(out: Path, seed: int) -> dict[str, bytes]:
    result = Simulation(scenario(TEXT), seed).run()
    write_outputs(result, out)
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.mark.slow
def test_same_seed_same_bytes_different_seed_different_run(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", 7)
    again = _run(tmp_path / "b", 7)
    other = _run(tmp_path / "c", 8)
    assert first == again
    assert first["metrics.jsonl"] != other["metrics.jsonl"]


@pytest.mark.slow
def test_same_bytes_from_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    here = _run(tmp_path / "here", 3)
    path = tmp_path / "scenario.toml"
    path.write_text(TEXT, encoding="utf-8")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    code = (
        "import sys; from craftnet.cli.main import cli; "
        "sys.exit(cli.main(['sim', 'run', sys.argv[1], '--seed', '3', '--out', sys.argv[2], "
        "'--quiet'], standalone_mode=False))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "there")],
        check=True,
        env=env,
        capture_output=True,
    )
    there = {name: (tmp_path / "there" / name).read_bytes() for name in OUTPUTS}
    assert here == there
