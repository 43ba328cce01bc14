"""The ``coffer`` command line end to end: every call is ``python -m coffer ...`` in a
subprocess (HOME in a temporary folder, address and token from the environment or
flags) against real servers: the shared dev server, a dev server whose AWS engine
talks to moto (IAM auth enforced), and an uninitialized SQLite server."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import termios
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from aws_support import MINIMAL_ROOT_POLICY
from coffer import __version__
from conftest import ROOT_TOKEN, CofferProcess, free_port

ROLE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:GetUser"], "Resource": "*"}]}
LEGACY_WARNING = "Detected use of legacy role or policy parameter. Please upgrade to use the new parameters."
ENVELOPE = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth",
            "mount_type"}
UNREACHABLE = "http://127.0.0.1:1"


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"coffer {' '.join(self.args)} -> exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def clean_environ() -> dict[str, str]:
    """os.environ without anything that would point the CLI elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "COFFER_"))}


class Cli:
    """Runs ``coffer`` with HOME=home and, unless told otherwise, VAULT_ADDR/VAULT_TOKEN set."""

    def __init__(self, home: Path, addr: str | None, token: str | None = ROOT_TOKEN) -> None:
        self.home, self.addr, self.token = home, addr, token

    def env(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        env = {**clean_environ(), "HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        if self.addr:
            env["VAULT_ADDR"] = self.addr
        if self.token:
            env["VAULT_TOKEN"] = self.token
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None,
                 cwd: Path | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "coffer", *args], input=input if input is not None else "",
                              capture_output=True, text=True, env=self.env(env), cwd=cwd or self.home, timeout=60)
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kwargs) -> Result:
        result = self(*args, **kwargs)
        assert result.code == 0, str(result)
        return result

    def json(self, *args: str, **kwargs) -> dict:
        return json.loads(self.ok(*args, "-format=json", **kwargs).out)


def typed_at_a_terminal(cli: Cli, args: tuple[str, ...], typed: str) -> tuple[Result, bytes]:
    """Run coffer with a pseudo-terminal as stdin and controlling terminal; type ``typed``
    once the prompt is up. Returns the result and everything the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "coffer", *args], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cli.env(), cwd=cli.home, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    shown = b""
    try:
        # getpass turns echo off, then writes to the terminal: type only after that.
        ready, _, _ = select.select([master], [], [], 20)
        assert ready, "no prompt on the terminal"
        shown += os.read(master, 1024)
        os.write(master, typed.encode() + b"\n")
        out, err = proc.communicate(timeout=30)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return Result(args, proc.returncode, out.decode(), err.decode()), shown


def table(text: str) -> list[tuple[str, str]]:
    """The rows of a Key/Value table (header and its rule checked and dropped)."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0].split() == ["Key", "Value"], text
    assert lines[1].split() == ["---", "-----"] and lines[1].index("-----") == lines[0].index("Value"), text
    rows = []
    for line in lines[2:]:
        m = re.fullmatch(r"(\S.*?)(?:\s{2,}(.*))?", line)  # keys may hold one space ("Seal Type")
        assert m, text
        rows.append((m.group(1), (m.group(2) or "").strip()))
    return rows


def api_error(addr: str, method: str, path: str, code: int, *errors: str) -> str:
    return (f"Error making API request.\n\nURL: {method} {addr}/v1/{path}\nCode: {code}. Errors:\n\n"
            + "".join(f"* {e}\n" for e in errors))


def assert_one_line_error(result: Result, address: str) -> None:
    assert result.code == 2, str(result)
    assert result.out == ""
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, str(result)
    assert address in result.err and "refused" in result.err.lower(), str(result)


@pytest.fixture
def cli(dev_server, tmp_path) -> Cli:
    """The CLI against the shared dev server, as root, with its own HOME."""
    return Cli(tmp_path, dev_server.addr)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- AWS against moto


@pytest.fixture(scope="module")
def aws_server(tmp_path_factory):
    """A dev server of its own (the walkthrough mounts at the fixed path aws/)."""
    home = tmp_path_factory.mktemp("cli-aws")
    port = free_port()
    # The Go-style spellings of the dev flags (the shared fixture uses the spaced ones).
    server = CofferProcess(["-dev", f"-dev-root-token-id={ROOT_TOKEN}", f"-dev-listen-address=127.0.0.1:{port}"],
                           port, home).start()
    yield server
    server.stop()


