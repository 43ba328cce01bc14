"""Request bodies: read within limits (size, time, a server-wide budget), parsed into request data.

A body is never processed unless it arrived whole: one cut short of its
Content-Length, or by a disconnect, is refused. JSON is refused when it nests
deeper than the responses can be written back, or carries integers beyond 64
bits (which would otherwise silently become floats).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from urllib.parse import parse_qsl

import orjson

from coffer.errors import CofferError, InvalidRequest, PayloadTooLarge

#: Vault's listener defaults.
MAX_REQUEST_SIZE = 32 * 1024 * 1024
READ_TIMEOUT = 30.0
#: The largest raw upload (a snapshot to restore): spooled to a temporary file, never held in memory.
MAX_UPLOAD_SIZE = 64 * 1024 * 1024 * 1024
#: orjson writes at most 254 levels; responses, audit entries and wrapped responses add a few.
MAX_JSON_DEPTH = 200
_INT64 = 2**63


class RequestTimeout(CofferError):
    status = 408
    default_message = "the request body did not arrive in time"


class Busy(CofferError):
    status = 503
    default_message = "the server is busy"


class ClientGone(InvalidRequest):
    """The client disconnected before its body was complete."""


@dataclass
class BodyLimits:
    max_request_size: int = MAX_REQUEST_SIZE
    read_timeout: float = READ_TIMEOUT
    max_json_depth: int = MAX_JSON_DEPTH

    @property
    def budget(self) -> int:
        """Bytes of bodies the whole server buffers at once."""
        return max(4 * self.max_request_size, 64 * 1024 * 1024)


class BodyReader:
    """Reads bodies under ``limits``, keeping the server-wide count of bytes in flight."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.in_flight = 0
        # The read timeout: rather than a timer per body (a cost on every write), each reading task notes
        # its deadline here and one watchdog, running while any body is being read, cancels the late ones.
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def _watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._deadlines[task] = deadline
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._cancel_late())

    async def _cancel_late(self) -> None:
        """Cancel every body read past its deadline, checking a few times per timeout (at most every 0.25 s)."""
        loop = asyncio.get_running_loop()
        try:
            while self._deadlines:
                await asyncio.sleep(min(0.25, self.limits.read_timeout / 4))
                now = loop.time()
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now and task not in self._late:
                        self._late.add(task)
                        task.cancel()
        finally:
            self._watchdog = None

    def _reserve(self, size: int) -> None:
        if self.in_flight + size > self.limits.budget:
            raise Busy("the server is buffering too many large request bodies at once; retry shortly")
        self.in_flight += size

    async def read(self, receive: Any, length: int | None) -> bytearray:
        """The whole body (``length`` from Content-Length, None when chunked)."""
        limit = self.limits.max_request_size
        if length is not None and length > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes (the listener's max_request_size)")
        body = bytearray()
        self._reserve(length or 0)
        reserved = length or 0
        task = asyncio.current_task()
        if task is not None:
            self._watch(task, asyncio.get_running_loop().time() + self.limits.read_timeout)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone("the client disconnected before the request body was complete")
                chunk = message.get("body", b"")
                if chunk:
                    if len(body) + len(chunk) > limit:
                        raise PayloadTooLarge(f"request body is larger than {limit} bytes "
                                              "(the listener's max_request_size)")
                    if len(body) + len(chunk) > reserved:
                        grow = len(body) + len(chunk) - reserved
                        self._reserve(grow)
                        reserved += grow
                    body += chunk
                if not message.get("more_body"):
                    break
        except asyncio.CancelledError:
            if task is None or task not in self._late:
                raise
            task.uncancel()
            raise RequestTimeout(f"the request body did not arrive within {self.limits.read_timeout:g}s "
                                 "(the listener's http_read_timeout)") from None
        finally:
            self.in_flight -= reserved
            if task is not None:
                self._deadlines.pop(task, None)
                self._late.discard(task)
        if length is not None and len(body) != length:
            raise InvalidRequest(f"the request body has {len(body)} bytes but Content-Length says {length}")
        return body

    async def spool(self, receive: Any, length: int | None) -> BinaryIO:
        """The whole body in a private temporary file (mode 0600, already unlinked), read from its start.

        For raw uploads (a snapshot to restore): the body may be far larger than max_request_size, so the
        listener's read timeout applies to each piece of it rather than to the whole.
        """
        if length is not None and length > MAX_UPLOAD_SIZE:
            raise PayloadTooLarge(f"the upload is larger than {MAX_UPLOAD_SIZE} bytes")
        file = cast(BinaryIO, tempfile.TemporaryFile())  # handed to the request; http/ closes it
        size = 0
        try:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), timeout=self.limits.read_timeout)
                except TimeoutError:
                    raise RequestTimeout(f"the upload stalled for {self.limits.read_timeout:g}s (the listener's "
                                         "http_read_timeout)") from None
                if message["type"] == "http.disconnect":
                    raise ClientGone("the client disconnected before the upload was complete")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > MAX_UPLOAD_SIZE:
                        raise PayloadTooLarge(f"the upload is larger than {MAX_UPLOAD_SIZE} bytes")
                    file.write(chunk)
                if not message.get("more_body"):
                    break
            if length is not None and size != length:
                raise InvalidRequest(f"the request body has {size} bytes but Content-Length says {length}")
            file.seek(0)
        except BaseException:
            file.close()
            raise
        return file

    def parse(self, body: bytes | bytearray, content_type: str) -> dict[str, Any]:
        """Request data from a JSON object (or a form) body."""
        stripped = body.lstrip()
        if not stripped:
            return {}
        # curl -d sends JSON labelled as a form; a body that opens like JSON is JSON.
        if content_type.startswith("application/x-www-form-urlencoded") and stripped[:1] not in (b"{", b"["):
            return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "infinity" in str(exc):  # an integer too large even for a double
                _refuse_big_integers(body)
            raise InvalidRequest(f"failed to parse JSON input: {exc}") from None
        if data is None:  # what Go's client sends for a write without data (bao write -f, bao unwrap)
            return {}
        if not isinstance(data, dict):
            raise InvalidRequest("the request body must be a JSON object")
        if _check(data, self.limits.max_json_depth):
            _refuse_big_integers(body)
        return {k: v for k, v in data.items() if v is not None}


def _check(value: Any, max_depth: int) -> bool:
    """Refuse nesting deeper than ``max_depth``; answers whether a float could be an integer over 64 bits."""
    suspicious = False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if isinstance(item, float) and abs(item) >= _INT64 and item.is_integer():
                suspicious = True
            continue
        if depth > max_depth:
            raise InvalidRequest(f"the JSON body nests deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
    return suspicious


class _BigInt(str):
    """An integer literal beyond 64 bits, as the standard parser met it."""


def _refuse_big_integers(body: bytes | bytearray) -> None:
    """orjson reads an integer beyond 64 bits as a float; the standard parser tells which it was, and where."""

    def integer(text: str) -> int | _BigInt:
        number = int(text)
        return number if -_INT64 <= number < _INT64 else _BigInt(text)

    stack: list[tuple[str, Any]] = [("", json.loads(bytes(body), parse_int=integer))]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _BigInt):
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise InvalidRequest(f'invalid value for field "{where}": the integer {shown} is beyond 64 bits; '
                                 "send it as a string")
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
