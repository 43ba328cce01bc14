"""kv version 2 in-process: versions, check-and-set, soft delete, destroy, metadata, PATCH, subkeys, config,
the upgrade from version 1, and the storage layout it keeps."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest

from coffer.engines.kv import upgrade
from coffer.engines.kv.common import META, V2_PREFIX, version_key

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def kv(coffer):
    r = await coffer.call("POST", "sys/mounts/kv2", json={"type": "kv", "options": {"version": "2"}})
    assert r.status_code == 204, r.text
    return coffer


async def write(c, path, data, **options):
    body = {"data": data, **({"options": options} if options else {})}
    return await c.call("POST", f"kv2/data/{path}", json=body)


async def test_versions_and_check_and_set(kv):
    r = await write(kv, "app", {"a": "1", "n": 2, "obj": {"x": True}}, cas=0)
    assert r.status_code == 200
    first = r.json()["data"]
    assert first["version"] == 1 and first["deletion_time"] == "" and first["destroyed"] is False
    assert first["custom_metadata"] is None and first["created_time"].endswith("Z")
    r = await write(kv, "app", {"a": "again"}, cas=0)
    assert r.status_code == 400 and r.json()["errors"] == ["check-and-set parameter did not match the current version"]
    assert (await write(kv, "app", {"a": "v2"}, cas=1)).json()["data"]["version"] == 2
    assert (await write(kv, "app", {"a": "x"}, cas=5)).status_code == 400
    latest = (await kv.call("GET", "kv2/data/app")).json()["data"]
    assert latest["data"] == {"a": "v2"} and latest["metadata"]["version"] == 2
    old = (await kv.call("GET", "kv2/data/app?version=1")).json()["data"]
    assert old["data"] == {"a": "1", "n": 2, "obj": {"x": True}} and old["metadata"]["version"] == 1
    assert (await kv.call("GET", "kv2/data/app?version=99")).status_code == 404
    assert (await kv.call("GET", "kv2/data/app?version=abc")).status_code == 400
    assert (await kv.call("GET", "kv2/data/never")).json() == {"errors": []}


async def test_write_needs_data_and_a_map(kv):
    r = await kv.call("POST", "kv2/data/x", json={"a": "no data wrapper"})
    assert r.status_code == 400
    r = await kv.call("POST", "kv2/data/x", json={"data": {"a": 1}, "options": {"cas": "soon"}})
    assert r.status_code == 400 and "cas" in r.json()["errors"][0]
    r = await kv.call("POST", "kv2/data/x", json={"data": "notamap"})
    assert r.status_code == 400 and "data" in r.json()["errors"][0]
    assert (await kv.call("POST", "kv2/data/x", json={})).json()["errors"] == ["no data provided"]


async def test_cas_required_by_the_key_or_the_mount(kv):
    await write(kv, "strict", {"a": 1})
    assert (await kv.call("POST", "kv2/metadata/strict", json={"cas_required": True})).status_code == 204
    r = await write(kv, "strict", {"a": 2})
    assert r.status_code == 400 and r.json()["errors"] == ["check-and-set parameter required for this call"]
    assert (await write(kv, "strict", {"a": 2}, cas=1)).status_code == 200
    await kv.call("POST", "kv2/config", json={"cas_required": True})
    r = await write(kv, "other", {"a": 1})
    assert r.json()["errors"] == ["check-and-set parameter required for this call"]
    assert (await write(kv, "other", {"a": 1}, cas=0)).status_code == 200


async def test_concurrent_writers_with_the_same_cas_cannot_both_win(kv):
    await write(kv, "race", {"n": 0})
    answers = await asyncio.gather(*(write(kv, "race", {"n": i}, cas=1) for i in range(8)))
    assert sorted(r.status_code for r in answers) == [200] + [400] * 7
    meta = (await kv.call("GET", "kv2/metadata/race")).json()["data"]
    assert meta["current_version"] == 2 and set(meta["versions"]) == {"1", "2"}


async def test_soft_delete_undelete_destroy(kv):
    for i in range(1, 5):
        await write(kv, "life", {"v": i})
    assert (await kv.call("DELETE", "kv2/data/life")).status_code == 204
    r = await kv.call("GET", "kv2/data/life")
    assert r.status_code == 404
    body = r.json()["data"]
    assert body["data"] is None and body["metadata"]["version"] == 4 and body["metadata"]["deletion_time"]
    assert (await kv.call("POST", "kv2/delete/life", json={"versions": [1, 99]})).status_code == 204
    assert (await kv.call("GET", "kv2/data/life?version=1")).status_code == 404
    assert (await kv.call("POST", "kv2/delete/life", json={})).json()["errors"] == ["No version number provided"]
    assert (await kv.call("POST", "kv2/undelete/life", json={"versions": "1,4"})).status_code == 204
    assert (await kv.call("GET", "kv2/data/life")).json()["data"]["data"] == {"v": 4}
    assert (await kv.call("GET", "kv2/data/life?version=1")).json()["data"]["data"] == {"v": 1}
    assert (await kv.call("POST", "kv2/destroy/life", json={"versions": [2]})).status_code == 204
    assert (await kv.call("POST", "kv2/undelete/life", json={"versions": [2]})).status_code == 204
    r = await kv.call("GET", "kv2/data/life?version=2")
    assert r.status_code == 404 and r.json()["data"]["metadata"]["destroyed"] is True
    assert (await kv.call("POST", "kv2/destroy/life", json={})).json()["errors"] == ["no version number provided"]
    assert (await kv.call("POST", "kv2/delete/life", json={"versions": ["one"]})).status_code == 400
    # the destroyed version's data is gone from storage; the others are not
    storage = kv.core.router.mounts["kv2/"].storage
    assert await storage.get(version_key("life", 2)) is None
    assert await storage.get(version_key("life", 3)) is not None
    # missing keys are not an error
    for path in ("delete/never", "undelete/never", "destroy/never"):
        assert (await kv.call("POST", f"kv2/{path}", json={"versions": [1]})).status_code == 204
    assert (await kv.call("DELETE", "kv2/data/never")).status_code == 204


async def test_metadata_read_write_patch_and_delete(kv):
    await write(kv, "dir/one", {"a": 1})
    await write(kv, "dir/one", {"a": 2})
    meta = (await kv.call("GET", "kv2/metadata/dir/one")).json()["data"]
    assert set(meta) == {"cas_required", "created_time", "current_version", "custom_metadata",
                         "delete_version_after", "max_versions", "oldest_version", "updated_time", "versions"}
    assert meta["current_version"] == 2 and meta["oldest_version"] == 0 and meta["delete_version_after"] == "0s"
    assert set(meta["versions"]) == {"1", "2"}
    assert set(meta["versions"]["1"]) == {"created_time", "deletion_time", "destroyed"}
    r = await kv.call("POST", "kv2/metadata/dir/one", json={
        "max_versions": 5, "cas_required": True, "delete_version_after": "3h25m19s",
        "custom_metadata": {"owner": "ops", "tier": "1"}})
    assert r.status_code == 204
    meta = (await kv.call("GET", "kv2/metadata/dir/one")).json()["data"]
    assert (meta["max_versions"], meta["cas_required"], meta["delete_version_after"]) == (5, True, "3h25m19s")
    assert meta["custom_metadata"] == {"owner": "ops", "tier": "1"}
    await kv.call("POST", "kv2/metadata/dir/one", json={"cas_required": False})
    meta = (await kv.call("GET", "kv2/metadata/dir/one")).json()["data"]
    assert meta["cas_required"] is False and meta["max_versions"] == 5
    r = await kv.call("PATCH", "kv2/metadata/dir/one", json={"custom_metadata": {"tier": None, "new": "y"}},
                      headers=MERGE)
    assert r.status_code == 204
    meta = (await kv.call("GET", "kv2/metadata/dir/one")).json()["data"]
    assert meta["custom_metadata"] == {"new": "y", "owner": "ops"}
    # a new version carries a deletion time in the future and the custom metadata
    written = (await write(kv, "dir/one", {"a": 3}, cas=2)).json()["data"]
    assert written["deletion_time"] > written["created_time"] and written["custom_metadata"]["owner"] == "ops"
    assert (await kv.call("GET", "kv2/data/dir/one")).status_code == 200  # not deleted yet
    r = await kv.call("POST", "kv2/metadata/dir/one", json={"custom_metadata": {"k": 1}})
    assert r.status_code == 400 and "string" in r.json()["errors"][0]
    r = await kv.call("PATCH", "kv2/metadata/nosuch", json={"max_versions": 1}, headers=MERGE)
    assert r.status_code == 404
    assert (await kv.call("DELETE", "kv2/metadata/dir/one")).status_code == 204
    assert (await kv.call("GET", "kv2/metadata/dir/one")).status_code == 404
    assert (await kv.call("GET", "kv2/data/dir/one")).status_code == 404


async def test_list_metadata(kv):
    for path in ("foo", "dir/one", "dir/sub/two"):
        await write(kv, path, {"a": 1})
    assert (await kv.call("LIST", "kv2/metadata/")).json()["data"]["keys"] == ["dir/", "foo"]
    assert (await kv.call("LIST", "kv2/metadata/dir")).json()["data"]["keys"] == ["one", "sub/"]
    assert (await kv.call("GET", "kv2/metadata/dir/?list=true")).json()["data"]["keys"] == ["one", "sub/"]
    assert (await kv.call("LIST", "kv2/metadata/missing/")).status_code == 404
    assert (await kv.call("LIST", "kv2/data/")).status_code == 405


async def test_patch_merges_into_the_current_version(kv):
    await write(kv, "p", {"a": "v2", "n": 3, "deep": {"x": 1, "y": 2}})
    r = await kv.call("PATCH", "kv2/data/p", json={"data": {"n": None, "b": "new", "deep": {"y": None}}},
                      headers=MERGE)
    assert r.status_code == 200 and r.json()["data"]["version"] == 2
    assert (await kv.call("GET", "kv2/data/p")).json()["data"]["data"] == {"a": "v2", "b": "new", "deep": {"x": 1}}
    r = await kv.call("PATCH", "kv2/data/p", json={"data": {"a": 1}})
    assert r.status_code == 415 and "application/merge-patch+json" in r.json()["errors"][0]
    r = await kv.call("PATCH", "kv2/data/p", json={"data": {"a": 1}, "options": {"cas": 1}}, headers=MERGE)
    assert r.json()["errors"] == ["check-and-set parameter did not match the current version"]
    assert (await kv.call("PATCH", "kv2/data/never", json={"data": {"a": 1}}, headers=MERGE)).status_code == 404
    await kv.call("DELETE", "kv2/data/p")
    assert (await kv.call("PATCH", "kv2/data/p", json={"data": {"a": 1}}, headers=MERGE)).status_code == 404


async def test_patch_needs_the_patch_capability(kv):
    await kv.call("PUT", "sys/policies/acl/kv-writer", json={
        "policy": 'path "kv2/data/*" { capabilities = ["create", "update", "read"] }'})
    token = (await kv.call("POST", "auth/token/create", json={"policies": ["kv-writer"]})).json()["auth"][
        "client_token"]
    await write(kv, "guarded", {"a": 1})
    r = await kv.call("PATCH", "kv2/data/guarded", token=token, json={"data": {"a": 2}}, headers=MERGE)
    assert r.status_code == 403
    await kv.call("PUT", "sys/policies/acl/kv-writer", json={
        "policy": 'path "kv2/data/*" { capabilities = ["create", "update", "read", "patch"] }'})
    r = await kv.call("PATCH", "kv2/data/guarded", token=token, json={"data": {"a": 2}}, headers=MERGE)
    assert r.status_code == 200


async def test_max_versions_keeps_the_larger_limit(kv):
    await kv.call("POST", "kv2/metadata/mv", json={"max_versions": 2})
    for i in range(5):
        await write(kv, "mv", {"i": i})
    meta = (await kv.call("GET", "kv2/metadata/mv")).json()["data"]
    assert sorted(meta["versions"], key=int) == ["4", "5"] and meta["oldest_version"] == 4
    assert (await kv.call("GET", "kv2/data/mv?version=1")).status_code == 404
    storage = kv.core.router.mounts["kv2/"].storage
    assert await storage.get(version_key("mv", 1)) is None
    await kv.call("POST", "kv2/config", json={"max_versions": 3})
    for i in range(3):
        await write(kv, "mv", {"i": i})
    assert sorted((await kv.call("GET", "kv2/metadata/mv")).json()["data"]["versions"], key=int) == ["6", "7", "8"]
    # neither set: ten versions are kept
    await kv.call("POST", "kv2/config", json={"max_versions": 0})
    for i in range(12):
        await write(kv, "ten", {"i": i})
    assert len((await kv.call("GET", "kv2/metadata/ten")).json()["data"]["versions"]) == 10


async def test_delete_version_after_makes_versions_expire(kv):
    await kv.call("POST", "kv2/config", json={"delete_version_after": "1s"})
    assert (await kv.call("GET", "kv2/config")).json()["data"] == {
        "cas_required": False, "delete_version_after": "1s", "max_versions": 0}
    await write(kv, "brief", {"a": 1})
    assert (await kv.call("GET", "kv2/data/brief")).status_code == 200
    await asyncio.sleep(1.2)
    r = await kv.call("GET", "kv2/data/brief")
    assert r.status_code == 404 and r.json()["data"]["metadata"]["deletion_time"]
    assert (await kv.call("POST", "kv2/undelete/brief", json={"versions": [1]})).status_code == 204
    assert (await kv.call("GET", "kv2/data/brief")).status_code == 200
    await kv.call("POST", "kv2/config", json={"delete_version_after": "1h"})
    assert (await kv.call("GET", "kv2/config")).json()["data"]["delete_version_after"] == "1h0m0s"
    assert (await kv.call("POST", "kv2/config", json={"delete_version_after": "-5s"})).status_code == 400


async def test_subkeys(kv):
    await write(kv, "shape", {"a": "v4", "nested": {"k": {"deep": 1}, "arr": [1, 2]}, "nil": None})
    body = (await kv.call("GET", "kv2/subkeys/shape")).json()["data"]
    assert body["subkeys"] == {"a": None, "nested": {"arr": None, "k": {"deep": None}}, "nil": None}
    assert body["metadata"]["version"] == 1
    one = (await kv.call("GET", "kv2/subkeys/shape?depth=1")).json()["data"]["subkeys"]
    assert one == {"a": None, "nested": None, "nil": None}
    await kv.call("DELETE", "kv2/data/shape")
    r = await kv.call("GET", "kv2/subkeys/shape")
    assert r.status_code == 404 and r.json()["data"]["subkeys"] is None
    assert (await kv.call("GET", "kv2/subkeys/nosuch")).status_code == 404


async def test_paths_outside_the_version_2_api_say_where_to_go(kv):
    r = await kv.call("GET", "kv2/foo")
    assert r.status_code == 404
    assert r.json()["warnings"][0].endswith("use 'coffer kv get' for this operation.")
    r = await kv.call("POST", "kv2/foo", json={"a": 1})
    assert r.status_code == 404 and r.json()["warnings"][0].endswith("use 'coffer kv put' for this operation.")


async def test_every_field_has_a_sentence_of_help(kv):
    for path in ("data/x", "metadata/x", "delete/x", "undelete/x", "destroy/x", "subkeys/x", "config"):
        text = (await kv.call("GET", f"kv2/{path}?help=1")).json()["help"]
        assert "Path parameter" not in text, text
        params = text.split("## PARAMETERS", 1)[1].split("## DESCRIPTION", 1)[0]
        named = re.findall(r"(?m)^    (\w+) \(\w+\)$", params)
        described = re.findall(r"(?m)^        (\S.*)$", params)
        assert named and len(named) == len(described), text
        for name, description in zip(named, described, strict=True):
            assert len(description.split()) >= 5, f"{path}: {name} has no real description"


async def test_storage_layout_is_under_the_reserved_prefix(kv):
    await write(kv, "layout/a", {"secret": "value"})
    storage = kv.core.router.mounts["kv2/"].storage
    assert await storage.list("") == [V2_PREFIX]
    meta = orjson.loads(await storage.get(META + "layout/a"))
    assert meta["current_version"] == 1
    assert orjson.loads(await storage.get(version_key("layout/a", 1))) == {"data": {"secret": "value"}}
    assert await storage.get(upgrade.MARKER) is not None


async def test_version_1_paths_cannot_reach_the_reserved_prefix(coffer):
    r = await coffer.call("PUT", "secret/%01kv2/meta/x", json={"a": 1})
    assert r.status_code == 400 and "control character" in r.json()["errors"][0]


async def test_upgrade_from_version_1_keeps_every_secret(coffer):
    await coffer.call("POST", "sys/mounts/old", json={"type": "kv"})
    secrets = {f"s{i:03d}": {"n": i} for i in range(450)} | {"dir/x": {"deep": True}, "data/odd": {"o": 1}}
    for path, value in secrets.items():
        assert (await coffer.call("PUT", f"old/{path}", json=value)).status_code == 204
    r = await coffer.call("POST", "sys/mounts/old/tune", json={"options": {"version": "2"}})
    assert r.status_code == 200 and "Upgrading mount from version 1 to version 2" in r.json()["warnings"][0]
    for path, value in secrets.items():
        body = (await coffer.call("GET", f"old/data/{path}")).json()["data"]
        assert body["data"] == value and body["metadata"]["version"] == 1
    meta = (await coffer.call("GET", "old/metadata/s001")).json()["data"]
    assert meta["current_version"] == 1 and meta["oldest_version"] == 1
    assert meta["created_time"] == meta["updated_time"]
    keys = (await coffer.call("LIST", "old/metadata/")).json()["data"]["keys"]
    assert "dir/" in keys and "data/" in keys and len(keys) == 452
    storage = coffer.core.router.mounts["old/"].storage
    assert await storage.list("") == [V2_PREFIX]  # nothing left in the version 1 layout
    assert (await coffer.call("GET", "old/s001")).status_code == 404  # the v1 path now says where to go
    r = await coffer.call("POST", "sys/mounts/old/tune", json={"options": {"version": "1"}})
    assert r.json()["errors"] == ["cannot downgrade mount from version 2"]


async def test_an_interrupted_upgrade_carries_on(coffer, monkeypatch):
    await coffer.call("POST", "sys/mounts/half", json={"type": "kv"})
    for i in range(10):
        await coffer.call("PUT", f"half/k{i}", json={"i": i})
    storage = coffer.core.router.mounts["half/"].storage
    monkeypatch.setattr(upgrade, "CHUNK", 3)
    calls = 0
    real_batch = storage.batch.__func__

    async def failing_batch(self, ops, expect=()):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk went away")
        await real_batch(self, ops, expect)

    monkeypatch.setattr(type(storage), "batch", failing_batch)
    await coffer.call("POST", "sys/mounts/half/tune", json={"options": {"version": "2"}})
    assert (await coffer.call("GET", "half/data/k0")).status_code == 500  # the upgrade failed part-way
    monkeypatch.setattr(type(storage), "batch", real_batch)
    for i in range(10):
        assert (await coffer.call("GET", f"half/data/k{i}")).json()["data"]["data"] == {"i": i}
