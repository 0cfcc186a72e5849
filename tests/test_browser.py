"""The web page in headless Chromium against the real service: ask, open a citation, close it."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from browser_fixtures import CHROMIUM, NO_CHROMIUM, browser  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.model,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]
QUESTION = "what did the board resolve on cancer screening?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_url(real_index):
    import uvicorn

    from service.app import create_app
    from service.config import ServiceSettings

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app=create_app(ServiceSettings(index_dir=real_index)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail("the service did not start within 120 s")
        time.sleep(0.3)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def desktop_page(browser, live_url):
    """The chat page at a desktop width, with a timeout long enough for the real model on 2 cores."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    try:
        page.goto(live_url + "/")
        yield page
    finally:
        page.close()


def test_ask_and_open_citation(desktop_page):
    page = desktop_page
    page.fill("#ask-input", QUESTION)
    page.click("#ask-submit")
    answer = page.locator(".answer").filter(has=page.locator("button.cite")).first
    answer.wait_for(state="visible")
    answer.locator("button.cite").first.click()
    panel = page.locator("#passage-panel")
    panel.wait_for(state="visible")
    mark = panel.locator("mark").first
    mark.wait_for(state="visible")
    marked = mark.inner_text()
    assert "RESOLVED" in marked or "screening" in marked.lower(), marked
    assert "8 March 2018" in panel.inner_text()
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")


def test_phone_width_renders_input(browser, live_url):
    page = browser.new_page(viewport={"width": 375, "height": 740})
    try:
        page.goto(live_url + "/")
        page.locator("#ask-input").wait_for(state="visible", timeout=10_000)
        box = page.locator("#ask-input").bounding_box()
        assert box and box["width"] > 100 and box["x"] >= 0 and box["x"] + box["width"] <= 376
        assert page.locator("#ask-submit").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 376
    finally:
        page.close()


def test_decisions_view_search_and_timeline(desktop_page):
    page = desktop_page
    page.click("#tab-decisions")
    page.locator("#view-decisions").wait_for(state="visible")
    page.fill("#decisions-q", "cancer screening")
    page.click("#decisions-search")
    first = page.locator("#decisions-results .decision-card").first
    first.wait_for(state="visible")
    # The March 2018 resolution, dated by the meeting that made it, not the July pack's cover.
    assert first.locator("time.card-date").get_attribute("datetime") == "2018-03-08"
    assert "RESOLVED" in first.inner_text() or "screening" in first.inner_text().lower()
    page.click("#decisions-timeline")
    page.locator("#decisions-results .timeline-item").first.wait_for(state="visible")
    dates = [d for d in page.locator("#decisions-results .timeline-item time.card-date").evaluate_all(
        "els => els.map(e => e.getAttribute('datetime'))") if d]
    assert dates and dates == sorted(dates), dates
