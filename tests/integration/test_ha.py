"""High availability: three real ``coffer server`` processes sharing one PostgreSQL schema.

One node is active, the others standbys that forward (or 307); fail-over after ``kill -9`` and after a
``SIGSTOP`` longer than the lock's TTL; ``sys/step-down``. The lock timings are shortened through the
test-only ``COFFER_TEST_HA_*`` environment variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import pg_support
from conftest import CofferProcess, free_port, remember_secret

TTL = 2.0
TIMINGS = {"COFFER_TEST_HA_TTL": str(TTL), "COFFER_TEST_HA_RENEW_INTERVAL": "0.5",
           "COFFER_TEST_HA_RETRY_INTERVAL": "0.2", "COFFER_TEST_HA_HEARTBEAT_INTERVAL": "0.5"}
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:GetUser"], "Resource": "*"}]}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Cluster:
    def __init__(self, tmp: Path, schema: str) -> None:
        self.tmp = tmp
        self.url = pg_support.schema_url(schema)
        self.schema = schema
        self.nodes: list[CofferProcess] = []
        self.keys: list[str] = []
        self.root = ""
        #: More configuration for every node (a seal stanza).
        self.extra = ""
        #: TLS listeners with these files (ca, cert, key: test_tls.make_certs) instead of plain HTTP.
        self.tls: dict[str, Path] | None = None

    def node(self, index: int | None = None) -> CofferProcess:
        port = free_port()
        home = self.tmp / f"node-{port}"
        home.mkdir()
        config = home / "coffer.hcl"
        tls = (f'  tls_cert_file = "{self.tls["cert"]}"\n  tls_key_file = "{self.tls["key"]}"\n' if self.tls
               else "  tls_disable = true\n")
        scheme = "https" if self.tls else "http"
        config.write_text(
            f'storage "postgresql" {{\n  connection_url = "{self.url}"\n  ha_enabled = "true"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n{tls}}}\n'
            f'api_addr = "{scheme}://127.0.0.1:{port}"\n' + self.extra
        )
        verify = str(self.tls["ca"]) if self.tls else True
        node = CofferProcess(["-config", str(config)], port, home, scheme=scheme, verify=verify).start()
        if index is None:
            self.nodes.append(node)
        else:
            self.nodes[index] = node
        return node

    def unseal(self, node: CofferProcess) -> None:
        for key in self.keys:
            node.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()

    def is_active(self, node: CofferProcess) -> bool:
        r = requests.get(node.url("sys/leader"), timeout=2, verify=node.verify)
        return bool(r.ok and r.json()["is_self"])

    def active(self, among: list[CofferProcess] | None = None, timeout: float = 20.0) -> CofferProcess:
        candidates = among if among is not None else self.nodes

        def find() -> CofferProcess | None:
            found = [n for n in candidates if n.proc is not None and self.is_active(n)]
            return found[0] if len(found) == 1 else None

        return wait_for("one active node", find, timeout)

    def standbys(self) -> list[CofferProcess]:
        active = self.active()
        return [n for n in self.nodes if n is not active]

    def init_one_key(self, node: CofferProcess) -> str:
        """Initialize the store through ``node`` with a single unseal key (kept in ``keys``); the root token."""
        body = node.request("PUT", "sys/init", token=None, json={"secret_shares": 1, "secret_threshold": 1}).json()
        remember_secret(body["keys"], body["root_token"])
        self.keys, self.root = body["keys"], body["root_token"]
        return self.root

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                with_cont(node)
                node.stop()


@contextlib.contextmanager
def short_timings() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in TIMINGS}
    os.environ.update(TIMINGS)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of no node yet on a fresh schema, with the short lock timings; every node is stopped at the end."""
    pg_support.require()
    with short_timings(), pg_support.fresh_schema() as schema:
        c = Cluster(tmp_path, schema)
        try:
            yield c
        finally:
            c.stop_all()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pg_support.require()
    with short_timings(), pg_support.fresh_schema() as schema:
        c = Cluster(tmp_path_factory.mktemp("ha"), schema)
        try:
            for _ in range(3):
                c.node()
            first = c.nodes[1]
            r = first.request("PUT", "sys/init", token=None, json={"secret_shares": 3, "secret_threshold": 2})
            r.raise_for_status()
            body = r.json()
            remember_secret(body["keys"], body["keys_base64"], body["root_token"])
            c.keys, c.root = body["keys"][:2], body["root_token"]
            for node in c.nodes:  # the store is shared: the others see it initialized
                assert node.request("GET", "sys/seal-status", token=None).json()["initialized"] is True
                c.unseal(node)
            active = c.active()
            active.request("POST", "sys/mounts/secret", token=c.root,
                           json={"type": "kv", "options": {"version": "2"}}).raise_for_status()
            yield c
        finally:
            c.stop_all()


