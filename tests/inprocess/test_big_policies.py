"""A very large policy never stalls other requests, and is parsed once (issue 11, #12)."""

from __future__ import annotations

import asyncio

BIG = "".join(f'path "secret/app{i}/*" {{ capabilities = ["read", "list"] }}\n' for i in range(17000))  # ~1 MB


async def test_writing_and_first_using_a_big_policy_leaves_the_loop_serving(coffer):
    write = asyncio.ensure_future(coffer.call("PUT", "sys/policy/big", json={"policy": BIG}))
    served_meanwhile = 0
    while not write.done():  # other requests keep being answered (in-process calls never wait: yield between)
        assert (await coffer.call("GET", "sys/health", token=None)).status_code == 200
        served_meanwhile += 1
        await asyncio.sleep(0.001)
    assert (await write).status_code == 204
    assert served_meanwhile > 1  # the parse ran beside the loop, not on it
    token = (await coffer.call("POST", "auth/token/create", json={"policies": ["big"]})).json()["auth"]["client_token"]
    first_use = asyncio.ensure_future(coffer.call("GET", "secret/app7/x", token=token))
    served_meanwhile = 0
    while not first_use.done():
        assert (await coffer.call("GET", "sys/health", token=None)).status_code == 200
        served_meanwhile += 1
        await asyncio.sleep(0.001)
    assert (await first_use).status_code in (200, 404)  # allowed (kv answers 404: nothing there)
    assert served_meanwhile > 1


async def test_changing_another_policy_does_not_reparse_a_big_one(coffer):
    assert (await coffer.call("PUT", "sys/policy/big", json={"policy": BIG})).status_code == 204
    store = coffer.core.policies
    parsed = await store.get("big")
    big_acl = await store.acl(["big", "default"])
    assert (await coffer.call("PUT", "sys/policy/small", json={"policy": 'path "x/*" { capabilities = ["read"] }'})
            ).status_code == 204
    assert await store.get("big") is parsed
    assert await store.acl(["big", "default"]) is big_acl
    assert (await coffer.call("PUT", "sys/policy/big", json={"policy": BIG + 'path "y" { capabilities = ["read"] }'})
            ).status_code == 204
    assert await store.get("big") is not parsed and await store.acl(["big", "default"]) is not big_acl
