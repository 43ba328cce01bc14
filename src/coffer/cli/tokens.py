"""``coffer token ...``."""

from __future__ import annotations

import click

from coffer.cli.common import Env, api_command, flag


@click.group()
def token() -> None:
    """Create, look up, renew and revoke tokens.

    \b
    Examples:
      coffer token create -policy=deploy -ttl=1h
      coffer token lookup
      coffer token revoke -self
    """


@token.command("create")
@flag("policy", multiple=True, help="A policy for the token (repeatable); default: the caller's.")
@flag("ttl", help="Time to live, e.g. 1h.")
@flag("explicit-max-ttl", help="A hard limit on the token's life.")
@flag("period", help="Make a periodic token.")
@flag("orphan", is_flag=True, help="Create a token with no parent.")
@flag("no-default-policy", is_flag=True, help="Do not attach the default policy.")
@flag("display-name", help="A name shown in lookups.")
@flag("use-limit", type=int, default=0, help="How many requests it may make (0: unlimited).")
@flag("renewable", type=click.BOOL, default=True, help="Whether it can be renewed (-renewable=false).")
@flag("metadata", multiple=True, help="K=V metadata (repeatable).")
@flag("id", "token_id", help="The token value (root only).")
@flag("role", help="Create the token with this token role (auth/token/roles/<role>).")
@api_command
def create(env: Env, policy: tuple[str, ...], ttl: str | None, explicit_max_ttl: str | None, period: str | None,
           orphan: bool, no_default_policy: bool, display_name: str | None, use_limit: int, renewable: bool,
           metadata: tuple[str, ...], token_id: str | None, role: str | None) -> None:
    """Create a new token (a child of the current one unless -orphan or its role says so).

    \b
    Examples:
      coffer token create -policy=deploy -ttl=1h
      coffer token create -role=ci
    """
    data: dict = {"no_default_policy": no_default_policy, "renewable": renewable, "num_uses": use_limit}
    if policy:
        data["policies"] = [p for item in policy for p in item.split(",") if p]
    for key, value in (("ttl", ttl), ("explicit_max_ttl", explicit_max_ttl), ("period", period),
                       ("display_name", display_name), ("id", token_id)):
        if value:
            data[key] = value
    if metadata:
        data["meta"] = dict(m.split("=", 1) for m in metadata if "=" in m)
    if role:
        path = f"auth/token/create/{role.strip('/')}"
        if orphan:
            data["no_parent"] = True
    else:
        path = "auth/token/create-orphan" if orphan else "auth/token/create"
    env.show(env.client.write(path, data))


@token.command("lookup")
@click.argument("token_value", required=False)
@flag("accessor", is_flag=True, help="TOKEN is an accessor.")
@api_command
def lookup(env: Env, token_value: str | None, accessor: bool) -> None:
    """Show a token's properties (the current token when omitted).

    \b
    Example:
      coffer token lookup
    """
    if accessor:
        body = env.client.write("auth/token/lookup-accessor", {"accessor": token_value})
    elif token_value:
        body = env.client.write("auth/token/lookup", {"token": token_value})
    else:
        body = env.client.read("auth/token/lookup-self")
    env.show(body)


@token.command("renew")
@click.argument("token_value", required=False)
@flag("increment", help="How long to extend by, e.g. 1h.")
@api_command
def renew(env: Env, token_value: str | None, increment: str | None) -> None:
    """Renew a token (the current token when omitted).

    \b
    Example:
      coffer token renew -increment=1h
    """
    data = {"increment": increment} if increment else {}
    if token_value:
        body = env.client.write("auth/token/renew", {**data, "token": token_value})
    else:
        body = env.client.write("auth/token/renew-self", data)
    env.show(body)


@token.command("revoke")
@click.argument("token_value", required=False)
@flag("accessor", is_flag=True, help="TOKEN is an accessor.")
@flag("self", "revoke_self", is_flag=True, help="Revoke the current token.")
@flag("mode", type=click.Choice(["", "orphan"]), default="", help="orphan: keep the children.")
@api_command
def revoke(env: Env, token_value: str | None, accessor: bool, revoke_self: bool, mode: str) -> None:
    """Revoke a token and its children.

    \b
    Examples:
      coffer token revoke hvs.XXXX
      coffer token revoke -self
    """
    if revoke_self:
        env.client.write("auth/token/revoke-self")
    elif not token_value:
        raise click.UsageError("give a TOKEN (or -accessor ACCESSOR, or -self)")
    elif accessor:
        env.client.write("auth/token/revoke-accessor", {"accessor": token_value})
    elif mode == "orphan":
        env.client.write("auth/token/revoke-orphan", {"token": token_value})
    else:
        env.client.write("auth/token/revoke", {"token": token_value})
    click.echo("Success! Revoked token (if it existed)")


@token.command("capabilities")
@click.argument("args", nargs=-1, required=True)
@api_command
def capabilities(env: Env, args: tuple[str, ...]) -> None:
    """Show the capabilities of a token on a path: [TOKEN] PATH.

    \b
    Example:
      coffer token capabilities aws/creds/deploy
    """
    if len(args) > 2:
        raise click.UsageError("expected [TOKEN] PATH")
    path = args[-1]
    if len(args) == 2:
        body = env.client.write("sys/capabilities", {"token": args[0], "paths": [path]})
    else:
        body = env.client.write("sys/capabilities-self", {"paths": [path]})
    caps = body.get("capabilities") or body["data"].get(path, [])
    if env.raw:
        env.show(body)
    else:
        click.echo(", ".join(caps))
