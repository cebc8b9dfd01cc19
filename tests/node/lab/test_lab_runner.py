"""The runner's progress lines name a step by what differs from its defaults."""

from __future__ import annotations

from craftnet.node.lab.runner import describe
from craftnet.node.lab.scenario import Converge, Pause, Publish, Restart, Stop


def test_progress_lines() -> None:
    assert describe(Restart()) == "restart"
    assert (
        describe(Restart("lisbon", 0.0, 20, "http"))
        == "restart hub=lisbon backlog=20 backlog_via=http"
    )
    assert describe(Publish(count=5, via="bundle")) == "publish count=5 via=bundle"
    assert describe(Stop(("kochi", "cusco"))) == "stop hubs=('kochi', 'cusco')"
    assert describe(Converge(within=10.0)) == "converge within=10.0"
    # Nested steps are shown as they run, not on their parent's line.
    assert describe(Pause("quito", 5.0, (Publish(),))) == "pause hub=quito seconds=5.0"
