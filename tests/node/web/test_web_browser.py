"""The web UI in a real headless Chromium (Debian's, driven by Playwright): reading,
publishing a design, the provenance graph, licence warnings (fixtures in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from craftnet.archive.demo import DEMO_PASSPHRASE, desk_lamp_stl
from tests.node.web.conftest import needs_chromium
from tests.node.web.web_hub import Hub

pytestmark = needs_chromium


def log_in(page: Any, hub: Hub, handle: str = "kofi", passphrase: str = DEMO_PASSPHRASE) -> None:
    """Log in as an artisan through the login form."""
    page.goto(hub.url + "login")
    page.get_by_label("Your handle").fill(handle)
    page.get_by_label("Your passphrase").fill(passphrase)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(hub.url)


def test_search_finds_a_seeded_technique(page: Any, demo_hub: Hub) -> None:
    page.set_viewport_size({"width": 390, "height": 800})  # a phone
    page.goto(demo_hub.url)
    page.keyboard.press("Tab")  # the first stop is the skip link, then the content
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Search the archive").fill("raku kiln")
    page.keyboard.press("Enter")
    result = page.get_by_role("link", name="Raku firing in a shared community kiln")
    result.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391  # no sideways scroll
    result.click()
    assert page.get_by_role("heading", name="Steps").is_visible()
    assert "★ Human Treasure" in page.locator(".byline").inner_text()
    assert page.locator("ol.steps > li").count() == 3
    assert page.locator("img.preview").first.evaluate("img => img.naturalWidth") > 0


def test_publishing_a_design_through_the_form_makes_it_searchable(
    page: Any, demo_hub: Hub, tmp_path: Path
) -> None:
    model = tmp_path / "loom-stool.stl"
    model.write_bytes(desk_lamp_stl())
    log_in(page, demo_hub, "kofi")
    page.goto(demo_hub.url + "publish/design")
    page.get_by_label("Files (STL, STEP, SVG, G-code, PDF, photos)").set_input_files(str(model))
    page.locator("#uploaded-files .file-name", has_text="loom-stool.stl").wait_for()
    page.get_by_label("Title").fill("Intergenerational loom stool")
    page.get_by_label("Description").fill("A stool for weavers, made with the cooperative")
    page.get_by_label("Process").select_option("cnc-milling")
    page.get_by_label("Materials (comma-separated)").fill("oak, linseed oil")
    page.get_by_label("Name me").check()
    page.get_by_role("button", name="Publish design").click()
    page.locator("#flash").wait_for()
    page.goto(demo_hub.url + "search?q=loom+stool")
    page.get_by_role("link", name="Intergenerational loom stool").click()
    assert page.get_by_role("heading", name="Intergenerational loom stool").is_visible()
    page.locator(".viewer.live canvas").wait_for()  # the 3D viewer took over from the drawing


def test_provenance_page_draws_the_three_level_remix_chain(page: Any, demo_hub: Hub) -> None:
    assert demo_hub.seeded is not None
    desk = demo_hub.seeded.records["desk"]
    page.goto(f"{demo_hub.url}records/{desk}")
    page.get_by_role("link", name="See its provenance graph").click()
    graph = page.locator("svg.provenance")
    graph.wait_for()
    joined = graph.text_content()
    for title in ("Neo-Vernacular lamp", "Rustic Futurism lamp", "Adopt-a-Workshop desk"):
        assert title in joined
    assert graph.locator("a.node").count() == 3
    assert graph.locator("line.edge").count() == 1  # shade -> base: licences agree
    conflict = graph.locator("g.edge.conflict")
    assert conflict.count() == 1  # base -> desk lamp drops the share-alike
    assert "licence conflict" in conflict.text_content()
    box = graph.bounding_box()
    assert box["height"] > 3 * 60  # three generations drawn one above the other


def test_a_bad_licence_combination_warns_before_publishing(
    page: Any, demo_hub: Hub, tmp_path: Path
) -> None:
    assert demo_hub.seeded is not None
    shade = str(demo_hub.seeded.records["shade"])
    photo = tmp_path / "remix.svg"
    photo.write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="5"/></svg>')
    log_in(page, demo_hub, "rosa")
    page.goto(demo_hub.url + "publish/design")
    page.get_by_label("Files (STL, STEP, SVG, G-code, PDF, photos)").set_input_files(str(photo))
    page.locator("#uploaded-files .file-name", has_text="remix.svg").wait_for()
    page.get_by_label("Title").fill("Shade without share-alike")
    page.get_by_label("Derived from (optional)").select_option(shade)
    page.get_by_text("Other licences").click()
    page.get_by_label("Not for sale: anyone may use").check()
    warning = page.locator("#licence-warnings")
    warning.get_by_text("share-alike").wait_for()
    assert "CC-BY-SA-4.0" in warning.inner_text()
    before = demo_hub.record_count()
    page.get_by_role("button", name="Publish design").click()
    page.get_by_text("The licence conflicts with the parent design").wait_for()
    assert page.get_by_label("I have read the licence warnings and publish anyway").is_visible()
    assert demo_hub.record_count() == before  # the record was not published
