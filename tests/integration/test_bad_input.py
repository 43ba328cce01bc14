"""Bad input never crashes the server, never changes data, never shows up as a 500.

Every case goes over real HTTP to the shared dev server (root token "root").
"""

from __future__ import annotations

import base64
import http.client
import json
import uuid

import pytest
import requests

PERMISSION_DENIED = {"errors": ["permission denied"]}
JSON = {"Content-Type": "application/json"}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
MiB = 1024 * 1024
BAD_MOUNT = f"bad-input-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _kv_version_1(kv1):
    """The kv paths here (kv-v1/bad-input/...) are on the shared dev server's kv version 1 mount."""


def check_envelope(r: requests.Response) -> None:
    """Every answer: Cache-Control no-store; every error: a JSON {"errors": [...]} body."""
    assert r.headers.get("Cache-Control") == "no-store", dict(r.headers)
    if r.status_code >= 400:
        assert r.headers.get("Content-Type", "").startswith("application/json"), dict(r.headers)
        body = r.json()
        assert isinstance(body, dict) and isinstance(body.get("errors"), list), body


# (id, method, path, request kwargs, status, text the error must contain)
CASES = [
    # bodies that are not a JSON object
    ("malformed-json", "PUT", "kv-v1/bad-input/x", {"data": b'{"password": ', "headers": JSON}, 400, "JSON"),
    ("malformed-json-no-content-type", "PUT", "kv-v1/bad-input/x", {"data": b'{"a" 1}'}, 400, "JSON"),
    ("json-array", "PUT", "kv-v1/bad-input/x", {"data": b'[1, 2, 3]', "headers": JSON}, 400, "object"),
    ("json-string", "PUT", "kv-v1/bad-input/x", {"data": b'"just a string"', "headers": JSON}, 400, ""),
    ("json-number", "PUT", "kv-v1/bad-input/x", {"data": b"42", "headers": JSON}, 400, ""),
    ("json-null", "PUT", "kv-v1/bad-input/x", {"data": b"null", "headers": JSON}, 400, ""),
    ("json-not-utf8", "PUT", "kv-v1/bad-input/x", {"data": b'{"a": "\xff\xfe"}', "headers": JSON}, 400, "JSON"),
    ("json-trailing-garbage", "PUT", "sys/policy/bad-input", {"data": b'{"policy": ""} x', "headers": JSON},
     400, "JSON"),
    # unknown fields on a declared path
    ("unknown-field", "POST", f"sys/mounts/{BAD_MOUNT}", {"json": {"type": "kv", "bogus": 1}}, 400, "bogus"),
    ("unknown-field-token-create", "POST", "auth/token/create", {"json": {"polices": ["default"]}}, 400, "polices"),
    # wrong types
    ("ttl-not-a-duration", "POST", f"sys/mounts/{BAD_MOUNT}",
     {"json": {"type": "kv", "config": {"default_lease_ttl": "soon"}}}, 400, "default_lease_ttl"),
    ("config-not-an-object", "POST", f"sys/mounts/{BAD_MOUNT}", {"json": {"type": "kv", "config": [1]}},
     400, "config"),
    ("local-not-a-bool", "POST", f"sys/mounts/{BAD_MOUNT}", {"json": {"type": "kv", "local": "maybe"}},
     400, "local"),
    ("missing-type", "POST", f"sys/mounts/{BAD_MOUNT}", {"json": {"description": "no type"}}, 400, "type"),
    ("unknown-engine", "POST", f"sys/mounts/{BAD_MOUNT}", {"json": {"type": "no-such-engine"}}, 400,
     "no-such-engine"),
    ("num-uses-not-an-int", "POST", "auth/token/create", {"json": {"num_uses": "many"}}, 400, "num_uses"),
    ("num-uses-a-bool", "POST", "auth/token/create", {"json": {"num_uses": True}}, 400, "num_uses"),
    ("ttl-not-a-duration-token", "POST", "auth/token/create", {"json": {"ttl": "forever"}}, 400, "ttl"),
    ("policies-an-object", "POST", "auth/token/create", {"json": {"policies": {"a": 1}}}, 400, "policies"),
    ("health-code-not-an-int", "GET", "sys/health?activecode=ok", {}, 400, "activecode"),
    # an invalid status code must be refused, not handed to the HTTP server (which aborted the process)
    ("health-code-99", "GET", "sys/health?activecode=99", {}, 400, "activecode"),
    ("health-code-0", "GET", "sys/health?activecode=0", {}, 400, "activecode"),
    ("health-code-negative", "GET", "sys/health?activecode=-1", {}, 400, "activecode"),
    ("health-code-1000", "GET", "sys/health?activecode=1000", {}, 400, "activecode"),
    ("health-code-600-unused", "GET", "sys/health?sealedcode=600", {}, 400, "sealedcode"),
    ("garbage-unseal-key", "PUT", "sys/unseal", {"json": {"key": "zz!!"}}, 400, "key"),
    ("bad-policy-text", "PUT", "sys/policy/bad-input", {"json": {"policy": 'path "x" { capabilities = '}}, 400, ""),
    # unknown paths
    ("unknown-mount", "GET", "no-such-mount-here/foo", {}, 404, "no-such-mount-here"),
    ("unknown-mount-write", "PUT", "no-such-mount-here/foo", {"json": {"a": "b"}}, 404, ""),
    ("unknown-sys-path", "GET", "sys/no-such-endpoint", {}, 404, "no-such-endpoint"),
    ("unknown-token-path", "GET", "auth/token/no-such-endpoint", {}, 404, ""),
    # wrong verbs
    ("delete-seal-status", "DELETE", "sys/seal-status", {}, 405, ""),
    ("put-seal-status", "PUT", "sys/seal-status", {"json": {}}, 405, ""),
    ("patch-seal-status", "PATCH", "sys/seal-status", {"json": {}, "headers": MERGE_PATCH}, 405, ""),
    ("patch-not-merge-patch", "PATCH", "sys/seal-status", {"json": {}}, 415, "application/merge-patch+json"),
    ("get-seal", "GET", "sys/seal", {}, 405, ""),
    ("delete-health", "DELETE", "sys/health", {}, 405, ""),
    ("options", "OPTIONS", "sys/seal-status", {}, 405, "OPTIONS"),
    ("bogus-method", "BOGUS", "kv-v1/bad-input/x", {}, 405, "BOGUS"),
    ("patch-kv-v1", "PATCH", "kv-v1/bad-input/x", {"json": {"a": "b"}, "headers": MERGE_PATCH}, 405, ""),
]


