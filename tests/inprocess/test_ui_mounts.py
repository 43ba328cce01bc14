"""``sys/internal/ui/mounts[/<path>]``: which mounts a token may use, as Vault answers it (its CLI's kv commands
ask it for a mount's kv version)."""

from __future__ import annotations

PREFLIGHT = "preflight capability check returned 403, please ensure client's policies grant access to path \"{}\""


async def token_with(coffer, name: str, policy: str) -> str:
    assert (await coffer.call("PUT", f"sys/policies/acl/{name}", json={"policy": policy})).status_code == 204
    return (await coffer.call("POST", "auth/token/create", json={"policies": [name]})).json()["auth"]["client_token"]


async def test_root_sees_every_mount_described_as_sys_mounts_does(coffer):
    await coffer.call("POST", "sys/mounts/kv2", json={"type": "kv-v2"})
    body = (await coffer.call("GET", "sys/internal/ui/mounts")).json()
    assert body["data"].keys() == {"auth", "secret"} and "sys/" not in body  # no top-level copies
    mounts = (await coffer.call("GET", "sys/mounts")).json()["data"]
    assert body["data"]["secret"] == mounts
    assert body["data"]["auth"] == (await coffer.call("GET", "sys/auth")).json()["data"]
    one = (await coffer.call("GET", "sys/internal/ui/mounts/kv2")).json()["data"]
    assert one == {**mounts["kv2/"], "path": "kv2/"} and one["options"] == {"version": "2"}
    # any path inside a mount answers that mount
    assert (await coffer.call("GET", "sys/internal/ui/mounts/kv2/data/a/b")).json()["data"]["path"] == "kv2/"
    r = await coffer.call("GET", "sys/internal/ui/mounts/nosuch")
    assert r.status_code == 403 and r.json()["errors"] == [PREFLIGHT.format("nosuch/")]


async def test_a_token_sees_only_mounts_it_has_capabilities_under(coffer):
    await coffer.call("POST", "sys/mounts/hidden", json={"type": "kv"})
    await coffer.call("POST", "sys/mounts/team", json={"type": "kv"})
    token = await token_with(coffer, "team-read", 'path "team/app/*" { capabilities = ["read"] }\n'
                                                  'path "hidden/*" { capabilities = ["deny"] }')
    data = (await coffer.call("GET", "sys/internal/ui/mounts", token=token)).json()["data"]
    # the default policy brings in the token method, cubbyhole/ and sys/
    assert sorted(data["secret"]) == ["cubbyhole/", "sys/", "team/"] and sorted(data["auth"]) == ["token/"]
    assert (await coffer.call("GET", "sys/internal/ui/mounts/team", token=token)).json()["data"]["path"] == "team/"
    r = await coffer.call("GET", "sys/internal/ui/mounts/hidden", token=token)
    assert r.status_code == 403 and r.json()["errors"] == [PREFLIGHT.format("hidden/")]
    glob = await token_with(coffer, "all-globs", 'path "+/app" { capabilities = ["read"] }')
    assert "team/" in (await coffer.call("GET", "sys/internal/ui/mounts", token=glob)).json()["data"]["secret"]


async def test_without_a_token_nothing_is_shown(coffer):
    body = (await coffer.call("GET", "sys/internal/ui/mounts", token=None)).json()
    assert body["data"] == {"auth": {}, "secret": {}}
    assert (await coffer.call("GET", "sys/internal/ui/mounts", token="not-a-token")).json()["data"] == {
        "auth": {}, "secret": {}}
    r = await coffer.call("GET", "sys/internal/ui/mounts/secret", token=None)
    assert r.status_code == 403 and r.json()["errors"] == ["permission denied"]