def with_cont(node: CofferProcess) -> None:
    if node.proc is not None and node.proc.poll() is None:
        os.kill(node.proc.pid, signal.SIGCONT)


def kv_put(node: CofferProcess, token: str, path: str, data: dict[str, Any], timeout: float = 30,
           forward: bool = True) -> requests.Response:
    headers = {"X-Vault-Token": token}
    if not forward:  # a standby answers 307 (not followed here) instead of relaying the write
        headers["X-Vault-No-Request-Forwarding"] = "true"
    return requests.put(node.url(f"secret/data/{path}"), headers=headers, json={"data": data}, timeout=timeout,
                        allow_redirects=False)


def test_one_active_and_standbys_answer_health_and_leader(cluster: Cluster) -> None:
    active = cluster.active()
    standbys = [n for n in cluster.nodes if n is not active]
    assert len(standbys) == 2
    assert active.request("GET", "sys/health", token=None).status_code == 200
    for node in standbys:
        health = node.request("GET", "sys/health", token=None)
        assert health.status_code == 429
        assert health.json()["standby"] is True and health.json()["sealed"] is False
        assert node.request("GET", "sys/health?standbyok=true", token=None).status_code == 200
        leader = node.request("GET", "sys/leader", token=None).json()
        assert leader["ha_enabled"] is True and leader["is_self"] is False
        assert leader["leader_address"] == active.addr
        assert leader["leader_cluster_address"]
    me = active.request("GET", "sys/leader", token=None).json()
    assert me["is_self"] is True and me["leader_address"] == active.addr
    assert me["active_time"] != "0001-01-01T00:00:00Z"
    # Every node's heartbeat shows in sys/ha-status (asked through a standby: forwarded).
    nodes = wait_for("three members", lambda: (len(n := standbys[0].request("GET", "sys/ha-status", token=cluster.root)
                                                    .json()["nodes"]) == 3) and n)
    assert {n["api_address"] for n in nodes} == {n.addr for n in cluster.nodes}
    assert [n["api_address"] for n in nodes if n["active_node"]] == [active.addr]
    assert all(n["last_echo"].endswith("Z") and n["hostname"] and n["version"] for n in nodes)


def test_standby_forwards_kv_and_redirects_without_forwarding(cluster: Cluster) -> None:
    standby = cluster.standbys()[0]
    client = standby.client(cluster.root)
    marker = uuid.uuid4().hex
    client.secrets.kv.v2.create_or_update_secret(path="forwarded", secret={"marker": marker})
    assert client.secrets.kv.v2.read_secret_version(path="forwarded", raise_on_deleted_version=True)["data"]["data"] == {"marker": marker}
    active = cluster.active()
    assert active.client(cluster.root).secrets.kv.v2.read_secret_version(path="forwarded", raise_on_deleted_version=True)["data"]["data"] == {
        "marker": marker}
    # Errors are relayed as they are (a bad token: 403 from the active node).
    assert standby.request("GET", "secret/data/forwarded", token="nope").status_code == 403
    r = requests.get(standby.url("secret/data/forwarded?version=1"), allow_redirects=False, timeout=10,
                     headers={"X-Vault-Token": cluster.root, "X-Vault-No-Request-Forwarding": "true"})
    assert r.status_code == 307
    assert r.headers["Location"] == f"{active.addr}/v1/secret/data/forwarded?version=1"


