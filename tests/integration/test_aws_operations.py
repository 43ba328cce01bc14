"""Issue 12's operators' side: static roles, root rotation, the orphan finder, per-role TTLs and quotas,
and the per-mount AWS call budget. moto's server with IAM authentication enforced throughout."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import test_aws_resilience as resilience
import test_aws_walkthrough as walkthrough
from botocore.exceptions import ClientError

from aws_support import error_code

aws = walkthrough.aws
ROLE_POLICY = walkthrough.ROLE_POLICY
configure_root, put_role, issue, issue_ok, errors_of, lookup, restart, wait_until, unique = (
    resilience.configure_root, resilience.put_role, resilience.issue, resilience.issue_ok, resilience.errors_of,
    resilience.lookup, resilience.restart, resilience.wait_until, resilience.unique)

# The root user of each case holds only the IAM actions that case needs (moto refuses every other one).
# moto matches IAM user and key actions only against Resource "*", so these cannot be narrowed to one user
# here as they would be on AWS (e.g. key rotation to arn:aws:iam::<account>:user/${aws:username}).
#: Issuing an iam_user credential of a role with an inline policy.
ISSUE_ACTIONS = ("CreateUser", "PutUserPolicy", "CreateAccessKey")
#: Revoking it. The other listings of the teardown (managed policies, groups, MFA devices, ...) are refused
#: and skipped; IAM then deletes the user, which has none of those. (moto deletes a user that still holds
#: access keys, AWS does not: the key actions are here for AWS, moto alone would not miss them.)
TEARDOWN_ACTIONS = ("ListAccessKeys", "DeleteAccessKey", "ListUserPolicies", "DeleteUserPolicy", "DeleteUser")
#: Rotating a user's one key: a static role's user, or the root user itself.
KEY_ACTIONS = ("GetUser", "ListAccessKeys", "CreateAccessKey", "DeleteAccessKey")
#: What the orphan finder lists about each orphan besides its keys and inline policies.
ORPHAN_ACTIONS = ("ListUsers", "ListAttachedUserPolicies", "ListGroupsForUser")


def allow(*actions: str) -> dict:
    """A policy allowing exactly ``actions`` (IAM's unless the name says its service)."""
    names = sorted({a if ":" in a else f"iam:{a}" for a in actions})
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": names, "Resource": "*"}]}


def root_key(moto, *actions: str, name: str | None = None):
    """A new IAM user allowed exactly ``actions``, and its access key."""
    return moto.make_user(name or unique("root-"), allow(*actions))


def through_proxy(aws, moto, fault_proxy, *actions: str):
    """aws/ reaching moto through the fault proxy (no SDK retries) as a root user allowed ``actions``."""
    key = root_key(moto, *actions)
    configure_root(aws, key, fault_proxy.endpoint, max_retries=0)
    aws.full_root = key
    return aws


def keys_of(moto, user: str) -> list[str]:
    return [k["AccessKeyId"] for k in moto.admin_iam().list_access_keys(UserName=user)["AccessKeyMetadata"]]


def refused(moto, access_key: str, secret_key: str) -> bool:
    try:
        moto.sts(access_key, secret_key, config=walkthrough.NO_RETRY).get_caller_identity()
        return False
    except ClientError as exc:
        return error_code(exc) == "InvalidClientTokenId"


def static_creds(server, name: str) -> dict:
    r = server.request("GET", f"aws/static-creds/{name}", token=server.root_token)
    assert r.status_code == 200, r.text
    return r.json()["data"]


# --------------------------------------------------------------------------- static roles


def test_static_role_rotates_on_schedule_across_a_restart(aws, moto, monkeypatch):
    monkeypatch.setenv("COFFER_TEST_MIN_ROTATION_PERIOD", "1")  # test-only: the minimum is 1 minute
    restart(aws)
    configure_root(aws, root_key(moto, *KEY_ACTIONS), moto.endpoint)
    user = unique("svc-")
    moto.admin_iam().create_user(UserName=user)
    for _ in range(2):  # a user holding two keys already: the older goes, then the other once coffer's is stored
        moto.admin_iam().create_access_key(UserName=user)
    r = aws.request("POST", "aws/static-roles/svc", token=aws.root_token,
                    json={"username": user, "rotation_period": "1h"})
    assert r.status_code == 204, r.text
    first = static_creds(aws, "svc")
    assert keys_of(moto, user) == [first["access_key"]]
    assert not refused(moto, first["access_key"], first["secret_key"])
    role = aws.request("GET", "aws/static-roles/svc", token=aws.root_token).json()["data"]
    assert role["username"] == user and role["rotation_period"] == 3600

    # A changed period takes effect at once (vault#21967).
    r = aws.request("POST", "aws/static-roles/svc", token=aws.root_token, json={"rotation_period": "3s"})
    assert r.status_code == 204, r.text
    wait_until(lambda: static_creds(aws, "svc")["access_key"] != first["access_key"], "a rotation", 20)
    second = static_creds(aws, "svc")
    wait_until(lambda: keys_of(moto, user) == [second["access_key"]], "the old key deleted", 10)
    assert refused(moto, first["access_key"], first["secret_key"])

    # Due while the server was down: rotated after unseal (vault#21935).
    aws.request("POST", "aws/static-roles/svc", token=aws.root_token, json={"rotation_period": "4s"})
    current = static_creds(aws, "svc")
    aws.stop()
    time.sleep(6)
    assert keys_of(moto, user) == [current["access_key"]]  # nothing rotates while it is down
    restart(aws)
    wait_until(lambda: static_creds(aws, "svc")["access_key"] != current["access_key"], "rotation after unseal", 20)
    latest = static_creds(aws, "svc")
    wait_until(lambda: keys_of(moto, user) == [latest["access_key"]], "exactly one key", 10)
    assert refused(moto, current["access_key"], current["secret_key"])
    assert not refused(moto, latest["access_key"], latest["secret_key"])
    assert aws.request("LIST", "aws/static-roles", token=aws.root_token).json()["data"]["keys"] == ["svc"]

    # Deleted: coffer stops managing the user (as Vault does, the user and its key stay) and rotates no more.
    assert aws.request("DELETE", "aws/static-roles/svc", token=aws.root_token).status_code == 204
    assert aws.request("GET", "aws/static-creds/svc", token=aws.root_token).status_code == 404
    assert aws.request("LIST", "aws/static-roles", token=aws.root_token).status_code == 404
    time.sleep(5)  # past the 4 s period
    assert keys_of(moto, user) == [latest["access_key"]]
    assert not refused(moto, latest["access_key"], latest["secret_key"])


def test_static_role_refusals(aws, moto):
    configure_root(aws, root_key(moto, "GetUser"), moto.endpoint)  # "does not exist" is GetUser's NoSuchEntity
    r = aws.request("POST", "aws/static-roles/x", token=aws.root_token, json={"rotation_period": "10s"})
    assert r.status_code == 400
    assert r.json()["errors"] == ['missing required field "username" (the IAM user whose key coffer rotates)',
                                  "rotation_period must be at least 60s"]
    r = aws.request("POST", "aws/static-roles/x", token=aws.root_token,
                    json={"username": unique("nobody-"), "rotation_period": "1h"})
    assert r.status_code == 400 and "does not exist" in errors_of(r)


OTHER_ACCOUNT = "210987654321"


def in_account(client, account: str):
    """``client``'s calls go to moto's ``account`` (moto picks the account of a call by this header)."""
    def add(request, **_):
        request.headers["x-moto-account-id"] = account
    client.meta.events.register("before-send", add)
    return client


def test_static_role_in_another_account_through_assume_role_arn(aws, moto):
    """The user lives in another account; coffer reaches it only through a role there that it assumes."""
    user, role_name = unique("svc-"), unique("coffer-static-")
    role_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:role/{role_name}"
    root = moto.make_user(unique("root-"), {"Version": "2012-10-17", "Statement": [  # no IAM of its own account
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]})
    root_arn = moto.caller_arn(*root)
    # Nobody in the other account can sign yet: moto lets the next four calls through unchecked to set it up.
    requests.post(f"{moto.endpoint}/moto-api/reset-auth", data=b"4", timeout=10).raise_for_status()
    setup = in_account(moto.iam("AKIASETUPOTHERACCT00", "unchecked", config=walkthrough.NO_RETRY), OTHER_ACCOUNT)
    setup.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root_arn}, "Action": "sts:AssumeRole"}]}))
    setup.put_role_policy(RoleName=role_name, PolicyName="rotate", PolicyDocument=json.dumps(allow(*KEY_ACTIONS)))
    setup.create_user(UserName=user)
    old = setup.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    with pytest.raises(ClientError) as checked:  # ... and from now on every call is checked again
        setup.get_user(UserName=user)
    assert error_code(checked.value) == "InvalidClientTokenId"

    configure_root(aws, root, moto.endpoint)
    r = aws.request("POST", "aws/static-roles/far", token=aws.root_token, json={
        "username": user, "rotation_period": "1h", "assume_role_arn": role_arn,
        "assume_role_session_name": "coffer-far"})
    assert r.status_code == 204, r.text
    creds = static_creds(aws, "far")
    assert moto.caller_arn(creds["access_key"], creds["secret_key"]) == f"arn:aws:iam::{OTHER_ACCOUNT}:user/{user}"
    there = moto.admin_client("sts").assume_role(RoleArn=role_arn, RoleSessionName="check")["Credentials"]
    other_iam = moto.iam(there["AccessKeyId"], there["SecretAccessKey"], there["SessionToken"])
    keys = [k["AccessKeyId"] for k in other_iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    assert keys == [creds["access_key"]] and old not in keys
    assert not moto.user_exists(user)  # nothing of it in coffer's own account
    role = aws.request("GET", "aws/static-roles/far", token=aws.root_token).json()["data"]
    assert role["assume_role_arn"] == role_arn and role["assume_role_session_name"] == "coffer-far"


# --------------------------------------------------------------------------- root rotation


def test_rotate_root_on_demand_and_on_schedule(aws, moto):
    root_user = unique("root-")
    key = root_key(moto, *KEY_ACTIONS, *ISSUE_ACTIONS, name=root_user)
    configure_root(aws, key, moto.endpoint)
    put_role(aws, "app", policy_document=json.dumps(ROLE_POLICY))
    r = aws.request("POST", "aws/config/rotate-root", token=aws.root_token)
    assert r.status_code == 200, r.text
    new = r.json()["data"]["access_key"]
    assert new != key.access_key_id and keys_of(moto, root_user) == [new]
    assert aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"] == new
    assert refused(moto, key.access_key_id, key.secret_access_key)
    issue_ok(aws, "app")  # the engine keeps issuing with the new key

    # Two keys on the root user: refused, naming the other key.
    extra = moto.admin_iam().create_access_key(UserName=root_user)["AccessKey"]["AccessKeyId"]
    r = aws.request("POST", "aws/config/rotate-root", token=aws.root_token)
    assert r.status_code == 400 and extra in errors_of(r) and "has 2 access keys" in errors_of(r)
    moto.admin_iam().delete_access_key(UserName=root_user, AccessKeyId=extra)

    # Scheduled rotation (checked through the access key, since coffer never returns the secret key).
    fresh = root_key(moto, *KEY_ACTIONS, *ISSUE_ACTIONS)
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": fresh.access_key_id, "secret_key": fresh.secret_access_key, "iam_endpoint": moto.endpoint,
        "sts_endpoint": moto.endpoint, "rotation_period": "10s"})
    assert r.status_code in (200, 204), r.text
    wait_until(lambda: aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"]
               != fresh.access_key_id, "a scheduled rotation", 30)
    assert refused(moto, fresh.access_key_id, fresh.secret_access_key)
    issue_ok(aws, "app")


