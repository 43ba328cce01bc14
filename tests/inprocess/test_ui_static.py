"""The web UI's static files at /ui/ (http/ui.py): served from the package, nothing outside it."""

from __future__ import annotations

import re

import httpx

from coffer.http.app import App
from coffer.http.ui import UI_DIR, StaticUI


async def _get(app: App, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://coffer") as client:
        return await client.request(method, path)


async def test_the_ui_is_served_with_a_strict_policy(coffer):
    app = App(coffer.core, ui=True)
    index = await _get(app, "/ui/")
    assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="js/app.js">' in index.text
    csp = index.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    script = await _get(app, "/ui/js/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for path in ("/", "/ui"):
        moved = await _get(app, path)
        assert moved.status_code == 307 and moved.headers["location"] == "/ui/"
    assert (await _get(app, "/ui/js/app.js", "HEAD")).content == b""
    assert (await _get(app, "/ui/nothing.js")).status_code == 404
    assert (await _get(app, "/ui/../../pyproject.toml")).status_code == 404
    assert (await _get(app, "/ui/%2e%2e/__init__.py")).status_code == 404
    assert (await _get(app, "/ui/", "POST")).status_code == 405
    # The API is still the API.
    assert (await _get(app, "/v1/sys/seal-status")).json()["sealed"] is False


async def test_the_ui_is_off_unless_asked(coffer):
    off = await _get(App(coffer.core), "/ui/")
    assert off.status_code == 404 and "ui = true" in off.json()["errors"][0]


def test_every_file_the_ui_loads_is_in_the_package():
    """No CDN, no build: every module an ES import names, every file index.html links, exists in src/coffer/ui."""
    html = (UI_DIR / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not ref.startswith(("http:", "https:", "//")), ref
        assert (UI_DIR / ref).is_file(), ref
    for module in UI_DIR.rglob("*.js"):
        for ref in re.findall(r'from "([^"]+)"', module.read_text()):
            assert ref.startswith("."), f"{module.name} imports {ref} from elsewhere"
            assert (module.parent / ref).resolve().is_file(), f"{module.name}: {ref}"


def test_a_file_is_kept_once_however_its_path_is_spelled():
    """Unauthenticated callers choose the path: spellings of one file (``js//app.js``, ``./js/app.js``, ...)
    must not each keep a copy of it in memory."""
    ui = StaticUI()
    spellings = ["js/app.js"] + [f"{'./' * n}js/{'/' * n}app.js" for n in range(1, 200)]
    answers = {ui._file(rel) for rel in spellings}
    assert len(answers) == 1 and next(iter(answers)) is not None
    assert len(ui._cache) == 1
