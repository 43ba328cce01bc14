"""The one interface every physical storage backend implements.

Keys are ``/``-separated strings; values are bytes (already encrypted by the
barrier when they come from above it). All methods are coroutines so a
backend may run slow work (an fsync, a network round trip) off the event
loop while cheap reads stay on it.
"""

from __future__ import annotations

import asyncio
import builtins
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class Expect:
    """A condition of a batch, checked atomically with it.

    ``exists=False``: ``key`` must be absent. Otherwise ``key`` must exist and,
    when ``value`` is given, hold exactly ``value``.
    """

    key: str
    value: bytes | None = None
    exists: bool = True

    def met_by(self, current: bytes | None) -> bool:
        if not self.exists:
            return current is None
        return current is not None and (self.value is None or current == self.value)


class ConditionFailed(Exception):
    """A conditional batch was not applied: ``key`` no longer met its condition."""

    def __init__(self, key: str) -> None:
        super().__init__(f"storage condition on {key!r} is not met; nothing was written")
        self.key = key


class Storage(ABC):
    """Physical storage: get / put / delete / list / ordered scan / batch."""

    #: True when several server nodes may share this storage (needs a lock).
    ha_enabled: bool = False

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""

    @abstractmethod
    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` at ``key`` durably, replacing any old value."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""

    @abstractmethod
    async def list(self, prefix: str) -> builtins.list[str]:
        """Immediate children of ``prefix``, sorted, Vault style.

        For keys ``a/b``, ``a/c/d`` and ``a/c/e``, ``list("a/")`` answers
        ``["b", "c/"]``: a folder appears once, with a trailing ``/``.
        """

    @abstractmethod
    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        """Entries with ``start <= key < end`` in key order, at most ``limit``."""

    @abstractmethod
    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        """Apply every put and delete in ``ops`` atomically, in order.

        With ``expect``, only if every condition holds at that moment (checked in the same
        atomic step); otherwise nothing is applied and ``ConditionFailed`` is raised.
        """

    async def count(self, start: str, end: str) -> int:
        """How many keys lie in ``start <= key < end`` (in chunks, yielding between them)."""
        total = 0
        while rows := await self.scan(start, end, 1000):
            total += len(rows)
            start = rows[-1][0] + "\x00"
            await asyncio.sleep(0)  # counting many keys must not stall other requests
        return total

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


#: The character right after ``/``: ``folder + AFTER_SLASH`` sorts after every
#: key under ``folder/``, so it is where a listing jumps to skip a whole folder.
AFTER_SLASH = chr(ord("/") + 1)


def check_key(key: object) -> str:
    """``key``, checked to be a string."""
    if not isinstance(key, str):
        raise TypeError(f"storage keys must be str, not {type(key).__name__}")
    return key


def check_value(value: object) -> bytes:
    """An immutable ``bytes`` copy of ``value``, which must be bytes-like."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"storage values must be bytes, not {type(value).__name__}")
    return bytes(value)


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix + "\U0010ffff"
