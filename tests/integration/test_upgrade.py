"""A store written by an earlier coffer still unseals and serves (tests/fixtures/store-*)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import PLUGIN_DIR, CofferProcess, free_port, write_config

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def old_store(tmp_path: Path):
    """A server on a copy of the store made before the core-shape change (tests/fixtures/store-v1)."""
    manifest = json.loads((FIXTURES / "store-v1" / "manifest.json").read_text())
    shutil.copy(FIXTURES / "store-v1" / "coffer.db", tmp_path / "coffer.db")
    port = free_port()
    config = write_config(tmp_path, port, extra=f'plugin_directory = "{PLUGIN_DIR}"')
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    for key in manifest["unseal_keys"][: manifest["threshold"]]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    yield server, manifest
    server.stop()


def test_store_v1_unseals_and_serves(old_store):
    server, manifest = old_store
    root = manifest["root_token"]
    assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is False
    for path, value in manifest["kv"].items():
        assert server.request("GET", path, token=root).json()["data"] == value
    # the reader token still works, within its policy only
    reader = manifest["reader_token"]
    assert server.request("GET", "kv1/hello", token=reader).json()["data"] == {"value": "world"}
    assert server.request("PUT", "kv1/hello", token=reader, json={"value": "x"}).status_code == 403
    # the AWS mount kept its config (secret key never shown) and role
    config = server.request("GET", "aws/config/root", token=root).json()["data"]
    assert config["access_key"] == "AKIAFIXTURE" and "secret_key" not in config
    assert server.request("GET", "aws/roles/deploy", token=root).json()["data"]["credential_type"] == "iam_user"
    # the lease is still known, and revocable through its engine
    lease = server.request("PUT", "sys/leases/lookup", token=root, json={"lease_id": manifest["lease_id"]})
    assert lease.status_code == 200 and lease.json()["data"]["ttl"] > 0
    revoked = server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": manifest["lease_id"]})
    assert revoked.status_code == 204
    assert list(server.request("GET", "things/revocations/fixture", token=root).json()["data"].values()) == [1]


def test_store_v1_gains_the_builtin_mounts(old_store):
    server, manifest = old_store
    root = manifest["root_token"]
    mounts = server.request("GET", "sys/mounts", token=root).json()["data"]
    assert {"sys/", "cubbyhole/", "kv1/", "aws/", "things/"} <= set(mounts)
    assert mounts["kv1/"]["description"] == "old kv"
    assert mounts["sys/"]["type"] == "system" and mounts["cubbyhole/"]["type"] == "cubbyhole"
    auth = server.request("GET", "sys/auth", token=root).json()["data"]
    assert set(auth) == {"token/"} and auth["token/"]["type"] == "token"
    # the built-in entries are kept: the same accessors after a restart
    server.stop()
    server.start()
    for key in manifest["unseal_keys"][: manifest["threshold"]]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    again = server.request("GET", "sys/mounts", token=root).json()["data"]
    assert again["cubbyhole/"]["accessor"] == mounts["cubbyhole/"]["accessor"]
    assert again["sys/"]["uuid"] == mounts["sys/"]["uuid"]


def test_store_of_an_older_coffer_upgrades_its_kv_mount(old_store):
    server, manifest = old_store
    root = manifest["root_token"]
    r = server.request("POST", "sys/mounts/kv1/tune", token=root, json={"options": {"version": "2"}})
    assert r.status_code == 200, r.text
    for path, value in manifest["kv"].items():
        rel = path.split("/", 1)[1]
        assert server.request("GET", f"kv1/data/{rel}", token=root).json()["data"]["data"] == value
    # and after a restart (the upgrade is not done twice, the data stays)
    server.stop()
    server.start()
    for key in manifest["unseal_keys"][: manifest["threshold"]]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    for path, value in manifest["kv"].items():
        rel = path.split("/", 1)[1]
        body = server.request("GET", f"kv1/data/{rel}", token=root).json()["data"]
        assert body["data"] == value and body["metadata"]["version"] == 1


def _live_leases(server, root: str) -> dict[str, float]:
    gauges = server.request("GET", "sys/metrics", token=root).json()["Gauges"]
    return {g["Labels"]["mount"]: g["Value"] for g in gauges if g["Name"] == "coffer_leases_live"}


def test_store_v1_gets_lease_counters_once(old_store):
    """The store predates the lease counters: they are computed at the first unseal, then kept."""
    server, manifest = old_store
    root = manifest["root_token"]
    mount = manifest["lease_id"].split("/", 1)[0] + "/"
    assert _live_leases(server, root) == {mount: 1}
    assert server.log().count("counting 1 lease(s) once for the lease metrics") == 1
    server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": manifest["lease_id"]}).raise_for_status()
    assert _live_leases(server, root) == {mount: 0}
    server.stop()
    server.start()
    for key in manifest["unseal_keys"][: manifest["threshold"]]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    assert _live_leases(server, root) == {}  # kept at 0 (nothing stored), not counted again
    assert server.log().count("counting 1 lease(s) once") == 1
