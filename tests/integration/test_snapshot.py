"""Online snapshots of a real server: ``coffer operator snapshot save|restore`` (sys/storage/raft/snapshot*).

On SQLite and on PostgreSQL: a restore brings back KV data, tokens and leases and the server goes on serving
them; a snapshot of another store (other keys) is refused without -force, and with it the server is sealed
until it is unsealed with that store's keys; a damaged file is a 400 and changes nothing.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import pg_support
from conftest import PLUGIN_DIR, CofferProcess, free_port, init_and_unseal, remember_secret, write_config


def _start(directory: Path, backend: str, stack: ExitStack) -> CofferProcess:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = None
    if backend == "postgresql":
        schema = stack.enter_context(pg_support.fresh_schema())
        storage = f'storage "postgresql" {{\n  connection_url = "{pg_support.schema_url(schema)}"\n}}'
    config = write_config(directory, port, extra=f'plugin_directory = "{PLUGIN_DIR}"', storage=storage)
    server = CofferProcess(["-config", str(config)], port, directory).start()
    stack.callback(server.stop)
    keys, root = init_and_unseal(server)
    server.unseal_key, server.root_token = keys[0], root
    server.request("POST", "sys/mounts/secret", token=root, json={"type": "kv"}).raise_for_status()
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    return server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CofferProcess]:
    with ExitStack() as stack:
        yield _start(tmp_path_factory.mktemp(f"snap-{request.param}"), request.param, stack)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CofferProcess]:
    """Another store, initialized with other keys (where foreign snapshots come from)."""
    with ExitStack() as stack:
        yield _start(tmp_path_factory.mktemp("snap-other"), "sqlite", stack)


def cli(server: CofferProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COFFER_ADDR": server.addr, "COFFER_TOKEN": server.root_token, "HOME": str(server.home)}
    return subprocess.run([sys.executable, "-m", "coffer", "operator", "snapshot", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def kv(server: CofferProcess, path: str) -> object:
    r = server.request("GET", f"secret/{path}", token=server.root_token)
    return r.json()["data"] if r.status_code == 200 else r.status_code


def new_token(server: CofferProcess) -> str:
    r = server.request("POST", "auth/token/create", token=server.root_token, json={"policies": ["default"]})
    r.raise_for_status()
    token = r.json()["auth"]["client_token"]
    remember_secret(token)
    return token


def token_works(server: CofferProcess, token: str) -> bool:
    return server.request("GET", "auth/token/lookup-self", token=token).status_code == 200


def new_lease(server: CofferProcess) -> str:
    r = server.request("GET", "things/creds/snap", token=server.root_token, params={"ttl": "1h"})
    r.raise_for_status()
    return r.json()["lease_id"]


def lease_known(server: CofferProcess, lease_id: str) -> bool:
    r = server.request("PUT", "sys/leases/lookup", token=server.root_token, json={"lease_id": lease_id})
    return r.status_code == 200


def sealed(server: CofferProcess) -> bool:
    return server.request("GET", "sys/seal-status", token=None).json()["sealed"]


def http_snapshot(server: CofferProcess) -> bytes:
    r = server.request("GET", "sys/storage/raft/snapshot", token=server.root_token)
    assert r.status_code == 200, r.text
    return r.content


def test_restore_brings_back_kv_tokens_and_leases(server: CofferProcess, tmp_path: Path) -> None:
    name = f"app-{uuid.uuid4().hex[:8]}"
    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "before"}).raise_for_status()
    kept_token, kept_lease = new_token(server), new_lease(server)

    file = tmp_path / "backup.snap"
    saved = cli(server, "save", str(file))
    assert saved.returncode == 0, saved.stderr
    assert "Success! Snapshot saved" in saved.stdout
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert b"before" not in file.read_bytes()  # values are as storage holds them: encrypted

    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "after"}).raise_for_status()
    server.request("PUT", f"secret/{name}-later", token=server.root_token, json={"v": "new"}).raise_for_status()
    later_token, later_lease = new_token(server), new_lease(server)
    server.request("PUT", "sys/leases/revoke", token=server.root_token,
                   json={"lease_id": kept_lease}).raise_for_status()
    assert not lease_known(server, kept_lease)

    restored = cli(server, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert "serves the restored data" in restored.stdout
    assert not sealed(server)
    assert kv(server, name) == {"v": "before"}
    assert kv(server, f"{name}-later") == 404
    assert token_works(server, kept_token) and not token_works(server, later_token)
    assert lease_known(server, kept_lease) and not lease_known(server, later_lease)
    # Still a working server: writes and new leases after the restore.
    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "again"}).raise_for_status()
    assert kv(server, name) == {"v": "again"}
    assert lease_known(server, new_lease(server))


def test_snapshot_of_other_keys_needs_force_and_leaves_the_server_sealed(
        server: CofferProcess, other: CofferProcess, tmp_path: Path) -> None:
    mine, theirs = f"mine-{uuid.uuid4().hex[:8]}", f"theirs-{uuid.uuid4().hex[:8]}"
    server.request("PUT", f"secret/{mine}", token=server.root_token, json={"v": "mine"}).raise_for_status()
    other.request("PUT", f"secret/{theirs}", token=other.root_token, json={"v": "theirs"}).raise_for_status()
    own = http_snapshot(server)
    foreign = tmp_path / "other.snap"
    assert cli(other, "save", str(foreign)).returncode == 0

    refused = cli(server, "restore", str(foreign))
    assert refused.returncode == 2
    assert "Code: 400" in refused.stderr and "-force" in refused.stderr and "other unseal keys" in refused.stderr
    assert not sealed(server) and kv(server, mine) == {"v": "mine"}

    forced = cli(server, "restore", "-force", str(foreign))
    assert forced.returncode == 0, forced.stderr
    assert "The server is sealed" in forced.stdout
    assert sealed(server)
    assert server.request("PUT", "sys/unseal", token=None, json={"key": server.unseal_key}).status_code == 400
    server.request("PUT", "sys/unseal", token=None, json={"key": other.unseal_key}).raise_for_status()
    assert not sealed(server)
    r = server.request("GET", f"secret/{theirs}", token=other.root_token)
    assert r.json()["data"] == {"v": "theirs"}
    assert server.request("GET", f"secret/{mine}", token=other.root_token).status_code == 404

    # And back to its own store (a foreign one from where it stands now).
    r = server.request("POST", "sys/storage/raft/snapshot-force", token=other.root_token, data=own)
    assert r.status_code == 204, r.text
    assert sealed(server)
    server.request("PUT", "sys/unseal", token=None, json={"key": server.unseal_key}).raise_for_status()
    assert kv(server, mine) == {"v": "mine"}


def test_a_damaged_snapshot_is_refused_and_changes_nothing(server: CofferProcess) -> None:
    name = f"intact-{uuid.uuid4().hex[:8]}"
    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "kept"}).raise_for_status()
    good = http_snapshot(server)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x5A
    damaged = {
        "truncated": good[: len(good) - 40],
        "damaged": bytes(flipped),
        "not a coffer snapshot": b'{"hello": "world"}',
    }
    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "current"}).raise_for_status()
    for word, body in damaged.items():
        for path in ("sys/storage/raft/snapshot", "sys/storage/raft/snapshot-force"):
            r = server.request("POST", path, token=server.root_token, data=body)
            assert r.status_code == 400, (word, r.text)
            assert word in r.json()["errors"][0] and "nothing was restored" in r.json()["errors"][0]
    empty = server.request("POST", "sys/storage/raft/snapshot", token=server.root_token)
    assert empty.status_code == 400 and "request body" in empty.json()["errors"][0]
    assert not sealed(server)
    assert kv(server, name) == {"v": "current"}
    # Saving and restoring need sudo (root paths in Vault).
    plain = new_token(server)
    assert server.request("GET", "sys/storage/raft/snapshot", token=plain).status_code == 403
    assert server.request("POST", "sys/storage/raft/snapshot", token=plain, data=good).status_code == 403
    assert kv(server, name) == {"v": "current"}
    # hvac's snapshot calls (Vault's paths) work as they are.
    client = server.client(server.root_token)
    taken = client.sys.take_raft_snapshot().content
    server.request("PUT", f"secret/{name}", token=server.root_token, json={"v": "later"}).raise_for_status()
    assert client.sys.restore_raft_snapshot(taken).status_code == 204
    assert kv(server, name) == {"v": "current"}
