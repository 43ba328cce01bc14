"""auth/token/* over real HTTP, checked against Vault's documented behaviour."""

from __future__ import annotations

import re
import time
import uuid

import hvac
import pytest

TOKEN_RE = re.compile(r"^hvs\.[A-Za-z0-9]{24}$")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(server, token: str = "root", **body) -> dict:
    r = server.request("POST", "auth/token/create", token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def lookup(server, token: str) -> dict:
    r = server.request("POST", "auth/token/lookup", json={"token": token})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def alive(server, token: str) -> bool:
    r = server.request("GET", "auth/token/lookup-self", token=token)
    assert r.status_code in (200, 403), r.text
    return r.status_code == 200


@pytest.fixture
def token_maker(dev_server) -> str:
    """A policy that lets a token create child tokens (and nothing else)."""
    name = unique("token-maker")
    policy = 'path "auth/token/create" { capabilities = ["update"] }\n' \
             'path "auth/token/create-orphan" { capabilities = ["update"] }\n'
    r = dev_server.request("PUT", f"sys/policy/{name}", json={"policy": policy})
    assert r.status_code == 204, r.text
    return name


# -- create ---------------------------------------------------------------


def test_create_with_hvac_auth_block(dev_server):
    client = dev_server.client()
    resp = client.auth.token.create(policies=["dev-reader"], ttl="1h", meta={"app": "web"}, display_name="ci")
    auth = resp["auth"]
    assert TOKEN_RE.match(auth["client_token"]), auth["client_token"]
    assert isinstance(auth["accessor"], str) and auth["accessor"] and auth["accessor"] != auth["client_token"]
    assert "default" in auth["policies"] and "dev-reader" in auth["policies"]
    assert sorted(auth["token_policies"]) == sorted(auth["policies"])
    assert 3590 <= auth["lease_duration"] <= 3600
    assert auth["renewable"] is True
    assert auth["orphan"] is False
    assert auth["metadata"] == {"app": "web"}
    # The envelope itself carries no lease for a token (Vault puts it in auth).
    assert resp["lease_id"] == "" and resp["data"] is None


def test_two_tokens_are_different(dev_server):
    a, b = create(dev_server, ttl="1h"), create(dev_server, ttl="1h")
    assert a["client_token"] != b["client_token"] and a["accessor"] != b["accessor"]


def test_default_ttl_applies_when_none_given(dev_server):
    auth = create(dev_server, policies=["default"])
    # dev default lease TTL is 768h (Vault's default); a child of root without ttl gets it.
    assert auth["lease_duration"] > 3600
    assert auth["renewable"] is True


# -- lookups ------------------------------------------------------------


def test_lookup_lookup_self_lookup_accessor(dev_server):
    client = dev_server.client()
    auth = client.auth.token.create(policies=["default"], ttl="1h", display_name="lookups")["auth"]
    token, accessor = auth["client_token"], auth["accessor"]

    data = client.auth.token.lookup(token)["data"]
    assert data["id"] == token
    assert data["accessor"] == accessor
    assert data["policies"] == ["default"]
    assert data["display_name"] == "token-lookups"
    assert data["creation_ttl"] == 3600
    assert 3590 <= data["ttl"] <= 3600
    assert data["orphan"] is False
    assert data["renewable"] is True
    assert data["path"] == "auth/token/create"
    assert data["expire_time"].endswith("Z")

    self_data = dev_server.client(token).auth.token.lookup_self()["data"]
    assert self_data["id"] == token and self_data["accessor"] == accessor

    by_accessor = client.auth.token.lookup_accessor(accessor)["data"]
    assert by_accessor["accessor"] == accessor
    assert by_accessor["id"] == "", "lookup-accessor must never reveal the token"
    assert by_accessor["policies"] == ["default"]


def test_lookup_unknown_token_and_accessor(dev_server):
    r = dev_server.request("POST", "auth/token/lookup", json={"token": "hvs." + "x" * 24})
    assert r.status_code == 403, r.text
    r = dev_server.request("POST", "auth/token/lookup-accessor", json={"accessor": "nope"})
    assert r.status_code == 400, r.text


def test_lookup_self_via_bearer_header(dev_server):
    token = create(dev_server, policies=["default"], ttl="1h")["client_token"]
    r = dev_server.request("GET", "auth/token/lookup-self", token=None,
                           headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"] == token


def test_missing_and_bad_token_are_403(dev_server):
    assert dev_server.request("GET", "auth/token/lookup-self", token=None).status_code == 403
    r = dev_server.request("GET", "auth/token/lookup-self", token="hvs.notarealtokenatall0000")
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}


# -- ttl, explicit_max_ttl, period -----------------------------------------


def test_ttl_and_explicit_max_ttl(dev_server):
    auth = create(dev_server, policies=["default"], ttl="30s", explicit_max_ttl="60s")
    assert 28 <= auth["lease_duration"] <= 30
    data = lookup(dev_server, auth["client_token"])
    assert data["explicit_max_ttl"] == 60
    # Renewal asks for an hour; explicit_max_ttl is a hard cap.
    r = dev_server.request("POST", "auth/token/renew", json={"token": auth["client_token"], "increment": "1h"})
    assert r.status_code == 200, r.text
    assert 55 <= r.json()["auth"]["lease_duration"] <= 60
    assert lookup(dev_server, auth["client_token"])["ttl"] <= 60


def test_ttl_larger_than_explicit_max_is_capped(dev_server):
    auth = create(dev_server, policies=["default"], ttl="2h", explicit_max_ttl="1h")
    assert 3590 <= auth["lease_duration"] <= 3600


def test_periodic_token(dev_server):
    auth = create(dev_server, policies=["default"], period="1h")
    assert 3590 <= auth["lease_duration"] <= 3600
    data = lookup(dev_server, auth["client_token"])
    assert data["period"] == 3600
    r = dev_server.request("POST", "auth/token/renew", json={"token": auth["client_token"], "increment": "10h"})
    assert r.status_code == 200, r.text
    # A periodic token is always renewed for its period, whatever the increment.
    assert 3590 <= r.json()["auth"]["lease_duration"] <= 3600


# -- renew --------------------------------------------------------------------


def test_renew_pushes_expiry(dev_server):
    client = dev_server.client()
    auth = client.auth.token.create(policies=["default"], ttl="60s")["auth"]
    before = lookup(dev_server, auth["client_token"])
    renewed = client.auth.token.renew(auth["client_token"], increment="2h")["auth"]
    assert 7190 <= renewed["lease_duration"] <= 7200
    assert renewed["client_token"] == auth["client_token"]
    after = lookup(dev_server, auth["client_token"])
    assert after["ttl"] > before["ttl"] and after["expire_time"] > before["expire_time"]


def test_renew_self_pushes_expiry(dev_server):
    token = create(dev_server, policies=["default"], ttl="60s")["client_token"]
    child = dev_server.client(token)
    renewed = child.auth.token.renew_self(increment="1h")["auth"]
    assert 3590 <= renewed["lease_duration"] <= 3600
    assert child.auth.token.lookup_self()["data"]["ttl"] > 60


def test_renew_accessor(dev_server):
    auth = create(dev_server, policies=["default"], ttl="60s")
    r = dev_server.request("POST", "auth/token/renew-accessor", json={"accessor": auth["accessor"], "increment": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["client_token"] == ""
    assert lookup(dev_server, auth["client_token"])["ttl"] > 60


def test_non_renewable_token_refuses_renewal(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1h", renewable=False)
    assert auth["renewable"] is False
    r = dev_server.request("POST", "auth/token/renew", json={"token": auth["client_token"]})
    assert r.status_code == 400, r.text
    r = dev_server.request("POST", "auth/token/renew-self", token=auth["client_token"])
    assert r.status_code == 400, r.text
    # Still valid though.
    assert alive(dev_server, auth["client_token"])


# -- num_uses ------------------------------------------------------------------


def test_num_uses_limits_requests(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1h", num_uses=2)
    assert auth["num_uses"] == 2
    token = auth["client_token"]
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    r = dev_server.request("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 403, "a token with num_uses=2 must be refused on its third request"
    # It is gone for good, not just refused.
    assert dev_server.request("POST", "auth/token/lookup-accessor", json={"accessor": auth["accessor"]}).status_code == 400


def test_negative_num_uses_is_400(dev_server):
    r = dev_server.request("POST", "auth/token/create", json={"num_uses": -1})
    assert r.status_code == 400, r.text


# -- orphans and revocation ------------------------------------------------------


def test_create_orphan_survives_parent_revocation(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    normal = dev_server.client(parent).auth.token.create(ttl="1h")["auth"]
    orphan = dev_server.client(parent).auth.token.create_orphan(ttl="1h")["auth"]
    assert normal["orphan"] is False
    assert orphan["orphan"] is True
    assert lookup(dev_server, orphan["client_token"])["orphan"] is True
    dev_server.client().auth.token.revoke(parent)
    assert not alive(dev_server, parent)
    assert not alive(dev_server, normal["client_token"]), "a child dies with its parent"
    assert alive(dev_server, orphan["client_token"]), "an orphan outlives its creator"


def test_no_parent_needs_root(dev_server, token_maker):
    root_made = create(dev_server, policies=["default"], ttl="1h", no_parent=True)
    assert root_made["orphan"] is True
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"no_parent": True})
    assert r.status_code == 400, r.text  # Vault: "root or sudo privileges required to create orphan token"


def test_revoke_orphan_keeps_children(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    child = dev_server.client(parent).auth.token.create(ttl="1h")["auth"]["client_token"]
    grandchild = dev_server.client(child).auth.token.create(ttl="1h")["auth"]["client_token"]
    dev_server.client().auth.token.revoke_and_orphan_children(parent)
    assert not alive(dev_server, parent)
    assert alive(dev_server, child) and alive(dev_server, grandchild)
    assert lookup(dev_server, child)["orphan"] is True
    assert lookup(dev_server, grandchild)["orphan"] is False
    # The child is now a root of its own tree: revoking it takes the grandchild.
    dev_server.client().auth.token.revoke(child)
    assert not alive(dev_server, grandchild)


def test_revoke_orphan_needs_sudo(dev_server, token_maker):
    name = unique("revoker")
    dev_server.request("PUT", f"sys/policy/{name}",
                       json={"policy": 'path "auth/token/revoke-orphan" { capabilities = ["update"] }'})
    revoker = create(dev_server, policies=[name], ttl="1h")["client_token"]
    victim = create(dev_server, policies=["default"], ttl="1h")["client_token"]
    r = dev_server.request("POST", "auth/token/revoke-orphan", token=revoker, json={"token": victim})
    assert r.status_code == 403, r.text
    assert alive(dev_server, victim)


def test_revoke_accessor(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")
    child = dev_server.client(parent["client_token"]).auth.token.create(ttl="1h")["auth"]["client_token"]
    dev_server.client().auth.token.revoke_accessor(parent["accessor"])
    assert not alive(dev_server, parent["client_token"])
    assert not alive(dev_server, child)
    r = dev_server.request("POST", "auth/token/lookup-accessor", json={"accessor": parent["accessor"]})
    assert r.status_code == 400


def test_revoke_self(dev_server):
    token = create(dev_server, policies=["default"], ttl="1h")["client_token"]
    r = dev_server.request("POST", "auth/token/revoke-self", token=token)
    assert r.status_code == 204, r.text
    assert not alive(dev_server, token)


def test_list_accessors(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1h")
    keys = dev_server.client().auth.token.list_accessors()["data"]["keys"]
    assert auth["accessor"] in keys
    r = dev_server.request("GET", "auth/token/accessors?list=true")
    assert r.status_code == 200 and auth["accessor"] in r.json()["data"]["keys"]
    # Needs sudo: a default token is refused.
    r = dev_server.request("LIST", "auth/token/accessors", token=auth["client_token"])
    assert r.status_code == 403


# -- what a non-root parent may do ------------------------------------------------


def test_child_cannot_get_policy_parent_lacks(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    # Vault answers 400 ("child policies must be subset of parent"), not 403.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset of parent"):
        dev_server.client(parent).auth.token.create(policies=["some-other-policy"], ttl="1h")
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"policies": ["root"]})
    assert r.status_code == 400, r.text
    # A subset is fine, and "default" may be asked for since the parent has it.
    sub = dev_server.client(parent).auth.token.create(policies=[token_maker, "default"], ttl="1h")["auth"]
    assert sorted(sub["policies"]) == sorted(["default", token_maker])
    only = dev_server.client(parent).auth.token.create(policies=[token_maker], ttl="1h")["auth"]
    assert sorted(only["policies"]) == sorted(["default", token_maker])


def test_child_inherits_parent_policies(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    child = dev_server.client(parent).auth.token.create(ttl="1h")["auth"]
    assert sorted(child["policies"]) == sorted(["default", token_maker])


def test_only_root_or_sudo_chooses_token_id(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    wanted = "my-chosen-" + uuid.uuid4().hex
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"id": wanted, "ttl": "1h"})
    # Vault: 400 "root or sudo privileges required to specify token id".
    assert r.status_code == 400, r.text
    assert "sudo" in r.json()["errors"][0]
    assert not alive(dev_server, wanted)
    made = create(dev_server, id=wanted, policies=["default"], ttl="1h")
    assert made["client_token"] == wanted
    assert alive(dev_server, wanted)
    # The same id again is refused.
    r = dev_server.request("POST", "auth/token/create", json={"id": wanted})
    assert r.status_code == 400, r.text


def test_periodic_token_needs_sudo(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h")["client_token"]
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"period": "1h"})
    assert r.status_code == 400, r.text


def test_sudo_token_may_choose_id_and_policies_but_not_root(dev_server):
    name = unique("token-sudo")
    dev_server.request("PUT", f"sys/policy/{name}",
                       json={"policy": 'path "auth/token/create" { capabilities = ["update", "sudo"] }'})
    parent = create(dev_server, policies=[name], ttl="1h")["client_token"]
    wanted = "sudo-chosen-" + uuid.uuid4().hex
    child = create(dev_server, token=parent, id=wanted, policies=["anything-else"], ttl="1h")
    assert child["client_token"] == wanted
    assert child["policies"] == ["anything-else", "default"]
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"policies": ["root"]})
    assert r.status_code == 400, r.text


def test_limited_use_token_cannot_create_children(dev_server, token_maker):
    parent = create(dev_server, policies=[token_maker], ttl="1h", num_uses=5)["client_token"]
    r = dev_server.request("POST", "auth/token/create", token=parent, json={"ttl": "1h"})
    assert r.status_code == 400, r.text


def test_create_orphan_path_in_lookup(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1h")
    r = dev_server.request("POST", "auth/token/create-orphan", json={"policies": ["default"], "ttl": "1h"})
    assert r.status_code == 200, r.text
    assert lookup(dev_server, auth["client_token"])["path"] == "auth/token/create"
    assert lookup(dev_server, r.json()["auth"]["client_token"])["path"] == "auth/token/create-orphan"


def test_no_default_policy(dev_server, token_maker):
    auth = create(dev_server, policies=[token_maker], no_default_policy=True, ttl="1h")
    assert auth["policies"] == [token_maker]
    # Without "default" the token cannot even look itself up.
    r = dev_server.request("GET", "auth/token/lookup-self", token=auth["client_token"])
    assert r.status_code == 403
    with_default = create(dev_server, policies=[token_maker], ttl="1h")
    assert sorted(with_default["policies"]) == sorted(["default", token_maker])


def test_unknown_field_is_400(dev_server):
    r = dev_server.request("POST", "auth/token/create", json={"ttl": "1h", "bogus": 1})
    assert r.status_code == 400
    assert "bogus" in r.json()["errors"][0]


def test_bad_ttl_is_400(dev_server):
    r = dev_server.request("POST", "auth/token/create", json={"ttl": "soon"})
    assert r.status_code == 400
    assert "ttl" in r.json()["errors"][0]


# -- expiry ----------------------------------------------------------------------


def test_expired_token_is_refused(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1s")
    token = auth["client_token"]
    assert auth["lease_duration"] <= 1
    time.sleep(2.1)
    r = dev_server.request("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 403, r.text
    assert r.json() == {"errors": ["permission denied"]}
    r = dev_server.request("POST", "auth/token/lookup-accessor", json={"accessor": auth["accessor"]})
    assert r.status_code == 400


def test_limited_use_token_stays_revoked_after_revoke_self(dev_server):
    # The use count is written back after the request; it must not resurrect a token
    # that the request itself revoked.
    auth = create(dev_server, policies=["default"], ttl="1h", num_uses=5)
    r = dev_server.request("POST", "auth/token/revoke-self", token=auth["client_token"])
    assert r.status_code == 204, r.text
    assert not alive(dev_server, auth["client_token"])
    r = dev_server.request("POST", "auth/token/lookup", json={"token": auth["client_token"]})
    assert r.status_code == 403, r.text


def test_limited_use_token_revoked_by_another_request_stays_revoked(dev_server):
    auth = create(dev_server, policies=["default"], ttl="1h", num_uses=5)
    token = auth["client_token"]
    assert alive(dev_server, token)
    dev_server.client().auth.token.revoke(token)
    assert not alive(dev_server, token)
    assert dev_server.request("POST", "auth/token/lookup", json={"token": token}).status_code == 403


def test_limited_use_token_serves_exactly_its_uses_under_concurrency(dev_server):
    from concurrent.futures import ThreadPoolExecutor

    token = dev_server.request("POST", "auth/token/create", json={"num_uses": 3, "policies": ["default"]}).json()[
        "auth"]["client_token"]
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda _: dev_server.request("GET", "auth/token/lookup-self", token=token).status_code,
                              range(10)))
    assert sorted(codes) == [200] * 3 + [403] * 7


def test_single_use_token_cannot_create_children_with_its_last_use(dev_server):
    dev_server.request("PUT", "sys/policies/acl/maker1", json={
        "policy": 'path "auth/token/create" { capabilities = ["update"] }'})
    token = dev_server.request("POST", "auth/token/create", json={"num_uses": 1, "policies": ["maker1"]}).json()[
        "auth"]["client_token"]
    r = dev_server.request("POST", "auth/token/create", token=token, json={})
    assert r.status_code == 400 and "restricted use token" in r.json()["errors"][0]
