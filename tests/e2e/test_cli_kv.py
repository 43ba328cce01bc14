"""``coffer kv ...`` as subprocesses against the dev server: secret/ is kv version 2, kv-v1/ version 1; the
same commands work on both, as vault kv does (the version comes from sys/internal/ui/mounts/<path>)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from test_cli import Cli, table, unique

from conftest import CofferProcess, free_port, init_and_unseal


@pytest.fixture
def cli(dev_server, tmp_path) -> Cli:
    return Cli(tmp_path, dev_server.addr)


def sections(text: str) -> dict[str, str]:
    """The ``== Title ==`` parts of a kv answer, by title."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("==") and line.endswith("=="):
            current = line.strip("= ")
            found[current] = []
        elif current is not None and line:
            found[current].append(line)
    return {k: "\n".join(v) for k, v in found.items()}


def test_the_vault_tutorials_first_commands(cli):
    """vault kv put secret/hello foo=bar, then get: the first thing Vault's tutorials type."""
    path = f"secret/{unique('hello')}"
    put = cli.ok("kv", "put", path, "foo=world", "excited=yes")
    parts = sections(put.out)
    assert parts["Secret Path"] == f"secret/data/{path.split('/', 1)[1]}"
    assert dict(table(parts["Metadata"]))["version"] == "1"
    got = sections(cli.ok("kv", "get", path).out)
    assert dict(table(got["Data"])) == {"excited": "yes", "foo": "world"}
    meta = dict(table(got["Metadata"]))
    assert meta["version"] == "1" and meta["destroyed"] == "false" and meta["deletion_time"] == "n/a"
    assert cli.ok("kv", "get", "-field=foo", path).out == "world"
    body = cli.json("kv", "get", path)
    assert body["data"]["data"] == {"excited": "yes", "foo": "world"} and body["data"]["metadata"]["version"] == 1


def test_versions_cas_patch_delete_undelete_destroy(cli):
    key = unique("app")
    path = f"secret/{key}"
    cli.ok("kv", "put", path, "a=1")
    cli.ok("kv", "put", "-cas=1", path, "a=2")
    conflict = cli("kv", "put", "-cas=1", path, "a=3")
    assert conflict.code == 2 and "check-and-set parameter did not match the current version" in conflict.err
    assert cli.ok("kv", "get", "-version=1", "-field=a", path).out == "1"
    assert cli.ok("kv", "get", "-mount=secret", "-field=a", key).out == "2"
    patched = cli.ok("kv", "patch", path, "b=new")
    assert dict(table(sections(patched.out)["Metadata"]))["version"] == "3"
    assert cli.json("kv", "get", path)["data"]["data"] == {"a": "2", "b": "new"}
    cli.ok("kv", "patch", "-method=rw", path, "a=rw")
    assert cli.json("kv", "get", path)["data"]["data"] == {"a": "rw", "b": "new"}
    assert cli("kv", "patch", f"secret/{unique('none')}", "a=1").code == 2

    assert cli.ok("kv", "delete", path).out == f"Success! Data deleted (if it existed) at: secret/data/{key}\n"
    gone = cli("kv", "get", path)
    assert gone.code == 2 and dict(table(sections(gone.out)["Metadata"]))["deletion_time"] != "n/a", str(gone)
    assert cli.ok("kv", "undelete", "-versions=4", path).out == f"Success! Data written to: secret/undelete/{key}\n"
    assert cli.ok("kv", "get", "-field=a", path).out == "rw"
    cli.ok("kv", "delete", "-versions=1", path)
    assert cli.ok("kv", "destroy", "-versions=2", path).out == f"Success! Data written to: secret/destroy/{key}\n"
    versions = cli.json("kv", "metadata", "get", path)["data"]["versions"]
    assert versions["1"]["deletion_time"] and versions["2"]["destroyed"] is True
    needs = cli("kv", "undelete", path)
    assert needs.code == 1 and "-versions" in needs.err


