"""One slow AWS endpoint starves nothing else (hardening #5).

An endpoint that accepts and never answers (the fault proxy's ``timeout`` fault, held): a flood of reads
at its mount must not hold another AWS mount's reads or revocations, the work of clients that left is
dropped, and a persistent server stops within 10 s (its leases stay in storage for the next start).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from aws_support import MINIMAL_ROOT_POLICY
from conftest import init_and_unseal

ROLE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}
IAM_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}


def setup_mount(server, mount: str, key, endpoint: str, **root) -> None:
    server.request("POST", f"sys/mounts/{mount}", token=server.root_token, json={"type": "aws"}).raise_for_status()
    server.request("POST", f"{mount}/config/root", token=server.root_token, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "iam_endpoint": endpoint,
        "sts_endpoint": endpoint, **root}).raise_for_status()
    server.request("POST", f"{mount}/roles/r", token=server.root_token, json={
        "credential_type": "iam_user", "policy_document": json.dumps(ROLE)}).raise_for_status()


@pytest.fixture
def two_mounts(sqlite_server, moto, fault_proxy):
    """slow/ reaches AWS through a proxy that never answers; aws/ reaches moto directly."""
    keys, root = init_and_unseal(sqlite_server)
    sqlite_server.root_token, sqlite_server.unseal_key = root, keys[0]
    setup_mount(sqlite_server, "aws", moto.make_user(f"root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY),
                moto.endpoint)
    setup_mount(sqlite_server, "slow", moto.make_user(f"root-{uuid.uuid4().hex[:8]}", IAM_ALL),
                fault_proxy.endpoint)
    return sqlite_server


def read(server, path: str, timeout: float) -> requests.Response | None:
    try:
        return requests.get(server.url(path), headers={"X-Vault-Token": server.root_token}, timeout=timeout)
    except requests.RequestException:
        return None


def lookup(server, lease_id: str) -> int:
    return server.request("PUT", "sys/leases/lookup", token=server.root_token,
                          json={"lease_id": lease_id}).status_code


def test_a_flood_at_a_slow_mount_holds_nothing_else(two_mounts, fault_proxy):
    s = two_mounts
    s.request("POST", "aws/config/lease", token=s.root_token, json={"lease": "3s", "lease_max": "1m"})
    due = s.request("GET", "aws/creds/r", token=s.root_token).json()["lease_id"]
    fault_proxy.fail("*", "timeout", times=None, hold=120)
    with ThreadPoolExecutor(50) as pool:
        flood = [pool.submit(read, s, "slow/creds/r", 2) for _ in range(200)]
        time.sleep(1)
        # While the flood is on: the healthy mount answers, and its due lease is revoked.
        healthy = read(s, "aws/creds/r", 10)
        assert healthy is not None and healthy.status_code == 200, healthy and healthy.text
        deadline = time.monotonic() + 20
        while lookup(s, due) == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lookup(s, due) != 200, "the healthy mount's due lease was not revoked during the flood"
        answers = [f.result() for f in flood]
    assert all(a is None or a.status_code in (502, 503) for a in answers)
    # The clients left: their work is dropped, so AWS stops being called within the SDK's read timeout.
    time.sleep(12)
    seen = len(fault_proxy.arrivals)
    time.sleep(5)
    assert len(fault_proxy.arrivals) == seen, "the slow mount kept calling AWS for clients that had left"
    assert seen < 100, f"{seen} AWS attempts for 200 reads whose clients gave up"
    assert read(s, "aws/creds/r", 10).status_code == 200


def test_the_work_of_a_client_that_left_is_dropped(two_mounts, fault_proxy):
    s = two_mounts
    fault_proxy.fail("CreateUser", "timeout", times=1, hold=4)  # then the connection closes: botocore would retry
    assert read(s, "slow/creds/r", 1) is None  # the client gives up after 1 s
    time.sleep(8)
    assert fault_proxy.count("CreateUser") == 1, fault_proxy.calls  # no retry for nobody
    assert fault_proxy.count("CreateAccessKey") == 0


def test_a_persistent_server_stops_within_10s_while_aws_hangs(two_mounts, fault_proxy):
    s = two_mounts
    kept = s.request("GET", "aws/creds/r", token=s.root_token).json()["lease_id"]
    fault_proxy.fail("*", "timeout", times=None, hold=120)
    clients = [threading.Thread(target=read, args=(s, "slow/creds/r", 60), daemon=True) for _ in range(40)]
    for c in clients:
        c.start()
    time.sleep(2)
    s.proc.send_signal(signal.SIGTERM)
    try:
        s.proc.wait(timeout=10)
    except Exception:
        pytest.fail("the server did not stop within 10 s of SIGTERM while AWS hung")
    fault_proxy.clear()
    s.start()
    s.request("PUT", "sys/unseal", token=None, json={"key": s.unseal_key}).raise_for_status()
    assert lookup(s, kept) == 200  # leases stay in storage for the next start
