"""The vault CLI's habits, each as coffer subprocesses (issue 15, "The CLI's habits"): list -format=json, typo
suggestions for single-dash flags, -detailed, bare groups, the version flags, coffer help, the environment
variables and the token files, the read table's rule, -field on a terminal, coffer's own name in messages."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_cli import UNREACHABLE, Cli, Result, table, unique

from coffer import __version__
from conftest import ROOT_TOKEN


@pytest.fixture
def cli(dev_server, tmp_path) -> Cli:
    return Cli(tmp_path, dev_server.addr)


def on_a_terminal(cli: Cli, *args: str) -> Result:
    """Run coffer with its stdout on a pseudo-terminal (as when a person types the command)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "coffer", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE, env=cli.env(), cwd=cli.home)
    os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        err = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return Result(args, proc.returncode, shown.decode().replace("\r\n", "\n"), err.decode())


# --------------------------------------------------------------------------- list -format=json


def test_list_json_is_the_array_of_keys_for_a_pipe(cli, tmp_path):
    mount = unique("aws")
    cli.ok("secrets", "enable", f"-path={mount}", "aws")
    (tmp_path / "policy.json").write_text(json.dumps({"Version": "2012-10-17", "Statement": []}))
    for role in ("alpha", "beta"):
        cli.ok("write", f"{mount}/roles/{role}", "credential_type=iam_user", "policy_document=@policy.json")
    assert cli.json("list", f"{mount}/roles") == ["alpha", "beta"]
    assert yaml.safe_load(cli.ok("list", "-format=yaml", f"{mount}/roles").out) == ["alpha", "beta"]
    # the issue's own pipeline, through a shell
    pipeline = (f"{sys.executable} -m coffer list -format=json {mount}/roles | "
                f"{sys.executable} -c 'import json,sys; print(json.load(sys.stdin)[0])'")
    done = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, env=cli.env(), cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 0 and done.stdout == "alpha\n", done.stderr
    assert cli.ok("list", f"{mount}/roles").out == "Keys\n----\nalpha\nbeta\n"


# --------------------------------------------------------------------------- flags


def test_a_mistyped_single_dash_flag_gets_a_suggestion(cli):
    for args, typed, meant in [(("read", "-formt=json", "secret/x"), "-formt", "-format"),
                               (("kv", "get", "-verison=2", "secret/x"), "-verison", "-version"),
                               (("secrets", "list", "-detialed"), "-detialed", "-detailed")]:
        result = cli(*args)
        assert result.code == 1, str(result)
        assert f"No such option '{typed}'." in result.err and f"Did you mean '{meant}'" in result.err, str(result)
        assert "No such option '-" + typed[1] + "'" not in result.err, str(result)
    double = cli("read", "--formt=json", "secret/x")
    assert double.code == 1 and "Did you mean" in double.err and "--format" in double.err


def test_detailed_listings(cli, tmp_path):
    mount = unique("kvd")
    cli.ok("secrets", "enable", "-version=2", f"-path={mount}", "kv")
    plain = cli.ok("secrets", "list").out.splitlines()
    assert plain[0].split() == ["Path", "Type", "Accessor", "Description"] and set(plain[1]) == {"-", " "}
    detailed = cli.ok("secrets", "list", "-detailed").out
    assert detailed.splitlines()[0].split() == ["Path", "Type", "Accessor", "Default", "TTL", "Max", "TTL",
                                                "Options", "Description"]
    assert re.search(rf"^{mount}/\s+kv\s+kv_\w+\s+system\s+system\s+map\[version:2\]$", detailed, re.M), detailed
    auth = cli.ok("auth", "list").out
    assert re.search(r"^token/\s+token\s+auth_token_\w+\s+token based credentials$", auth, re.M), auth
    auth_detailed = cli.ok("auth", "list", "-detailed").out
    assert re.search(r"^token/\s+token\s+auth_token_\w+\s+system\s+system\s+token based credentials$",
                     auth_detailed, re.M), auth_detailed
    audit = cli("audit", "list", "-detailed")
    if audit.code == 0 and "No audit devices" not in audit.out:
        assert audit.out.splitlines()[0].split() == ["Path", "Type", "Description", "Options"], str(audit)
    else:
        assert audit.code in (0, 2), str(audit)
    path, log = unique("file"), tmp_path / "audit.log"
    if cli("audit", "enable", f"-path={path}", "file", f"file_path={log}").code == 0:
        detailed_audit = cli.ok("audit", "list", "-detailed").out
        assert re.search(rf"^{path}/\s+file\s+map\[file_path:{re.escape(str(log))}\]$", detailed_audit, re.M), \
            detailed_audit
        cli.ok("audit", "disable", path)