@pytest.mark.parametrize("method,path,kwargs,status,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx(dev_server, method, path, kwargs, status, text):
    r = dev_server.request(method, path, **kwargs)
    assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
    check_envelope(r)
    errors = r.json()["errors"]
    if status != 404:  # Vault answers a plain 404 with an empty list for some misses
        assert errors and all(isinstance(e, str) and e for e in errors), errors
    if text:
        assert any(text in e for e in errors), f"error should mention {text!r}: {errors}"


@pytest.mark.parametrize("field,value", [
    ("num_uses", 99999999999999999999999),
    ("explicit_max_ttl", 1e20),
    ("period", 1e20),
])
def test_out_of_range_numbers_are_400_not_500(dev_server, field, value):
    r = dev_server.request("POST", "auth/token/create", json={field: value, "policies": ["default"]})
    assert r.status_code == 400, (
        f"{field}={value!r} must be refused as bad input, got {r.status_code} {r.text[:200]}; "
        "framework/fields.py (_to_int / duration conversion) accepts integers beyond 64 bits, "
        "which then crash orjson in core/tokens.py _write (TypeError: Integer exceeds 64-bit range)")
    assert field in r.json()["errors"][0]


@pytest.mark.parametrize("key,size", [
    (bytes(range(16)).hex(), 16),                        # hex, half a key
    (base64.b64encode(bytes(range(33))).decode(), 33),   # base64, one byte too many
], ids=["hex-16-bytes", "base64-33-bytes"])
def test_unseal_key_of_the_wrong_length_is_400_even_when_unsealed(dev_server, key, size):
    """The dev server is unsealed already; a key of the wrong size is still refused (as Vault does), naming
    both the size it has and the size this seal's keys have (one share of 32 bytes)."""
    r = dev_server.request("PUT", "sys/unseal", token=None, json={"key": key})
    assert r.status_code == 400, r.text
    check_envelope(r)
    error = r.json()["errors"][0]
    assert f"this one has {size} bytes" in error and "32 bytes" in error, error
    assert dev_server.request("GET", "sys/seal-status", token=None).json()["sealed"] is False


def test_bad_input_changed_nothing(dev_server):
    """None of the refused requests above mounted, wrote or created anything."""
    for c in CASES:
        dev_server.request(c[1], c[2], **c[3])
    mounts = dev_server.request("GET", "sys/mounts").json()["data"]
    assert f"{BAD_MOUNT}/" not in mounts
    assert dev_server.request("GET", "kv-v1/bad-input/x").status_code == 404
    assert dev_server.request("GET", "sys/policy/bad-input").status_code == 404


def test_patch_does_not_overwrite_a_kv_v1_secret(dev_server):
    path = f"kv-v1/bad-input/patch-{uuid.uuid4().hex[:8]}"
    assert dev_server.request("PUT", path, json={"a": "1", "b": "2"}).status_code == 204
    r = dev_server.request("PATCH", path, json={"a": "9"}, headers=MERGE_PATCH)
    assert r.status_code == 405, f"kv v1 has no patch; got {r.status_code} {r.text}"
    r = dev_server.request("PATCH", path, json={"a": "9"})
    assert r.status_code == 415, f"a PATCH must be a merge patch; got {r.status_code} {r.text}"
    assert dev_server.request("GET", path).json()["data"] == {"a": "1", "b": "2"}


# -- body size -----------------------------------------------------------------------


def test_declared_body_over_32_mib_is_413_before_it_is_sent(dev_server):
    """A Content-Length over the limit is refused from the headers alone."""
    conn = http.client.HTTPConnection("127.0.0.1", dev_server.port, timeout=30)
    try:
        conn.putrequest("PUT", "/v1/kv-v1/bad-input/huge")
        conn.putheader("X-Vault-Token", "root")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(32 * MiB + 1))
        conn.endheaders()  # and no body at all
        resp = conn.getresponse()
        assert resp.status == 413
        assert resp.getheader("Cache-Control") == "no-store"
        assert resp.getheader("Content-Type", "").startswith("application/json")
        assert json.loads(resp.read())["errors"]
    finally:
        conn.close()
    assert dev_server.request("GET", "kv-v1/bad-input/huge").status_code == 404


