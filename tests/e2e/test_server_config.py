"""`coffer server -config`: warnings for unknown keys, clear errors (never a traceback) for bad files."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import CofferProcess, free_port


def run_server(tmp_path, text: str) -> subprocess.CompletedProcess:
    config = tmp_path / "coffer.hcl"
    config.write_text(text)
    return subprocess.run([sys.executable, "-m", "coffer", "server", "-config", str(config)], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "HOME": str(tmp_path)})


def test_malformed_file_names_the_line(tmp_path):
    result = run_server(tmp_path, 'storage "sqlite" {\n  path = "x.db"\n  oops = = 3\n}\n')
    assert result.returncode == 1
    assert "line 3" in result.stderr and "coffer.hcl" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_storage_and_missing_file(tmp_path):
    result = run_server(tmp_path, 'listener "tcp" { address = "127.0.0.1:0" }\n')
    assert result.returncode == 1 and "storage" in result.stderr and "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "coffer", "server", "-config", str(tmp_path / "nope.hcl")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "nope.hcl" in missing.stderr and "Traceback" not in missing.stderr


def test_unknown_key_is_a_warning_and_the_server_starts(tmp_path):
    port = free_port()
    config = tmp_path / "coffer.hcl"
    config.write_text(f'backend "sqlite" {{ path = "{tmp_path / "c.db"}" }}\n'
                      f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = "true"\n}}\n'
                      'colour = "blue"\nmax_lease_ttl = "24h"\n')
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    try:
        assert server.request("GET", "sys/seal-status", token=None).json()["storage_type"] == "sqlite"
    finally:
        server.stop()
    assert 'unknown configuration key "colour"' in server.log()


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_server(tmp_path, f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
                                      '  tls_disable = true\n}\n')
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
