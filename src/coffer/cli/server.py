"""``coffer server``: the one command that runs a server (so it imports the server side; see the import contract)."""

from __future__ import annotations

import sys

import click

from coffer.cli.common import flag


@click.command()
@flag("dev", is_flag=True, help="Run an in-memory, unsealed development server.")
@flag("config", type=click.Path(dir_okay=False), help="Path to a server config file (HCL or JSON).")
@flag("dev-root-token-id", envvar="COFFER_DEV_ROOT_TOKEN_ID", help="The root token's value in dev mode.")
@flag("dev-listen-address", default="127.0.0.1:8200", show_default=True, envvar="COFFER_DEV_LISTEN_ADDRESS",
      help="Address a dev server listens on.")
@flag("dev-plugin-dir", type=click.Path(file_okay=False), help="Load engines from this folder in dev mode.")
@flag("dev-revoke-timeout", type=float, default=30.0, show_default=True,
      help="When an in-memory server stops, revoke its leases for at most this many seconds.")
@flag("dev-leave-leases", is_flag=True, help="When an in-memory server stops, do not revoke its leases.")
@flag("dev-kv-v1", is_flag=True, help="Mount kv version 1 at secret/ in dev mode (default: version 2, as Vault).")
@flag("log-level", envvar="VAULT_LOG_LEVEL", help="Log level: trace, debug, info, warn, error.")
@flag("log-format", envvar="VAULT_LOG_FORMAT", type=click.Choice(["standard", "json"], case_sensitive=False),
      help="Log lines as text (standard) or one JSON object per line (json).")
def server(dev: bool, config: str | None, dev_root_token_id: str | None, dev_listen_address: str,
           dev_plugin_dir: str | None, dev_revoke_timeout: float, dev_leave_leases: bool, dev_kv_v1: bool,
           log_level: str | None, log_format: str | None) -> None:
    """Start a coffer server.

    \b
    Examples:
      coffer server -dev
      coffer server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8300
      coffer server -config=/etc/coffer/coffer.hcl
    """
    from coffer.config import LOG_LEVELS, ConfigError, ListenerConfig, ServerConfig, StorageConfig, load_config
    from coffer.server import run

    if not dev and not config:
        raise click.UsageError("give -config=FILE for a real server, or -dev for a development server")
    if dev:
        cfg = ServerConfig(storage=StorageConfig("inmem"), plugin_directory=dev_plugin_dir,
                           listener=ListenerConfig(address=dev_listen_address, tls_disable=True))
    else:
        assert config is not None  # checked above
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            click.echo(f"Error loading configuration: {exc}", err=True)
            sys.exit(1)
    if log_level:
        level = log_level.strip().lower()
        level = {"warning": "warn", "err": "error"}.get(level, level)
        if level not in LOG_LEVELS:
            raise click.BadParameter(f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="-log-level")
        cfg.log_level = level
    if log_format:
        cfg.log_format = log_format.lower()
    try:
        run(cfg, dev=dev, dev_root_token_id=dev_root_token_id, dev_revoke_timeout=dev_revoke_timeout,
            dev_leave_leases=dev_leave_leases, dev_kv_v1=dev_kv_v1, announce=click.echo)
    except (OSError, ValueError) as exc:
        click.echo(f"Error starting the server: {exc}", err=True)
        sys.exit(1)
