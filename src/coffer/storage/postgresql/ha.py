"""The HA lock (Vault's scheme): one row of the HA table, taken, renewed and released by one statement each."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from coffer.storage.base import HALock
from coffer.storage.postgresql.options import _scrub

if TYPE_CHECKING:
    from coffer.storage.postgresql.storage import PostgresqlStorage

log = logging.getLogger("coffer.storage.postgresql")

#: The lock's name in the HA table (Vault's).
LOCK_KEY = "core/lock"
#: Heartbeat rows are written with this key prefix in the HA table (never fenced: standbys write them too).
HEARTBEAT_PREFIX = "heartbeat/"
_HEARTBEAT_END = HEARTBEAT_PREFIX[:-1] + chr(ord(HEARTBEAT_PREFIX[-1]) + 1)
#: A node not heard from for this long (seconds) has its heartbeat row deleted (every start makes a new one).
FORGET_MEMBERS_AFTER = 24 * 3600.0


def _clock() -> float:
    """Seconds on a clock that never goes back and keeps running while the machine is suspended."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


if not hasattr(time, "CLOCK_BOOTTIME"):  # pragma: no cover - not Linux
    _clock = time.monotonic  # noqa: F811


class PostgresqlHALock(HALock):
    """The HA lock row ``core/lock`` of one storage, claimed as ``identity``."""

    def __init__(self, storage: PostgresqlStorage, identity: str, value: str) -> None:
        self.storage = storage
        self.identity = identity
        self.value = value
        self.timings = storage.timings
        self.retry_interval = self.timings.retry_interval
        self._held = False
        self._held_until = 0.0
        self._term = 0  # moves on with every acquire and every loss
        self._lost_event: asyncio.Event | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.lost_reason: str | None = None

    @property
    def held(self) -> bool:
        return self._holding()

    def _holding(self) -> bool:
        if not self._held:
            return False
        if _clock() < self._held_until:
            return True
        self._lose(f"it was not renewed within its TTL of {self.timings.ttl:g}s")
        return False

    async def _statement(self, query: sql.Composed, params: Mapping[str, Any] | Sequence[Any]) -> int:
        """Run one lock statement with bounded waits; the number of rows it affected."""
        wait_ms = max(50, int(min(self.timings.ttl / 3, 5.0) * 1000))
        async with self.storage._connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('lock_timeout', %(ms)s, true), set_config('statement_timeout', %(ms)s, true)",
                {"ms": str(wait_ms)},
            )
            cur = await conn.execute(query, params)
            return cur.rowcount

    async def acquire(self) -> bool:
        """Try once to take the lock (True also when it is already ours); start renewing it."""
        if self._holding():
            return True
        start = _clock()
        params = {"key": LOCK_KEY, "identity": self.identity, "value": self.value, "ttl": self.timings.ttl}
        try:
            rows = await self._statement(self.storage._sql.acquire, params)
        except psycopg.errors.LockNotAvailable:  # a write of the old holder is still in flight
            return False
        except psycopg.errors.QueryCanceled:
            return False
        if rows != 1:
            return False
        self._term += 1
        self._held = True
        self._held_until = start + self.timings.ttl
        self.lost_reason = None
        self._lost_event = asyncio.Event()
        self.storage._took(self)
        self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(self._term))
        log.info("acquired the HA lock as %s", self.identity)
        return True

    async def lock(self) -> None:
        """Wait until the lock is held, trying every ``retry_interval`` (database errors are retried too)."""
        while True:
            try:
                if await self.acquire():
                    return
            except (psycopg.Error, OSError) as exc:
                log.warning("could not try the HA lock: %s", _scrub(str(exc), self.storage._secrets))
            await asyncio.sleep(self.timings.retry_interval)

    async def renew(self) -> bool:
        """Extend the lock by a TTL from now; False (the lock is lost) when it is no longer ours.

        Database errors (the server unreachable, waits cut short) are raised: the lock is
        still held until its deadline, and the renewal should be tried again soon.
        """
        if not self._holding():
            return False
        term, start = self._term, _clock()
        params = {"key": LOCK_KEY, "identity": self.identity, "ttl": self.timings.ttl}
        with self.storage._writes_held_back():
            rows = await self._statement(self.storage._sql.renew, params)
        if term != self._term or not self._held:
            return False
        if rows != 1:
            self._lose("it expired or another node took it over")
            return False
        self._held_until = start + self.timings.ttl
        return True

    async def _renew_loop(self, term: int) -> None:
        """Renew every ``renew_interval``; after a failed try, retry every ``retry_interval`` until the deadline."""
        delay = self.timings.renew_interval
        while self._term == term and self._held:
            await asyncio.sleep(delay)
            if self._term != term:
                return
            try:
                if not await self.renew():
                    return  # lost
            except (psycopg.Error, OSError) as exc:
                log.warning("could not renew the HA lock: %s", _scrub(str(exc), self.storage._secrets))
                if not self._holding():
                    return
                delay = min(self.timings.retry_interval, self.timings.renew_interval)
                continue
            delay = self.timings.renew_interval

    def _lose(self, reason: str) -> None:
        if not self._held:
            return
        self._held = False
        self._term += 1
        self.lost_reason = reason
        self.storage._gave_up(self)
        if self._lost_event is not None:
            self._lost_event.set()
        self._stop_renewing()
        log.warning("lost the HA lock (%s)", reason)

    def _stop_renewing(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not _current_task() and not renewer.done():
            with contextlib.suppress(RuntimeError):  # its loop is closed
                renewer.cancel()

    async def release(self) -> None:
        """Stop renewing and delete the lock row (if it is still ours)."""
        was_held = self._held
        if was_held:
            self._held = False
            self._term += 1
            self.lost_reason = "it was released"
            self.storage._gave_up(self)
            if self._lost_event is not None:
                self._lost_event.set()
        self._stop_renewing()
        await self._statement(self.storage._sql.release, (LOCK_KEY, self.identity))
        if was_held:
            log.info("released the HA lock")

    async def leader(self) -> tuple[str, str] | None:
        """``(identity, value)`` of the holder of an unexpired lock, or None."""
        async with self.storage._connection() as conn:
            cur = await conn.execute(self.storage._sql.leader, (LOCK_KEY,))
            row = await cur.fetchone()
        return None if row is None else (str(row[0]), "" if row[1] is None else str(row[1]))

    async def heartbeat(self, info: str) -> None:
        """Write this node's heartbeat row (never fenced: a standby writes it too)."""
        key = HEARTBEAT_PREFIX + self.identity
        async with self.storage._connection() as conn:
            await conn.execute(self.storage._sql.heartbeat, (key, self.identity, info.replace("\x00", "")))
            await conn.execute(self.storage._sql.forget_members,
                               (HEARTBEAT_PREFIX, _HEARTBEAT_END, FORGET_MEMBERS_AFTER))

    async def members(self, window: float) -> list[tuple[str, str, datetime.datetime]]:
        """``(identity, info, last echo)`` of every node whose heartbeat is at most ``window`` seconds old."""
        async with self.storage._connection() as conn:
            cur = await conn.execute(self.storage._sql.members, (HEARTBEAT_PREFIX, _HEARTBEAT_END, window))
            rows = await cur.fetchall()
        return [(str(r[0]), "" if r[1] is None else str(r[1]), r[2]) for r in rows]

    async def wait_lost(self) -> None:
        """Return once the lock held since the last acquire is lost or released."""
        while self._holding():
            event = self._lost_event
            if event is None:
                return
            # Wake up at the local deadline too: a renewal that never comes must end the wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=max(0.0, self._held_until - _clock()) + 0.01)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