def test_bare_groups_print_help_and_exit_0(tmp_path):
    cli = Cli(tmp_path, UNREACHABLE)
    for args, usage in [((), "Usage: coffer [OPTIONS] COMMAND"), (("operator",), "Usage: coffer operator"),
                        (("kv",), "Usage: coffer kv"), (("kv", "metadata"), "Usage: coffer kv metadata")]:
        result = cli(*args)
        assert result.code == 0 and result.err == "", str(result)
        assert result.out.startswith(usage) and "Error" not in result.out, str(result)
    assert "rekey" in cli("operator").out and "generate-root" in cli("operator").out


def test_version_three_ways(tmp_path):
    cli = Cli(tmp_path, UNREACHABLE)
    for args in (("-version",), ("--version",), ("version",)):
        assert cli.ok(*args).out == f"coffer v{__version__}\n"


def test_help_command(tmp_path):
    cli = Cli(tmp_path, UNREACHABLE)
    assert cli.ok("help", "kv", "put").out == cli.ok("kv", "put", "-h").out
    assert cli.ok("help", "operator").out == cli.ok("operator", "-h").out
    assert cli.ok("help").out == cli.ok("-h").out
    unknown = cli("help", "nosuch")
    assert unknown.code == 1 and 'no such command "nosuch"' in unknown.err, str(unknown)


# --------------------------------------------------------------------------- the environment


def test_vault_variables_and_their_coffer_twins(dev_server, tmp_path):
    cli = Cli(tmp_path, dev_server.addr, token=None)
    path = f"secret/{unique('env')}"
    base = {"VAULT_TOKEN": ROOT_TOKEN}
    cli.ok("kv", "put", path, "v=1", env=base)
    # VAULT_TOKEN is honoured; COFFER_TOKEN wins over it
    assert cli("kv", "get", path, env={"VAULT_TOKEN": "hvs.wrong"}).code == 2
    assert cli("kv", "get", path, env={**base, "COFFER_TOKEN": "hvs.wrong"}).code == 2
    assert cli.ok("kv", "get", "-field=v", path, env={"VAULT_TOKEN": "hvs.wrong", "COFFER_TOKEN": ROOT_TOKEN}).out \
        == "1"
    # VAULT_FORMAT, COFFER_FORMAT over it, -format over both
    as_json = json.loads(cli.ok("kv", "get", path, env={**base, "VAULT_FORMAT": "json"}).out)
    assert as_json["data"]["data"] == {"v": "1"}
    as_yaml = yaml.safe_load(cli.ok("kv", "get", path, env={**base, "VAULT_FORMAT": "json",
                                                             "COFFER_FORMAT": "yaml"}).out)
    assert as_yaml["data"]["data"] == {"v": "1"}
    assert cli.ok("kv", "get", "-format=table", path, env={**base, "VAULT_FORMAT": "json"}).out.startswith("==")
    bad = cli("kv", "get", path, env={**base, "VAULT_FORMAT": "xml"})
    assert bad.code == 1 and "VAULT_FORMAT" in bad.err, str(bad)


