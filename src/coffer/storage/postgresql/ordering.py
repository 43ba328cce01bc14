"""In-process ordering of writes: writes sharing a key run one at a time, in the order they were made."""

from __future__ import annotations

import asyncio
from collections import deque


class _Turn:
    __slots__ = ("keys", "waiting", "ready")

    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = keys
        self.waiting = 0
        self.ready: asyncio.Future[None] | None = None


class _KeyQueues:
    """Writes sharing a key run one at a time, in the order they were made.

    A write enqueues itself behind every earlier write on each of its keys, all at once
    (no await in between), so the waits follow one global order and cannot deadlock.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[_Turn]] = {}

    def enter(self, keys: frozenset[str]) -> _Turn:
        turn = _Turn(keys)
        for key in keys:
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = deque((turn,))
            else:
                queue.append(turn)
                turn.waiting += 1
        return turn

    async def wait(self, turn: _Turn) -> None:
        if turn.waiting:
            turn.ready = asyncio.get_running_loop().create_future()
            await turn.ready

    def leave(self, turn: _Turn) -> None:
        for key in turn.keys:
            queue = self._queues[key]
            if queue[0] is not turn:  # cancelled while waiting: whoever is first stays first
                queue.remove(turn)
                continue
            queue.popleft()
            if not queue:
                del self._queues[key]
                continue
            following = queue[0]
            following.waiting -= 1
            if following.waiting == 0 and following.ready is not None and not following.ready.done():
                following.ready.set_result(None)
