"""The ASGI application: HTTP in, ``Request`` to core, ``Response`` out.

Only translation lives here: verbs to operations, bodies and query strings
to data, results and errors to Vault's JSON envelope and status codes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import parse_qsl

import orjson

from coffer.core.core import Core
from coffer.durations import parse_duration
from coffer.errors import CofferError, InvalidRequest, Throttled, UnsupportedMediaType, UnsupportedOperation
from coffer.framework.request import DELETE, HELP, LIST, PATCH, READ, UPDATE, Request, Response
from coffer.http.body import BodyLimits, BodyReader
from coffer.truth import TRUE_WORDS

log = logging.getLogger("coffer.http")

_TRUE = TRUE_WORDS  # query flags (?list=, ?help=): any other word is false
_JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_EMPTY_HEADERS = [(b"cache-control", b"no-store")]
_WRITE_METHODS = {"PUT", "POST"}
# PATCH is its own operation (a JSON merge patch, kv v2's data/ and metadata/): never a write, which would
# replace a whole secret with the patch. Engines without a patch handler answer 405, as Vault does.
_BODY_METHODS = {"PUT", "POST", "PATCH"}
MERGE_PATCH = "application/merge-patch+json"


_random = b""
_random_at = 0


def new_request_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` makes.

    Its 16 random bytes come from a 4 KiB buffer of os.urandom, refilled every 256 ids:
    os.urandom releases the GIL, and on a busy server taking it back once per request
    costs far more than the bytes.
    """
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(4096), 0
    raw = bytearray(_random[_random_at:_random_at + 16])
    _random_at += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _operation(method: str, query: dict[str, str]) -> str:
    if method in ("GET", "HEAD"):
        if query.get("help", "").lower() in _TRUE:
            return HELP
        if query.get("list", "").lower() in _TRUE:
            return LIST
        return READ
    if method == "LIST":
        return LIST
    if method in _WRITE_METHODS:
        return UPDATE
    if method == "DELETE":
        return DELETE
    if method == "PATCH":
        return PATCH
    raise UnsupportedOperation(f"method {method} is not supported; use GET, LIST, PUT, POST, PATCH or DELETE")


def _content_length(headers: dict[str, str]) -> int | None:
    length = headers.get("content-length")
    if length is None:
        return None
    if not length.strip().isdigit():
        raise InvalidRequest(f"invalid Content-Length header {length[:40]!r}")
    return int(length)


#: Vault's durations are 64-bit nanosecond counts.
_MAX_WRAP_TTL = (2**63 - 1) // 1_000_000_000


def _wrap_ttl(value: str | None) -> int:
    """X-Vault-Wrap-TTL: seconds or a duration ("5m"); 0 or absent: no wrapping."""
    if value is None or not value.strip():
        return 0
    text = value.strip()
    if text.startswith("-"):
        raise InvalidRequest("error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative")
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise InvalidRequest(f"error parsing X-Vault-Wrap-TTL header: {exc}") from None
    if seconds > _MAX_WRAP_TTL:
        raise InvalidRequest(f"error parsing X-Vault-Wrap-TTL header: {text[:40]!r} is too long "
                             f"(at most {_MAX_WRAP_TTL} seconds)")
    return seconds


def envelope(req: Request, resp: Response) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": req.request_id,
        "lease_id": resp.lease_id,
        "renewable": resp.renewable,
        "lease_duration": resp.lease_duration,
        "data": resp.data,
        "wrap_info": resp.wrap_info,
        "warnings": resp.warnings or None,
        "auth": resp.auth,
        "mount_type": req.mount_type,
    }
    if resp.data_at_top_level and resp.data:
        for k, v in resp.data.items():
            body.setdefault(k, v)
    return body


#: A request still running after this many seconds is watched for its client disconnecting.
WATCH_AFTER = 0.05


class _ClientGone(Exception):
    """The client of a running request disconnected."""


