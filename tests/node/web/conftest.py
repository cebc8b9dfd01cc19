"""Web test fixtures: a fresh hub per test, a demo hub per module, screenshots on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.web.web_hub import Hub, start_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """An empty hub (one artisan key would have to be made by the test)."""
    running = start_hub(tmp_path / "hub")
    yield running
    running._stop()


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub holding the demo archive (shared by a module's tests; they only add to it)."""
    running = start_hub(tmp_path_factory.mktemp("demo") / "hub", seed=True)
    yield running
    running._stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can see a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + report.when, report)
