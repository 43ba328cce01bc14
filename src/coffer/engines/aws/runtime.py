"""How one AWS mount reaches AWS: its own workers, its own call budget, and calls that can be abandoned.

* Every blocking SDK call runs on one of the mount's own worker threads, in one of two lanes: ``ISSUE``
  (credential reads, operators' tools) and ``REVOKE`` (revocation, rollback, rotation). A flood of reads can
  fill only its own lane of its own mount: revocation keeps its workers, and another mount is not touched.
  Each lane admits a bounded number of calls (running + queued); beyond that the caller gets a 503 at once.
* Workers are daemon threads that end when idle. A call stuck in a socket read never holds the process at
  exit; its SDK timeouts bound how long the thread lives.
* Every HTTP attempt the SDK makes passes ``before_send`` (a botocore event): it refuses attempts of a call
  that was abandoned (its client went away, the server is stopping, its deadline passed), waits for the
  mount's call budget (``max_calls_per_second``; revocation first, issuance every fourth slot), and refuses at
  once while the endpoint's breaker is open (the endpoint stopped answering; see ``Breaker``).
* ``interrupt_all()`` (the server calls it when told to stop) ends every wait at once with a 503, so a
  stopping server does not wait for AWS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from coffer.errors import RetryLater, Throttled, UpstreamError

log = logging.getLogger("coffer.engines.aws")
T = TypeVar("T")

ISSUE, REVOKE = "issue", "revoke"
#: Worker threads per lane and mount, and how many more calls may queue behind them.
WORKERS = {ISSUE: 32, REVOKE: 32}
QUEUED = {ISSUE: 224, REVOKE: 4096}
#: An idle worker thread ends after this long.
IDLE_SECONDS = 30.0
#: SDK timeouts of one HTTP attempt; with at most MAX_ATTEMPTS attempts they bound a call.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
#: How long a credential read may spend on AWS (waiting for the call budget included).
ISSUE_DEADLINE = 30.0

#: Errors that mean the endpoint did not answer at all.
NO_ANSWER = (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionClosedError)


class Abandoned(Exception):
    """An SDK attempt refused because its call was given up (not retried by botocore)."""


class Ticket:
    """One call's state, seen by the thread that runs it."""

    __slots__ = ("lane", "deadline", "reason")

    def __init__(self, lane: str, deadline: float | None) -> None:
        self.lane = lane
        self.deadline = deadline
        self.reason = ""

    def cancel(self, reason: str) -> None:
        self.reason = self.reason or reason

    def check(self) -> None:
        if self.reason:
            raise Abandoned(self.reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.reason = "deadline"
            raise Abandoned(f"no answer from AWS within {ISSUE_DEADLINE:g}s")


_local = threading.local()


def current_ticket() -> Ticket | None:
    return getattr(_local, "ticket", None)


class Lane:
    """Up to ``size`` daemon threads running the jobs of one lane, plus a bounded queue."""

    def __init__(self, name: str, size: int, queued: int) -> None:
        self.name = name
        self.size = size
        self.limit = size + queued
        self.pending = 0  # submitted, not finished
        self._queue: queue.SimpleQueue[tuple[Future[Any], Ticket, Callable[[], Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, ticket: Ticket, job: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            self.pending += 1
            self._queue.put((fut, ticket, job))
            if self._idle == 0 and self._threads < self.size:
                self._threads += 1
                threading.Thread(target=self._work, name=f"aws-{self.name}", daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                fut, ticket, job = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if self._queue.empty():
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._idle -= 1
            try:
                if not fut.set_running_or_notify_cancel():
                    continue  # its caller gave up while it queued: dropped
                _local.ticket = ticket
                try:
                    result = job()
                except BaseException as exc:  # handed to the caller
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
                finally:
                    _local.ticket = None
            finally:
                with self._lock:
                    self.pending -= 1


class Pacer:
    """At most ``rate`` HTTP attempts per second for one mount, shared by both lanes (thread side).

    Attempts are spaced evenly. When both lanes wait, revocation goes first, except that every fourth
    slot goes to issuance, so neither starves the other.
    """

    def __init__(self) -> None:
        self.rate = 0.0
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[Ticket]] = {ISSUE: deque(), REVOKE: deque()}
        self._next_at = 0.0
        self._streak = 0

    def configure(self, rate: float) -> None:
        with self._cond:
            self.rate = max(0.0, float(rate or 0))
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def interval(self) -> float:
        # Over 1/rate by 15%: however the attempts' travel times vary (by up to 150 ms), AWS never sees more
        # than ``rate`` of them in a second.
        return 1.15 / self.rate

    def _chosen(self) -> Ticket | None:
        revoke, issue = self._waiting[REVOKE], self._waiting[ISSUE]
        if revoke and (not issue or self._streak < 3):
            return revoke[0]
        return issue[0] if issue else None

    def acquire(self, ticket: Ticket) -> None:
        if self.rate <= 0:
            return
        with self._cond:
            ahead = len(self._waiting[REVOKE]) + (len(self._waiting[ISSUE]) if ticket.lane == ISSUE else 0)
            if ticket.deadline is not None and self.rate > 0:
                wait = max(self._next_at - time.monotonic(), 0.0) + ahead * self.interval
                if time.monotonic() + wait > ticket.deadline:
                    raise BudgetExhausted(wait)
            mine = self._waiting[ticket.lane]
            mine.append(ticket)
            try:
                while True:
                    ticket.check()
                    if self.rate <= 0:
                        return
                    now = time.monotonic()
                    if self._chosen() is ticket and now >= self._next_at:
                        self._next_at = now + self.interval
                        self._streak = self._streak + 1 if ticket.lane == REVOKE else 0
                        return
                    self._cond.wait(min(max(self._next_at - now, 0.005), 0.25))
            finally:
                mine.remove(ticket)
                self._cond.notify_all()


class BudgetExhausted(Abandoned):
    """The call budget cannot fit this attempt before its deadline."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the mount's AWS call budget is used up for the next {wait:.0f}s")
        self.wait = wait


class EndpointDown(Abandoned):
    """The endpoint's breaker is open."""


class Breaker:
    """Stops calling an endpoint that stopped answering (thread side).

    After THRESHOLD attempts in a row got no answer at all (connect or read timeouts, refused or dropped
    connections), attempts fail at once for a cool-down (5 s, doubling to 60 s); then one attempt probes,
    and an answer of any kind closes the breaker again.
    """

    THRESHOLD = 5
    BASE, CAP = 5.0, 60.0

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self._cooldown = 0.0
        self._probe_since = 0.0

    def before(self) -> None:
        with self._lock:
            if not self._open_until:
                return
            now = time.monotonic()
            if now < self._open_until:
                raise EndpointDown(self._message(self._open_until - now))
            if self._probe_since and now - self._probe_since < CONNECT_TIMEOUT + READ_TIMEOUT + 1:
                raise EndpointDown(self._message(1))
            self._probe_since = now

    def _message(self, left: float) -> str:
        return (f"AWS endpoint {self.endpoint} did not answer the last {self.THRESHOLD} attempts; coffer "
                f"stops calling it for {math.ceil(left)}s")

    def record(self, answered: bool) -> None:
        with self._lock:
            self._probe_since = 0.0
            if answered:
                self._failures, self._open_until, self._cooldown = 0, 0.0, 0.0
                return
            self._failures += 1
            if self._failures >= self.THRESHOLD:
                self._cooldown = min(self.CAP, self._cooldown * 2 or self.BASE)
                self._open_until = time.monotonic() + self._cooldown
                log.warning("AWS endpoint %s stopped answering; not calling it for %gs", self.endpoint,
                            self._cooldown)


_runtimes: weakref.WeakSet[Runtime] = weakref.WeakSet()


def interrupt_all(reason: str = "coffer is shutting down") -> None:
    """End every AWS wait of every mount at once (the server is stopping). Call it on the event loop."""
    for runtime in list(_runtimes):
        runtime.interrupt(reason)


class Runtime:
    """One mount's lanes, pacer and breakers, and the async side of running SDK calls."""

    def __init__(self, mount: str) -> None:
        self.mount = mount
        self.lanes = {lane: Lane(f"{mount.rstrip('/')}-{lane}", WORKERS[lane], QUEUED[lane]) for lane in WORKERS}
        self.pacer = Pacer()
        self._breakers: dict[str, Breaker] = {}
        self._breakers_lock = threading.Lock()
        self._interrupted = ""
        self._waits: set[asyncio.Future[Any]] = set()
        self._cut: set[asyncio.Future[Any]] = set()  # waits ended by interrupt()
        self._tickets: set[Ticket] = set()
        _runtimes.add(self)

    # -- SDK hooks (worker threads) --------------------------------------------

    def breaker(self, endpoint: str) -> Breaker:
        with self._breakers_lock:
            found = self._breakers.get(endpoint)
            if found is None:
                found = self._breakers[endpoint] = Breaker(endpoint)
            return found

    def attach(self, client: Any) -> Any:
        """Route every HTTP attempt of ``client`` through this mount's checks."""
        breaker = self.breaker(client.meta.endpoint_url)
        client.meta.events.register("before-send", functools.partial(self._before_send, breaker))
        client.meta.events.register("needs-retry", functools.partial(self._after_attempt, breaker))
        return client

    def _before_send(self, breaker: Breaker, **kwargs: Any) -> None:
        ticket = current_ticket()
        if ticket is not None:
            ticket.check()
        breaker.before()
        if ticket is not None:
            self.pacer.acquire(ticket)
            ticket.check()

    @staticmethod
    def _after_attempt(breaker: Breaker, caught_exception: BaseException | None = None, response: Any = None,
                       **kwargs: Any) -> None:
        if caught_exception is None and response is not None:
            breaker.record(True)
        elif isinstance(caught_exception, NO_ANSWER):
            breaker.record(False)

    # -- the async side -----------------------------------------------------------

    def admit(self, lane: str) -> None:
        """Refuse (503) a new operation the lane has no room for, or a new issue while the server is stopping."""
        if self._interrupted and lane == ISSUE:
            raise RetryLater(f"{self._interrupted}; retry shortly")
        worker_lane = self.lanes[lane]
        if worker_lane.pending >= worker_lane.limit:
            raise RetryLater(f"{worker_lane.pending} AWS operations are already running or waiting at "
                             f"{self.mount}; retry shortly")

    async def call(self, lane: str, fn: Callable[..., T], /, *args: Any, deadline: float | None = None,
                   **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (blocking SDK work) on a worker of ``lane``."""
        self.admit(lane)
        worker_lane = self.lanes[lane]
        ticket = Ticket(lane, time.monotonic() + deadline if deadline else None)
        self._tickets.add(ticket)
        fut = asyncio.wrap_future(worker_lane.submit(ticket, functools.partial(fn, *args, **kwargs)))
        self._waits.add(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut in self._cut:
                raise RetryLater(f"{self._interrupted}; retry shortly") from None
            ticket.cancel("its client went away")
            self.pacer.wake()
            raise
        finally:
            self._waits.discard(fut)
            self._cut.discard(fut)
            self._tickets.discard(ticket)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` that ends early (503) when the server is stopping."""
        fut = asyncio.get_running_loop().create_future()
        self._waits.add(fut)
        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = asyncio.get_running_loop().call_later(seconds, wake)
        try:
            await fut
        except asyncio.CancelledError:
            if fut in self._cut:
                raise RetryLater(f"{self._interrupted}; retry shortly") from None
            raise
        finally:
            handle.cancel()
            self._waits.discard(fut)
            self._cut.discard(fut)

    def interrupt(self, reason: str) -> None:
        """End every wait now (503) and refuse new issues; revocation stays possible (a dev server revokes
        its leases as it stops)."""
        self._interrupted = reason
        for ticket in list(self._tickets):
            ticket.cancel(reason)
        for fut in list(self._waits):
            self._cut.add(fut)
            fut.cancel()
        self.pacer.wake()


def translate(exc: BaseException, what: str, lane: str) -> Exception | None:
    """The client-facing error for one of the runtime's own refusals (None: not one of them)."""
    cause = exc
    # botocore hands an exception raised by an event handler back as is.
    if isinstance(cause, BudgetExhausted):
        wait = max(1, math.ceil(cause.wait))
        if lane == ISSUE:
            return Throttled(f"{what}: {cause}; retry after {wait}s", retry_after=wait)
        return RetryLater(f"{what}: {cause}")
    if isinstance(cause, EndpointDown):
        return UpstreamError(f"{what}: {cause}")
    if isinstance(cause, Abandoned):
        if "deadline" in str(cause) or "within" in str(cause):
            return UpstreamError(f"{what}: {cause}")
        return RetryLater(f"{what}: {cause}")
    return None
