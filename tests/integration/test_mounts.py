"""sys/mounts*, sys/remount, path help and the OpenAPI document over real HTTP."""

from __future__ import annotations

import uuid

import hvac
import pytest


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mount(server, path: str, engine: str = "kv", **body) -> None:
    r = server.request("POST", f"sys/mounts/{path}", json={"type": engine, **body})
    assert r.status_code == 204, r.text


def put_secret(server, path: str, data: dict) -> None:
    r = server.request("PUT", path, json=data)
    assert r.status_code == 204, r.text


# -- enabling -------------------------------------------------------------


@pytest.mark.parametrize("engine", ["kv", "generic"])
def test_enable_with_hvac(dev_server, engine):
    client = dev_server.client()
    path = unique(engine)
    client.sys.enable_secrets_engine(engine, path=path, description="team secrets",
                                     config={"default_lease_ttl": "1h"})
    mounts = client.sys.list_mounted_secrets_engines()
    assert f"{path}/" in mounts
    entry = mounts[f"{path}/"]
    assert entry["type"] == engine
    assert entry["description"] == "team secrets"
    assert entry["config"]["default_lease_ttl"] == 3600
    assert entry["accessor"].startswith(f"{engine}_")
    # The engine works under the new path.
    client.write(f"{path}/app", password="s3cret")
    assert client.read(f"{path}/app")["data"] == {"password": "s3cret"}


def test_enable_with_kv_version_1_option(dev_server):
    path = unique("kv1")
    dev_server.client().sys.enable_secrets_engine("kv", path=path, options={"version": "1"})
    assert dev_server.request("GET", f"sys/mounts/{path}").json()["data"]["options"] == {"version": "1"}


def test_mount_on_used_path(dev_server):
    path = unique("used")
    mount(dev_server, path)
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "kv"})
    assert r.status_code == 400, r.text
    assert f"path is already in use at {path}/" in r.json()["errors"][0]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        dev_server.client().sys.enable_secrets_engine("generic", path=path)


def test_nested_mount_conflicts(dev_server):
    outer = unique("outer")
    mount(dev_server, outer)
    # Under an existing mount.
    r = dev_server.request("POST", f"sys/mounts/{outer}/inner", json={"type": "kv"})
    assert r.status_code == 400, r.text
    assert f"{outer}/" in r.json()["errors"][0]
    # Above an existing mount.
    parent = unique("parent")
    mount(dev_server, f"{parent}/child")
    r = dev_server.request("POST", f"sys/mounts/{parent}", json={"type": "kv"})
    assert r.status_code == 400, r.text
    # A sibling sharing a name prefix (not a path prefix) is fine.
    mount(dev_server, f"{outer}x")


@pytest.mark.parametrize("path", ["sys", "sys/foo", "auth", "auth/token", "auth/something"])
def test_reserved_paths_refused(dev_server, path):
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "kv"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"]


def test_unknown_type_refused(dev_server):
    path = unique("bad")
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "no-such-engine"})
    assert r.status_code == 400, r.text
    assert "no-such-engine" in r.json()["errors"][0]
    assert f"{path}/" not in dev_server.request("GET", "sys/mounts").json()["data"]


def test_missing_type_refused(dev_server):
    r = dev_server.request("POST", f"sys/mounts/{unique()}", json={})
    assert r.status_code == 400, r.text
    assert "type" in r.json()["errors"][0]


@pytest.mark.parametrize("body", [{"type": "kv", "options": {"version": "2"}}, {"type": "kv", "options": {"version": 2}},
                                  {"type": "kv-v2"}])
def test_kv_version_2_mounts(dev_server, body):
    path = unique("kv2")
    r = dev_server.request("POST", f"sys/mounts/{path}", json=body)
    assert r.status_code == 204, r.text
    entry = dev_server.request("GET", f"sys/mounts/{path}").json()["data"]
    assert entry["type"] == "kv" and entry["options"] == {"version": "2"}


def test_kv_unknown_version_refused(dev_server):
    path = unique("kv3")
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "kv", "options": {"version": "3"}})
    assert r.status_code == 400, r.text
    assert "version" in r.json()["errors"][0]
    assert f"{path}/" not in dev_server.request("GET", "sys/mounts").json()["data"]


