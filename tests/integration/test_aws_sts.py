"""STS credentials (issue 12): assumed_role, federation_token and session_token against moto's STS with
IAM authentication enforced, the root user holding only the permissions each case needs.

moto checks an AssumeRole against the caller's exact ARN in the role's trust policy, and the assumed-role
credentials it answers work for exactly what the role's policies allow. The keys GetFederationToken and
GetSessionToken answer are not accepted by moto for authentication, so those are checked by the calls the
fault proxy saw and by the shape of coffer's answer.
"""

from __future__ import annotations

import json
import uuid

import hvac
import pytest
import test_aws_walkthrough as walkthrough
from botocore.exceptions import ClientError

from aws_support import LIST_USERS, STS_ROOT_POLICY, error_code

aws = walkthrough.aws
NO_RETRY = walkthrough.NO_RETRY
def unique(prefix: str = "r") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def errors_of(r) -> str:
    return "; ".join(r.json().get("errors", []))


@pytest.fixture
def sts(aws, moto, fault_proxy):
    """aws/ with a root user allowed the STS calls, reaching moto through the fault proxy (no SDK retries)."""
    user = unique("sts-root-")
    key = moto.make_user(user, STS_ROOT_POLICY)
    aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint,
        "max_retries": 0}).raise_for_status()
    aws.sts_root = key
    aws.sts_root_arn = moto.admin_iam().get_user(UserName=user)["User"]["Arn"]
    return aws


def write_role(server, name: str, **fields):
    return server.request("POST", f"aws/roles/{name}", token=server.root_token, json=fields)


# --------------------------------------------------------------------------- assumed_role


def test_assumed_role_with_hvac_on_both_paths(sts, moto, fault_proxy):
    arn = moto.make_role(sts.sts_root_arn)
    client = sts.hvac
    client.secrets.aws.create_or_update_role("app", "assumed_role", role_arns=[arn], mount_point="aws")
    role = client.secrets.aws.read_role("app", mount_point="aws")["data"]
    assert role["credential_type"] == "assumed_role" and role["role_arns"] == [arn]
    for endpoint in ("sts", "creds"):
        got = client.secrets.aws.generate_credentials("app", endpoint=endpoint, mount_point="aws")
        data = got["data"]
        assert data["session_token"] and data["security_token"] == data["session_token"]
        assert data["arn"].startswith(f"arn:aws:sts::123456789012:assumed-role/{arn.rsplit('/', 1)[1]}/")
        assert got["renewable"] is False and 3590 <= got["lease_duration"] <= 3600 and data["ttl"] == \
            got["lease_duration"]
        # moto knows the credentials: the assumed-role ARN, and exactly the role's permissions.
        assert moto.caller_arn(data["access_key"], data["secret_key"], data["session_token"]) == data["arn"]
        iam = moto.iam(data["access_key"], data["secret_key"], data["session_token"], config=NO_RETRY)
        iam.list_users()
        with pytest.raises(ClientError) as refused:
            iam.list_groups()
        assert error_code(refused.value) == "AccessDenied"
    asked = fault_proxy.requests_for("AssumeRole")
    assert [a["RoleArn"] for a in asked] == [arn, arn] and all(a["DurationSeconds"] == "3600" for a in asked)
    assert all(a["RoleSessionName"].startswith("vault-") for a in asked)


def test_assumed_role_with_mfa_sends_the_serial_and_code(sts, moto, fault_proxy):
    arn = moto.make_role(sts.sts_root_arn)
    serial = "arn:aws:iam::123456789012:mfa/sts-root"
    assert write_role(sts, "mfa-role", credential_type="assumed_role", role_arns=[arn],
                      mfa_serial_number=serial).status_code == 204
    fault_proxy.clear()
    r = sts.request("GET", "aws/creds/mfa-role", token=sts.root_token)
    assert r.status_code == 400 and "needs mfa_code" in errors_of(r)
    assert fault_proxy.requests_for("AssumeRole") == []
    r = sts.request("GET", "aws/creds/mfa-role", token=sts.root_token, params={"mfa_code": "654321"})
    assert r.status_code == 200, r.text
    asked = fault_proxy.requests_for("AssumeRole")[-1]
    assert asked["RoleArn"] == arn and asked["SerialNumber"] == serial and asked["TokenCode"] == "654321"


