"""http/watch.py: a request whose client disconnects is cancelled; a quick one costs no listener task."""

from __future__ import annotations

import asyncio

import pytest

from coffer.http.watch import WATCH_AFTER, Disconnected, DisconnectWatch


class Client:
    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.receives = 0

    async def receive(self) -> dict:
        self.receives += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_slow_work_is_cancelled_when_its_client_disconnects():
    watch, client, cancelled = DisconnectWatch(), Client(), asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def leave() -> None:
        await asyncio.sleep(WATCH_AFTER * 3)
        client.gone.set()

    leaving = asyncio.create_task(leave())
    with pytest.raises(Disconnected):
        await asyncio.wait_for(watch.run(slow(), client.receive), 10)
    await leaving
    assert cancelled.is_set()
    assert asyncio.current_task().cancelling() == 0  # the cancel was ours, taken back


async def test_quick_work_never_listens_and_the_watchdog_ends():
    watch, client = DisconnectWatch(), Client()

    async def quick() -> str:
        await asyncio.sleep(0)
        return "done"

    assert [await watch.run(quick(), client.receive) for _ in range(100)] == ["done"] * 100
    assert client.receives == 0
    await asyncio.sleep(WATCH_AFTER * 2)
    assert watch._watchdog is None and not watch._running


async def test_a_cancel_from_elsewhere_is_not_taken_for_a_disconnect():
    watch, client = DisconnectWatch(), Client()
    task = asyncio.create_task(watch.run(asyncio.sleep(60), client.receive))
    await asyncio.sleep(WATCH_AFTER * 3)  # long enough to be listened to
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.receives == 1
