"""The AWS engine when things go wrong: crashes mid-issue, AWS throttling and
failing, revocations that must be retried, and the features that shape the IAM
users (tags, username templates, managed policies, groups, lease renewal).

coffer talks to moto (IAM authentication enforced) either directly or through
the fault proxy of tests/aws_support.py; nothing patches boto3 or coffer.
The invariant checked after every failure: moto holds no IAM user made by
coffer that coffer does not hold a live lease for.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable

import pytest
import requests
import test_aws_walkthrough as walkthrough
from botocore.exceptions import ClientError

from aws_support import MINIMAL_ROOT_POLICY, error_code

#: The walkthrough's fixture (aws/ mounted on a fresh SQLite server, config/root = moto as a minimal-policy user).
aws = walkthrough.aws
ROLE_POLICY = walkthrough.ROLE_POLICY
NO_RETRY = walkthrough.NO_RETRY
#: Root credentials allowed to do (and undo) everything in IAM.
IAM_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}


# --------------------------------------------------------------------------- helpers


def unique(prefix: str = "r") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def configure_root(server, key, endpoint: str, **extra) -> None:
    r = server.request("POST", "aws/config/root", token=server.root_token, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": endpoint, "sts_endpoint": endpoint, **extra})
    assert r.status_code == 204, r.text


def put_role(server, name: str, mount: str = "aws", **fields) -> None:
    fields.setdefault("credential_type", "iam_user")
    r = server.request("POST", f"{mount}/roles/{name}", token=server.root_token, json=fields)
    assert r.status_code == 204, r.text


def issue(server, role: str, mount: str = "aws") -> requests.Response:
    return server.request("GET", f"{mount}/creds/{role}", token=server.root_token)


def issue_ok(server, role: str, mount: str = "aws") -> dict:
    r = issue(server, role, mount)
    assert r.status_code == 200, r.text
    return r.json()


def errors_of(r: requests.Response) -> str:
    return "; ".join(r.json().get("errors", []))


def lookup(server, lease_id: str) -> requests.Response:
    return server.request("PUT", "sys/leases/lookup", token=server.root_token, json={"lease_id": lease_id})


def live_leases(server, role: str, mount: str = "aws") -> set[str]:
    prefix = f"{mount}/creds/{role}/"
    r = server.request("LIST", f"sys/leases/lookup/{prefix}", token=server.root_token)
    if r.status_code == 404:
        return set()
    assert r.status_code == 200, r.text
    return {prefix + key for key in r.json()["data"]["keys"]}


def coffer_users(moto, role: str) -> set[str]:
    """IAM users coffer made for ``role`` with the default template (vault-root-<role>-...)."""
    return {u for u in moto.user_names() if u.startswith(f"vault-root-{role}-")}


def owner(moto, access_key: str, candidates: set[str]) -> str | None:
    for name in candidates:
        with contextlib.suppress(ClientError):
            keys = moto.admin_iam().list_access_keys(UserName=name)["AccessKeyMetadata"]
            if any(k["AccessKeyId"] == access_key for k in keys):
                return name
    return None


def assert_only_leased_users(server, moto, role: str, issued: list[dict], mount: str = "aws") -> None:
    """moto's users for ``role`` are exactly the owners of keys whose lease coffer still holds."""
    users = coffer_users(moto, role)
    live = live_leases(server, role, mount)
    assert live <= {c["lease_id"] for c in issued}, "coffer holds a lease this test never saw issued"
    expected = {owner(moto, c["data"]["access_key"], users) for c in issued if c["lease_id"] in live}
    assert None not in expected, "a live lease's IAM user is missing"
    assert users == expected


def wal_entries(server) -> list[str]:
    """The write-ahead entries in the server's storage (keys are stored in clear; values are not)."""
    db = sqlite3.connect(f"file:{server.home / 'coffer.db'}?mode=ro", uri=True)
    with contextlib.closing(db):
        return [k for (k,) in db.execute("SELECT key FROM kv WHERE key LIKE 'logical/%/wal/%'")]


def wait_until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def restart(server) -> None:
    """Stop (or reap a killed) server, start it again on the same storage and unseal it."""
    server.stop()
    server.start()
    r = server.request("PUT", "sys/unseal", token=None, json={"key": server.unseal_key})
    assert r.status_code == 200 and r.json()["sealed"] is False, r.text


