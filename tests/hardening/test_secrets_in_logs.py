"""No server log of the whole suite holds a secret a test created (this test is moved to the end of the run).

tests/conftest.py notes every server log file and every secret the tests send or receive over HTTP (tokens,
unseal keys, AWS secret keys, passwords, secret ids, kv values); this test adds a workload of its own, so it
means something when run alone, then greps every log. JSON logs are checked too (``-log-format=json``)."""

from __future__ import annotations

import json
import uuid

from conftest import PLUGIN_DIR, SECRETS, SERVER_LOGS, CofferProcess, free_port, remember_secret


def _workload(tmp_path) -> CofferProcess:
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}",
                            "-dev-plugin-dir", str(PLUGIN_DIR), "-log-format=json", "-log-level=debug"],
                           port, tmp_path).start()
    root = "root"
    value = f"kv-secret-{uuid.uuid4().hex}"
    server.request("PUT", "secret/data/app", token=root, json={"data": {"password": value}}).raise_for_status()
    remember_secret(value)
    token = server.request("POST", "auth/token/create", token=root, json={"policies": ["default"]}
                           ).json()["auth"]["client_token"]
    server.request("POST", "sys/auth/userpass", token=root, json={"type": "userpass"}).raise_for_status()
    password = f"pw-{uuid.uuid4().hex}"
    server.request("POST", "auth/userpass/users/alice", token=root, json={"password": password}).raise_for_status()
    login = server.request("POST", "auth/userpass/login/alice", token=None, json={"password": password}).json()
    assert login["auth"]["client_token"] in SECRETS and password in SECRETS and token in SECRETS
    # Leases issued, revoked and expired: each one gets its log line.
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    lease = server.request("GET", "things/creds/logged", token=root).json()["lease_id"]
    server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": lease}).raise_for_status()
    # Mistakes that get logged: a wrong token, a bad body.
    server.request("GET", "secret/data/app", token=f"s.{uuid.uuid4().hex}")
    server.request("PUT", "secret/data/app", token=root, data=b'{"data": {"password": ' + value.encode())
    return server


def test_no_secret_in_any_server_log(tmp_path):
    server = _workload(tmp_path)
    server.stop()
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    assert lines and all(json.loads(line)["@level"] for line in lines)  # -log-format=json: one object a line
    revoked = [json.loads(line) for line in lines if json.loads(line).get("event") == "lease_revoked"]
    assert len(revoked) == 1 and revoked[0]["mount"] == "things/" and revoked[0]["lease"].startswith("things/creds/")
    found = []
    secrets = sorted(SECRETS)
    for path in dict.fromkeys(SERVER_LOGS):
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        found += [f"{path}: {secret[:6]}…" for secret in secrets if secret in text]
    assert not found, f"secrets in server logs: {found}"
    assert len(secrets) > 5
