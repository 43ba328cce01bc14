"""Playwright driving Debian's Chromium (/usr/bin/chromium, installed by `make test`): no browser download.

Without the browser or the playwright package the browser tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("COFFER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Screenshots of the main pages. They go to a temporary directory, so a test run leaves the tree clean;
#: ``COFFER_SCREENSHOTS=docs/screenshots`` refreshes the ones the README links to.
SCREENSHOTS = Path(os.environ.get("COFFER_SCREENSHOTS", Path(tempfile.gettempdir()) / "coffer-screenshots"))


def _why_not() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium; make test does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is missing ({exc}); pip install -e '.[test]'"
    return ""


# Per module, not per session: while Playwright's sync API is open, asyncio sees a running loop in this thread,
# which the rest of the suite (asyncio.run, pytest-asyncio) must not.
@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # a browser that cannot start here: say so rather than fail every test
            pytest.skip(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def shot(page, name: str) -> None:
    """Save a screenshot of the page as <name>.png in SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
