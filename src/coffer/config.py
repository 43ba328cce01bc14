"""Server configuration, read from a Vault-style HCL (or JSON) file.

A minimal file::

    storage "sqlite" {
      path = "/var/lib/coffer/coffer.db"
    }

    listener "tcp" {
      address     = "127.0.0.1:8200"
      tls_disable = true
    }

The older ``backend "..." { }`` keyword is accepted in place of ``storage``.
Keys that Vault knows but coffer has no use for are accepted quietly; keys
nobody knows produce entries in :attr:`ServerConfig.warnings` instead of errors. Anything
that would leave the server misconfigured raises :class:`ConfigError`, whose
message names the file and, when it can be found, the line.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from coffer import hcl
from coffer.durations import DEFAULT_LEASE_TTL, format_duration, parse_duration
from coffer.truth import parse_bool

__all__ = [
    "ConfigError",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_LISTEN_ADDRESS",
    "ListenerConfig",
    "SealStanza",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "ServerConfig",
    "StorageConfig",
    "SUPPORTED_STORAGE_TYPES",
    "TLS_VERSIONS",
    "load_config",
    "parse_address",
    "parse_config",
]

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:8200"
SUPPORTED_STORAGE_TYPES = ("inmem", "sqlite", "postgresql")
TLS_VERSIONS = ("tls10", "tls11", "tls12", "tls13")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
LOG_FORMATS = ("standard", "json")

_LOG_LEVEL_ALIASES = {"warning": "warn", "err": "error"}

_STORAGE_EXAMPLE = 'storage "sqlite" { path = "/var/lib/coffer/coffer.db" }'
_LISTENER_EXAMPLE = 'listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }'

# Top-level keys coffer reads.
_TOP_LEVEL_KEYS = frozenset(
    {
        "storage",
        "seal",
        "backend",
        "listener",
        "default_lease_ttl",
        "max_lease_ttl",
        "api_addr",
        "cluster_addr",
        "ui",
        "log_level",
        "disable_mlock",
        "plugin_directory",
        "allow_audit_log_prefixing",
        "revocation_retry_window",
        "telemetry",
        "log_format",
    }
)
# Vault settings that make no difference to coffer: accepted without comment.
_TOP_LEVEL_IGNORED = frozenset(
    {
        "administrative_namespace_path",
        "cache_size",
        "cluster_cipher_suites",
        "cluster_name",
        "default_max_request_duration",
        "detect_deadlocks",
        "disable_cache",
        "disable_clustering",
        "disable_performance_standby",
        "disable_printable_check",
        "disable_sealwrap",
        "disable_sentinel_trace",
        "enable_multiseal",
        "enable_post_unseal_trace",
        "enable_response_header_hostname",
        "enable_response_header_raft_node_id",
        "entropy",
        "experiments",
        "imprecise_lease_role_tracking",
        "introspection_endpoint",
        "license_path",
        "log_file",
        "log_requests_level",
        "log_rotate_bytes",
        "log_rotate_duration",
        "log_rotate_max_files",
        "pid_file",
        "plugin_file_permissions",
        "plugin_file_uid",
        "plugin_tmpdir",
        "post_unseal_trace_directory",
        "raw_storage_endpoint",
        "replication",
        "sentinel",
        "service_registration",
        "unsafe_allow_api_audit_creation",
        "user_lockout",
    }
)
# A separate lock store is not needed: PostgreSQL storage is its own HA lock store.
_HA_STORAGE_KEYS = ("ha_storage", "ha_backend")

#: Listener limits: Vault's keys and defaults (seconds, bytes), plus coffer's max_connections.
LISTENER_LIMITS = {
    "http_read_header_timeout": 10,
    "http_read_timeout": 30,
    "http_idle_timeout": 300,
}
DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 16384
DEFAULT_MAX_JSON_DEPTH = 200
_LISTENER_KEYS = frozenset({"address", "tls_disable", "tls_cert_file", "tls_key_file", "tls_min_version",
                            "max_request_size", "max_connections", "max_json_depth", "telemetry",
                            "unauthenticated_metrics_access", *LISTENER_LIMITS})
_LISTENER_IGNORED = frozenset(
    {
        "cluster_address",
        "http_write_timeout",
        "profiling",
    }
)
_LISTENER_UNSUPPORTED = frozenset(
    {
        "chroot_namespace",
        "custom_response_headers",
        "disable_replication_status_endpoints",
        "disable_request_limiter",
        "max_request_duration",
        "proxy_protocol_authorized_addrs",
        "proxy_protocol_behavior",
        "redact_addresses",
        "redact_cluster_name",
        "redact_version",
        "tls_cipher_suites",
        "tls_client_ca_file",
        "tls_disable_client_certs",
        "tls_max_version",
        "tls_prefer_server_cipher_suites",
        "x_forwarded_for_authorized_addrs",
        "x_forwarded_for_client_cert_header",
        "x_forwarded_for_client_cert_header_decoders",
        "x_forwarded_for_hop_skips",
        "x_forwarded_for_reject_not_authorized",
        "x_forwarded_for_reject_not_present",
    }
)

# Top-level keys whose value is a block: the others are single settings.
_BLOCK_KEYS = frozenset({"storage", "backend", "listener", "telemetry", "seal"})

#: The telemetry block: what coffer reads, Vault's keys that change nothing here, and Vault's metric sinks
#: (coffer serves its metrics at sys/metrics only).
_TELEMETRY_KEYS = frozenset({"prometheus_retention_time"})
_TELEMETRY_IGNORED = frozenset({"disable_hostname", "enable_hostname_label", "usage_gauge_period",
                                "maximum_gauge_cardinality", "lease_metrics_epsilon", "num_lease_metrics_buckets",
                                "add_lease_metrics_namespace_labels", "add_mount_point_rollback_metrics",
                                "filter_default", "prefix_filter", "metrics_prefix"})
_TELEMETRY_SINKS = ("statsite_", "statsd_", "dogstatsd_", "circonus_", "stackdriver_")
#: prometheus_retention_time when a telemetry block does not set it (Vault's default).
DEFAULT_PROMETHEUS_RETENTION = 24 * 3600


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
        super().__init__(_where(source, line, column) + reason)


def _where(source: str | None, line: int | None = None, column: int | None = None) -> str:
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


#: The seal types coffer knows, and the keys of their stanzas (Vault's names).
SEAL_TYPES = ("shamir", "awskms")
_SEAL_KEYS = {"shamir": frozenset({"disabled"}),
              "awskms": frozenset({"disabled", "region", "kms_key_id", "endpoint", "access_key", "secret_key",
                                   "session_token"})}
#: Vault's awskms settings that coffer does not use (accepted quietly).
_SEAL_IGNORED = frozenset({"name", "priority", "shared_credentials_file", "profile", "web_identity_token_file",
                           "role_arn", "role_session_name"})
_SEAL_EXAMPLE = 'seal "awskms" { region = "us-east-1" kms_key_id = "alias/coffer" }'


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


# --------------------------------------------------------------------------
# Entry points


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and check the configuration file at ``path``."""
    name = os.fspath(path)
    return parse_config(_read_text(name), source=name)