def test_snapshot_save_and_restore_through_a_standby(cluster: Cluster) -> None:
    """The active node restores while it keeps the HA lock (its writes are fenced by it) and serves on."""
    standby = cluster.standbys()[0]
    assert kv_put(standby, cluster.root, "snap", {"v": "before"}).ok
    saved = requests.get(standby.url("sys/storage/raft/snapshot"), headers={"X-Vault-Token": cluster.root},
                         timeout=30)
    assert saved.status_code == 200 and len(saved.content) > 100
    assert kv_put(standby, cluster.root, "snap", {"v": "after"}).ok
    restored = requests.post(standby.url("sys/storage/raft/snapshot"), data=saved.content, timeout=30,
                             headers={"X-Vault-Token": cluster.root, "Content-Type": "application/octet-stream"})
    assert restored.status_code == 204, restored.text
    read = standby.request("GET", "secret/data/snap", token=cluster.root)
    assert read.status_code == 200 and read.json()["data"]["data"] == {"v": "before"}
    assert cluster.active() is not None and kv_put(standby, cluster.root, "snap", {"v": "again"}).ok


def test_forwarded_client_address_is_signed(cluster: Cluster) -> None:
    active = cluster.active()
    standby = cluster.standbys()[0]
    for role, cidr in (("far", "10.9.8.7/32"), ("near", "127.0.0.1/32")):
        active.request("POST", f"auth/token/roles/{role}", token=cluster.root,
                       json={"token_bound_cidrs": [cidr]}).raise_for_status()
    bound_elsewhere = active.request("POST", "auth/token/create/far", token=cluster.root, json={})
    bound_here = active.request("POST", "auth/token/create/near", token=cluster.root, json={})
    assert bound_elsewhere.status_code == 200, bound_elsewhere.text
    assert bound_here.status_code == 200, bound_here.text
    elsewhere, here = bound_elsewhere.json()["auth"]["client_token"], bound_here.json()["auth"]["client_token"]
    forged = {"X-Coffer-Forwarded-For": f"10.9.8.7|{int(time.time())}|{'0' * 64}"}
    # The client's real address (127.0.0.1) reaches the active node through the standby, signed.
    assert standby.request("GET", "auth/token/lookup-self", token=here).status_code == 200
    assert standby.request("GET", "auth/token/lookup-self", token=elsewhere).status_code == 403
    # A client cannot claim another address: not to the active node, not through a standby.
    assert active.request("GET", "auth/token/lookup-self", token=elsewhere, headers=dict(forged)).status_code == 403
    assert standby.request("GET", "auth/token/lookup-self", token=elsewhere, headers=dict(forged)).status_code == 403
    assert active.request("GET", "auth/token/lookup-self", token=here, headers=dict(forged)).status_code == 200


