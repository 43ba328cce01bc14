"""The KV benchmark's baseline: a bare ASGI app on the same HTTP server as coffer.

Same server and flags as ``coffer.server.serve``: granian's embedded
``Server`` with ``Interfaces.ASGINL``, in a uvloop loop, backlog 1024, access
log off, plain HTTP. It answers a GET with the exact bytes (and headers) of
coffer's answer to ``GET /v1/secret/bench`` (given in a file), and a PUT/POST
(after reading the body) with coffer's answer to a kv write: 204, no body.
Everything coffer does between "request in" and "response out" is missing:
that is what the ratio measures.

    python bench/bare_app.py --port 8300 --body-file body.json
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import uvloop
from granian.constants import Interfaces
from granian.server.embed import Server

_JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_EMPTY_HEADERS = [(b"cache-control", b"no-store")]


def make_app(body: bytes):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        # read the whole body when the request has one, as coffer does
        names = {k for k, _ in scope["headers"]}
        if b"content-length" in names or b"transfer-encoding" in names or scope.get("http_version") not in ("1.1", "1.0"):
            while True:
                message = await receive()
                if not message.get("more_body"):
                    break
        if scope["method"] in ("PUT", "POST"):
            await send({"type": "http.response.start", "status": 204, "headers": _EMPTY_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve(port: int, body: bytes) -> None:
    server = Server(
        make_app(body),
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGINL,
        log_enabled=False,
        ssl_cert=None,
        ssl_key=None,
        ssl_protocol_min="tls1.2",
        backlog=1024,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.body_file.read_bytes()))


if __name__ == "__main__":
    main()
