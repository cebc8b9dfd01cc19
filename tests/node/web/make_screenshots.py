"""Take the screenshots of docs/web-ui.md: ``python tests/node/web/make_screenshots.py docs/img``.

Starts a demo hub in a temp dir (the same one the tests use) and photographs its pages
in headless Chromium, at desktop width and one at phone width.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from craftnet.archive.demo import DEMO_PASSPHRASE
from tests.node.web.web_hub import start_hub


def main(out: Path) -> None:
    """Write the PNGs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp) / "hub", seed=True)
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
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=[
                        "--no-sandbox",
                        "--headless",
                        "--disable-gpu",
                        "--disable-background-networking",
                    ],
                )
                page = browser.new_page(viewport={"width": 1100, "height": 800})
                for name, path in shots.items():
                    page.goto(hub.url + path)
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                page.goto(hub.url + "login")
                page.get_by_label("API token").fill(hub.token)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(hub.url)
                page.goto(hub.url + "publish/design")
                page.get_by_label("Title").fill("Shade without share-alike")
                page.get_by_label("Derived from (optional)").select_option(
                    str(seeded.records["shade"])
                )
                page.get_by_label("Licence", exact=True).select_option("CC-BY-4.0")
                page.get_by_label("Artisan").select_option("rosa")
                page.get_by_label("Passphrase of your key").fill(DEMO_PASSPHRASE)
                page.locator("#licence-warnings").get_by_text("share-alike").wait_for()
                page.get_by_role("button", name="Publish design").click()
                page.get_by_text("The licence conflicts").wait_for()
                page.screenshot(path=str(out / "publish-warning.png"), full_page=True)
                phone = browser.new_page(viewport={"width": 390, "height": 780})
                phone.goto(hub.url + f"records/{seeded.records['base']}")
                phone.screenshot(path=str(out / "phone-design.png"), full_page=False)
                browser.close()
        finally:
            hub._stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
