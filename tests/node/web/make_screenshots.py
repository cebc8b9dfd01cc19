"""Take the screenshots of docs/web-ui.md: ``python tests/node/web/make_screenshots.py docs/img``.

Starts a demo hub in a temp dir (the same one the tests use) and photographs it in
headless Chromium: the pages at desktop width, then an artisan's way through the phone
flow at 390 x 844 (log in, a technique with a photo per step, a design turned in the 3D
viewer, search as you type).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from craftnet.archive.demo import DEMO_PASSPHRASE, desk_lamp_stl, raku_png
from tests.node.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.node.web.web_hub import Hub, start_hub


def desktop_pages(page: Page, hub: Hub, out: Path) -> None:
    """The pages of the tour at desktop width."""
    seeded = hub.seeded
    assert seeded is not None
    shots = {
        "home": "",
        "search": "search?q=lamp",
        "technique": f"records/{seeded.records['raku']}",
        "design": f"records/{seeded.records['base']}",
        "provenance": f"records/{seeded.records['desk']}/provenance",
        "artisan": f"artisans/{seeded.artisans['amaia']}",
        "collection": f"records/{seeded.records['fair']}",
        "co-edited": f"documents/{seeded.document}",
        "peers": "peers",
    }
    for name, path in shots.items():
        page.goto(hub.url + path)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def licence_warning(page: Page, hub: Hub, out: Path) -> None:
    """The design form warning about a licence that breaks the parent's terms."""
    seeded = hub.seeded
    assert seeded is not None
    log_in(page, hub, "rosa", "publish/design")
    page.get_by_label("Title").fill("Shade without share-alike")
    page.get_by_label("Derived from (optional)").select_option(str(seeded.records["shade"]))
    page.get_by_role("radio", name="Name me").check()
    page.locator("#licence-warnings").get_by_text("share-alike").wait_for()
    page.get_by_role("button", name="Publish design").click()
    page.get_by_text("The licence conflicts").wait_for()
    page.locator("#s-origin").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "publish-warning.png"))


def log_in(page: Page, hub: Hub, handle: str, then: str) -> None:
    """Log in as an artisan, landing on ``then``."""
    page.goto(f"{hub.url}login?next=/{then}")
    page.get_by_label("Your handle").fill(handle)
    page.get_by_label("Your passphrase").fill(DEMO_PASSPHRASE)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(hub.url + then)


