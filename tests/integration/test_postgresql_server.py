"""A real coffer server on ``storage "postgresql"`` (one node, ``ha_enabled = false``), over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import pg_support
from conftest import CofferProcess, free_port, init_and_unseal, write_config


def pg_block(url: str, extra: str = "") -> str:
    return f'storage "postgresql" {{\n  connection_url = "{url}"\n{extra}}}'


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_support.fresh_schema() as name:
        yield name


def test_server_keeps_secrets_in_postgresql_across_restarts(tmp_path: Path, schema: str) -> None:
    port = free_port()
    config = write_config(tmp_path, port, storage=pg_block(pg_support.schema_url(schema), '  table = "vault_data"\n'))
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    try:
        assert server.request("GET", "sys/seal-status", token=None).json()["initialized"] is False
        keys, root = init_and_unseal(server)
        server.request("POST", "sys/mounts/secret", token=root, json={"type": "kv"}).raise_for_status()
        marker = f"pg-secret-{uuid.uuid4().hex}"
        server.request("PUT", "secret/app", token=root, json={"password": marker}).raise_for_status()
        assert server.request("GET", "secret/app", token=root).json()["data"] == {"password": marker}
        assert server.request("LIST", "secret/", token=root).json()["data"]["keys"] == ["app"]

        server.stop()
        server.start()
        assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is True
        server.request("PUT", "sys/unseal", token=None, json={"key": keys[0]}).raise_for_status()
        assert server.request("GET", "secret/app", token=root).json()["data"] == {"password": marker}
    finally:
        server.stop()
    with pg_support.admin() as conn:
        stored = conn.execute(f'SELECT key, value FROM "{schema}".vault_data').fetchall()
    assert stored, "the server wrote to the configured table"
    assert not any(marker.encode() in bytes(value) for _, value in stored)  # encrypted by the barrier


def test_server_refuses_to_start_on_an_unreachable_database(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    port = free_port()
    config = write_config(tmp_path, port, storage=pg_block(f"postgresql://coffer:hunter2@127.0.0.1:{dead}/coffer"))
    proc = subprocess.run([sys.executable, "-m", "coffer", "server", "-config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Error starting the server" in proc.stderr and "cannot connect to" in proc.stderr
    assert "coffer:***@127.0.0.1" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_server_names_a_bad_postgresql_option(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port, storage=pg_block("postgresql://x/y", '  max_parallel = "many"\n'))
    proc = subprocess.run([sys.executable, "-m", "coffer", "server", "-config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert 'option "max_parallel" must be a whole number' in proc.stderr
    assert "Traceback" not in proc.stderr
