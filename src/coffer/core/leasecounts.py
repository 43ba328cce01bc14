"""How many leases are live (and irrevocable), by mount and role, kept in storage with the leases.

A scrape must never count a million leases, and the figures must survive a
restart (and a takeover by another node), so every batch that records,
removes or marks a lease also writes the counters it changes::

  sys/expire/count/<mount uuid>/=<role>    {"live": n, "irrevocable": m}
  sys/expire/count-ready                   the counters are complete (absent in a store made before them)

The values here in memory are the truth while this node is the writer; each
batch carries the new absolute values of the counters it touches. Computing
them and handing the batch to storage happen in one step of the event loop
(no ``await`` in between), and every storage backend applies the batches
touching one key in the order they were handed to it, so the last write of a
counter always carries its latest value. A batch that fails is undone here
and its counters rewritten (a repair batch queued behind every later one).

A store without ``count-ready`` (made by an older coffer) is counted once, at
unseal, before any request is served; ``sys/leases/tidy`` counts again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

import orjson

from coffer.storage.base import Delete, Expect, Op, Put, Storage, prefix_end

log = logging.getLogger("coffer.expiration")

COUNT = "sys/expire/count/"
READY = "sys/expire/count-ready"

#: (mount uuid, role)
Key = tuple[str, str]


@dataclass(slots=True)
class Delta:
    live: int = 0
    irrevocable: int = 0


class LeaseCounts:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.live: dict[Key, int] = {}
        self.irrevocable: dict[Key, int] = {}

    @staticmethod
    def storage_key(key: Key) -> str:
        return f"{COUNT}{key[0]}/={quote(key[1], safe='')}"

    # -- loading -------------------------------------------------------------

    async def load(self) -> bool:
        """Read the counters; False when the store has none yet (it must be counted: :meth:`recount`)."""
        self.live, self.irrevocable = {}, {}
        if await self.storage.get(READY) is None:
            return False
        start, end = COUNT, prefix_end(COUNT)
        while rows := await self.storage.scan(start, end, 1000):
            for storage_key, raw in rows:
                mount, _, role = storage_key[len(COUNT):].partition("/=")
                doc = orjson.loads(raw)
                key = (mount, unquote(role))
                if doc.get("live"):
                    self.live[key] = int(doc["live"])
                if doc.get("irrevocable"):
                    self.irrevocable[key] = int(doc["irrevocable"])
            start = rows[-1][0] + "\x00"
        return True

    async def recount(self, leases: Iterable[tuple[Key, bool]]) -> None:
        """Replace every counter by the count of ``leases`` ((mount uuid, role), irrevocable) and mark the
        counters complete, in one batch. Only while nothing else writes leases (unseal, or under tidy's lock)."""
        live: dict[Key, int] = {}
        irrevocable: dict[Key, int] = {}
        for key, is_irrevocable in leases:
            live[key] = live.get(key, 0) + 1
            if is_irrevocable:
                irrevocable[key] = irrevocable.get(key, 0) + 1
        ops: list[Op] = []
        start, end = COUNT, prefix_end(COUNT)
        while rows := await self.storage.scan(start, end, 1000):
            ops += [Delete(k) for k, _ in rows]
            start = rows[-1][0] + "\x00"
        self.live, self.irrevocable = live, irrevocable
        ops += [self._put(key) for key in set(live) | set(irrevocable)]
        ops.append(Put(READY, b"1"))
        await self.storage.batch(ops)

    # -- changing them with a batch --------------------------------------------

    def _put(self, key: Key) -> Op:
        live, irrevocable = self.live.get(key, 0), self.irrevocable.get(key, 0)
        if not live and not irrevocable:
            return Delete(self.storage_key(key))
        return Put(self.storage_key(key), orjson.dumps({"live": live, "irrevocable": irrevocable}))

    def _apply(self, deltas: dict[Key, Delta], sign: int) -> list[Op]:
        for key, delta in deltas.items():
            for table, change in ((self.live, delta.live), (self.irrevocable, delta.irrevocable)):
                # A count that drops to 0 stays (the metrics show the 0); storage drops it (see _put).
                table[key] = max(table.get(key, 0) + sign * change, 0)
        return [self._put(key) for key in deltas]

    async def commit(self, ops: list[Op], deltas: dict[Key, Delta], expect: Sequence[Expect] = ()) -> None:
        """``storage.batch(ops, expect)`` together with the counters ``deltas`` change.

        The write runs to its end even if the caller is cancelled (a cancelled caller cannot know whether
        storage applied the batch, and the counters must know): it is shielded.
        """
        deltas = {k: d for k, d in deltas.items() if d.live or d.irrevocable}
        if not deltas:
            await self.storage.batch(ops, expect)
            return
        task = asyncio.ensure_future(self._write(ops, deltas, expect))
        task.add_done_callback(_retrieve)
        await asyncio.shield(task)

    async def _write(self, ops: list[Op], deltas: dict[Key, Delta], expect: Sequence[Expect]) -> None:
        # The new values are computed and the batch handed over in one step, with no await in between; the
        # tasks of commit() start in the order they were made, so counters reach storage in that order too.
        try:
            await self.storage.batch(ops + self._apply(deltas, +1), expect)
        except BaseException:
            repair = self._apply(deltas, -1)
            try:
                await self.storage.batch(repair)
            except Exception as exc:  # the next write of these counters carries the right values anyway
                log.warning("could not rewrite lease counters after a failed write: %s", exc)
            raise

    # -- reading -----------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        return sum(self.live.values()), sum(self.irrevocable.values())


def _retrieve(task: asyncio.Future[None]) -> None:
    """Mark a write's error as seen (its caller, if still there, gets it too)."""
    if not task.cancelled():
        task.exception()


def add(deltas: dict[Key, Delta], key: Key, live: int = 0, irrevocable: int = 0) -> None:
    delta = deltas.setdefault(key, Delta())
    delta.live += live
    delta.irrevocable += irrevocable
