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


async def test_mounts_tuned_listing_visibility_unauth_are_listed_without_a_token(coffer):
    """As Vault does (checked against OpenBao 2.7): web UIs list the login methods from here before sign-in."""
    assert (await coffer.call("POST", "sys/auth/up", json={"type": "userpass", "description": "people"})
            ).status_code == 204
    assert (await coffer.call("POST", "sys/mounts/shown", json={
        "type": "kv-v2", "config": {"listing_visibility": "unauth"}})).status_code == 204
    assert (await coffer.call("POST", "sys/auth/up/tune", json={"listing_visibility": "unauth"})).status_code == 204
    body = (await coffer.call("GET", "sys/internal/ui/mounts", token=None)).json()["data"]
    assert body == {"auth": {"up/": {"description": "people", "options": None, "type": "userpass"}},
                    "secret": {"shown/": {"description": "", "options": {"version": "2"}, "type": "kv"}}}
    # A token sees them in full beside its own; one mount is still shown only to a token allowed under it.
    token = await token_with(coffer, "nothing", 'path "other/*" { capabilities = ["read"] }')
    data = (await coffer.call("GET", "sys/internal/ui/mounts", token=token)).json()["data"]
    assert data["auth"]["up/"]["accessor"].startswith("auth_userpass_") and "shown/" in data["secret"]
    r = await coffer.call("GET", "sys/internal/ui/mounts/shown", token=token)
    assert r.status_code == 403
    # Where Vault shows it, and how it is refused or taken back.
    config = (await coffer.call("GET", "sys/auth")).json()["data"]["up/"]["config"]
    assert config["listing_visibility"] == "unauth"
    assert "listing_visibility" not in (await coffer.call("GET", "sys/auth")).json()["data"]["token/"]["config"]
    assert (await coffer.call("GET", "sys/auth/up/tune")).json()["data"]["listing_visibility"] == "unauth"
    r = await coffer.call("POST", "sys/mounts/shown/tune", json={"listing_visibility": "bogus"})
    assert r.status_code == 400 and "invalid listing_visibility" in r.json()["errors"][0]
    for value in ("hidden", ""):
        assert (await coffer.call("POST", "sys/mounts/shown/tune", json={"listing_visibility": value})
                ).status_code == 204
        assert (await coffer.call("GET", "sys/internal/ui/mounts", token=None)).json()["data"]["secret"] == {}