def _read_text(name: str) -> str:
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f'config file "{name}" does not exist') from None
    except IsADirectoryError:
        raise ConfigError(f'config path "{name}" is a directory, not a file') from None
    except PermissionError:
        raise ConfigError(f'cannot read config file "{name}": permission denied') from None
    except OSError as exc:
        raise ConfigError(f'cannot read config file "{name}": {exc.strerror or exc}') from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError("the file is not valid UTF-8 text", source=name, line=line) from None
    return text


#: The blocks of ``coffer operator migrate``'s config file (Vault's names).
MIGRATION_BLOCKS = ("storage_source", "storage_destination")


def load_migration_config(path: str | os.PathLike[str]) -> tuple[StorageConfig, StorageConfig]:
    """The source and destination storage of the migration config file at ``path``.

    Vault's format: ``storage_source "<type>" { ... }`` and ``storage_destination "<type>" { ... }``, each
    checked as a server's ``storage`` block is.
    """
    name = os.fspath(path)
    text = _read_text(name)
    try:
        data = hcl.loads(text)
    except hcl.HclError as exc:
        where = exc.opening or exc
        raise ConfigError(where.reason, source=name, line=where.line, column=where.column) from None
    if not isinstance(data, hcl.Object):
        raise ConfigError("the configuration must be an object of settings", source=name)
    builder = _Builder(name, data)
    for key in data:
        if str(key) not in MIGRATION_BLOCKS:
            line = data.line_of(str(key))
            raise builder.error(f'unknown key "{key}" in a migration config; it takes only storage_source and '
                                "storage_destination blocks", line)
    for key in MIGRATION_BLOCKS:
        if key not in data:
            raise builder.error(f'a "{key}" block is required, for example: {key} "sqlite" {{ path = '
                                '"/var/lib/coffer/coffer.db" }')
    return builder.storage_block(data, MIGRATION_BLOCKS[0]), builder.storage_block(data, MIGRATION_BLOCKS[1])


