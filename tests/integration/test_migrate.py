"""``coffer operator migrate`` (offline) of a real store: 10,000 leases, KV and an AWS engine on moto.

SQLite -> PostgreSQL -> SQLite: after each copy a server on the destination unseals with the same key and
serves everything. Also: a destination that holds data is refused, ``-start`` resumes, the count check
fails loudly, and a second migration of a locked source is refused (``-reset`` clears the lock).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pg_support
from conftest import PLUGIN_DIR, CofferProcess, free_port, remember_secret, write_config

LEASES = 10_000
IAM_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": "*"}]}


@dataclass
class Store:
    """A stopped server's SQLite store, and what it must serve."""

    path: Path
    unseal_key: str
    root_token: str
    marker: str


def sqlite_block(path: Path) -> str:
    return f'storage "sqlite" {{\n  path = "{path}"\n}}'


def pg_block(url: str) -> str:
    return f'storage "postgresql" {{\n  connection_url = "{url}"\n}}'


def start(directory: Path, storage: str) -> CofferProcess:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(directory, port, extra=f'plugin_directory = "{PLUGIN_DIR}"', storage=storage)
    return CofferProcess(["-config", str(config)], port, directory).start()


async def _build(path: Path, moto_endpoint: str, key) -> tuple[str, str, str]:
    """The store, built in-process on its SQLite file (no HTTP: 10,000 leases in a few seconds)."""
    from coffer.core.core import Core
    from coffer.engines import builtin_auth_methods, builtin_engines, load_plugins
    from coffer.framework.request import Request
    from coffer.storage.sqlite import SqliteStorage

    plugin_engines, plugin_auth = load_plugins(str(PLUGIN_DIR))
    core = Core(SqliteStorage(str(path)), storage_type="sqlite", engines={**builtin_engines(), **plugin_engines},
                auth_methods={**builtin_auth_methods(), **plugin_auth})
    try:
        await core.load_seal_config()
        keys, root = await core.initialize(1, 1)
        await core.submit_unseal_key(keys[0])

        async def call(operation: str, path: str, **data: object) -> object:
            return await core.handle(Request(operation=operation, path=path, data=dict(data), client_token=root))

        for mount, kind in (("secret", "kv"), ("things", "leasetest"), ("aws", "aws")):
            await call("update", f"sys/mounts/{mount}", type=kind)
        marker = f"migrated-{uuid.uuid4().hex}"
        await call("update", "secret/app", password=marker)
        await call("update", "aws/config/root", access_key=key.access_key_id, secret_key=key.secret_access_key,
                   region="us-east-1", iam_endpoint=moto_endpoint, sts_endpoint=moto_endpoint)
        await call("update", "aws/roles/deploy", credential_type="iam_user", policy_document=ROLE_POLICY)
        for first in range(0, LEASES, 250):  # concurrent: the SQLite writer commits each group at once
            answers = await asyncio.gather(*(call("read", f"things/creds/bulk-{i % 50}", ttl="2h")
                                             for i in range(first, min(first + 250, LEASES))))
            assert all(getattr(a, "secret", None) is not None for a in answers)
        return keys[0].hex(), root, marker
    finally:
        await core.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, moto) -> Iterator[Store]:
    """A SQLite store with 10,000 leases, a KV secret and an AWS mount with a role (no server running on it)."""
    path = tmp_path_factory.mktemp("migrate-source") / "coffer.db"
    key = moto.make_user(f"coffer-migrate-{uuid.uuid4().hex[:8]}", IAM_ALL)
    unseal_key, root, marker = asyncio.run(_build(path, moto.endpoint, key))
    remember_secret(unseal_key, root)
    yield Store(path, unseal_key, root, marker)


def lease_count(server: CofferProcess, token: str) -> int:
    r = server.request("GET", "sys/leases/count", token=token, params={"prefix": "things/"})
    r.raise_for_status()
    return r.json()["data"]["lease_count"]