def test_kv_tune_to_version_2_upgrades_and_never_back(dev_server):
    path = unique("kvt")
    mount(dev_server, path)
    assert dev_server.request("PUT", f"{path}/old", json={"k": "v1-data"}).status_code == 204
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"options": {"version": "2"}})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == ["Upgrading mount from version 1 to version 2. This mount will be unavailable "
                                    "for a brief period and will resume service shortly."]
    assert dev_server.request("GET", f"sys/mounts/{path}").json()["data"]["options"]["version"] == "2"
    assert dev_server.request("GET", f"{path}/data/old").json()["data"]["data"] == {"k": "v1-data"}
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"options": {"version": "1"}})
    assert r.status_code == 400 and r.json()["errors"] == ["cannot downgrade mount from version 2"]
    assert dev_server.request("POST", f"sys/mounts/{path}/tune", json={"options": {"version": "2"}}).status_code == 204


def test_bad_ttl_in_config_refused(dev_server):
    r = dev_server.request("POST", f"sys/mounts/{unique()}",
                           json={"type": "kv", "config": {"default_lease_ttl": "forever"}})
    assert r.status_code == 400, r.text
    assert "default_lease_ttl" in r.json()["errors"][0]


def test_config_force_no_cache_string(dev_server):
    path = unique("fnc")
    mount(dev_server, path, config={"force_no_cache": "false"})
    assert dev_server.request("GET", f"sys/mounts/{path}").json()["data"]["config"]["force_no_cache"] is False
    path2 = unique("fnc")
    mount(dev_server, path2, config={"force_no_cache": True})
    assert dev_server.request("GET", f"sys/mounts/{path2}").json()["data"]["config"]["force_no_cache"] is True


# -- reading --------------------------------------------------------------


def test_list_mounts_shape(dev_server):
    path = unique("list")
    mount(dev_server, path, description="listed")
    body = dev_server.request("GET", "sys/mounts").json()
    assert f"{path}/" in body["data"] and "sys/" in body["data"]
    # Vault also copies every mount to the top level (hvac and older clients read it there).
    assert body[f"{path}/"] == body["data"][f"{path}/"]
    assert body["sys/"]["type"] == "system"
    assert body["request_id"] and body["lease_id"] == "" and body["renewable"] is False
    assert body["data"][f"{path}/"]["description"] == "listed"
    for key in ("accessor", "config", "description", "local", "options", "seal_wrap", "type", "uuid"):
        assert key in body["data"][f"{path}/"], key


def test_read_one_mount(dev_server):
    client = dev_server.client()
    path = unique("one")
    mount(dev_server, path, description="just one")
    r = dev_server.request("GET", f"sys/mounts/{path}")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["type"] == "kv" and r.json()["data"]["description"] == "just one"
    assert r.json()["type"] == "kv"  # top-level copy too
    assert client.sys.read_mount_configuration(path)["data"]["default_lease_ttl"] > 0


def test_read_unknown_mount(dev_server):
    r = dev_server.request("GET", f"sys/mounts/{unique('nope')}")
    assert r.status_code in (400, 404), r.text


# -- tune -----------------------------------------------------------------


def test_tune_read_and_write(dev_server):
    path = unique("tune")
    mount(dev_server, path)
    r = dev_server.request("POST", f"sys/mounts/{path}/tune",
                           json={"default_lease_ttl": "1h", "max_lease_ttl": "2h", "description": "tuned"})
    assert r.status_code == 204, r.text
    data = dev_server.request("GET", f"sys/mounts/{path}/tune").json()["data"]
    assert data["default_lease_ttl"] == 3600
    assert data["max_lease_ttl"] == 7200
    assert data["description"] == "tuned"
    listed = dev_server.request("GET", "sys/mounts").json()["data"][f"{path}/"]
    assert listed["config"]["default_lease_ttl"] == 3600 and listed["config"]["max_lease_ttl"] == 7200
    # hvac's view.
    client = dev_server.client()
    client.sys.tune_mount_configuration(path, default_lease_ttl="30m")
    assert client.sys.read_mount_configuration(path)["data"]["default_lease_ttl"] == 1800
    assert client.sys.read_mount_configuration(path)["data"]["max_lease_ttl"] == 7200
    # Numbers of seconds are accepted too.
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"default_lease_ttl": 600})
    assert r.status_code == 204, r.text
    assert dev_server.request("GET", f"sys/mounts/{path}/tune").json()["data"]["default_lease_ttl"] == 600