def parse_config(text: str, source: str = "<config>") -> ServerConfig:
    """Check configuration ``text`` (HCL, or JSON when it starts with ``{``)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8-sig")
    try:
        data = hcl.loads(text)
    except hcl.HclError as exc:
        where = exc.opening or exc  # a string or brace never closed: point at where it opens
        raise ConfigError(where.reason, source=source, line=where.line, column=where.column) from None
    if not isinstance(data, hcl.Object):
        raise ConfigError("the configuration must be an object of settings", source=source)
    return _Builder(source, data).build()


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` as (host, port); ValueError unless it is one.

    An IPv6 host goes in brackets (``[::1]:8200``, returned without them); an
    empty host (``:8200``) means every interface, as in Vault, and is returned
    as ``0.0.0.0``.
    """
    host, sep, port = address.rpartition(":")
    valid = bool(sep) and re.fullmatch(r"[0-9]{1,5}", port) is not None and int(port) <= 65535
    if host.startswith("[") or host.endswith("]"):
        valid = valid and host.startswith("[") and host.endswith("]") and len(host) > 2
        host = host[1:-1]
    elif ":" in host:  # IPv6 hosts need brackets
        valid = False
    if not valid:
        raise ValueError(f'address {json.dumps(address)} must be host:port, such as "127.0.0.1:8200" or "[::1]:8200"')
    return host or "0.0.0.0", int(port)


# --------------------------------------------------------------------------
# Checking the parsed settings


def _show(value: Any) -> str:
    if isinstance(value, hcl.Repeated):
        return "several values (it is set more than once)"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a block"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _did_you_mean(key: str, choices: frozenset[str] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.75)
    return f'; did you mean "{close[0]}"?' if close else ""


def _lines_of(obj: Any, key: str) -> str:
    """`` (lines 3, 7)`` when ``key`` was written on several known lines of ``obj``."""
    lines = obj.lines.get(key, []) if isinstance(obj, hcl.Object) else []
    return f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""


