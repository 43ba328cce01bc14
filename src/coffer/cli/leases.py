"""``coffer lease ...`` and the 2015 spellings ``coffer revoke`` / ``coffer renew``."""

from __future__ import annotations

import sys
import time

import click

from coffer.cli.common import Env, api_command, flag
from coffer.cli.output import show_warnings
from coffer.client import ApiError


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


#: How often ``lease revoke -prefix -sync=false`` polls the count, and how long it
#: watches a count that does not move before leaving the rest to the background.
POLL_SECONDS = 0.2
STALL_SECONDS = 15.0


def _count(env: Env, prefix: str) -> int | None:
    """How many leases are left under ``prefix`` (None if the token may not ask)."""
    try:
        body = env.client.read("sys/leases/count", params={"prefix": prefix})
    except ApiError:
        return None
    return int(((body or {}).get("data") or {}).get("lease_count", 0))


def _revoke_prefix_watching(env: Env, prefix: str) -> None:
    """Queue the revocation of a prefix, then show its progress until no lease is left."""
    total = _count(env, prefix)
    env.client.request("PUT", f"sys/leases/revoke-prefix/{prefix}", {"sync": False})
    if total is None:
        click.echo(f"Success! Revocation of the leases under {prefix} queued; it continues in the background.")
        return
    click.echo(f"Revoking {total} lease(s) under {prefix} in the background.")
    done, last_change = -1, time.monotonic()
    while True:
        left = _count(env, prefix)
        if left is None:
            click.echo(f"Success! Revocation of the leases under {prefix} queued; it continues in the background.")
            return
        now = max(total - left, 0)
        if now != done:
            done, last_change = now, time.monotonic()
            click.echo(f"revoked {done} of {total}")
        if left == 0:
            click.echo(f"Success! Revoked leases with prefix: {prefix}")
            return
        if time.monotonic() - last_change > STALL_SECONDS:
            break
        time.sleep(POLL_SECONDS)
    click.echo(f"{total - max(done, 0)} lease(s) under {prefix} are not revoked yet; coffer keeps retrying in the "
               "background (see `coffer read sys/leases type=irrevocable`).", err=True)
    sys.exit(2)


def _revoke(env: Env, lease_id: str, prefix: bool, force: bool, sync: bool) -> None:
    if force:
        env.client.write(f"sys/leases/revoke-force/{lease_id}")
    elif prefix and not sync:
        _revoke_prefix_watching(env, lease_id)
        return
    elif prefix:
        body = env.client.request("PUT", f"sys/leases/revoke-prefix/{lease_id}", {"sync": sync}).body
        failed = ((body or {}).get("data") or {}).get("failed") if isinstance(body, dict) else None
        if failed:
            show_warnings(body)
            click.echo(f"Error: {failed} lease(s) with prefix {lease_id} could not be revoked yet.", err=True)
            sys.exit(2)
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
