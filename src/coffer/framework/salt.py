"""A per-mount HMAC key, made once and kept in the mount's storage (for values stored only as hashes)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from coffer.framework.storage import StorageView
from coffer.storage.base import ConditionFailed, Expect, Put

KEY = "salt"


class Salt:
    """HMAC-SHA256 keyed by the mount's salt: ``await salt.hash(storage, value)``.

    The key is created on first use with a conditional write, so two concurrent
    first uses agree on one key.
    """

    def __init__(self) -> None:
        self._key = b""

    async def key(self, storage: StorageView) -> bytes:
        if not self._key:
            key = await storage.get(KEY)
            if key is None:
                fresh = secrets.token_bytes(32)
                try:
                    await storage.batch([Put(KEY, fresh)], [Expect(KEY, exists=False)])
                    key = fresh
                except ConditionFailed:
                    key = await storage.get(KEY)
            assert key is not None
            self._key = key
        return self._key

    async def hash(self, storage: StorageView, value: str) -> str:
        return hmac.new(await self.key(storage), value.encode(), hashlib.sha256).hexdigest()
