"""``coffer operator migrate``: copy every key of one storage into another, offline.

The config file is Vault's: ``storage_source "<type>" { ... }`` and ``storage_destination "<type>" { ... }``
(see ``config.load_migration_config``). Values are copied as they are stored (encrypted), so the
destination unseals with the same keys. As Vault does, the source holds a migration lock
(``core/migration``) while the copy runs, which is never copied; a second migration of the same source
is refused meanwhile (``-reset`` clears a lock left by a migration that died).

Keys are copied in key order, in batches (one transaction each), with a progress bar; ``-start`` copies
only the keys from that one on (resuming a migration that stopped). A destination that already holds
keys is refused unless ``-start`` is given. At the end the destination must hold exactly as many keys
as the source, or the migration fails and says so.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from coffer.config import ConfigError, StorageConfig, load_migration_config
from coffer.storage import open_storage
from coffer.storage.base import Backend, Put, Storage, prefix_end

#: The lock a running migration holds in its source (Vault's key).
MIGRATION_LOCK = "core/migration"
#: The end of the key space: every key sorts below it.
END = prefix_end("")


class MigrationError(Exception):
    """The migration cannot start, or did not finish correctly (the message says why and what to do)."""


def _describe(cfg: StorageConfig) -> str:
    if cfg.type == "sqlite":
        return f'sqlite ({cfg.options.get("path", "")})'
    return cfg.type


def _open(cfg: StorageConfig, role: str) -> Backend:
    if cfg.type == "inmem":
        raise MigrationError(f'storage_{role} "inmem" holds nothing once its process ends, so it cannot be '
                             "migrated; use sqlite or postgresql")
    options = dict(cfg.options)
    if cfg.type == "postgresql":
        options["ha_enabled"] = "false"  # offline: the servers are stopped, no lock fences these writes
    try:
        return open_storage(cfg.type, options)
    except ValueError as exc:
        raise MigrationError(f"cannot open the {role} storage: {exc}") from None


def run_migration(config_path: str, *, start: str = "", batch_size: int = 1000, reset: bool = False,
                  console: Console | None = None) -> int:
    """Run the migration the config file at ``config_path`` describes; answers the number of keys copied."""
    try:
        source_cfg, destination_cfg = load_migration_config(config_path)
    except ConfigError as exc:
        raise MigrationError(f"invalid migration config: {exc}") from None
    if source_cfg.type == destination_cfg.type and source_cfg.options == destination_cfg.options:
        raise MigrationError("storage_source and storage_destination are the same storage")
    return asyncio.run(_migrate(source_cfg, destination_cfg, start, batch_size, reset,
                                console or Console(stderr=True)))


async def _migrate(source_cfg: StorageConfig, destination_cfg: StorageConfig, start: str, batch_size: int,
                   reset: bool, console: Console) -> int:
    source = _open(source_cfg, "source")
    try:
        destination = _open(destination_cfg, "destination")
    except BaseException:
        await source.close()
        raise
    try:
        if reset:
            await source.delete(MIGRATION_LOCK)
            console.print(f"Cleared the migration lock ({MIGRATION_LOCK}) of the source.")
        held = await source.get(MIGRATION_LOCK)
        if held is not None:
            since = ""
            try:
                since = f" (started {orjson.loads(held)['start']})"
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass
            raise MigrationError(f"a migration of this source is in progress{since}; if none is running any "
                                 "more, run again with -reset to clear its lock")
        if not start:
            present = await destination.count("", END)
            if present:
                what = "a coffer store" if await destination.get("core/keyring") is not None else "data"
                raise MigrationError(f"the destination already holds {what} ({present} keys); migrating into it "
                                     "would mix two stores. Empty it first, or give -start=KEY to resume a "
                                     "migration that stopped")
        await source.put(MIGRATION_LOCK, orjson.dumps({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                              time.gmtime())}))
        try:
            copied = await _copy(source, destination, start, batch_size, console,
                                 f"{_describe(source_cfg)} -> {_describe(destination_cfg)}")
            expected = await source.count("", END) - 1  # the lock is not copied
            found = await destination.count("", END)
        finally:
            await source.delete(MIGRATION_LOCK)
        if found != expected:
            raise MigrationError(f"count check failed: the source holds {expected} keys but the destination "
                                 f"{found}; the destination is not a faithful copy, so do not start a server on "
                                 "it (empty it and migrate again)")
        console.print(f"Success! Copied {copied} keys; the destination holds all {found} keys of the source.")
        return copied
    finally:
        await destination.close()
        await source.close()


async def _copy(source: Storage, destination: Storage, start: str, batch_size: int, console: Console,
                label: str) -> int:
    total = await source.count(start, END) - (1 if start <= MIGRATION_LOCK else 0)
    copied = 0
    console.print(f"Migrating {label}: {max(total, 0)} keys")
    columns = (TextColumn("Copying keys"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("copy", total=max(total, 0))
        cursor = start
        while rows := await source.scan(cursor, END, batch_size):
            cursor = rows[-1][0] + "\x00"
            puts = [Put(key, value) for key, value in rows if key != MIGRATION_LOCK]
            if puts:
                await destination.batch(list(puts))
                copied += len(puts)
                progress.update(task, advance=len(puts))
    return copied
