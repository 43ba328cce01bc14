"""What a configuration file becomes: the dataclasses of its blocks and settings, their defaults, and
:class:`ConfigError`."""

from __future__ import annotations

from dataclasses import dataclass, field

from coffer.durations import DEFAULT_LEASE_TTL

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:8200"

#: Listener limits: Vault's keys and defaults (seconds, bytes), plus coffer's max_connections.
LISTENER_LIMITS = {
    "http_read_header_timeout": 10,
    "http_read_timeout": 30,
    "http_idle_timeout": 300,
}
DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 16384
DEFAULT_MAX_JSON_DEPTH = 200


class ConfigError(ValueError):
    """A configuration file that cannot be used.

    ``str(err)`` is the whole message, e.g.
    ``config.hcl: line 3, column 5: unexpected EQUAL; ...``; the parts are
    also kept as ``source``, ``line``, ``column`` (1-based, or None when
    unknown) and ``reason``.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        super().__init__(where_prefix(source, line, column) + reason)


def where_prefix(source: str | None, line: int | None = None, column: int | None = None) -> str:
    parts = []
    if source:
        parts.append(source)
    if line is not None:
        parts.append(f"line {line}" + (f", column {column}" if column is not None else ""))
    return "".join(p + ": " for p in parts)


@dataclass
class StorageConfig:
    """The ``storage "<type>" { ... }`` block: its type and its options as strings."""

    type: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class SealStanza:
    """A ``seal "<type>" { ... }`` block: its type, its options (strings), whether it is the disabled one of a
    seal migration, and its line (for messages)."""

    type: str
    options: dict[str, str] = field(default_factory=dict)
    disabled: bool = False
    line: int | None = None


@dataclass
class ListenerConfig:
    """The ``listener "tcp" { ... }`` block."""

    address: str = DEFAULT_LISTEN_ADDRESS
    tls_disable: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_min_version: str = "tls12"
    #: Seconds allowed to read a request's headers, its body, and between requests on a kept-alive connection.
    http_read_header_timeout: int = LISTENER_LIMITS["http_read_header_timeout"]
    http_read_timeout: int = LISTENER_LIMITS["http_read_timeout"]
    http_idle_timeout: int = LISTENER_LIMITS["http_idle_timeout"]
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    #: Connections served at once (more wait in the kernel's backlog).
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: How deeply a JSON request body may nest.
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    #: ``telemetry { unauthenticated_metrics_access = true }``: sys/metrics needs no token on this listener.
    unauthenticated_metrics_access: bool = False


@dataclass
class ServerConfig:
    """A whole configuration file. TTLs are whole seconds."""

    storage: StorageConfig
    listener: ListenerConfig
    default_lease_ttl: int = DEFAULT_LEASE_TTL
    max_lease_ttl: int = DEFAULT_LEASE_TTL
    api_addr: str | None = None
    cluster_addr: str | None = None
    ui: bool = False
    log_level: str = "info"
    disable_mlock: bool = True
    #: A folder of Python engine modules (``<type>.py`` exposing ``factory``).
    plugin_directory: str | None = None
    #: An audit device's ``prefix`` option is refused unless this is set (as Vault >= 1.20.1).
    allow_audit_log_prefixing: bool = False
    #: How long a failing revocation is retried before its lease is listed as irrevocable (seconds).
    revocation_retry_window: int = 24 * 3600
    #: ``telemetry { prometheus_retention_time = "24h" }``: seconds a metric's label set is kept without
    #: updates; 0 (no telemetry block, or set to 0) turns sys/metrics?format=prometheus off, as in Vault.
    prometheus_retention_time: int = 0
    #: "standard" (text lines) or "json" (one JSON object per line).
    log_format: str = "standard"
    #: The ``seal`` stanzas (none: Shamir); two, one of them disabled, while a seal migration is pending.
    seals: list[SealStanza] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def seal(self) -> SealStanza:
        """The seal in force: the stanza that is not disabled (Shamir when there is none)."""
        return next((s for s in self.seals if not s.disabled), SealStanza("shamir"))

    @property
    def old_seal(self) -> SealStanza | None:
        """The disabled stanza of a seal migration (the seal being migrated away from)."""
        return next((s for s in self.seals if s.disabled), None)
