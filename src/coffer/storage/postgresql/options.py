"""The backend's options: their defaults and parsing, URL masking, and the HA lock's timings."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from coffer.truth import parse_bool

log = logging.getLogger("coffer.storage.postgresql")

DEFAULT_TABLE = "coffer_kv"
DEFAULT_HA_TABLE = "coffer_ha_locks"
#: Pool size. Vault's default (128) exceeds PostgreSQL's own default of 100 connections
#: for a single node; one asyncio process gains nothing past a few dozen concurrent
#: queries (the machine's PostgreSQL has as many cores to run them), and three nodes at 16
#: leave half of that default to standbys' growth, migrations and administration.
DEFAULT_MAX_PARALLEL = 16
#: Connections kept open while idle (more are opened on demand and closed after a minute idle).
DEFAULT_MAX_IDLE = 2
HA_TTL = 15.0
HA_RENEW_INTERVAL = 5.0
HA_RETRY_INTERVAL = 1.0
#: How often every node (active or standby) writes its heartbeat row into the HA table.
HA_HEARTBEAT_INTERVAL = 5.0
#: Test-only environment variables that shorten the HA timings of a server started from a
#: configuration (integration tests of fail-over). Never set them in production.
TEST_TIMING_ENV = {
    "ttl": "COFFER_TEST_HA_TTL",
    "renew_interval": "COFFER_TEST_HA_RENEW_INTERVAL",
    "retry_interval": "COFFER_TEST_HA_RETRY_INTERVAL",
    "heartbeat_interval": "COFFER_TEST_HA_HEARTBEAT_INTERVAL",
}
ENV_URLS = ("COFFER_PG_URL", "VAULT_PG_CONNECTION_URL")
OPTIONS = ("connection_url", "table", "ha_enabled", "ha_table", "max_parallel", "max_idle_connections")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (URI userinfo and ``password=`` settings)."""
    out = url
    if "://" in url:
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            userinfo, at, host = parts.netloc.rpartition("@")
            if at and ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                out = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", r"\1***", out)


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def _option_error(name: str, problem: str) -> ValueError:
    return ValueError(f'storage "postgresql": option "{name}" {problem}')


def _parse_bool(name: str, raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise _option_error(name, f'must be "true" or "false", not "{raw}"') from None


def _parse_int(name: str, raw: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _option_error(name, f'must be a whole number, not "{raw}"') from None
    if not minimum <= value <= maximum:
        raise _option_error(name, f"must be between {minimum} and {maximum}, not {value}")
    return value


def _parse_table(name: str, raw: str) -> tuple[str, ...]:
    """``name`` or ``schema.name`` as identifier parts, checked."""
    parts = tuple(raw.strip().split("."))
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise _option_error(
            name, f'must be a table name (letters, digits, "_"; optionally "schema.table"), not "{raw}"'
        )
    return parts


def _parse_seconds(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable} (test only) must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{variable} (test only) must be positive, not {raw!r}")
    return value


@dataclass(frozen=True)
class HATimings:
    """The HA lock's TTL and how often it is renewed (holder) or retried (waiting node), in seconds."""

    ttl: float = HA_TTL
    renew_interval: float = HA_RENEW_INTERVAL
    retry_interval: float = HA_RETRY_INTERVAL
    heartbeat_interval: float = HA_HEARTBEAT_INTERVAL

    def __post_init__(self) -> None:
        if not (self.ttl > 0 and self.renew_interval > 0 and self.retry_interval > 0 and self.heartbeat_interval > 0):
            raise ValueError(f"HA timings must be positive: {self}")
        if self.renew_interval * 2 > self.ttl:
            raise ValueError(f"the HA lock must be renewed at least twice per TTL: {self}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> HATimings:
        """The defaults, or what the test-only ``COFFER_TEST_HA_*`` variables set."""
        given = {name: _parse_seconds(var, environ[var]) for name, var in TEST_TIMING_ENV.items() if environ.get(var)}
        if not given:
            return cls()
        log.warning("HA lock timings shortened by test-only environment variables: %s", given)
        return cls(**given)


def storage_arguments(options: Mapping[str, str], env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The connection URL and keyword arguments of the backend a ``storage "postgresql" { ... }`` block describes."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(
            f'storage "postgresql": unknown option "{unknown[0]}"; the options are {", ".join(OPTIONS)}'
        )
    url = options.get("connection_url", "").strip()
    if not url:
        url = next((env[name].strip() for name in ENV_URLS if env.get(name, "").strip()), "")
    if not url:
        raise ValueError(
            'storage "postgresql" needs a "connection_url" (or the environment variable COFFER_PG_URL), '
            'for example: connection_url = "postgresql://coffer:password@db.example.com:5432/coffer"'
        )
    kwargs: dict[str, Any] = {
        "table": ".".join(_parse_table("table", options.get("table", DEFAULT_TABLE))),
        "ha_table": ".".join(_parse_table("ha_table", options.get("ha_table", DEFAULT_HA_TABLE))),
        "ha_enabled": _parse_bool("ha_enabled", options.get("ha_enabled", "false")),
        "max_parallel": _parse_int("max_parallel", options.get("max_parallel", str(DEFAULT_MAX_PARALLEL)), 1, 10000),
    }
    if "max_idle_connections" in options:
        kwargs["max_idle_connections"] = _parse_int(
            "max_idle_connections", options["max_idle_connections"], 0, 10000
        )
    if kwargs["ha_enabled"]:
        kwargs["ha_timings"] = HATimings.from_environment(env)
    return url, kwargs