@dataclass
class Walkthrough:
    cli: Cli
    server: CofferProcess
    steps: dict[str, Result]


@pytest.fixture(scope="module")
def aws(aws_server, moto, tmp_path_factory) -> Walkthrough:
    """The 2015 walkthrough's set-up, done with the CLI; each step's result is kept for the tests."""
    home = tmp_path_factory.mktemp("cli-aws-home")
    cli = Cli(home, aws_server.addr)
    key = moto.make_user(unique("hashicorp"), MINIMAL_ROOT_POLICY)
    steps: dict[str, Result] = {}
    steps["mount"] = cli("mount", "aws")
    (home / "creds.json").write_text(json.dumps({
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}))
    steps["config"] = cli("write", "aws/config/root", "-", input=(home / "creds.json").read_text())
    (home / "policy.json").write_text(json.dumps(ROLE_POLICY, indent=2))
    steps["role"] = cli("write", "aws/roles/deploy", "policy=@policy.json")
    steps["batch-role"] = cli("write", "aws/roles/batch", "credential_type=iam_user",
                              "policy_document=@policy.json")
    return Walkthrough(cli, aws_server, steps)


def test_aws_walkthrough(aws, moto):
    cli, steps = aws.cli, aws.steps
    assert steps["mount"].code == 0 and steps["mount"].out == "Successfully mounted 'aws' at 'aws'!\n", \
        str(steps["mount"])
    assert steps["config"].code == 0 and steps["config"].out == "Success! Data written to: aws/config/root\n", \
        str(steps["config"])
    role = steps["role"]
    assert role.code == 0, str(role)
    assert "WARNING!" in role.err and LEGACY_WARNING in role.err, str(role)  # vault shows warnings on stderr
    assert "Success! Data written to: aws/roles/deploy" in role.out, str(role)

    reads = [cli.ok("read", "aws/creds/deploy") for _ in range(2)]
    creds = []
    for result in reads:
        rows = table(result.out)
        keys = [k for k, _ in rows]
        assert keys[:3] == ["lease_id", "lease_duration", "lease_renewable"], result.out
        assert keys[3:5] == ["access_key", "secret_key"], result.out
        assert keys[3:] == sorted(keys[3:]), result.out
        values = dict(rows)
        assert values["lease_id"].startswith("aws/creds/deploy/")
        assert values["lease_duration"] == "3600" and values["lease_renewable"] == "true"
        assert values["access_key"].startswith("AKIA") and values["secret_key"]
        creds.append(values)
    assert creds[0]["access_key"] != creds[1]["access_key"]
    users = [moto.user_of(c["access_key"]) for c in creds]
    assert all(u and u.startswith("vault-root-deploy-") for u in users)

    revoked = cli("revoke", creds[0]["lease_id"])
    assert revoked.code == 0, str(revoked)
    assert revoked.out == f"Success! Revoked the secret with ID '{creds[0]['lease_id']}', if it existed.\n"
    assert not moto.user_exists(users[0])
    assert moto.user_exists(users[1])
    cli.ok("lease", "revoke", creds[1]["lease_id"])
    assert not moto.user_exists(users[1])


def test_aws_config_from_files_and_stdin(aws, moto):
    """K=@file and K=- values, and a whole JSON object from @file.json."""
    cli, home = aws.cli, aws.cli.home
    config = json.loads((home / "creds.json").read_text())
    (home / "access_key").write_text(config["access_key"])
    written = cli("write", "aws/config/root", "access_key=@access_key", "secret_key=-", "region=us-east-1",
                  f"iam_endpoint={config['iam_endpoint']}", f"sts_endpoint={config['sts_endpoint']}",
                  input=config["secret_key"])
    assert written.code == 0 and written.out == "Success! Data written to: aws/config/root\n", str(written)
    read = cli.ok("read", "aws/config/root")
    values = dict(table(read.out))
    assert values["access_key"] == config["access_key"] and "secret_key" not in values
    cli.ok("write", "aws/config/root", "@creds.json")
    # The configuration works: a credential can be made and taken back.
    lease = cli.ok("read", "-field=lease_id", "aws/creds/deploy").out
    assert lease.startswith("aws/creds/deploy/") and "\n" not in lease
    cli.ok("lease", "revoke", lease)