def test_lost_create_access_key_answers_leave_no_stray_key(aws, moto, fault_proxy):
    """A static role's user and the root user each end a rotation holding exactly the key coffer stored,
    even when moto made a key whose answer was lost and the SDK retried (that key nobody holds would stay
    live on the static user, and on the root user it would refuse every later rotation)."""
    root_user = unique("root-")
    key = root_key(moto, *KEY_ACTIONS, name=root_user)
    configure_root(aws, key, fault_proxy.endpoint, max_retries=2)
    user = unique("svc-")
    moto.admin_iam().create_user(UserName=user)
    fault_proxy.fail("CreateAccessKey", "drop_after", times=1)
    r = aws.request("POST", "aws/static-roles/svc", token=aws.root_token,
                    json={"username": user, "rotation_period": "1h"})
    assert r.status_code == 204, r.text
    assert keys_of(moto, user) == [static_creds(aws, "svc")["access_key"]]

    fault_proxy.fail("CreateAccessKey", "drop_after", times=1)
    r = aws.request("POST", "aws/config/rotate-root", token=aws.root_token)
    assert r.status_code == 200, r.text
    assert keys_of(moto, root_user) == [r.json()["data"]["access_key"]]
    r = aws.request("POST", "aws/config/rotate-root", token=aws.root_token)  # and the next rotation works
    assert r.status_code == 200, r.text
    # The static user had no key: the SDK's retry made a second. The root user had its own: the retry hit
    # the two-key quota (409 LimitExceeded), so the stray went first and the key was made once more.
    assert [status for action, status in fault_proxy.calls if action == "CreateAccessKey"] == \
        [200, 200, 200, 409, 200, 200]


