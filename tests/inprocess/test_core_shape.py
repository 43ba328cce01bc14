"""Every backend is a mount; the lifecycle owns all background work; unseal is all or nothing."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from coffer.core.router import SECRETS_TABLE
from coffer.errors import CofferError
from coffer.storage.inmem import InmemStorage

from .conftest import ROOT, make_core


async def test_sys_mounts_lists_the_builtin_and_user_mounts(coffer):
    body = (await coffer.call("GET", "sys/mounts")).json()
    mounts = body["data"]
    assert {"sys/", "cubbyhole/", "secret/"} <= set(mounts)
    assert mounts["sys/"]["type"] == "system" and mounts["cubbyhole/"]["type"] == "cubbyhole"
    assert mounts["cubbyhole/"]["local"] is True
    for entry in mounts.values():  # Vault's fields, on every entry
        assert {"accessor", "config", "description", "local", "options", "seal_wrap", "type", "uuid"} <= set(entry)
    assert body["sys/"] == mounts["sys/"]  # also at the top level, as Vault answers
    auth = (await coffer.call("GET", "sys/auth")).json()["data"]
    assert list(auth) == ["token/"] and auth["token/"]["type"] == "token"
    assert auth["token/"]["accessor"].startswith("auth_token_")
    one = (await coffer.call("GET", "sys/mounts/cubbyhole")).json()["data"]
    assert one["uuid"] == mounts["cubbyhole/"]["uuid"]


@pytest.mark.parametrize(("method", "path", "body", "reason"), [
    ("POST", "sys/mounts/sys", {"type": "kv"}, "reserved for coffer itself"),
    ("POST", "sys/mounts/cubbyhole", {"type": "kv"}, "reserved for coffer itself"),
    ("POST", "sys/mounts/other", {"type": "cubbyhole"}, "built in"),
    ("POST", "sys/mounts/other", {"type": "system"}, "built in"),
    ("DELETE", "sys/mounts/sys", None, "built into coffer"),
    ("DELETE", "sys/mounts/cubbyhole", None, "built into coffer"),
    ("DELETE", "sys/auth/token", None, "built into coffer"),
    ("POST", "sys/auth/token", {"type": "token"}, "built in"),
    ("POST", "sys/auth/other", {"type": "token"}, "built in"),
    ("POST", "sys/auth/up", {"type": "nosuch"}, "plugin not found in the catalog: nosuch"),
    ("POST", "sys/remount", {"from": "sys", "to": "elsewhere"}, "built into coffer"),
    ("POST", "sys/remount", {"from": "auth/token", "to": "auth/tok"}, "built into coffer"),
])
async def test_builtin_mounts_cannot_be_replaced_or_removed(coffer, method, path, body, reason):
    r = await coffer.call(method, path, json=body)
    assert r.status_code == 400, r.text
    assert reason in r.json()["errors"][0]
    assert {"sys/", "cubbyhole/"} <= set((await coffer.call("GET", "sys/mounts")).json()["data"])
    assert "token/" in (await coffer.call("GET", "sys/auth")).json()["data"]


async def test_builtin_mounts_can_be_tuned(coffer):
    assert (await coffer.call("POST", "sys/auth/token/tune", json={"default_lease_ttl": "1h"})).status_code == 204
    assert (await coffer.call("GET", "sys/auth/token/tune")).json()["data"]["default_lease_ttl"] == 3600
    assert (await coffer.call("GET", "sys/mounts/auth/token/tune")).json()["data"]["default_lease_ttl"] == 3600
    assert (await coffer.call("GET", "sys/auth")).json()["data"]["token/"]["config"]["default_lease_ttl"] == 3600


async def test_an_auth_mount_is_routed_under_auth(coffer):
    r = await coffer.call("POST", "sys/auth/things", json={"type": "authtest", "description": "test logins"})
    assert r.status_code == 204, r.text
    auth = (await coffer.call("GET", "sys/auth")).json()["data"]
    assert auth["things/"]["type"] == "authtest" and auth["things/"]["description"] == "test logins"
    assert "things/" not in (await coffer.call("GET", "sys/mounts")).json()["data"]
    assert (await coffer.call("GET", "auth/things/hello")).json()["data"] == {"mount": "auth/things/"}
    assert (await coffer.call("GET", "auth/things/hello", token=None)).json()["data"] == {"mount": "auth/things/"}
    assert (await coffer.call("DELETE", "sys/auth/things")).status_code == 204
    assert "things/" not in (await coffer.call("GET", "sys/auth")).json()["data"]
    assert (await coffer.call("GET", "auth/things/hello")).status_code == 404


async def test_cubbyhole_is_private_to_each_token_and_dies_with_it(coffer):
    child = (await coffer.call("POST", "auth/token/create", json={"policies": ["default"]})).json()["auth"]
    token = child["client_token"]
    assert (await coffer.call("POST", "cubbyhole/note", token=token, json={"secret": "mine"})).status_code == 204
    assert (await coffer.call("GET", "cubbyhole/note", token=token)).json()["data"] == {"secret": "mine"}
    assert (await coffer.call("LIST", "cubbyhole/", token=token)).json()["data"]["keys"] == ["note"]
    assert (await coffer.call("GET", "cubbyhole/note")).status_code == 404  # not even root sees it
    assert (await coffer.call("LIST", "cubbyhole/")).status_code == 404
    assert await coffer.core.physical.count("logical/", "logical/\U0010ffff") > 0
    cubby = coffer.core.router.mounts["cubbyhole/"]
    assert await cubby.storage.list("") != []
    assert (await coffer.call("POST", "auth/token/revoke", json={"token": token})).status_code == 204
    assert await cubby.storage.list("") == []


async def test_seal_cancels_every_background_task(coffer):
    supervisor = coffer.core.supervisor
    assert supervisor.running >= 4  # token and lease expiry, WAL rollback, periodic tick
    stray = supervisor.spawn(asyncio.sleep(3600), "stray")
    await coffer.core.seal()
    assert supervisor.running == 0 and stray.cancelled()
    assert (await coffer.call("GET", "secret/x")).status_code == 503


async def _initialized_core():
    storage = InmemStorage()
    core = make_core(storage)
    keys, root = await core.initialize(1, 1, root_token_id=ROOT)
    return storage, core, keys[0]


async def test_unseal_is_all_or_nothing_with_a_damaged_mount_table():
    storage, core, key = await _initialized_core()
    await core.submit_unseal_key(key)
    # damage the (encrypted) mount table: a valid ciphertext of something that is not a table
    await core.barrier.put(SECRETS_TABLE, b"{not a table")
    await core.seal()
    with pytest.raises(CofferError, match="stays sealed.*core/mounts is damaged"):
        await core.submit_unseal_key(key)
    assert core.sealed and core.barrier.sealed and core.supervisor.running == 0
    assert core.status()["sealed"] is True
    # once repaired, it unseals
    await core.barrier.unseal(key)
    await core.barrier.put(SECRETS_TABLE, orjson.dumps([]))
    core.barrier.seal()
    await core.submit_unseal_key(key)
    assert not core.sealed and "sys/" in core.router.mounts
    await core.shutdown()


async def test_requests_during_init_see_a_sealed_server():
    """While init runs, the barrier is open for a moment: requests still answer as sealed, never 404 or 500."""
    core = make_core()
    init = asyncio.ensure_future(core.initialize(3, 2))
    from coffer.framework.request import READ, Request

    seen = []
    while not init.done():
        try:
            await core.handle(Request(READ, "secret/x", client_token="x"))
        except CofferError as exc:
            seen.append(exc.status)
        await asyncio.sleep(0)
    await init
    assert seen and set(seen) == {503}
    await core.shutdown()