def test_aws_path_help(aws):
    creds_help = aws.cli.ok("path-help", "aws/creds/deploy").out
    # as Vault answers for a path: the path asked, the route that matched, then that route's own help
    assert creds_help.startswith("Request:        creds/deploy\nMatching Route: ^creds/")
    assert "IAM user" in creds_help and "PARAMETERS" in creds_help


def test_aws_path_help_on_the_mount_root(aws):
    """``coffer path-help aws`` asks ``GET /v1/aws?help=1``: a help request for the mount's root
    path, which Vault's framework answers with the engine's help (handleRootHelp) even when no
    path of the engine matches "". coffer's framework does the same (Backend answers a help request
    for its root with the engine's help before routing the path)."""
    result = aws.cli("path-help", "aws")
    assert result.code == 0, str(result)
    assert "AWS secrets engine" in result.out, str(result)


def test_error_block_exact(aws):
    result = aws.cli("revoke", "aws/creds/deploy/nope")
    assert result.code == 2, str(result)
    assert result.out == ""
    assert result.err == api_error(aws.server.addr, "PUT", "sys/revoke/aws/creds/deploy/nope", 400, "invalid lease")


def test_aws_formats_and_field(aws):
    cli = aws.cli
    body = cli.json("read", "aws/creds/deploy")
    assert set(body) == ENVELOPE, body
    assert body["lease_id"].startswith("aws/creds/deploy/") and body["lease_duration"] == 3600
    assert body["renewable"] is True and body["data"]["access_key"].startswith("AKIA")
    as_yaml = yaml.safe_load(cli.ok("read", "--format", "yaml", "aws/creds/deploy").out)
    assert set(as_yaml) == ENVELOPE and as_yaml["data"]["access_key"].startswith("AKIA")
    assert as_yaml["data"]["access_key"] != body["data"]["access_key"]
    secret = cli.ok("read", "-field=secret_key", "aws/creds/deploy").out
    assert secret and secret == secret.strip() and not secret.endswith("\n")
    missing = cli("read", "-field=nope", "aws/creds/batch")
    assert missing.code == 2 and 'field "nope"' in missing.err, str(missing)
    cli.ok("lease", "revoke", "-prefix", "aws/creds/")


def test_lease_lookup_renew_and_prefix_progress(aws, moto):
    cli = aws.cli
    assert aws.steps["batch-role"].code == 0, str(aws.steps["batch-role"])
    cleared = cli.ok("lease", "revoke", "-prefix", "aws/creds/batch")  # whatever an earlier test left
    assert cleared.out == "Success! Revoked leases with prefix: aws/creds/batch\n"
    lease_id = cli.json("read", "aws/creds/batch")["lease_id"]
    looked = dict(table(cli.ok("lease", "lookup", lease_id).out))
    assert looked["id"] == lease_id and looked["renewable"] == "true" and 0 < int(looked["ttl"]) <= 3600
    renewed = dict(table(cli.ok("lease", "renew", "-increment=2h", lease_id).out))
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == "7200"
    legacy = dict(table(cli.ok("renew", lease_id, "30m").out))
    assert legacy["lease_duration"] == "1800"
    assert cli.ok("lease", "lookup", "--format", "json", lease_id).out.count('"ttl"') == 1

    created = [cli.json("read", "aws/creds/batch") for _ in range(2)]
    users = [moto.user_of(c["data"]["access_key"]) for c in created]
    # read takes K=V query parameters.
    assert cli.ok("read", "-field=lease_count", "sys/leases/count", "prefix=aws/creds/batch/").out == "3"
    result = cli("lease", "revoke", "-prefix", "-sync=false", "aws/creds/batch")
    assert result.code == 0, str(result)
    progress = [line for line in result.out.splitlines() if line.startswith("revoked ")]
    assert progress and all(re.fullmatch(r"revoked [0-3] of 3", line) for line in progress), result.out
    assert progress[-1] == "revoked 3 of 3", result.out
    assert result.out.rstrip().endswith("Success! Revoked leases with prefix: aws/creds/batch")
    assert cli.ok("read", "-field=lease_count", "sys/leases/count", "prefix=aws/creds/batch/").out == "0"
    assert not any(moto.user_exists(u) for u in users)
    gone = cli("lease", "lookup", lease_id)
    assert gone.code == 2 and "* invalid lease" in gone.err, str(gone)


