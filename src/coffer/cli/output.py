"""How the CLI shows answers: a Key/Value table, JSON, YAML or one field."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

FORMATS = ("table", "json", "yaml")


def scalar(value: Any) -> str:
    """A value the way the vault CLI prints it in a table."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{scalar(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def rows_for(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Table rows: lease fields first, then auth fields, then data keys sorted."""
    rows: list[tuple[str, Any]] = []
    # Only a leased answer has lease rows: a kv read's lease_duration is a refresh hint, not a lease.
    if body.get("lease_id"):
        rows += [("lease_id", body.get("lease_id", "")), ("lease_duration", body.get("lease_duration", 0)),
                 ("lease_renewable", body.get("renewable", False))]
    auth = body.get("auth")
    if auth:
        rows += [
            ("token", auth.get("client_token")),
            ("token_accessor", auth.get("accessor")),
            ("token_duration", f"{auth.get('lease_duration', 0)}s" if auth.get("lease_duration") else "∞"),
            ("token_renewable", auth.get("renewable")),
            ("token_policies", auth.get("token_policies")),
            ("identity_policies", auth.get("identity_policies") or []),
            ("policies", auth.get("policies")),
        ]
        rows += [(f"token_meta_{k}", v) for k, v in sorted((auth.get("metadata") or {}).items())]
    wrap = body.get("wrap_info")
    if isinstance(wrap, dict):
        rows += [("wrapping_token:", wrap.get("token")), ("wrapping_accessor:", wrap.get("accessor")),
                 ("wrapping_token_ttl:", f"{wrap.get('ttl')}s"),
                 ("wrapping_token_creation_time:", wrap.get("creation_time")),
                 ("wrapping_token_creation_path:", wrap.get("creation_path"))]
        if wrap.get("wrapped_accessor"):
            rows.append(("wrapped_accessor:", wrap["wrapped_accessor"]))
    data = body.get("data")
    if isinstance(data, dict):
        rows += sorted(data.items())
    return rows


def table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("Key", "Value")) -> str:
    """Two columns, the header underlined as the vault CLI does (``Key    Value`` / ``---    -----``)."""
    width = max([len(header[0])] + [len(k) for k, _ in rows]) + 2
    lines = [f"{header[0]:<{width}}{header[1]}", f"{'-' * len(header[0]):<{width}}{'-' * len(header[1])}"]
    lines += [f"{k:<{width}}{scalar(v)}".rstrip() for k, v in rows]
    return "\n".join(lines)


def columns(rows: list[list[Any]], headers: list[str]) -> str:
    """A table of any number of columns, headers underlined, each column 4 wider than its widest cell."""
    cells = [headers, ["-" * len(h) for h in headers], *[[scalar(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) + 4 for i in range(len(headers))]
    return "\n".join("".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def show(body: Any, fmt: str = "table", field: str | None = None) -> None:
    """Print a server answer in the chosen format."""
    if field:
        show_field(pick(body, field), fmt)
        return
    if fmt != "table":
        click.echo(dump(body, fmt))
        return
    if isinstance(body, dict):
        click.echo(table(rows_for(body)) if "data" in body or "auth" in body else table(sorted(body.items())))
        show_warnings(body)


def show_field(value: Any, fmt: str = "table") -> None:
    """One field's raw value; a newline follows only on a terminal (so ``$(coffer read -field=...)`` and pipes
    get the value exactly, and a prompt does not stick to it)."""
    text = value if isinstance(value, str) else (scalar(value) if fmt == "table" else dump(value, fmt))
    if sys.stdout.isatty() and not text.endswith("\n"):
        text += "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def has_content(body: Any) -> bool:
    """Whether an answer carries anything besides warnings (data, auth or a lease)."""
    if not isinstance(body, dict):
        return body is not None
    if "data" not in body and "auth" not in body:
        return bool(body)
    return bool(body.get("data") or body.get("auth") or body.get("lease_id") or body.get("wrap_info"))


def show_warnings(body: Any) -> None:
    """The answer's warnings, on stderr, the way the vault CLI shows them."""
    warnings = body.get("warnings") if isinstance(body, dict) else None
    if warnings:
        lines = ["", "WARNING! The following warnings were returned from the server:", ""]
        lines += [f"  * {w}" for w in warnings]
        click.echo("\n".join(lines) + "\n", err=True)


def show_list(body: Any, fmt: str = "table") -> None:
    """The keys of a LIST answer: one per line under a header, or (json, yaml) just the array, as vault list."""
    keys = ((body or {}).get("data") or {}).get("keys") or []
    if fmt != "table":
        click.echo(dump(keys, fmt))
        return
    click.echo("\n".join(["Keys", "----", *keys]))


def pick(body: Any, field: str) -> Any:
    """One field of an answer: from data, then auth (with token_* aliases), then the top level."""
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and field in data:
            return data[field]
        for name, value in rows_for(body):
            if name.rstrip(":") == field:  # wrapping rows are shown as "wrapping_token:", as by vault
                return value
        if field in body:
            return body[field]
    raise click.ClickException(f'field "{field}" not present in the answer')


def dump(value: Any, fmt: str) -> str:
    if fmt == "yaml":
        import yaml  # only when asked for: it costs every command's start-up otherwise

        return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip()
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
