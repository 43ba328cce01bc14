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
coffer = resilience.coffer
IAM_ALL = resilience.IAM_ALL
ROLE_POLICY = walkthrough.ROLE_POLICY
configure_root, put_role, issue, issue_ok, errors_of, lookup, restart, wait_until, unique = (
    resilience.configure_root, resilience.put_role, resilience.issue, resilience.issue_ok, resilience.errors_of,
    resilience.lookup, resilience.restart, resilience.wait_until, resilience.unique)


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
    configure_root(aws, moto.make_user(unique("root-"), IAM_ALL), moto.endpoint)
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


def test_static_role_refusals(aws, moto):
    configure_root(aws, moto.make_user(unique("root-"), IAM_ALL), moto.endpoint)
    r = aws.request("POST", "aws/static-roles/x", token=aws.root_token, json={"rotation_period": "10s"})
    assert r.status_code == 400
    assert r.json()["errors"] == ['missing required field "username" (the IAM user whose key coffer rotates)',
                                  "rotation_period must be at least 60s"]
    r = aws.request("POST", "aws/static-roles/x", token=aws.root_token,
                    json={"username": unique("nobody-"), "rotation_period": "1h"})
    assert r.status_code == 400 and "does not exist" in errors_of(r)


# --------------------------------------------------------------------------- root rotation


def test_rotate_root_on_demand_and_on_schedule(aws, moto):
    root_user = unique("root-")
    key = moto.make_user(root_user, IAM_ALL)
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
    fresh = moto.make_user(unique("root-"), IAM_ALL)
    r = aws.request("POST", "aws/config/root", token=aws.root_token, json={
        "access_key": fresh.access_key_id, "secret_key": fresh.secret_access_key, "iam_endpoint": moto.endpoint,
        "sts_endpoint": moto.endpoint, "rotation_period": "10s"})
    assert r.status_code in (200, 204), r.text
    wait_until(lambda: aws.request("GET", "aws/config/root", token=aws.root_token).json()["data"]["access_key"]
               != fresh.access_key_id, "a scheduled rotation", 30)
    assert refused(moto, fresh.access_key_id, fresh.secret_access_key)
    issue_ok(aws, "app")


@pytest.mark.parametrize(("fields", "message"), [
    ({"rotation_period": "1h", "rotation_schedule": "0 3 * * *"}, "mutually exclusive"),
    ({"rotation_schedule": "not cron"}, "is not a cron expression"),
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


def test_orphans_lists_exactly_the_leaked_users_and_tidy_removes_them(coffer, moto, fault_proxy):
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
    configure_root(aws, moto.make_user(unique("root-"), IAM_ALL), moto.endpoint)
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
    configure_root(aws, moto.make_user(unique("root-"), IAM_ALL), moto.endpoint)
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


def test_call_budget_holds_during_a_burst_of_200_issues(coffer, moto, fault_proxy):
    budget = 40  # 200 issues of 3 calls each: ~15 s at this pace
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