def phone_flow(phone: Page, hub: Hub, out: Path, tmp: Path) -> None:
    """An artisan's way through the hub on a phone."""
    photo = tmp / "coil-wall.png"
    photo.write_bytes(raku_png())
    model = tmp / "river-lamp.stl"
    model.write_bytes(desk_lamp_stl())
    phone.goto(hub.url)
    phone.screenshot(path=str(out / "phone-home.png"))
    phone.goto(f"{hub.url}login?next=/publish/technique")
    phone.get_by_label("Your handle").fill("amaia")
    phone.screenshot(path=str(out / "phone-login.png"))
    phone.get_by_label("Your passphrase").fill(DEMO_PASSPHRASE)
    phone.get_by_role("button", name="Log in", exact=True).click()
    phone.wait_for_url(hub.url + "publish/technique")
    phone.get_by_label("Title").fill("Coil pots of the river hub")
    phone.get_by_label("Summary").fill("Pots built from coils, as the river hub's elders teach")
    phone.get_by_label("Step 1", exact=True).fill("Roll coils as thick as a finger")
    phone.get_by_label("Step 2", exact=True).fill("Build the wall coil on coil")
    phone.get_by_label("Photo of step 2 (optional)").set_input_files(str(photo))
    phone.get_by_role("img", name="Photo of this step: coil-wall.png").wait_for()
    phone.get_by_label("Step 3", exact=True).fill("Smooth inside and out, then dry slowly")
    phone.locator("#s-steps").scroll_into_view_if_needed()
    phone.screenshot(path=str(out / "phone-steps.png"))
    phone.locator("#s-licence").scroll_into_view_if_needed()
    phone.screenshot(path=str(out / "phone-licence.png"))
    phone.get_by_role("button", name="Publish technique").click()
    phone.get_by_text("Published. Thank you!").wait_for()
    phone.wait_for_load_state("networkidle")
    phone.screenshot(path=str(out / "phone-published.png"), full_page=True)
    phone.goto(hub.url + "publish/design")
    phone.get_by_label("Files (STL, STEP, SVG, G-code, PDF, photos)").set_input_files(str(model))
    phone.locator("#uploaded-files .file-name", has_text="river-lamp.stl").wait_for()
    phone.get_by_label("Title").fill("River hub lamp")
    phone.screenshot(path=str(out / "phone-design-files.png"))
    phone.get_by_role("button", name="Publish design").click()
    phone.get_by_text("Published. Thank you!").wait_for()
    canvas = phone.locator(".viewer.live canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    phone.mouse.move(x, y)
    phone.mouse.down()
    phone.mouse.move(x + 80, y - 20, steps=6)
    phone.mouse.up()
    phone.screenshot(path=str(out / "phone-viewer.png"))
    phone.goto(hub.url + "search")
    phone.get_by_label("Search the archive").press_sequentially("lmap", delay=40)
    phone.get_by_text("Did you mean").wait_for()
    phone.screenshot(path=str(out / "phone-search.png"))


def bundle_page(phone: Page, hub: Hub, out: Path) -> None:
    """The operator prepares a USB bundle for a rural hub that has most of the archive."""
    import io

    from craftnet.archive import index
    from craftnet.archive.bundle import export_car, import_car
    from craftnet.archive.have import build_summary
    from craftnet.archive.hlc import HybridClock
    from craftnet.archive.memory_store import MemoryStore
    from craftnet.archive.peer_state import PeerStates
    from craftnet.identity.keys import PrivateKey
    from craftnet.identity.keystore import ARTISAN_PREFIX

    highlands = PrivateKey.from_seed(b"screenshot-highlands-weavers-hub")
    far = MemoryStore()
    car = io.BytesIO()
    export_car(hub.ctx.store, car)
    car.seek(0)
    import_car(far, car)
    with far.read() as txn:
        summary = build_summary(txn, highlands, HybridClock().tick())
    PeerStates(hub.ctx.store).record(summary, "have-file", HybridClock().tick())
    key = hub.ctx.keystore.load(ARTISAN_PREFIX + "amaia", DEMO_PASSPHRASE)
    for title in ("Backstrap loom heddle bar", "Indigo vat care", "Rustic Futurism stool"):
        body = {"title": title, "steps": [{"text": "Begin.", "media": []}], "licence": "CC0-1.0"}
        index.publish(hub.ctx.store, key, "technique", body)
    phone.goto(f"{hub.url}login?next=/bundles")
    phone.get_by_label("API token").fill(hub.token)
    phone.get_by_role("button", name="Log in as operator").click()
    phone.wait_for_url(hub.url + "bundles")
    phone.get_by_label("Split into files of at most").select_option("4G")
    phone.get_by_role("button", name="Check the size").click()
    phone.get_by_role("heading", name="The bundle for").wait_for()
    phone.get_by_role("button", name="Write the bundle").click()
    phone.get_by_text("Take the stick to the other hub").wait_for()
    phone.screenshot(path=str(out / "phone-bundles.png"), full_page=True)


def main(out: Path) -> None:
    """Write the PNGs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp) / "hub", seed=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                desktop_pages(browser.new_page(viewport={"width": 1100, "height": 800}), hub, out)
                licence_warning(browser.new_page(viewport={"width": 1100, "height": 800}), hub, out)
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone_flow(phone, hub, out, Path(tmp))
                bundle_page(browser.new_page(viewport={"width": 390, "height": 844}), hub, out)
                browser.close()
        finally:
            hub._stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