# --------------------------------------------------------------------------- reading and writing


def test_write_read_list_delete_and_inputs(cli, kv1, tmp_path):
    base = f"{kv1}/{unique('cli')}"
    assert cli.ok("write", f"{base}/hello", "value=world").out == f"Success! Data written to: {base}/hello\n"
    # README's example, exactly: the header underlined, as vault read
    assert cli.ok("read", f"{base}/hello").out == "Key    Value\n---    -----\nvalue  world\n"
    cli.ok("write", f"{base}/plain", "b=2", "a=1", "c_long_key=3")
    assert cli.ok("read", f"{base}/plain").out == \
        "Key         Value\n---         -----\na           1\nb           2\nc_long_key  3\n"

    (tmp_path / "note.txt").write_text("line one\nline two\n")
    cli.ok("write", f"{base}/files", "note=@note.txt", "stdin=-", input="from stdin")
    assert cli.json("read", f"{base}/files")["data"] == {"note": "line one\nline two\n", "stdin": "from stdin"}

    cli.ok("write", f"{base}/json", "-", input=json.dumps({"n": 3, "nested": {"k": ["v"]}}))
    assert cli.json("read", f"{base}/json")["data"] == {"n": 3, "nested": {"k": ["v"]}}
    (tmp_path / "obj.json").write_text(json.dumps({"from_file": True}))
    cli.ok("write", f"{base}/objfile", "@obj.json", "extra=x")
    assert cli.json("read", f"{base}/objfile")["data"] == {"from_file": True, "extra": "x"}

    assert cli.ok("read", "-field=a", f"{base}/plain").out == "1"
    assert cli.ok("read", "--field", "note", f"{base}/files").out == "line one\nline two\n"

    listed = cli.ok("list", base).out.splitlines()
    assert listed[0] == "Keys" and listed[-5:] == ["files", "hello", "json", "objfile", "plain"], listed
    # as vault list: -format=json / yaml print only the array of keys
    assert cli.json("list", f"{base}/") == ["files", "hello", "json", "objfile", "plain"]
    assert yaml.safe_load(cli.ok("list", "-format=yaml", base).out)[0] == "files"

    deleted = cli.ok("delete", f"{base}/plain")
    assert deleted.out == f"Success! Data deleted (if it existed) at: {base}/plain\n"
    missing = cli("read", f"{base}/plain")
    assert missing.code == 2 and missing.out == "" and f"No value found at {base}/plain" in missing.err, str(missing)
    nothing = cli("list", f"{base}/none")
    assert nothing.code == 2 and "No value found" in nothing.err


def test_json_and_yaml_envelope(cli, kv1):
    path = f"{kv1}/{unique('fmt')}"
    cli.ok("write", path, "value=world", "n=1")
    body = cli.json("read", path)
    assert set(body) == ENVELOPE and body["data"] == {"value": "world", "n": "1"} and body["mount_type"] == "kv"
    as_yaml = yaml.safe_load(cli.ok("read", "-format=yaml", path).out)
    assert set(as_yaml) == ENVELOPE and as_yaml["data"] == body["data"]
    assert json.loads(cli.ok("read", path, "--format=json").out)["data"] == body["data"]  # flags after args too


def test_bad_inputs_are_usage_errors(cli):
    for args, text in [
        (("write", "secret/x", "novalue"), 'expected KEY=VALUE, got "novalue"'),
        (("write", "secret/x", "a=@/nonexistent/file"), "cannot read /nonexistent/file"),
        (("write", "secret/x", "-"), "expected a JSON object"),
    ]:
        result = cli(*args, input="[1, 2]")
        assert result.code == 1, str(result)
        assert "Usage: coffer write" in result.err and text in result.err, str(result)


# --------------------------------------------------------------------------- address and token


