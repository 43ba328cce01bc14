"""Revoking a token while it is busy creating children and leases: nothing it made survives (issue 11, #1)."""

from __future__ import annotations

import threading
import time

import requests

from conftest import CofferProcess


def _busy(server: CofferProcess, parent: str, stop: threading.Event, children: list[str], leases: list[str]) -> None:
    session = requests.Session()
    n = 0
    while not stop.is_set():
        n += 1
        if n % 2:
            r = session.post(server.url("auth/token/create"), headers={"X-Vault-Token": parent},
                             json={"policies": ["things"], "ttl": "1h"}, timeout=30)
            if r.status_code == 200:
                children.append(r.json()["auth"]["client_token"])
        else:
            r = session.get(server.url("things/creds/race"), headers={"X-Vault-Token": parent},
                            params={"ttl": "1h"}, timeout=30)
            if r.status_code == 200:
                leases.append((r.json()["lease_id"], r.json()["data"]["value"]))


def test_nothing_made_by_a_token_survives_its_revocation(lease_server):
    server, root = lease_server, lease_server.root_token
    server.request("PUT", "sys/policy/things", token=root,
                   json={"policy": 'path "things/*" { capabilities = ["read", "update"] }\n'
                                   'path "auth/token/create" { capabilities = ["update"] }'}).raise_for_status()
    parent = server.request("POST", "auth/token/create", token=root,
                            json={"policies": ["things"], "ttl": "1h"}).json()["auth"]["client_token"]
    stop = threading.Event()
    children: list[str] = []
    leases: list[tuple[str, str]] = []
    threads = [threading.Thread(target=_busy, args=(server, parent, stop, children, leases)) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    revoked = server.request("POST", "auth/token/revoke", token=root, json={"token": parent})
    stop.set()
    for t in threads:
        t.join()
    assert revoked.status_code == 204
    assert children and leases, "the load made children and leases before the revoke"
    for token in [parent, *children]:
        assert server.request("GET", "auth/token/lookup-self", token=token).status_code == 403, token
    for lease_id, _ in leases:
        assert server.request("PUT", "sys/leases/lookup", token=root, json={"lease_id": lease_id}).status_code == 400
    # every secret handed out was revoked once; a few more were made while the revoke ran, refused (403)
    # and taken back at once
    revocations = server.request("GET", "things/revocations/race", token=root).json()["data"]
    assert all(revocations.get(value) == 1 for _, value in leases)
    assert set(revocations.values()) == {1}
    # nothing under the revoked token is left in the lease store
    assert server.request("GET", "sys/leases/count", token=root, params={"prefix": "things/"}).json()["data"] == {
        "lease_count": 0}
