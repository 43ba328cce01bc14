"""``coffer server``, ``coffer status`` and ``coffer operator ...``."""

from __future__ import annotations

import sys

import click

from coffer.cli.common import Env, api_command, flag, prompt_secret
from coffer.cli.output import table


def _seal_rows(status: dict) -> list[tuple[str, object]]:
    rows = [("Seal Type", status["type"]), ("Initialized", status["initialized"]), ("Sealed", status["sealed"]),
            ("Total Shares", status["n"]), ("Threshold", status["t"])]
    if status["sealed"]:
        rows.append(("Unseal Progress", f"{status['progress']}/{status['t']}"))
    rows += [("Version", status["version"]), ("Storage Type", status["storage_type"]), ("HA Enabled", False)]
    return rows


def _show_status(env: Env, status: dict) -> None:
    if env.raw:
        env.show(status)
    else:
        click.echo(table(_seal_rows(status)))


@click.command()
@api_command
def status(env: Env) -> None:
    """Show whether the server is initialized and sealed (exit 2 when sealed).

    \b
    Example:
      coffer status
    """
    body = env.client.request("GET", "sys/seal-status").body
    _show_status(env, body)
    if body["sealed"]:
        sys.exit(2)


@click.group()
def operator() -> None:
    """Initialize, unseal, seal and rotate the server's keys.

    \b
    Examples:
      coffer operator init -key-shares=5 -key-threshold=3
      coffer operator unseal
      coffer operator seal
    """


@operator.command("init")
@flag("key-shares", type=int, default=5, show_default=True, help="How many unseal key shares to make.")
@flag("key-threshold", type=int, default=3, show_default=True, help="How many shares unseal the server.")
@api_command
def init(env: Env, key_shares: int, key_threshold: int) -> None:
    """Initialize a new server: print the unseal keys and the root token.

    \b
    Example:
      coffer operator init -key-shares=5 -key-threshold=3
    """
    body = env.client.write("sys/init", {"secret_shares": key_shares, "secret_threshold": key_threshold})
    if env.raw:
        env.show(body)
        return
    for i, key in enumerate(body["keys_base64"], 1):
        click.echo(f"Unseal Key {i}: {key}")
    click.echo(f"\nInitial Root Token: {body['root_token']}\n")
    click.echo(f"The server is initialized with {key_shares} key shares and a key threshold of {key_threshold}.\n"
               f"Give {key_threshold} of these keys to `coffer operator unseal` each time it starts sealed.\n"
               "Keep them apart and safe: without them the data cannot be decrypted.")


@operator.command("unseal")
@click.argument("key", required=False)
@flag("reset", is_flag=True, help="Forget the key shares given so far.")
@api_command
def unseal(env: Env, key: str | None, reset: bool) -> None:
    """Give one unseal key share (prompted without echo when omitted).

    \b
    Example:
      coffer operator unseal
      coffer operator unseal 2d5a...
    """
    if reset:
        body = env.client.write("sys/unseal", {"reset": True})
    else:
        if not key:
            key = prompt_secret("Unseal Key")
        body = env.client.write("sys/unseal", {"key": key.strip()})
    _show_status(env, body)


@operator.command("seal")
@api_command
def seal(env: Env) -> None:
    """Seal the server (needs sudo).

    \b
    Example:
      coffer operator seal
    """
    env.client.write("sys/seal")
    click.echo("Success! Vault is sealed.")


@operator.command("key-status")
@api_command
def key_status(env: Env) -> None:
    """Show the active encryption key term.

    \b
    Example:
      coffer operator key-status
    """
    body = env.client.read("sys/key-status")
    if env.raw:
        env.show(body)
    else:
        data = body["data"]
        click.echo(table([("Key Term", data["term"]), ("Install Time", data["install_time"])]))


@operator.command("rotate")
@api_command
def rotate(env: Env) -> None:
    """Add a new encryption key term; new writes use it (needs sudo).

    \b
    Example:
      coffer operator rotate
    """
    env.client.write("sys/rotate")
    term = env.client.read("sys/key-status")["data"]["term"]
    click.echo(f"Success! Rotated key\n\nKey Term      {term}")
