"""``coffer secrets ...`` and the 2015 spellings ``mount``, ``unmount``, ``mounts``,
``remount``, ``mount-tune``."""

from __future__ import annotations

import click

from coffer.cli.common import Env, api_command, flag, listing_visibility_flag, parse_pairs, tune_body
from coffer.cli.output import columns, scalar


def _ttl_flags(fn):
    fn = flag("default-lease-ttl", help="Default lease TTL, e.g. 1h.")(fn)
    return flag("max-lease-ttl", help="Maximum lease TTL, e.g. 24h.")(fn)


def _enable(env: Env, engine: str, path: str | None, description: str | None, default_lease_ttl: str | None,
            max_lease_ttl: str | None, version: str | None = None, options: tuple[str, ...] = ()) -> None:
    path = (path or engine).strip("/")
    config = {k: v for k, v in (("default_lease_ttl", default_lease_ttl), ("max_lease_ttl", max_lease_ttl)) if v}
    body = {"type": engine, "description": description or "", "config": config}
    opts = {k: str(v) for k, v in parse_pairs(options).items()}
    if version:
        opts["version"] = version
    if opts:
        body["options"] = opts
    env.client.write(f"sys/mounts/{path}", body)


@click.group()
def secrets() -> None:
    """Enable, disable, list, tune and move secrets engines.

    \b
    Examples:
      coffer secrets enable -path=aws-prod aws
      coffer secrets list -detailed
      coffer secrets tune -default-lease-ttl=30m aws-prod
    """


@secrets.command("enable")
@click.argument("engine")
@flag("path", help="Where to mount it (default: the engine type).")
@flag("description", help="A description shown in listings.")
@flag("version", help="The engine's version, a shorthand for -options=version=N (kv: 1 or 2).")
@flag("options", multiple=True, help="An engine option K=V (repeatable).")
@_ttl_flags
@api_command
def enable(env: Env, engine: str, path: str | None, description: str | None, version: str | None,
           options: tuple[str, ...], default_lease_ttl: str | None, max_lease_ttl: str | None) -> None:
    """Mount a secrets engine.

    \b
    Examples:
      coffer secrets enable -path=aws-prod aws
      coffer secrets enable -version=2 -path=team kv
    """
    _enable(env, engine, path, description, default_lease_ttl, max_lease_ttl, version, options)
    path = (path or engine).strip("/")
    click.echo(f"Success! Enabled the {engine} secrets engine at: {path}/")


@click.command("mount")
@click.argument("engine")
@flag("path", help="Where to mount it (default: the engine type).")
@flag("description", help="A description shown in listings.")
@_ttl_flags
@api_command
def mount(env: Env, engine: str, path: str | None, description: str | None, default_lease_ttl: str | None,
          max_lease_ttl: str | None) -> None:
    """Mount a secrets engine (older spelling of `secrets enable`).

    \b
    Example:
      coffer mount aws
    """
    _enable(env, engine, path, description, default_lease_ttl, max_lease_ttl)
    click.echo(f"Successfully mounted '{engine}' at '{(path or engine).strip('/')}'!")


@secrets.command("disable")
@click.argument("path")
@api_command
def disable(env: Env, path: str) -> None:
    """Unmount a secrets engine: its leases are revoked and its data deleted.

    \b
    Example:
      coffer secrets disable aws-prod
    """
    env.client.delete(f"sys/mounts/{path.strip('/')}")
    click.echo(f"Success! Disabled the secrets engine (if it existed) at: {path.strip('/')}/")


@click.command("unmount")
@click.argument("path")
@api_command
def unmount(env: Env, path: str) -> None:
    """Unmount a secrets engine (older spelling of `secrets disable`).

    \b
    Example:
      coffer unmount aws
    """
    env.client.delete(f"sys/mounts/{path.strip('/')}")
    click.echo(f"Successfully unmounted '{path.strip('/')}' if it was mounted")