def test_disable_automated_rotation_holds_the_schedule(aws, moto, monkeypatch):
    """With disable_automated_rotation the root key stays put however long the period has passed; once
    re-enabled it rotates. A static role rotating on every periodic tick shows that ticks did run."""
    monkeypatch.setenv("COFFER_TEST_MIN_ROTATION_PERIOD", "1")  # test-only: both minimums (10s, 1m) become 1s
    restart(aws)
    name = unique("root-")
    key = root_key(moto, *KEY_ACTIONS, name=name)
    configure_root(aws, key, moto.endpoint, rotation_period="1s", disable_automated_rotation=True)
    assert aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"][
        "disable_automated_rotation"] is True
    witness = unique("svc-")
    moto.admin_iam().create_user(UserName=witness)
    r = aws.request("POST", "aws/static-roles/tick", token=aws.root_token,
                    json={"username": witness, "rotation_period": "1s"})
    assert r.status_code == 204, r.text
    seen = [static_creds(aws, "tick")["access_key"]]

    def rotated_twice() -> bool:
        current = static_creds(aws, "tick")["access_key"]
        if current != seen[-1]:
            seen.append(current)
        return len(seen) >= 3

    # Two ticks after the static role's creation: the second began seconds after config/root was written,
    # when a 1s period was long overdue.
    wait_until(rotated_twice, "two periodic ticks", 30)
    assert aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"] \
        == key.access_key_id
    assert keys_of(moto, name) == [key.access_key_id] and not refused(moto, *key)

    configure_root(aws, key, moto.endpoint, rotation_period="1s", disable_automated_rotation=False)
    wait_until(lambda: aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"]
               != key.access_key_id, "the re-enabled rotation", 20)
    wait_until(lambda: refused(moto, *key), "the old root key deleted", 10)


