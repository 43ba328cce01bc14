"""The one HTTP client the CLI (and tests) use to talk to a coffer server.

Built on the standard library: it needs custom verbs (LIST), TLS options and
nothing else, so no third-party HTTP stack is pulled into the CLI.
"""

from __future__ import annotations

import http.client
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import orjson

from coffer.truth import TRUE_WORDS

DEFAULT_ADDRESS = "http://127.0.0.1:8200"
TOKEN_FILE = Path("~/.coffer-token")
#: Where the vault CLI keeps its token: read when coffer's own file is absent.
VAULT_TOKEN_FILE = Path("~/.vault-token")
DEFAULT_TIMEOUT = 60.0


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, method: str, url: str, status: int, errors: list[str], warnings: list[str] | None = None,
                 body: Any = None) -> None:
        super().__init__(f"{method} {url}: {status}")
        self.method, self.url, self.status, self.errors = method, url, status, errors
        self.warnings = warnings or []
        self.body = body


class ConnectionFailed(Exception):
    """The server could not be reached."""


def env(name: str) -> str | None:
    """``COFFER_<name>``, else ``VAULT_<name>`` (the vault CLI's variable), else None."""
    return os.environ.get(f"COFFER_{name}") or os.environ.get(f"VAULT_{name}") or None


def env_flag(name: str) -> bool:
    value = env(name)
    return value is not None and value.strip().lower() in TRUE_WORDS


def default_address() -> str:
    return env("ADDR") or DEFAULT_ADDRESS


def default_token() -> str | None:
    """COFFER_TOKEN, else VAULT_TOKEN, else ~/.coffer-token, else ~/.vault-token (the vault CLI's file)."""
    token = env("TOKEN")
    if token:
        return token
    for file in (TOKEN_FILE, VAULT_TOKEN_FILE):
        path = file.expanduser()
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def default_timeout() -> float:
    """COFFER_CLIENT_TIMEOUT / VAULT_CLIENT_TIMEOUT (seconds, or a duration such as 30s or 2m), else 60 s."""
    from coffer.durations import parse_duration

    raw = env("CLIENT_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise ConnectionFailed(f"invalid client timeout (COFFER_CLIENT_TIMEOUT or VAULT_CLIENT_TIMEOUT): {exc}") \
            from None
    return float(seconds) or DEFAULT_TIMEOUT


def save_token(token: str) -> Path:
    """Write ``token`` to the token file (``~/.coffer-token``), readable by its owner only.

    The file is private from the start: created with mode 0600, and a file
    already there is made 0600 before the token goes in.
    """
    path = TOKEN_FILE.expanduser()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)
        fh.truncate()
        fh.write(token)
    return path


@dataclass
class Reply:
    status: int
    body: Any  # parsed JSON, or None for 204


class Client:
    def __init__(self, address: str | None = None, token: str | None = None, *, ca_cert: str | None = None,
                 tls_skip_verify: bool = False, timeout: float | None = None) -> None:
        self.address = (address or default_address()).rstrip("/")
        self.token = token if token is not None else default_token()
        self.timeout = timeout if timeout is not None else default_timeout()
        #: Ask for every answer wrapped with this TTL (X-Vault-Wrap-TTL), e.g. "5m".
        self.wrap_ttl: str | None = None
        self._ssl: ssl.SSLContext | None = None
        if self.address.startswith("https://"):
            ctx = ssl.create_default_context(cafile=ca_cert or env("CACERT"))
            if tls_skip_verify or env_flag("SKIP_VERIFY"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = f"{self.address}/v1/{quote(path.lstrip('/'), safe='/-_.~@:')}"
        return f"{url}?{urlencode(params)}" if params else url

    def request(self, method: str, path: str, data: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None, ok: tuple[int, ...] = (),
                content_type: str = "application/json") -> Reply:
        url = self.url(path, params)
        body = orjson.dumps(data) if data is not None else None
        headers = {"Content-Type": content_type} if body is not None else {}
        if self.token:
            headers["X-Vault-Token"] = self.token
        if self.wrap_ttl:
            headers["X-Vault-Wrap-TTL"] = self.wrap_ttl
        try:
            req = urllib.request.Request(url, data=body, method=method, headers=headers)
        except ValueError as exc:
            raise ConnectionFailed(f"invalid server address {self.address}: {exc}") from None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                return Reply(resp.status, _json(resp.read()))
        except urllib.error.HTTPError as exc:
            payload = _json(exc.read())
            if exc.code in ok:
                return Reply(exc.code, payload)
            errors = payload.get("errors", []) if isinstance(payload, dict) else []
            warnings = (payload.get("warnings") or []) if isinstance(payload, dict) else []
            raise ApiError(method, url, exc.code, [str(e) for e in errors or []], [str(w) for w in warnings],
                           payload) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
                # Something answered that does not speak HTTP (BadStatusLine, IncompleteRead, ...).
                reason = f"not an HTTP answer ({type(exc).__name__}: {exc})"
            raise ConnectionFailed(f"cannot reach the server at {self.address}: {reason}") from None

    def download(self, path: str, out: BinaryIO, chunk_size: int = 256 * 1024) -> int:
        """GET ``path`` and write its raw body to ``out`` as it arrives (a snapshot); answers the bytes written."""
        written = 0
        with self._open("GET", path, None, {}) as resp:
            while chunk := resp.read(chunk_size):
                out.write(chunk)
                written += len(chunk)
        return written

    def upload(self, method: str, path: str, file: BinaryIO, size: int) -> Reply:
        """Send ``size`` bytes of ``file`` as the raw request body (a snapshot to restore), streamed."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with self._open(method, path, file, headers) as resp:
            return Reply(resp.status, _json(resp.read()))

    def _open(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        url = self.url(path)
        if self.token:
            headers["X-Vault-Token"] = self.token
        try:
            req = urllib.request.Request(url, data=body, method=method, headers=headers)
        except ValueError as exc:
            raise ConnectionFailed(f"invalid server address {self.address}: {exc}") from None
        try:
            return urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl)
        except urllib.error.HTTPError as exc:
            payload = _json(exc.read())
            errors = payload.get("errors", []) if isinstance(payload, dict) else []
            raise ApiError(method, url, exc.code, [str(e) for e in errors or []], [], payload) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed(f"cannot reach the server at {self.address}: {getattr(exc, 'reason', exc)}") \
                from None

    # Shorthands for the logical operations.
    def read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).body

    def write(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self.request("PUT", path, data or {}).body

    def list(self, path: str) -> Any:
        return self.request("LIST", path).body

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).body

    def patch(self, path: str, data: dict[str, Any]) -> Any:
        """A JSON merge patch (kv version 2's data/ and metadata/)."""
        return self.request("PATCH", path, data, content_type="application/merge-patch+json").body


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"errors": [raw.decode("utf-8", "replace")[:500]]}