def test_list_and_metadata(cli):
    folder = unique("team")
    for name in ("db", "api", "sub/deep"):
        cli.ok("kv", "put", f"secret/{folder}/{name}", "x=1")
    assert cli.ok("kv", "list", f"secret/{folder}").out == "Keys\n----\napi\ndb\nsub/\n"
    assert cli.json("kv", "list", f"secret/{folder}/") == ["api", "db", "sub/"]
    assert cli.json("kv", "list", "-mount=secret", folder) == ["api", "db", "sub/"]
    assert cli("kv", "list", f"secret/{unique('none')}").code == 2
    path = f"secret/{folder}/db"
    written = cli.ok("kv", "metadata", "put", "-max-versions=3", "-cas-required=true",
                     "-delete-version-after=1h", "-custom-metadata=owner=ops", "-custom-metadata=tier=1", path)
    assert written.out == f"Success! Data written to: secret/metadata/{folder}/db\n"
    shown = sections(cli.ok("kv", "metadata", "get", path).out)
    settings = dict(table(shown["Metadata"]))
    assert settings["max_versions"] == "3" and settings["cas_required"] == "true"
    assert settings["delete_version_after"] == "1h0m0s" and settings["custom_metadata"] == "map[owner:ops tier:1]"
    assert "Version 1" in shown
    needs_cas = cli("kv", "put", path, "x=2")
    assert needs_cas.code == 2 and "check-and-set parameter required for this call" in needs_cas.err
    cli.ok("kv", "metadata", "patch", "-custom-metadata=tier=2", path)
    assert cli.json("kv", "metadata", "get", path)["data"]["custom_metadata"] == {"owner": "ops", "tier": "2"}
    assert cli.ok("kv", "metadata", "delete", path).out == \
        f"Success! Data deleted (if it existed) at: secret/metadata/{folder}/db\n"
    assert cli("kv", "metadata", "get", path).code == 2


def test_the_same_commands_on_kv_version_1(cli, kv1):
    path = f"{kv1}/{unique('v1')}"
    assert cli.ok("kv", "put", path, "a=1").out == f"Success! Data written to: {path}\n"
    assert sections(cli.ok("kv", "get", path).out) == {"Data": "Key  Value\n---  -----\na    1"}
    assert cli.ok("kv", "get", "-field=a", path).out == "1"
    assert json.loads(cli.ok("kv", "get", "-format=json", path).out)["data"] == {"a": "1"}
    assert path.split("/", 1)[1] in cli.json("kv", "list", kv1)
    patch = cli("kv", "patch", path, "a=2")
    assert patch.code == 2 and "K/V engine mount must be version 2 for patch support" in patch.err
    meta = cli("kv", "metadata", "get", path)
    assert meta.code == 2 and "Metadata not supported on KV Version 1" in meta.err
    assert cli.ok("kv", "delete", path).out == f"Success! Data deleted (if it existed) at: {path}\n"
    missing = cli("kv", "get", path)
    assert missing.code == 2 and f"No value found at {path}" in missing.err


def test_kv_v1_mount_upgraded_from_the_cli(cli):
    mount = unique("up")
    cli.ok("secrets", "enable", f"-path={mount}", "kv")
    cli.ok("kv", "put", f"{mount}/keep", "v=old")
    tuned = cli("write", f"sys/mounts/{mount}/tune", "options=version=2")
    assert tuned.code == 0 and "Upgrading mount from version 1 to version 2" in tuned.err, str(tuned)
    assert cli.ok("kv", "get", "-field=v", f"{mount}/keep").out == "old"
    assert cli.json("kv", "metadata", "get", f"{mount}/keep")["data"]["current_version"] == 1


def test_a_token_without_rights_on_the_mount_is_told_so(cli, dev_server):
    token = dev_server.request("POST", "auth/token/create", json={"policies": ["default"]}).json()["auth"][
        "client_token"]
    denied = cli("kv", "get", "secret/anything", env={"VAULT_TOKEN": token})
    assert denied.code == 2 and "preflight capability check returned 403" in denied.err, str(denied)


# --------------------------------------------------------------------------- rekey and generate-root