def test_rotation_schedule_fires_and_a_missed_window_is_skipped(aws, moto, monkeypatch):
    """A cron schedule rotates the root key when it falls; a rotation missed by more than rotation_window
    (the server was down) is skipped, with a log line, not made late."""
    monkeypatch.setenv("COFFER_TEST_MIN_ROTATION_PERIOD", "1")  # test-only: a seconds field, short windows
    restart(aws)
    name = unique("root-")
    key = root_key(moto, *KEY_ACTIONS, name=name)
    configure_root(aws, key, moto.endpoint, rotation_schedule="* * * * * */3")  # (croniter: seconds come last)
    wait_until(lambda: aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"]
               != key.access_key_id, "a rotation on the schedule", 30)
    wait_until(lambda: refused(moto, *key), "the old root key deleted", 10)

    # Every 8 s, within 6 s: down for 15 s, the due rotation is skipped at the first tick after unseal.
    other = root_key(moto, *KEY_ACTIONS)
    configure_root(aws, other, moto.endpoint, rotation_schedule="* * * * * */8", rotation_window="6s")
    aws.stop()
    time.sleep(15)
    restart(aws)
    wait_until(lambda: "was missed by more than its window; skipped" in aws.log(), "the skip's log line", 20)


@pytest.mark.parametrize(("fields", "message"), [
    ({"rotation_period": "1h", "rotation_schedule": "0 3 * * *"}, "mutually exclusive"),
    ({"rotation_schedule": "not cron"}, "is not a cron expression"),
    ({"rotation_schedule": "*/5 * * * * *"}, "is not a cron expression of five fields"),  # (seconds)
    ({"rotation_window": "2h"}, "rotation_window applies only with rotation_schedule"),
    ({"rotation_schedule": "0 3 * * *", "rotation_window": "10m"}, "rotation_window must be at least 1h"),
    ({"rotation_period": "5s"}, "rotation_period must be at least 10s"),
])
def test_rotation_settings_vault_refuses_too(aws, fields, message):
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json=fields)
    assert r.status_code == 400 and message in errors_of(r), r.text


