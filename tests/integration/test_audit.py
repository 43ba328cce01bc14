"""Audit devices: what they record, how secrets are hashed, and failing closed."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def audited(dev_server, kv1, tmp_path):
    path = f"file-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "audit.log"
    r = dev_server.request("PUT", f"sys/audit/{path}", json={"type": "file", "options": {"file_path": str(log)}})
    assert r.status_code == 204, r.text
    yield dev_server, path, log
    dev_server.request("DELETE", f"sys/audit/{path}")


def test_requests_and_responses_are_recorded_with_secrets_hashed(audited):
    server, path, log = audited
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    server.request("PUT", "kv-v1/audited", json={"password": secret}).raise_for_status()
    read = server.request("GET", "kv-v1/audited")
    assert read.json()["data"]["password"] == secret
    text = log.read_text()
    assert secret not in text and "root" not in [e["auth"].get("client_token") for e in lines(log)]
    entries = [e for e in lines(log) if e["request"]["path"] == "kv-v1/audited"]
    kinds = [(e["type"], e["request"]["operation"]) for e in entries]
    assert kinds == [("request", "create"), ("response", "create"), ("request", "read"), ("response", "read")]
    expected = server.request("PUT", f"sys/audit-hash/{path}", json={"input": secret}).json()["data"]["hash"]
    assert expected.startswith("hmac-sha256:")
    assert entries[0]["request"]["data"]["password"] == expected
    assert entries[3]["response"]["data"]["password"] == expected
    assert entries[0]["auth"]["client_token"].startswith("hmac-sha256:")
    listed = server.request("GET", "sys/audit").json()["data"]
    assert listed[f"{path}/"]["type"] == "file"


def test_denied_requests_are_recorded(audited):
    server, _, log = audited
    r = server.request("GET", "kv-v1/whatever", token="not-a-token")
    assert r.status_code == 403
    assert any(e.get("error") == "permission denied" and e["request"]["path"] == "kv-v1/whatever"
               for e in lines(log))


def test_audit_endpoints_need_sudo(dev_server):
    dev_server.request("PUT", "sys/policies/acl/audit-nosudo",
                       json={"policy": 'path "sys/audit*" { capabilities = ["read", "update", "create"] }'})
    token = dev_server.request("POST", "auth/token/create", json={"policies": ["audit-nosudo"]}).json()[
        "auth"]["client_token"]
    assert dev_server.request("GET", "sys/audit", token=token).status_code == 403
    assert dev_server.request("PUT", "sys/audit/x", token=token,
                              json={"type": "file", "options": {"file_path": "stdout"}}).status_code == 403


def test_bad_device_config_is_refused(dev_server, tmp_path):
    r = dev_server.request("PUT", "sys/audit/bad", json={"type": "file"})
    assert r.status_code == 400 and "file_path" in r.json()["errors"][0]
    r = dev_server.request("PUT", "sys/audit/bad", json={"type": "syslog", "options": {"file_path": "x"}})
    assert r.status_code == 400
    r = dev_server.request("PUT", "sys/audit/bad", json={"type": "file",
                                                         "options": {"file_path": str(tmp_path / "no/dir/x")}})
    assert r.status_code == 400


def test_fail_closed(sqlite_server, tmp_path_factory):
    from conftest import init_and_unseal

    keys, root = init_and_unseal(sqlite_server)
    logdir = tmp_path_factory.mktemp("auditdir")  # not beside the database: coffer refuses that
    log = logdir / "audit.log"
    s = sqlite_server
    assert s.request("PUT", "sys/audit/file", token=root,
                     json={"type": "file", "options": {"file_path": str(log)}}).status_code == 204
    s.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
    assert audit_counters(s, root) == {"coffer_audit_unrecorded_total": 0}
    # Make the only device unable to write: replace its file with a directory and rotate (SIGHUP reopens).
    log.unlink()
    log.mkdir()
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    r = s.request("PUT", "kv/blocked", token=root, json={"a": "b"})
    assert r.status_code == 500 and "audit" in r.json()["errors"][0]
    # The refused request had no effect, and the metrics count the device's failures (once the scrape can be
    # recorded): two entries, the request's and the error answer's.
    log.rmdir()
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert s.request("GET", "kv/blocked", token=root).status_code == 404
    assert audit_counters(s, root) == {"coffer_audit_unrecorded_total": 2,
                                       "coffer_audit_device_failures_total{'device': 'file/'}": 2}
    # Rotation: the old file is moved away, SIGHUP opens a new one.
    os.rename(log, logdir / "audit.log.1")
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    s.request("PUT", "kv/after", token=root, json={"a": "b"}).raise_for_status()
    assert any(e["request"]["path"] == "kv/after" for e in lines(log))


def audit_counters(server, token: str) -> dict[str, float]:
    """The audit counters of ``sys/metrics`` (Vault's JSON form), by name and labels."""
    r = server.request("GET", "sys/metrics", token=token)
    assert r.status_code == 200, r.text
    return {c["Name"] + (str(c["Labels"]) if c["Labels"] else ""): c["Sum"] for c in r.json()["Counters"]
            if c["Name"].startswith("coffer_audit_")}


@pytest.fixture
def aws_audited(sqlite_server, moto, tmp_path_factory):
    """An unsealed SQLite server with aws/ on moto and a file audit device."""
    from aws_support import MINIMAL_ROOT_POLICY
    from conftest import init_and_unseal

    _, root = init_and_unseal(sqlite_server)
    s = sqlite_server
    s.root_token = root
    log = tmp_path_factory.mktemp("audit") / "audit.log"  # not beside the database: coffer refuses that
    s.request("PUT", "sys/audit/file", token=root, json={"type": "file", "options": {"file_path": str(log)}})
    s.request("POST", "sys/mounts/aws", token=root, json={"type": "aws"}).raise_for_status()
    s.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
    key = moto.make_user(f"root-{uuid.uuid4().hex[:6]}", MINIMAL_ROOT_POLICY)
    s.request("PUT", "aws/config/root", token=root, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key,
        "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}).raise_for_status()
    s.request("PUT", "aws/roles/deploy", token=root, json={"credential_type": "iam_user", "policy_document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}
    }).raise_for_status()
    return s, log


def test_aws_credentials_and_kv_values_are_hashed(aws_audited):
    s, log = aws_audited
    creds = s.request("GET", "aws/creds/deploy", token=s.root_token).json()
    value = f"kv-value-{uuid.uuid4().hex}"
    s.request("PUT", "kv/app", token=s.root_token, json={"password": value}).raise_for_status()
    text = log.read_text()
    for plaintext in (s.root_token, creds["data"]["secret_key"], value):
        assert plaintext not in text
    entries = [e for e in lines(log) if e["request"]["path"] == "aws/creds/deploy"]
    assert [e["type"] for e in entries] == ["request", "response"]
    logged = entries[1]["response"]["data"]["secret_key"]
    assert entries[1]["response"]["secret"]["lease_id"] == creds["lease_id"]
    hashed = s.request("PUT", "sys/audit-hash/file", token=s.root_token,
                       json={"input": creds["data"]["secret_key"]}).json()["data"]["hash"]
    assert hashed == logged


def test_unwritable_audit_fails_creds_closed(aws_audited, moto):
    s, log = aws_audited
    before = set(moto.user_names())
    log.unlink()
    log.mkdir()  # the only device can no longer write
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    r = s.request("GET", "aws/creds/deploy", token=s.root_token)
    assert r.status_code == 500 and "audit" in r.json()["errors"][0]
    assert set(moto.user_names()) == before
