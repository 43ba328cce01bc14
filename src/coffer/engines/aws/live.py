"""The engine's own index of what it issued and is still live, in its own storage.

``live/<role>/user-<username>``: an IAM user coffer made. It is written in the same storage batch that
records the lease (``Secret.commit_ops``) and removed when the lease is revoked, so with the write-ahead
entries (which cover the moment between CreateUser and that batch) it names every IAM user coffer is
responsible for: the orphan finder needs no scan of core's lease store (which it cannot read anyway).

``live/<role>/sts-<expiry ms>-<id>``: STS credentials of a role with ``max_live_credentials``, counted until
they expire, their lease revoked or not (AWS cannot end them sooner).

A role with ``max_live_credentials`` also reserves its entry before the first AWS call, under a per-role
lock, so that concurrent reads cannot overshoot the quota; the lease's batch then confirms the entry.

``live-since``: when this index started; IAM users created before it (by an older coffer) are not
called orphans, since the index cannot know them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from typing import Any

import orjson

from coffer.errors import Throttled
from coffer.framework.storage import StorageView
from coffer.storage.base import Delete, Op, Put

PREFIX = "live/"
SINCE = "live-since"
#: How long a reservation of STS credentials counts before its lease's batch confirms it.
RESERVATION = 120


def user_key(role: str, username: str) -> str:
    return f"{PREFIX}{role}/user-{username}"


def sts_key(role: str, expires: float) -> str:
    return f"{PREFIX}{role}/sts-{int(expires * 1000):015d}-{uuid.uuid4().hex[:12]}"


def _sts_expiry(name: str) -> float:
    try:
        return int(name[4:19]) / 1000
    except ValueError:
        return 0.0


class LiveIndex:
    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._since: float | None = None

    async def since(self, storage: StorageView) -> float:
        """When the index started (set now if it never did)."""
        if self._since is None:
            raw = await storage.get(SINCE)
            if raw is None:
                now = time.time()
                await storage.put(SINCE, str(now).encode())
                self._since = now
            else:
                self._since = float(raw)
        return self._since

    async def count(self, storage: StorageView, role: str) -> int:
        now = time.time()
        live = 0
        for name in await storage.list(f"{PREFIX}{role}/"):
            if name.startswith("sts-") and _sts_expiry(name) < now:
                await storage.delete(f"{PREFIX}{role}/{name}")  # expired; its lease is gone or going
                continue
            live += 1
        return live

    async def reserve(self, storage: StorageView, role: str, limit: int, key: str) -> None:
        """Count ``key`` against ``role``'s quota now (429 when the quota is full)."""
        async with self._locks[role]:
            live = await self.count(storage, role)
            if live >= limit:
                raise Throttled(f'role "{role}" already has {live} live credentials, its max_live_credentials '
                                f"is {limit}; revoke some (IAM users) or wait for them to expire", retry_after=30)
            await storage.put_json(key, {"created": time.time(), "state": "reserved"})

    @staticmethod
    def confirm_ops(storage: StorageView, key: str, data: dict[str, Any], old_key: str = "") -> list[Op]:
        ops: list[Op] = [Put(key, orjson.dumps({**data, "state": "leased"}))]
        if old_key and old_key != key:
            ops.append(Delete(old_key))
        return storage.absolute(ops)

    async def usernames(self, storage: StorageView) -> set[str]:
        """Every IAM user the index holds, whatever its role."""
        found: set[str] = set()
        for folder in await storage.list(PREFIX):
            if not folder.endswith("/"):
                continue
            for name in await storage.list(f"{PREFIX}{folder}"):
                if name.startswith("user-"):
                    found.add(name[5:])
        return found