@pytest.fixture(scope="module")
def aws(cluster: Cluster, moto: Any) -> Any:
    active = cluster.active()
    client = active.client(cluster.root)
    client.sys.enable_secrets_engine("aws", path="aws")
    from aws_support import MINIMAL_ROOT_POLICY

    key = moto.make_user(f"ha-root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY)
    client.write("aws/config/root", access_key=key.access_key_id, secret_key=key.secret_access_key,
                 region="us-east-1", iam_endpoint=moto.endpoint, sts_endpoint=moto.endpoint)
    client.write("aws/roles/deploy", credential_type="iam_user", policy_document=json.dumps(ROLE_POLICY))
    return moto


def test_standby_issues_aws_credentials(cluster: Cluster, aws: Any) -> None:
    standby = cluster.standbys()[0]
    creds = standby.client(cluster.root).read("aws/creds/deploy")
    assert creds["lease_id"].startswith("aws/creds/deploy/")
    user = aws.user_of(creds["data"]["access_key"])
    assert user and aws.user_exists(user)
    standby.client(cluster.root).sys.revoke_lease(creds["lease_id"])
    wait_for("the IAM user deleted", lambda: not aws.user_exists(user))


def test_kill_9_of_the_active_node_during_writes(cluster: Cluster, aws: Any) -> None:
    active = cluster.active()
    standby = next(n for n in cluster.nodes if n is not active)
    root = cluster.root
    client = active.client(root)
    kept = client.write("aws/creds/deploy", ttl="1h")
    short = client.write("aws/creds/deploy", ttl="3s")
    short_user = aws.user_of(short["data"]["access_key"])
    assert short_user

    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            name = f"burst/{n}"
            try:
                if kv_put(active, root, name, {"n": n}, timeout=5).status_code in (200, 204):
                    acked.append(name)
            except requests.RequestException:
                pass

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for("writes acknowledged", lambda: len(acked) >= 20)
    assert active.proc is not None
    active.proc.kill()
    active.proc.wait()
    killed_at = time.monotonic()
    stop.set()
    thread.join()
    acked_before_kill = list(acked)
    index = cluster.nodes.index(active)
    active.stop()
    # Right after the kill the standby knows no reachable active node: a clear 503.
    first = standby.request("GET", "secret/data/burst/1", token=root)
    assert first.status_code == 503, first.text
    assert "active node" in first.json()["errors"][0]

    others = [n for n in cluster.nodes if n is not active]
    new_active = cluster.active(others, timeout=20)
    took_over = time.monotonic()
    assert took_over - killed_at < 20
    new_client = new_active.client(root)
    for name in acked_before_kill:
        assert new_client.secrets.kv.v2.read_secret_version(path=name, raise_on_deleted_version=True)["data"]["data"]["n"] == int(name.split("/")[1])
    # No lease is lost; the one that came due during the gap is revoked right after the takeover.
    assert new_client.sys.read_lease(kept["lease_id"])["data"]["id"] == kept["lease_id"]
    wait_for("the expired lease's IAM user deleted", lambda: not aws.user_exists(short_user), timeout=30)
    assert aws.user_exists(aws.user_of(kept["data"]["access_key"]))
    new_client.sys.revoke_lease(kept["lease_id"])
    # The killed node comes back (a new process) as a standby.
    node = cluster.node(index)
    cluster.unseal(node)
    wait_for("the restarted node a standby",
             lambda: node.request("GET", "sys/health", token=None).status_code == 429)


def _kv_rows(cluster: Cluster) -> dict[str, bytes]:
    with pg_support.admin() as conn:
        rows = conn.execute(f'SELECT key, value FROM "{cluster.schema}".coffer_kv').fetchall()
    return {k: bytes(v) for k, v in rows}


def test_sigstop_past_the_ttl_fences_the_old_active_node(cluster: Cluster) -> None:
    old = cluster.active()
    assert old.proc is not None
    root = cluster.root
    os.kill(old.proc.pid, signal.SIGSTOP)
    stale: dict[str, Any] = {}
    try:
        # A write sent to the frozen node waits in its socket's backlog until it runs again. Once running, the
        # node either takes it first (the fence refuses it: 503) or first finds itself a standby (307, as the
        # write asks not to be forwarded: a forwarded one would land, written by the new active node).
        sender = threading.Thread(target=lambda: stale.update(
            r=kv_put(old, root, "stale", {"from": "old"}, timeout=60, forward=False)))
        sender.start()
        others = [n for n in cluster.nodes if n is not old]
        new = cluster.active(others, timeout=20)
        assert kv_put(new, root, "after-takeover", {"from": "new"}).status_code == 200
        rows_before = _kv_rows(cluster)
    finally:
        os.kill(old.proc.pid, signal.SIGCONT)
    sender.join(timeout=60)
    assert stale["r"].status_code in (503, 307), stale["r"].text  # the old node did not write it
    wait_for("the old node a standby", lambda: old.request("GET", "sys/health", token=None).status_code == 429)
    assert "lost the HA lock" in old.log()
    # Nothing of the old node landed: the rows changed since are only the new active node's.
    new_client = new.client(root)
    assert new_client.secrets.kv.v2.read_secret_version(path="after-takeover", raise_on_deleted_version=True)["data"]["data"] == {"from": "new"}
    r = new.request("GET", "secret/data/stale", token=root)
    assert r.status_code == 404
    assert not [k for k in set(_kv_rows(cluster)) - set(rows_before) if "stale" in k]
    assert cluster.active() is new


def test_step_down_without_sudo_is_refused_and_nothing_changes(cluster: Cluster) -> None:
    """sys/step-down needs sudo: a token that may update the path but lacks sudo gets 403, asked of the active node
    or through a standby, and the active node keeps the lock."""
    active = cluster.active()
    standby = next(n for n in cluster.nodes if n is not active)
    name = f"step-down-no-sudo-{uuid.uuid4().hex[:6]}"
    active.request("PUT", f"sys/policies/acl/{name}", token=cluster.root,
                   json={"policy": 'path "sys/step-down" { capabilities = ["create", "update"] }'}).raise_for_status()
    created = active.request("POST", "auth/token/create", token=cluster.root, json={"policies": [name], "ttl": "10m"})
    assert created.status_code == 200, created.text
    token = created.json()["auth"]["client_token"]
    caps = standby.request("POST", "sys/capabilities-self", token=token, json={"paths": ["sys/step-down"]})
    assert caps.status_code == 200 and sorted(caps.json()["sys/step-down"]) == ["create", "update"], caps.text
    log_before = len(active.log())
    for node in (active, standby):  # directly, and forwarded by a standby
        refused = node.request("PUT", "sys/step-down", token=token)
        assert refused.status_code == 403, refused.text
        assert "permission denied" in refused.json()["errors"][0]
    assert cluster.active() is active
    assert "stepped down" not in active.log()[log_before:]
    assert active.request("GET", "sys/health", token=None).status_code == 200
    assert kv_put(standby, cluster.root, "after-refused-step-down", {"ok": True}).status_code == 200


def test_step_down_hands_over_and_members_through_the_cli(cluster: Cluster) -> None:
    old = cluster.active()
    env = {**os.environ, "VAULT_ADDR": old.addr, "VAULT_TOKEN": cluster.root, "HOME": str(old.home)}
    cli = [sys.executable, "-m", "coffer"]
    members = subprocess.run([*cli, "operator", "members"], env=env, capture_output=True, text=True, timeout=30)
    assert members.returncode == 0, members.stderr
    assert old.addr in members.stdout and "true" in members.stdout
    down = subprocess.run([*cli, "operator", "step-down"], env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 0, down.stderr
    new = cluster.active([n for n in cluster.nodes if n is not old], timeout=20)
    assert new is not old
    assert old.request("GET", "sys/health", token=None).status_code == 429
    assert "stepped down" in old.log()
    # Through the old node (now a standby) the cluster still serves.
    assert kv_put(old, cluster.root, "after-step-down", {"ok": True}).status_code == 200


def test_ha_storage_is_the_storage_database_itself_or_refused() -> None:
    """Vault's ha_storage stanza names where the lock lives. coffer fences every write with the lock in the same
    transaction, so the lock must be in the storage's own PostgreSQL database: such a stanza turns HA on (with
    its ha_table); any other lock store is refused, saying what to write instead."""
    from coffer.config import ConfigError, parse_config

    listener = 'listener "tcp" {\n  address = "127.0.0.1:8200"\n  tls_disable = true\n}\n'
    storage = 'storage "postgresql" {\n  connection_url = "postgresql://x@y/z"\n}\n'
    same = parse_config(storage + 'ha_storage "postgresql" {\n  connection_url = "postgresql://x@y/z"\n'
                        '  ha_table = "locks"\n}\n' + listener)
    assert same.storage.type == "postgresql"
    assert same.storage.options == {"connection_url": "postgresql://x@y/z", "ha_enabled": "true",
                                    "ha_table": "locks"}
    assert not same.warnings
    for other in ('ha_storage "postgresql" {\n  connection_url = "postgresql://x@elsewhere/z"\n}\n',
                  'ha_backend "consul" {\n  address = "127.0.0.1:8500"\n}\n'):
        with pytest.raises(ConfigError, match='ha_enabled = "true"'):
            parse_config(storage + other + listener)
    with pytest.raises(ConfigError, match='ha_enabled = "true"'):
        parse_config('storage "sqlite" {\n  path = "/tmp/x.db"\n}\n'
                     'ha_storage "postgresql" {\n  connection_url = "postgresql://x@y/z"\n}\n' + listener)


def test_ha_without_api_addr_on_a_wildcard_listener_is_refused() -> None:
    from coffer.config import parse_config
    from coffer.server import ha_addresses

    config = parse_config('storage "inmem" {}\nlistener "tcp" {\n  address = "0.0.0.0:8200"\n  tls_disable = true\n}\n')
    with pytest.raises(ValueError, match="set api_addr"):
        ha_addresses(config)
    local = parse_config('storage "inmem" {}\nlistener "tcp" {\n  address = "127.0.0.1:8200"\n  tls_disable = true\n}\n')
    assert ha_addresses(local) == ("http://127.0.0.1:8200", "https://127.0.0.1:8201")


def test_a_standby_with_no_reachable_active_node_answers_503(tmp_path: Path) -> None:
    """The lock row names a holder with no api_addr (held here by the test itself, until far in the future): the
    unsealed node stays a standby and answers what it cannot forward with a 503 saying no active node is known,
    also when asked for a redirect instead; once the row is gone it takes the lock and serves."""
    from coffer.storage.postgresql.ha import LOCK_KEY

    with fresh_cluster(tmp_path) as c:
        node = c.node()
        root = c.init_one_key(node)
        # The init held the lock for its (fenced) writes and gave it back; the test takes it, as another
        # identity that advertises no address, before the node is unsealed.
        stranger = f"not-a-coffer-node-{uuid.uuid4().hex[:8]}"
        table = f'"{c.schema}".coffer_ha_locks'
        with pg_support.admin() as conn:
            assert conn.execute(f"SELECT 1 FROM {table} WHERE ha_key = %s", (LOCK_KEY,)).fetchone() is None
            conn.execute(f"INSERT INTO {table} (ha_key, ha_identity, ha_value, valid_until)"
                         " VALUES (%s, %s, NULL, now() + interval '1 day')", (LOCK_KEY, stranger))
        c.unseal(node)
        wait_for("a standby", lambda: node.request("GET", "sys/health", token=None).status_code == 429)
        leader = node.request("GET", "sys/leader", token=None).json()
        assert leader["is_self"] is False and leader["leader_address"] == ""
        for method, kwargs in (("GET", {}), ("PUT", {"json": {"v": 1}})):
            r = node.request(method, "kv/app", token=root, **kwargs)
            assert r.status_code == 503, r.text
            assert "no active node is known" in r.json()["errors"][0]
        no_forwarding = node.request("GET", "kv/app", token=root, allow_redirects=False,
                                     headers={"X-Vault-No-Request-Forwarding": "true"})
        assert no_forwarding.status_code == 503 and "no active node is known" in no_forwarding.text
        with pg_support.admin() as conn:
            holder = conn.execute(f"SELECT ha_identity FROM {table} WHERE ha_key = %s", (LOCK_KEY,)).fetchone()
            assert holder == (stranger,)  # the node never took the unexpired lock over
            conn.execute(f"DELETE FROM {table} WHERE ha_key = %s", (LOCK_KEY,))
        assert c.active() is node
        assert node.request("GET", "kv/app", token=root).status_code == 404  # served: no kv/ mount


def test_an_auto_unsealed_cluster_restarts_with_no_human(tmp_path: Path, moto: Any) -> None:
    """Three nodes with seal "awskms" (moto's KMS): init once, then every node, restarted, unseals itself and one
    of them serves as the active node."""
    key_id = moto.admin_client("kms").create_key(Description="coffer HA seal")["KeyMetadata"]["KeyId"]
    admin = moto.admin
    remember_secret(admin.secret_access_key)
    with fresh_cluster(tmp_path) as c:
        c.extra = (f'seal "awskms" {{\n  region = "us-east-1"\n  kms_key_id = "{key_id}"\n'
                   f'  endpoint = "{moto.endpoint}"\n  access_key = "{admin.access_key_id}"\n'
                   f'  secret_key = "{admin.secret_access_key}"\n}}\n')
        for _ in range(3):
            c.node()
        r = c.nodes[0].request("PUT", "sys/init", token=None, json={"recovery_shares": 1, "recovery_threshold": 1})
        r.raise_for_status()
        remember_secret(r.json()["recovery_keys"], r.json()["root_token"])
        root = r.json()["root_token"]
        for index, node in enumerate(list(c.nodes)):
            node.stop()
            c.node(index)
        for node in c.nodes:
            wait_for("auto-unsealed", lambda node=node: node.request("GET", "sys/seal-status", token=None)
                     .json()["sealed"] is False)
        active = c.active()
        standby = next(n for n in c.nodes if n is not active)
        assert kv_put(standby, root, "x", {"v": 1}).status_code == 404  # no secret/ mount: forwarded, answered
        mounted = standby.request("POST", "sys/mounts/secret", token=root, json={"type": "kv-v2"})
        assert mounted.status_code == 204 and kv_put(standby, root, "x", {"v": 1}).ok


def test_a_seal_migration_on_an_ha_cluster(tmp_path: Path, moto: Any) -> None:
    """shamir -> awskms on two nodes: the node that migrates must hold the HA lock (its writes are fenced), so it
    is refused while another node is active and becomes the active node once it migrates; a node whose
    configuration still says a migration is pending sees the store migrated and unseals with the same keys."""
    key_id = moto.admin_client("kms").create_key(Description="coffer HA migration")["KeyMetadata"]["KeyId"]
    admin = moto.admin
    remember_secret(admin.secret_access_key)
    awskms = (f'seal "awskms" {{\n  region = "us-east-1"\n  kms_key_id = "{key_id}"\n  endpoint = "{moto.endpoint}"\n'
              f'  access_key = "{admin.access_key_id}"\n  secret_key = "{admin.secret_access_key}"\n}}\n')
    migrating = awskms + 'seal "shamir" {\n  disabled = "true"\n}\n'

    def restart(c: Cluster, index: int, extra: str) -> CofferProcess:
        c.nodes[index].stop()
        c.extra = extra
        return c.node(index)

    def seal_status(node: CofferProcess) -> dict[str, Any]:
        return node.request("GET", "sys/seal-status", token=None).json()

    def unseal(node: CofferProcess, key: str, migrate: bool) -> requests.Response:
        return node.request("PUT", "sys/unseal", token=None, json={"key": key, "migrate": migrate})

    def read(node: CofferProcess, token: str) -> Any:
        r = node.request("GET", "kv/app", token=token)
        return r.json()["data"]["v"] if r.ok else r.status_code

    with fresh_cluster(tmp_path) as c:
        a, b = c.node(), c.node()
        root = c.init_one_key(a)
        key = c.keys[0]
        for node in (a, b):
            unseal(node, key, False).raise_for_status()
        assert c.active() is a
        a.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
        a.request("PUT", "kv/app", token=root, json={"v": "kept"}).raise_for_status()

        # b asks to migrate while a is the active node: refused, nothing changes
        b = restart(c, 1, migrating)
        assert seal_status(b)["migration"] is True
        refused = unseal(b, key, True)
        assert refused.status_code == 400 and "another node holds the HA lock" in refused.text, refused.text
        assert seal_status(a)["type"] == "shamir" and read(a, root) == "kept"
        assert seal_status(b)["sealed"] is True

        # with a sealed too (its configuration also migrating), b migrates and becomes the active node
        a = restart(c, 0, migrating)
        done = unseal(b, key, True)
        assert done.status_code == 200 and done.json()["sealed"] is False, done.text
        assert c.active() is b and read(b, root) == "kept"
        assert (seal_status(b)["type"], seal_status(b)["recovery_seal"]) == ("awskms", True)

        # a still thought a migration pending: it reads the store again, so -migrate is refused and the
        # old unseal key (now the recovery key) unseals it as a standby
        again = unseal(a, key, True)
        assert again.status_code == 400 and "no seal migration is pending" in again.text, again.text
        unseal(a, key, False).raise_for_status()
        assert seal_status(a)["sealed"] is False
        wait_for("a forwarding to b", lambda: read(a, root) == "kept")  # once a has read who leads
        assert c.active() is b

        # from now on no human: both restart and unseal with KMS
        for index in (0, 1):
            restart(c, index, awskms)
        for node in c.nodes:
            wait_for("auto-unsealed", lambda node=node: seal_status(node)["sealed"] is False)
        assert read(c.active(), root) == "kept"


def test_forwarding_over_tls_trusts_the_systems_ca_store(tmp_path: Path) -> None:
    """TLS listeners with a private CA: a standby forwards to the active node when the CA is in the system's
    store (here through SSL_CERT_FILE, which OpenSSL's default store honours), and refuses to without it."""
    from test_tls import make_certs

    certs = make_certs(tmp_path)
    saved = os.environ.get("SSL_CERT_FILE")
    try:
        with fresh_cluster(tmp_path) as c:
            c.tls = certs
            os.environ["SSL_CERT_FILE"] = str(certs["ca"])
            trusting = c.node()
            os.environ["SSL_CERT_FILE"] = str(tmp_path / "no-such-store.pem")  # a store without the private CA
            untrusting = c.node()
            root = c.init_one_key(trusting)
            c.unseal(trusting)
            assert c.active() is trusting
            c.unseal(untrusting)
            trusting.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()

            refused = untrusting.request("PUT", "kv/app", token=root, json={"v": 1})
            assert refused.status_code == 503 and "could not reach the active node" in refused.text, refused.text
            assert trusting.request("GET", "kv/app", token=root).status_code == 404

            trusting.request("PUT", "sys/step-down", token=root).raise_for_status()
            assert c.active() is untrusting
            wait_for("a forwarded write", lambda: trusting.request("PUT", "kv/app", token=root,
                                                                   json={"v": 2}).status_code == 204)
            assert untrusting.request("GET", "kv/app", token=root).json()["data"] == {"v": 2}
    finally:
        if saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved


def test_a_standby_answers_its_own_metrics_to_a_token_allowed_to_read_them(cluster: Cluster) -> None:
    """sys/metrics on a standby: the standby's figures (its role gauge says standby), for a token the active
    node lets read sys/metrics (the same read sent there); any other token is refused as the active node
    refuses it."""
    active = cluster.active()
    standby = next(n for n in cluster.nodes if n is not active)

    def ha_role(node: CofferProcess, token: str) -> list[str]:
        r = node.request("GET", "sys/metrics", token=token)
        assert r.status_code == 200, r.text
        return [g["Labels"]["role"] for g in r.json()["Gauges"] if g["Name"] == "coffer_ha_active"]

    assert ha_role(standby, cluster.root) == ["standby"]
    assert ha_role(active, cluster.root) == ["active"]
    policy = 'path "sys/metrics" { capabilities = ["read"] }'
    active.request("PUT", "sys/policies/acl/scrape", token=cluster.root, json={"policy": policy}).raise_for_status()
    scraper = active.request("POST", "auth/token/create", token=cluster.root,
                             json={"policies": ["scrape"], "no_default_policy": True}).json()["auth"]["client_token"]
    other = active.request("POST", "auth/token/create", token=cluster.root,
                           json={"policies": ["default"]}).json()["auth"]["client_token"]
    remember_secret(scraper, other)
    assert ha_role(standby, scraper) == ["standby"]
    for token in (other, "not-a-token"):
        refused = standby.request("GET", "sys/metrics", token=token)
        assert refused.status_code == 403 and refused.json() == {"errors": ["permission denied"]}, refused.text
