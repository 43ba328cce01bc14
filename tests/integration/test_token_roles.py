"""Token roles, periodic tokens, explicit max TTLs, orphans, accessors, tidy: auth/token/* over real HTTP."""

from __future__ import annotations

import uuid

import hvac
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(server, path, body=None, token="root"):
    return server.request("POST", path, token=token, json=body or {})


def test_create_answers_exactly_the_ttl_given(dev_server):
    for ttl, seconds in (("30m", 1800), (3600, 3600), ("90s", 90)):
        auth = post(dev_server, "auth/token/create", {"ttl": ttl}).json()["auth"]
        assert auth["lease_duration"] == seconds


def test_role_round_trip_and_list(dev_server):
    name = unique("r")
    r = post(dev_server, f"auth/token/roles/{name}", {
        "allowed_policies": ["foo-read", "p2"], "disallowed_policies": ["bad"], "orphan": True, "renewable": False,
        "path_suffix": "app1", "token_period": "2h", "token_explicit_max_ttl": "10h", "token_type": "service"})
    assert r.status_code == 204, r.text
    data = dev_server.request("GET", f"auth/token/roles/{name}").json()["data"]
    assert data == {"allowed_entity_aliases": None, "allowed_policies": ["foo-read", "p2"],
                    "allowed_policies_glob": [], "disallowed_policies": ["bad"], "disallowed_policies_glob": [],
                    "explicit_max_ttl": 0, "name": name, "orphan": True, "path_suffix": "app1", "period": 0,
                    "renewable": False, "token_explicit_max_ttl": 36000, "token_no_default_policy": False,
                    "token_period": 7200, "token_type": "service"}
    assert name in dev_server.request("LIST", "auth/token/roles").json()["data"]["keys"]
    assert dev_server.request("DELETE", f"auth/token/roles/{name}").status_code == 204
    assert dev_server.request("GET", f"auth/token/roles/{name}").status_code == 404


def test_create_with_role(dev_server):
    client = dev_server.client()
    name = unique("r")
    client.sys.create_or_update_policy("foo-read", 'path "secret/foo" { capabilities = ["read"] }')
    post(dev_server, f"auth/token/roles/{name}", {"allowed_policies": "foo-read,p2", "orphan": True,
                                                  "renewable": False, "path_suffix": "app1", "token_period": "2h"})
    auth = client.auth.token.create(role_name=name, policies=["foo-read"])["auth"]
    assert auth["policies"] == ["default", "foo-read"] and auth["lease_duration"] == 7200
    assert auth["renewable"] is False and auth["orphan"] is True
    looked = client.auth.token.lookup(auth["client_token"])["data"]
    assert looked["path"] == f"auth/token/create/{name}/app1" and looked["role"] == name
    everything = post(dev_server, f"auth/token/create/{name}").json()
    assert everything["auth"]["policies"] == ["default", "foo-read", "p2"]
    assert 'Policy "p2" does not exist' in everything["warnings"]
    r = post(dev_server, f"auth/token/create/{name}", {"policies": ["other"]})
    assert r.status_code == 400 and "must be subset of the role's allowed policies" in r.json()["errors"][0]
    r = post(dev_server, "auth/token/create/nosuch")
    assert r.status_code == 400 and "unknown role nosuch" in r.json()["errors"][0]


def test_role_globs_disallowed_limits_and_cidrs(dev_server):
    client = dev_server.client()
    name = unique("r")
    post(dev_server, f"auth/token/roles/{name}", {
        "allowed_policies_glob": ["team-*"], "disallowed_policies_glob": ["team-admin*"],
        "token_explicit_max_ttl": "1h", "token_num_uses": 3, "token_no_default_policy": True,
        "token_bound_cidrs": ["127.0.0.1"], "token_ttl": "20m", "token_max_ttl": "40m"})
    auth = client.auth.token.create(role_name=name, policies=["team-a"])["auth"]
    assert auth["policies"] == ["team-a"] and auth["num_uses"] == 3 and auth["lease_duration"] == 1200
    looked = client.auth.token.lookup(auth["client_token"])["data"]
    assert looked["bound_cidrs"] == ["127.0.0.1"] and looked["explicit_max_ttl"] == 3600
    r = post(dev_server, f"auth/token/create/{name}", {"policies": ["team-admins"]})
    assert r.status_code == 400 and 'token policy "team-admins" is disallowed by this role' in r.json()["errors"][0]
    capped = post(dev_server, f"auth/token/create/{name}", {"policies": ["team-a"], "ttl": "2h"}).json()
    assert capped["auth"]["lease_duration"] == 2400 and "capped" in capped["warnings"][0]
    # Bound to 10.0.0.0/8, the token is refused from here on every request.
    far = unique("r")
    post(dev_server, f"auth/token/roles/{far}", {"token_bound_cidrs": "10.0.0.0/8"})
    token = post(dev_server, f"auth/token/create/{far}", {"policies": ["default"]}).json()["auth"]["client_token"]
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 403


