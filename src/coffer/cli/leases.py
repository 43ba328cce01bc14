"""``coffer lease ...`` and the 2015 spellings ``coffer revoke`` / ``coffer renew``."""

from __future__ import annotations

import click

from coffer.cli.common import Env, api_command, flag


@click.group()
def lease() -> None:
    """Renew, revoke and look up leases.

    \b
    Examples:
      coffer lease lookup aws/creds/deploy/abcd...
      coffer lease renew -increment=1h aws/creds/deploy/abcd...
      coffer lease revoke -prefix aws/creds/deploy
    """


def _renew(env: Env, lease_id: str, increment: str | None) -> None:
    data = {"lease_id": lease_id, **({"increment": increment} if increment else {})}
    env.show(env.client.write("sys/leases/renew", data))


def _revoke(env: Env, lease_id: str, prefix: bool, force: bool, sync: bool) -> None:
    if force:
        env.client.write(f"sys/leases/revoke-force/{lease_id}")
    elif prefix:
        env.client.request("PUT", f"sys/leases/revoke-prefix/{lease_id}", {"sync": sync})
    else:
        env.client.write("sys/leases/revoke", {"lease_id": lease_id, "sync": sync})
    if not sync:
        click.echo(f"Success! Revocation of {lease_id} queued; it continues in the background.")
    else:
        click.echo(f"Success! Revoked lease{'s with prefix' if prefix or force else ''}: {lease_id}")


@lease.command("renew")
@click.argument("lease_id")
@flag("increment", help="How long to extend by, e.g. 1h.")
@api_command
def renew(env: Env, lease_id: str, increment: str | None) -> None:
    """Renew a lease.

    \b
    Example:
      coffer lease renew -increment=1h aws/creds/deploy/abcd...
    """
    _renew(env, lease_id, increment)


@lease.command("revoke")
@click.argument("lease_id")
@flag("prefix", is_flag=True, help="Revoke every lease under this prefix.")
@flag("force", is_flag=True, help="Forget the leases even if revoking them fails (dangerous).")
@flag("sync", type=click.BOOL, default=True, help="Wait for the revocation (-sync=false queues it).")
@api_command
def revoke(env: Env, lease_id: str, prefix: bool, force: bool, sync: bool) -> None:
    """Revoke a lease, or every lease under a prefix.

    \b
    Examples:
      coffer lease revoke aws/creds/deploy/abcd...
      coffer lease revoke -prefix -sync=false aws/creds/deploy
    """
    _revoke(env, lease_id, prefix, force, sync)


@lease.command("lookup")
@click.argument("lease_id")
@api_command
def lookup(env: Env, lease_id: str) -> None:
    """Show a lease's issue time, expiry and TTL.

    \b
    Example:
      coffer lease lookup aws/creds/deploy/abcd...
    """
    env.show(env.client.write("sys/leases/lookup", {"lease_id": lease_id}))


@click.command("revoke")
@click.argument("lease_id")
@flag("prefix", is_flag=True, help="Revoke every lease under this prefix.")
@flag("force", is_flag=True, help="Forget the leases even if revoking them fails (dangerous).")
@api_command
def revoke_legacy(env: Env, lease_id: str, prefix: bool, force: bool) -> None:
    """Revoke a lease (older spelling of `lease revoke`).

    \b
    Example:
      coffer revoke aws/creds/deploy/abcd...
    """
    if prefix or force:
        _revoke(env, lease_id, prefix, force, True)
    else:
        env.client.write(f"sys/revoke/{lease_id}")
        click.echo(f"Success! Revoked the secret with ID '{lease_id}', if it existed.")


@click.command("renew")
@click.argument("lease_id")
@click.argument("increment", required=False)
@api_command
def renew_legacy(env: Env, lease_id: str, increment: str | None) -> None:
    """Renew a lease (older spelling of `lease renew`).

    \b
    Example:
      coffer renew aws/creds/deploy/abcd... 1h
    """
    _renew(env, lease_id, increment)
