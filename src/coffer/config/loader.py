"""The entry points: reading a server's configuration file (or text), and ``coffer operator migrate``'s."""

from __future__ import annotations

import os

from coffer import hcl
from coffer.config.builder import Builder
from coffer.config.model import ConfigError, ServerConfig, StorageConfig


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
    builder = Builder(name, data)
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
    return Builder(source, data).build()
