"""Misbehaving peers are graylisted or banned; honest hubs lose nothing."""

from __future__ import annotations

from simnet_helpers import scenario

from craftnet.simnet.sim import Simulation

TEXT = """
name = "adversaries"
hubs = 30
max_time_s = 300
sample_interval_s = 5
[topology]
degree = 4
[engine]
reconcile_interval_s = 30
[workload]
records = 30
start_s = 2
window_s = 60
[[adversaries]]
kind = "invalid"
count = 2
rate_per_s = 0.5
start_s = 3
[[adversaries]]
kind = "spam"
count = 2
rate_per_s = 5
start_s = 3
[[adversaries]]
kind = "drop"
count = 1
[[adversaries]]
kind = "eclipse"
count = 3
targets = 1
"""


def test_adversaries_are_graylisted_and_honest_hubs_keep_every_record() -> None:
    sim = Simulation(scenario(TEXT), 1)
    result = sim.run()
    s = result.metrics.summary()
    assert s["converged"] and s["records_everywhere"] == 30
    assert s["honest_hubs_banned_by_honest"] == 0
    assert s["honest_hubs_cut_off_by_honest"] == 0
    for adv in result.metrics.adversaries:
        lowest = min(adv.scores)
        if adv.kind == "spam":
            # Garbage frames: cut off by every honest hub it reached, and refused since.
            assert len(adv.cut_off_by) == len(adv.hub.out)
            assert not adv.hub.conns
        elif adv.kind == "invalid":
            # Forged records cost more than the graylist allows.
            assert lowest < -20
    # No honest hub stores a forged record: each holds exactly the 30 honest ones.
    for hub in sim.hubs[: s["hubs"]]:
        assert hub.store.record_count() == 30
        assert all(hub.store.has(cid) for cid in result.metrics.index)
    assert s["eclipse_victims_complete"] == s["eclipse_victims"] == 1
