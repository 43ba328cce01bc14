"""Leases end to end, with the test engine in tests/plugins/leasetest.py."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, timeout: float = 10.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def issue(server, name: str, **params) -> dict:
    r = server.request("GET", f"things/creds/{name}", token=server.root_token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def revocations(server, name: str) -> dict:
    r = server.request("GET", f"things/revocations/{name}", token=server.root_token)
    return r.json()["data"] if r.status_code == 200 else {}


def lookup(server, lease_id: str):
    return server.request("PUT", "sys/leases/lookup", token=server.root_token, json={"lease_id": lease_id})


def test_secret_gets_a_lease_and_expires(lease_server):
    s = lease_server
    body = issue(s, "short", ttl="2s")
    lease_id = body["lease_id"]
    assert lease_id.startswith("things/creds/short/")
    assert body["lease_duration"] == 2 and body["renewable"] is True
    info = lookup(s, lease_id).json()["data"]
    assert info["id"] == lease_id and info["ttl"] <= 2 and info["renewable"] is True
    issued_at = time.monotonic()
    wait_for(lambda: revocations(s, "short"), timeout=6)
    assert time.monotonic() - issued_at < 2 + 1.5  # revoked within ~1 s of expiring
    assert list(revocations(s, "short").values()) == [1]
    assert lookup(s, lease_id).status_code == 400


def test_renew_pushes_expiry_and_respects_max(lease_server):
    s = lease_server
    lease_id = issue(s, "renewme", ttl="3s", max_ttl="6s")["lease_id"]
    r = s.request("PUT", "sys/leases/renew", token=s.root_token, json={"lease_id": lease_id, "increment": "4s"})
    assert r.status_code == 200, r.text
    assert r.json()["lease_id"] == lease_id and r.json()["lease_duration"] == 4
    # The legacy spelling with the id in the path.
    r = s.request("PUT", f"sys/renew/{lease_id}", token=s.root_token, json={"increment": 60})
    assert r.status_code == 200 and r.json()["lease_duration"] <= 6 and r.json()["warnings"]
    time.sleep(6.5)
    # Past its max TTL it is gone (revoked) or refuses renewal; either way not extended.
    r = s.request("PUT", "sys/leases/renew", token=s.root_token, json={"lease_id": lease_id})
    assert r.status_code == 400


def test_unknown_and_unrenewable_leases(lease_server):
    s = lease_server
    r = s.request("PUT", "sys/leases/renew", token=s.root_token, json={"lease_id": "things/creds/x/nope"})
    assert r.status_code == 400 and r.json() == {"errors": ["invalid lease"]}
    r = s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": "things/creds/x/nope"})
    assert r.status_code == 400 and r.json() == {"errors": ["invalid lease"]}
    lease_id = issue(s, "fixed", ttl="1h", renewable="false")["lease_id"]
    r = s.request("PUT", "sys/leases/renew", token=s.root_token, json={"lease_id": lease_id})
    assert r.status_code == 400 and r.json() == {"errors": ["lease is not renewable"]}


def test_revoke_now_and_legacy_paths(lease_server):
    s = lease_server
    a = issue(s, "rev", ttl="1h")["lease_id"]
    b = issue(s, "rev", ttl="1h")["lease_id"]
    assert s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": a}).status_code == 204
    assert s.request("PUT", f"sys/revoke/{b}", token=s.root_token).status_code == 204
    assert sorted(revocations(s, "rev").values()) == [1, 1]
    assert lookup(s, a).status_code == 400


def test_leases_expired_while_down_are_revoked_once(lease_server):
    s = lease_server
    ids = [issue(s, "down", ttl="2s")["lease_id"] for _ in range(5)]
    keep = issue(s, "down-long", ttl="1h")["lease_id"]
    s.stop()
    # Nothing can revoke them while the server is down.
    time.sleep(3)
    s.start()
    assert s.request("GET", "sys/seal-status", token=None).json()["sealed"] is True
    s.request("PUT", "sys/unseal", token=None, json={"key": s.unseal_key}).raise_for_status()
    done = wait_for(lambda: len(revocations(s, "down")) == 5 and revocations(s, "down"), timeout=10)
    assert sorted(done.values()) == [1] * 5
    time.sleep(1.5)
    assert sorted(revocations(s, "down").values()) == [1] * 5  # nothing expires twice
    assert all(lookup(s, i).status_code == 400 for i in ids)
    assert lookup(s, keep).status_code == 200


def test_failing_revoke_is_retried_until_it_succeeds(lease_server):
    s = lease_server
    s.request("PUT", "things/config", token=s.root_token, json={"fail_times": 3}).raise_for_status()
    lease_id = issue(s, "flaky", ttl="1s")["lease_id"]
    # Attempts at ~1 s, then backoff of up to 1, 2, 4 s: revoked within ~10 s.
    done = wait_for(lambda: revocations(s, "flaky"), timeout=20, every=0.25)
    assert list(done.values()) == [1]
    assert lookup(s, lease_id).status_code == 400


@pytest.fixture
def short_retry_server(tmp_path):
    """A lease server whose failing revocations become irrevocable after 3 s (the default window is 24 h)."""
    from conftest import start_lease_server

    server = start_lease_server(tmp_path, 'revocation_retry_window = "3s"')
    yield server
    server.stop()


def test_always_failing_revoke_becomes_irrevocable_and_can_be_forced(short_retry_server):
    s = short_retry_server
    s.request("PUT", "things/config", token=s.root_token, json={"fail_always": True}).raise_for_status()
    lease_id = issue(s, "stuck", ttl="1h")["lease_id"]
    r = s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": lease_id})
    assert r.status_code == 400 and "refused to go" in r.json()["errors"][0]
    irrevocable = {"type": "irrevocable"}
    assert s.request("GET", "sys/leases", token=s.root_token, params=irrevocable).json()["data"]["leases"] == []
    # Retried (with backoff) for the retry window; after it the lease is listed as irrevocable.
    time.sleep(3.2)
    s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": lease_id})
    r = s.request("GET", "sys/leases", token=s.root_token, params=irrevocable)
    assert r.status_code == 200, r.text
    listed = r.json()["data"]["leases"]
    assert [entry["lease_id"] for entry in listed] == [lease_id]
    assert "refused to go" in listed[0]["error"] and listed[0]["attempts"] >= 2
    assert listed[0]["first_failure"] < listed[0]["last_attempt"] < listed[0]["next_attempt"]
    assert lookup(s, lease_id).status_code == 200  # never dropped
    r = s.request("PUT", "sys/leases/revoke-force/things/creds/stuck", token=s.root_token)
    assert r.status_code == 204
    assert lookup(s, lease_id).status_code == 400
    assert s.request("GET", "sys/leases", token=s.root_token, params=irrevocable).json()["data"]["leases"] == []


def test_failing_revokes_are_retried_for_the_window_not_six_times(lease_server):
    """A revocation failing many times in a row is still retried, not called irrevocable (default: 24 h)."""
    s = lease_server
    s.request("PUT", "things/config", token=s.root_token, json={"fail_times": 8}).raise_for_status()
    lease_id = issue(s, "patient", ttl="1h")["lease_id"]
    for _ in range(8):
        assert s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": lease_id}).status_code == 400
    assert s.request("GET", "sys/leases", token=s.root_token, params={"type": "irrevocable"}).json()[
        "data"]["leases"] == []
    assert s.request("PUT", "sys/leases/revoke", token=s.root_token, json={"lease_id": lease_id}).status_code == 204
    assert list(revocations(s, "patient").values()) == [1]


def test_token_revocation_revokes_its_leases_and_its_childrens(lease_server):
    s = lease_server
    s.request("PUT", "sys/policies/acl/things", token=s.root_token, json={"policy": '''
        path "things/creds/*" { capabilities = ["read"] }
        path "auth/token/create" { capabilities = ["update"] }'''}).raise_for_status()
    parent = s.request("POST", "auth/token/create", token=s.root_token,
                       json={"policies": ["things"]}).json()["auth"]["client_token"]
    child = s.request("POST", "auth/token/create", token=parent, json={}).json()["auth"]["client_token"]
    mine = s.request("GET", "things/creds/owned", token=parent).json()["lease_id"]
    childs = s.request("GET", "things/creds/owned", token=child).json()["lease_id"]
    other = issue(s, "owned", ttl="1h")["lease_id"]  # the root token's
    s.request("POST", "auth/token/revoke", token=s.root_token, json={"token": parent}).raise_for_status()
    assert lookup(s, mine).status_code == 400 and lookup(s, childs).status_code == 400
    assert lookup(s, other).status_code == 200
    assert len(revocations(s, "owned")) == 2


def test_unmount_revokes_the_mounts_leases(lease_server):
    s = lease_server
    s.request("POST", "sys/mounts/things2", token=s.root_token, json={"type": "leasetest"}).raise_for_status()
    lease_id = s.request("GET", "things2/creds/gone", token=s.root_token).json()["lease_id"]
    # A failing engine blocks the unmount instead of leaking the secret.
    s.request("PUT", "things2/config", token=s.root_token, json={"fail_always": True}).raise_for_status()
    r = s.request("DELETE", "sys/mounts/things2", token=s.root_token)
    assert r.status_code == 400 and "could not be revoked" in r.json()["errors"][0]
    s.request("PUT", "things2/config", token=s.root_token, json={"fail_always": False}).raise_for_status()
    assert s.request("DELETE", "sys/mounts/things2", token=s.root_token).status_code == 204
    assert lookup(s, lease_id).status_code == 400


def test_revoke_prefix_over_thousands_of_leases(lease_server):
    s = lease_server
    s.request("PUT", "things/config", token=s.root_token, json={"fail_prefix": "bulk-bad"}).raise_for_status()
    session = __import__("requests").Session()
    headers = {"X-Vault-Token": s.root_token}
    for _ in range(5000):
        r = session.get(s.url("things/creds/bulk"), headers=headers, params={"ttl": "1h"})
        assert r.status_code == 200
    for _ in range(5):
        session.get(s.url("things/creds/bulk-bad"), headers=headers, params={"ttl": "1h"})
    r = s.request("PUT", "sys/leases/revoke-prefix/things/creds/bulk", token=s.root_token)
    assert r.status_code == 200, r.text  # completes; the failures are reported and kept
    assert r.json()["data"] == {"revoked": 5000, "failed": 5}
    assert len(revocations(s, "bulk")) == 5000
    count = s.request("GET", "sys/leases/count", token=s.root_token, params={"prefix": "things/creds/"})
    assert count.json()["data"]["lease_count"] == 5


@pytest.mark.parametrize("path", ["sys/leases/revoke-prefix/things", "sys/leases/revoke-force/things"])
def test_prefix_revocation_needs_sudo(lease_server, path):
    s = lease_server
    s.request("PUT", "sys/policies/acl/nosudo", token=s.root_token,
              json={"policy": 'path "sys/*" { capabilities = ["update", "read"] }'}).raise_for_status()
    token = s.request("POST", "auth/token/create", token=s.root_token,
                      json={"policies": ["nosudo"]}).json()["auth"]["client_token"]
    assert s.request("PUT", path, token=token).status_code == 403


def test_revoke_prefix_async_returns_202(lease_server):
    s = lease_server
    for _ in range(50):
        issue(s, "later", ttl="1h")
    r = s.request("PUT", "sys/leases/revoke-prefix/things/creds/later", token=s.root_token, json={"sync": False})
    assert r.status_code == 202
    wait_for(lambda: len(revocations(s, "later")) == 50)


def test_remount_moves_leases_with_the_mount(lease_server):
    s = lease_server
    s.request("POST", "sys/mounts/movable", token=s.root_token, json={"type": "leasetest"}).raise_for_status()
    old = s.request("GET", "movable/creds/moved", token=s.root_token).json()["lease_id"]
    r = s.request("POST", "sys/remount", token=s.root_token, json={"from": "movable", "to": "moved"})
    assert r.status_code == 204, r.text
    new = "moved/" + old[len("movable/"):]
    assert lookup(s, old).status_code == 400 and lookup(s, new).status_code == 200
    # Unmounting the new path revokes the moved lease at the engine.
    assert s.request("DELETE", "sys/mounts/moved", token=s.root_token).status_code == 204
    assert lookup(s, new).status_code == 400
