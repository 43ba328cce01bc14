"""Write-ahead intents: note what is about to be created, outside coffer,
before creating it, so a crash in between can be rolled back later.

An engine calls ``put`` before its first external call and ``delete`` once
the result is safely recorded (e.g. in a lease). Core runs the engine's
rollback for entries older than a grace period, periodically and at unseal.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from coffer.framework.storage import StorageView

WAL_PREFIX = "wal/"


@dataclass(slots=True)
class WalEntry:
    id: str
    kind: str
    data: dict[str, Any]
    created: float


async def put(storage: StorageView, kind: str, data: dict[str, Any]) -> str:
    wal_id = str(uuid.uuid4())
    await storage.put_json(WAL_PREFIX + wal_id, {"kind": kind, "data": data, "created": time.time()})
    return wal_id


async def delete(storage: StorageView, wal_id: str) -> None:
    await storage.delete(WAL_PREFIX + wal_id)


async def entries(storage: StorageView, created_before: float) -> list[WalEntry]:
    """Entries written before the time ``created_before``."""
    found = []
    for wal_id in await storage.list(WAL_PREFIX):
        raw = await storage.get_json(WAL_PREFIX + wal_id)
        if raw and raw["created"] < created_before:
            found.append(WalEntry(wal_id, raw["kind"], raw["data"], raw["created"]))
    return found
