"""What a user of hvac sees against `coffer server -dev`."""

from __future__ import annotations

import time
import uuid

import hvac
import pytest


def test_seal_status(dev_server):
    status = dev_server.client().sys.read_seal_status()
    assert status["initialized"] is True and status["sealed"] is False
    assert status["t"] == 1 and status["n"] == 1


def test_kv_mount_write_read_list(dev_server):
    client = dev_server.client()
    mount = f"kv-{uuid.uuid4().hex[:8]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    assert f"{mount}/" in client.sys.list_mounted_secrets_engines()
    client.secrets.kv.v1.create_or_update_secret("team/db", {"password": "hunter2"}, mount_point=mount)
    client.secrets.kv.v1.create_or_update_secret("team/api", {"key": "k"}, mount_point=mount)
    read = client.secrets.kv.v1.read_secret("team/db", mount_point=mount)
    assert read["data"] == {"password": "hunter2"}
    # hvac lists with the LIST verb.
    listed = client.secrets.kv.v1.list_secrets("team", mount_point=mount)
    assert listed["data"]["keys"] == ["api", "db"]
    assert client.secrets.kv.v1.list_secrets("", mount_point=mount)["data"]["keys"] == ["team/"]
    client.secrets.kv.v1.delete_secret("team/db", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v1.read_secret("team/db", mount_point=mount)


def test_child_token_expires(dev_server):
    client = dev_server.client()
    child = client.auth.token.create(ttl="2s", policies=["default"])["auth"]
    assert child["lease_duration"] <= 2
    child_client = dev_server.client(child["client_token"])
    assert child_client.auth.token.lookup_self()["data"]["ttl"] <= 2
    time.sleep(3)
    with pytest.raises(hvac.exceptions.Forbidden):
        child_client.auth.token.lookup_self()


def test_revoking_parent_revokes_child(dev_server):
    client = dev_server.client()
    client.sys.create_or_update_policy("token-maker", 'path "auth/token/create" { capabilities = ["update"] }')
    parent = client.auth.token.create(policies=["token-maker"], ttl="1h")["auth"]["client_token"]
    child = dev_server.client(parent).auth.token.create(ttl="1h")["auth"]["client_token"]
    assert dev_server.client(child).auth.token.lookup_self()["data"]["policies"] == ["default", "token-maker"]
    client.auth.token.revoke(parent)
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(child).auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        dev_server.client(parent).auth.token.lookup_self()