def mount_table(mounts: dict, detailed: bool) -> str:
    """Mounts (of sys/mounts or sys/auth) as the vault CLI lists them; -detailed adds TTLs and options."""
    headers = ["Path", "Type", "Accessor", "Description"]
    rows = [[p, m["type"], m["accessor"], m["description"]] for p, m in sorted(mounts.items())]
    if detailed:
        headers[3:3] = ["Default TTL", "Max TTL", "Options"]
        for row, (_, m) in zip(rows, sorted(mounts.items()), strict=True):
            row[3:3] = [scalar(m["config"]["default_lease_ttl"] or "system"),
                        scalar(m["config"]["max_lease_ttl"] or "system"), scalar(m.get("options"))]
    return columns(rows, headers)


def _list(env: Env, detailed: bool) -> None:
    body = env.client.read("sys/mounts")
    if env.raw:
        env.show(body)
        return
    click.echo(mount_table(body["data"], detailed))


@secrets.command("list")
@flag("detailed", is_flag=True, help="Show TTLs and options too.")
@api_command
def list_(env: Env, detailed: bool) -> None:
    """List mounted secrets engines.

    \b
    Example:
      coffer secrets list -detailed
    """
    _list(env, detailed)


@click.command("mounts")
@api_command
def mounts(env: Env) -> None:
    """List mounted secrets engines (older spelling of `secrets list`).

    \b
    Example:
      coffer mounts
    """
    _list(env, True)


def _tune(env: Env, path: str, default_lease_ttl: str | None, max_lease_ttl: str | None,
          description: str | None, listing_visibility: str | None) -> None:
    data = tune_body(default_lease_ttl=default_lease_ttl, max_lease_ttl=max_lease_ttl, description=description,
                     listing_visibility=listing_visibility)
    env.client.write(f"sys/mounts/{path.strip('/')}/tune", data)
    click.echo(f"Success! Tuned the secrets engine at: {path.strip('/')}/")


@secrets.command("tune")
@click.argument("path")
@_ttl_flags
@flag("description", help="A new description.")
@listing_visibility_flag
@api_command
def tune(env: Env, path: str, default_lease_ttl: str | None, max_lease_ttl: str | None,
         description: str | None, listing_visibility: str | None) -> None:
    """Change a mount's lease TTLs or description.

    \b
    Example:
      coffer secrets tune -default-lease-ttl=30m aws
    """
    _tune(env, path, default_lease_ttl, max_lease_ttl, description, listing_visibility)


@click.command("mount-tune")
@click.argument("path")
@_ttl_flags
@flag("description", help="A new description.")
@listing_visibility_flag
@api_command
def mount_tune(env: Env, path: str, default_lease_ttl: str | None, max_lease_ttl: str | None,
               description: str | None, listing_visibility: str | None) -> None:
    """Tune a mount (older spelling of `secrets tune`).

    \b
    Example:
      coffer mount-tune -max-lease-ttl=24h aws
    """
    _tune(env, path, default_lease_ttl, max_lease_ttl, description, listing_visibility)


@secrets.command("move")
@click.argument("source")
@click.argument("destination")
@api_command
def move(env: Env, source: str, destination: str) -> None:
    """Move a mount to a new path.

    \b
    Example:
      coffer secrets move aws aws-prod
    """
    env.client.write("sys/remount", {"from": source, "to": destination})
    click.echo(f"Success! Moved secrets engine {source.strip('/')}/ to: {destination.strip('/')}/")


@click.command("remount")
@click.argument("source")
@click.argument("destination")
@api_command
def remount(env: Env, source: str, destination: str) -> None:
    """Move a mount (older spelling of `secrets move`).

    \b
    Example:
      coffer remount aws aws-prod
    """
    env.client.write("sys/remount", {"from": source, "to": destination})
    click.echo(f"Successfully remounted '{source.strip('/')}' to '{destination.strip('/')}'!")

