"""AWS IAM auth against moto's STS (SigV4 verified, IAM auth enforced), through hvac's iam_login."""

from __future__ import annotations

import base64
import json
import uuid

import hvac
import pytest
from hvac import aws_utils

SERVER_ID = "coffer.example.com"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def aws_auth(dev_server, moto):
    client = dev_server.client()
    mount = unique("aws")
    client.sys.enable_auth_method("aws", path=mount)
    client.write(f"auth/{mount}/config/client", sts_endpoint=moto.endpoint, iam_server_id_header_value=SERVER_ID)
    yield client, mount
    client.sys.disable_auth_method(mount)


def payload(key, header_value=SERVER_ID, body="Action=GetCallerIdentity&Version=2011-06-15", role=None,
            signed_body=None) -> dict:
    """hvac's iam_login payload, optionally with a body other than the one signed."""
    request = aws_utils.generate_sigv4_auth_request(header_value=header_value)
    if signed_body is not None:
        request.body = signed_body
        request.headers["Content-Length"] = str(len(signed_body))
    aws_utils.SigV4Auth(key[0], key[1], None, "us-east-1").add_auth(request)
    headers = json.dumps({k: [request.headers[k]] for k in request.headers})
    if signed_body is not None:
        headers = json.dumps({k: [v if k != "Content-Length" else str(len(body))] for k, v in request.headers.items()})
    return {"iam_http_request_method": "POST",
            "iam_request_url": base64.b64encode(request.url.encode()).decode(),
            "iam_request_headers": base64.b64encode(headers.encode()).decode(),
            "iam_request_body": base64.b64encode((body if signed_body is None else body).encode()).decode(),
            "role": role}


def test_iam_login_through_hvac(aws_auth, dev_server, moto):
    client, mount = aws_auth
    name = unique("app")
    key = moto.make_user(name, None)
    arn = moto.caller_arn(*key)
    client.write(f"auth/{mount}/role/app", auth_type="iam", bound_iam_principal_arn=[arn.rsplit("/", 1)[0] + "/app-*"],
                 token_policies=["deployer"], token_ttl="30m")
    app = hvac.Client(url=dev_server.addr)
    auth = app.auth.aws.iam_login(key[0], key[1], header_value=SERVER_ID, role="app", mount_point=mount)["auth"]
    assert auth["policies"] == ["default", "deployer"] and auth["lease_duration"] == 1800
    assert auth["metadata"]["client_arn"] == arn and auth["metadata"]["canonical_arn"] == arn
    assert auth["metadata"]["account_id"] == arn.split(":")[4] and auth["metadata"]["auth_type"] == "iam"
    assert auth["metadata"]["client_user_id"] == moto.admin_iam().get_user(UserName=name)["User"]["UserId"]
    me = app.auth.token.lookup_self()["data"]
    assert me["path"] == f"auth/{mount}/login" and me["display_name"] == f"{mount}-{name}"


def test_refusals(aws_auth, dev_server, moto):
    client, mount = aws_auth
    inside, outside = moto.make_user(unique("app"), None), moto.make_user(unique("intruder"), None)
    arn = moto.caller_arn(*inside)
    client.write(f"auth/{mount}/role/app", bound_iam_principal_arn=[arn], token_policies=["default"])

    def login(body):
        return dev_server.request("POST", f"auth/{mount}/login", token=None, json=body)

    assert login(payload(inside, role="app")).status_code == 200
    r = login(payload(outside, role="app"))
    assert r.status_code == 400 and "does not satisfy the role's bound_iam_principal_arn" in r.json()["errors"][0]
    # Another action (or anything else in the body) is never forwarded.
    for body in ("Action=GetCallerIdentity&Version=2011-06-15&Extra=1", "Action=ListUsers&Version=2010-05-08"):
        r = login(payload(inside, role="app", body=body, signed_body=body))
        assert r.status_code == 400 and "exactly Action=GetCallerIdentity" in r.json()["errors"][0]
    # A body other than the signed one (same parameters, reordered): STS's signature check refuses it.
    r = login(payload(inside, role="app", body="Version=2011-06-15&Action=GetCallerIdentity",
                      signed_body="Action=GetCallerIdentity&Version=2011-06-15"))
    assert r.status_code == 400 and "STS refused the signed request" in r.json()["errors"][0], r.text
    # The server-ID header: missing, or wrong.
    for header in (None, "other.example.com"):
        r = login(payload(inside, role="app", header_value=header))
        assert r.status_code == 400 and "X-Vault-AWS-IAM-Server-ID" in r.json()["errors"][0]
    r = login(payload(("AKIANOTAREALKEY00000", "x"), role="app"))
    assert r.status_code == 400 and "STS refused" in r.json()["errors"][0]
    r = login({**payload(inside, role="app"), "iam_http_request_method": "GET"})
    assert r.status_code == 400 and "must be POST" in r.json()["errors"][0]
    r = login({**payload(inside, role="app"), "iam_request_headers": "%%%"})
    assert r.status_code == 400 and "not valid base64" in r.json()["errors"][0]
    r = login(payload(inside, role="nosuch"))
    assert r.status_code == 400 and 'role "nosuch" not found' in r.json()["errors"][0]


