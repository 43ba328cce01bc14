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

The package: :mod:`~coffer.config.model` (the dataclasses and :class:`ConfigError`),
:mod:`~coffer.config.loader` (the entry points), :mod:`~coffer.config.builder` (the whole
file and its single settings), :mod:`~coffer.config.storage_seal` and
:mod:`~coffer.config.listener` (their blocks), :mod:`~coffer.config.checks` (what they share).
"""

from __future__ import annotations

from coffer.config.builder import DEFAULT_PROMETHEUS_RETENTION, LOG_FORMATS, LOG_LEVELS
from coffer.config.listener import TLS_VERSIONS, parse_address
from coffer.config.loader import MIGRATION_BLOCKS, load_config, load_migration_config, parse_config
from coffer.config.model import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_REQUEST_SIZE,
    LISTENER_LIMITS,
    ConfigError,
    ListenerConfig,
    SealStanza,
    ServerConfig,
    StorageConfig,
)
from coffer.config.storage_seal import SEAL_TYPES, SUPPORTED_STORAGE_TYPES
from coffer.durations import DEFAULT_LEASE_TTL

__all__ = [
    "ConfigError",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_JSON_DEPTH",
    "DEFAULT_MAX_REQUEST_SIZE",
    "DEFAULT_PROMETHEUS_RETENTION",
    "LISTENER_LIMITS",
    "ListenerConfig",
    "SealStanza",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MIGRATION_BLOCKS",
    "SEAL_TYPES",
    "ServerConfig",
    "StorageConfig",
    "SUPPORTED_STORAGE_TYPES",
    "TLS_VERSIONS",
    "load_config",
    "load_migration_config",
    "parse_address",
    "parse_config",
]
