"""The short lab run: four real ``craftnet serve`` processes through every kind of event.

One run (``node/lab/scenarios/short.toml``, about a minute) is shared by the tests
below. The first ones check the lab itself did what the scenario asked; the last one
holds the hubs to issue 10's invariants, which today's code breaks (see the reason).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from craftnet.node.lab.report import INVARIANTS, render
from craftnet.node.lab.runner import run
from craftnet.node.lab.scenario import bundled, load

CRAFTNET = Path(sys.executable).with_name("craftnet")
pytestmark = pytest.mark.slow
# What issue 10 demands of an alliance of hubs ("Done means"); the short run has no flood,
# and crashes are checked on their own below.
HOLDS_TOGETHER = tuple(i for i in INVARIANTS if i not in ("flooder_cut", "no_crashes"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lab")
    return run(load(bundled()["short"]), CRAFTNET, root / "hubs")


def test_the_lab_carried_out_every_kind_of_event(report: dict[str, Any]) -> None:
    counts = report["counts"]
    assert counts["publishes"]["cli"] >= 3
    assert counts["publishes"]["http"] == 2
    assert counts["publishes"]["bundle"] == 150 + 300
    assert counts["kills"] == 1 and counts["pauses"] == 1 and counts["rotations"] == 1
    assert counts["restarts"] >= 3
    kill = report["kills"][0]
    assert kill["records_target"] is not None and kill["records_target"] >= 300
    # Every hub that got into the alliance served, and was measured after each start.
    started = [h for h in report["hubs"].values() if h["state"] != "new"]
    assert len(started) >= 3
    assert all(hub["links"] for hub in started)
    assert report["converges"], "the scenario ends with a convergence check"


def test_no_hub_crashed_or_hung_on_stop(report: dict[str, Any]) -> None:
    assert report["invariants"]["no_crashes"]["ok"], report["invariants"]["no_crashes"]


def test_the_report_reads_for_people_and_scripts(report: dict[str, Any]) -> None:
    text = render(report)
    for name, hub in report["hubs"].items():
        if hub["state"] != "new":
            assert f"  {name} " in text
    for invariant in report["invariants"]:
        assert f" {invariant}: " in text
    assert json.loads(json.dumps(report)) == report


def test_the_alliance_holds_together(report: dict[str, Any]) -> None:
    broken = {
        name: report["invariants"][name]["detail"]
        for name in HOLDS_TOGETHER
        if report["invariants"][name]["ok"] is not True
    }
    assert not broken, "\n" + render(report)