def keys_of(text: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Key ")]


def test_operator_rekey_and_generate_root(sqlite_server, tmp_path):
    server = sqlite_server
    old_keys, root = init_and_unseal(server, shares=5, threshold=3)
    cli = Cli(tmp_path, server.addr, token=root)
    started = dict(table(cli.ok("operator", "rekey", "-init", "-key-shares=3", "-key-threshold=2").out))
    assert started["Started"] == "true" and started["New Shares"] == "3" and started["Rekey Progress"] == "0/3"
    assert dict(table(cli.ok("operator", "rekey", "-status").out))["Nonce"] == started["Nonce"]
    assert dict(table(cli.ok("operator", "rekey", old_keys[0]).out))["Rekey Progress"] == "1/3"
    cli.ok("operator", "rekey", input=old_keys[1] + "\n")  # prompted: read from stdin when it is not a terminal
    done = cli.ok("operator", "rekey", old_keys[2]).out
    new_keys = keys_of(done)
    assert len(new_keys) == 3 and "rekeyed with 3 key shares and a key threshold of 2" in done
    status = dict(table(cli.ok("status").out))
    assert status["Total Shares"] == "3" and status["Threshold"] == "2"

    # generate-root with the new keys: OTP, init, keys, decode
    otp = cli.ok("operator", "generate-root", "-generate-otp").out.strip()
    assert len(otp) == 28
    init = dict(table(cli.ok("operator", "generate-root", "-init", f"-otp={otp}").out))
    assert init["Started"] == "true" and init["Progress"] == "0/2"
    cli.ok("operator", "generate-root", new_keys[0])
    finished = dict(table(cli.ok("operator", "generate-root", new_keys[2]).out.split("\n\n")[0]))
    assert finished["Complete"] == "true"
    token = cli.ok("operator", "generate-root", f"-decode={finished['Encoded Token']}", f"-otp={otp}").out.strip()
    looked = Cli(tmp_path, server.addr, token=token).json("token", "lookup")["data"]
    assert looked["policies"] == ["root"] and looked["path"] == "auth/token/root"

    # after a restart only the new keys unseal
    server.stop()
    server.start()
    refused = cli("operator", "unseal", old_keys[0])
    assert refused.code == 0  # one share alone cannot be judged
    wrong = cli("operator", "unseal", old_keys[1])
    assert wrong.code == 2 and "unseal key is wrong" in wrong.err, str(wrong)
    cli.ok("operator", "unseal", "-reset")
    cli.ok("operator", "unseal", new_keys[1])
    assert dict(table(cli.ok("operator", "unseal", new_keys[0]).out))["Sealed"] == "false"
    assert Cli(tmp_path, server.addr, token=token).json("token", "lookup")["data"]["policies"] == ["root"]


def test_generate_root_with_a_server_made_otp_and_cancel(sqlite_server, tmp_path):
    keys, root = init_and_unseal(sqlite_server, shares=1, threshold=1)
    cli = Cli(tmp_path, sqlite_server.addr, token=root)
    started = cli.ok("operator", "generate-root", "-init").out
    otp = dict(table(started.split("\n\n")[0]))["OTP"]
    assert len(otp) == 28 and "keep it" in started
    assert cli.ok("operator", "generate-root", "-cancel").out == \
        "Success! Root token generation canceled (if it was started)\n"
    assert dict(table(cli.ok("operator", "generate-root", "-status").out))["Started"] == "false"
    bad = cli("operator", "generate-root", "-decode=AAAA", "-otp=short")
    assert bad.code == 1 and "OTP" in bad.err


def test_readme_walkthrough_prints_what_the_readme_shows(tmp_path):
    """Every `$ coffer ...` line of README's "Trying it", run against a fresh dev server, prints what the README
    shows under it (times aside)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme[readme.index("## Trying it"):].split("```")[1]
    port = free_port()
    server = CofferProcess(["-dev", f"-dev-listen-address=127.0.0.1:{port}"], port, tmp_path).start()
    try:
        cli = Cli(tmp_path, server.addr, token=None)  # the dev server's token file, as a new user has it
        steps = re.split(r"(?m)^\$ ", block)[1:]
        ran = 0
        for step in steps:
            command, _, shown = step.partition("\n")
            command = command.split("  #")[0].strip()
            if not command.startswith("coffer "):
                continue
            result = cli.ok(*shlex.split(command)[1:])
            stamp = r"\d{4}-\d\d-\d\dT[\d:.]+Z"
            expected = re.sub(stamp, "<time>", shown.rstrip("\n"))
            assert re.sub(stamp, "<time>", result.out.rstrip("\n")) == expected, (command, result.out)
            ran += 1
        assert ran >= 4
    finally:
        server.stop()


def test_dev_kv_v1_keeps_the_old_secret_mount(tmp_path):
    port = free_port()
    server = CofferProcess(["-dev", "-dev-kv-v1", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
                           port, tmp_path).start()
    try:
        cli = Cli(tmp_path, server.addr)
        assert cli.json("read", "sys/mounts/secret")["data"]["options"] == {"version": "1"}
        assert cli.ok("write", "secret/hello", "value=world").out == "Success! Data written to: secret/hello\n"
        assert cli.ok("kv", "get", "-field=value", "secret/hello").out == "world"
    finally:
        server.stop()
