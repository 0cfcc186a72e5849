"""Debian's Chromium driven by Playwright, shared by the browser tests.

Test modules import with ``from browser_fixtures import CHROMIUM, browser  # noqa: F401``.
Playwright's own browser download cannot work here, so the suite drives /usr/bin/chromium
(make test installs it) through `executable_path`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = "needs /usr/bin/chromium (make test installs it: apt-get install chromium)"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    pw_api = pytest.importorskip("playwright.sync_api")
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()