def test_address_and_token_precedence(dev_server, kv1, tmp_path):
    path = f"{kv1}/{unique('env')}"
    cli = Cli(tmp_path, None, None)
    addr = dev_server.addr
    assert cli.ok("write", path, "v=1", env={"VAULT_ADDR": addr, "VAULT_TOKEN": ROOT_TOKEN}).code == 0
    read = {"VAULT_TOKEN": ROOT_TOKEN}
    # VAULT_ADDR alone, COFFER_ADDR over VAULT_ADDR, -address over both.
    assert cli.ok("read", "-field=v", path, env={**read, "VAULT_ADDR": addr}).out == "1"
    assert cli.ok("read", "-field=v", path, env={**read, "VAULT_ADDR": UNREACHABLE, "COFFER_ADDR": addr}).out == "1"
    assert cli.ok("read", "-field=v", f"-address={addr}", path,
                  env={**read, "VAULT_ADDR": UNREACHABLE, "COFFER_ADDR": UNREACHABLE}).out == "1"
    assert cli.ok("read", "--address", addr, "-field=v", path, env=read).out == "1"
    assert_one_line_error(cli("read", path, env={**read, "COFFER_ADDR": UNREACHABLE, "VAULT_ADDR": addr}),
                          UNREACHABLE)
    assert_one_line_error(cli("read", f"-address={UNREACHABLE}", path, env={**read, "VAULT_ADDR": addr}),
                          UNREACHABLE)
    assert_one_line_error(cli("status", f"-address={UNREACHABLE}"), UNREACHABLE)

    # Tokens: COFFER_TOKEN over VAULT_TOKEN, VAULT_TOKEN over ~/.coffer-token.
    env = {"VAULT_ADDR": addr}
    denied = cli("read", path, env={**env, "COFFER_TOKEN": "hvs.bogus", "VAULT_TOKEN": ROOT_TOKEN})
    assert denied.code == 2 and "Code: 403" in denied.err, str(denied)
    assert cli.ok("read", "-field=v", path, env={**env, "COFFER_TOKEN": ROOT_TOKEN, "VAULT_TOKEN": "x"}).out == "1"
    (tmp_path / ".coffer-token").write_text("hvs.bogus\n")
    assert cli.ok("read", "-field=v", path, env={**env, "VAULT_TOKEN": ROOT_TOKEN}).out == "1"
    assert cli("read", path, env=env).code == 2
    (tmp_path / ".coffer-token").write_text(ROOT_TOKEN + "\n")
    assert cli.ok("read", "-field=v", path, env=env).out == "1"


def test_default_address(tmp_path):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8200)) == 0:
            pytest.skip("something listens on 127.0.0.1:8200")
    assert_one_line_error(Cli(tmp_path, None)("status"), "http://127.0.0.1:8200")


def test_login_stores_the_token(cli, dev_server, tmp_path):
    child = cli.json("token", "create", "-policy=default", "-ttl=1h")["auth"]
    anonymous = Cli(tmp_path, dev_server.addr, token=None)
    assert anonymous("token", "lookup").code == 2
    login = anonymous("login", child["client_token"])
    assert login.code == 0, str(login)
    assert "Success! You are now authenticated" in login.out and child["accessor"] in login.out
    stored = tmp_path / ".coffer-token"
    assert stored.read_text().strip() == child["client_token"]
    assert stored.stat().st_mode & 0o777 == 0o600
    looked = dict(table(anonymous.ok("token", "lookup").out))
    assert looked["accessor"] == child["accessor"] and looked["policies"] == "[default]"

    # Prompted (hidden) when omitted: from stdin when stdin is not a terminal.
    again = anonymous("login", input=ROOT_TOKEN + "\n")
    assert again.code == 0, str(again)
    assert stored.read_text().strip() == ROOT_TOKEN and ROOT_TOKEN not in again.err
    assert anonymous.ok("token", "lookup", "-field=policies").out == "[root]"
    typed, shown = typed_at_a_terminal(anonymous, ("login",), child["client_token"])
    assert typed.code == 0 and "Token (will be hidden):" in typed.out + shown.decode(), str(typed)
    assert child["client_token"].encode() not in shown, shown
    assert stored.read_text().strip() == child["client_token"]
    anonymous.ok("login", ROOT_TOKEN)
    bad = anonymous("login", "hvs.nope")
    assert bad.code == 2 and "Code: 403" in bad.err
    assert stored.read_text().strip() == ROOT_TOKEN  # a refused token is not stored