def test_config_root_normalises_what_vault_accepts(aws):
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": "AKIAEXAMPLE", "iam_endpoint": "iam.amazonaws.com", "max_retries": -7,
        "rotation_schedule": "0 3 * * SAT", "rotation_window": "2h"})
    assert r.status_code == 200, r.text
    warnings = r.json()["warnings"]
    assert any("coffer uses https://iam.amazonaws.com" in w for w in warnings)
    assert any("only one of access_key and secret_key" in w for w in warnings)
    assert any("max_retries -7" in w for w in warnings)
    data = aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]
    assert data["iam_endpoint"] == "https://iam.amazonaws.com" and data["max_retries"] == -1


# --------------------------------------------------------------------------- orphans


def test_orphans_lists_exactly_the_leaked_users_and_tidy_removes_them(aws, moto, fault_proxy):
    coffer = through_proxy(aws, moto, fault_proxy, *ISSUE_ACTIONS, *TEARDOWN_ACTIONS, *ORPHAN_ACTIONS)
    path = f"/orph{uuid.uuid4().hex[:6]}/"
    put_role(coffer, "orph", policy_document=json.dumps(ROLE_POLICY), user_path=path)
    kept = issue_ok(coffer, "orph")
    stuck = issue_ok(coffer, "orph")
    admin = moto.admin_iam()
    # Out of band: two users that look like coffer's (its path, its template's "vault-" prefix), one that does not.
    leaked = sorted(f"vault-root-orph-{n}-{uuid.uuid4().hex[:6]}" for n in range(2))
    for name in leaked:
        admin.create_user(UserName=name, Path=path)
    admin.put_user_policy(UserName=leaked[0], PolicyName="extra", PolicyDocument=json.dumps(ROLE_POLICY))
    admin.create_user(UserName=f"someone-{uuid.uuid4().hex[:6]}", Path=path)
    # A revoke that fails keeps its lease: its user is not an orphan (AWS fails until the listing is done).
    fault_proxy.fail("DeleteUser", "error500", times=None)
    r = coffer.request("PUT", "sys/leases/revoke", token=coffer.root_token, json={"lease_id": stuck["lease_id"]})
    assert r.status_code == 502
    # A crash between CreateUser and the lease: its write-ahead entry knows it (its rollback fails meanwhile).
    before = set(moto.user_names(path))
    fault_proxy.after("CreateAccessKey", lambda: coffer.proc.kill())
    with pytest.raises(requests.ConnectionError):
        issue(coffer, "orph")
    crashed = set(moto.user_names(path)) - before
    assert len(crashed) == 1
    restart(coffer)

    r = coffer.request("LIST", "aws/orphans", token=coffer.root_token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["keys"] == leaked
    assert data["key_info"][leaked[0]]["inline_policies"] == ["extra"] and data["key_info"][leaked[0]]["age"] >= 0
    assert data["key_info"][leaked[1]] | {"age": 0, "created": ""} == {
        "path": path, "age": 0, "created": "", "access_keys": [], "inline_policies": [], "managed_policies": [],
        "groups": []}  # every attachment listed (nothing it could not read)
    assert moto.user_exists(crashed.pop())  # there, but known
    fault_proxy.clear()
    r = coffer.request("POST", "aws/tidy", token=coffer.root_token, json={})
    assert r.status_code == 200 and r.json()["data"]["dry_run"] is True and r.json()["data"]["deleted"] == []
    assert all(moto.user_exists(u) for u in leaked)
    r = coffer.request("POST", "aws/tidy", token=coffer.root_token, json={"dry_run": False, "older_than": "1h"})
    assert r.json()["data"]["orphans"] == []  # none is an hour old
    r = coffer.request("POST", "aws/tidy", token=coffer.root_token, json={"dry_run": False})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["deleted"] == leaked and not any(moto.user_exists(u) for u in leaked)
    assert coffer.request("LIST", "aws/orphans", token=coffer.root_token).status_code == 404  # none left
    assert lookup(coffer, kept["lease_id"]).status_code == 200 and moto.user_of(kept["data"]["access_key"])


# --------------------------------------------------------------------------- per-role TTLs and quotas


def test_per_role_ttl_and_max_ttl(aws, moto):
    configure_root(aws, root_key(moto, *ISSUE_ACTIONS), moto.endpoint)
    put_role(aws, "short", policy_document=json.dumps(ROLE_POLICY), ttl="30s", max_ttl="1m")
    creds = issue_ok(aws, "short")
    assert creds["lease_duration"] == 30
    r = aws.request("PUT", "sys/leases/renew", token=aws.root_token,
                    json={"lease_id": creds["lease_id"], "increment": "10m"})
    assert r.status_code == 200 and r.json()["lease_duration"] <= 60
    r = aws.request("GET", "aws/creds/short", token=aws.root_token, params={"ttl": "5m"})
    assert r.status_code == 200 and r.json()["lease_duration"] == 60
    assert "clamped to 60s by the role's max_ttl" in r.json()["warnings"][0]


def test_max_live_credentials_is_a_429_naming_role_and_count(aws, moto):
    configure_root(aws, root_key(moto, *ISSUE_ACTIONS, *TEARDOWN_ACTIONS), moto.endpoint)
    put_role(aws, "capped", policy_document=json.dumps(ROLE_POLICY), max_live_credentials=2)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: issue(aws, "capped"), range(6)))
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) == 2 and all(a.status_code == 429 for a in answers if a.status_code != 200)
    refusal = next(a for a in answers if a.status_code == 429)
    assert 'role "capped" already has 2 live credentials' in errors_of(refusal) and refusal.headers["Retry-After"]
    aws.hvac.sys.revoke_lease(ok[0].json()["lease_id"])
    issue_ok(aws, "capped")


