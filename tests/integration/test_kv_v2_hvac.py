"""hvac's ``client.secrets.kv.v2`` against the dev server's ``secret/`` (kv version 2, as Vault's dev server),
and a kv version 1 mount upgraded to version 2 keeping its data (the store of an older coffer: test_upgrade)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import hvac
import pytest
import requests

from conftest import init_and_unseal


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kv(dev_server):
    return dev_server.client().secrets.kv.v2


def test_dev_server_mounts_kv_version_2_at_secret(dev_server):
    mounts = dev_server.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv" and mounts["secret/"]["options"] == {"version": "2"}


def test_create_read_versions(kv):
    path = unique("hvac/app")
    first = kv.create_or_update_secret(path, secret={"user": "alice", "pw": "s3cret"})
    assert first["data"]["version"] == 1
    kv.create_or_update_secret(path, secret={"user": "alice", "pw": "n3w"})
    read = kv.read_secret_version(path, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"user": "alice", "pw": "n3w"} and read["data"]["metadata"]["version"] == 2
    old = kv.read_secret_version(path, version=1, raise_on_deleted_version=True)
    assert old["data"]["data"]["pw"] == "s3cret"
    # hvac's default read (read_secret) works too
    assert kv.read_secret(path, raise_on_deleted_version=True)["data"]["data"]["pw"] == "n3w"


def test_hvacs_default_kv_is_version_2(dev_server):
    """What a Vault tutorial does first: hvac's client.secrets.kv without naming the version."""
    client = dev_server.client()
    path = unique("hvac/hello")
    client.secrets.kv.create_or_update_secret(path, secret={"foo": "bar"})
    assert client.secrets.kv.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"] == {
        "foo": "bar"}


def test_cas_conflict_is_400_with_vaults_message(kv):
    path = unique("hvac/cas")
    kv.create_or_update_secret(path, secret={"a": 1}, cas=0)
    with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
        kv.create_or_update_secret(path, secret={"a": 2}, cas=0)
    assert caught.value.errors == ["check-and-set parameter did not match the current version"]
    kv.create_or_update_secret(path, secret={"a": 2}, cas=1)
    kv.update_metadata(path, cas_required=True)
    with pytest.raises(hvac.exceptions.InvalidRequest) as caught:
        kv.create_or_update_secret(path, secret={"a": 3})
    assert caught.value.errors == ["check-and-set parameter required for this call"]


def test_patch(kv):
    path = unique("hvac/patch")
    kv.create_or_update_secret(path, secret={"a": "1", "b": "2"})
    kv.patch(path, secret={"b": "changed", "c": "3"})
    assert kv.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"] == {
        "a": "1", "b": "changed", "c": "3"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.patch(unique("hvac/none"), secret={"a": 1})


def test_merge_patch_over_http(dev_server):
    path = unique("hvac/merge")
    dev_server.request("POST", f"secret/data/{path}", json={"data": {"a": "1", "n": 2}}).raise_for_status()
    r = dev_server.request("PATCH", f"secret/data/{path}", json={"data": {"n": None, "b": "new"}},
                           headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["data"]["version"] == 2
    assert dev_server.request("GET", f"secret/data/{path}").json()["data"]["data"] == {"a": "1", "b": "new"}


def test_delete_undelete_destroy(kv):
    path = unique("hvac/life")
    for i in range(3):
        kv.create_or_update_secret(path, secret={"i": i})
    kv.delete_latest_version_of_secret(path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(path, raise_on_deleted_version=True)
    deleted = kv.read_secret_version(path, raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"]
    kv.undelete_secret_versions(path, versions=[3])
    assert kv.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"] == {"i": 2}
    kv.delete_secret_versions(path, versions=[1])
    kv.destroy_secret_versions(path, versions=[2])
    versions = kv.read_secret_metadata(path)["data"]["versions"]
    assert versions["1"]["deletion_time"] and not versions["1"]["destroyed"]
    assert versions["2"]["destroyed"] is True and versions["3"]["deletion_time"] == ""
    kv.delete_metadata_and_all_versions(path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata(path)


def test_metadata_and_list(kv):
    folder = unique("hvac-list")
    kv.create_or_update_secret(f"{folder}/one", secret={"a": 1})
    kv.create_or_update_secret(f"{folder}/sub/two", secret={"a": 1})
    assert kv.list_secrets(folder)["data"]["keys"] == ["one", "sub/"]
    kv.update_metadata(f"{folder}/one", max_versions=3, custom_metadata={"owner": "ops"},
                       delete_version_after="30m")
    meta = kv.read_secret_metadata(f"{folder}/one")["data"]
    assert meta["max_versions"] == 3 and meta["custom_metadata"] == {"owner": "ops"}
    assert meta["delete_version_after"] == "30m0s" and meta["current_version"] == 1


def test_mount_config(dev_server):
    mount = unique("kv2-config")
    client = dev_server.client()
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    client.secrets.kv.v2.configure(max_versions=4, cas_required=False, mount_point=mount)
    config = client.secrets.kv.v2.read_configuration(mount_point=mount)["data"]
    assert config == {"cas_required": False, "delete_version_after": "0s", "max_versions": 4}


def test_version_1_mount_upgraded_to_version_2_keeps_its_data(dev_server):
    client = dev_server.client()
    mount = unique("kv-up")
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    client.secrets.kv.v1.create_or_update_secret("team/db", {"password": "hunter2"}, mount_point=mount)
    client.secrets.kv.v1.create_or_update_secret("api", {"key": "k"}, mount_point=mount)
    client.sys.tune_mount_configuration(mount, options={"version": "2"})
    kv = client.secrets.kv.v2
    assert kv.read_secret_version("team/db", mount_point=mount, raise_on_deleted_version=True)["data"]["data"] == {
        "password": "hunter2"}
    assert kv.list_secrets("", mount_point=mount)["data"]["keys"] == ["api", "team/"]
    kv.create_or_update_secret("api", secret={"key": "k2"}, cas=1, mount_point=mount)
    assert kv.read_secret_metadata("api", mount_point=mount)["data"]["current_version"] == 2


def test_concurrent_writes_of_one_key_on_sqlite_all_land(sqlite_server):
    """32 clients writing one secret at once on SQLite (group commit: many writes share a transaction): every
    write is acknowledged and becomes its own version (the bench saw 503s for lost races before)."""
    _, root = init_and_unseal(sqlite_server)
    sqlite_server.request("POST", "sys/mounts/kv2", token=root, json={"type": "kv-v2"}).raise_for_status()
    session = requests.Session()

    def writer(worker: int) -> list[int]:
        with requests.Session() as s:
            return [s.put(sqlite_server.url("kv2/data/hot"), headers={"X-Vault-Token": root},
                          json={"data": {"worker": worker, "n": n}}, timeout=60).status_code for n in range(15)]

    with ThreadPoolExecutor(32) as pool:
        statuses = [code for codes in pool.map(writer, range(32)) for code in codes]
    assert statuses == [200] * (32 * 15)
    meta = session.get(sqlite_server.url("kv2/metadata/hot"), headers={"X-Vault-Token": root}, timeout=10).json()
    assert meta["data"]["current_version"] == 32 * 15
