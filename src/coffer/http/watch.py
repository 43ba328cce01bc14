"""Dropping work nobody waits for: a request whose client disconnects is cancelled.

granian does not cancel a request's task when its client goes away, so coffer listens for the
``http.disconnect`` message itself. Listening costs a task, which most requests (answered in well under
``WATCH_AFTER``) never need: each running request is noted in a dict, and one watchdog, alive while any
request runs, starts a listener only for requests still running after ``WATCH_AFTER``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

#: A request still running after this many seconds is watched for its client disconnecting.
WATCH_AFTER = 0.05


class Disconnected(Exception):
    """The client of a running request disconnected."""


class _Running:
    __slots__ = ("receive", "since", "listener", "gone")

    def __init__(self, receive: Any, since: float) -> None:
        self.receive = receive
        self.since = since
        self.listener: asyncio.Task[None] | None = None
        self.gone = False


class DisconnectWatch:
    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], _Running] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def run(self, work: Awaitable[T], receive: Any) -> T:
        """Await ``work`` in the current task; raise Disconnected if the client disconnects meanwhile."""
        task = asyncio.current_task()
        if task is None:
            return await work
        loop = asyncio.get_running_loop()
        running = self._running[task] = _Running(receive, loop.time())
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch())
        try:
            return await work
        except asyncio.CancelledError:
            if not running.gone:
                raise
            task.uncancel()
            raise Disconnected() from None
        finally:
            del self._running[task]
            if running.listener is not None:
                running.listener.cancel()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._running:
                await asyncio.sleep(WATCH_AFTER / 2)
                now = loop.time()
                for task, running in list(self._running.items()):
                    if running.listener is None and now - running.since >= WATCH_AFTER:
                        running.listener = loop.create_task(self._listen(task, running))
        finally:
            self._watchdog = None

    @staticmethod
    async def _listen(task: asyncio.Task[Any], running: _Running) -> None:
        while (await running.receive())["type"] != "http.disconnect":
            pass
        running.gone = True
        task.cancel()