class _Builder:
    def __init__(self, source: str, data: hcl.Object) -> None:
        self.source = source
        self.data = data
        self.warnings: list[str] = []

    # -- reporting

    def line_of(self, key: str) -> int | None:
        return self.data.line_of(key)

    def error(self, reason: str, line: int | None = None) -> ConfigError:
        return ConfigError(reason, source=self.source, line=line)

    def warn(self, message: str, line: int | None = None) -> None:
        self.warnings.append(_where(self.source, line) + message)

    def single(self, what: str, body: dict[str, Any], key: str, line: int | None) -> Any:
        """``body[key]``, refusing a key written more than once."""
        value = body[key]
        if isinstance(value, hcl.Repeated):
            raise self.error(f"{what} is set more than once{_lines_of(body, key)}", line)
        return value

    # -- the whole file

    def build(self) -> ServerConfig:
        data = self.data
        for key in data:
            self.check_top_level_key(str(key))
        for key in list(data):
            self.check_repeated(str(key))
        storage = self.storage(data)
        listener = self.listener(data)
        default_ttl, max_ttl = self.lease_ttls(data)
        return ServerConfig(
            storage=storage,
            listener=listener,
            default_lease_ttl=default_ttl,
            max_lease_ttl=max_ttl,
            api_addr=self.optional_str(data, "api_addr"),
            cluster_addr=self.optional_str(data, "cluster_addr"),
            ui=self.bool_setting(data, "ui", False),
            log_level=self.log_level(data),
            disable_mlock=self.bool_setting(data, "disable_mlock", True),
            plugin_directory=self.optional_str(data, "plugin_directory"),
            allow_audit_log_prefixing=self.bool_setting(data, "allow_audit_log_prefixing", False),
            revocation_retry_window=self.positive_duration(data, "revocation_retry_window", 24 * 3600),
            prometheus_retention_time=self.telemetry(data),
            log_format=self.log_format(data),
            seals=self.seals(data),
            warnings=self.warnings,
        )

    def check_top_level_key(self, key: str) -> None:
        if key in _TOP_LEVEL_KEYS or key in _TOP_LEVEL_IGNORED:
            return
        line = self.line_of(key)
        if key in _HA_STORAGE_KEYS:
            raise self.error(f'"{key}" is not supported: for high availability set ha_enabled = "true" in the '
                             'storage "postgresql" block (it holds the lock itself)', line)
        known = _TOP_LEVEL_KEYS | _TOP_LEVEL_IGNORED | set(_HA_STORAGE_KEYS)
        self.warn(f'unknown configuration key "{key}" (ignored){_did_you_mean(key, known)}', line)

    def check_repeated(self, key: str) -> None:
        """A top-level key written more than once: as a value and as a block is an error;
        a setting given twice keeps its last value (as Vault does), with a warning."""
        data = self.data
        value = data[key]
        if not isinstance(value, hcl.Repeated):
            return
        lines = data.lines.get(key, [])
        known = len(lines) == len(value)
        blocks = [i for i, v in enumerate(value) if isinstance(v, dict)]
        values = [i for i, v in enumerate(value) if not isinstance(v, dict)]
        if blocks and values:
            if not known:
                raise self.error(f'"{key}" is used both as a value and as a block')
            first, second = sorted((lines[values[0]], lines[blocks[0]]))
            raise self.error(f'"{key}" is used both as a value and as a block (lines {first} and {second})', second)
        if values and key not in _BLOCK_KEYS:
            self.warn(f'"{key}" is set more than once{_lines_of(data, key)}; the last value is used',
                      lines[-1] if known else None)
            data[key] = value[-1]
            if known:
                data.lines[key] = lines[-1:]

    # -- blocks

    def blocks(self, key: str, value: Any, example: str) -> list[tuple[str, dict[str, Any]]]:
        """``key "label" { body }`` in any of the shapes HCL and JSON give it."""
        line = self.line_of(key)
        if isinstance(value, list):
            found = []
            for item in value:
                found.extend(self.blocks(key, item, example))
            return found
        if not isinstance(value, dict):
            raise self.error(f'"{key}" must be a block such as {example}, not {_show(value)}', line)
        found = []
        for label, body in value.items():
            bodies = body if isinstance(body, list) else [body]
            if not bodies or not all(isinstance(b, dict) for b in bodies):
                raise self.error(f'the "{key}" block needs a type label, as in {example}', line)
            found.extend((str(label), b) for b in bodies)
        if not found:
            raise self.error(f'the "{key}" block needs a type label, as in {example}', line)
        return found

    def storage(self, data: dict[str, Any]) -> StorageConfig:
        present = [k for k in ("storage", "backend") if k in data]
        if not present:
            raise self.error(f"a storage block is required, for example: {_STORAGE_EXAMPLE}")
        if len(present) > 1:
            raise self.error(
                'both "storage" and "backend" are set; they mean the same thing, so keep only "storage"',
                self.line_of("backend"),
            )
        return self.storage_block(data, present[0])

    def storage_block(self, data: dict[str, Any], key: str) -> StorageConfig:
        """The one ``key "<type>" { ... }`` block (``storage``, or a migration's ``storage_source``...)."""
        line = self.line_of(key)
        found = self.blocks(key, data[key], _STORAGE_EXAMPLE)
        if len(found) > 1:
            where = _lines_of(data, key) or " (" + ", ".join(f'"{t}"' for t, _ in found) + ")"
            raise self.error(f'only one "{key}" block is allowed, found {len(found)}{where}', line)
        storage_type, body = found[0]
        if storage_type not in SUPPORTED_STORAGE_TYPES:
            supported = ", ".join(f'"{t}"' for t in SUPPORTED_STORAGE_TYPES)
            raise self.error(f'storage type "{storage_type}" is not supported; use one of {supported}', line)
        options: dict[str, str] = {}
        for name, value in body.items():
            at = body.line_of(name) if isinstance(body, hcl.Object) else None
            value = self.single(f'storage "{storage_type}": option "{name}"', body, name, at or line)
            if isinstance(value, bool):
                options[str(name)] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                options[str(name)] = str(value)
            else:
                raise self.error(
                    f'storage "{storage_type}": option "{name}" must be a single value, not {_show(value)}',
                    at or line,
                )
        if storage_type == "sqlite" and not options.get("path", "").strip():
            raise self.error(
                'storage "sqlite" needs a "path" to the database file, for example: '
                'storage "sqlite" { path = "/var/lib/coffer/coffer.db" }',
                line,
            )
        return StorageConfig(type=storage_type, options=options)

    def seals(self, data: dict[str, Any]) -> list[SealStanza]:
        if "seal" not in data:
            return []
        line = self.line_of("seal")
        stanzas = []
        found = self.blocks("seal", data["seal"], _SEAL_EXAMPLE)
        lines = data.lines.get("seal", []) if isinstance(data, hcl.Object) else []
        for index, (seal_type, body) in enumerate(found):
            where = lines[index] if len(lines) == len(found) else line
            if seal_type not in SEAL_TYPES:
                raise self.error(f'seal type "{seal_type}" is not supported; use "awskms" or "shamir"', where)
            options: dict[str, str] = {}
            for name, value in body.items():
                name = str(name)
                name_line = body.line_of(name) if isinstance(body, hcl.Object) else None
                value = self.single(f'seal "{seal_type}": option "{name}"', body, name, name_line or where)
                if name in _SEAL_IGNORED:
                    continue
                if name not in _SEAL_KEYS[seal_type]:
                    self.warn(f'seal "{seal_type}": unknown option "{name}" (ignored)'
                              f"{_did_you_mean(name, _SEAL_KEYS[seal_type])}", name_line or where)
                    continue
                if isinstance(value, bool):
                    value = "true" if value else "false"
                options[name] = self.as_str(f'seal "{seal_type}": option "{name}"', value if not isinstance(
                    value, int | float) else str(value), name_line or where)
            disabled = self.as_bool(f'seal "{seal_type}": option "disabled"', options.pop("disabled", "false"),
                                    where)
            if seal_type == "awskms":
                self.awskms_options(options, where)
            stanzas.append(SealStanza(seal_type, options, disabled, where))
        if len(stanzas) > 2:
            raise self.error(f"at most two seal stanzas are allowed (the seal in force and, during a migration, "
                             f"the old one with disabled = \"true\"); found {len(stanzas)}", line)
        if len(stanzas) == 2:
            enabled = [s for s in stanzas if not s.disabled]
            if len(enabled) != 1:
                raise self.error('two seal stanzas are a seal migration: exactly one of them must have '
                                 'disabled = "true" (the seal being migrated away from)', stanzas[1].line)
            if stanzas[0].type == stanzas[1].type:
                raise self.error(f'two seal "{stanzas[0].type}" stanzas: a seal migration goes between two '
                                 "different seal types", stanzas[1].line)
        elif stanzas and stanzas[0].disabled and stanzas[0].type == "shamir":
            raise self.error('seal "shamir" with disabled = "true" needs the new seal stanza beside it '
                             '(for example seal "awskms" { ... })', stanzas[0].line)
        return stanzas

    def awskms_options(self, options: dict[str, str], line: int | None) -> None:
        """Fill in what Vault's awskms seal takes from the environment, and check the key id is there."""
        env = os.environ
        if not options.get("kms_key_id") and env.get("VAULT_AWSKMS_SEAL_KEY_ID"):
            options["kms_key_id"] = env["VAULT_AWSKMS_SEAL_KEY_ID"]
        if not options.get("region"):
            options["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        if not options.get("endpoint") and env.get("AWS_KMS_ENDPOINT"):
            options["endpoint"] = env["AWS_KMS_ENDPOINT"]
        if not options.get("kms_key_id"):
            raise self.error('seal "awskms" needs "kms_key_id" (a KMS key id, ARN or alias; or set '
                             "VAULT_AWSKMS_SEAL_KEY_ID)", line)
        if bool(options.get("access_key")) != bool(options.get("secret_key")):
            raise self.error('seal "awskms": set both "access_key" and "secret_key", or neither (then the AWS '
                             "SDK's usual credentials are used: AWS_ACCESS_KEY_ID, ...)", line)

    def listener(self, data: dict[str, Any]) -> ListenerConfig:
        if "listener" not in data:
            raise self.error(f"a listener block is required, for example: {_LISTENER_EXAMPLE}")
        line = self.line_of("listener")
        found = self.blocks("listener", data["listener"], _LISTENER_EXAMPLE)
        if len(found) > 1:
            lines = data.lines.get("listener", []) if isinstance(data, hcl.Object) else []
            self.warn(
                f"found {len(found)} listener blocks{_lines_of(data, 'listener')}; coffer serves a single listener, "
                "so only the first is used and the others are ignored",
                lines[1] if len(lines) > 1 else None,
            )
        listener_type, body = found[0]
        if listener_type != "tcp":
            raise self.error(f'listener type "{listener_type}" is not supported; only "tcp" listeners are', line)
        return self.tcp_listener(body, line)

    def tcp_listener(self, body: dict[str, Any], line: int | None) -> ListenerConfig:
        what = 'listener "tcp"'

        def at(name: str) -> int | None:
            return (body.line_of(name) if isinstance(body, hcl.Object) else None) or line

        def get(name: str, default: Any = None) -> Any:
            return self.single(f"{what}: {name}", body, name, at(name)) if name in body else default

        for raw_key in body:
            key = str(raw_key)
            key_line = at(key)
            if key in _LISTENER_KEYS or key in _LISTENER_IGNORED:
                continue
            if key in _LISTENER_UNSUPPORTED:
                self.warn(f'{what}: "{key}" is not supported (ignored)', key_line)
            elif key == "tls_require_and_verify_client_cert":
                if self.as_bool(f"{what}: {key}", get(key), key_line):
                    raise self.error(
                        f"{what}: {key} is not supported; coffer cannot require client certificates", key_line
                    )
            else:
                known = _LISTENER_KEYS | _LISTENER_IGNORED | _LISTENER_UNSUPPORTED
                self.warn(f'{what}: unknown key "{key}" (ignored){_did_you_mean(key, known)}', key_line)

        address = self.as_str(f"{what}: address", get("address", DEFAULT_LISTEN_ADDRESS), at("address"))
        try:
            parse_address(address)
        except ValueError as exc:
            raise self.error(f"{what}: {exc}", at("address")) from None
        tls_disable = self.as_bool(f"{what}: tls_disable", get("tls_disable", False), at("tls_disable"))
        cert = get("tls_cert_file")
        key_file = get("tls_key_file")
        if cert is not None:
            cert = self.as_str(f"{what}: tls_cert_file", cert, at("tls_cert_file")) or None
        if key_file is not None:
            key_file = self.as_str(f"{what}: tls_key_file", key_file, at("tls_key_file")) or None
        min_version = self.as_str(
            f"{what}: tls_min_version", get("tls_min_version", "tls12"), at("tls_min_version")
        )
        if min_version not in TLS_VERSIONS:
            choices = ", ".join(TLS_VERSIONS)
            raise self.error(
                f"{what}: tls_min_version {_show(min_version)} is not one of {choices}", at("tls_min_version")
            )

        if not tls_disable:
            missing = [name for name, v in (("tls_cert_file", cert), ("tls_key_file", key_file)) if not v]
            if missing:
                raise self.error(
                    f"{what}: TLS is on, so tls_cert_file and tls_key_file are both required "
                    f"(missing {' and '.join(missing)}); set them, or set tls_disable = true to serve plain HTTP",
                    line,
                )
        elif cert or key_file:
            self.warn(f"{what}: tls_cert_file and tls_key_file are not used because tls_disable is set", line)
        limits: dict[str, int] = {}
        for name, default in LISTENER_LIMITS.items():
            limits[name] = self.positive_duration(body, name, default, what=f"{what}: {name}", line=at(name))
        for name, default, unit in (("max_request_size", DEFAULT_MAX_REQUEST_SIZE, "bytes"),
                                    ("max_connections", DEFAULT_MAX_CONNECTIONS, "connections"),
                                    ("max_json_depth", DEFAULT_MAX_JSON_DEPTH, "levels")):
            value = get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit() \
                    or int(value) < 1:
                raise self.error(f"{what}: {name} must be a positive whole number of {unit}, not {_show(value)}",
                                 at(name))
            limits[name] = int(value)
        metrics_open = self.listener_telemetry(body, get, at)
        if limits["max_json_depth"] > DEFAULT_MAX_JSON_DEPTH:
            raise self.error(f"{what}: max_json_depth can be at most {DEFAULT_MAX_JSON_DEPTH} (deeper JSON cannot be "
                             "written back in responses)", at("max_json_depth"))
        return ListenerConfig(
            address=address,
            tls_disable=tls_disable,
            tls_cert_file=cert,
            tls_key_file=key_file,
            tls_min_version=min_version,
            unauthenticated_metrics_access=metrics_open,
            **limits,
        )

    def listener_telemetry(self, body: dict[str, Any], get: Any, at: Any) -> bool:
        """``telemetry { unauthenticated_metrics_access = true }`` inside a listener (or the key on its own)."""
        what = 'listener "tcp"'
        open_access = False
        if "unauthenticated_metrics_access" in body:
            open_access = self.as_bool(f"{what}: unauthenticated_metrics_access", get("unauthenticated_metrics_access"),
                                       at("unauthenticated_metrics_access"))
        if "telemetry" not in body:
            return open_access
        block = get("telemetry")
        if not isinstance(block, dict):
            raise self.error(f"{what}: telemetry must be a block such as telemetry {{ unauthenticated_metrics_access "
                             f"= true }}, not {_show(block)}", at("telemetry"))
        for raw_key in block:
            key = str(raw_key)
            line = (block.line_of(key) if isinstance(block, hcl.Object) else None) or at("telemetry")
            if key == "unauthenticated_metrics_access":
                open_access = self.as_bool(f"{what}: telemetry: {key}", self.single(
                    f"{what}: telemetry: {key}", block, key, line), line)
            elif key not in ("unauthenticated_pprof_access", "unauthenticated_in_flight_requests_access"):
                self.warn(f'{what}: telemetry: unknown key "{key}" (ignored)'
                          f"{_did_you_mean(key, {'unauthenticated_metrics_access'})}", line)
        return open_access

    # -- single settings

    def lease_ttls(self, data: dict[str, Any]) -> tuple[int, int]:
        # As in Vault, an unset or zero TTL means "the system default".
        default_ttl = self.duration(data, "default_lease_ttl")
        max_ttl = self.duration(data, "max_lease_ttl") or DEFAULT_LEASE_TTL
        if not default_ttl:
            return min(DEFAULT_LEASE_TTL, max_ttl), max_ttl
        if default_ttl > max_ttl:
            raise self.error(
                f"default_lease_ttl ({format_duration(default_ttl)}) is longer than "
                f"max_lease_ttl ({format_duration(max_ttl)})",
                self.line_of("default_lease_ttl"),
            )
        return default_ttl, max_ttl

    def duration(self, data: dict[str, Any], key: str) -> int | None:
        if key not in data:
            return None
        value = data[key]
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(f"{key}: {exc}", self.line_of(key)) from None

    def positive_duration(self, data: dict[str, Any], key: str, default: int, *, what: str = "",
                          line: int | None = None) -> int:
        if key not in data:
            return default
        value = data[key]
        line = line or self.line_of(key)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(f"{what or key}: {exc}", line) from None
        if seconds < 1:
            raise self.error(f"{what or key} must be at least one second, not {_show(value)}", line)
        return seconds

    def telemetry(self, data: dict[str, Any]) -> int:
        """The telemetry block's prometheus_retention_time (seconds; 0 without a block)."""
        if "telemetry" not in data:
            return 0
        line = self.line_of("telemetry")
        value = data["telemetry"]
        if isinstance(value, list):  # written more than once (or a JSON list of blocks): the last one counts
            if len(value) > 1:
                self.warn(f"the telemetry block is given {len(value)} times{_lines_of(data, 'telemetry')}; the last "
                          "one is used", line)
            value = value[-1] if value else {}
        if not isinstance(value, dict):
            raise self.error(f'"telemetry" must be a block such as telemetry {{ prometheus_retention_time = "24h" }}, '
                             f"not {_show(value)}", line)
        for raw_key in value:
            key = str(raw_key)
            at = (value.line_of(key) if isinstance(value, hcl.Object) else None) or line
            if key in _TELEMETRY_KEYS or key in _TELEMETRY_IGNORED:
                continue
            if key.startswith(_TELEMETRY_SINKS):
                self.warn(f'telemetry: "{key}" is not supported (ignored); coffer serves its metrics at '
                          "GET /v1/sys/metrics (JSON, or ?format=prometheus)", at)
            else:
                known = _TELEMETRY_KEYS | _TELEMETRY_IGNORED
                self.warn(f'telemetry: unknown key "{key}" (ignored){_did_you_mean(key, known)}', at)
        if "prometheus_retention_time" not in value:
            return DEFAULT_PROMETHEUS_RETENTION
        at = (value.line_of("prometheus_retention_time") if isinstance(value, hcl.Object) else None) or line
        raw = self.single("telemetry: prometheus_retention_time", value, "prometheus_retention_time", at)
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            raise self.error(f"telemetry: prometheus_retention_time: {exc}", at) from None
        if seconds < 0:
            raise self.error("telemetry: prometheus_retention_time cannot be negative (0 turns Prometheus' format "
                             "off)", at)
        return seconds

    def log_format(self, data: dict[str, Any]) -> str:
        if "log_format" not in data:
            return "standard"
        fmt = self.as_str("log_format", data["log_format"], self.line_of("log_format")).strip().lower()
        if fmt not in LOG_FORMATS:
            raise self.error(f'log_format {_show(data["log_format"])} is not one of {", ".join(LOG_FORMATS)}',
                             self.line_of("log_format"))
        return fmt

    def log_level(self, data: dict[str, Any]) -> str:
        if "log_level" not in data:
            return "info"
        level = self.as_str("log_level", data["log_level"], self.line_of("log_level")).strip().lower()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            choices = ", ".join(LOG_LEVELS)
            raise self.error(f"log_level {_show(data['log_level'])} is not one of {choices}", self.line_of("log_level"))
        return level

    def optional_str(self, data: dict[str, Any], key: str) -> str | None:
        if key not in data:
            return None
        return self.as_str(key, data[key], self.line_of(key)) or None

    def bool_setting(self, data: dict[str, Any], key: str, default: bool) -> bool:
        if key not in data:
            return default
        return self.as_bool(key, data[key], self.line_of(key))

    def as_str(self, what: str, value: Any, line: int | None) -> str:
        if isinstance(value, str):
            return value
        raise self.error(f"{what} must be a string, not {_show(value)}", line)

    def as_bool(self, what: str, value: Any, line: int | None) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            try:
                return parse_bool(value, strict=True)  # Vault reads its configuration with Go's ParseBool
            except ValueError:
                pass
        raise self.error(f"{what} must be true or false, not {_show(value)}", line)