@pytest.fixture
def coffer(aws, moto, fault_proxy):
    """aws/ as an iam:* root that reaches moto through the fault proxy, no SDK retries."""
    key = moto.make_user(unique("root-"), IAM_ALL)
    configure_root(aws, key, fault_proxy.endpoint, max_retries=0)
    aws.full_root = key
    return aws


# --------------------------------------------------------------------------- 1. crash safety


@pytest.mark.parametrize("crash_after", ["CreateUser", "CreateAccessKey"])
def test_crash_mid_issue_is_rolled_back_at_unseal(coffer, moto, fault_proxy, crash_after):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    kept = issue_ok(coffer, role)  # a live lease: its user must survive everything below
    fault_proxy.after(crash_after, lambda: coffer.proc.kill())  # SIGKILL once moto has done it
    with pytest.raises(requests.ConnectionError):
        issue(coffer, role)
    assert not fault_proxy.errors
    kept_user = owner(moto, kept["data"]["access_key"], coffer_users(moto, role))
    orphans = coffer_users(moto, role) - {kept_user}
    assert len(orphans) == 1  # moto made it, coffer died before recording a lease
    orphan = orphans.pop()
    if crash_after == "CreateAccessKey":
        assert len(moto.admin_iam().list_access_keys(UserName=orphan)["AccessKeyMetadata"]) == 1
    assert len(wal_entries(coffer)) == 1  # ... but its write-ahead entry survived the crash

    restart(coffer)
    wait_until(lambda: not moto.user_exists(orphan), "the WAL rollback at unseal deleted the orphan")
    wait_until(lambda: not wal_entries(coffer), "the WAL entry is removed")
    assert moto.user_exists(kept_user)
    assert live_leases(coffer, role) == {kept["lease_id"]}
    assert_only_leased_users(coffer, moto, role, [kept])


# --------------------------------------------------------------------------- 2. AWS errors during issue


def test_throttled_create_user_is_a_429_with_retry_after_naming_the_action(coffer, moto, fault_proxy):
    """Issue 12 changed this on purpose: AWS throttling beyond the retries was a 502, it is a 429 now."""
    key = coffer.full_root
    configure_root(coffer, key, fault_proxy.endpoint, max_retries=1)
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("CreateUser", "throttle", times=2)
    r = issue(coffer, role)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "Error creating IAM user" in errors_of(r) and "AWS throttled iam:CreateUser" in errors_of(r)
    assert fault_proxy.count("CreateUser") == 2  # max_retries=1: one retry, then the answer
    assert not coffer_users(moto, role) and not wal_entries(coffer)
    # Once AWS calms down it works.
    creds = issue_ok(coffer, role)
    assert_only_leased_users(coffer, moto, role, [creds])


