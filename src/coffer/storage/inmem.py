"""A volatile storage backend kept in a sorted dict (tests and dev mode)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Sequence

from sortedcontainers import SortedDict

from coffer.storage.base import AFTER_SLASH, Backend, ConditionFailed, Delete, Expect, Op, Put, check_key, check_value


class InmemStorage(Backend):
    """Keys in a ``SortedDict``; nothing survives the process.

    Every method runs synchronously inside its coroutine, so each call
    (a batch included) is atomic with respect to other tasks on the loop.
    """

    def __init__(self) -> None:
        self._data: SortedDict[str, bytes] = SortedDict()

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        value: bytes | None = self._data.get(key)
        return value

    async def put(self, key: str, value: bytes) -> None:
        """Store a copy of ``value`` at ``key``."""
        self._data[check_key(key)] = check_value(value)

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._data.pop(key, None)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Immediate children of ``prefix``; each folder costs one seek.

        Once a folder ``seg/`` is seen, the iteration restarts at
        ``prefix + seg + "0"`` instead of walking the keys inside it.
        A key equal to ``prefix`` itself is not a child and is left out.
        """
        out: builtins.list[str] = []
        start = len(prefix)
        lower = prefix
        while True:
            for key in self._data.irange(minimum=lower):
                if not key.startswith(prefix):
                    return out
                cut = key.find("/", start)
                if cut < 0:
                    if len(key) > start:
                        out.append(key[start:])
                    continue
                out.append(key[start : cut + 1])
                lower = key[:cut] + AFTER_SLASH
                break
            else:
                return out

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        """Entries with ``start <= key < end`` in key order, at most ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("scan limit must not be negative")
        out: builtins.list[tuple[str, bytes]] = []
        if limit == 0 or start >= end:
            return out
        for key in self._data.irange(minimum=start, maximum=end, inclusive=(True, False)):
            out.append((key, self._data[key]))
            if limit is not None and len(out) >= limit:
                break
        return out

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        """Apply ``ops`` in order (if ``expect`` holds); a bad op is rejected before anything changes."""
        for cond in expect:
            if not cond.met_by(self._data.get(check_key(cond.key))):
                raise ConditionFailed(cond.key)
        checked: builtins.list[tuple[str, bytes | None]] = []
        for op in ops:
            if isinstance(op, Put):
                checked.append((check_key(op.key), check_value(op.value)))
            elif isinstance(op, Delete):
                checked.append((check_key(op.key), None))
            else:
                raise TypeError(f"unknown storage op {op!r}")
        for key, value in checked:
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value

    async def snapshot(self, batch_size: int = 1000) -> AsyncIterator[builtins.list[tuple[str, bytes]]]:
        """Every entry in key order, as of the call (a copy of the item list is taken at once)."""
        items = list(self._data.items())
        for i in range(0, len(items), max(1, batch_size)):
            yield items[i : i + batch_size]

    async def replace_all(self, records: Iterable[tuple[str, bytes]]) -> int:
        """Swap in a new dict built from ``records`` (the old one stays if building it fails)."""
        fresh: SortedDict[str, bytes] = SortedDict()
        for key, value in records:
            fresh[check_key(key)] = check_value(value)
        self._data = fresh
        return len(fresh)