def test_tune_default_above_max_refused(dev_server):
    path = unique("tunebad")
    mount(dev_server, path)
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"default_lease_ttl": "3h", "max_lease_ttl": "2h"})
    assert r.status_code == 400, r.text
    dev_server.request("POST", f"sys/mounts/{path}/tune", json={"max_lease_ttl": "2h"})
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"default_lease_ttl": "3h"})
    assert r.status_code == 400, r.text
    data = dev_server.request("GET", f"sys/mounts/{path}/tune").json()["data"]
    assert data["max_lease_ttl"] == 7200 and data["default_lease_ttl"] != 3 * 3600


def test_tune_bad_duration_refused(dev_server):
    path = unique("tunedur")
    mount(dev_server, path)
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"max_lease_ttl": "a while"})
    assert r.status_code == 400, r.text


def test_tune_unknown_mount(dev_server):
    r = dev_server.request("POST", f"sys/mounts/{unique('ghost')}/tune", json={"default_lease_ttl": "1h"})
    assert r.status_code == 400, r.text


def test_tune_system_mounts_readable(dev_server):
    for path in ("sys", "auth/token"):
        r = dev_server.request("GET", f"sys/mounts/{path}/tune")
        assert r.status_code == 200, (path, r.text)
        assert r.json()["data"]["max_lease_ttl"] > 0


# -- remount / unmount ---------------------------------------------------------


def test_remount_moves_data(dev_server):
    src, dst = unique("src"), unique("dst")
    mount(dev_server, src)
    put_secret(dev_server, f"{src}/team/db", {"password": "p1"})
    dev_server.client().sys.move_backend(src, dst)
    r = dev_server.request("GET", f"{dst}/team/db")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"password": "p1"}
    assert dev_server.request("GET", f"{src}/team/db").status_code == 404
    mounts = dev_server.request("GET", "sys/mounts").json()["data"]
    assert f"{dst}/" in mounts and f"{src}/" not in mounts
    # The old path is free again.
    mount(dev_server, src)
    assert dev_server.request("GET", f"{src}/team/db").status_code == 404


def test_remount_refusals(dev_server):
    a, b = unique("ra"), unique("rb")
    mount(dev_server, a)
    mount(dev_server, b)
    # Onto an existing mount.
    assert dev_server.request("POST", "sys/remount", json={"from": a, "to": b}).status_code == 400
    # Under an existing mount.
    assert dev_server.request("POST", "sys/remount", json={"from": a, "to": f"{b}/x"}).status_code == 400
    # Into a reserved path.
    assert dev_server.request("POST", "sys/remount", json={"from": a, "to": "sys/x"}).status_code == 400
    # From nowhere.
    assert dev_server.request("POST", "sys/remount", json={"from": unique("none"), "to": unique()}).status_code == 400
    # Missing fields.
    assert dev_server.request("POST", "sys/remount", json={"from": a}).status_code == 400
    # Nothing moved.
    mounts = dev_server.request("GET", "sys/mounts").json()["data"]
    assert f"{a}/" in mounts and f"{b}/" in mounts


def test_unmount_deletes_data(dev_server):
    path = unique("gone")
    mount(dev_server, path)
    put_secret(dev_server, f"{path}/secret", {"k": "v"})
    dev_server.client().sys.disable_secrets_engine(path)
    assert f"{path}/" not in dev_server.request("GET", "sys/mounts").json()["data"]
    assert dev_server.request("GET", f"{path}/secret").status_code == 404
    mount(dev_server, path)
    assert dev_server.request("GET", f"{path}/secret").status_code == 404
    assert dev_server.request("LIST", f"{path}/").status_code == 404


