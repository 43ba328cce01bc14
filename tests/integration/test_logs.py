"""The server's log: log_level and log_format from the configuration, one line per lease revoked or expired,
one per write-ahead entry rolled back."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from aws_support import MINIMAL_ROOT_POLICY
from conftest import init_and_unseal, start_lease_server


def test_lease_lines_at_info_in_text(tmp_path):
    server = start_lease_server(tmp_path)
    try:
        root = server.root_token
        lease = server.request("GET", "things/creds/seen", token=root).json()["lease_id"]
        server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": lease}).raise_for_status()
        server.request("GET", "things/creds/short", token=root, params={"ttl": "1s"}).raise_for_status()
        deadline = time.monotonic() + 15
        while "expired and was revoked" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = server.log()
        short = lease.rsplit("/", 1)[0] + "/" + lease.rsplit("/", 1)[1][:8]
        assert f"[INFO] coffer.expiration: lease {short} revoked (mount things/)" in log
        assert lease not in log  # only a prefix of the id
        assert "things/creds/short/" in log and "expired and was revoked (mount things/)" in log
        server.request("PUT", "sys/rotate", token=root).raise_for_status()
        assert "rotated the encryption key: new writes use term 2" in server.log()
    finally:
        server.stop()


def test_json_lines_and_the_level_is_honoured(tmp_path):
    server = start_lease_server(tmp_path, extra='log_format = "json"\nlog_level = "warn"\nbogus_key = 1\n')
    try:
        root = server.root_token
        lease = server.request("GET", "things/creds/quiet", token=root).json()["lease_id"]
        server.request("PUT", "things/config", token=root, json={"fail_always": True}).raise_for_status()
        r = server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": lease})
        assert r.status_code == 400
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert records, server.log()
    assert {r["@level"] for r in records} <= {"warn", "error"}  # nothing at info: "unsealed" is not there
    assert not any(r["@message"] == "unsealed" for r in records)
    assert any('unknown configuration key "bogus_key"' in r["@message"] for r in records)
    for r in records:
        assert set(r) >= {"@timestamp", "@level", "@module", "@message"}


def test_a_rollback_after_a_crash_is_logged(sqlite_server, moto, fault_proxy):
    """Killed right after AWS made an IAM user: the restarted server rolls the write-ahead entry back and says so
    in one info line (the entry's kind, the mount, a prefix of the entry's id)."""
    server = sqlite_server
    keys, root = init_and_unseal(server)
    server.request("POST", "sys/mounts/aws", token=root, json={"type": "aws"}).raise_for_status()
    key = moto.make_user(f"logs-root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY)
    server.request("POST", "aws/config/root", token=root, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint, "max_retries": 0}
                   ).raise_for_status()
    role = f"crash{uuid.uuid4().hex[:8]}"
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}
    server.request("POST", f"aws/roles/{role}", token=root, json={
        "credential_type": "iam_user", "policy_document": json.dumps(policy)}).raise_for_status()
    fault_proxy.after("CreateUser", lambda: server.proc.kill())  # SIGKILL once moto has made the user
    with pytest.raises(requests.ConnectionError):
        server.request("GET", f"aws/creds/{role}", token=root)
    assert not fault_proxy.errors
    orphans = [u for u in moto.user_names() if role in u]
    assert len(orphans) == 1
    assert "rolled back" not in server.log()

    server.stop()
    server.start()
    server.request("PUT", "sys/unseal", token=None, json={"key": keys[0]}).raise_for_status()
    deadline = time.monotonic() + 20
    while "rolled back a " not in server.log():
        assert time.monotonic() < deadline, "no rollback line in the log:\n" + server.log()
        time.sleep(0.2)
    lines = [line for line in server.log().splitlines() if "rolled back a " in line]
    assert len(lines) == 1, lines
    assert ("[INFO] coffer.framework: rolled back a iam_user left by an unfinished request at aws/ "
            "(write-ahead entry ") in lines[0], lines[0]
    assert not moto.user_exists(orphans[0])
