"""``coffer auth enable|disable|list|tune`` and ``coffer login`` (with a token or an auth method)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import click
import orjson

from coffer.cli.common import Env, api_command, flag, listing_visibility_flag, parse_pairs, prompt_secret, tune_body
from coffer.cli.output import rows_for, scalar, table
from coffer.client import save_token

METHODS = ("token", "userpass", "approle", "jwt", "aws")
STS_URL = "https://sts.amazonaws.com/"


@click.group()
def auth() -> None:
    """Enable, disable, list and tune auth methods.

    \b
    Examples:
      coffer auth enable approle
      coffer auth enable -path=ci jwt
      coffer auth list -detailed
      coffer auth tune -default-lease-ttl=30m ci
    """


def _mount(path: str) -> str:
    path = path.strip().strip("/")
    if not path:
        raise click.UsageError("give the auth method's path, e.g. approle")
    return path


@auth.command("enable")
@click.argument("method")
@flag("path", help="Where to enable it (default: the method's name), under auth/.")
@flag("description", help="A description shown in listings.")
@flag("default-lease-ttl", help="Default TTL of the tokens it issues, e.g. 1h.")
@flag("max-lease-ttl", help="Maximum TTL of the tokens it issues, e.g. 24h.")
@api_command
def enable(env: Env, method: str, path: str | None, description: str | None, default_lease_ttl: str | None,
           max_lease_ttl: str | None) -> None:
    """Enable an auth method (approle, userpass, jwt, aws).

    \b
    Example:
      coffer auth enable -path=ci jwt
    """
    mount = _mount(path or method)
    config = {k: v for k, v in (("default_lease_ttl", default_lease_ttl), ("max_lease_ttl", max_lease_ttl)) if v}
    env.client.write(f"sys/auth/{mount}", {"type": method, "description": description or "", "config": config})
    click.echo(f"Success! Enabled {method} auth method at: {mount}/")


@auth.command("disable")
@click.argument("path")
@api_command
def disable(env: Env, path: str) -> None:
    """Disable an auth method: the tokens it issued are revoked and its data deleted.

    \b
    Example:
      coffer auth disable ci
    """
    mount = _mount(path)
    env.client.delete(f"sys/auth/{mount}")
    click.echo(f"Success! Disabled the auth method (if it existed) at: {mount}/")


@auth.command("list")
@flag("detailed", is_flag=True, help="Show the token TTLs too.")
@api_command
def list_(env: Env, detailed: bool) -> None:
    """List the enabled auth methods.

    \b
    Example:
      coffer auth list -detailed
    """
    body = env.client.read("sys/auth")
    if env.raw:
        env.show(body)
        return
    mounts = sorted(body["data"].items())
    headers = ["Path", "Type", "Accessor", "Description"]
    rows = [[p, m["type"], m["accessor"], m["description"]] for p, m in mounts]
    if detailed:
        headers[3:3] = ["Default TTL", "Max TTL"]
        for row, (_, m) in zip(rows, mounts, strict=True):
            row[3:3] = [scalar(m["config"]["default_lease_ttl"] or "system"),
                        scalar(m["config"]["max_lease_ttl"] or "system")]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) + 4 for i in range(len(headers))]
    for r in [headers, ["-" * len(h) for h in headers], *rows]:
        click.echo("".join(f"{str(c):<{w}}" for c, w in zip(r, widths, strict=True)).rstrip())


@auth.command("tune")
@click.argument("path")
@flag("default-lease-ttl", help="Default TTL of the tokens it issues, e.g. 1h.")
@flag("max-lease-ttl", help="Maximum TTL of the tokens it issues, e.g. 24h.")
@flag("description", help="A new description.")
@listing_visibility_flag
@api_command
def tune(env: Env, path: str, default_lease_ttl: str | None, max_lease_ttl: str | None,
         description: str | None, listing_visibility: str | None) -> None:
    """Change an auth method's token TTLs or description.

    \b
    Example:
      coffer auth tune -default-lease-ttl=30m -max-lease-ttl=2h ci
    """
    mount = _mount(path)
    data = tune_body(default_lease_ttl=default_lease_ttl, max_lease_ttl=max_lease_ttl, description=description,
                     listing_visibility=listing_visibility)
    if not data:
        raise click.UsageError("nothing to tune: give -default-lease-ttl, -max-lease-ttl, -description or "
                               "-listing-visibility")
    env.client.write(f"sys/auth/{mount}/tune", data)
    click.echo(f"Success! Tuned the auth method at: {mount}/")


# --------------------------------------------------------------------------- login


def _take(values: dict[str, Any], name: str, label: str, secret: bool = False) -> str:
    value = values.pop(name, None)
    if value:
        return str(value).strip()
    if secret:
        return prompt_secret(label)
    raise click.UsageError(f"missing {name}=... ({label})")


def _aws_payload(values: dict[str, Any]) -> dict[str, Any]:
    """A signed sts:GetCallerIdentity, as hvac's iam_login sends it, signed with boto3's credential chain."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    region = values.pop("region", None) or "us-east-1"
    url = values.pop("sts_endpoint", None) or STS_URL
    if not url.endswith("/"):
        url += "/"
    header_value = values.pop("header_value", None)
    access_key = values.pop("aws_access_key_id", None)
    secret_key = values.pop("aws_secret_access_key", None)
    session_token = values.pop("aws_security_token", None)
    if access_key and secret_key:
        credentials = Credentials(access_key, secret_key, session_token)
    else:
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise click.ClickException("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                       "a profile (AWS_PROFILE), or run where an instance role is available")
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Host": urlsplit(url).netloc}
    if header_value:
        headers["X-Vault-AWS-IAM-Server-ID"] = header_value
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "sts", region).add_auth(request)
    signed = orjson.dumps({k: [v] for k, v in request.headers.items()})
    payload = {"iam_http_request_method": "POST",
               "iam_request_url": base64.b64encode(url.encode()).decode(),
               "iam_request_body": base64.b64encode(body.encode()).decode(),
               "iam_request_headers": base64.b64encode(signed).decode()}
    if values.get("role"):
        payload["role"] = values.pop("role")
    return payload


