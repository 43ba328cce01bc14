"""The ``coffer`` command line.

Flags work in Vault's Go style (``-format=json``) and the GNU style
(``--format json``). Exit codes follow the vault CLI: 0 success, 1 a usage
error (the command's usage is printed), 2 an error from the server or the
connection.
"""

from __future__ import annotations

import sys

import click

from coffer import __version__
from coffer.cli import auth, kv, leases, operator, paths, policies, secrets, server, tokens, usage, wrapping
from coffer.cli.common import ENVIRONMENT


@click.group(context_settings={"help_option_names": ["-h", "--help", "-help"]}, epilog=ENVIRONMENT)
@click.version_option(__version__, "-version", "--version", prog_name="coffer", message="coffer v%(version)s",
                      help="Print coffer's version.")
def cli() -> None:
    """coffer: a secrets server that speaks Vault's HTTP API.

    \b
    Examples:
      coffer server -dev
      coffer kv put secret/hello foo=bar
      coffer mount aws
      coffer write aws/config/root access_key=AKIA... secret_key=... region=us-east-1
      coffer read aws/creds/deploy
    """


@cli.command()
def version() -> None:
    """Print coffer's version.

    \b
    Example:
      coffer version
    """
    click.echo(f"coffer v{__version__}")


for command in (
    server.server, operator.status, operator.operator,
    paths.read, paths.write, paths.delete, paths.list_, paths.path_help, kv.kv,
    secrets.secrets, secrets.mount, secrets.unmount, secrets.mounts, secrets.remount, secrets.mount_tune,
    tokens.token, auth.login, auth.auth, wrapping.unwrap,
    leases.lease, leases.revoke_legacy, leases.renew_legacy,
    policies.policy, policies.audit, usage.help_,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="coffer", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `coffer`, `coffer operator`: help, not an error
        click.echo(exc.ctx.get_help())
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        typo = usage.single_dash_typo(exc, args) if isinstance(exc, click.NoSuchOption) else None
        click.echo(f"\nError: {typo or exc.format_message()}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
