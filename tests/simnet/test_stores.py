"""The shared store, archive's MemoryStore and LmdbStore give the very same run."""

from __future__ import annotations

import pytest
from simnet_helpers import scenario

from craftnet.simnet.sim import Simulation

TEXT = """
name = "stores"
hubs = 12
max_time_s = 200
sample_interval_s = 5
store = "STORE"
[topology]
degree = 4
[engine]
reconcile_interval_s = 30
[workload]
records = 10
window_s = 20
file_bytes = 2000
[[partitions]]
start_s = 2
heal_s = 40
"""


@pytest.mark.parametrize("store", ["memory", "lmdb"])
def test_archive_stores_run_exactly_like_the_shared_one(store: str) -> None:
    shared = Simulation(scenario(TEXT.replace("STORE", "shared")), 5).run()
    real = Simulation(scenario(TEXT.replace("STORE", store)), 5).run()
    assert real.metrics.summary()["converged"]
    assert real.metrics.jsonl() == shared.metrics.jsonl()
    assert real.metrics.summary() == shared.metrics.summary()