# --------------------------------------------------------------------------- lifecycle


def test_operator_init_unseal_seal(sqlite_server, tmp_path):
    cli = Cli(tmp_path, sqlite_server.addr, token=None)
    status = cli("status")
    assert status.code == 2, str(status)
    rows = dict(table(status.out))
    assert rows["Initialized"] == "false" and rows["Sealed"] == "true"

    init = cli.ok("operator", "init", "-key-shares=5", "-key-threshold=3").out
    keys = re.findall(r"^Unseal Key (\d): (\S+)$", init, re.M)
    assert [n for n, _ in keys] == ["1", "2", "3", "4", "5"], init
    root = re.search(r"^Initial Root Token: (hvs\.\S+)$", init, re.M).group(1)
    keys = [k for _, k in keys]

    first = dict(table(cli.ok("operator", "unseal", keys[0]).out))
    assert first["Sealed"] == "true" and first["Unseal Progress"] == "1/3"
    prompted = cli("operator", "unseal", input=keys[3] + "\n")  # the hidden prompt, fed through stdin
    assert prompted.code == 0, str(prompted)
    assert dict(table(prompted.out))["Unseal Progress"] == "2/3" and keys[3] not in prompted.out + prompted.err
    # At a terminal: prompted, and the key is not echoed.
    typed, shown = typed_at_a_terminal(cli, ("operator", "unseal"), keys[2])
    assert typed.code == 0, str(typed)
    assert "Unseal Key (will be hidden):" in typed.out + shown.decode() and keys[2] not in typed.out + typed.err
    assert keys[2].encode() not in shown, shown
    assert dict(table(typed.out[typed.out.index("Key "):]))["Sealed"] == "false"
    cli.ok("operator", "seal", env={"VAULT_TOKEN": root})
    for key in keys[:2]:
        cli.ok("operator", "unseal", key)
    empty = cli("operator", "unseal", input="")
    assert empty.code == 1, str(empty)
    last = dict(table(cli.ok("operator", "unseal", "--format", "table", keys[4]).out))
    assert last["Sealed"] == "false" and "Unseal Progress" not in last

    status = cli.ok("status")
    assert dict(table(status.out))["Sealed"] == "false"
    assert cli.json("status")["sealed"] is False

    cli.ok("login", root)
    assert (tmp_path / ".coffer-token").read_text().strip() == root
    assert dict(table(cli.ok("operator", "key-status").out))["Key Term"] == "1"
    assert cli.ok("operator", "rotate").out.startswith("Success! Rotated key")
    assert cli.json("operator", "key-status")["data"]["term"] == 2
    cli.ok("secrets", "enable", "-path=secret", "kv")
    cli.ok("write", "secret/after-rotate", "v=1")

    assert cli.ok("operator", "seal").out == "Success! coffer is sealed.\n"
    sealed = cli("status")
    assert sealed.code == 2 and dict(table(sealed.out))["Sealed"] == "true"
    refused = cli("read", "secret/after-rotate")
    assert refused.code == 2
    assert refused.err == api_error(sqlite_server.addr, "GET", "secret/after-rotate", 503, "Vault is sealed")
    for key in keys[1:4]:
        cli.ok("operator", "unseal", key)
    assert cli.ok("read", "-field=v", "secret/after-rotate").out == "1"


# --------------------------------------------------------------------------- tokens, policies, mounts


