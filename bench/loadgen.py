"""A small asyncio HTTP/1.1 keep-alive load generator.

Used where wrk is not available (closed loop, like wrk), and always for the
paced background reader of the lease sweep (a fixed request rate per worker,
so the reader measures latency without stealing the server's CPU).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"


class _Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def roundtrip(self, raw: bytes) -> int:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0].strip() or b"0", 16)
                await self.reader.readexactly(size + 2) if size else await self.reader.readline()
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status


def build_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Recorder:
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0


async def _worker(port: int, make: Callable[[], bytes], deadline: float, rec: Recorder, pace: float,
                  max_requests: int | None, counter: list[int]) -> None:
    conn = _Conn(port)
    try:
        while time.monotonic() < deadline:
            if max_requests is not None:
                if counter[0] >= max_requests:
                    return
                counter[0] += 1
            t0 = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.roundtrip(make()), timeout=30)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - any failed request counts as an error, the worker goes on
                conn.close()
                rec.errors += 1
                await asyncio.sleep(0.01)
                continue
            dt = time.perf_counter() - t0
            rec.latencies_ms.append(dt * 1000)
            if 200 <= status < 300:
                rec.ok += 1
            else:
                rec.errors += 1
            if pace > dt:
                await asyncio.sleep(pace - dt)
    finally:
        conn.close()


async def drive(port: int, make: Callable[[], bytes], *, seconds: float, connections: int, pace: float = 0.0,
                max_requests: int | None = None, stop: asyncio.Event | None = None) -> tuple[Recorder, float]:
    """Run ``connections`` workers until ``seconds`` pass (or ``stop`` is set, or
    ``max_requests`` were sent); answers the recorder and the elapsed time."""
    rec = Recorder()
    start = time.monotonic()
    deadline = start + seconds
    counter = [0]
    tasks = [asyncio.create_task(_worker(port, make, deadline, rec, pace, max_requests, counter))
             for _ in range(connections)]
    if stop is not None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass
        for t in tasks:
            t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r
    return rec, time.monotonic() - start


def run_load(port: int, path: str, *, seconds: float, connections: int, method: str = "GET", body: bytes = b"",
             headers: dict[str, str] | None = None, max_requests: int | None = None):
    """Closed-loop load like wrk's (the fallback when wrk is missing)."""
    from common import LoadResult, percentile

    raw = build_request(port, method, path, headers or {}, body)
    rec, elapsed = asyncio.run(drive(port, lambda: raw, seconds=seconds, connections=connections,
                                        max_requests=max_requests))
    total = rec.ok + rec.errors
    return LoadResult(total, elapsed, total / elapsed, percentile(rec.latencies_ms, 50),
                      percentile(rec.latencies_ms, 99), rec.errors, "loadgen.py")
