"""Web test fixtures: a fresh hub per test, a demo hub per module, and one headless
Chromium (Debian's, driven by Playwright; never `playwright install`) whose pages are
photographed when a test fails (the path is printed in the failure report)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing (make test installs Debian's chromium package)",
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for all browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _photograph_failure(request: pytest.FixtureRequest, tab: Any, tmp_path: Path) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh desktop-sized page."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    _photograph_failure(request, tab, tmp_path)
    context.close()


@pytest.fixture
def phone(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh page the size of a phone (390 x 844, touch)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, device_scale_factor=1
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    _photograph_failure(request, tab, tmp_path)
    context.close()