def test_client_timeout_from_the_environment(tmp_path):
    """A server that accepts connections and never answers: the timeout of the environment applies."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        cli = Cli(tmp_path, addr)
        for env in ({"VAULT_CLIENT_TIMEOUT": "1s"}, {"VAULT_CLIENT_TIMEOUT": "600", "COFFER_CLIENT_TIMEOUT": "1"}):
            result = cli("read", "sys/mounts", env=env)
            assert result.code == 2 and "timed out" in result.err and addr in result.err, str(result)
        bad = cli("read", "sys/mounts", env={"VAULT_CLIENT_TIMEOUT": "soon"})
        assert bad.code == 2 and "VAULT_CLIENT_TIMEOUT" in bad.err, str(bad)


def test_token_files(dev_server, tmp_path):
    cli = Cli(tmp_path, dev_server.addr, token=None)
    vault_file, coffer_file = Path(tmp_path, ".vault-token"), Path(tmp_path, ".coffer-token")
    assert cli("token", "lookup").code == 2  # no token anywhere
    vault_file.write_text(ROOT_TOKEN + "\n")
    assert cli.json("token", "lookup")["data"]["policies"] == ["root"]  # the vault CLI's file, as a fallback
    coffer_file.write_text("hvs.not-a-token")
    assert cli("token", "lookup").code == 2  # coffer's own file comes first
    coffer_file.write_text(ROOT_TOKEN)
    vault_file.write_text("hvs.not-a-token")
    assert cli.json("token", "lookup")["data"]["policies"] == ["root"]


def test_help_names_both_variables(tmp_path):
    cli = Cli(tmp_path, UNREACHABLE)
    for args in ((), ("read",), ("kv", "get"), ("operator", "rekey")):
        text = cli.ok(*args, "-h").out
        for name in ("ADDR", "TOKEN", "FORMAT", "CACERT", "SKIP_VERIFY", "CLIENT_TIMEOUT"):
            assert f"COFFER_{name} / VAULT_{name}" in text, (args, name)
        assert "~/.vault-token" in text


# --------------------------------------------------------------------------- output


def test_read_table_has_the_header_rule(cli, kv1):
    path = f"{kv1}/{unique('rule')}"
    cli.ok("write", path, "a=1", "longer_key=2")
    out = cli.ok("read", path).out
    assert out == "Key         Value\n---         -----\na           1\nlonger_key  2\n"
    assert table(out) == [("a", "1"), ("longer_key", "2")]
    status = cli.ok("status").out.splitlines()
    assert status[0].split() == ["Key", "Value"] and status[1].split() == ["---", "-----"]


def test_field_gets_a_newline_only_on_a_terminal(cli, kv1):
    path = f"{kv1}/{unique('field')}"
    cli.ok("write", path, "v=plain")
    assert cli.ok("read", "-field=v", path).out == "plain"  # for $(...) and pipes: the value exactly
    shown = on_a_terminal(cli, "read", "-field=v", path)
    assert shown.code == 0 and shown.out == "plain\n", str(shown)
    v2 = f"{unique('field')}"
    cli.ok("kv", "put", f"secret/{v2}", "v=x")
    assert cli.ok("kv", "get", "-field=v", f"secret/{v2}").out == "x"
    shown = on_a_terminal(cli, "kv", "get", "-field=v", "-mount=secret", v2)
    assert shown.code == 0 and shown.out == "x\n", str(shown)


def test_messages_say_coffer(cli, tmp_path):
    r = cli("read", "secret/not-a-v2-path")
    assert r.code == 2
    path = f"secret/{unique('msg')}"
    cli.ok("kv", "put", path, "a=1")
    written = cli("write", path, "a=2")  # a v1-style write to a v2 mount: the warning names coffer's command
    assert written.code == 2 and "coffer kv put" in written.err and "vault" not in written.err.lower(), \
        str(written)
    for args in ((), ("operator",), ("kv",)):
        assert "Vault is" not in cli.ok(*args, "-h").out