def test_500_on_put_user_policy_tears_the_new_user_down(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("PutUserPolicy", "error500", times=1)
    r = issue(coffer, role)
    assert r.status_code == 502, r.text
    assert "Error putting user policy" in errors_of(r)
    assert fault_proxy.count("CreateUser", 200) == 1 and fault_proxy.count("DeleteUser", 200) == 1
    assert not coffer_users(moto, role) and not wal_entries(coffer)
    assert live_leases(coffer, role) == set()


def test_access_key_made_but_answer_lost_leaks_nothing(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    kept = issue_ok(coffer, role)
    fault_proxy.fail("CreateAccessKey", "drop_after", times=1)  # moto makes the key; coffer never hears
    r = issue(coffer, role)
    assert r.status_code == 502, r.text
    assert "Error creating access keys" in errors_of(r)
    assert fault_proxy.count("CreateAccessKey") == 2 and fault_proxy.count("DeleteAccessKey", 200) == 1
    assert not wal_entries(coffer)
    assert_only_leased_users(coffer, moto, role, [kept])


def test_failed_undo_keeps_the_wal_entry_and_a_restart_rolls_it_back(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("PutUserPolicy", "error500", times=1)
    fault_proxy.fail("DeleteUser", "error500", times=1)  # ... and the undo fails too
    r = issue(coffer, role)
    assert r.status_code == 502, r.text
    assert "Error putting user policy" in errors_of(r)
    orphans = coffer_users(moto, role)
    assert len(orphans) == 1 and len(wal_entries(coffer)) == 1  # coffer still knows about the user
    assert live_leases(coffer, role) == set()

    restart(coffer)
    wait_until(lambda: not coffer_users(moto, role), "the rollback at unseal deleted the user")
    wait_until(lambda: not wal_entries(coffer), "the WAL entry is removed")
    assert fault_proxy.count("DeleteUser", 200) == 1


# --------------------------------------------------------------------------- 3. AWS errors during revoke


def test_throttled_revoke_answers_502_and_retries_in_the_background(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    creds = issue_ok(coffer, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    fault_proxy.fail("DeleteUser", "throttle", times=2)
    r = coffer.request("PUT", "sys/leases/revoke", token=coffer.root_token, json={"lease_id": creds["lease_id"]})
    assert r.status_code == 502, r.text  # AWS's trouble, not a bad request (issue 11)
    assert "retries in the background" in errors_of(r) and "Rate exceeded" in errors_of(r)
    assert lookup(coffer, creds["lease_id"]).status_code == 200
    assert moto.user_exists(user)

    wait_until(lambda: lookup(coffer, creds["lease_id"]).status_code != 200, "the retries revoked the lease")
    assert not moto.user_exists(user)
    assert [s for a, s in fault_proxy.calls if a == "DeleteUser"] == [400, 400, 200]
    assert_only_leased_users(coffer, moto, role, [creds])


def test_lease_expiring_while_aws_fails_is_retried_until_revoked(coffer, moto, fault_proxy):
    role = unique()
    coffer.request("POST", "aws/config/lease", token=coffer.root_token,
                   json={"lease": "2s", "lease_max": "1m"}).raise_for_status()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("DeleteUser", "error500", times=None)  # AWS keeps failing until clear()
    creds = issue_ok(coffer, role)
    assert creds["lease_duration"] == 2
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    wait_until(lambda: fault_proxy.count("DeleteUser") >= 2, "expiry and a retry were attempted")
    assert lookup(coffer, creds["lease_id"]).status_code == 200  # kept, not forgotten
    assert moto.user_exists(user)

    fault_proxy.clear()  # AWS recovers
    wait_until(lambda: lookup(coffer, creds["lease_id"]).status_code != 200, "a retry revoked the lease")
    assert not moto.user_exists(user)
    assert fault_proxy.count("DeleteUser", 200) == 1
    assert_only_leased_users(coffer, moto, role, [creds])


# --------------------------------------------------------------------------- 4. tags


def test_tag_users_sets_coffer_tags_in_create_user(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY), iam_tags=["team=payments", "env=test"])
    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=0, tag_users=True)
    creds = issue_ok(coffer, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    tags = {t["Key"]: t["Value"] for t in moto.admin_iam().list_user_tags(UserName=user)["Tags"]}
    assert tags == {"team": "payments", "env": "test", "coffer-mount": "aws/", "coffer-role": role,
                    "coffer-lease-id": creds["lease_id"]}
    assert "TagUser" not in fault_proxy.actions()

    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=0)
    plain = issue_ok(coffer, role)
    user = owner(moto, plain["data"]["access_key"], coffer_users(moto, role))
    tags = {t["Key"]: t["Value"] for t in moto.admin_iam().list_user_tags(UserName=user)["Tags"]}
    assert tags == {"team": "payments", "env": "test"}
    assert "TagUser" not in fault_proxy.actions()


# --------------------------------------------------------------------------- 5. username_template


def test_username_template(aws, moto):
    role = unique()
    put_role(aws, role, policy_document=json.dumps(ROLE_POLICY))
    template = '{{ printf "app-%s-%s" (.RoleName) (random 8) | truncate 64 }}'
    configure_root(aws, aws.aws_root, moto.endpoint, username_template=template)
    assert aws.hvac.read("aws/config/root")["data"]["username_template"] == template
    creds = [issue_ok(aws, role) for _ in range(2)]
    pattern = re.compile(rf"^app-{role}-[A-Za-z0-9]{{8}}$")
    users = {u for u in moto.user_names() if pattern.match(u)}
    assert len(users) == 2
    assert {owner(moto, c["data"]["access_key"], users) for c in creds} == users
    for c in creds:
        aws.hvac.sys.revoke_lease(c["lease_id"])
    assert not any(moto.user_exists(u) for u in users)

    # config/root never refuses what Vault accepts (issue 12 changed this on purpose: both were 400 before).
    # A template that can make names over 64 characters is kept, with a warning that names are cut to 64.
    configure_root(aws, aws.aws_root, moto.endpoint)
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": aws.aws_root.access_key_id, "secret_key": aws.aws_root.secret_access_key,
        "iam_endpoint": moto.endpoint, "username_template": '{{ printf "app-%s-%s" (.RoleName) (random 8) }}'})
    assert r.status_code == 200, r.text
    assert "longer than IAM's limit of 64" in r.json()["warnings"][0]
    # One that does not parse is kept too, with a warning; then every read says what to fix.
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": aws.aws_root.access_key_id, "secret_key": aws.aws_root.secret_access_key,
        "iam_endpoint": moto.endpoint, "username_template": '{{ printf "app-%s" (.RoleName | truncate 64 }}'})
    assert r.status_code == 200, r.text
    assert "does not parse" in r.json()["warnings"][0] and "unclosed '('" in r.json()["warnings"][0]
    r = issue(aws, role)
    assert r.status_code == 400 and "username_template does not parse" in errors_of(r), r.text
    configure_root(aws, aws.aws_root, moto.endpoint, username_template=template)
    assert issue(aws, role).status_code == 200


