"""The one interface every physical storage backend implements.

Keys are ``/``-separated strings; values are bytes (already encrypted by the
barrier when they come from above it). All methods are coroutines so a
backend may run slow work (an fsync, a network round trip) off the event
loop while cheap reads stay on it.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
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


class LockLost(Exception):
    """A write was refused because this node does not hold the HA lock (any more).

    Raised by an HA-enabled backend for every write made while the lock is not held:
    by a standby, or by a node whose lock expired or was taken over. Nothing of the
    refused write was applied.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"this node does not hold the HA lock ({reason}); nothing was written")
        self.reason = reason


class HALock(ABC):
    """One node's handle on the storage's high-availability lock (one active node at a time).

    ``identity`` names this node's claim (unique per process: a restarted node must use a
    new one); ``value`` is what other nodes read through :meth:`leader` (the active node's
    address). A lock, once acquired, renews itself in the background until it is released
    or lost; :meth:`wait_lost` returns when that happens.
    """

    identity: str
    value: str
    #: Seconds between two tries of :meth:`lock`.
    retry_interval: float = 1.0

    @property
    @abstractmethod
    def held(self) -> bool:
        """True while this lock is held (acquired, renewed in time, not released)."""

    @abstractmethod
    async def acquire(self) -> bool:
        """Try once to take the lock (or keep it, when already ours); True when held."""

    async def lock(self) -> None:
        """Wait until the lock is held, trying every ``retry_interval`` seconds (cancellable)."""
        while not await self.acquire():
            await asyncio.sleep(self.retry_interval)

    @abstractmethod
    async def renew(self) -> bool:
        """Extend a held lock; False (and the lock counts as lost) when it no longer is ours."""

    @abstractmethod
    async def release(self) -> None:
        """Stop renewing and give the lock up, so another node may take it at once."""

    @abstractmethod
    async def leader(self) -> tuple[str, str] | None:
        """``(identity, value)`` of whoever holds an unexpired lock, or None."""

    async def heartbeat(self, info: str) -> None:  # noqa: B027 - optional: a lock without a member list
        """Record that this node is alive (``info`` describes it); not fenced: standbys call it too."""

    async def members(self, window: float) -> list[tuple[str, str, datetime.datetime]]:
        """``(identity, info, last heartbeat)`` of the nodes heard from in the last ``window`` seconds."""
        return []

    @abstractmethod
    async def wait_lost(self) -> None:
        """Return once the lock held since the last successful acquire is lost or released.

        Returns at once when the lock is not held.
        """


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

    async def list_page(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        """A page of :meth:`list`: the children of ``prefix`` sorted strictly after ``after``, at most ``limit``
        of them (0: no limit). Reads only that page (a folder's own keys are skipped, not read)."""
        end = prefix_end(prefix)
        if not after:
            start = prefix
        elif after.endswith("/"):
            start = prefix + after[:-1] + AFTER_SLASH  # past everything in that folder
        else:
            start = prefix + after + "\x00"
        found: builtins.list[str] = []
        while not limit or len(found) < limit:
            rows = await self.scan(start, end, (limit - len(found)) if limit else 1000)
            if not rows:
                break
            for key, _ in rows:
                rest = key[len(prefix):]
                folder = rest.find("/")
                if folder < 0:
                    found.append(rest)
                    start = key + "\x00"
                    continue
                found.append(rest[:folder + 1])
                start = prefix + rest[:folder] + AFTER_SLASH  # jump over the folder's keys
                break
        return found[:limit] if limit else found

    def ha_lock(self, identity: str, value: str) -> HALock | None:
        """A handle on this storage's HA lock for ``identity``, or None when it has no HA.

        Once a handle of an HA-enabled storage has acquired the lock, every write of that
        storage is fenced by it: a write made while the lock is not held raises
        :class:`LockLost`.
        """
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""



class Backend(Storage):
    """A store that holds the bytes itself (inmem, sqlite, postgresql), not a view over another one: it can
    also be copied out whole and replaced whole (``sys/storage/raft/snapshot``)."""

    @abstractmethod
    def snapshot(self, batch_size: int = 1000) -> AsyncIterator[builtins.list[tuple[str, bytes]]]:
        """Every entry, in key order and in batches of at most ``batch_size``, as of one moment.

        The backends read through one consistent view (a read transaction), so writes made while the
        batches are consumed are not seen. Close the iterator (``contextlib.aclosing``) when stopping early.
        """

    @abstractmethod
    async def replace_all(self, records: Iterable[tuple[str, bytes]]) -> int:
        """Replace everything stored with ``records`` (distinct keys), in one atomic step; answers how many.

        When iterating ``records`` raises, or a record cannot be stored, nothing at all changes.
        """


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
