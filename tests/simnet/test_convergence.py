"""Standard behaviours: partitions heal and converge, churned hubs catch up."""

from __future__ import annotations

import pytest
from simnet_helpers import run, scenario

from craftnet.simnet.sim import Simulation

PARTITION = """
name = "halves"
hubs = 40
max_time_s = 400
sample_interval_s = 2
[topology]
kind = "small_world"   # a ring: each half is a connected arc
degree = 4
rewire_p = 0.0
[engine]
reconcile_interval_s = 60
[workload]
records = 30
start_s = 5
window_s = 100
[[partitions]]
split = "halves"
start_s = 1
heal_s = 150
"""


@pytest.mark.parametrize("push", [True, False], ids=["records-inline", "records-fetched"])
def test_halves_stay_apart_during_a_partition_and_converge_after_it_heals(push: bool) -> None:
    text = PARTITION.replace("[engine]\n", f"[engine]\npush_blocks = {str(push).lower()}\n")
    sim = Simulation(scenario(text), 1)
    result = sim.run()
    lines = result.metrics.lines
    during = [line for line in lines if 120 <= line["t"] < 150]
    # Every record stays on its own side while the cut is open ...
    assert during and all(line["records_everywhere"] == 0 for line in during)
    assert all(line["delivered_fraction"] == 0.5 for line in during)
    summary = result.metrics.summary()
    # ... and within a few seconds of the heal every hub has everything.
    assert summary["converged"]
    assert summary["records_everywhere"] == 30
    (heal,) = summary["partitions"]
    assert heal["converged_after_s"] is not None and heal["converged_after_s"] <= 20
    assert all(h.store.record_count() == 30 for h in sim.hubs)


@pytest.mark.slow
def test_hubs_offline_for_a_day_catch_up_by_reconciling() -> None:
    result = run(
        """
        hubs = 40
        max_time_s = 90000
        sample_interval_s = 600
        [regions.urban]
        share = 0.6
        [regions.rural]
        share = 0.4
        [topology]
        kind = "geographic"
        degree = 4
        bridges = 3
        [engine]
        reconcile_interval_s = 300
        [workload]
        records = 20
        start_s = 100
        window_s = 600
        [[churn.outages]]
        region = "rural"
        share = 0.5
        start_s = 50
        duration_s = 86400
        """
    )
    s = result.metrics.summary()
    lines = result.metrics.lines
    # While half the rural hubs are away no record reaches every hub ...
    midway = next(line for line in lines if line["t"] >= 40000)
    assert midway["online"] == 32 and midway["records_everywhere"] == 0
    # ... and within a few reconcile intervals of their return, all of them do.
    assert s["converged"] and s["records_everywhere"] == 20
    assert s["converged_at_s"] <= 86450 + 1200


@pytest.mark.slow
def test_delivery_to_online_hubs_under_ten_percent_churn_per_minute() -> None:
    result = run(
        """
        hubs = 60
        max_time_s = 900
        stop_when_converged = false
        sample_interval_s = 10
        [topology]
        kind = "small_world"
        degree = 6
        [engine]
        reconcile_interval_s = 30
        [workload]
        records = 40
        start_s = 5
        window_s = 400
        [churn]
        share = 1.0
        online_mean_s = 600
        offline_mean_s = 60
        dist = "exponential"
        """,
        seed=2,
    )
    s = result.metrics.summary()
    assert s["delivery_online"] >= 0.999
    assert any(line["online"] < 60 for line in result.metrics.lines)
