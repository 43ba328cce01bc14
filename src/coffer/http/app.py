"""The ASGI application: HTTP in, ``Request`` to core, ``Response`` out.

Only translation lives here: verbs to operations, bodies and query strings
to data, results and errors to Vault's JSON envelope and status codes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import orjson

from coffer.core.core import Core
from coffer.core.metrics import FLUSH_AT, metrics_response
from coffer.durations import parse_duration
from coffer.errors import CofferError, InvalidRequest, Throttled, UnsupportedMediaType, UnsupportedOperation
from coffer.framework.request import DELETE, HELP, LIST, PATCH, READ, UPDATE, Operation, Request, Response
from coffer.http.body import BodyLimits, BodyReader
from coffer.http.forward import FORWARDED_FOR, LOCAL_ON_STANDBY, Forwarder, Relayed
from coffer.http.ui import StaticUI
from coffer.http.watch import Disconnected, DisconnectWatch
from coffer.storage.base import LockLost
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
#: Paths whose PUT/POST body is not JSON but a file (a snapshot to restore): spooled, handed over as req.upload.
RAW_UPLOAD_PATHS = frozenset({"sys/storage/raft/snapshot", "sys/storage/raft/snapshot-force"})


_monotonic = time.monotonic
#: Operations as plain strings (the metrics' records must hold no object the garbage collector tracks).
_OPERATION_NAMES: dict[str, str] = {op: str(op.value) for op in Operation}

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


def _list_limit(value: str) -> int:
    """LIST's ``limit`` query parameter (as OpenBao: absent, empty, 0 or negative means no limit)."""
    text = value.strip()
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        raise InvalidRequest(f'limit must be a whole number of keys, such as limit=100, not "{text[:40]}"') from None


def page_keys(data: dict[str, Any], after: str, limit: int) -> dict[str, Any]:
    """A LIST answer cut to the keys sorted after ``after``, at most ``limit`` (``key_info`` follows)."""
    keys = data.get("keys")
    if not isinstance(keys, list):
        return data
    kept = [k for k in keys if not after or (isinstance(k, str) and k > after)]
    if limit:
        kept = kept[:limit]
    paged = {**data, "keys": kept}
    if isinstance(data.get("key_info"), dict):
        wanted = set(kept)
        paged["key_info"] = {k: v for k, v in data["key_info"].items() if k in wanted}
    return paged


class RawBody:
    """A response body that is not JSON (sys/metrics in Prometheus' format), or a stream of chunks (a snapshot)."""

    __slots__ = ("content", "content_type", "stream")

    def __init__(self, content: bytes, content_type: str, stream: AsyncIterator[bytes] | None = None) -> None:
        self.content = content
        self.content_type = content_type
        self.stream = stream


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


