"""``coffer unwrap``: the answer a wrapping token holds."""

from __future__ import annotations

import click

from coffer.cli.common import Env, api_command


@click.command()
@click.argument("token_value", required=False)
@api_command
def unwrap(env: Env, token_value: str | None) -> None:
    """Show what a wrapping token holds, using the token up.

    With TOKEN, the current token authenticates the request; without it, the
    current token (VAULT_TOKEN) is taken to be the wrapping token itself.

    \b
    Examples:
      coffer unwrap hvs.CAES...
      VAULT_TOKEN=hvs.CAES... coffer unwrap
    """
    if token_value:
        body = env.client.write("sys/wrapping/unwrap", {"token": token_value})
    else:
        body = env.client.request("PUT", "sys/wrapping/unwrap").body
    env.show(body)
