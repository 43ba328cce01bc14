"""A prefix-limited view of storage, which is all an engine ever sees."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from coffer.storage.base import Delete, Expect, Op, Put, Storage, prefix_end


class _Unrouted(Storage):
    """What a request that was not routed to a mount has for storage: nothing."""

    def _fail(self) -> None:
        raise RuntimeError("this request was not routed to a mount, so it has no storage")

    async def get(self, key: str) -> bytes | None:
        self._fail()
        return None

    async def put(self, key: str, value: bytes) -> None:
        self._fail()

    async def delete(self, key: str) -> None:
        self._fail()

    async def list(self, prefix: str) -> builtins.list[str]:
        self._fail()
        return []

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        self._fail()
        return []

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        self._fail()


class StorageView:
    """Storage seen through ``prefix``: keys are relative to it."""

    __slots__ = ("_inner", "prefix")

    def __init__(self, inner: Storage, prefix: str) -> None:
        self._inner = inner
        self.prefix = prefix

    def sub(self, prefix: str) -> StorageView:
        return StorageView(self._inner, self.prefix + prefix)

    async def get(self, key: str) -> bytes | None:
        return await self._inner.get(self.prefix + key)

    async def put(self, key: str, value: bytes) -> None:
        await self._inner.put(self.prefix + key, value)

    async def delete(self, key: str) -> None:
        await self._inner.delete(self.prefix + key)

    async def list(self, prefix: str = "") -> builtins.list[str]:
        return await self._inner.list(self.prefix + prefix)

    async def list_page(self, prefix: str = "", after: str = "", limit: int = 0) -> builtins.list[str]:
        """A page of ``list(prefix)``: children sorted after ``after``, at most ``limit`` (0: all)."""
        return await self._inner.list_page(self.prefix + prefix, after, limit)

    async def count(self, prefix: str = "") -> int:
        """How many keys lie under ``prefix``."""
        start = self.prefix + prefix
        return await self._inner.count(start, prefix_end(start))

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        n = len(self.prefix)
        rows = await self._inner.scan(self.prefix + start, self.prefix + end, limit)
        return [(k[n:], v) for k, v in rows]

    def absolute(self, ops: Iterable[Op]) -> builtins.list[Op]:
        """``ops`` with keys relative to this view, as ops on the storage underneath."""
        p = self.prefix
        return [Put(p + o.key, o.value) if isinstance(o, Put) else Delete(p + o.key) for o in ops]

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        p = self.prefix
        await self._inner.batch(self.absolute(ops), [Expect(p + c.key, c.value, c.exists) for c in expect])

    async def get_json(self, key: str) -> Any:
        raw = await self.get(key)
        return None if raw is None else orjson.loads(raw)

    async def put_json(self, key: str, value: Any) -> None:
        await self.put(key, orjson.dumps(value))

    async def delete_tree(self, prefix: str = "", chunk: int = 1000) -> int:
        """Delete every key under ``prefix``; answers how many went."""
        removed = 0
        start, end = prefix, prefix_end(prefix)
        while True:
            rows = await self.scan(start, end, chunk)
            if not rows:
                return removed
            await self.batch([Delete(k) for k, _ in rows])
            removed += len(rows)


#: The storage of a request not routed yet (every call raises).
UNROUTED = StorageView(_Unrouted(), "")