class App:
    """The ASGI callable. One per server; it holds the core."""

    def __init__(self, core: Core, limits: BodyLimits | None = None, *, ui: bool = False,
                 unauthenticated_metrics: bool = False) -> None:
        self.core = core
        self.bodies = BodyReader(limits or BodyLimits())
        self.disconnects = DisconnectWatch()
        self.ui = StaticUI(enabled=ui)
        #: The listener's telemetry.unauthenticated_metrics_access: sys/metrics is answered without a token.
        self.unauthenticated_metrics = unauthenticated_metrics
        self._answered = core.metrics.pending
        self._flush = core.metrics.flush
        self.forwarder = Forwarder(core.ha, self.bodies) if core.ha is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if not scope["path"].startswith("/v1/") and self.ui.handles(scope["path"]):
            await self.ui.serve(scope, send)
            return
        started = _monotonic()
        extra: list[tuple[bytes, bytes]] = []
        status, payload, req = await self._serve(scope, receive, extra)
        if not 200 <= status <= 599:  # granian aborts the whole process on an invalid status
            log.error("refusing to send status %s for %s %s", status, method, scope.get("path"))
            status, payload = 500, {"errors": [f"internal error: a handler answered HTTP status {status}"]}
        ended = _monotonic()
        if payload is None:
            await send({"type": "http.response.start", "status": status, "headers": _EMPTY_HEADERS + extra})
            await send({"type": "http.response.body", "body": b""})
        elif isinstance(payload, Relayed):
            await send({"type": "http.response.start", "status": status, "headers": payload.headers + extra})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload.body})
        elif isinstance(payload, RawBody):
            headers = [(b"content-type", payload.content_type.encode()), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": status, "headers": headers + extra})
            if payload.stream is not None:
                await self._send_stream(payload.stream, send, method == "HEAD")
            else:
                await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload.content})
        else:
            body = orjson.dumps(payload)
            await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS + extra})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        # The metrics step: one record per answered request (after the answer went out), folded into the
        # request histogram in batches (core/metrics.py).
        # Only plain str, int and float in the record: the collector then stops tracking it, so records
        # waiting for the next fold never make garbage collections longer.
        answered = self._answered
        answered.append((req.mount.type, _OPERATION_NAMES.get(req.operation) or str(req.operation), status,
                         ended - started) if req is not None else ("", "unknown", status, ended - started))
        if len(answered) >= FLUSH_AT:
            self._flush()

    @staticmethod
    async def _send_stream(stream: AsyncIterator[bytes], send: Any, head: bool) -> None:
        """Send ``stream``'s chunks as they come. Should it fail half-way, the body is cut off there (the status
        is already sent) and the connection dropped: a snapshot cut short is refused as truncated by a restore."""
        try:
            if not head:
                async for chunk in stream:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception:
            # The answer is never completed: the connection is dropped, so the client sees it cut short.
            log.exception("a streamed answer failed half-way; its connection is dropped")
            raise
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()
        await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(self, scope: dict[str, Any], receive: Any,
                     extra_headers: list[tuple[bytes, bytes]]) -> tuple[int, Any, Request | None]:
        """Answers (status, payload, the request as far as it was understood)."""
        method = scope["method"]
        req = None
        try:
            raw_path = scope["path"]
            if not raw_path.startswith("/v1/"):
                return 404, {"errors": ["not found: the API lives under /v1/"]}, None
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            ha = self.core.ha
            own_metrics = self.unauthenticated_metrics
            if ha is not None and self.forwarder is not None and self.core.standby and not self._local(raw_path[4:]):
                if raw_path == "/v1/sys/metrics" and method in ("GET", "HEAD"):
                    # A standby's own figures (not the active node's), for a token the active node says may read them.
                    refusal = await self.forwarder.authorize(scope)
                    if refusal is not None:
                        return (*refusal, None)
                    own_metrics = True
                else:
                    status, payload = await self.forwarder.forward(scope, receive, headers, _content_length(headers))
                    return status, payload, None
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
            remote_addr = client[0] if client else ""
            signed = headers.pop(FORWARDED_FOR, None)
            if signed is not None and ha is not None:
                # Forwarded by a standby: its client's address, when the cluster key's signature checks.
                remote_addr = ha.verify_address(signed) or remote_addr
            path = raw_path[4:]  # ASGI servers already percent-decode scope["path"]
            if operation == LIST and not path.endswith("/"):
                path += "/"  # as in Vault: a list is always of a folder, for routing and the ACL alike
            req = Request(
                operation=operation,
                path=path,
                client_token=token,
                remote_addr=remote_addr,
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
                if method in _WRITE_METHODS and path in RAW_UPLOAD_PATHS:
                    req.upload = await self.bodies.spool(receive, _content_length(headers))
                else:
                    body = await self.bodies.read(receive, _content_length(headers))
                    if method in _BODY_METHODS:
                        req.data = self.bodies.parse(body, headers.get("content-type", ""))
                    del body
            if operation == LIST:
                req.list_after = query.pop("after", "")
                req.list_limit = _list_limit(query.pop("limit", ""))
            if operation == READ or operation == LIST:
                req.data.update({k: v for k, v in query.items() if k not in ("list", "help")})
            if own_metrics and operation == READ and path == "sys/metrics":
                resp: Response | None = await metrics_response(self.core.metrics, query.get("format", ""))
            else:
                resp = await self.disconnects.run(self.core.handle(req), receive)
        except Disconnected:
            return 499, None, req  # nobody is listening any more
        except LockLost as exc:  # HA: this node lost the lock while serving; nothing of the write was applied
            return 503, {"errors": [f"this node is no longer the active node ({exc.reason}); retry the request"]}, req
        except CofferError as exc:
            if isinstance(exc, Throttled):
                extra_headers.append((b"retry-after", str(max(1, int(exc.retry_after))).encode()))
            return exc.status, {"errors": exc.messages}, req
        except Exception:
            request_id = req.request_id if req else "-"
            log.exception("internal error serving %s %s (request %s)", method, scope.get("path"), request_id)
            return 500, {"errors": [f"internal error; the server log has details (request id {request_id})"]}, req
        finally:
            if req is not None and req.upload is not None:
                req.upload.close()
        return (*self._render(req, resp), req)

    def _local(self, path: str) -> bool:
        """True for what a standby answers itself (sys/metrics too, when it needs no token)."""
        return path in LOCAL_ON_STANDBY or (self.unauthenticated_metrics and path == "sys/metrics")

    def _render(self, req: Request, resp: Response | None) -> tuple[int, Any]:
        if resp is None:
            if req.operation in (READ, LIST):
                return 404, {"errors": []}
            return 204, None
        if resp.stream is not None:
            return resp.status or 200, RawBody(b"", resp.content_type or "application/octet-stream", resp.stream)
        if resp.body is not None:
            return resp.status or 200, RawBody(resp.body, resp.content_type or "application/octet-stream")
        if resp.raw:
            return resp.status or 200, resp.data
        if req.operation == LIST and (req.list_after or req.list_limit) and resp.data:
            resp.data = page_keys(resp.data, req.list_after, req.list_limit)
        if req.operation == LIST and not (resp.data or {}).get("keys"):
            return 404, {"errors": []}
        if resp.data is None and not (resp.auth or resp.warnings or resp.secret or resp.lease_id or resp.wrap_info):
            return resp.status or 204, None
        return resp.status or 200, envelope(req, resp)
