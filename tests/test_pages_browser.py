"""The registry's web pages in a real browser: Debian's Chromium, driven by Playwright,
against a real node on 127.0.0.1 (the gallery of pages_helpers).

Runs when /usr/bin/chromium is there (scripts/test.sh installs it). The browser may reach
only the node: any other request is aborted and fails the test. Screenshots of a model page
(desktop and phone) are written to test-artifacts/pages/ (or $SEEDVAULT_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pages_helpers import BASE, EVIL, EVIL_NOTES, EVIL_SOURCE, TUNED, YANK_REASON, Gallery, start_gallery

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed at /usr/bin/chromium (scripts/test.sh installs Debian's chromium "
                "when run as root with apt-get)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")

# notes/browser.md: without the background-networking flags Chromium keeps calling outside hosts.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000
ARTIFACTS = Path(os.environ.get("SEEDVAULT_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    g = start_gallery(tmp_path_factory.mktemp("gallery"))
    try:
        yield g
    finally:
        g.node.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Tab:
    """A page in its own browser context, allowed to reach the node only; what else it tried
    and what the console said (a CSP violation is logged there) are kept for the test."""

    def __init__(self, browser: sync_api.Browser, gallery: Gallery, *, javascript: bool,
                 viewport: dict[str, int] | None = None) -> None:
        self.base = gallery.url
        self.context = browser.new_context(java_script_enabled=javascript, viewport=viewport or {"width": 1280,
                                                                                               "height": 900})
        self.outside: list[str] = []
        self.console: list[str] = []
        node = urlsplit(self.base).netloc
        self.context.route("**/*", lambda route: self._only_the_node(route, node))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", lambda message: self.console.append(message.text))

    def _only_the_node(self, route: sync_api.Route, node: str) -> None:
        if urlsplit(route.request.url).netloc == node:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def open(self, path: str) -> sync_api.Page:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], f"the page tried to reach other hosts: {self.outside}"
        assert not [m for m in self.console if "Content Security Policy" in m], self.console


@pytest.fixture
def tab(browser: sync_api.Browser, gallery: Gallery) -> Iterator[Tab]:
    """A tab with JavaScript off: the pages must work without it."""
    t = Tab(browser, gallery, javascript=False)
    yield t
    t.close()


@pytest.fixture
def scripted_tab(browser: sync_api.Browser, gallery: Gallery) -> Iterator[Tab]:
    """A tab with JavaScript on, to see that no script of a publisher's ever runs."""
    t = Tab(browser, gallery, javascript=True)
    yield t
    t.close()


def test_search_and_open_a_model(tab: Tab) -> None:
    page = tab.open("/")
    assert page.locator("ul.models > li.model").count() == 3
    page.get_by_label("Search").fill("chat")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=chat**")
    results = page.locator("ul.models > li.model")
    assert results.count() == 1
    page.get_by_role("link", name=TUNED).click()
    page.wait_for_url(f"**/models/{TUNED}")
    assert page.locator("h1").inner_text() == f"{TUNED} 1.0"
    assert page.locator(".marks").inner_text().strip() == "accepted by this node's policy"
    assert page.locator("pre#pull").inner_text() == f"seedvault pull {TUNED}@1.0 --registry {tab.base}"


def test_search_by_license_and_format_with_the_form(tab: Tab) -> None:
    page = tab.open("/")
    page.get_by_label("License").fill("MIT")
    page.get_by_label("Format").select_option("safetensors")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?*license=MIT*")
    assert page.locator("ul.models a.name").all_inner_texts() == [TUNED]
    page.get_by_role("link", name="clear").click()
    assert page.locator("ul.models > li.model").count() == 3


def test_yanked_version_shows_its_reason(tab: Tab) -> None:
    page = tab.open(f"/models/{TUNED}")
    page.locator("section.versions").get_by_role("link", name="1.1", exact=True).click()
    page.wait_for_url(f"**/models/{TUNED}/1.1")
    marks = page.locator(".marks")
    assert marks.locator(".mark.yanked").inner_text() == "yanked by its publisher"
    assert marks.locator(".reason").inner_text() == YANK_REASON
    assert page.locator("section.versions li.current .reason").inner_text() == YANK_REASON


def test_lineage_graph_links_to_the_ancestors_page(tab: Tab) -> None:
    page = tab.open(f"/models/{TUNED}/1.0")
    graph = page.locator("svg.lineage-graph")
    assert graph.is_visible()
    assert "fine-tuned-from" in graph.locator("text.relation").all_text_contents()
    graph.locator("a.ancestor").click()
    page.wait_for_url(f"**/models/{BASE}/1.0")
    assert page.locator("h1").inner_text() == f"{BASE} 1.0"


def test_script_in_release_notes_renders_as_text(scripted_tab: Tab) -> None:
    page = scripted_tab.open(f"/models/{EVIL}")
    assert page.locator("pre#notes").inner_text() == EVIL_NOTES
    assert page.evaluate("typeof window.pwned") == "undefined"  # neither the script nor the onerror ran
    assert page.title() == f"{EVIL} 0.1 · seedvault registry"
    assert page.locator("a[href^='javascript']").count() == 0
    assert EVIL_SOURCE in page.locator("dl.facts").inner_text()


def test_stylesheet_applies_under_the_csp(scripted_tab: Tab) -> None:
    page = scripted_tab.open("/")
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor") == \
        "rgb(20, 50, 79)"


def test_screenshots_of_a_model_page_desktop_and_phone(browser: sync_api.Browser, gallery: Gallery) -> None:
    out = ARTIFACTS / "pages"
    out.mkdir(parents=True, exist_ok=True)
    for label, viewport in (("desktop", None), ("phone", PHONE)):
        tab = Tab(browser, gallery, javascript=True, viewport=viewport)
        try:
            page = tab.open(f"/models/{TUNED}/1.1")
            # Readable on a phone: nothing wider than the screen, so no sideways scrolling.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), label
            # ... and the file table (four columns, two of digests) fits without scrolling it sideways.
            assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.querySelector('.files .scroll'))"), \
                label
            shot = out / f"model-{label}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
            tab.open("/").screenshot(path=str(out / f"home-{label}.png"), full_page=True)
        finally:
            tab.close()
