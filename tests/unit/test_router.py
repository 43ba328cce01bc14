"""core.router: the two mount tables, longest-prefix routing, built-in mounts, without a server."""

from __future__ import annotations

import asyncio

import pytest

from coffer.core.router import SECRETS_TABLE, MountTable, Router, normalize
from coffer.errors import InvalidRequest, UnsupportedOperation
from coffer.framework.backend import Backend
from coffer.framework.request import READ, Request
from coffer.storage.inmem import InmemStorage


def _engine(info):
    return Backend([], help=f"engine at {info.path}")


def router(storage=None, **kw) -> Router:
    return Router(storage or InmemStorage(), secrets_engines={"kv": _engine}, auth_methods={"userpass": _engine},
                  builtins={t: _engine for t in ("system", "cubbyhole", "token")},
                  default_lease_ttl=3600, max_lease_ttl=7200, **kw)


def loaded(*paths: str) -> Router:
    """A router with the built-ins and kv mounts at ``paths``, even nested ones (which mounting refuses)."""
    r = router()
    asyncio.run(r.load())
    for p in paths:
        r.mounts[p] = r._instantiate(r.new_entry(p, "kv"), False, strict=True)
    return r


@pytest.mark.parametrize(("path", "expected"), [
    ("a/b/c", "a/b/"),
    ("a/b/c/d", "a/b/"),
    ("a/b", "a/b/"),
    ("a/b/", "a/b/"),
    ("a/c", "a/"),
    ("a", "a/"),
    ("a/", "a/"),
    ("a/bc", "a/"),
    ("ab/c", None),
    ("b", None),
    ("", None),
])
def test_match_longest_prefix(path, expected):
    mount = loaded("a/", "a/b/").match(path)
    assert (mount.route if mount else None) == expected


def test_match_deep_mounts_and_builtins():
    r = loaded("x/y/z/", "x/")
    assert r.match("x/y/z/secret").route == "x/y/z/"
    assert r.match("x/y/secret").route == "x/"
    assert r.match("sys/mounts").route == "sys/"
    assert r.match("auth/token/create").route == "auth/token/"
    assert r.match("cubbyhole/mine").entry.type == "cubbyhole"


@pytest.mark.parametrize(("raw", "expected"), [("kv", "kv/"), ("/kv/", "kv/"), (" a/b ", "a/b/"), ("a/b/", "a/b/")])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["", "/", "a//b", "a/../b", "./a"])
def test_normalize_refuses(raw):
    with pytest.raises(InvalidRequest):
        normalize(raw)


def test_add_move_remove_persist():
    async def scenario() -> None:
        storage = InmemStorage()
        t = router(storage)
        await t.load()
        await t.mount(t.new_entry("one/", "kv"))
        with pytest.raises(InvalidRequest, match="path is already in use at one/"):
            await t.mount(t.new_entry("one/", "kv"))
        with pytest.raises(InvalidRequest, match="one/"):
            await t.mount(t.new_entry("one/two/", "kv"))
        with pytest.raises(InvalidRequest):
            await t.mount(t.new_entry("sys/", "kv"))
        with pytest.raises(InvalidRequest):
            await t.mount(t.new_entry("auth/x/", "kv"))
        await t.mount(t.new_entry("two/", "kv"))
        with pytest.raises(InvalidRequest):
            await t.remount("one/", "two/")
        assert {m.route for m in t.table(auth=False)} == {"cubbyhole/", "sys/", "one/", "two/"}
        moved = await t.remount("one/", "three/")
        assert moved.route == "three/" and moved.entry.path == "three/"
        reloaded = router(storage)
        await reloaded.load()
        assert {m.route for m in reloaded.table(auth=False)} == {"cubbyhole/", "sys/", "two/", "three/"}
        assert reloaded.mounts["three/"].entry.uuid == moved.entry.uuid
        await t.unmount("two/")
        await reloaded.load()
        assert {m.route for m in reloaded.table(auth=False)} == {"cubbyhole/", "sys/", "three/"}

    asyncio.run(scenario())


def test_builtins_are_persisted_once_and_never_unmounted():
    async def scenario() -> None:
        storage = InmemStorage()
        r = router(storage)
        await r.load()
        first = {route: m.entry.accessor for route, m in r.mounts.items()}
        assert set(first) == {"sys/", "cubbyhole/", "auth/token/"}
        assert first["auth/token/"].startswith("auth_token_")
        again = router(storage)
        await again.load()
        assert {route: m.entry.accessor for route, m in again.mounts.items()} == first
        for route in first:
            with pytest.raises(InvalidRequest, match="built into coffer"):
                await r.unmount(route)
            with pytest.raises(InvalidRequest, match="built into coffer"):
                await r.remount(route, "elsewhere/")
        for mount_type in ("system", "cubbyhole"):
            with pytest.raises(InvalidRequest, match="built in"):
                await r.mount(r.new_entry("second/", mount_type))
        with pytest.raises(InvalidRequest, match="built in"):
            await r.mount(r.new_entry("tok/", "token", auth=True), auth=True)

    asyncio.run(scenario())


def test_auth_table_is_separate_and_routes_under_auth():
    async def scenario() -> None:
        r = router()
        await r.load()
        mount = await r.mount(r.new_entry("users/", "userpass", auth=True), auth=True)
        assert mount.route == "auth/users/" and mount.entry.accessor.startswith("auth_userpass_")
        assert r.match("auth/users/login/bob") is mount
        assert [m.route for m in r.table(auth=True)] == ["auth/token/", "auth/users/"]
        with pytest.raises(InvalidRequest, match="plugin not found in the catalog: kv"):
            await r.mount(r.new_entry("kvish/", "kv", auth=True), auth=True)
        with pytest.raises(InvalidRequest, match="between the secrets engines and the auth methods"):
            await r.remount("auth/users/", "users/")
        assert mount.storage.prefix == f"auth/{mount.entry.uuid}/"

    asyncio.run(scenario())


def test_a_mount_whose_type_is_gone_is_unavailable_alone():
    async def scenario() -> None:
        storage = InmemStorage()
        r = router(storage)
        await r.load()
        await r.mount(r.new_entry("ok/", "kv"))
        table = MountTable(storage, SECRETS_TABLE, {})
        await table.load()
        table.entries["gone/"] = table.new_entry("gone/", "vanished-plugin")
        await table.save()
        await r.load()
        gone = r.match("gone/x")
        req = Request(READ, "gone/x", mount=gone.info, relative_path="x")
        with pytest.raises(UnsupportedOperation, match="plugin not found in the catalog: vanished-plugin"):
            await gone.engine.handle(req)
        assert r.match("ok/x").route == "ok/"

    asyncio.run(scenario())


def test_damaged_table_is_a_clear_error():
    async def scenario() -> None:
        storage = InmemStorage()
        await storage.put(SECRETS_TABLE, b"{not json")
        with pytest.raises(ValueError, match="core/mounts is damaged"):
            await router(storage).load()

    asyncio.run(scenario())
