"""The web UI's static files (src/coffer/ui/), served at ``/ui/``.

The UI is plain HTML, CSS and ES modules: there is no build step, and it loads
nothing from elsewhere (the server may have no internet). Every action it
takes goes through the same HTTP API (``/v1/...``) with the user's token, so
ACLs apply to it exactly as to any client.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".ico": "image/x-icon", ".json": "application/json"}
# Only this server's own scripts, styles and API; no frames, no inline script.
_SECURITY = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class StaticUI:
    """Answers GET/HEAD for ``/``, ``/ui`` and ``/ui/<file>``; files are read once and kept."""

    def __init__(self, root: Path = UI_DIR, enabled: bool = True) -> None:
        self.root = root.resolve()
        self.enabled = enabled
        self._cache: dict[Path, tuple[bytes, str]] = {}

    @staticmethod
    def handles(path: str) -> bool:
        return path in ("/", "/ui") or path.startswith("/ui/")

    def _file(self, rel: str) -> tuple[bytes, str] | None:
        # Kept by the file itself, not by how the caller spelled its path (js//app.js, ./js/app.js, ...): an
        # unauthenticated caller could otherwise make the server keep a copy per spelling.
        target = (self.root / rel).resolve()
        cached = self._cache.get(target)
        if cached is not None:
            return cached
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        kind = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        found = (target.read_bytes(), kind)
        self._cache[target] = found
        return found

    async def serve(self, scope: dict[str, Any], send: Any) -> None:
        path, method = scope["path"], scope["method"]
        if not self.enabled:
            await _send(send, 404, b'{"errors":["the web UI is off; set ui = true in the server configuration"]}',
                        "application/json", method)
            return
        if path in ("/", "/ui"):
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", b"/ui/"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b'{"errors":["the UI is read with GET"]}', "application/json", method)
            return
        rel = path[len("/ui/"):] or "index.html"
        found = None if "\x00" in rel else self._file(rel)
        if found is None:
            await _send(send, 404, b'{"errors":["no such file in the UI"]}', "application/json", method)
            return
        body, kind = found
        await _send(send, 200, body, kind, method)


async def _send(send: Any, status: int, body: bytes, kind: str, method: str) -> None:
    headers = [(b"content-type", kind.encode()), (b"cache-control", b"no-cache"),
               (b"content-length", str(len(body)).encode()), *_SECURITY]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