def migrate(directory: Path, source: str, destination: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = directory / f"migrate-{uuid.uuid4().hex[:6]}.hcl"
    config.write_text(f"{source.replace('storage ', 'storage_source ', 1)}\n"
                      f"{destination.replace('storage ', 'storage_destination ', 1)}\n")
    return subprocess.run([sys.executable, "-m", "coffer", "operator", "migrate", f"-config={config}", *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"})


def check_serves_everything(directory: Path, storage: str, store: Store, moto) -> None:
    server = start(directory, storage)
    try:
        assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is True
        server.request("PUT", "sys/unseal", token=None, json={"key": store.unseal_key}).raise_for_status()
        root = store.root_token
        assert server.request("GET", "secret/app", token=root).json()["data"] == {"password": store.marker}
        role = server.request("GET", "aws/roles/deploy", token=root)
        assert role.status_code == 200 and role.json()["data"]["credential_type"] == "iam_user"
        creds = server.request("GET", "aws/creds/deploy", token=root)
        assert creds.status_code == 200, creds.text
        assert creds.json()["data"]["access_key"] and creds.json()["lease_id"].startswith("aws/creds/deploy/")
        assert lease_count(server, root) == LEASES
    finally:
        server.stop()


def test_sqlite_to_postgresql_and_back(store: Store, tmp_path: Path, moto) -> None:
    with pg_support.fresh_schema() as schema:
        pg = pg_block(pg_support.schema_url(schema))
        there = migrate(tmp_path, sqlite_block(store.path), pg)
        assert there.returncode == 0, there.stderr + there.stdout
        assert "Copying keys" in there.stderr and "sqlite" in there.stderr and "postgresql" in there.stderr
        assert "Success! Copied" in there.stderr
        check_serves_everything(tmp_path / "on-pg", pg, store, moto)

        back_path = tmp_path / "back" / "coffer.db"
        back = migrate(tmp_path, pg, sqlite_block(back_path))
        assert back.returncode == 0, back.stderr + back.stdout
        assert "Success! Copied" in back.stderr
    check_serves_everything(tmp_path / "back", sqlite_block(back_path), store, moto)


def _keys(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [k for (k,) in conn.execute("SELECT key FROM kv ORDER BY key")]


def test_refusals_resume_and_count_check(store: Store, tmp_path: Path) -> None:
    source = sqlite_block(store.path)
    dest_path = tmp_path / "dest" / "coffer.db"
    dest = sqlite_block(dest_path)
    assert migrate(tmp_path, source, dest).returncode == 0
    copied = _keys(dest_path)
    assert "core/migration" not in copied and "core/migration" not in _keys(store.path)

    again = migrate(tmp_path, source, dest)
    assert again.returncode == 2
    assert "already holds a coffer store" in again.stderr and "-start" in again.stderr

    # A migration that stopped half-way: the keys from `middle` on are missing; -start resumes there.
    middle = copied[len(copied) // 2]
    with sqlite3.connect(dest_path) as conn:
        conn.execute("DELETE FROM kv WHERE key >= ?", (middle,))
    resumed = migrate(tmp_path, source, dest, f"-start={middle}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"Copied {len(copied) - len(copied) // 2} keys" in resumed.stderr
    assert _keys(dest_path) == copied

    # A destination that does not end up with the source's keys fails the count check.
    with sqlite3.connect(dest_path) as conn:
        conn.execute("INSERT INTO kv (key, value) VALUES ('zzz/stray', x'00')")
    checked = migrate(tmp_path, source, dest, "-start=zzz")
    assert checked.returncode == 2
    assert f"count check failed: the source holds {len(copied)} keys but the destination {len(copied) + 1}" \
        in checked.stderr

    # A source locked by a migration in progress is refused; -reset clears a stale lock.
    with sqlite3.connect(store.path) as conn:
        conn.execute("""INSERT INTO kv (key, value) VALUES ('core/migration', '{"start": "2026-01-01T00:00:00Z"}')""")
    fresh = sqlite_block(tmp_path / "fresh" / "coffer.db")
    locked = migrate(tmp_path, source, fresh)
    assert locked.returncode == 2 and "in progress (started 2026-01-01T00:00:00Z)" in locked.stderr
    assert "-reset" in locked.stderr
    cleared = migrate(tmp_path, source, fresh, "-reset")
    assert cleared.returncode == 0, cleared.stderr
    assert "core/migration" not in _keys(store.path)


def test_bad_migration_configs(tmp_path: Path) -> None:
    config = tmp_path / "bad.hcl"
    config.write_text('storage_source "sqlite" { path = "/tmp/x.db" }\n')
    r = subprocess.run([sys.executable, "-m", "coffer", "operator", "migrate", f"-config={config}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'a "storage_destination" block is required' in r.stderr
    config.write_text('storage_source "inmem" {}\nstorage_destination "sqlite" { path = "/tmp/y.db" }\n')
    r = subprocess.run([sys.executable, "-m", "coffer", "operator", "migrate", f"-config={config}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'storage_source "inmem"' in r.stderr
    assert "Traceback" not in r.stderr