# --------------------------------------------------------------------------- 6. renewal


def renew(server, lease_id: str, increment: str | None = None) -> requests.Response:
    body = {"lease_id": lease_id} if increment is None else {"lease_id": lease_id, "increment": increment}
    return server.request("PUT", "sys/leases/renew", token=server.root_token, json=body)


def test_renew_extends_up_to_lease_max(aws, moto):
    role = unique()
    put_role(aws, role, policy_document=json.dumps(ROLE_POLICY))
    aws.request("POST", "aws/config/lease", token=aws.root_token,
                json={"lease": "30s", "lease_max": "60s"}).raise_for_status()
    creds = issue_ok(aws, role)
    assert creds["lease_duration"] == 30 and creds["renewable"] is True
    r = renew(aws, creds["lease_id"])
    assert r.status_code == 200, r.text
    assert r.json()["lease_duration"] == 30 and r.json()["lease_id"] == creds["lease_id"]
    r = renew(aws, creds["lease_id"], "1h")
    assert r.status_code == 200, r.text
    assert 55 <= r.json()["lease_duration"] <= 60
    assert any("max TTL" in w for w in r.json()["warnings"])
    assert lookup(aws, creds["lease_id"]).json()["data"]["ttl"] <= 60

    # A lease whose lease_max has (all but) passed cannot be renewed.
    aws.request("POST", "aws/config/lease", token=aws.root_token,
                json={"lease": "3s", "lease_max": "3s"}).raise_for_status()
    short = issue_ok(aws, role)
    assert short["lease_duration"] == 3
    time.sleep(2.1)
    r = renew(aws, short["lease_id"], "1m")
    assert r.status_code == 400, r.text
    assert "max TTL" in errors_of(r)
    wait_until(lambda: lookup(aws, short["lease_id"]).status_code != 200, "the short lease expired")
    assert_only_leased_users(aws, moto, role, [creds, short])


