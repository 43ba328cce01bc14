"""userpass through hvac on a real server."""

from __future__ import annotations

import uuid

import hvac
import pytest

from conftest import init_and_unseal


@pytest.fixture
def userpass(dev_server):
    client = dev_server.client()
    mount = f"up-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("userpass", path=mount)
    yield client, mount
    client.sys.disable_auth_method(mount)


def test_login_and_token(userpass, dev_server):
    client, mount = userpass
    client.auth.userpass.create_or_update_user("alice", password="pw1", policies=["foo-read"], mount_point=mount)
    client.write(f"auth/{mount}/users/alice", token_ttl="30m")
    assert client.auth.userpass.read_user("alice", mount_point=mount)["data"] == {
        "token_bound_cidrs": [], "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": False,
        "token_num_uses": 0, "token_period": 0, "token_policies": ["foo-read"], "token_strictly_bind_ip": False,
        "token_ttl": 1800, "token_type": "default"}
    app = hvac.Client(url=dev_server.addr)
    auth = app.auth.userpass.login("ALICE", "pw1", mount_point=mount)["auth"]  # names are case-insensitive
    assert auth["policies"] == ["default", "foo-read"] and auth["metadata"] == {"username": "alice"}
    assert auth["lease_duration"] == 1800 and auth["orphan"] is True
    me = app.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{mount}-alice" and me["path"] == f"auth/{mount}/login/ALICE"
    assert client.auth.userpass.list_user(mount_point=mount)["data"]["keys"] == ["alice"]


def test_wrong_user_and_wrong_password_answer_the_same(userpass, dev_server):
    client, mount = userpass
    client.auth.userpass.create_or_update_user("alice", password="pw1", mount_point=mount)
    answers = []
    for user, password in (("alice", "wrong"), ("nobody", "wrong")):
        r = dev_server.request("POST", f"auth/{mount}/login/{user}", token=None, json={"password": password})
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] == (400, {"errors": ["invalid username or password"]})


def test_password_change_and_policies(userpass, dev_server):
    client, mount = userpass
    client.auth.userpass.create_or_update_user("bob", password="old", mount_point=mount)
    client.auth.userpass.update_password_on_user("bob", "new", mount_point=mount)
    app = hvac.Client(url=dev_server.addr)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        app.auth.userpass.login("bob", "old", mount_point=mount)
    app.auth.userpass.login("bob", "new", mount_point=mount)
    # A renewal is refused once the user's policies changed (log in again for the new ones).
    dev_server.request("POST", f"auth/{mount}/users/bob/policies", json={"token_policies": ["a", "b"]})
    with pytest.raises(hvac.exceptions.InvalidRequest) as refused:
        app.auth.token.renew_self()
    assert "policies have changed" in str(refused.value)
    client.auth.userpass.delete_user("bob", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        app.auth.userpass.login("bob", "new", mount_point=mount)


def test_bad_input(userpass, dev_server):
    client, mount = userpass
    cases = [
        ("users/carol", {}, "must provide a password"),
        ("users/carol", {"password": "x", "token_type": "batch"}, "batch"),
        ("users/carol", {"password": "x", "token_bound_cidrs": "nope"}, "invalid token_bound_cidrs"),
        ("users/nobody/password", {"password": "x"}, 'username "nobody" does not exist'),
        ("login/carol", {}, "missing password"),
        ("users/carol", {"password": "x", "pasword": "typo"}, "unknown field"),
    ]
    for path, body, message in cases:
        r = dev_server.request("POST", f"auth/{mount}/{path}", token=None if path.startswith("login") else "root",
                               json=body)
        assert 400 <= r.status_code < 500 and message in r.json()["errors"][0], (path, r.text)
    assert dev_server.request("GET", f"auth/{mount}/users/carol").status_code == 404


def test_passwords_are_stored_hashed(sqlite_server, tmp_path):
    keys, root = init_and_unseal(sqlite_server)
    client = sqlite_server.client(root)
    client.sys.enable_auth_method("userpass")
    client.auth.userpass.create_or_update_user("alice", password="a-very-recognizable-password")
    assert hvac.Client(url=sqlite_server.addr).auth.userpass.login("alice", "a-very-recognizable-password")
    sqlite_server.stop()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("coffer.db*"))
    assert b"a-very-recognizable-password" not in raw


def test_the_mounts_tuned_ttls_reach_its_login_tokens(userpass, dev_server):
    client, mount = userpass
    client.sys.tune_auth_method(mount, default_lease_ttl="10m", max_lease_ttl="20m")
    client.auth.userpass.create_or_update_user("carol", password="pw", mount_point=mount)
    client.auth.userpass.create_or_update_user("dave", password="pw", token_ttl="1h", mount_point=mount)
    app = hvac.Client(url=dev_server.addr)
    # No token_ttl on the user: the mount's default; a longer token_ttl is cut to the mount's maximum.
    assert app.auth.userpass.login("carol", "pw", mount_point=mount)["auth"]["lease_duration"] == 600
    assert app.auth.userpass.login("dave", "pw", mount_point=mount)["auth"]["lease_duration"] == 1200
    assert app.auth.token.lookup_self()["data"]["explicit_max_ttl"] == 0
    r = dev_server.request("POST", "auth/token/renew-self", token=app.token, json={"increment": "2h"})
    assert r.status_code == 200 and r.json()["auth"]["lease_duration"] <= 1200, r.text
