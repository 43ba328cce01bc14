"""Upgrading a kv mount's storage from version 1's layout to version 2's, in place.

Version 1 keeps each secret at its own path in the mount's storage; version 2
keeps everything under ``common.V2_PREFIX`` (which no version 1 path can
start with). The first request a mount serves as version 2 (or its first
periodic tick) moves every other key into the version 2 layout as version 1
of that secret, in batches that each write the new keys and delete the old
ones atomically, and then writes the ``upgraded`` marker. A crash half-way
leaves every secret in exactly one of the two layouts, and the next attempt
carries on. Requests wait for the upgrade (it runs once per mount).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from coffer.engines.kv.common import META, V2_PREFIX, new_meta, version_key
from coffer.framework.storage import StorageView
from coffer.storage.base import Delete, Op, Put, prefix_end

log = logging.getLogger("coffer.engines.kv")

MARKER = V2_PREFIX + "upgraded"
#: Version 1 keys moved per batch.
CHUNK = 200


class Layout:
    """Makes sure a mount's storage has the version 2 layout before version 2 serves it."""

    def __init__(self) -> None:
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure(self, storage: StorageView, mount_point: str) -> None:
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            if await storage.get(MARKER) is None:
                moved = await upgrade(storage)
                if moved:
                    log.info("upgraded kv mount %s to version 2: %d secret(s) kept as version 1", mount_point,
                             moved)
            self._ready = True


async def upgrade(storage: StorageView) -> int:
    """Move every version 1 secret into the version 2 layout; answers how many were moved."""
    moved = 0
    now = time.time_ns()
    ranges = (("", V2_PREFIX), (prefix_end(V2_PREFIX), prefix_end("")))
    while True:
        rows: list[tuple[str, bytes]] = []
        for start, end in ranges:
            rows += await storage.scan(start, end, CHUNK - len(rows))
            if len(rows) >= CHUNK:
                break
        if not rows:
            break
        ops: list[Op] = []
        for key, raw in rows:
            ops += _as_version_one(key, raw, now)
        await storage.batch(ops)
        moved += len(rows)
    await storage.put(MARKER, orjson.dumps({"version": 2, "upgraded_time": now, "secrets": moved}))
    return moved


def _as_version_one(key: str, raw: bytes, now: int) -> list[Op]:
    meta = new_meta(now)
    meta.update(current_version=1, oldest_version=1,
                versions={"1": {"created_time": now, "deletion_time": 0, "destroyed": False}})
    return [Put(version_key(key, 1), orjson.dumps({"data": orjson.loads(raw)})),
            Put(META + key, orjson.dumps(meta)),
            Delete(key)]