class App:
    """The ASGI callable. One per server; it holds the core."""

    def __init__(self, core: Core, limits: BodyLimits | None = None) -> None:
        self.core = core
        self.bodies = BodyReader(limits or BodyLimits())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        extra: list[tuple[bytes, bytes]] = []
        status, payload = await self._serve(scope, receive, extra)
        if not 200 <= status <= 599:  # granian aborts the whole process on an invalid status
            log.error("refusing to send status %s for %s %s", status, method, scope.get("path"))
            status, payload = 500, {"errors": [f"internal error: a handler answered HTTP status {status}"]}
        if payload is None:
            await send({"type": "http.response.start", "status": status, "headers": _EMPTY_HEADERS + extra})
            await send({"type": "http.response.body", "body": b""})
            return
        body = orjson.dumps(payload)
        await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS + extra})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(self, scope: dict[str, Any], receive: Any,
                     extra_headers: list[tuple[bytes, bytes]]) -> tuple[int, Any]:
        method = scope["method"]
        req = None
        try:
            raw_path = scope["path"]
            if not raw_path.startswith("/v1/"):
                return 404, {"errors": ["not found: the API lives under /v1/"]}
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            raw_query = scope.get("query_string", b"")
            query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)) if raw_query else {}
            operation = _operation(method, query)
            if operation == PATCH:
                content_type = headers.get("content-type", "")
                if content_type.split(";")[0].strip().lower() != MERGE_PATCH:
                    raise UnsupportedMediaType(f"PATCH requires Content-Type of {MERGE_PATCH}, provided "
                                               f"{content_type or 'none'}")
            token = headers.get("x-vault-token")
            if not token:
                auth = headers.get("authorization", "")
                token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            client = scope.get("client")
            path = raw_path[4:]  # ASGI servers already percent-decode scope["path"]
            if operation == LIST and not path.endswith("/"):
                path += "/"  # as in Vault: a list is always of a folder, for routing and the ACL alike
            req = Request(
                operation=operation,
                path=path,
                client_token=token,
                remote_addr=client[0] if client else "",
                request_id=new_request_id(),
                headers=headers,
                wrap_ttl=_wrap_ttl(headers.get("x-vault-wrap-ttl")),
            )
            # HTTP/1.x framing: without Content-Length or Transfer-Encoding a request has no
            # body, so there is nothing to receive (saves a round trip through the server).
            if ("content-length" in headers or "transfer-encoding" in headers
                    or scope.get("http_version") not in ("1.1", "1.0")):
                # A request that would be refused anyway (sealed, no valid token) is refused
                # before its body is buffered.
                await self.core.pipeline.admit(req)
                body = await self.bodies.read(receive, _content_length(headers))
                if method in _BODY_METHODS:
                    req.data = self.bodies.parse(body, headers.get("content-type", ""))
                del body
            if operation == READ or operation == LIST:
                req.data.update({k: v for k, v in query.items() if k not in ("list", "help")})
            resp = await self._handle_until_gone(req, receive)
        except _ClientGone:
            return 499, None  # nobody is listening any more
        except CofferError as exc:
            if isinstance(exc, Throttled):
                extra_headers.append((b"retry-after", str(max(1, int(exc.retry_after))).encode()))
            return exc.status, {"errors": exc.messages}
        except Exception:
            request_id = req.request_id if req else "-"
            log.exception("internal error serving %s %s (request %s)", method, scope.get("path"), request_id)
            return 500, {"errors": [f"internal error; the server log has details (request id {request_id})"]}
        return self._render(req, resp)

    async def _handle_until_gone(self, req: Request, receive: Any) -> Response | None:
        """``core.handle(req)``; a request still running after WATCH_AFTER is cancelled when its client
        disconnects (granian does not cancel it), so slow work nobody waits for is dropped."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        watcher: asyncio.Task[None] | None = None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            if task is not None:
                task.cancel()

        def start() -> None:
            nonlocal watcher
            watcher = loop.create_task(watch())

        timer = loop.call_later(WATCH_AFTER, start)
        try:
            return await self.core.handle(req)
        except asyncio.CancelledError:
            if not gone or task is None:
                raise
            task.uncancel()
            raise _ClientGone() from None
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()

    def _render(self, req: Request, resp: Response | None) -> tuple[int, Any]:
        if resp is None:
            if req.operation in (READ, LIST):
                return 404, {"errors": []}
            return 204, None
        if resp.raw:
            return resp.status or 200, resp.data
        if req.operation == LIST and not (resp.data or {}).get("keys"):
            return 404, {"errors": []}
        if resp.data is None and not (resp.auth or resp.warnings or resp.secret or resp.lease_id or resp.wrap_info):
            return resp.status or 204, None
        return resp.status or 200, envelope(req, resp)
