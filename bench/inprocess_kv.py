"""CPU cost of one KV read, one KV write and one token creation through coffer's ASGI app, in-process (no
sockets, no HTTP server).

What the socket benchmarks cannot show on a machine whose speed drifts: how much of coffer's own code a request
runs. It times the same request loop under two checkouts, side by side, so a per-request regression is visible
in microseconds::

    .venv/bin/python bench/inprocess_kv.py                     # this checkout
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python bench/inprocess_kv.py

In-memory storage, kv version 1 at secret/, a non-root token whose policy allows secret/* (so each request runs
the token lookup and the ACL), 5,000 requests per repetition, CPU time of this process (``time.process_time``),
the best of 5 repetitions. It works against checkouts from before the auth-method and kv v2 changes too.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from typing import Any

import orjson

from coffer import engines
from coffer.core.core import Core
from coffer.http.app import App
from coffer.server import dev_setup
from coffer.storage.inmem import InmemStorage

REQUESTS = int(os.environ.get("N", "5000"))
POLICY = 'path "secret/*" { capabilities = ["create", "read", "update"] }'


async def main() -> None:
    kwargs: dict[str, Any] = {"engines": engines.builtin_engines()}
    if hasattr(engines, "builtin_auth_methods"):
        kwargs["auth_methods"] = engines.builtin_auth_methods()
    core = Core(InmemStorage(), **kwargs)
    await core.load_seal_config()
    if "kv_version" in inspect.signature(dev_setup).parameters:
        await dev_setup(core, "root", kv_version=1)
    else:
        await dev_setup(core, "root")
    app = App(core)

    async def call(method: str, path: str, token: str, body: bytes | None = None) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body or b"", "more_body": False}]
        headers = [(b"x-vault-token", token.encode()), (b"content-type", b"application/json")]
        if body is not None:
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": "/v1/" + path, "query_string": b"",
                 "headers": headers, "http_version": "1.1", "client": ("127.0.0.1", 1)}

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    await call("POST", "sys/policy/bench", "root", orjson.dumps({"policy": POLICY}))
    created = await call("POST", "auth/token/create", "root", orjson.dumps({"policies": ["bench"]}))
    token = orjson.loads(created[1]["body"])["auth"]["client_token"]
    value = b'{"value": "hello"}'
    await call("POST", "secret/bench", token, value)
    answer = await call("GET", "secret/bench", token)
    assert answer[0]["status"] == 200, answer
    child = orjson.dumps({"policies": ["bench"], "ttl": "1h"})
    for name, args in (("GET", ("GET", "secret/bench", token)), ("PUT", ("POST", "secret/bench", token, value)),
                       ("token create", ("POST", "auth/token/create", "root", child))):
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(REQUESTS):
                await call(*args)
            best = min(best, (time.process_time() - started) / REQUESTS)
        print(f"{name} {best * 1e6:.1f} us per request")
    await core.shutdown()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())
