"""Checking a whole configuration file: its top-level keys, and the settings that are not blocks of
their own (lease TTLs, logging, telemetry...); the storage, seal and listener blocks are checked by
:mod:`coffer.config.storage_seal` and :mod:`coffer.config.listener`."""

from __future__ import annotations

from typing import Any

from coffer import hcl
from coffer.config.checks import did_you_mean, lines_of, show
from coffer.config.listener import ListenerChecks
from coffer.config.model import ServerConfig
from coffer.config.storage_seal import StorageSealChecks
from coffer.durations import DEFAULT_LEASE_TTL, format_duration, parse_duration

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
LOG_FORMATS = ("standard", "json")

_LOG_LEVEL_ALIASES = {"warning": "warn", "err": "error"}

# Top-level keys coffer reads.
_TOP_LEVEL_KEYS = frozenset(
    {
        "storage",
        "seal",
        "backend",
        "ha_storage",
        "ha_backend",
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

# Top-level keys whose value is a block: the others are single settings.
_BLOCK_KEYS = frozenset({"storage", "backend", "ha_storage", "ha_backend", "listener", "telemetry", "seal"})

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


class Builder(StorageSealChecks, ListenerChecks):
    """Turns one parsed file into a :class:`ServerConfig`, or raises the first :class:`ConfigError`."""

    # -- the whole file

    def build(self) -> ServerConfig:
        data = self.data
        for key in data:
            self.check_top_level_key(str(key))
        for key in list(data):
            self.check_repeated(str(key))
        storage = self.ha_storage(data, self.storage(data))
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
        known = _TOP_LEVEL_KEYS | _TOP_LEVEL_IGNORED
        self.warn(f'unknown configuration key "{key}" (ignored){did_you_mean(key, known)}', line)

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
            self.warn(f'"{key}" is set more than once{lines_of(data, key)}; the last value is used',
                      lines[-1] if known else None)
            data[key] = value[-1]
            if known:
                data.lines[key] = lines[-1:]

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

    def telemetry(self, data: dict[str, Any]) -> int:
        """The telemetry block's prometheus_retention_time (seconds; 0 without a block)."""
        if "telemetry" not in data:
            return 0
        line = self.line_of("telemetry")
        value = data["telemetry"]
        if isinstance(value, list):  # written more than once (or a JSON list of blocks): the last one counts
            if len(value) > 1:
                self.warn(f"the telemetry block is given {len(value)} times{lines_of(data, 'telemetry')}; the last "
                          "one is used", line)
            value = value[-1] if value else {}
        if not isinstance(value, dict):
            raise self.error(f'"telemetry" must be a block such as telemetry {{ prometheus_retention_time = "24h" }}, '
                             f"not {show(value)}", line)
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
                self.warn(f'telemetry: unknown key "{key}" (ignored){did_you_mean(key, known)}', at)
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
            raise self.error(f'log_format {show(data["log_format"])} is not one of {", ".join(LOG_FORMATS)}',
                             self.line_of("log_format"))
        return fmt

    def log_level(self, data: dict[str, Any]) -> str:
        if "log_level" not in data:
            return "info"
        level = self.as_str("log_level", data["log_level"], self.line_of("log_level")).strip().lower()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            choices = ", ".join(LOG_LEVELS)
            raise self.error(f"log_level {show(data['log_level'])} is not one of {choices}", self.line_of("log_level"))
        return level
