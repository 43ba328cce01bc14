"""AppRole through hvac on a real server: a wrapped secret ID, the login, and what its token may read."""

from __future__ import annotations

import json
import time
import uuid

import hvac
import pytest
from botocore.exceptions import ClientError

from aws_support import MINIMAL_ROOT_POLICY, error_code
from conftest import init_and_unseal

ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:GetUser"], "Resource": "*"}]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def approle(dev_server):
    """An approle mount at a fresh path; answers (client, mount)."""
    client = dev_server.client()
    mount = unique("approle")
    client.sys.enable_auth_method("approle", path=mount)
    yield client, mount
    client.sys.disable_auth_method(mount)


@pytest.fixture
def aws_server(sqlite_server, moto):
    keys, root = init_and_unseal(sqlite_server)
    client = sqlite_server.client(root)
    client.sys.enable_secrets_engine("aws", path="aws")
    key = moto.make_user(unique("hashicorp"), MINIMAL_ROOT_POLICY)
    client.write("aws/config/root", access_key=key.access_key_id, secret_key=key.secret_access_key,
                 region="us-east-1", iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    for role in ("deploy", "other"):
        client.write(f"aws/roles/{role}", credential_type="iam_user", policy_document=json.dumps(ROLE_POLICY))
    client.sys.create_or_update_policy("deployer", 'path "aws/creds/deploy" { capabilities = ["read"] }')
    client.sys.enable_auth_method("approle")
    client.auth.approle.create_or_update_approle("ci", token_policies=["deployer"], token_ttl="20m",
                                                 token_max_ttl="1h", secret_id_num_uses=0)
    sqlite_server.hvac = client
    return sqlite_server


def test_wrapped_secret_id_login_and_aws_creds(aws_server, moto):
    client = aws_server.hvac
    role_id = client.auth.approle.read_role_id("ci")["data"]["role_id"]
    # The secret ID is delivered wrapped: only the wrapping token travels.
    wrapped = aws_server.request("POST", "auth/approle/role/ci/secret-id", token=client.token,
                                 headers={"X-Vault-Wrap-TTL": "5m"}, json={"metadata": '{"job": "deploy"}'})
    assert wrapped.status_code == 200, wrapped.text
    body = wrapped.json()
    assert body["data"] is None and body["auth"] is None
    info = body["wrap_info"]
    assert info["ttl"] == 300 and info["creation_path"] == "auth/approle/role/ci/secret-id"
    assert info["wrapped_accessor"]  # the secret ID's accessor
    # Anyone may look it up without consuming it.
    looked = aws_server.request("POST", "sys/wrapping/lookup", token=None, json={"token": info["token"]})
    assert looked.json()["data"]["creation_ttl"] == 300

    unwrapped = hvac.Client(url=aws_server.addr, token=info["token"]).sys.unwrap()
    secret_id = unwrapped["data"]["secret_id"]
    assert unwrapped["data"]["secret_id_accessor"] == info["wrapped_accessor"]
    # A second unwrap is refused: whoever holds the token now knows it was already used.
    with pytest.raises((hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)):
        hvac.Client(url=aws_server.addr, token=info["token"]).sys.unwrap()
    with pytest.raises(hvac.exceptions.InvalidRequest) as again:
        client.sys.unwrap(info["token"])
    assert "wrapping token is not valid or does not exist" in str(again.value)

    app = hvac.Client(url=aws_server.addr)
    login = app.auth.approle.login(role_id=role_id, secret_id=secret_id)
    auth = login["auth"]
    assert auth["policies"] == ["default", "deployer"] and auth["token_policies"] == ["default", "deployer"]
    assert auth["metadata"] == {"job": "deploy", "role_name": "ci"}
    assert auth["lease_duration"] == 1200 and auth["renewable"] is True and auth["orphan"] is True
    assert auth["token_type"] == "service" and auth["entity_id"] == "" and auth["accessor"]
    assert app.token == auth["client_token"]
    me = app.auth.token.lookup_self()["data"]
    assert me["path"] == "auth/approle/login" and me["display_name"] == "approle" and me["orphan"] is True

    creds = app.read("aws/creds/deploy")
    user = moto.user_of(creds["data"]["access_key"])
    assert user and moto.user_exists(user)
    with pytest.raises(hvac.exceptions.Forbidden):
        app.read("aws/creds/other")

    # Revoking the login token takes the AWS credentials read with it back: the IAM user is gone.
    client.auth.token.revoke(auth["client_token"])
    assert not moto.user_exists(user)
    with pytest.raises(ClientError) as gone:
        moto.iam(creds["data"]["access_key"], creds["data"]["secret_key"]).get_user(UserName=user)
    assert error_code(gone.value) == "InvalidClientTokenId"


def test_secret_id_with_one_use(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    once = client.write(f"auth/{mount}/role/r/secret-id", num_uses=1)["data"]
    assert once["secret_id_num_uses"] == 1
    app = hvac.Client(url=dev_server.addr)
    assert app.auth.approle.login(role_id, once["secret_id"], mount_point=mount, use_token=False)["auth"]
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        app.auth.approle.login(role_id, once["secret_id"], mount_point=mount, use_token=False)
    assert "invalid role or secret ID" in str(refused.value)
    # Used up means gone: its accessor is no longer listed.
    r = dev_server.request("LIST", f"auth/{mount}/role/r/secret-id")
    assert r.status_code == 404


def test_wrong_role_id_and_wrong_secret_id_answer_the_same(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("r", mount_point=mount)["data"]["secret_id"]
    answers = []
    for body in ({"role_id": role_id, "secret_id": "wrong"}, {"role_id": "wrong", "secret_id": secret_id}):
        r = dev_server.request("POST", f"auth/{mount}/login", token=None, json=body)
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] == (400, {"errors": ["invalid role or secret ID"]})


def test_cidr_bindings(approle, dev_server):
    client, mount = approle
    # A secret ID bound to other addresses is refused from 127.0.0.1 ...
    client.auth.approle.create_or_update_approle("far", token_policies=["default"],
                                                 secret_id_bound_cidrs=["10.0.0.0/8"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("far", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("far", mount_point=mount)["data"]["secret_id"]
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role_id": role_id, "secret_id": secret_id})
    assert r.status_code == 400 and "unauthorized by CIDR restrictions on the role" in r.json()["errors"][0]

    # ... so is a secret ID whose own cidr_list excludes it; one including it logs in.
    client.auth.approle.create_or_update_approle("near", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("near", mount_point=mount)["data"]["role_id"]
    far = client.write(f"auth/{mount}/role/near/secret-id", cidr_list="192.168.0.0/16")["data"]["secret_id"]
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role_id": role_id, "secret_id": far})
    assert r.status_code == 400 and "on the secret ID" in r.json()["errors"][0]
    near = client.write(f"auth/{mount}/role/near/secret-id", cidr_list="127.0.0.0/8",
                        token_bound_cidrs="10.1.0.0/16")["data"]["secret_id"]
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role_id": role_id, "secret_id": near})
    assert r.status_code == 200, r.text
    token = r.json()["auth"]["client_token"]
    # That token is bound to 10.1.0.0/16: from 127.0.0.1 it is refused on every request.
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 403
    assert dev_server.request("POST", "auth/token/lookup", json={"token": token}).json()["data"]["bound_cidrs"] == [
        "10.1.0.0/16"]


def test_role_without_secret_id_needs_a_constraint(approle, dev_server):
    client, mount = approle
    r = dev_server.request("POST", f"auth/{mount}/role/loose", json={"bind_secret_id": False})
    assert r.status_code == 400 and "at least one constraint" in r.json()["errors"][0]
    assert dev_server.request("GET", f"auth/{mount}/role/loose").status_code == 404
    r = dev_server.request("POST", f"auth/{mount}/role/local", json={
        "bind_secret_id": False, "secret_id_bound_cidrs": ["127.0.0.1/32"], "token_policies": "default",
        "role_id": "my-fixed-role-id"})
    assert r.status_code == 204, r.text
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role_id": "my-fixed-role-id"})
    assert r.status_code == 200 and r.json()["auth"]["metadata"] == {"role_name": "local"}


def test_secret_id_lookup_destroy_and_accessors(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], secret_id_ttl="10m",
                                                 mount_point=mount)
    made = client.auth.approle.generate_secret_id("r", metadata={"team": "a"}, mount_point=mount)["data"]
    assert made["secret_id_ttl"] == 600
    looked = client.auth.approle.read_secret_id("r", made["secret_id"], mount_point=mount)["data"]
    assert looked["metadata"] == {"team": "a"} and looked["secret_id_accessor"] == made["secret_id_accessor"]
    assert dev_server.request("LIST", f"auth/{mount}/role/r/secret-id").json()["data"]["keys"] == [
        made["secret_id_accessor"]]
    by_accessor = client.auth.approle.read_secret_id_accessor("r", made["secret_id_accessor"], mount_point=mount)
    assert by_accessor["data"]["metadata"] == {"team": "a"}
    client.auth.approle.destroy_secret_id_accessor("r", made["secret_id_accessor"], mount_point=mount)
    r = dev_server.request("POST", f"auth/{mount}/role/r/secret-id/lookup", json={"secret_id": made["secret_id"]})
    assert r.status_code == 204
    custom = client.auth.approle.create_custom_secret_id("r", "my-very-custom-secret", mount_point=mount)["data"]
    assert custom["secret_id"] == "my-very-custom-secret"
    r = dev_server.request("POST", f"auth/{mount}/role/r/custom-secret-id", json={"secret_id": "my-very-custom-secret"})
    assert r.status_code == 400 and "already registered" in r.json()["errors"][0]
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    r = dev_server.request("POST", f"auth/{mount}/login", token=None,
                           json={"role_id": role_id, "secret_id": "my-very-custom-secret"})
    assert r.status_code == 200, r.text
    client.auth.approle.destroy_secret_id("r", "my-very-custom-secret", mount_point=mount)
    r = dev_server.request("POST", f"auth/{mount}/login", token=None,
                           json={"role_id": role_id, "secret_id": "my-very-custom-secret"})
    assert r.status_code == 400
    r = dev_server.request("POST", f"auth/{mount}/tidy/secret-id")
    assert r.status_code == 202


def test_secret_ids_are_stored_hashed(sqlite_server, tmp_path):
    keys, root = init_and_unseal(sqlite_server)
    client = sqlite_server.client(root)
    client.sys.enable_auth_method("approle")
    client.auth.approle.create_or_update_approle("r", token_policies=["default"])
    secret_id = client.auth.approle.generate_secret_id("r")["data"]["secret_id"]
    client.auth.approle.create_custom_secret_id("r", "plain-custom-secret-value-123")
    sqlite_server.stop()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("coffer.db*"))
    assert secret_id.encode() not in raw and b"plain-custom-secret-value-123" not in raw


def test_role_reads_and_bad_input(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("web", token_policies=["foo-read"], token_ttl="20m",
                                                 token_max_ttl="1h", secret_id_ttl="10m", mount_point=mount)
    data = client.auth.approle.read_role("web", mount_point=mount)["data"]
    assert data == {"bind_secret_id": True, "local_secret_ids": False, "secret_id_bound_cidrs": None,
                    "secret_id_num_uses": 0, "secret_id_ttl": 600, "token_bound_cidrs": [],
                    "token_explicit_max_ttl": 0, "token_max_ttl": 3600, "token_no_default_policy": False,
                    "token_num_uses": 0, "token_period": 0, "token_policies": ["foo-read"],
                    "token_strictly_bind_ip": False, "token_ttl": 1200, "token_type": "default"}
    assert dev_server.request("GET", f"auth/{mount}/role/web/token-ttl").json()["data"] == {"token_ttl": 1200}
    assert dev_server.request("LIST", f"auth/{mount}/role").json()["data"]["keys"] == ["web"]
    bad = [
        ("role/bad", {"token_ttl": "2h", "token_max_ttl": "1h"}, "token_ttl cannot be greater than token_max_ttl"),
        ("role/bad", {"token_type": "batch"}, "batch"),
        ("role/bad", {"token_policies": ["root"]}, "cannot contain root"),
        ("role/bad", {"secret_id_bound_cidrs": ["300.1.1.1/8"]}, "invalid secret_id_bound_cidrs"),
        ("role/bad", {"token_ttl": "forever"}, 'field "token_ttl"'),
        ("role/bad", {"nonsense": 1}, "unknown field"),
        ("role/web/secret-id", {"metadata": "notjson"}, "metadata"),
        ("role/web/secret-id", {"metadata": '{"a": {"b": 1}}'}, "must be a string"),
        ("role/web/secret-id", {"cidr_list": ["300.1.1.1/8"]}, "invalid cidr_list"),
        ("role/web/secret-id", {"ttl": "1h"}, "cannot be longer than the role's secret_id_ttl"),
        ("role/web/custom-secret-id", {}, 'missing required field "secret_id"'),
        ("login", {}, 'missing required field "role_id"'),
    ]
    for path, body, message in bad:
        r = dev_server.request("POST", f"auth/{mount}/{path}", token="root" if path != "login" else None, json=body)
        assert 400 <= r.status_code < 500 and message in r.json()["errors"][0], (path, body, r.text)
    # Nothing was stored half-way.
    assert dev_server.request("GET", f"auth/{mount}/role/bad").status_code == 404
    assert dev_server.request("LIST", f"auth/{mount}/role/web/secret-id").status_code == 404
    r = dev_server.request("POST", f"auth/{mount}/role/nosuch/secret-id")
    assert r.status_code == 404 and 'role "nosuch" does not exist' in r.json()["errors"][0]


def test_renewal_goes_through_the_role(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], token_ttl="10m",
                                                 token_max_ttl="30m", mount_point=mount)
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("r", mount_point=mount)["data"]["secret_id"]
    app = hvac.Client(url=dev_server.addr)
    app.auth.approle.login(role_id, secret_id, mount_point=mount)
    renewed = app.auth.token.renew_self(increment="1h")["auth"]
    assert 1790 <= renewed["lease_duration"] <= 1800  # capped by token_max_ttl (30m)
    client.auth.approle.delete_role("r", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        app.auth.token.renew_self()
    assert "does not exist any more" in str(refused.value)


def test_disabling_the_method_revokes_its_tokens(dev_server):
    client = dev_server.client()
    mount = unique("approle")
    client.sys.enable_auth_method("approle", path=mount)
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("r", mount_point=mount)["data"]["secret_id"]
    token = hvac.Client(url=dev_server.addr).auth.approle.login(role_id, secret_id, mount_point=mount,
                                                                use_token=False)["auth"]["client_token"]
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    client.sys.disable_auth_method(mount)
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 403


def approle_login(server, mount: str, role_id: str, secret_id: str):
    return server.request("POST", f"auth/{mount}/login", token=None, json={"role_id": role_id, "secret_id": secret_id})


def test_secret_id_past_its_ttl_is_refused(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("short", token_policies=["default"], secret_id_ttl="1s",
                                                 mount_point=mount)
    role_id = client.auth.approle.read_role_id("short", mount_point=mount)["data"]["role_id"]
    made = client.auth.approle.generate_secret_id("short", mount_point=mount)["data"]
    assert made["secret_id_ttl"] == 1
    # Logins work (unlimited uses) until the second is over; then the secret ID is refused for good.
    deadline = time.monotonic() + 15
    while True:
        r = approle_login(dev_server, mount, role_id, made["secret_id"])
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # The same answer as for any unknown secret ID (Vault: 400 "invalid role or secret ID").
    assert (r.status_code, r.json()) == (400, {"errors": ["invalid role or secret ID"]})
    assert approle_login(dev_server, mount, role_id, made["secret_id"]).status_code == 400
    # The refused login removed the expired entry: its accessor is neither listed nor found.
    assert dev_server.request("LIST", f"auth/{mount}/role/short/secret-id").status_code == 404
    r = dev_server.request("POST", f"auth/{mount}/role/short/secret-id-accessor/lookup",
                           json={"secret_id_accessor": made["secret_id_accessor"]})
    assert r.status_code == 404 and "failed to find accessor entry" in r.json()["errors"][0]


def test_tidy_removes_expired_secret_ids(approle, dev_server):
    client, mount = approle
    # Tidy once first: the mount's own periodic tidy then waits ten minutes, so only our call below removes.
    assert dev_server.request("POST", f"auth/{mount}/tidy/secret-id").status_code == 202
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], mount_point=mount)
    role_id = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    keep = client.write(f"auth/{mount}/role/r/secret-id")["data"]
    gone = client.write(f"auth/{mount}/role/r/secret-id", ttl="1s")["data"]
    assert (keep["secret_id_ttl"], gone["secret_id_ttl"]) == (0, 1)
    deadline = time.monotonic() + 15
    while True:  # an expired secret ID looks like no secret ID (204, no data) ...
        r = dev_server.request("POST", f"auth/{mount}/role/r/secret-id/lookup", json={"secret_id": gone["secret_id"]})
        if r.status_code == 204 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 204, r.text
    # ... but its entry stays in storage until tidied: its accessor is still listed.
    listed = dev_server.request("LIST", f"auth/{mount}/role/r/secret-id").json()["data"]["keys"]
    assert sorted(listed) == sorted([keep["secret_id_accessor"], gone["secret_id_accessor"]])

    r = dev_server.request("POST", f"auth/{mount}/tidy/secret-id")
    assert r.status_code == 202 and r.json()["data"] == {"expired_secret_ids": 1, "dangling_accessors": 0}
    assert dev_server.request("LIST", f"auth/{mount}/role/r/secret-id").json()["data"]["keys"] == [
        keep["secret_id_accessor"]]
    r = dev_server.request("POST", f"auth/{mount}/role/r/secret-id-accessor/lookup",
                           json={"secret_id_accessor": gone["secret_id_accessor"]})
    assert r.status_code == 404
    # The unexpired one was left alone.
    assert approle_login(dev_server, mount, role_id, keep["secret_id"]).status_code == 200
    r = dev_server.request("POST", f"auth/{mount}/tidy/secret-id")
    assert r.json()["data"] == {"expired_secret_ids": 0, "dangling_accessors": 0}


def test_setting_the_role_id(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("r", token_policies=["default"], mount_point=mount)
    client.auth.approle.create_or_update_approle("other", token_policies=["default"], mount_point=mount)
    old = client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("r", mount_point=mount)["data"]["secret_id"]
    r = dev_server.request("POST", f"auth/{mount}/role/r/role-id", json={"role_id": "build-runner-7"})
    assert r.status_code == 204, r.text
    assert client.auth.approle.read_role_id("r", mount_point=mount)["data"]["role_id"] == "build-runner-7"
    # The new role ID logs in with the secret IDs the role already had; the old one no longer does.
    r = approle_login(dev_server, mount, "build-runner-7", secret_id)
    assert r.status_code == 200 and r.json()["auth"]["metadata"] == {"role_name": "r"}
    assert approle_login(dev_server, mount, old, secret_id).json() == {"errors": ["invalid role or secret ID"]}
    # hvac's update_role_id sends the same request.
    client.auth.approle.update_role_id("r", "build-runner-8", mount_point=mount)
    assert approle_login(dev_server, mount, "build-runner-8", secret_id).status_code == 200
    assert approle_login(dev_server, mount, "build-runner-7", secret_id).status_code == 400
    # A role ID is one role's only: taking another role's is refused and changes nothing.
    other = client.auth.approle.read_role_id("other", mount_point=mount)["data"]["role_id"]
    r = dev_server.request("POST", f"auth/{mount}/role/other/role-id", json={"role_id": "build-runner-8"})
    assert r.status_code == 400 and "already used by another role" in r.json()["errors"][0]
    assert client.auth.approle.read_role_id("other", mount_point=mount)["data"]["role_id"] == other
    assert approle_login(dev_server, mount, "build-runner-8", secret_id).json()["auth"]["metadata"] == {
        "role_name": "r"}
    r = dev_server.request("POST", f"auth/{mount}/role/r/role-id", json={})
    assert r.status_code == 400 and 'missing required field "role_id"' in r.json()["errors"][0]


def test_role_token_bound_cidrs_bind_the_login_token(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("bound", token_policies=["default"], token_bound_cidrs=["10.0.0.0/8"],
                                                 mount_point=mount)
    assert client.auth.approle.read_role("bound", mount_point=mount)["data"]["token_bound_cidrs"] == ["10.0.0.0/8"]
    role_id = client.auth.approle.read_role_id("bound", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("bound", mount_point=mount)["data"]["secret_id"]
    # The login itself comes from 127.0.0.1 and is allowed (no secret_id_bound_cidrs) ...
    r = approle_login(dev_server, mount, role_id, secret_id)
    assert r.status_code == 200, r.text
    token = r.json()["auth"]["client_token"]
    # ... but the token it gets carries the role's CIDRs, so from 127.0.0.1 it is refused.
    assert dev_server.request("POST", "auth/token/lookup", json={"token": token}).json()["data"]["bound_cidrs"] == [
        "10.0.0.0/8"]
    r = dev_server.request("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 403, r.text
    # A secret ID's own token_bound_cidrs (within the role's) take the place of the role's.
    narrower = client.write(f"auth/{mount}/role/bound/secret-id", token_bound_cidrs="10.1.0.0/16")["data"]
    token = approle_login(dev_server, mount, role_id, narrower["secret_id"]).json()["auth"]["client_token"]
    assert dev_server.request("POST", "auth/token/lookup", json={"token": token}).json()["data"]["bound_cidrs"] == [
        "10.1.0.0/16"]
    r = dev_server.request("POST", f"auth/{mount}/role/bound/secret-id", json={"token_bound_cidrs": "127.0.0.1/32"})
    assert r.status_code == 400 and "must lie within the role's token_bound_cidrs" in r.json()["errors"][0]


def test_role_token_num_uses_limit_the_login_token(approle, dev_server):
    client, mount = approle
    client.auth.approle.create_or_update_approle("few", token_policies=["default"], token_num_uses=2,
                                                 mount_point=mount)
    role_id = client.auth.approle.read_role_id("few", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("few", mount_point=mount)["data"]["secret_id"]
    auth = approle_login(dev_server, mount, role_id, secret_id).json()["auth"]
    assert auth["num_uses"] == 2
    token = auth["client_token"]
    looked = dev_server.request("POST", "auth/token/lookup", json={"token": token}).json()["data"]
    assert looked["num_uses"] == 2
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    assert dev_server.request("GET", "auth/token/lookup-self", token=token).status_code == 200
    r = dev_server.request("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 403, "the third request of a token with token_num_uses=2 must be refused"
    # Used up means revoked, not merely refused.
    r = dev_server.request("POST", "auth/token/lookup-accessor", json={"accessor": auth["accessor"]})
    assert r.status_code == 400
    # Each login gets its own budget.
    again = approle_login(dev_server, mount, role_id, secret_id).json()["auth"]["client_token"]
    assert dev_server.request("GET", "auth/token/lookup-self", token=again).status_code == 200