def test_tuned_mount_default_lease_ttl_without_config_lease(aws, moto):
    client = aws.hvac
    mount = unique("aws")
    client.sys.enable_secrets_engine("aws", path=mount)
    r = aws.request("POST", f"sys/mounts/{mount}/tune", token=aws.root_token, json={"default_lease_ttl": "5m"})
    assert r.status_code in (200, 204), r.text
    client.write(f"{mount}/config/root", access_key=aws.aws_root.access_key_id,
                 secret_key=aws.aws_root.secret_access_key, iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    role = unique()
    put_role(aws, role, mount=mount, policy_document=json.dumps(ROLE_POLICY))
    creds = issue_ok(aws, role, mount)
    assert creds["lease_duration"] == 300
    r = renew(aws, creds["lease_id"])
    assert r.status_code == 200 and r.json()["lease_duration"] == 300, r.text
    client.sys.revoke_lease(creds["lease_id"])
    assert_only_leased_users(aws, moto, role, [creds], mount)


# --------------------------------------------------------------------------- 7. managed policies and groups


def test_managed_policies_and_groups(coffer, moto):
    admin = moto.admin_iam()
    suffix = uuid.uuid4().hex[:8]
    policy_arn = admin.create_policy(PolicyName=f"list-groups-{suffix}", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:ListGroups", "Resource": "*"}]}))["Policy"]["Arn"]
    group = f"readers-{suffix}"
    admin.create_group(GroupName=group)
    admin.put_group_policy(GroupName=group, PolicyName="list-users", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}))
    role = unique()
    put_role(coffer, role, policy_arns=[policy_arn], iam_groups=[group])
    creds = issue_ok(coffer, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    assert [p["PolicyArn"] for p in admin.list_attached_user_policies(UserName=user)["AttachedPolicies"]] == [
        policy_arn]
    assert [g["GroupName"] for g in admin.list_groups_for_user(UserName=user)["Groups"]] == [group]
    assert admin.list_user_policies(UserName=user)["PolicyNames"] == []

    iam = moto.iam(creds["data"]["access_key"], creds["data"]["secret_key"], config=NO_RETRY)
    assert user in [u["UserName"] for u in iam.list_users()["Users"]]  # through the group
    assert group in [g["GroupName"] for g in iam.list_groups()["Groups"]]  # through the managed policy
    with pytest.raises(ClientError) as refused:
        iam.list_roles()
    assert error_code(refused.value) == "AccessDenied"

    coffer.hvac.sys.revoke_lease(creds["lease_id"])
    assert not moto.user_exists(user)
    assert user not in [u["UserName"] for u in admin.get_group(GroupName=group)["Users"]]
    assert admin.list_entities_for_policy(PolicyArn=policy_arn)["PolicyUsers"] == []
    assert_only_leased_users(coffer, moto, role, [creds])


# --------------------------------------------------------------------------- 8. the minimal root policy


def test_minimal_root_policy_cannot_attach_managed_policies(aws, moto):
    policy_arn = moto.admin_iam().create_policy(PolicyName=unique("managed-"), PolicyDocument=json.dumps(
        ROLE_POLICY))["Policy"]["Arn"]
    role = unique()
    put_role(aws, role, policy_arns=[policy_arn])
    r = issue(aws, role)
    assert r.status_code == 400, r.text
    assert "Error attaching user policy" in errors_of(r)
    assert "not authorized to perform: iam:AttachUserPolicy" in errors_of(r)
    assert not coffer_users(moto, role) and not wal_entries(aws)
    assert live_leases(aws, role) == set()


def test_root_that_can_attach_but_not_list_attached_policies_cannot_revoke(aws, moto):
    """With iam:AttachUserPolicy but not iam:ListAttachedUserPolicies, coffer cannot find the policy to
    detach: IAM refuses DeleteUser, the error says which permission is missing, and the lease is kept
    until root credentials that can do it are configured (then a background retry finishes the job)."""
    policy = json.loads(json.dumps(MINIMAL_ROOT_POLICY))
    policy["Statement"][0]["Action"].append("iam:AttachUserPolicy")
    attacher = moto.make_user(unique("attacher-"), policy)
    configure_root(aws, attacher, moto.endpoint)
    policy_arn = moto.admin_iam().create_policy(PolicyName=unique("managed-"), PolicyDocument=json.dumps(
        ROLE_POLICY))["Policy"]["Arn"]
    role = unique()
    put_role(aws, role, policy_arns=[policy_arn])
    creds = issue_ok(aws, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    r = aws.request("PUT", "sys/leases/revoke", token=aws.root_token, json={"lease_id": creds["lease_id"]})
    assert r.status_code == 400, r.text
    assert "iam:ListAttachedUserPolicies" in errors_of(r) and "retries in the background" in errors_of(r)
    assert lookup(aws, creds["lease_id"]).status_code == 200 and moto.user_exists(user)

    configure_root(aws, moto.make_user(unique("root-"), IAM_ALL), moto.endpoint)
    wait_until(lambda: lookup(aws, creds["lease_id"]).status_code != 200, "a background retry revoked the lease")
    assert not moto.user_exists(user)
    assert moto.admin_iam().list_entities_for_policy(PolicyArn=policy_arn)["PolicyUsers"] == []


# --------------------------------------------------------------------------- 9. keys that work when handed out


def test_wait_for_usable_key_holds_the_answer_until_aws_accepts_the_key(coffer, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY), wait_for_usable_key="20s")
    assert coffer.request("GET", f"aws/roles/{role}", token=coffer.root_token).json()["data"][
        "wait_for_usable_key"] == 20
    # AWS refuses a new key for a while (vault#687): the first two checks are refused.
    fault_proxy.fail("GetCallerIdentity", "invalid_token", times=2)
    creds = issue_ok(coffer, role)
    assert creds["warnings"] is None
    assert [status for action, status in fault_proxy.calls if action == "GetCallerIdentity"] == [403, 403, 200]


def test_wait_for_usable_key_gives_up_with_a_warning(coffer, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY), wait_for_usable_key="1s")
    fault_proxy.fail("GetCallerIdentity", "invalid_token", times=None)
    creds = issue_ok(coffer, role)
    assert creds["data"]["access_key"] and "did not accept the new key within 1s" in creds["warnings"][0]


