"""The AWS walkthrough end to end: hvac against coffer, coffer against moto
(IAM authentication enforced), the root user holding the 2015 docs' minimal policy."""

from __future__ import annotations

import json
import time
import uuid

import hvac
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from aws_support import MINIMAL_ROOT_POLICY, error_code
from conftest import init_and_unseal

ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": "*"}]}
NO_RETRY = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def aws(sqlite_server, moto):
    """A coffer server with aws/ mounted and config/root pointing at moto as a minimal-policy user."""
    keys, root = init_and_unseal(sqlite_server)
    sqlite_server.root_token, sqlite_server.unseal_key = root, keys[0]
    client = sqlite_server.client(root)
    client.sys.enable_secrets_engine("aws", path="aws")
    root_user = f"hashicorp-{uuid.uuid4().hex[:8]}"
    key = moto.make_user(root_user, MINIMAL_ROOT_POLICY)
    client.write("aws/config/root", access_key=key.access_key_id, secret_key=key.secret_access_key,
                 region="us-east-1", iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    sqlite_server.hvac, sqlite_server.aws_root = client, key
    return sqlite_server


def test_walkthrough(aws, moto):
    client = aws.hvac
    written = client.write("aws/roles/deploy", policy=json.dumps(ROLE_POLICY))
    assert written["warnings"] == ["Detected use of legacy role or policy parameter. Please upgrade to use the "
                                   "new parameters."]
    first = client.read("aws/creds/deploy")
    second = client.secrets.aws.generate_credentials(name="deploy", mount_point="aws")
    for creds in (first, second):
        assert creds["lease_id"].startswith("aws/creds/deploy/")
        assert creds["lease_duration"] == 3600 and creds["renewable"] is True
        assert creds["data"]["access_key"].startswith("AKIA") and creds["data"]["secret_key"]
        assert creds["data"]["session_token"] is None
    assert first["data"]["access_key"] != second["data"]["access_key"]
    user = moto.user_of(first["data"]["access_key"])
    assert user and user.startswith("vault-root-deploy-") and len(user) <= 64

    # The key can do what the role allows, and nothing else.
    iam = moto.iam(first["data"]["access_key"], first["data"]["secret_key"], config=NO_RETRY)
    assert user in [u["UserName"] for u in iam.list_users()["Users"]]
    with pytest.raises(ClientError) as refused:
        iam.list_groups()
    assert error_code(refused.value) == "AccessDenied"

    client.sys.revoke_lease(first["lease_id"])
    assert not moto.user_exists(user)
    with pytest.raises(ClientError) as gone:
        iam.list_users()
    assert error_code(gone.value) == "InvalidClientTokenId"
    # The other key is untouched.
    assert moto.iam(second["data"]["access_key"], second["data"]["secret_key"]).list_users()


def test_expiry_deletes_the_user(aws, moto):
    client = aws.hvac
    client.write("aws/config/lease", lease="2s", lease_max="10s")
    assert client.read("aws/config/lease")["data"] == {"lease": "2s", "lease_max": "10s"}
    role = f"short{uuid.uuid4().hex[:6]}"  # moto is shared: other tests leave users of their own "short" roles
    client.write(f"aws/roles/{role}", credential_type="iam_user", policy_document=json.dumps(ROLE_POLICY))
    creds = client.read(f"aws/creds/{role}")
    assert creds["lease_duration"] == 2
    deadline = time.monotonic() + 30
    # (On a busy machine the 2 s lease may already be gone by the time its user is looked up.)
    while any(f"-{role}-" in name for name in moto.user_names()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name in moto.user_names() if f"-{role}-" in name]
    with pytest.raises(ClientError) as gone:
        moto.iam(creds["data"]["access_key"], creds["data"]["secret_key"], config=NO_RETRY).list_users()
    assert error_code(gone.value) == "InvalidClientTokenId"


def test_root_without_create_user_sees_aws_reason(aws, moto):
    policy = json.loads(json.dumps(MINIMAL_ROOT_POLICY))
    policy["Statement"][0]["Action"].remove("iam:CreateUser")
    weak = moto.make_user(f"weak-{uuid.uuid4().hex[:8]}", policy)
    client = aws.hvac
    client.write("aws/config/root", access_key=weak.access_key_id, secret_key=weak.secret_access_key,
                 iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    client.write("aws/roles/deploy", credential_type="iam_user", policy_document=json.dumps(ROLE_POLICY))
    before = set(moto.user_names())
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        client.read("aws/creds/deploy")
    message = str(err.value)
    assert "Error creating IAM user" in message and "not authorized to perform: iam:CreateUser" in message
    assert set(moto.user_names()) == before


def test_config_root_never_returns_or_stores_the_secret_key(aws, moto, tmp_path):
    data = aws.hvac.read("aws/config/root")["data"]
    assert "secret_key" not in data and data["access_key"] == aws.aws_root.access_key_id
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("coffer.db*"))
    assert aws.aws_root.secret_access_key.encode() not in raw


def test_teardown_removes_everything_a_holder_added(aws, moto):
    # Root credentials allowed to undo everything (the minimal policy cannot, see below).
    admin_like = moto.make_user(f"root-{uuid.uuid4().hex[:8]}", {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]})
    client = aws.hvac
    client.write("aws/config/root", access_key=admin_like.access_key_id, secret_key=admin_like.secret_access_key,
                 iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    client.write("aws/roles/deploy", credential_type="iam_user", policy_document=json.dumps(ROLE_POLICY))
    creds = client.read("aws/creds/deploy")
    user = moto.user_of(creds["data"]["access_key"])
    extras = moto.add_user_extras(user)
    moto.admin_iam().create_access_key(UserName=user)
    client.sys.revoke_lease(creds["lease_id"])
    assert not moto.user_exists(user)
    iam = moto.admin_iam()
    assert user not in [u["UserName"] for u in iam.get_group(GroupName=extras["group"])["Users"]]
    devices = iam.list_virtual_mfa_devices()["VirtualMFADevices"]
    assert all(d.get("User", {}).get("UserName") != user for d in devices if d["SerialNumber"] == extras["mfa_serial"])


def test_unknown_role_and_invalid_roles(aws):
    client = aws.hvac
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        client.read("aws/creds/nope")
    assert 'Role "nope" not found' in str(err.value)
    r = aws.request("POST", "aws/roles/bad", token=aws.root_token, json={
        "credential_type": "iam_user", "policy_document": "{not json", "user_path": "no-slashes",
        "policy_arns": ["arn:aws:s3:::bucket"]})
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert len(errors) == 3 and any("policy_document" in e for e in errors)
    # STS types are supported now (issue 12): an assumed_role role with its role_arns is accepted.
    r = aws.request("POST", "aws/roles/sts", token=aws.root_token,
                    json={"credential_type": "assumed_role", "role_arns": ["arn:aws:iam::123456789012:role/x"]})
    assert r.status_code == 204, r.text
    client.write("aws/roles/ok", credential_type="iam_user", policy_document=ROLE_POLICY, iam_tags=["team=a"])
    role = client.read("aws/roles/ok")["data"]
    assert role["credential_type"] == "iam_user" and json.loads(role["policy_document"]) == ROLE_POLICY
    assert role["iam_tags"] == {"team": "a"}
    assert client.list("aws/roles")["data"]["keys"] == ["ok", "sts"]
