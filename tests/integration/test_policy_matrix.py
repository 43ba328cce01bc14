"""Who may do what on the AWS paths: a matrix of policies and requests."""

from __future__ import annotations

import uuid

import pytest

from aws_support import MINIMAL_ROOT_POLICY

ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser",
                                                       "Resource": "*"}]}
POLICIES = {
    "deployer": 'path "{m}/creds/deploy" { capabilities = ["read"] }',
    "any-role": 'path "{m}/creds/+" { capabilities = ["read"] }\n'
                'path "{m}/creds/admin" { capabilities = ["deny"] }',
    "aws-admin": 'path "{m}/*" { capabilities = ["create", "read", "update", "delete", "list"] }\n'
                 'path "{m}/config/*" { capabilities = ["deny"] }',
    "operator": 'path "sys/seal" { capabilities = ["update"] }',
    "sealer": 'path "sys/seal" { capabilities = ["update", "sudo"] }',
}
# (policy, method, path under the mount or sys/, allowed?)
MATRIX = [
    ("deployer", "GET", "{m}/creds/deploy", True),
    ("deployer", "GET", "{m}/creds/admin", False),
    ("deployer", "GET", "{m}/config/root", False),
    ("deployer", "PUT", "{m}/config/root", False),
    ("deployer", "LIST", "{m}/roles", False),
    ("any-role", "GET", "{m}/creds/deploy", True),
    ("any-role", "GET", "{m}/creds/admin", False),  # deny beats the + glob
    ("any-role", "GET", "{m}/roles/deploy", False),
    ("aws-admin", "GET", "{m}/roles/deploy", True),
    ("aws-admin", "LIST", "{m}/roles", True),
    ("aws-admin", "GET", "{m}/config/root", False),  # the more specific deny wins
    ("aws-admin", "PUT", "{m}/config/lease", False),
    ("operator", "PUT", "sys/seal", False),  # sys/seal needs sudo too
    ("deployer", "PUT", "sys/seal", False),
]


@pytest.fixture(scope="module")
def setup(dev_server, moto):
    mount = f"aws-{uuid.uuid4().hex[:6]}"
    s = dev_server
    s.request("POST", f"sys/mounts/{mount}", json={"type": "aws"}).raise_for_status()
    key = moto.make_user(f"root-{uuid.uuid4().hex[:6]}", MINIMAL_ROOT_POLICY)
    s.request("PUT", f"{mount}/config/root", json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key,
        "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}).raise_for_status()
    for role in ("deploy", "admin"):
        s.request("PUT", f"{mount}/roles/{role}", json={"credential_type": "iam_user",
                                                        "policy_document": ROLE_POLICY}).raise_for_status()
    tokens = {}
    for name, text in POLICIES.items():
        s.request("PUT", f"sys/policies/acl/{mount}-{name}", json={"policy": text.replace("{m}", mount)})
        tokens[name] = s.request("POST", "auth/token/create", json={"policies": [f"{mount}-{name}"]}).json()[
            "auth"]["client_token"]
    return mount, tokens


@pytest.mark.parametrize("policy, method, path, allowed", MATRIX)
def test_matrix(dev_server, setup, policy, method, path, allowed):
    mount, tokens = setup
    path = path.replace("{m}", mount)
    body = {"access_key": "AKIAEVIL", "secret_key": "evil"} if path.endswith("config/root") else (
        {"lease": "1h", "lease_max": "2h"} if path.endswith("config/lease") else None)
    before = dev_server.request("GET", f"{mount}/config/root").json()["data"]
    r = dev_server.request(method, path, token=tokens[policy], json=body)
    if allowed:
        assert r.status_code in (200, 204), r.text
        if path.endswith("/creds/deploy"):
            dev_server.request("PUT", "sys/leases/revoke", json={"lease_id": r.json()["lease_id"]})
    else:
        assert r.status_code == 403, r.text
        assert r.json() == {"errors": ["permission denied"]}
        assert dev_server.request("GET", f"{mount}/config/root").json()["data"] == before
        assert dev_server.request("GET", "sys/seal-status").json()["sealed"] is False


def test_sudo_policy_can_seal(tmp_path):
    """sys/seal with update+sudo seals (own server: sealing the shared one would break other tests)."""
    from conftest import CofferProcess, free_port

    port = free_port()
    s = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}"], port,
                      tmp_path).start()
    try:
        s.request("PUT", "sys/policies/acl/sealer", json={"policy": POLICIES["sealer"]})
        token = s.request("POST", "auth/token/create", json={"policies": ["sealer"]}).json()["auth"]["client_token"]
        assert s.request("PUT", "sys/seal", token=token).status_code == 204
        assert s.request("GET", "sys/seal-status").json()["sealed"] is True
    finally:
        s.stop()