def test_unmount_unknown_is_harmless(dev_server):
    r = dev_server.request("DELETE", f"sys/mounts/{unique('never')}")
    assert r.status_code == 204, r.text


# -- help and OpenAPI -------------------------------------------------------------


def test_help_on_sys_path(dev_server):
    r = dev_server.request("GET", "sys/mounts/anything?help=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["help"], str) and body["help"]
    assert "type" in body["help"]
    assert body["openapi"]["openapi"].startswith("3.")
    assert "/sys/mounts/{path}" in body["openapi"]["paths"]


def test_help_on_kv_mount(dev_server):
    path = unique("help")
    mount(dev_server, path)
    for probe in (path, f"{path}/", f"{path}/some/secret"):
        r = dev_server.request("GET", f"{probe}?help=1")
        assert r.status_code == 200, (probe, r.text)
        body = r.json()
        assert "kv" in body["help"].lower() or "secret" in body["help"].lower()
        assert f"/{path}/{{path}}" in body["openapi"]["paths"], body["openapi"]["paths"].keys()


def test_help_needs_a_token(dev_server):
    assert dev_server.request("GET", "sys/mounts?help=1", token=None).status_code == 403


def test_openapi_document(dev_server):
    path = unique("spec")
    mount(dev_server, path)
    r = dev_server.request("GET", "sys/internal/specs/openapi")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "/sys/mounts/{path}" in paths
    assert "/sys/mounts/{path}/tune" in paths
    assert "/auth/token/create" in paths
    kv_path = f"/{path}/{{path}}"
    assert kv_path in paths
    item = paths["/sys/mounts/{path}"]
    assert {"get", "post", "delete"} <= set(item)
    assert item["parameters"][0]["name"] == "path" and item["parameters"][0]["in"] == "path"
    props = item["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert props["type"]["type"] == "string"
    assert {"get", "post", "delete"} <= set(paths[kv_path])
    # Unmounted engines leave the document.
    dev_server.request("DELETE", f"sys/mounts/{path}")
    assert kv_path not in dev_server.request("GET", "sys/internal/specs/openapi").json()["paths"]


def test_default_ttl_above_server_max_refused(dev_server):
    path = unique("huge")
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "kv", "config": {"default_lease_ttl": "100000h"}})
    assert r.status_code == 400, r.text
    mount(dev_server, path)
    r = dev_server.request("POST", f"sys/mounts/{path}/tune", json={"default_lease_ttl": "100000h"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("path", ["sys", "auth/token"])
def test_system_mounts_cannot_be_unmounted(dev_server, path):
    r = dev_server.request("DELETE", f"sys/mounts/{path}")
    assert r.status_code == 400, r.text
    assert dev_server.request("GET", "sys/mounts").status_code == 200


def test_kv_read_lease_duration_hint_follows_mount_tune(dev_server):
    # Vault's kv v1 answers lease_duration = the secret's "ttl" key, else the mount default.
    path = unique("hint")
    mount(dev_server, path)
    put_secret(dev_server, f"{path}/plain", {"v": "1"})
    put_secret(dev_server, f"{path}/timed", {"v": "1", "ttl": "30m"})
    assert dev_server.request("GET", f"{path}/plain").json()["lease_duration"] == 768 * 3600
    dev_server.request("POST", f"sys/mounts/{path}/tune", json={"default_lease_ttl": "1h"})
    plain = dev_server.request("GET", f"{path}/plain").json()
    assert plain["lease_duration"] == 3600 and plain["lease_id"] == "" and plain["renewable"] is False
    timed = dev_server.request("GET", f"{path}/timed").json()
    assert timed["lease_duration"] == 1800 and timed["data"] == {"v": "1", "ttl": "30m"}


def test_help_on_token_path(dev_server):
    r = dev_server.request("GET", "auth/token/create?help=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "ttl (duration)" in body["help"] and "policies" in body["help"]
    assert "/auth/token/create" in body["openapi"]["paths"]


def test_help_on_unmounted_path_is_404(dev_server):
    assert dev_server.request("GET", f"{unique('nomount')}/x?help=1").status_code == 404