def test_resolve_unique_ids(aws_auth, dev_server, moto):
    client, mount = aws_auth
    name = unique("app")
    key = moto.make_user(name, None)
    arn = moto.caller_arn(*key)
    r = dev_server.request("POST", f"auth/{mount}/role/strict", json={
        "bound_iam_principal_arn": [arn], "resolve_aws_unique_ids": True})
    assert r.status_code == 400 and "needs IAM credentials" in r.json()["errors"][0]
    assert dev_server.request("GET", f"auth/{mount}/role/strict").status_code == 404
    admin = moto.admin
    client.write(f"auth/{mount}/config/client", access_key=admin.access_key_id, secret_key=admin.secret_access_key,
                 iam_endpoint=moto.endpoint)
    assert "secret_key" not in client.read(f"auth/{mount}/config/client")["data"]
    client.write(f"auth/{mount}/role/strict", bound_iam_principal_arn=[arn], resolve_aws_unique_ids=True,
                 token_policies=["default"])
    role = client.read(f"auth/{mount}/role/strict")["data"]
    assert role["bound_iam_principal_id"] == [moto.admin_iam().get_user(UserName=name)["User"]["UserId"]]
    assert dev_server.request("POST", f"auth/{mount}/login", token=None,
                              json=payload(key, role="strict")).status_code == 200
    # A glob beside the exact ARN binds other principals; it does not lift the exact one's binding.
    others = arn.rsplit("/", 1)[0] + "/other-*"
    client.write(f"auth/{mount}/role/mixed", bound_iam_principal_arn=[arn, others], resolve_aws_unique_ids=True,
                 token_policies=["default"])
    # The same name, deleted and made again, is another principal.
    iam = moto.admin_iam()
    iam.delete_access_key(UserName=name, AccessKeyId=key[0])
    iam.delete_user(UserName=name)
    again = moto.make_user(name, None)
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json=payload(again, role="strict"))
    assert r.status_code == 400 and "unique ID differs" in r.json()["errors"][0]
    r = dev_server.request("POST", f"auth/{mount}/login", token=None, json=payload(again, role="mixed"))
    assert r.status_code == 400 and "unique ID differs" in r.json()["errors"][0]


def test_bad_role_input(aws_auth, dev_server):
    client, mount = aws_auth
    for body, message in (({}, "bound_iam_principal_arn is required"),
                          ({"bound_iam_principal_arn": "not-an-arn"}, "is not an IAM ARN"),
                          ({"auth_type": "ec2", "bound_iam_principal_arn": "*"}, "not supported"),
                          ({"bound_iam_principal_arn": "*", "token_type": "batch"}, "batch")):
        r = dev_server.request("POST", f"auth/{mount}/role/r", json=body)
        assert r.status_code == 400 and message in r.json()["errors"][0], (body, r.text)
    assert dev_server.request("GET", f"auth/{mount}/role/r").status_code == 404
    r = dev_server.request("POST", f"auth/{mount}/config/client", json={"access_key": "AKIA"})
    assert r.status_code == 400 and "go together" in r.json()["errors"][0]
