"""``coffer auth ...``, ``coffer login -method=...``, ``coffer token create -role``, ``-wrap-ttl`` and
``coffer unwrap``, as subprocesses against a real server."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from test_cli import Cli, table

from conftest import ROOT_TOKEN, remember_secret


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cli(dev_server, tmp_path) -> Cli:
    return Cli(tmp_path, dev_server.addr)


def test_auth_enable_list_tune_disable(cli):
    path = unique("up")
    assert cli.ok("auth", "enable", f"-path={path}", "-description=people", "userpass").out == \
        f"Success! Enabled userpass auth method at: {path}/\n"
    listed = cli.ok("auth", "list", "-detailed").out
    line = next(row for row in listed.splitlines() if row.startswith(f"{path}/"))
    assert "userpass" in line and "people" in line and "system" in line
    assert "token/" in listed
    cli.ok("auth", "tune", "-default-lease-ttl=30m", "-max-lease-ttl=2h", "-listing-visibility=unauth", path)
    tuned = cli.json("read", f"sys/auth/{path}/tune")["data"]
    assert tuned["default_lease_ttl"] == 1800 and tuned["max_lease_ttl"] == 7200
    assert tuned["listing_visibility"] == "unauth"
    as_json = cli.json("auth", "list")
    assert as_json["data"][f"{path}/"]["type"] == "userpass"
    bad = cli("auth", "enable", "-path=x", "nosuch")
    assert bad.code == 2 and "plugin not found in the catalog: nosuch" in bad.err
    assert cli("auth", "tune", path).code == 1
    assert cli.ok("auth", "disable", path).out == f"Success! Disabled the auth method (if it existed) at: {path}/\n"
    assert f"{path}/" not in cli.ok("auth", "list").out


def test_login_with_userpass(cli, dev_server, tmp_path):
    path = unique("up")
    cli.ok("auth", "enable", f"-path={path}", "userpass")
    cli.ok("write", f"auth/{path}/users/alice", "password=s3cret", "token_policies=default", "token_ttl=20m")
    person = Cli(tmp_path, dev_server.addr, token=None)
    # The password is prompted when not given (here from stdin, which is no terminal).
    out = person.ok("login", "-method=userpass", f"-path={path}", "username=alice", input="s3cret\n").out
    assert "Success! You are now authenticated" in out and "s3cret" not in out
    rows = dict(table(out.split("\n\n", 1)[1]))
    assert rows["token_duration"] == "1200s" and rows["token_meta_username"] == "alice"
    stored = (tmp_path / ".coffer-token").read_text().strip()
    assert stored == rows["token"]
    assert dict(table(person.ok("token", "lookup").out))["display_name"] == f"{path}-alice"
    bad = person("login", "-method=userpass", f"-path={path}", "username=alice", "password=wrong")
    assert bad.code == 2 and "invalid username or password" in bad.err
    assert (tmp_path / ".coffer-token").read_text().strip() == stored
    only = person.ok("login", "-method=userpass", f"-path={path}", "-token-only", "username=alice",
                     "password=s3cret").out.strip()
    assert only.startswith("hvs.") and only != stored


def test_approle_login_with_a_wrapped_secret_id(cli, dev_server, tmp_path):
    path = unique("approle")
    cli.ok("auth", "enable", f"-path={path}", "approle")
    cli.ok("write", f"auth/{path}/role/ci", "token_policies=default", "secret_id_num_uses=1")
    role_id = cli.ok("read", "-field=role_id", f"auth/{path}/role/ci/role-id").out
    wrapped = cli.ok("write", "-wrap-ttl=2m", f"auth/{path}/role/ci/secret-id").out
    rows = dict(table(wrapped))
    assert rows["wrapping_token_ttl:"] == "120s" and rows["wrapping_token_creation_path:"] == \
        f"auth/{path}/role/ci/secret-id" and rows["wrapped_accessor:"]
    wrapping_token = cli.ok("write", "-wrap-ttl=2m", "-field=wrapping_token", f"auth/{path}/role/ci/secret-id").out
    secret_id = cli.json("unwrap", wrapping_token)["data"]["secret_id"]
    again = cli("unwrap", wrapping_token)
    assert again.code == 2 and "wrapping token is not valid or does not exist" in again.err
    # Unwrapping with the wrapping token as the current token.
    third = cli.ok("write", "-wrap-ttl=2m", "-field=wrapping_token", f"auth/{path}/role/ci/secret-id").out
    assert Cli(tmp_path, dev_server.addr, token=third).json("unwrap")["data"]["secret_id"]

    machine = Cli(tmp_path, dev_server.addr, token=None)
    body = machine.json("login", "-method=approle", f"-path={path}", f"role_id={role_id}", f"secret_id={secret_id}")
    assert body["auth"]["metadata"] == {"role_name": "ci"}
    assert (tmp_path / ".coffer-token").read_text().strip() == body["auth"]["client_token"]
    used = machine("login", "-method=approle", f"-path={path}", f"role_id={role_id}", f"secret_id={secret_id}")
    assert used.code == 2 and "invalid role or secret ID" in used.err


def test_login_with_a_jwt(cli, dev_server, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    issuer = "https://ci.example.test"

    def sign(**overrides) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": "coffer", "sub": "repo:acme/api:ref:refs/heads/main", "actor": "octocat",
                  "repository": "acme/api", "iat": now, "nbf": now - 5, "exp": now + 300, **overrides}
        token = jwt.encode(claims, key, algorithm="RS256")
        remember_secret(token)  # the server must never log it
        return token

    path = unique("jwt")
    cli.ok("auth", "enable", f"-path={path}", "jwt")
    cli.ok("write", f"auth/{path}/config", f"jwt_validation_pubkeys=@{pem}", f"bound_issuer={issuer}")
    cli.ok("write", f"auth/{path}/role/deploy", "role_type=jwt", "user_claim=actor", "bound_audiences=coffer",
           "bound_claims_type=glob", 'bound_claims={"repository": "acme/*"}', "token_policies=default",
           "token_ttl=15m")
    ci = Cli(tmp_path, dev_server.addr, token=None)
    body = ci.json("login", "-method=jwt", f"-path={path}", "role=deploy", f"jwt={sign()}")
    auth = body["auth"]
    assert auth["metadata"] == {"role": "deploy"} and auth["lease_duration"] == 900
    assert auth["policies"] == ["default"]
    assert (tmp_path / ".coffer-token").read_text().strip() == auth["client_token"]
    assert dict(table(ci.ok("token", "lookup").out))["display_name"] == f"{path}-octocat"

    # The JWT from a file, as a CI job has it; the table shows the token, never the JWT.
    id_token = tmp_path / "id-token"
    id_token.write_text(sign() + "\n")
    out = ci.ok("login", "-method=jwt", f"-path={path}", "role=deploy", f"jwt=@{id_token}").out
    assert "Success! You are now authenticated" in out and id_token.read_text().strip() not in out
    rows = dict(table(out.split("\n\n", 1)[1]))
    assert rows["token_duration"] == "900s" and rows["token_meta_role"] == "deploy"
    stored = (tmp_path / ".coffer-token").read_text().strip()
    assert stored == rows["token"] and stored != auth["client_token"]

    # Refusals come back as the server's message, and the stored token stays.
    bad = ci("login", "-method=jwt", f"-path={path}", "role=deploy", f"jwt={sign(repository='evil/api')}")
    assert bad.code == 2 and 'claim "repository" does not match' in bad.err, bad
    expired = ci("login", "-method=jwt", f"-path={path}", "role=deploy", f"jwt={sign(exp=int(time.time()) - 3600)}")
    assert expired.code == 2 and "token is expired" in expired.err, expired
    missing = ci("login", "-method=jwt", f"-path={path}", "role=deploy")
    assert missing.code == 1 and "missing jwt=" in missing.err, missing
    assert (tmp_path / ".coffer-token").read_text().strip() == stored


def test_read_with_wrap_ttl(cli):
    mount = unique("kv")
    cli.ok("secrets", "enable", f"-path={mount}", "kv")
    cli.ok("write", f"{mount}/hello", "value=world")
    token = cli.ok("read", "-wrap-ttl=60s", "-field=wrapping_token", f"{mount}/hello").out
    assert json.loads(cli.ok("unwrap", "-format=json", token).out)["data"] == {"value": "world"}


def test_token_create_with_a_role(cli):
    role = unique("role")
    cli.ok("write", f"auth/token/roles/{role}", "allowed_policies=default", "orphan=true", "token_period=1h")
    body = cli.json("token", "create", f"-role={role}")
    assert body["auth"]["orphan"] is True and body["auth"]["lease_duration"] == 3600
    assert cli.json("token", "lookup", body["auth"]["client_token"])["data"]["role"] == role
    bad = cli("token", "create", "-role=nosuch")
    assert bad.code == 2 and "unknown role nosuch" in bad.err


def test_login_with_aws_credentials(cli, dev_server, moto, tmp_path):
    path = unique("aws")
    cli.ok("auth", "enable", f"-path={path}", "aws")
    cli.ok("write", f"auth/{path}/config/client", f"sts_endpoint={moto.endpoint}",
           "iam_server_id_header_value=coffer.test")
    name = unique("runner")
    key = moto.make_user(name, None)
    arn = moto.caller_arn(*key)
    cli.ok("write", f"auth/{path}/role/runner", f"bound_iam_principal_arn={arn}", "token_policies=default")
    runner = Cli(tmp_path, dev_server.addr, token=None)
    # boto3's credential chain: here, the environment.
    env = {"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1], "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_CONFIG_FILE": "/dev/null"}
    body = runner.json("login", "-method=aws", f"-path={path}", "role=runner", "header_value=coffer.test",
                       f"sts_endpoint={moto.endpoint}", env=env)
    assert body["auth"]["metadata"]["client_arn"] == arn
    wrong = runner("login", "-method=aws", f"-path={path}", "role=runner", "header_value=other",
                   f"sts_endpoint={moto.endpoint}", env=env)
    assert wrong.code == 2 and "X-Vault-AWS-IAM-Server-ID" in wrong.err
    none = runner("login", "-method=aws", f"-path={path}", "role=runner",
                  env={"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_CONFIG_FILE": "/dev/null",
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": None,
                       "AWS_SECRET_ACCESS_KEY": None})
    assert none.code == 2 and "no AWS credentials found" in none.err


def test_login_with_a_token_still_works(cli, dev_server, tmp_path):
    anonymous = Cli(tmp_path, dev_server.addr, token=None)
    out = anonymous.ok("login", ROOT_TOKEN).out
    assert "Success! You are now authenticated" in out
    assert anonymous("login", "a=b").code == 1
