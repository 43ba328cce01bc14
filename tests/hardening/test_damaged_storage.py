"""A damaged store or a missing plugin never leaves a broken "unsealed" server (issue 11: #3, #7, #8, #13)."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from conftest import PLUGIN_DIR, CofferProcess, free_port, init_and_unseal, write_config


def flip(db: Path, key: str, offset: int = -1) -> None:
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        value = bytearray(value)
        value[offset] ^= 0x5A
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (bytes(value), key))


def unseal(server: CofferProcess, key: str):
    return server.request("PUT", "sys/unseal", token=None, json={"key": key})


@pytest.fixture
def plugged(tmp_path: Path):
    """A SQLite server whose plugin folder is a copy we may delete files from, with leasetest at things/."""
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGIN_DIR, plugins)
    port = free_port()
    config = write_config(tmp_path, port, extra=f'plugin_directory = "{plugins}"')
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    keys, root = init_and_unseal(server)
    server.key, server.root, server.plugins, server.db = keys[0], root, plugins, tmp_path / "coffer.db"
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    server.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
    server.request("PUT", "kv/a", token=root, json={"v": "1"}).raise_for_status()
    yield server
    server.stop()


def test_a_mount_whose_plugin_is_gone_is_unavailable_alone(plugged):
    server = plugged
    server.stop()
    (server.plugins / "leasetest.py").unlink()
    server.start()
    assert unseal(server, server.key).json()["sealed"] is False
    assert server.request("GET", "sys/health", token=None).status_code == 200
    assert server.request("GET", "kv/a", token=server.root).json()["data"] == {"v": "1"}
    r = server.request("GET", "things/creds/x", token=server.root)
    assert r.status_code == 405 and "plugin not found in the catalog: leasetest" in r.json()["errors"][0]
    # mounting something else does not lose the unavailable mount from the table
    server.request("POST", "sys/mounts/kv2", token=server.root, json={"type": "kv"}).raise_for_status()
    assert {"things/", "kv/", "kv2/"} <= set(server.request("GET", "sys/mounts", token=server.root).json()["data"])
    assert "is unavailable" in server.log()


@pytest.mark.parametrize("key", ["core/mounts", "sys/token/salt", "core/auth"])
def test_a_damaged_core_value_keeps_the_server_sealed(plugged, key):
    server = plugged
    server.stop()
    flip(server.db, key)
    server.start()
    r = unseal(server, server.key)
    assert r.status_code == 500 and "stays sealed" in r.json()["errors"][0]
    assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is True
    assert server.request("GET", "sys/health", token=None).status_code == 503
    assert server.request("GET", "kv/a", token=server.root).status_code == 503
    assert "failed to decrypt" in server.log()


def test_a_damaged_seal_config_is_a_clear_start_error(plugged):
    server = plugged
    server.stop()
    with sqlite3.connect(server.db) as conn:
        conn.execute("UPDATE kv SET value = ? WHERE key = 'core/seal-config'", (b'{"secret_shares": 1, "secret_thr',))
    with pytest.raises(RuntimeError) as info:
        server.start()
    assert "seal configuration at core/seal-config is damaged" in str(info.value)
    assert "Traceback" not in server.log()


def test_init_never_wipes_a_store_whose_seal_config_is_missing(plugged):
    server = plugged
    server.stop()
    with sqlite3.connect(server.db) as conn:
        conn.execute("DELETE FROM kv WHERE key = 'core/seal-config'")
    server.start()
    r = server.request("PUT", "sys/init", token=None, json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 400 and "holds a keyring" in r.json()["errors"][0]
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'logical/%'").fetchone()[0] > 0


def test_storage_files_are_private(plugged):
    folder = plugged.db.parent
    for name in ("coffer.db", "coffer.db-wal", "coffer.db-shm"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
