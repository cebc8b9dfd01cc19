"""The operator prepares a USB bundle for another hub on a phone, in real Chromium: the
size before writing, then the bundle on the hub machine; the page fits and passes axe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from craftnet.archive import index
from craftnet.archive.have import build_summary, read_summary
from craftnet.archive.hlc import HybridClock
from craftnet.archive.memory_store import MemoryStore
from craftnet.archive.peer_state import PeerStates
from craftnet.identity.keys import PrivateKey
from tests.node.web.conftest import needs_chromium
from tests.node.web.test_web_phone import AXE
from tests.node.web.web_hub import Hub

pytestmark = needs_chromium
FAR = PrivateKey.from_seed(b"highlands-weaving-cooperative-02")
ARTISAN = PrivateKey.from_seed(b"rustic-futurism-lamp-maker-0002x")


def serious_findings(tab: Any) -> list[str]:
    """axe-core's serious and critical findings on the page in ``tab``."""
    tab.add_script_tag(path=str(AXE))
    result = tab.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_operator_prepares_a_usb_bundle_on_a_phone(browser: Any, hub: Hub) -> None:
    for n in range(12):
        body = {"title": f"Rustic Futurism stool {n}", "steps": [{"text": "Cut", "media": []}],
                "licence": "CC-BY-SA-4.0"}
        index.publish(hub.ctx.store, ARTISAN, "technique", body)
    far = MemoryStore()  # the far hub holds nothing yet; its have-file says so
    with far.read() as txn:
        summary = read_summary(build_summary(txn, FAR, HybridClock().tick()).raw)
    PeerStates(hub.ctx.store).record(summary, "have-file", HybridClock().tick())

    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        tab.goto(hub.url + "bundles")  # not logged in: the operator's login first
        tab.get_by_label("API token").fill(hub.token)
        tab.get_by_role("button", name="Log in as operator").click()
        tab.wait_for_url(hub.url + "bundles")
        assert "held 0 records" in tab.locator("#bundle-plan").inner_text()
        tab.get_by_label("Split into files of at most").select_option("4G")
        tab.get_by_role("button", name="Check the size").click()
        tab.get_by_role("heading", name="The bundle for").wait_for()
        summary_text = tab.locator("#plan-summary").inner_text()
        assert "12 records" in summary_text and "1 file" in summary_text
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        assert serious_findings(tab) == []
        tab.get_by_label("File name").fill("to-highlands.car")
        tab.get_by_role("button", name="Write the bundle").click()
        tab.get_by_text("Take the stick to the other hub").wait_for()
        written = hub.home / "bundles" / "to-highlands.car"
        assert written.stat().st_size > 0
        tab.get_by_role("button", name="Write the bundle").click()  # again: it is there
        tab.get_by_text("already there").wait_for()
        assert [p.name for p in (hub.home / "bundles").iterdir()] == ["to-highlands.car"]
        assert serious_findings(tab) == []
    finally:
        context.close()


def test_a_have_file_read_on_the_page_makes_the_hub_known(
    page: Any, hub: Hub, tmp_path: Path
) -> None:
    far = MemoryStore()
    with far.read() as txn:
        raw = build_summary(txn, FAR, HybridClock().tick()).raw
    have = tmp_path / "highlands.have"
    have.write_bytes(raw)
    page.goto(hub.url + "login?next=/bundles")
    page.get_by_label("API token").fill(hub.token)
    page.get_by_role("button", name="Log in as operator").click()
    page.wait_for_url(hub.url + "bundles")
    page.get_by_label("Have-file", exact=True).set_input_files(str(tmp_path / "highlands.have"))
    page.get_by_role("button", name="Read the have-file").click()
    page.get_by_role("heading", name="The bundle for").wait_for()
    assert PeerStates(hub.ctx.store).get(FAR.did) is not None
    have.write_bytes(b"garbage")
    page.get_by_label("Have-file", exact=True).set_input_files(str(have))
    page.get_by_role("button", name="Read the have-file").click()
    page.get_by_text("not a have-file this hub can read").wait_for()
