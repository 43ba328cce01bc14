"""The server's log: log_level and log_format from the configuration, one line per lease revoked or expired."""

from __future__ import annotations

import json
import time

from conftest import start_lease_server


def test_lease_lines_at_info_in_text(tmp_path):
    server = start_lease_server(tmp_path)
    try:
        root = server.root_token
        lease = server.request("GET", "things/creds/seen", token=root).json()["lease_id"]
        server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": lease}).raise_for_status()
        server.request("GET", "things/creds/short", token=root, params={"ttl": "1s"}).raise_for_status()
        deadline = time.monotonic() + 15
        while "expired and was revoked" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = server.log()
        short = lease.rsplit("/", 1)[0] + "/" + lease.rsplit("/", 1)[1][:8]
        assert f"[INFO] coffer.expiration: lease {short} revoked (mount things/)" in log
        assert lease not in log  # only a prefix of the id
        assert "things/creds/short/" in log and "expired and was revoked (mount things/)" in log
        server.request("PUT", "sys/rotate", token=root).raise_for_status()
        assert "rotated the encryption key: new writes use term 2" in server.log()
    finally:
        server.stop()


def test_json_lines_and_the_level_is_honoured(tmp_path):
    server = start_lease_server(tmp_path, extra='log_format = "json"\nlog_level = "warn"\nbogus_key = 1\n')
    try:
        root = server.root_token
        lease = server.request("GET", "things/creds/quiet", token=root).json()["lease_id"]
        server.request("PUT", "things/config", token=root, json={"fail_always": True}).raise_for_status()
        r = server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": lease})
        assert r.status_code == 400
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert records, server.log()
    assert {r["@level"] for r in records} <= {"warn", "error"}  # nothing at info: "unsealed" is not there
    assert not any(r["@message"] == "unsealed" for r in records)
    assert any('unknown configuration key "bogus_key"' in r["@message"] for r in records)
    for r in records:
        assert set(r) >= {"@timestamp", "@level", "@module", "@message"}