# --------------------------------------------------------------------------- pacing


def test_call_budget_holds_during_a_burst_of_200_issues(aws, moto, fault_proxy):
    budget = 40  # 200 issues of 3 calls each: ~15 s at this pace
    coffer = through_proxy(aws, moto, fault_proxy, *ISSUE_ACTIONS)
    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=0, max_calls_per_second=budget)
    put_role(coffer, "burst", policy_document=json.dumps(ROLE_POLICY), user_path=f"/burst{uuid.uuid4().hex[:6]}/")
    fault_proxy.clear()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: issue(coffer, "burst"), range(200)))
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 429}, statuses
    assert sum(a.status_code == 200 for a in answers) >= 20
    for a in answers:
        if a.status_code == 429:
            assert int(a.headers["Retry-After"]) >= 1 and "call budget" in errors_of(a)
    times = sorted(t for t, _ in fault_proxy.arrivals)
    busiest = max(sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times))
    assert busiest <= budget, busiest


def test_calls_the_root_was_refused_are_not_made_again_on_every_revoke(aws, moto, fault_proxy):
    """A least-privilege root may not list MFA devices, SSH keys, ...: the first teardown is refused those
    seven calls, later ones skip them (each refusal is also an AccessDenied event in CloudTrail); new root
    credentials try them again."""
    coffer = through_proxy(aws, moto, fault_proxy, *ISSUE_ACTIONS, *TEARDOWN_ACTIONS)
    put_role(coffer, "least", policy_document=json.dumps(ROLE_POLICY))
    issued = [issue_ok(coffer, "least") for _ in range(4)]

    def revoke(creds: dict) -> list[tuple[str, int | None]]:
        fault_proxy.clear()
        coffer.hvac.sys.revoke_lease(creds["lease_id"])
        assert lookup(coffer, creds["lease_id"]).status_code != 200
        return [(action, status) for action, status in fault_proxy.calls if status != 200]

    first = revoke(issued[0])
    assert len(first) == 7 and {status for _, status in first} == {403}, first
    assert "ListMFADevices" in {action for action, _ in first}
    assert revoke(issued[1]) == [] and revoke(issued[2]) == []
    assert fault_proxy.count("DeleteUser", 200) == 1  # (the last revoke's)
    configure_root(coffer, root_key(moto, *ISSUE_ACTIONS, *TEARDOWN_ACTIONS), fault_proxy.endpoint,
                   max_retries=0)
    assert len(revoke(issued[3])) == 7
    assert resilience.coffer_users(moto, "least") == set()