def test_role_bad_input_stores_nothing(dev_server):
    name = unique("r")
    for body, message in (({"token_type": "batch"}, 'token_type "batch" is not supported'),
                          ({"path_suffix": "v1"}, "path_suffix"), ({"path_suffix": "bad/.."}, "path_suffix"),
                          ({"allowed_policies": ["root"]}, "cannot contain root"),
                          ({"token_bound_cidrs": ["300.0.0.1/8"]}, "invalid token_bound_cidrs"),
                          ({"token_ttl": "2h", "token_max_ttl": "1h"}, "token_ttl cannot be greater"),
                          ({"token_period": "soon"}, 'field "token_period"'),
                          ({"orphan": "perhaps"}, 'field "orphan"')):
        r = post(dev_server, f"auth/token/roles/{name}", body)
        assert r.status_code == 400 and message in r.json()["errors"][0], (body, r.text)
    assert dev_server.request("GET", f"auth/token/roles/{name}").status_code == 404
    r = post(dev_server, "auth/token/create", {"type": "batch"})
    assert r.status_code == 400 and "batch" in r.json()["errors"][0]


def test_periodic_explicit_max_and_renew_self(dev_server):
    client = dev_server.client()
    periodic = client.auth.token.create(policies=["default"], period="1h")["auth"]
    assert periodic["lease_duration"] == 3600
    assert client.auth.token.lookup(periodic["client_token"])["data"]["period"] == 3600
    renewed = hvac.Client(url=dev_server.addr, token=periodic["client_token"]).auth.token.renew_self(increment="5h")
    assert renewed["auth"]["lease_duration"] == 3600  # a periodic token always gets its period
    capped = post(dev_server, "auth/token/create", {"ttl": "2h", "explicit_max_ttl": "1h"}).json()
    assert capped["auth"]["lease_duration"] == 3600
    assert capped["warnings"] == ['TTL of "2h0m0s" exceeded the effective max_ttl of "1h0m0s"; TTL value is '
                                  'capped accordingly']
    short = client.auth.token.create(policies=["default"], ttl="10m", explicit_max_ttl="15m")["auth"]
    again = hvac.Client(url=dev_server.addr, token=short["client_token"]).auth.token.renew_self(increment="1h")
    assert 890 <= again["auth"]["lease_duration"] <= 900


def test_orphans_accessors_and_revoke_orphan(dev_server):
    client = dev_server.client()
    orphan = client.auth.token.create_orphan(policies=["default"], ttl="1h")["auth"]
    assert orphan["orphan"] is True
    parent = client.auth.token.create(policies=["default"], ttl="1h")["auth"]
    maker = unique("maker")
    client.sys.create_or_update_policy(maker, 'path "auth/token/create" { capabilities = ["update"] }')
    parent = client.auth.token.create(policies=["default", maker], ttl="1h")["auth"]
    child = hvac.Client(url=dev_server.addr, token=parent["client_token"]).auth.token.create(ttl="1h")["auth"]
    assert parent["accessor"] in client.auth.token.list_accessors()["data"]["keys"]
    by_accessor = client.auth.token.lookup_accessor(child["accessor"])["data"]
    assert by_accessor["id"] == "" and by_accessor["accessor"] == child["accessor"]
    client.auth.token.revoke_and_orphan_children(parent["client_token"])
    assert dev_server.request("GET", "auth/token/lookup-self", token=parent["client_token"]).status_code == 403
    kept = client.auth.token.lookup(child["client_token"])["data"]
    assert kept["orphan"] is True
    client.auth.token.revoke_accessor(child["accessor"])
    assert dev_server.request("GET", "auth/token/lookup-self", token=child["client_token"]).status_code == 403


def test_roles_through_hvac(dev_server):
    client = dev_server.client()
    name = unique("hvac")
    client.auth.token.create_or_update_role(name, allowed_policies=["default"], orphan=True, token_period="30m")
    assert client.auth.token.read_role(name)["data"]["token_period"] == 1800
    assert name in client.auth.token.list_roles()["data"]["keys"]
    assert client.auth.token.create(role_name=name)["auth"]["lease_duration"] == 1800
    client.auth.token.delete_role(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.auth.token.read_role(name)


def test_tidy(dev_server):
    r = post(dev_server, "auth/token/tidy")
    assert r.status_code == 202 and r.json()["warnings"]
    assert set(r.json()["data"]) == {"accessors", "parent_links", "expiry_entries", "expired_tokens"}
    reader = dev_server.client().auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    assert post(dev_server, "auth/token/tidy", token=reader).status_code == 403
