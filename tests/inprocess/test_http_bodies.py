"""Request bodies (issue 11: #6 truncated bodies, #9 JSON depth, #10 bodies before the token, #11 big integers)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from coffer.http.app import App
from coffer.http.body import BodyLimits

from .conftest import ROOT


class Exchange:
    """One request driven straight through the ASGI app, with the body messages we choose."""

    def __init__(self, app: App, method: str, path: str, messages: list[dict], token: str | None = ROOT,
                 length: int | None = None, stall: float = 0.0) -> None:
        self.app, self.messages, self.stall = app, list(messages), stall
        headers = [(b"content-type", b"application/json")]
        if token:
            headers.append((b"x-vault-token", token.encode()))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        else:
            headers.append((b"transfer-encoding", b"chunked"))
        self.scope = {"type": "http", "method": method, "path": f"/v1/{path}", "query_string": b"",
                      "headers": headers, "http_version": "1.1", "client": ("127.0.0.1", 1)}
        self.received = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        self.received += 1
        if not self.messages:
            await asyncio.sleep(3600)  # the client sends nothing more
        if self.stall:
            await asyncio.sleep(self.stall)
        return self.messages.pop(0)

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    async def run(self) -> tuple[int, dict | None]:
        await self.app(self.scope, self.receive, self.send)
        body = self.sent[1]["body"]
        return self.sent[0]["status"], orjson.loads(body) if body else None


def chunk(data: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


async def stored(coffer, path: str) -> int:
    return (await coffer.call("GET", path)).status_code


async def test_a_body_shorter_than_content_length_is_refused(coffer):
    app = App(coffer.core)
    body = b'{"password":"hun"}'
    status, answer = await Exchange(app, "PUT", "secret/cut", [chunk(body, True), {"type": "http.disconnect"}],
                                    length=100).run()
    assert status == 400 and "disconnected" in answer["errors"][0]
    status, answer = await Exchange(app, "PUT", "secret/cut", [chunk(body)], length=100).run()
    assert status == 400 and "Content-Length says 100" in answer["errors"][0]
    status, _ = await Exchange(app, "PUT", "secret/cut", [chunk(body, True), {"type": "http.disconnect"}]).run()
    assert status == 400
    assert await stored(coffer, "secret/cut") == 404
    status, _ = await Exchange(app, "PUT", "secret/cut", [chunk(body)], length=len(body)).run()
    assert status == 204 and await stored(coffer, "secret/cut") == 200


async def test_a_trickled_body_times_out(coffer):
    app = App(coffer.core, BodyLimits(read_timeout=0.3))
    messages = [chunk(b'{"a":', True)] + [chunk(b" ", True)] * 1000 + [chunk(b'"b"}')]
    status, answer = await Exchange(app, "PUT", "secret/slow", messages, length=1006, stall=0.01).run()
    assert status == 408 and "http_read_timeout" in answer["errors"][0]
    status, _ = await Exchange(app, "PUT", "secret/slow", [chunk(b'{"a":', True)], length=10).run()
    assert status == 408
    assert await stored(coffer, "secret/slow") == 404


async def test_no_body_is_read_before_the_token_is_checked(coffer):
    app = App(coffer.core)
    for token in (None, "hvs.not-a-token"):
        ex = Exchange(app, "PUT", "secret/big", [chunk(b"x" * 1024, True)] * 10, token=token, length=31 << 20)
        status, answer = await ex.run()
        assert status == 403 and ex.received == 0
    # unauthenticated paths still read their bodies
    ex = Exchange(app, "PUT", "sys/unseal", [chunk(b'{"reset": true}')], token=None, length=15)
    assert (await ex.run())[0] == 200 and ex.received == 1
    await coffer.core.seal()
    ex = Exchange(app, "PUT", "secret/big", [chunk(b"{}")], length=2)
    assert (await ex.run())[0] == 503 and ex.received == 0


async def test_bodies_in_flight_have_a_server_wide_budget(coffer):
    limits = BodyLimits(max_request_size=1 << 20)
    app = App(coffer.core, limits)
    stuck = [Exchange(app, "PUT", f"secret/b{i}", [chunk(b"{", True)], length=limits.max_request_size)
             for i in range(limits.budget // limits.max_request_size)]
    tasks = [asyncio.ensure_future(ex.run()) for ex in stuck]
    await asyncio.sleep(0.05)
    assert app.bodies.in_flight == limits.budget
    status, answer = await Exchange(app, "PUT", "secret/one-more", [chunk(b"{}")], length=2).run()
    assert status == 503 and "retry" in answer["errors"][0]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert app.bodies.in_flight == 0
    assert (await Exchange(app, "PUT", "secret/one-more", [chunk(b'{"a":1}')], length=7).run())[0] == 204


def nested(depth: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


async def test_json_depth_has_one_limit_enforced_on_input(coffer):
    ok = nested(200)
    assert (await coffer.call("PUT", "secret/deep", json=ok)).status_code == 204
    back = (await coffer.call("GET", "secret/deep")).json()["data"]
    assert back == ok  # stored and readable
    r = await coffer.call("PUT", "secret/deeper", json=nested(201))
    assert r.status_code == 400 and "deeper than 200 levels" in r.json()["errors"][0]
    r = await coffer.call("PUT", "secret/deeper", content=b'{"a":' + b"[" * 600 + b"]" * 600 + b"}")
    assert r.status_code == 400
    # a policy is text inside the body: its own nesting is the policy parser's to refuse (not a 500)
    r = await coffer.call("PUT", "sys/policy/deep", json={"policy": '{"path": ' * 300 + '"x"' + "}" * 300})
    assert r.status_code == 400
    r = await coffer.call("PUT", "sys/policy/deep", json={"policy": 'path "a" { x = ' + "[" * 2000 + "]" * 2000 + " }"})
    assert r.status_code == 400


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "1" * 400])
async def test_integers_beyond_64_bits_are_refused_not_rounded(coffer, number):
    r = await coffer.call("PUT", "secret/big-int", content=b'{"n": %s}' % number.encode())
    assert r.status_code == 400 and "beyond 64 bits" in r.json()["errors"][0]
    assert await stored(coffer, "secret/big-int") == 404


async def test_large_floats_and_64_bit_integers_are_kept(coffer):
    body = b'{"big": 9223372036854775807, "small": -9223372036854775808, "f": 1e19, "s": "18446744073709551616"}'
    assert (await coffer.call("PUT", "secret/numbers", content=body)).status_code == 204
    assert (await coffer.call("GET", "secret/numbers")).json()["data"] == orjson.loads(body)