def test_max_live_credentials_counts_sts_credentials_until_they_expire(sts, moto, fault_proxy):
    """AWS cannot take STS credentials back, so a revoked lease still counts against the role's quota."""
    arn = moto.make_role(sts.sts_root_arn)
    assert write_role(sts, "capped", credential_type="assumed_role", role_arns=[arn],
                      max_live_credentials=2).status_code == 204
    first = sts.request("GET", "aws/creds/capped", token=sts.root_token)
    assert first.status_code == 200, first.text
    assert sts.request("GET", "aws/sts/capped", token=sts.root_token).status_code == 200
    fault_proxy.clear()
    refused = sts.request("GET", "aws/creds/capped", token=sts.root_token)
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert 'role "capped" already has 2 live credentials' in errors_of(refused)
    assert fault_proxy.requests_for("AssumeRole") == []  # refused before any AWS call
    sts.request("PUT", "sys/leases/revoke", token=sts.root_token,
                json={"lease_id": first.json()["lease_id"]}).raise_for_status()
    assert sts.request("GET", "aws/creds/capped", token=sts.root_token).status_code == 429


def test_assumed_role_session_name_external_id_tags_and_role_arn_choice(sts, moto, fault_proxy):
    first = moto.make_role(sts.sts_root_arn, external_id="ext-1234")
    second = moto.make_role(sts.sts_root_arn, external_id="ext-1234")
    r = write_role(sts, "two", credential_type="assumed_role", role_arns=[first, second], external_id="ext-1234",
                   session_tags=["team=payments"], policy_document=json.dumps(LIST_USERS))
    assert r.status_code == 204, r.text
    r = sts.request("POST", "aws/sts/two", token=sts.root_token, json={})
    assert r.status_code == 400 and "give role_arn, one of" in errors_of(r)
    r = sts.request("POST", "aws/sts/two", token=sts.root_token, json={"role_arn": "arn:aws:iam::123456789012:role/x"})
    assert r.status_code == 400 and "is not one of the role_arns" in errors_of(r)
    r = sts.request("GET", "aws/creds/two", token=sts.root_token,
                    params={"role_arn": second, "role_session_name": "deploy-42", "ttl": "20m"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["arn"].endswith("/deploy-42") and 1190 <= r.json()["lease_duration"] <= 1200
    asked = fault_proxy.requests_for("AssumeRole")[-1]
    assert asked["ExternalId"] == "ext-1234" and asked["Tags.member.1.Key"] == "team"
    assert json.loads(asked["Policy"]) == LIST_USERS and asked["DurationSeconds"] == "1200"
    r = sts.request("GET", "aws/creds/two", token=sts.root_token, params={"role_arn": second,
                                                                         "role_session_name": "x" * 65})
    assert r.status_code == 400 and "role_session_name" in errors_of(r)


def test_trust_policy_refusal_is_a_400_with_aws_reason(sts, moto):
    other = moto.make_user(unique("other-"), None)
    arn = moto.make_role(moto.admin_iam().get_user(UserName=moto.user_of(other.access_key_id))["User"]["Arn"])
    assert write_role(sts, "untrusted", credential_type="assumed_role", role_arns=[arn]).status_code == 204
    r = sts.request("GET", "aws/creds/untrusted", token=sts.root_token)
    assert r.status_code == 400, r.text
    assert "Error calling sts:AssumeRole" in errors_of(r) and "not authorized to perform: sts:AssumeRole" in \
        errors_of(r)


def test_ttl_clamps_are_named_in_warnings(sts, moto):
    arn = moto.make_role(sts.sts_root_arn, max_session=3600)
    write_role(sts, "capped", credential_type="assumed_role", role_arns=[arn], max_sts_ttl="30m")
    r = sts.request("GET", "aws/creds/capped", token=sts.root_token, params={"ttl": "2h"})
    assert r.status_code == 200, r.text
    assert "clamped to 30m" in r.json()["warnings"][0] and "the role's max_sts_ttl" in r.json()["warnings"][0]
    assert 1790 <= r.json()["lease_duration"] <= 1800
    # The IAM role's MaxSessionDuration (read with iam:GetRole).
    write_role(sts, "long", credential_type="assumed_role", role_arns=[arn])
    r = sts.request("GET", "aws/creds/long", token=sts.root_token, params={"ttl": "3h"})
    assert r.status_code == 200, r.text
    assert "the IAM role's MaxSessionDuration" in r.json()["warnings"][0]
    assert 3590 <= r.json()["lease_duration"] <= 3600
    # AWS's minimum.
    r = sts.request("GET", "aws/creds/long", token=sts.root_token, params={"ttl": "5m"})
    assert r.status_code == 400 and "at least 15m" in errors_of(r)


def test_temporary_root_credentials_chain_for_one_hour_and_cannot_federate(sts, moto, fault_proxy):
    # coffer acts through role_arn: its own credentials are then a role session.
    engine_role = moto.make_role(sts.sts_root_arn, policy=STS_ROOT_POLICY)
    target = moto.make_role("*")  # moto matches a principal exactly, or "*"
    sts.request("POST", "aws/config/root", token=sts.root_token, json={
        "access_key": sts.sts_root.access_key_id, "secret_key": sts.sts_root.secret_access_key,
        "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint, "role_arn": engine_role,
        "max_retries": 0}).raise_for_status()
    assert write_role(sts, "chained", credential_type="assumed_role", role_arns=[target]).status_code == 204
    r = sts.request("GET", "aws/creds/chained", token=sts.root_token, params={"ttl": "4h"})
    assert r.status_code == 200, r.text
    assert "role chaining" in r.json()["warnings"][0] and 3590 <= r.json()["lease_duration"] <= 3600
    # First coffer's own session (role_arn), then the role's, made with it.
    assert [a["RoleArn"] for a in fault_proxy.requests_for("AssumeRole")] == [engine_role, target]
    for kind, action in (("federation_token", "GetFederationToken"), ("session_token", "GetSessionToken")):
        fields = {"policy_document": json.dumps(LIST_USERS)} if kind == "federation_token" else {}
        assert write_role(sts, kind, credential_type=kind, **fields).status_code == 204
        before = len(fault_proxy.requests_for(action))
        r = sts.request("GET", f"aws/creds/{kind}", token=sts.root_token)
        assert r.status_code == 400, r.text
        assert f"Cannot call {action} with session credentials" in errors_of(r) and "role_arn" in errors_of(r)
        assert len(fault_proxy.requests_for(action)) == before  # refused before asking AWS


# --------------------------------------------------------------------------- federation_token, session_token


def test_federation_token_with_hvac_and_group_policies(sts, moto, fault_proxy):
    admin = moto.admin_iam()
    group = unique("readers-")
    admin.create_group(GroupName=group)
    admin.put_group_policy(GroupName=group, PolicyName="g", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}))
    client = sts.hvac
    client.secrets.aws.create_or_update_role("fed", "federation_token", policy_document=LIST_USERS,
                                             default_sts_ttl="2h", mount_point="aws")
    r = write_role(sts, "fed", iam_groups=[group])  # an update changes only what it names
    assert r.status_code == 204, r.text
    got = client.secrets.aws.generate_credentials("fed", endpoint="sts", mount_point="aws")
    data = got["data"]
    assert set(data) == {"access_key", "secret_key", "session_token", "security_token", "ttl", "expiration"}
    assert data["session_token"] == data["security_token"] and got["renewable"] is False
    assert 7190 <= got["lease_duration"] <= 7200
    asked = fault_proxy.requests_for("GetFederationToken")[-1]
    assert asked["DurationSeconds"] == "7200" and asked["Name"].startswith("vault-") and len(asked["Name"]) <= 32
    actions = [s["Action"] for s in json.loads(asked["Policy"])["Statement"]]
    assert actions == ["iam:ListUsers", "iam:GetUser"]  # the role's policy, with its group's merged in
    assert fault_proxy.count("GetGroupPolicy", 200) == 1