def test_tokens(cli):
    created = cli.ok("token", "create", "-policy=default", "--ttl", "1h", "-display-name=cli-test")
    rows = dict(table(created.out))
    assert rows["token"].startswith("hvs.") and rows["token_policies"] == "[default]"
    token, accessor = rows["token"], rows["token_accessor"]
    bare = cli.ok("token", "create", "-policy=default", "-field=token").out
    assert bare.startswith("hvs.") and not bare.endswith("\n")

    looked = dict(table(cli.ok("token", "lookup", token).out))
    assert looked["accessor"] == accessor and looked["display_name"] == "token-cli-test"
    by_accessor = cli.json("token", "lookup", "-accessor", accessor)
    assert by_accessor["data"]["accessor"] == accessor
    assert cli.json("token", "lookup")["data"]["policies"] == ["root"]

    renewed = cli.json("token", "renew", "-increment=2h", token)
    assert 7000 < renewed["auth"]["lease_duration"] <= 7200
    as_child = Cli(cli.home, cli.addr, token)
    assert as_child.json("token", "renew")["auth"]["client_token"] == token

    assert cli.ok("token", "capabilities", token, "secret/anything").out == "deny\n"
    assert cli.ok("token", "capabilities", "secret/anything").out == "root\n"
    assert as_child.ok("token", "capabilities", "auth/token/lookup-self").out.strip() == "read"

    assert cli.ok("token", "revoke", token).out == "Success! Revoked token (if it existed)\n"
    gone = cli("token", "lookup", token)
    assert gone.code == 2 and gone.err.startswith("Error making API request.")
    bare_client = Cli(cli.home, cli.addr, bare)
    assert bare_client.ok("token", "revoke", "-self").code == 0
    assert bare_client("token", "lookup").code == 2
    usage = cli("token", "revoke")
    assert usage.code == 1 and "Usage: coffer token revoke" in usage.err


def test_policies(cli, tmp_path):
    name = unique("reader")
    text = 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\n'
    (tmp_path / "reader.hcl").write_text(text)
    (tmp_path / "bad.hcl").write_text('path "secret/*" {\n  capabilities = [read\n')
    assert cli.ok("policy", "fmt", "reader.hcl").out == "Success! Policy reader.hcl is valid\n"
    bad = cli("policy", "fmt", "bad.hcl")
    assert bad.code == 2 and "line 2" in bad.err, str(bad)

    assert cli.ok("policy", "write", name, "reader.hcl").out == f"Success! Uploaded policy: {name}\n"
    cli.ok("policy", "write", f"{name}-2", "-", input=text)
    assert cli.ok("policy", "read", name).out == text
    assert cli.json("policy", "read", f"{name}-2")["data"]["policy"] == text
    names = cli.ok("policy", "list").out.split()
    assert {name, f"{name}-2", "default", "root"} <= set(names)
    assert name in cli.json("policy", "list")

    token = cli.ok("token", "create", f"-policy={name}", "-field=token").out
    caps = cli.ok("token", "capabilities", token, "secret/x").out.strip()
    assert caps in ("list, read", "read, list"), caps

    assert cli.ok("policy", "delete", f"{name}-2").out == f"Success! Deleted policy: {name}-2\n"
    missing = cli("policy", "read", f"{name}-2")
    assert missing.code == 2 and "Code: 404" in missing.err


def test_secrets_engines_both_spellings(cli):
    team, moved = unique("team"), unique("moved")
    assert cli.ok("secrets", "enable", f"-path={team}", "-description=the team", "kv").out == \
        f"Success! Enabled the kv secrets engine at: {team}/\n"
    listed = cli.ok("secrets", "list").out
    assert re.search(rf"^{team}/\s+kv\s+kv_\w+\s+the team$", listed, re.M), listed
    assert cli.ok("secrets", "tune", "-default-lease-ttl=30m", team).out == \
        f"Success! Tuned the secrets engine at: {team}/\n"
    assert cli.json("secrets", "list")["data"][f"{team}/"]["config"]["default_lease_ttl"] == 1800
    cli.ok("secrets", "tune", "-listing-visibility=unauth", team)
    assert cli.json("secrets", "list")["data"][f"{team}/"]["config"]["listing_visibility"] == "unauth"
    assert re.search(rf"^{team}/\s+kv\s+kv_\w+\s+1800\s+system\s+n/a\s+the team$",
                     cli.ok("secrets", "list", "-detailed").out, re.M)
    assert cli.ok("secrets", "move", team, moved).out == f"Success! Moved secrets engine {team}/ to: {moved}/\n"
    assert cli.ok("secrets", "disable", moved).out == \
        f"Success! Disabled the secrets engine (if it existed) at: {moved}/\n"
    assert f"{moved}/" not in cli.json("secrets", "list")["data"]

    old, older = unique("old"), unique("older")
    assert cli.ok("mount", f"--path={old}", "kv").out == f"Successfully mounted 'kv' at '{old}'!\n"
    assert re.search(rf"^{old}/\s+kv\s", cli.ok("mounts").out, re.M)
    cli.ok("mount-tune", "-max-lease-ttl=24h", old)
    assert cli.json("mounts")["data"][f"{old}/"]["config"]["max_lease_ttl"] == 86400
    assert cli.ok("remount", old, older).out == f"Successfully remounted '{old}' to '{older}'!\n"
    assert cli.ok("unmount", older).out == f"Successfully unmounted '{older}' if it was mounted\n"
    assert f"{older}/" not in cli.json("mounts")["data"]

    unknown = cli("secrets", "enable", "nosuchengine")
    assert unknown.code == 2 and "plugin not found in the catalog: nosuchengine" in unknown.err, str(unknown)


