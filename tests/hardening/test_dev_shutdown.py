"""An in-memory server revokes its leases when it stops, and names what it could not (issue 11)."""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from aws_support import MINIMAL_ROOT_POLICY
from conftest import CofferProcess, free_port

ROLE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}


def dev_with_aws(tmp_path, moto, *flags: str) -> tuple[CofferProcess, list[str]]:
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}",
                            *flags], port, tmp_path).start()
    key = moto.make_user(f"root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY)
    server.request("POST", "sys/mounts/aws", json={"type": "aws"}).raise_for_status()
    server.request("PUT", "aws/config/root", json={"access_key": key.access_key_id,
                                                   "secret_key": key.secret_access_key,
                                                   "iam_endpoint": moto.endpoint}).raise_for_status()
    server.request("PUT", "aws/roles/dev", json={"credential_type": "iam_user",
                                                 "policy_document": json.dumps(ROLE)}).raise_for_status()
    users = []
    for _ in range(2):
        creds = server.request("GET", "aws/creds/dev").json()["data"]
        users.append(moto.user_of(creds["access_key"]))
    assert all(moto.user_exists(u) for u in users)
    return server, users


def test_stopping_a_dev_server_revokes_its_leases(tmp_path, moto):
    server, users = dev_with_aws(tmp_path, moto)
    assert server.stop(signal.SIGTERM) == 0
    assert "Revoked all 2 lease(s) before stopping." in server.log()
    assert not any(moto.user_exists(u) for u in users)


@pytest.mark.parametrize("flags", [("-dev-leave-leases",), ("-dev-revoke-timeout=0",)])
def test_leases_left_behind_are_named_with_their_iam_users(tmp_path, moto, flags):
    server, users = dev_with_aws(tmp_path, moto, *flags)
    server.stop(signal.SIGTERM)
    out = server.log()
    assert "2 lease(s) were not revoked and are forgotten with this in-memory server" in out
    for user in users:
        assert f"(IAM user {user})" in out and moto.user_exists(user)