def test_session_token_through_the_http_api_with_mfa(sts, fault_proxy):
    assert write_role(sts, "sess", credential_type="session_token", default_sts_ttl="1h").status_code == 204
    r = sts.request("GET", "aws/creds/sess", token=sts.root_token, params={"ttl": "90m"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["session_token"] == data["security_token"] and "arn" not in data
    assert fault_proxy.requests_for("GetSessionToken")[-1]["DurationSeconds"] == "5400"
    serial = "arn:aws:iam::123456789012:mfa/sts-root"
    assert write_role(sts, "mfa", credential_type="session_token", mfa_serial_number=serial).status_code == 204
    r = sts.request("POST", "aws/sts/mfa", token=sts.root_token, json={})
    assert r.status_code == 400 and "needs mfa_code" in errors_of(r)
    r = sts.request("POST", "aws/sts/mfa", token=sts.root_token, json={"mfa_code": "123456"})
    assert r.status_code == 200, r.text
    asked = fault_proxy.requests_for("GetSessionToken")[-1]
    assert asked["SerialNumber"] == serial and asked["TokenCode"] == "123456"
    r = sts.request("GET", "aws/creds/sess", token=sts.root_token, params={"mfa_code": "123456"})
    assert r.status_code == 400 and "no mfa_serial_number" in errors_of(r)
    # hvac refuses session_token itself (its check knows three types), hence the HTTP API above.
    with pytest.raises(hvac.exceptions.ParamValidationError):
        sts.hvac.secrets.aws.create_or_update_role("x", "session_token", mount_point="aws")


def test_sts_leases_are_not_renewable_and_revoking_only_forgets(sts, moto):
    arn = moto.make_role(sts.sts_root_arn)
    write_role(sts, "app", credential_type="assumed_role", role_arns=[arn])
    got = sts.request("GET", "aws/creds/app", token=sts.root_token).json()
    r = sts.request("PUT", "sys/leases/renew", token=sts.root_token, json={"lease_id": got["lease_id"]})
    assert r.status_code == 400 and "not renewable" in errors_of(r)
    r = sts.request("PUT", "sys/leases/revoke", token=sts.root_token, json={"lease_id": got["lease_id"]})
    assert r.status_code == 204, r.text
    data = got["data"]
    assert moto.caller_arn(data["access_key"], data["secret_key"], data["session_token"]) == data["arn"]


def test_legacy_policy_role_is_iam_user_on_creds_and_federation_token_on_sts(sts, moto, fault_proxy):
    key = moto.make_user(unique("both-"), {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:*", "sts:GetFederationToken"], "Resource": "*"}]})
    sts.request("POST", "aws/config/root", token=sts.root_token, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key,
        "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint}).raise_for_status()
    r = write_role(sts, "legacy", policy=json.dumps(LIST_USERS))
    assert r.status_code == 200 and r.json()["warnings"]
    creds = sts.request("GET", "aws/creds/legacy", token=sts.root_token).json()
    assert creds["data"]["session_token"] is None and creds["renewable"] is True
    fed = sts.request("POST", "aws/sts/legacy", token=sts.root_token, json={}).json()
    assert fed["data"]["session_token"] and fed["renewable"] is False
    assert sts.request("GET", "aws/roles/legacy", token=sts.root_token).json()["data"]["credential_type"] == \
        "iam_user,federation_token"
    sts.hvac.sys.revoke_lease(creds["lease_id"])


def test_sts_fallback_endpoint_answers_when_the_primary_does_not(sts, moto, fault_proxy):
    arn = moto.make_role(sts.sts_root_arn)
    sts.request("POST", "aws/config/root", token=sts.root_token, json={
        "access_key": sts.sts_root.access_key_id, "secret_key": sts.sts_root.secret_access_key,
        "iam_endpoint": moto.endpoint, "sts_endpoint": fault_proxy.endpoint, "max_retries": 0,
        "sts_fallback_endpoints": [moto.endpoint], "sts_fallback_regions": ["us-east-1"]}).raise_for_status()
    write_role(sts, "app", credential_type="assumed_role", role_arns=[arn])
    fault_proxy.fail("AssumeRole", "drop", times=None)
    r = sts.request("GET", "aws/creds/app", token=sts.root_token)
    assert r.status_code == 200, r.text
    assert fault_proxy.count("AssumeRole") == 1  # tried, no answer; the fallback answered
    r = sts.request("POST", "aws/config/root", token=sts.root_token, json={
        "sts_fallback_endpoints": [moto.endpoint], "sts_fallback_regions": []})
    assert r.status_code == 400 and "same number of entries" in errors_of(r)


# --------------------------------------------------------------------------- roles refused at write


@pytest.mark.parametrize(("fields", "expected"), [
    ({"credential_type": "session_token", "policy_document": json.dumps(LIST_USERS),
      "role_arns": ["arn:aws:iam::123456789012:role/a"]},
     ["role_arns is only valid for credential_type assumed_role, not session_token",
      "policy_document is only valid for credential_type iam_user or assumed_role or federation_token, not "
      "session_token"]),
    ({"credential_type": "assumed_role", "policy_document": '{"Version": "2012-10-17"}'},
     ["policy_document must be a JSON object with a Statement (an IAM policy document)",
      "an assumed_role role needs role_arns (the ARNs of the IAM roles it may assume)"]),
    ({"credential_type": "federation_token", "user_path": "/x/", "external_id": "abc"},
     ["user_path is only valid for credential_type iam_user, not federation_token",
      "external_id is only valid for credential_type assumed_role, not federation_token",
      "a federation_token role needs at least one of policy_document, policy_arns or iam_groups"]),
    ({"credential_type": "iam_user", "policy_document": "[1, 2]"},
     ["policy_document must be a JSON object with a Statement (an IAM policy document)"]),
    ({"credential_type": "assumed_role", "role_arns": ["arn:aws:iam::123456789012:policy/p"],
      "default_sts_ttl": "2h", "max_sts_ttl": "1h"},
     ["role_arns: 'arn:aws:iam::123456789012:policy/p' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
      "default_sts_ttl cannot be longer than max_sts_ttl"]),
    ({"credential_type": "nope"}, ["unrecognized credential_type: 'nope' (one of iam_user, assumed_role, "
                                   "federation_token, session_token)"]),
    ({"policy_document": json.dumps(LIST_USERS)},
     ["did not supply credential_type (one of iam_user, assumed_role, federation_token, session_token)"]),
])
def test_invalid_roles_are_refused_listing_every_problem(aws, fields, expected):
    r = write_role(aws, unique(), **fields)
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == expected
