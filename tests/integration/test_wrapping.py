"""Response wrapping and the cubbyhole over real HTTP."""

from __future__ import annotations

import time
import uuid

import hvac
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wrapped(server, method, path, ttl="60", token="root", **kwargs):
    r = server.request(method, path, token=token, headers={"X-Vault-Wrap-TTL": ttl}, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def kv(dev_server):
    mount = unique("kv")
    dev_server.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    dev_server.request("POST", f"{mount}/foo", json={"user": "alice", "n": 3}).raise_for_status()
    return mount


def test_wrap_a_read_and_unwrap_it_once(dev_server, kv):
    body = wrapped(dev_server, "GET", f"{kv}/foo", ttl="5m")
    assert body["data"] is None and body["auth"] is None
    info = body["wrap_info"]
    assert info["ttl"] == 300 and info["creation_path"] == f"{kv}/foo" and "wrapped_accessor" not in info
    assert info["creation_time"].endswith("Z") and info["accessor"]
    # What a wrapping token is: an orphan with one use and the response-wrapping policy.
    looked = dev_server.request("POST", "auth/token/lookup", json={"token": info["token"]}).json()["data"]
    assert looked["policies"] == ["response-wrapping"] and looked["num_uses"] == 1 and looked["orphan"] is True
    assert looked["accessor"] == info["accessor"] and looked["path"] == f"{kv}/foo"
    # It can do nothing else.
    assert dev_server.request("GET", f"{kv}/foo", token=info["token"]).status_code == 403
    lookup = dev_server.request("POST", "sys/wrapping/lookup", token=None, json={"token": info["token"]}).json()
    assert lookup["data"] == {"creation_path": f"{kv}/foo", "creation_time": info["creation_time"],
                              "creation_ttl": 300}
    unwrapped = dev_server.client().sys.unwrap(info["token"])
    assert unwrapped["data"] == {"user": "alice", "n": 3}
    with pytest.raises(hvac.exceptions.InvalidRequest):
        dev_server.client().sys.unwrap(info["token"])
    r = dev_server.request("POST", "sys/wrapping/lookup", token=None, json={"token": info["token"]})
    assert r.status_code == 400 and r.json()["errors"] == ["wrapping token is not valid or does not exist"]


def test_unwrap_with_the_wrapping_token_itself(dev_server, kv):
    info = wrapped(dev_server, "GET", f"{kv}/foo")["wrap_info"]
    r = dev_server.request("POST", "sys/wrapping/unwrap", token=info["token"])
    assert r.status_code == 200 and r.json()["data"] == {"user": "alice", "n": 3}
    assert dev_server.request("POST", "sys/wrapping/unwrap", token=info["token"]).status_code in (400, 403)
    # The same token in the header and the body is refused (its use as the request's token is spent).
    info = wrapped(dev_server, "GET", f"{kv}/foo")["wrap_info"]
    r = dev_server.request("POST", "sys/wrapping/unwrap", token=info["token"], json={"token": info["token"]})
    assert r.status_code == 400 and "both as the request's token and in the body" in r.json()["errors"][0]
    # A token with the default policy may unwrap.
    reader = dev_server.client().auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    info = wrapped(dev_server, "GET", f"{kv}/foo")["wrap_info"]
    r = dev_server.request("POST", "sys/wrapping/unwrap", token=reader, json={"token": info["token"]})
    assert r.status_code == 200 and r.json()["data"]["user"] == "alice"
    r = dev_server.request("POST", "sys/wrapping/unwrap", token="root", json={})
    assert r.status_code == 400 and "not valid" in r.json()["errors"][0]


def test_wrap_rewrap_and_empty(dev_server):
    client = dev_server.client()
    r = dev_server.request("POST", "sys/wrapping/wrap", json={"foo": "bar"})
    assert r.status_code == 400 and "X-Vault-Wrap-TTL" in r.json()["errors"][0]
    info = client.sys.wrap(payload={"foo": "bar", "n": 3, "nested": {"a": [1, 2]}}, ttl="2m")["wrap_info"]
    assert info["creation_path"] == "sys/wrapping/wrap" and info["ttl"] == 120
    again = dev_server.request("POST", "sys/wrapping/rewrap", json={"token": info["token"]}).json()["wrap_info"]
    assert again["token"] != info["token"] and again["ttl"] == 120 and again["creation_path"] == "sys/wrapping/wrap"
    assert dev_server.request("POST", "sys/wrapping/lookup", token=None, json={"token": info["token"]}).status_code == 400
    assert client.sys.unwrap(again["token"])["data"] == {"foo": "bar", "n": 3, "nested": {"a": [1, 2]}}
    empty = wrapped(dev_server, "POST", "sys/wrapping/wrap", json={})["wrap_info"]
    assert client.sys.unwrap(empty["token"])["data"] == {}


def test_wrapped_token_creation(dev_server):
    body = wrapped(dev_server, "POST", "auth/token/create", json={"ttl": "30m", "policies": ["default"]})
    info = body["wrap_info"]
    assert info["creation_path"] == "auth/token/create" and info["wrapped_accessor"]
    auth = dev_server.client().sys.unwrap(info["token"])["auth"]
    assert auth["accessor"] == info["wrapped_accessor"] and auth["lease_duration"] == 1800
    assert dev_server.request("GET", "auth/token/lookup-self", token=auth["client_token"]).status_code == 200


def test_expired_wrapping_token(dev_server, kv):
    info = wrapped(dev_server, "GET", f"{kv}/foo", ttl="1s")["wrap_info"]
    time.sleep(1.5)
    r = dev_server.request("POST", "sys/wrapping/unwrap", json={"token": info["token"]})
    assert r.status_code == 400 and r.json()["errors"] == ["wrapping token is not valid or does not exist"]


def test_wrap_ttl_header_values(dev_server, kv):
    for value, ttl in (("90", 90), ("5m", 300), ("100000h", 360000000)):
        assert wrapped(dev_server, "GET", f"{kv}/foo", ttl=value)["wrap_info"]["ttl"] == ttl
    plain = dev_server.request("GET", f"{kv}/foo", headers={"X-Vault-Wrap-TTL": "0"})
    assert plain.status_code == 200 and plain.json()["wrap_info"] is None and plain.json()["data"]["user"] == "alice"
    for value, message in (("abc", "error parsing X-Vault-Wrap-TTL header"), ("-5", "cannot be negative")):
        r = dev_server.request("GET", f"{kv}/foo", headers={"X-Vault-Wrap-TTL": value})
        assert r.status_code == 400 and message in r.json()["errors"][0]
    # Nothing to wrap: a 404 stays a 404, a 204 a 204.
    assert dev_server.request("GET", f"{kv}/nosuch", headers={"X-Vault-Wrap-TTL": "60"}).status_code == 404
    assert dev_server.request("POST", f"{kv}/bar", headers={"X-Vault-Wrap-TTL": "60"},
                              json={"a": 1}).status_code == 204


def test_policy_wrapping_ttl_bounds(dev_server, kv):
    client = dev_server.client()
    name = unique("wrapped-reads")
    client.sys.create_or_update_policy(name, f'path "{kv}/foo" {{\n  capabilities = ["read"]\n'
                                             '  min_wrapping_ttl = "1m"\n  max_wrapping_ttl = "10m"\n}')
    token = client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    r = dev_server.request("GET", f"{kv}/foo", token=token)
    assert r.status_code == 400 and "requires the response" in r.json()["errors"][0]
    for ttl, message in (("30s", "below the minimum"), ("1h", "above the maximum")):
        r = dev_server.request("GET", f"{kv}/foo", token=token, headers={"X-Vault-Wrap-TTL": ttl})
        assert r.status_code == 400 and message in r.json()["errors"][0]
    assert wrapped(dev_server, "GET", f"{kv}/foo", ttl="5m", token=token)["wrap_info"]["ttl"] == 300
    r = dev_server.request("PUT", "sys/policy/bad-wrap", json={
        "policy": 'path "a" { capabilities = ["read"]\n min_wrapping_ttl = "10m"\n max_wrapping_ttl = "1m" }'})
    assert r.status_code == 400 and "max_wrapping_ttl cannot be less than min_wrapping_ttl" in r.json()["errors"][0]
    r = dev_server.request("PUT", "sys/policy/bad-wrap", json={
        "policy": 'path "a" { capabilities = ["read"]\n min_wrapping_ttl = "soon" }'})
    assert r.status_code == 400 and "min_wrapping_ttl" in r.json()["errors"][0]


def test_cubbyhole_is_private_and_goes_with_its_token(dev_server):
    client = dev_server.client()
    token = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    other = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    assert dev_server.request("POST", "cubbyhole/mine", token=token, json={"k": "v"}).status_code == 204
    assert dev_server.request("GET", "cubbyhole/mine", token=token).json()["data"] == {"k": "v"}
    assert dev_server.request("LIST", "cubbyhole/", token=token).json()["data"]["keys"] == ["mine"]
    assert dev_server.request("GET", "cubbyhole/mine", token=other).status_code == 404
    client.auth.token.revoke(token)
    # A new token never sees what a revoked one left (its folder is gone).
    assert dev_server.request("GET", "cubbyhole/mine", token=other).status_code == 404
