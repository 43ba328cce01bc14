"""A bounded schemathesis run over coffer's own OpenAPI document: no request makes a server error (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CofferProcess, free_port

#: Paths that would end the run's own server or token: sealing, rotating, (re)initializing, revoking root.
EXCLUDED = r"^/(sys/(seal|rotate|init|unseal|step-down)|auth/token/revoke-self)$"


def test_no_generated_request_makes_a_server_error(tmp_path):
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}"],
                           port, tmp_path).start()
    try:
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", f"{server.addr}/v1/sys/internal/specs/openapi", "--url", f"{server.addr}/v1",
             "-H", "X-Vault-Token: root", "--checks", "not_a_server_error", "--phases", "coverage,fuzzing",
             "--max-examples", "25", "--workers", "1", "--exclude-path-regex", EXCLUDED, "--seed", "1",
             "--no-color"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "HOME": str(tmp_path)},
        )
        summary = result.stdout[-3000:]
        assert result.returncode == 0, summary
        assert " passed" in summary and "failed" not in summary.split("Test cases:")[-1], summary
        assert "internal error" not in server.log() and "Traceback" not in server.log()
    finally:
        server.stop()
