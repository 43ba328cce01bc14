"""sys/metrics after a scripted workload, checked by value and parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from aws_support import MINIMAL_ROOT_POLICY
from conftest import CofferProcess, free_port, init_and_unseal, start_lease_server, write_config

TELEMETRY = 'telemetry {\n  prometheus_retention_time = "1h"\n}\n'


def scrape(server: CofferProcess, token: str | None) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``sys/metrics?format=prometheus``, by (name, labels)."""
    r = server.request("GET", "sys/metrics", token=token, params={"format": "prometheus"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def server(tmp_path):
    s = start_lease_server(tmp_path, extra=TELEMETRY)
    yield s
    s.stop()


def issue(server: CofferProcess, name: str, n: int = 1) -> list[str]:
    leases = []
    for _ in range(n):
        r = server.request("GET", f"things/creds/{name}", token=server.root_token)
        assert r.status_code == 200, r.text
        leases.append(r.json()["lease_id"])
    return leases


def test_a_workload_by_value(server):
    root = server.root_token
    issue(server, "alpha", 3)
    m = scrape(server, root)
    assert value(m, "coffer_leases_live", mount="things/", role="") == 3
    assert value(m, "coffer_core_unsealed") == 1
    # Every request so far is counted by mount type, operation and status class.
    assert value(m, "coffer_http_requests_total", mount_type="leasetest", operation="read", status="2xx") == 3
    assert value(m, "coffer_http_request_duration_seconds_count", mount_type="leasetest", operation="read",
                 status="2xx") == 3
    assert value(m, "coffer_http_request_duration_seconds_bucket", mount_type="leasetest", operation="read",
                 status="2xx", le="+Inf") == 3
    assert server.request("GET", "things/nothing-here", token=root).status_code == 404
    assert server.request("GET", "things/creds/x", token="not-a-token").status_code == 403
    m = scrape(server, root)
    assert value(m, "coffer_http_requests_total", mount_type="leasetest", operation="read", status="4xx") == 2
    assert value(m, "coffer_tokens") == 1  # the root token
    assert value(m, "coffer_wal_entries_pending", mount="things/") == 0

    # revoke-prefix: the gauge drops to 0 and the revocations are counted.
    assert server.request("PUT", "sys/leases/revoke-prefix/things/creds/alpha", token=root).status_code == 204
    m = scrape(server, root)
    assert value(m, "coffer_leases_live", mount="things/", role="") == 0
    assert value(m, "coffer_leases_revoked_total", mount="things/", role="") == 3

    # A lease that expires is counted as expired, and a failing revocation as a failure.
    server.request("PUT", "things/config", token=root, json={"fail_times": 1}).raise_for_status()
    server.request("GET", "things/creds/beta", token=root, params={"ttl": "1s"}).raise_for_status()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = scrape(server, root)
        if value(m, "coffer_leases_expired_total", mount="things/", role=""):
            break
        time.sleep(0.3)
    assert value(m, "coffer_leases_expired_total", mount="things/", role="") == 1
    assert value(m, "coffer_lease_revocation_failures_total", mount="things/", role="") == 1
    assert value(m, "coffer_leases_live", mount="things/", role="") == 0
    # Labels never carry a token or a lease id.
    text = server.request("GET", "sys/metrics", token=root, params={"format": "prometheus"}).text
    assert root not in text and "things/creds/alpha/" not in text


def test_live_leases_survive_a_restart(server):
    root = server.root_token
    issue(server, "keep", 2)
    server.stop()
    server.start()
    server.request("PUT", "sys/unseal", token=None, json={"key": server.unseal_key}).raise_for_status()
    assert value(scrape(server, root), "coffer_leases_live", mount="things/", role="") == 2
    issue(server, "keep", 1)
    assert value(scrape(server, root), "coffer_leases_live", mount="things/", role="") == 3
    server.request("PUT", "sys/leases/revoke-prefix/things/", token=root).raise_for_status()
    assert value(scrape(server, root), "coffer_leases_live", mount="things/", role="") == 0


def test_formats_and_who_may_read(server):
    root = server.root_token
    # Vault's JSON form without the parameter.
    body = server.request("GET", "sys/metrics", token=root).json()
    assert set(body) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    gauges = {g["Name"]: g for g in body["Gauges"]}
    assert gauges["coffer_core_unsealed"]["Value"] == 1
    assert any(s["Name"] == "coffer_http_request_duration_seconds" and s["Count"] >= 1 for s in body["Samples"])
    bad = server.request("GET", "sys/metrics", token=root, params={"format": "xml"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/plain")
    assert 'metric response format "xml" unknown' in bad.text
    # A token is needed (this listener does not open metrics), and a policy allowing it.
    assert server.request("GET", "sys/metrics", token=None).status_code == 403
    server.request("PUT", "sys/policies/acl/metrics", token=root,
                   json={"policy": 'path "sys/metrics" {\n  capabilities = ["read"]\n}\n'}).raise_for_status()
    reader = server.request("POST", "auth/token/create", token=root, json={"policies": ["metrics"]}
                            ).json()["auth"]["client_token"]
    assert value(scrape(server, reader), "coffer_core_unsealed") == 1
    other = server.request("POST", "auth/token/create", token=root, json={"policies": ["default"]}
                           ).json()["auth"]["client_token"]
    assert server.request("GET", "sys/metrics", token=other).status_code == 403


def test_prometheus_needs_a_telemetry_block_and_listener_can_open_metrics(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port)
    s = CofferProcess(["-config", str(config)], port, tmp_path).start()
    try:
        _, root = init_and_unseal(s)
        r = s.request("GET", "sys/metrics", token=root, params={"format": "prometheus"})
        assert r.status_code == 400 and "prometheus is not enabled" in r.text
        assert s.request("GET", "sys/metrics", token=root).status_code == 200  # JSON still works
    finally:
        s.stop()
    # unauthenticated_metrics_access: no token needed, even while sealed.
    port = free_port()
    storage = f'storage "sqlite" {{\n  path = "{tmp_path / "open.db"}"\n}}'
    config = tmp_path / "open.hcl"
    config.write_text(f'{storage}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
                      f'  telemetry {{\n    unauthenticated_metrics_access = true\n  }}\n}}\n{TELEMETRY}')
    s = CofferProcess(["-config", str(config)], port, tmp_path).start()
    try:
        m = scrape(s, None)
        assert value(m, "coffer_core_unsealed") == 0
        init_and_unseal(s)
        assert value(scrape(s, None), "coffer_core_unsealed") == 1
    finally:
        s.stop()


def test_list_after_and_limit(server):
    root = server.root_token
    server.request("POST", "sys/mounts/kvp", token=root, json={"type": "kv"}).raise_for_status()
    for n in range(1, 21):
        server.request("PUT", f"kvp/k{n:02d}", token=root, json={"v": "x"}).raise_for_status()
    server.request("PUT", "kvp/dir/x", token=root, json={"v": "x"}).raise_for_status()

    def keys(path: str, **query) -> tuple[int, list[str]]:
        r = requests.request("LIST", server.url(path), headers={"X-Vault-Token": root}, params=query, timeout=10)
        return r.status_code, (r.json().get("data") or {}).get("keys", []) if r.status_code == 200 else []

    assert keys("kvp/")[1][:2] == ["dir/", "k01"] and len(keys("kvp/")[1]) == 21
    assert keys("kvp/", limit=5) == (200, ["dir/", "k01", "k02", "k03", "k04"])
    assert keys("kvp/", after="k05", limit=5) == (200, ["k06", "k07", "k08", "k09", "k10"])
    assert keys("kvp/", after="k18") == (200, ["k19", "k20"])
    assert keys("kvp/", after="dir", limit=2) == (200, ["dir/", "k01"])
    assert keys("kvp/", after="zzz") == (404, [])
    assert len(keys("kvp/", limit=0)[1]) == 21 and len(keys("kvp/", limit=-1)[1]) == 21
    bad = requests.request("LIST", server.url("kvp/"), headers={"X-Vault-Token": root}, params={"limit": "abc"},
                           timeout=10)
    assert bad.status_code == 400 and "limit must be a whole number" in bad.json()["errors"][0]
    # GET ?list=true pages the same way; sys/leases/lookup pages in storage.
    r = server.request("GET", "kvp/", token=root, params={"list": "true", "after": "k10", "limit": 2})
    assert r.json()["data"]["keys"] == ["k11", "k12"]
    leases = sorted(lease.rsplit("/", 1)[1] for lease in issue(server, "paged", 7))
    assert keys("sys/leases/lookup/things/creds/paged/", limit=3) == (200, leases[:3])
    assert keys("sys/leases/lookup/things/creds/paged/", after=leases[2], limit=3) == (200, leases[3:6])
    assert keys("sys/leases/lookup/things/creds/paged/", after=leases[5], limit=3) == (200, leases[6:])
    assert keys("sys/leases/lookup/things/", limit=10) == (200, ["creds/"])


@pytest.fixture
def aws_server(sqlite_server, moto):
    sqlite_server.stop()
    config = write_config(sqlite_server.home, sqlite_server.port, extra=TELEMETRY)
    sqlite_server.args = ["-config", str(config)]
    sqlite_server.start()
    _, root = init_and_unseal(sqlite_server)
    sqlite_server.root_token = root
    sqlite_server.request("POST", "sys/mounts/aws", token=root, json={"type": "aws"}).raise_for_status()
    key = moto.make_user(f"metrics-root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY)
    sqlite_server.aws_key = key
    sqlite_server.request("POST", "aws/config/root", token=root, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}).raise_for_status()
    return sqlite_server


def test_aws_calls_and_leases_by_role(aws_server, moto):
    root = aws_server.root_token
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}
    aws_server.request("POST", "aws/roles/deploy", token=root, json={
        "credential_type": "iam_user", "policy_document": json.dumps(policy)}).raise_for_status()
    creds = [aws_server.request("GET", "aws/creds/deploy", token=root).json() for _ in range(2)]
    m = scrape(aws_server, root)
    assert value(m, "coffer_leases_live", mount="aws/", role="deploy") == 2
    assert value(m, "coffer_aws_calls_total", service="iam", action="CreateUser", outcome="ok") == 2
    assert value(m, "coffer_aws_call_duration_seconds_count", service="iam", action="CreateAccessKey",
                 outcome="ok") == 2
    user = moto.user_of(creds[0]["data"]["access_key"])
    aws_server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": creds[0]["lease_id"]}
                       ).raise_for_status()
    m = scrape(aws_server, root)
    assert value(m, "coffer_leases_live", mount="aws/", role="deploy") == 1
    assert value(m, "coffer_leases_revoked_total", mount="aws/", role="deploy") == 1
    assert value(m, "coffer_aws_calls_total", service="iam", action="DeleteUser", outcome="ok") == 1
    text = aws_server.request("GET", "sys/metrics", token=root, params={"format": "prometheus"}).text
    assert user not in text and creds[0]["data"]["secret_key"] not in text
    # The log has one line for the revocation, naming the IAM user the engine deleted.
    lines = [line for line in aws_server.log().splitlines() if "revoked (mount aws/" in line]
    assert len(lines) == 1 and f"iam_user_deleted={user}" in lines[0]
    assert creds[0]["lease_id"] not in lines[0]  # a prefix of the id only


def test_irrevocable_leases_are_counted(tmp_path):
    """A lease whose revocation keeps failing past the retry window (1 s here) shows in the irrevocable gauge,
    still counted as live, until it is forced away."""
    s = start_lease_server(tmp_path, extra=TELEMETRY + 'revocation_retry_window = "1s"\n')
    try:
        root = s.root_token
        s.request("PUT", "things/config", token=root, json={"fail_always": True}).raise_for_status()
        stuck = issue(s, "stuck")[0]
        issue(s, "fine")
        assert s.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": stuck}).status_code == 400
        m = scrape(s, root)
        assert (value(m, "coffer_leases_irrevocable", mount="things/", role="") or 0) == 0
        assert value(m, "coffer_leases_live", mount="things/", role="") == 2
        # Once the window has passed, the next failed attempt (ours or the background's) makes it irrevocable.
        deadline = time.monotonic() + 20
        while value(m, "coffer_leases_irrevocable", mount="things/", role="") != 1:
            assert time.monotonic() < deadline, "the lease never became irrevocable"
            time.sleep(0.25)
            s.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": stuck})
            m = scrape(s, root)
        assert value(m, "coffer_leases_live", mount="things/", role="") == 2
        assert value(m, "coffer_lease_revocation_failures_total", mount="things/", role="") >= 2
        assert s.request("PUT", "sys/leases/revoke-force/things/creds/stuck", token=root).status_code == 204
        m = scrape(s, root)
        assert value(m, "coffer_leases_irrevocable", mount="things/", role="") == 0
        assert value(m, "coffer_leases_live", mount="things/", role="") == 1
    finally:
        s.stop()


def test_aws_calls_that_fail_are_counted_by_outcome(aws_server, moto, fault_proxy):
    """A throttled call and a failed one, through the fault proxy (no SDK retries, so one call each)."""
    root, key = aws_server.root_token, aws_server.aws_key
    aws_server.request("POST", "aws/config/root", token=root, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": fault_proxy.endpoint, "sts_endpoint": fault_proxy.endpoint, "max_retries": 0}
                       ).raise_for_status()
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}
    aws_server.request("POST", "aws/roles/flaky", token=root, json={
        "credential_type": "iam_user", "policy_document": json.dumps(policy)}).raise_for_status()
    fault_proxy.fail("CreateUser", "throttle", times=1)
    assert aws_server.request("GET", "aws/creds/flaky", token=root).status_code == 429
    fault_proxy.fail("CreateUser", "error500", times=1)
    assert aws_server.request("GET", "aws/creds/flaky", token=root).status_code == 502
    m = scrape(aws_server, root)
    assert value(m, "coffer_aws_calls_total", service="iam", action="CreateUser", outcome="throttled") == 1
    assert value(m, "coffer_aws_calls_total", service="iam", action="CreateUser", outcome="error") == 1
    assert value(m, "coffer_aws_calls_total", service="iam", action="CreateUser", outcome="ok") is None
    assert fault_proxy.count("CreateUser") == 2  # what the proxy saw: one call each, no retries
    assert value(m, "coffer_aws_call_duration_seconds_count", service="iam", action="CreateUser",
                 outcome="throttled") == 1
    assert (value(m, "coffer_leases_live", mount="aws/", role="flaky") or 0) == 0


def test_a_value_that_fails_to_decrypt_is_counted(server, tmp_path):
    """One damaged stored value, read once: one decryption failure (and a 500 for the read)."""
    root = server.root_token
    server.request("POST", "sys/mounts/kvd", token=root, json={"type": "kv"}).raise_for_status()
    server.request("PUT", "kvd/damaged", token=root, json={"v": "soon unreadable"}).raise_for_status()
    assert value(scrape(server, root), "coffer_barrier_decrypt_failures_total") == 0
    with sqlite3.connect(tmp_path / "coffer.db") as conn:  # flip a byte of the stored (encrypted) value
        (key, stored), = conn.execute("SELECT key, value FROM kv WHERE key LIKE 'logical/%/damaged'").fetchall()
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (stored[:-1] + bytes([stored[-1] ^ 0x5A]), key))
    r = server.request("GET", "kvd/damaged", token=root)
    assert r.status_code == 500 and "failed to decrypt" in r.json()["errors"][0], r.text
    assert value(scrape(server, root), "coffer_barrier_decrypt_failures_total") == 1
    assert server.request("GET", "sys/health", token=None).status_code == 200  # the rest still serves