def test_audit_enable_list_disable(cli, tmp_path):
    """Audit devices, or, on a server without them, the server's answer rendered as an API error."""
    path, log = unique("file"), tmp_path / "audit.log"
    listed = cli("audit", "list")
    if listed.code != 0:
        assert listed.code == 2 and listed.err.startswith(
            f"Error making API request.\n\nURL: GET {cli.addr}/v1/sys/audit\nCode: "), str(listed)
        for args in (("audit", "enable", f"-path={path}", "file", f"file_path={log}"), ("audit", "disable", path)):
            result = cli(*args)
            assert result.code == 2 and "URL: " in result.err and f"{cli.addr}/v1/sys/audit/{path}" in result.err
        return
    enabled = cli.ok("audit", "enable", f"-path={path}", "file", f"file_path={log}")
    assert enabled.out == f"Success! Enabled the file audit device at: {path}/\n"
    assert re.search(rf"^{path}/\s+file$", cli.ok("audit", "list").out, re.M)
    assert cli.json("audit", "list")["data"][f"{path}/"]["options"]["file_path"] == str(log)
    cli.ok("read", "sys/mounts")
    assert log.exists() and log.read_text().strip()
    assert cli.ok("audit", "disable", path).out == f"Success! Disabled audit device (if it was enabled) at: {path}/\n"
    assert f"{path}/" not in (cli.json("audit", "list").get("data") or {})


def test_path_help_and_version(cli):
    assert "kv secrets engine" in cli.ok("path-help", "secret").out
    assert "PARAMETERS" in cli.ok("path-help", "secret/some/path").out
    assert cli.ok("version").out == f"coffer v{__version__}\n"


# --------------------------------------------------------------------------- usage and help


def test_usage_errors_exit_1_with_usage(cli):
    for args, usage in [
        (("read",), "Usage: coffer read"),
        (("bogus",), "Usage: coffer"),
        (("read", "-format=xml", "secret/x"), "Usage: coffer read"),
        (("read", "-nope", "secret/x"), "Usage: coffer read"),
        (("operator", "init", "-key-shares=five"), "Usage: coffer operator init"),
        (("token", "capabilities", "a", "b", "c"), "Usage: coffer token capabilities"),
        (("server",), "Usage: coffer server"),
        (("lease", "revoke"), "Usage: coffer lease revoke"),
    ]:
        result = cli(*args)
        assert result.code == 1, str(result)
        assert usage in result.err and "Error:" in result.err and "Traceback" not in result.err, str(result)


def all_commands() -> list[tuple[str, ...]]:
    from coffer.cli.main import cli as root

    found: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            found.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(root, ())
    return found


def test_help_everywhere_with_an_example(tmp_path):
    cli = Cli(tmp_path, UNREACHABLE)
    commands = all_commands()
    expected = {"server", "status", "operator", "read", "write", "delete", "list", "path-help", "secrets", "mount",
                "unmount", "mounts", "remount", "mount-tune", "token", "login", "lease", "revoke", "renew", "policy",
                "audit", "version"}
    assert expected <= {c[0] for c in commands if c}
    runs = [(c, flag) for c in commands for flag in ("-h",)] + [(("read",), "--help"), (("lease", "renew"), "-help")]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda run: cli(*run[0], run[1]), runs))
    for (command, _), result in zip(runs, results, strict=True):
        assert result.code == 0, str(result)
        assert result.out.startswith(f"Usage: coffer {' '.join(command)}".rstrip()), str(result)
        assert re.search(r"^\s+Examples?:\n\s+coffer ", result.out, re.M), str(result)
