"""``coffer read / write / delete / list / path-help``: any API path."""

from __future__ import annotations

import click

from coffer.cli.common import Env, api_command, parse_pairs
from coffer.cli.output import has_content, show_list, show_warnings


@click.command()
@click.argument("path")
@click.argument("params", nargs=-1)
@api_command
def read(env: Env, path: str, params: tuple[str, ...]) -> None:
    """Read a path; K=V arguments become query parameters.

    \b
    Examples:
      coffer read secret/hello
      coffer read -field=secret_key aws/creds/deploy
    """
    # Like the vault CLI, a 404 (or an empty answer) is "No value found", exit 2.
    reply = env.client.request("GET", path, params=parse_pairs(params) or None, ok=(404,))
    if reply.status == 404 or reply.body is None:
        click.echo(f"No value found at {path}", err=True)
        raise SystemExit(2)
    env.show(reply.body)


@click.command()
@click.argument("path")
@click.argument("pairs", nargs=-1)
@api_command
def write(env: Env, path: str, pairs: tuple[str, ...]) -> None:
    """Write data to a path: K=V, K=@file, K=- (stdin), or - for a JSON object on stdin.

    \b
    Examples:
      coffer write secret/hello value=world
      coffer write aws/roles/deploy policy=@policy.json
      echo '{"value": "world"}' | coffer write secret/hello -
    """
    body = env.client.write(path, parse_pairs(pairs))
    if has_content(body) or (body is not None and env.raw):
        env.show(body)
        return
    if env.format == "table":
        show_warnings(body)
    click.echo(f"Success! Data written to: {path}")


@click.command()
@click.argument("path")
@api_command
def delete(env: Env, path: str) -> None:
    """Delete a path.

    \b
    Example:
      coffer delete secret/hello
    """
    env.client.delete(path)
    click.echo(f"Success! Data deleted (if it existed) at: {path}")


@click.command("list")
@click.argument("path")
@api_command
def list_(env: Env, path: str) -> None:
    """List the keys under a path.

    \b
    Example:
      coffer list secret/
    """
    reply = env.client.request("LIST", path, ok=(404,))
    if reply.status == 404:
        click.echo(f"No value found at {path}", err=True)
        raise SystemExit(2)
    show_list(reply.body, env.format)


@click.command("path-help")
@click.argument("path")
@api_command
def path_help(env: Env, path: str) -> None:
    """Show the help of a path: what it does and its parameters.

    \b
    Examples:
      coffer path-help aws
      coffer path-help aws/creds/deploy
    """
    body = env.client.read(path, params={"help": "1"})
    if env.raw:
        env.show(body)
    else:
        click.echo(body["help"].rstrip())
