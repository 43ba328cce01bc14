"""Auto-unseal with AWS KMS (moto's server, auth enforced), recovery keys, and seal migration both ways.

Real ``coffer server`` processes on SQLite files; the migration is driven with the CLI
(``coffer operator unseal -migrate``) as a subprocess.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CofferProcess, free_port, remember_secret, write_config


@pytest.fixture(scope="module")
def kms_key(moto) -> str:
    return moto.admin_client("kms").create_key(Description="coffer seal")["KeyMetadata"]["KeyId"]


def awskms_stanza(moto, key_id: str, *, disabled: bool = False, access_key: str | None = None,
                  secret_key: str | None = None, credentials: bool = True) -> str:
    admin = moto.admin
    remember_secret(admin.secret_access_key)
    keys = (f'  access_key = "{access_key or admin.access_key_id}"\n'
            f'  secret_key = "{secret_key or admin.secret_access_key}"\n') if credentials else ""
    return (f'seal "awskms" {{\n  region = "us-east-1"\n  kms_key_id = "{key_id}"\n  endpoint = "{moto.endpoint}"\n'
            + keys + ('  disabled = "true"\n' if disabled else "") + "}\n")


class Node:
    """One server on a SQLite file in ``home``, restartable with another config."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.server: CofferProcess | None = None

    def start(self, seal: str = "") -> CofferProcess:
        config = write_config(self.home, self.port, extra=seal)
        log = self.home / f"server-{self.port}.log"
        self.offset = log.stat().st_size if log.exists() else 0
        self.server = CofferProcess(["-config", str(config)], self.port, self.home).start()
        return self.server

    def log(self) -> str:
        """What the server wrote since its last start (the log file is shared by its runs)."""
        assert self.server is not None
        return self.server.log()[self.offset:]

    def restart(self, seal: str = "") -> CofferProcess:
        self.stop()
        return self.start(seal)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def node(tmp_path: Path):
    node = Node(tmp_path)
    yield node
    node.stop()


