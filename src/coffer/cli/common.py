"""What every API command shares: connection flags, output flags, K=V input."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from coffer.cli import output
from coffer.client import ApiError, Client, ConnectionFailed
from coffer.client import env as variable


def flag(name: str, dest: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option spelled both ``-name`` (Vault's Go style) and ``--name``."""
    return click.option(f"-{name}", f"--{name}", dest or name.replace("-", "_"), **kwargs)


#: ``-listing-visibility`` of the tune commands (secrets tune, mount-tune, auth tune).
listing_visibility_flag = flag("listing-visibility",
                               help='"unauth" to list it to callers without a token (sys/internal/ui/mounts), or "".')


def tune_body(**given: str | None) -> dict[str, str]:
    """A tune request's body: the settings whose flags were given (``None`` for the others)."""
    return {name: value for name, value in given.items() if value is not None}


class Env:
    """The client and output settings one command runs with."""

    def __init__(self, address: str | None, ca_cert: str | None, tls_skip_verify: bool, fmt: str,
                 field: str | None, wrap_ttl: str | None = None) -> None:
        self.address, self.ca_cert, self.tls_skip_verify = address, ca_cert, tls_skip_verify
        self.format, self.field, self.wrap_ttl = fmt, field, wrap_ttl

    @functools.cached_property
    def client(self) -> Client:
        client = Client(self.address, ca_cert=self.ca_cert, tls_skip_verify=self.tls_skip_verify)
        client.wrap_ttl = self.wrap_ttl
        return client

    @property
    def raw(self) -> bool:
        """Show the server's answer as data (-format=json/yaml, or -field), not the command's own layout."""
        return self.format != "table" or bool(self.field)

    def show(self, body: Any) -> None:
        output.show(body, self.format, self.field)


def api_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection and output flags; pass an ``Env`` as ``env``; render API errors."""

    @flag("address", help="Server address (else COFFER_ADDR, else VAULT_ADDR, else http://127.0.0.1:8200).")
    @flag("ca-cert", help="CA certificate file to verify the server (else COFFER_CACERT, else VAULT_CACERT).")
    @flag("tls-skip-verify", is_flag=True,
          help="Do not verify the server's TLS certificate (insecure; also COFFER_SKIP_VERIFY or VAULT_SKIP_VERIFY).")
    @flag("format", "fmt", type=click.Choice(output.FORMATS),
          help="Output format: table, json or yaml (else COFFER_FORMAT, else VAULT_FORMAT, else table).")
    @flag("field", help="Print only this field's raw value.")
    @flag("wrap-ttl", help="Have the answer wrapped in a single-use token living this long (e.g. 5m).")
    @functools.wraps(fn)
    def wrapper(address: str | None, ca_cert: str | None, tls_skip_verify: bool, fmt: str | None,
                field: str | None, wrap_ttl: str | None, **kwargs: Any) -> Any:
        env = Env(address, ca_cert, tls_skip_verify, fmt or default_format(), field, wrap_ttl)
        try:
            return fn(env=env, **kwargs)
        except ApiError as exc:
            render_api_error(exc)
            sys.exit(2)
        except ConnectionFailed as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + ENVIRONMENT
    return wrapper


def default_format() -> str:
    """The output format when -format is not given: COFFER_FORMAT, else VAULT_FORMAT, else table."""
    fmt = (variable("FORMAT") or "table").strip().lower()
    if fmt not in output.FORMATS:
        raise click.UsageError(f'invalid output format "{fmt}" in COFFER_FORMAT or VAULT_FORMAT; use table, json '
                               "or yaml")
    return fmt


#: Where a command's help names the environment (every API command shares these).
ENVIRONMENT = """\b
Environment (the COFFER_ variable wins over its VAULT_ twin):
  COFFER_ADDR / VAULT_ADDR                     server address
  COFFER_TOKEN / VAULT_TOKEN                   token (else ~/.coffer-token, else ~/.vault-token)
  COFFER_FORMAT / VAULT_FORMAT                 output format
  COFFER_CACERT / VAULT_CACERT                 CA certificate file
  COFFER_SKIP_VERIFY / VAULT_SKIP_VERIFY       do not verify TLS (insecure)
  COFFER_CLIENT_TIMEOUT / VAULT_CLIENT_TIMEOUT request timeout (60s)"""


def render_api_error(exc: ApiError) -> None:
    lines = ["Error making API request.", "", f"URL: {exc.method} {exc.url}", f"Code: {exc.status}. Errors:", ""]
    lines += [f"* {e}" for e in exc.errors or exc.warnings] or ["* (no error message)"]
    click.echo("\n".join(lines), err=True)


def prompt_secret(label: str) -> str:
    """A secret typed at the terminal without echo; when stdin is not a terminal, its first line.

    (getpass would open /dev/tty instead of reading a pipe whenever the process has a
    controlling terminal, so ``echo KEY | coffer operator unseal`` could hang.)
    """
    if not sys.stdin.isatty():
        value = sys.stdin.readline().strip()
        if not value:
            raise click.UsageError(f"no {label.lower()} given: stdin is empty")
        return value
    return click.prompt(f"{label} (will be hidden)", hide_input=True).strip()


def _value(raw: str) -> Any:
    if raw == "-":
        return sys.stdin.read()
    if raw.startswith("@"):
        try:
            return Path(raw[1:]).expanduser().read_text()
        except OSError as exc:
            raise click.UsageError(f"cannot read {raw[1:]}: {exc.strerror}") from None
    return raw


def parse_pairs(args: tuple[str, ...]) -> dict[str, Any]:
    """``K=V``, ``K=@file``, ``K=-`` (stdin), ``@file.json`` or a lone ``-`` (a JSON object on stdin)."""
    data: dict[str, Any] = {}
    for arg in args:
        if arg == "-" or (arg.startswith("@") and "=" not in arg):
            text = _value(arg)
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise click.UsageError(f"expected a JSON object from {arg}: {exc}") from None
            if not isinstance(obj, dict):
                raise click.UsageError(f"expected a JSON object from {arg}")
            data.update(obj)
            continue
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise click.UsageError(f'expected KEY=VALUE, got "{arg}"')
        data[key] = _value(value)
    return data
