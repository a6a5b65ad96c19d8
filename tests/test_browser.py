"""The explorer and the static report in a real browser: Debian's chromium driven by Playwright for Python
(`.ci/run` installs chromium when it is missing; these tests skip when it or Playwright cannot be had).

On a small warehouse with planted markup (fast): every page draws its plots, filters narrow the scenario list and
a deep link restores them, a scenario page shows every answer and position, downloads open, and no planted
script runs (no dialog, no injected node). On the demo warehouse (slow): every page and the report draw their
plots. Screenshots of each page go to the test's temp directory."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.test_explorer import PAGES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (`.ci/run` installs Debian's chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Served:
    """The explorer on a free loopback port, in a thread of this process."""

    def __init__(self, warehouse: str) -> None:
        import uvicorn

        from specstress.explorer.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_app(warehouse), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the explorer did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Page:
    """A browser tab that records every dialog (alert, confirm) and every console error."""

    def __init__(self, browser, base: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.base = base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")

    def every_page_draws_its_plots(self, shots: Path, prefix: str = "") -> None:
        """Open every explorer page: each draws all its plots; a full-page screenshot of each goes to ``shots``."""
        for path in PAGES:
            self.open(path)
            want, drawn = self.plots()
            assert drawn == want, (path, want, drawn)
            self.page.screenshot(path=str(shots / f"{prefix}{path.strip('/') or 'overview'}.png"), full_page=True)

    def plots(self) -> tuple[int, int]:
        """(plot containers, containers with a drawn SVG), once every container has rendered or failed."""
        want = self.page.locator("div.vega").count()
        if want:
            self.page.wait_for_function(
                "() => [...document.querySelectorAll('div.vega')].every(e => e.querySelector('svg') || "
                "e.textContent.includes('plot failed'))", timeout=30000)
        return want, self.page.locator("div.vega svg.marks").count()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The explorer tests' warehouse: 12 scenarios imported from the paper's format, markup planted in a query,
    an answer and a value name."""
    from tests.test_explorer import planted_warehouse

    wh = planted_warehouse(tmp_path_factory.mktemp("planted"))
    served = Served(str(wh))
    yield served, wh
    served.stop()


def test_pages_draw_their_plots_and_no_planted_script_runs(browser, planted, tmp_path):
    served, _ = planted
    tab = Page(browser, served.url)
    tab.every_page_draws_its_plots(tmp_path)
    assert not tab.dialogs, tab.dialogs
    assert not tab.errors, tab.errors
    # the planted payloads are text: no <img onerror>, no script element beyond ours, no javascript: link
    tab.open("/scenarios?q=alert(1)")
    href = tab.page.locator("a[href^='/scenario/']").first.get_attribute("href")
    tab.open(href)
    want, drawn = tab.plots()
    assert drawn == want >= 1
    assert tab.page.locator("img[src='x']").count() == 0
    assert tab.page.locator("a[href^='javascript:']").count() == 0
    assert tab.page.evaluate("() => [...document.scripts].every(s => s.src.includes('/static/') || "
                             "s.type === 'application/json')")
    assert "<script>alert(1)</script>" in tab.page.inner_text("body")      # shown, as text
    tab.page.wait_for_timeout(300)
    assert not tab.dialogs, tab.dialogs
    tab.page.screenshot(path=str(tmp_path / "scenario.png"), full_page=True)


def test_filters_narrow_the_list_and_a_deep_link_restores_them(browser, planted):
    served, _ = planted
    tab = Page(browser, served.url)
    tab.open("/scenarios")
    every = tab.page.locator("a[href^='/scenario/']").count()
    tab.page.fill("input[name='q']", "tea")
    tab.page.fill("input[name='value']", "accuracy")
    with tab.page.expect_navigation():
        tab.page.locator("form#filters button").click()
    narrowed = tab.page.locator("a[href^='/scenario/']").count()
    assert 0 < narrowed < every
    deep = tab.page.url
    assert "value=accuracy" in deep and "q=tea" in deep
    other = Page(browser, "")
    other.open(deep)                                                       # a fresh tab from the link alone
    assert other.page.input_value("input[name='q']") == "tea"
    assert other.page.input_value("input[name='value']") == "accuracy"
    assert other.page.locator("a[href^='/scenario/']").count() == narrowed


def test_a_scenario_page_shows_every_answer_and_position_and_downloads_open(browser, planted, tmp_path):
    from specstress.paper_dataset import PAPER_MODELS

    served, _ = planted
    tab = Page(browser, served.url)
    tab.open("/scenarios")
    tab.open(tab.page.locator("a[href^='/scenario/']").first.get_attribute("href"))
    for m in PAPER_MODELS:
        assert tab.page.locator(f"#m-{m}").count() == 1, m
    want, drawn = tab.plots()
    assert drawn == want >= 1
    # the strip draws one point per model and value
    assert tab.page.locator("div.vega svg.marks path[aria-roledescription='point'], div.vega svg.marks "
                            "g.mark-symbol path").count() >= len(PAPER_MODELS)
    tab.open("/scenarios")
    link = tab.page.locator("a[href*='format=csv']").first
    with tab.page.expect_download() as dl:
        link.click()
    path = tmp_path / "scenarios.csv"
    dl.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert rows and "scenario_id" in rows[0]


@pytest.mark.slow
def test_the_demo_explorer_and_report_draw_every_plot(browser, demo_run, tmp_path):
    served = Served(demo_run["warehouse"])
    try:
        tab = Page(browser, served.url)
        tab.every_page_draws_its_plots(tmp_path, prefix="demo-")
        assert not tab.errors, tab.errors
    finally:
        served.stop()
    report = Path(demo_run["summary"]["report"])
    page = Page(browser, "")
    page.page.goto(report.as_uri())
    page.page.wait_for_function("() => [...document.querySelectorAll('div.chart')].every(e => e.querySelector('svg')"
                                " || e.textContent.length > 0)", timeout=60000)
    charts = page.page.locator("div.chart").count()
    assert charts >= 6 and page.page.locator("div.chart svg.marks").count() == charts
    assert not page.errors and not page.dialogs
    page.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