def _method_login(env: Env, method: str, mount: str, values: dict[str, Any]) -> dict[str, Any]:
    env.client.token = None  # a login path needs no token (and a stale one must not get in the way)
    if method == "userpass":
        username = _take(values, "username", "the user name")
        password = _take(values, "password", "Password", secret=True)
        body = env.client.write(f"auth/{mount}/login/{username}", {"password": password, **values})
    elif method == "approle":
        role_id = _take(values, "role_id", "the role ID")
        secret_id = values.pop("secret_id", None)
        data = {"role_id": role_id, **values, **({"secret_id": secret_id} if secret_id else {})}
        body = env.client.write(f"auth/{mount}/login", data)
    elif method == "jwt":
        jwt = _take(values, "jwt", "the JWT (jwt=@file reads it from a file)")
        body = env.client.write(f"auth/{mount}/login", {"jwt": jwt, **values})
    else:
        payload = _aws_payload(values)
        body = env.client.write(f"auth/{mount}/login", {**payload, **values})
    if not isinstance(body, dict) or not body.get("auth"):
        raise click.ClickException("the server answered no token")
    return body


@click.command()
@click.argument("args", nargs=-1)
@flag("method", type=click.Choice(METHODS), default="token", show_default=True,
      help="How to log in: a token, or an auth method.")
@flag("path", help="The auth method's path (default: the method's name).")
@flag("no-store", is_flag=True, help="Do not store the token in ~/.coffer-token.")
@flag("token-only", is_flag=True, help="Print only the token (and do not store it).")
@api_command
def login(env: Env, args: tuple[str, ...], method: str, path: str | None, no_store: bool, token_only: bool) -> None:
    """Log in and store the token in ~/.coffer-token.

    With a token (prompted without echo when omitted), or with an auth method
    and its K=V arguments.

    \b
    Examples:
      coffer login
      coffer login -method=userpass username=alice          (password prompted)
      coffer login -method=approle role_id=... secret_id=...
      coffer login -method=jwt role=deploy jwt=@$ACTIONS_ID_TOKEN_FILE
      coffer login -method=aws role=app header_value=coffer.example.com
    """
    if method == "token":
        if len(args) > 1 or (args and "=" in args[0]):
            raise click.UsageError("expected at most one argument, the token (or -method=...)")
        token_value = args[0] if args else prompt_secret("Token")
        env.client.token = token_value
        data = env.client.read("auth/token/lookup-self")["data"]
        rows = [("token", token_value), ("token_accessor", data["accessor"]),
                ("token_duration", f"{data['ttl']}s" if data["ttl"] else "∞"),
                ("token_renewable", data["renewable"]), ("token_policies", data["policies"])]
        body: dict[str, Any] | None = None
    else:
        body = _method_login(env, method, _mount(path or method), parse_pairs(args))
        if body.get("wrap_info"):  # -wrap-ttl: the token is inside the wrapping token, not ours to store
            env.show(body)
            return
        token_value = body["auth"]["client_token"]
        rows = rows_for(body)
    if token_only:
        click.echo(token_value)
        return
    if env.raw and body is not None:
        env.show(body)
        if not no_store:
            save_token(token_value)
        return
    if no_store:
        click.echo("Success! You are now authenticated; the token was not stored (-no-store).\n")
    else:
        stored = save_token(token_value)
        click.echo(f"Success! You are now authenticated; the token is stored in {stored}.\n")
    click.echo(table(rows))