def status(server: CofferProcess) -> dict:
    r = server.request("GET", "sys/seal-status", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(what, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def wait_unsealed(server: CofferProcess) -> dict:
    def unsealed() -> dict | None:
        now = status(server)
        return None if now["sealed"] else now

    return wait_for(unsealed)


def cli(server: CofferProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAULT_ADDR": server.addr, "HOME": str(server.home)}
    env.pop("VAULT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "coffer", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def put_secret(server: CofferProcess, token: str) -> None:
    server.request("POST", "sys/mounts/kv", token=token, json={"type": "kv"}).raise_for_status()
    server.request("PUT", "kv/app", token=token, json={"password": "s3cret-kept-through-seals"}).raise_for_status()


def read_secret(server: CofferProcess, token: str) -> str:
    r = server.request("GET", "kv/app", token=token)
    assert r.status_code == 200, r.text
    return r.json()["data"]["password"]


def generate_root(server: CofferProcess, keys: list[str]) -> str:
    attempt = server.request("PUT", "sys/generate-root/attempt", token=None, json={}).json()
    otp, nonce = attempt["otp"], attempt["nonce"]
    for key in keys:
        body = server.request("PUT", "sys/generate-root/update", token=None,
                              json={"key": key, "nonce": nonce}).json()
    assert body["complete"] is True, body
    raw = base64.b64decode(body["encoded_token"] + "=" * (-len(body["encoded_token"]) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()


def test_init_gives_recovery_keys_and_every_restart_unseals_unattended(node, moto, kms_key):
    seal = awskms_stanza(moto, kms_key)
    server = node.start(seal)
    before = status(server)
    assert before["type"] == "awskms" and before["initialized"] is False
    # recovery_shares is what an auto-unseal init needs; secret_shares is refused (as Vault and OpenBao do)
    r = server.request("PUT", "sys/init", token=None, json={"secret_shares": 5, "secret_threshold": 3,
                                                            "recovery_shares": 3, "recovery_threshold": 2})
    assert r.status_code == 400 and "secret_shares,secret_threshold not applicable to seal type awskms" in r.text
    r = server.request("PUT", "sys/init", token=None, json={})
    assert r.status_code == 400 and "recovery_shares" in r.text
    r = server.request("PUT", "sys/init", token=None, json={"recovery_shares": 3, "recovery_threshold": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    remember_secret(body["recovery_keys"], body["recovery_keys_base64"], body["root_token"])
    assert body["keys"] == [] and len(body["recovery_keys"]) == 3 and len(body["recovery_keys_b64"]) == 3
    root, recovery = body["root_token"], body["recovery_keys"]
    after = status(server)  # unsealed by init, no key given
    assert (after["sealed"], after["type"], after["recovery_seal"], after["t"], after["n"], after["migration"]) \
        == (False, "awskms", True, 2, 3, False)
    put_secret(server, root)

    server = node.restart(seal)
    assert wait_unsealed(server)["type"] == "awskms"
    assert read_secret(server, root) == "s3cret-kept-through-seals"
    assert "unsealed with AWS KMS" in node.log()

    # the recovery keys authorize a new root token
    new_root = generate_root(server, recovery[:2])
    remember_secret(new_root)
    assert read_secret(server, new_root) == "s3cret-kept-through-seals"
    # ... and the wrong ones do not
    attempt = server.request("PUT", "sys/generate-root/attempt", token=None, json={}).json()
    made = AssertionError
    forged = bytearray(bytes.fromhex(recovery[1]))
    forged[0] ^= 0xFF  # a share with the right x coordinate and a wrong value
    for key in [recovery[0], forged.hex()]:
        made = server.request("PUT", "sys/generate-root/update", token=None,
                              json={"key": key, "nonce": attempt["nonce"]})
    assert made.status_code == 400 and "recovery key" in made.text
    server.request("DELETE", "sys/generate-root/attempt", token=None)
    # sys/rekey is for unseal keys: refused with a reason
    r = server.request("PUT", "sys/rekey/init", token=None, json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 400 and "recovery keys" in r.text

    # sealed by hand: the recovery keys (with KMS) unseal it again, as in Vault
    server.request("PUT", "sys/seal", token=root).raise_for_status()
    assert server.request("GET", "kv/app", token=root).status_code == 503
    first = server.request("PUT", "sys/unseal", token=None, json={"key": recovery[1]}).json()
    assert first["sealed"] is True and first["progress"] == 1
    assert server.request("PUT", "sys/unseal", token=None, json={"key": recovery[2]}).json()["sealed"] is False
    assert read_secret(server, root) == "s3cret-kept-through-seals"

    # the recovery keys are rekeyed at sys/rekey-recovery-key (sys/rekey is refused above)
    started = server.request("PUT", "sys/rekey-recovery-key/init", token=None,
                             json={"secret_shares": 2, "secret_threshold": 2}).json()
    assert (started["t"], started["n"], started["required"]) == (2, 2, 2)
    for key in recovery[:2]:
        body = server.request("PUT", "sys/rekey-recovery-key/update", token=None,
                              json={"key": key, "nonce": started["nonce"]}).json()
    assert body["complete"] is True and len(body["keys"]) == 2, body
    remember_secret(body["keys"], body["keys_base64"])
    assert (status(server)["t"], status(server)["n"]) == (2, 2)
    server = node.restart(seal)
    wait_unsealed(server)
    remember_secret(third_root := generate_root(server, body["keys"]))
    assert read_secret(server, third_root) == "s3cret-kept-through-seals"


def test_kms_failures_leave_the_node_sealed_with_a_clear_line(node, moto, kms_key, monkeypatch):
    # no credentials anywhere for the case without keys in the stanza (HOME is the node's own folder)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = node.start(awskms_stanza(moto, kms_key))
    made = cli(server, "operator", "init", "-recovery-shares=1", "-recovery-threshold=1")
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(": ", 1) for line in made.stdout.splitlines() if ": " in line)
    remember_secret(lines["Recovery Key 1"], lines["Initial Root Token"])
    assert "Unseal Key 1" not in lines and "1 recovery key shares" in made.stdout
    root = lines["Initial Root Token"]
    put_secret(server, root)
    other_key = moto.admin_client("kms").create_key()["KeyMetadata"]["KeyId"]
    cases = [
        (awskms_stanza(moto, "no-such-key"), "NotFoundException"),
        (awskms_stanza(moto, other_key), "AccessDeniedException"),  # KMS refuses: not the key it was sealed with
        (awskms_stanza(moto, kms_key, access_key="AKIAWRONGWRONGWRONG0", secret_key="wrong-secret-key-value"),
         "InvalidClientTokenId"),
        (awskms_stanza(moto, kms_key, credentials=False), "no AWS credentials found"),
    ]
    for seal, reason in cases:
        server = node.restart(seal)
        line = wait_for(lambda: next((ln for ln in node.log().splitlines() if "auto-unseal failed" in ln), None))
        assert reason in line and "stays sealed" in line, line
        assert "wrong-secret-key-value" not in node.log()
        seal_status = status(server)
        assert seal_status["sealed"] is True and seal_status["type"] == "awskms"
        assert server.request("GET", "kv/app", token=root).status_code == 503
        assert server.request("GET", "sys/health", token=None).status_code == 503
    server = node.restart(awskms_stanza(moto, kms_key))
    wait_unsealed(server)
    assert read_secret(server, root) == "s3cret-kept-through-seals"


def test_seal_migration_shamir_to_awskms_and_back(node, moto, kms_key):
    server = node.start()
    body = server.request("PUT", "sys/init", token=None, json={"secret_shares": 3, "secret_threshold": 2}).json()
    remember_secret(body["keys"], body["keys_base64"], body["root_token"])
    keys, root = body["keys_base64"], body["root_token"]
    for key in keys[:2]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    put_secret(server, root)

    # shamir -> awskms: the new stanza, the old one disabled; the unseal keys with -migrate
    server = node.restart(awskms_stanza(moto, kms_key) + 'seal "shamir" {\n  disabled = "true"\n}\n')
    pending = status(server)
    # as OpenBao answers: the type of the configured seal; t and n of the keys to give (the unseal keys)
    assert (pending["sealed"], pending["migration"], pending["type"], pending["t"], pending["n"]) == \
        (True, True, "awskms", 2, 3)
    assert wait_for(lambda: "seal migration from shamir to awskms is pending" in node.log())
    r = server.request("PUT", "sys/unseal", token=None, json={"key": keys[0]})
    assert r.status_code == 400 and "migrate option not provided and seal migration is pending" in r.text
    for key in keys[1:]:
        done = cli(server, "operator", "unseal", "-migrate", key)
        assert done.returncode == 0, done.stderr
    shown = cli(server, "status").stdout
    assert "Recovery Seal Type" in shown and "Total Recovery Shares" in shown, shown
    migrated = status(server)
    assert (migrated["sealed"], migrated["migration"], migrated["type"], migrated["recovery_seal"],
            migrated["t"], migrated["n"]) == (False, False, "awskms", True, 2, 3)
    assert read_secret(server, root) == "s3cret-kept-through-seals"
    server = node.restart(awskms_stanza(moto, kms_key))  # unattended from now on
    wait_unsealed(server)
    assert read_secret(server, root) == "s3cret-kept-through-seals"
    remember_secret(new_root := generate_root(server, keys[:2]))  # the old unseal keys are the recovery keys
    assert read_secret(server, new_root) == "s3cret-kept-through-seals"

    # the awskms stanza dropped without a migration: sealed, and the log says what is missing
    server = node.restart()
    assert wait_for(lambda: 'no seal "awskms" stanza' in node.log())
    assert status(server)["sealed"] is True

    # awskms -> shamir: the awskms stanza disabled; the recovery keys with -migrate
    server = node.restart(awskms_stanza(moto, kms_key, disabled=True))
    pending = status(server)
    assert (pending["sealed"], pending["migration"], pending["type"], pending["recovery_seal"]) == \
        (True, True, "shamir", False)
    for key in keys[:2]:
        done = cli(server, "operator", "unseal", "-migrate", key)
        assert done.returncode == 0, done.stderr
    back = status(server)
    assert (back["sealed"], back["migration"], back["type"], back["recovery_seal"], back["t"], back["n"]) == \
        (False, False, "shamir", False, 2, 3)
    server = node.restart()  # no seal stanza: Shamir, the recovery keys are the unseal keys
    assert status(server)["sealed"] is True
    for key in keys[1:]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    assert status(server)["sealed"] is False
    assert read_secret(server, root) == "s3cret-kept-through-seals"


def test_a_node_started_while_kms_fails_unseals_once_kms_answers(node, moto, kms_key, fault_proxy):
    class ThroughProxy:  # the stanza's endpoint is the fault proxy in front of moto
        admin, endpoint = moto.admin, fault_proxy.endpoint

    seal = awskms_stanza(ThroughProxy, kms_key)
    server = node.start(seal)
    fault_proxy.fail("Encrypt", "error500", times=None)  # an init while KMS fails: 502, nothing written
    r = server.request("PUT", "sys/init", token=None, json={"recovery_shares": 1, "recovery_threshold": 1})
    assert r.status_code == 502 and "AWS KMS encrypt" in r.text, r.text
    assert server.request("GET", "sys/init", token=None).json() == {"initialized": False}
    fault_proxy.clear()
    body = server.request("PUT", "sys/init", token=None, json={"recovery_shares": 1, "recovery_threshold": 1}).json()
    remember_secret(body["recovery_keys"], body["recovery_keys_base64"], body["root_token"])
    put_secret(server, body["root_token"])
    fault_proxy.fail("Decrypt", "drop", times=None)  # every Decrypt: the connection closes unanswered
    server = node.restart(seal)
    line = wait_for(lambda: next((ln for ln in node.log().splitlines() if "auto-unseal failed" in ln), None))
    assert "stays sealed" in line and "retrying" in line and "KMS is unreachable" in line, line
    assert status(server)["sealed"] is True
    assert server.request("GET", "kv/app", token=body["root_token"]).status_code == 503
    fault_proxy.clear()  # KMS is back: the next retry unseals, with no human
    wait_unsealed(server)
    assert read_secret(server, body["root_token"]) == "s3cret-kept-through-seals"
    assert sum("auto-unseal failed" in ln for ln in node.log().splitlines()) == 1  # one line, not one per retry