def test_body_over_32_mib_chunked_is_413(dev_server):
    def chunks():  # no Content-Length: the server must count while reading
        yield b'{"v": "'
        for _ in range(32):
            yield b"x" * MiB
        yield b'"}'

    r = dev_server.request("PUT", "kv-v1/bad-input/huge-chunked", data=chunks(), headers=JSON)
    assert r.status_code == 413, r.text
    check_envelope(r)
    assert dev_server.request("GET", "kv-v1/bad-input/huge-chunked").status_code == 404


def test_body_just_under_the_limit_is_accepted(dev_server):
    value = "y" * (MiB)
    path = f"kv-v1/bad-input/big-{uuid.uuid4().hex[:8]}"
    assert dev_server.request("PUT", path, json={"v": value}).status_code == 204
    assert dev_server.request("GET", path).json()["data"]["v"] == value


# -- tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"X-Vault-Token": "hvs.not-a-real-token"},
    {"X-Vault-Token": "ROOT"},
    {"Authorization": "Bearer nope"},
    {"Authorization": "Basic cm9vdDpyb290"},
    {"Authorization": "root"},
], ids=["none", "unknown", "wrong-case", "bad-bearer", "basic-auth", "bare-authorization"])
@pytest.mark.parametrize("method,path", [("GET", "kv-v1/bad-input/x"), ("PUT", "kv-v1/bad-input/x"),
                                         ("GET", "sys/mounts"), ("POST", "auth/token/create")])
def test_missing_or_bad_token_is_403(dev_server, headers, method, path):
    r = dev_server.request(method, path, token=None, headers=dict(headers),
                           json={"a": "b"} if method in ("PUT", "POST") else None)
    assert r.status_code == 403, r.text
    assert r.json() == PERMISSION_DENIED
    check_envelope(r)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_token_is_accepted(dev_server, scheme):
    path = f"kv-v1/bad-input/bearer-{uuid.uuid4().hex[:8]}"
    r = dev_server.request("PUT", path, token=None, headers={"Authorization": f"{scheme} root"}, json={"k": "v"})
    assert r.status_code == 204, r.text
    r = dev_server.request("GET", path, token=None, headers={"Authorization": f"{scheme} root"})
    assert r.status_code == 200 and r.json()["data"] == {"k": "v"}


# -- envelope --------------------------------------------------------------------------


def test_empty_success_is_204_without_a_body(dev_server):
    r = dev_server.request("PUT", f"kv-v1/bad-input/ok-{uuid.uuid4().hex[:8]}", json={"a": "b"})
    assert r.status_code == 204
    assert r.content == b""
    check_envelope(r)


@pytest.mark.parametrize("method,path", [
    ("GET", "sys/seal-status"), ("GET", "sys/health"), ("GET", "sys/mounts"), ("GET", "sys/key-status"),
    ("GET", "auth/token/lookup-self"), ("GET", "kv-v1/bad-input/missing"), ("GET", "sys/leader"),
])
def test_every_answer_has_cache_control_no_store(dev_server, method, path):
    r = dev_server.request(method, path)
    assert r.status_code < 500
    check_envelope(r)


def test_outside_v1_is_404(dev_server):
    r = requests.get(f"{dev_server.addr}/v2/sys/health", timeout=10)
    assert r.status_code == 404
    check_envelope(r)


def test_percent_encoded_path_is_decoded_once(dev_server):
    folder = f"kv-v1/bad-input/enc-{uuid.uuid4().hex[:8]}"
    # "%2541" is the text "%41" once decoded (Vault decodes a path once)
    assert dev_server.request("PUT", f"{folder}/a%2541", json={"v": "1"}).status_code == 204
    assert dev_server.request("PUT", f"{folder}/with%20space", json={"v": "2"}).status_code == 204
    keys = dev_server.request("LIST", folder).json()["data"]["keys"]
    assert keys == ["a%41", "with space"], keys
    assert dev_server.request("GET", f"{folder}/aA").status_code == 404


def test_server_still_serves_after_bad_input(dev_server):
    for c in CASES:
        dev_server.request(c[1], c[2], **c[3])
    path = f"kv-v1/bad-input/after-{uuid.uuid4().hex[:8]}"
    assert dev_server.request("PUT", path, json={"still": "here"}).status_code == 204
    r = dev_server.request("GET", path)
    assert r.status_code == 200 and r.json()["data"] == {"still": "here"}
    status = dev_server.request("GET", "sys/seal-status", token=None).json()
    assert status["sealed"] is False
    assert "server exited" not in dev_server.log()
    assert dev_server.proc is not None and dev_server.proc.poll() is None