def test_without_wait_no_check_is_made(coffer, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    issue_ok(coffer, role)
    assert "GetCallerIdentity" not in [action for action, _ in fault_proxy.calls]
    r = coffer.request("POST", f"aws/roles/{unique()}", token=coffer.root_token, json={
        "credential_type": "iam_user", "policy_document": json.dumps(ROLE_POLICY), "wait_for_usable_key": "1h"})
    assert r.status_code == 400 and "wait_for_usable_key" in r.json()["errors"][0]


def test_revoke_during_an_aws_outage_answers_502_and_keeps_the_lease(coffer, moto, fault_proxy):
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    creds = issue_ok(coffer, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    fault_proxy.fail("ListAccessKeys", "error500", times=None)
    r = coffer.request("PUT", "sys/leases/revoke", token=coffer.root_token, json={"lease_id": creds["lease_id"]})
    assert r.status_code == 502, r.text
    assert "retries in the background" in errors_of(r)
    assert lookup(coffer, creds["lease_id"]).status_code == 200 and moto.user_exists(user)
    fault_proxy.clear()
    wait_until(lambda: lookup(coffer, creds["lease_id"]).status_code != 200, "the retries revoked the lease")
    assert not moto.user_exists(user)


def test_create_user_answer_lost_then_retried_by_the_sdk_issues_normally(coffer, moto, fault_proxy):
    """moto made the user, the answer was lost, the SDK's retry hears EntityAlreadyExists: the random name
    means it is this very user, so issuing goes on (it used to answer 400 for AWS's hiccup)."""
    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=1)
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("CreateUser", "drop_after", times=1)
    creds = issue_ok(coffer, role)
    assert fault_proxy.count("CreateUser") == 2
    assert_only_leased_users(coffer, moto, role, [creds])


@pytest.mark.parametrize("lost", [1, 2])
def test_access_key_answers_lost_then_retried_by_the_sdk_leave_the_user_one_key(coffer, moto, fault_proxy, lost):
    """moto made the key, the answer was lost, the SDK retried: the key nobody holds is deleted. Two lost
    answers fill the user's two-key quota; the soak met that as a 400 "Cannot exceed quota for
    AccessKeysPerUser: 2" for an ordinary read of aws/creds."""
    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=2)
    role = unique()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    fault_proxy.fail("CreateAccessKey", "drop_after", times=lost)
    creds = issue_ok(coffer, role)
    user = owner(moto, creds["data"]["access_key"], coffer_users(moto, role))
    keys = moto.admin_iam().list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [creds["data"]["access_key"]]
    assert_only_leased_users(coffer, moto, role, [creds])


def test_an_existing_user_of_a_fixed_name_is_never_taken_over(coffer, moto, fault_proxy):
    role = unique()
    moto.make_user(f"fixed-{role}", None)
    coffer.request("POST", "aws/config/root", token=coffer.root_token, json={
        "access_key": coffer.full_root.access_key_id, "secret_key": coffer.full_root.secret_access_key,
        "region": "us-east-1", "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint,
        "username_template": '{{ printf "fixed-%s" .RoleName | truncate 64 }}'}).raise_for_status()
    put_role(coffer, role, policy_document=json.dumps(ROLE_POLICY))
    r = issue(coffer, role)
    assert r.status_code == 400 and "already exists" in errors_of(r)
    assert moto.user_exists(f"fixed-{role}")  # someone else's user: left alone