def test_bulk_revoke_keeps_to_the_call_budget(aws, moto, fault_proxy):
    budget, count = 30, 10  # 10 teardowns of at most 12 calls each (7 refused, see TEARDOWN_ACTIONS): ~5 s
    coffer = through_proxy(aws, moto, fault_proxy, *ISSUE_ACTIONS, *TEARDOWN_ACTIONS)
    path = f"/bulk{uuid.uuid4().hex[:6]}/"
    put_role(coffer, "bulk", policy_document=json.dumps(ROLE_POLICY), user_path=path)
    with ThreadPoolExecutor(count) as pool:
        issued = list(pool.map(lambda _: issue_ok(coffer, "bulk"), range(count)))
    users = set(moto.user_names(path))
    assert len(users) == count and {resilience.owner(moto, c["data"]["access_key"], users) for c in issued} == users
    configure_root(coffer, coffer.full_root, fault_proxy.endpoint, max_retries=0, max_calls_per_second=budget)
    fault_proxy.clear()
    r = coffer.request("PUT", "sys/leases/revoke-prefix/aws/creds/bulk", token=coffer.root_token)
    assert r.status_code == 204, r.text
    assert moto.user_names(path) == []
    assert coffer.request("LIST", "sys/leases/lookup/aws/creds/bulk/", token=coffer.root_token).status_code == 404
    assert fault_proxy.count("DeleteUser", 200) == count
    times = sorted(t for t, _ in fault_proxy.arrivals)
    busiest = max(sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times))
    assert busiest <= budget, busiest
