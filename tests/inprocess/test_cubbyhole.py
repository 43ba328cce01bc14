"""cubbyhole/ in-process, where the mount's storage can be looked at directly: what a token wrote there is
deleted from storage when the token goes (revoked, revoked with its parent, or expired), and the HTTP
operations (delete, writes without data) do what they say."""

from __future__ import annotations

import asyncio
import time

from coffer.framework.storage import StorageView


async def new_token(coffer, token: str = "root", **body) -> str:
    r = await coffer.call("POST", "auth/token/create", token=token, json={"policies": ["default"], "ttl": "1h", **body})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def cubbyholes(coffer) -> StorageView:
    """The cubbyhole mount's storage: one folder per token, named by the token's hash."""
    view = coffer.core._cubbyhole_storage()
    assert view is not None
    return view


async def folder_of(coffer, token: str) -> str:
    entry = await coffer.core.tokens.lookup(token)
    assert entry is not None
    return f"{entry.hash}/"


async def write(coffer, token: str, path: str, body: dict) -> None:
    r = await coffer.call("POST", f"cubbyhole/{path}", token=token, json=body)
    assert r.status_code == 204, r.text


async def test_revoking_a_token_deletes_its_cubbyhole_from_storage(coffer):
    view = cubbyholes(coffer)
    mine, other = await new_token(coffer), await new_token(coffer)
    await write(coffer, mine, "a", {"k": "v"})
    await write(coffer, mine, "deep/er/b", {"x": "1"})
    await write(coffer, other, "theirs", {"k": "v"})
    folder, other_folder = await folder_of(coffer, mine), await folder_of(coffer, other)
    assert await view.count(folder) == 2 and await view.count(other_folder) == 1
    assert {folder, other_folder} <= set(await view.list())

    r = await coffer.call("POST", "auth/token/revoke", json={"token": mine})
    assert r.status_code == 204, r.text
    assert await view.count(folder) == 0
    assert folder not in await view.list()
    # Another token's cubbyhole is untouched.
    assert await view.count(other_folder) == 1
    r = await coffer.call("GET", "cubbyhole/theirs", token=other)
    assert r.status_code == 200 and r.json()["data"] == {"k": "v"}


async def test_revoking_a_parent_deletes_its_childrens_cubbyholes(coffer):
    view = cubbyholes(coffer)
    parent = await new_token(coffer, policies=["root"])
    child = await new_token(coffer, token=parent)
    await write(coffer, parent, "p", {"k": "v"})
    await write(coffer, child, "c", {"k": "v"})
    folders = [await folder_of(coffer, t) for t in (parent, child)]
    assert [await view.count(f) for f in folders] == [1, 1]
    r = await coffer.call("POST", "auth/token/revoke", json={"token": parent})
    assert r.status_code == 204, r.text
    assert [await view.count(f) for f in folders] == [0, 0]
    assert (await coffer.call("GET", "cubbyhole/c", token=child)).status_code == 403


async def test_an_expired_tokens_cubbyhole_is_deleted_from_storage(coffer):
    view = cubbyholes(coffer)
    short = await new_token(coffer, ttl="2s")
    folder = await folder_of(coffer, short)
    await write(coffer, short, "note", {"k": "v"})
    assert await view.count(folder) == 1
    # The token-expiry task runs every second; wait for it (with a deadline) rather than a fixed time.
    deadline = time.monotonic() + 15
    while await view.count(folder) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await view.count(folder) == 0
    assert await coffer.core.tokens.lookup(short) is None


async def test_delete_removes_the_entry(coffer):
    view = cubbyholes(coffer)
    token = await new_token(coffer)
    folder = await folder_of(coffer, token)
    await write(coffer, token, "a", {"k": "1"})
    await write(coffer, token, "b", {"k": "2"})
    r = await coffer.call("DELETE", "cubbyhole/a", token=token)
    assert r.status_code == 204, r.text
    assert (await coffer.call("GET", "cubbyhole/a", token=token)).status_code == 404
    assert (await coffer.call("LIST", "cubbyhole/", token=token)).json()["data"]["keys"] == ["b"]
    assert await view.list(folder) == ["b"]
    # Deleting what is not there is no error (as in Vault); the other entry stays.
    assert (await coffer.call("DELETE", "cubbyhole/a", token=token)).status_code == 204
    assert (await coffer.call("DELETE", "cubbyhole/never-written", token=token)).status_code == 204
    assert (await coffer.call("GET", "cubbyhole/b", token=token)).json()["data"] == {"k": "2"}
    # One token cannot delete another's entry: the path names only its own cubbyhole.
    other = await new_token(coffer)
    assert (await coffer.call("DELETE", "cubbyhole/b", token=other)).status_code == 204
    assert (await coffer.call("GET", "cubbyhole/b", token=token)).json()["data"] == {"k": "2"}
    # A folder is no entry.
    r = await coffer.call("DELETE", "cubbyhole/", token=token)
    assert r.status_code == 400 and "is a folder" in r.json()["errors"][0], r.text


async def test_a_write_without_data_is_refused(coffer):
    view = cubbyholes(coffer)
    token = await new_token(coffer)
    folder = await folder_of(coffer, token)
    for kwargs in ({"json": {}}, {}):
        r = await coffer.call("POST", "cubbyhole/empty", token=token, **kwargs)
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == ["no data provided; write at least one key=value pair"]
    assert (await coffer.call("GET", "cubbyhole/empty", token=token)).status_code == 404
    assert await view.count(folder) == 0
    # An existing entry is not emptied by such a write either.
    await write(coffer, token, "kept", {"k": "v"})
    assert (await coffer.call("PUT", "cubbyhole/kept", token=token, json={})).status_code == 400
    assert (await coffer.call("GET", "cubbyhole/kept", token=token)).json()["data"] == {"k": "v"}
