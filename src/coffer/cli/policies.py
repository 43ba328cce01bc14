"""``coffer policy ...`` and ``coffer audit ...``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from coffer.cli.common import Env, api_command, flag, parse_pairs
from coffer.cli.output import columns, show_list


@click.group()
def policy() -> None:
    """Write, read, list and delete ACL policies.

    \b
    Examples:
      coffer policy write deploy deploy.hcl
      coffer policy list
      coffer policy fmt deploy.hcl
    """


def _policy_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except OSError as exc:
        raise click.UsageError(f"cannot read {source}: {exc.strerror}") from None


@policy.command("write")
@click.argument("name")
@click.argument("source")
@api_command
def write(env: Env, name: str, source: str) -> None:
    """Upload a policy from FILE (or - for stdin).

    \b
    Example:
      coffer policy write deploy deploy.hcl
    """
    env.client.write(f"sys/policies/acl/{name}", {"policy": _policy_text(source)})
    click.echo(f"Success! Uploaded policy: {name}")


@policy.command("read")
@click.argument("name")
@api_command
def read(env: Env, name: str) -> None:
    """Print a policy's text.

    \b
    Example:
      coffer policy read deploy
    """
    body = env.client.read(f"sys/policies/acl/{name}")
    if env.raw:
        env.show(body)
    else:
        click.echo(body["data"]["policy"].rstrip())


@policy.command("list")
@api_command
def list_(env: Env) -> None:
    """List policy names.

    \b
    Example:
      coffer policy list
    """
    body = env.client.list("sys/policies/acl")
    if env.format != "table":
        show_list(body, env.format)
    else:
        click.echo("\n".join(body["data"]["keys"]))


@policy.command("delete")
@click.argument("name")
@api_command
def delete(env: Env, name: str) -> None:
    """Delete a policy.

    \b
    Example:
      coffer policy delete deploy
    """
    env.client.delete(f"sys/policies/acl/{name}")
    click.echo(f"Success! Deleted policy: {name}")


@policy.command("fmt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def fmt(file: str) -> None:
    """Check a policy file parses, and report where it does not.

    \b
    Example:
      coffer policy fmt deploy.hcl
    """
    from coffer.core.policy import PolicyError, parse_policy

    try:
        parse_policy("fmt", Path(file).read_text())
    except PolicyError as exc:
        click.echo(f"Error formatting policy: {exc}", err=True)
        sys.exit(2)
    click.echo(f"Success! Policy {file} is valid")


@click.group()
def audit() -> None:
    """Enable, disable and list audit devices.

    \b
    Examples:
      coffer audit enable file file_path=/var/log/coffer-audit.log
      coffer audit list
    """


@audit.command("enable")
@click.argument("device_type")
@click.argument("options", nargs=-1)
@flag("path", help="Where to mount it (default: the type).")
@flag("description", help="A description.")
@api_command
def enable(env: Env, device_type: str, options: tuple[str, ...], path: str | None, description: str | None) -> None:
    """Enable an audit device.

    \b
    Example:
      coffer audit enable file file_path=/var/log/coffer-audit.log
    """
    path = (path or device_type).strip("/")
    env.client.write(f"sys/audit/{path}", {"type": device_type, "description": description or "",
                                           "options": parse_pairs(options)})
    click.echo(f"Success! Enabled the {device_type} audit device at: {path}/")


@audit.command("disable")
@click.argument("path")
@api_command
def disable(env: Env, path: str) -> None:
    """Disable an audit device.

    \b
    Example:
      coffer audit disable file
    """
    env.client.delete(f"sys/audit/{path.strip('/')}")
    click.echo(f"Success! Disabled audit device (if it was enabled) at: {path.strip('/')}/")


@audit.command("list")
@flag("detailed", is_flag=True, help="Show each device's options too.")
@api_command
def list_audit(env: Env, detailed: bool) -> None:
    """List audit devices.

    \b
    Examples:
      coffer audit list
      coffer audit list -detailed
    """
    body = env.client.read("sys/audit") or {}  # no devices: the server may answer 204
    if env.raw:
        env.show(body)
        return
    devices = body.get("data") or {}
    if not devices:
        click.echo("No audit devices are enabled.")
        return
    headers = ["Path", "Type", "Description"] + (["Options"] if detailed else [])
    rows = [[p, d.get("type"), d.get("description") or ""] + ([d.get("options") or {}] if detailed else [])
            for p, d in sorted(devices.items())]
    click.echo(columns(rows, headers))
