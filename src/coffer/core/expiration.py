"""Leases: coffer's promise that every credential it hands out is taken back.

Leases live in storage, never all in memory. Each lease has one key in a
time-ordered index (``due/<ms>/<lease id>``) holding the moment coffer must
next act on it: its expiry, or its next revocation retry. The manager scans
the front of that index, revokes what is due in bounded batches, and sleeps
until the next due key (or until a new lease is due sooner).

Storage layout (inside the barrier):
  sys/expire/id/<lease id>               the lease (JSON)
  sys/expire/due/<ms, 15 digits>/<lease id>
  sys/expire/token/<token hash>/<lease id>
  sys/expire/irrevocable/<lease id>      leases whose revocation keeps failing
  sys/expire/count/...                   live and irrevocable leases by mount and role (core/leasecounts.py),
                                         written in the same batches as the leases
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from coffer.core import leasecounts
from coffer.core.leasecounts import Delta, LeaseCounts
from coffer.core.supervisor import Supervisor
from coffer.core.tokens import ID as TOKEN_ENTRY
from coffer.errors import CofferError, InvalidRequest, PermissionDenied
from coffer.framework.metrics import CounterVec
from coffer.framework.request import RENEW, REVOKE, Request, Response, Secret
from coffer.storage.base import ConditionFailed, Delete, Expect, Op, Put, Storage, prefix_end

if TYPE_CHECKING:
    from coffer.core.router import Router

log = logging.getLogger("coffer.expiration")

ID = "sys/expire/id/"
DUE = "sys/expire/due/"
TOKEN = "sys/expire/token/"
IRREVOCABLE = "sys/expire/irrevocable/"

#: How long a failing revocation is retried (backoff capped at 5 minutes) before the lease is listed
#: as irrevocable; irrevocable leases are still retried hourly until revoked or forced.
RETRY_WINDOW = 24 * 3600.0
IRREVOCABLE_RETRY = 3600.0
BATCH = 500
CONCURRENCY = 32


def due_key(when: float, lease_id: str) -> str:
    return f"{DUE}{int(when * 1000):015d}/{lease_id}"


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter: attempt 1 waits up to ~1 s, then 2, 4 ... up to ``cap`` (the exponent is
    bounded too: past attempt ~1,025 the power of two no longer fits a float)."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2.0 ** min(attempt - 1, 64))


@dataclass(slots=True)
class Lease:
    lease_id: str
    path: str  # the request path that created it
    mount_uuid: str
    secret_type: str
    internal: dict[str, Any]
    issue_time: float
    expire_time: float
    max_expire_time: float
    renewable: bool
    ttl: int
    token_hash: str = ""
    last_renewal: float = 0.0
    due: float = 0.0  # the moment its due key points at
    attempts: int = 0
    first_failure: float = 0.0
    last_error: str = ""
    last_attempt: float = 0.0
    irrevocable: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    #: What the engine named it for the metrics (Secret.metric_role); leases made before that field have "".
    metric_role: str = ""

    @property
    def count_key(self) -> leasecounts.Key:
        return self.mount_uuid, self.metric_role

    def remaining(self, now: float | None = None) -> int:
        return max(0, int(self.expire_time - (now or time.time())))

    def index_ops(self) -> list[Op]:
        ops: list[Op] = [Put(ID + self.lease_id, orjson.dumps(self)),
                         Put(due_key(self.due, self.lease_id), b"")]
        if self.token_hash:
            ops.append(Put(f"{TOKEN}{self.token_hash}/{self.lease_id}", b""))
        return ops

    def removal_ops(self) -> list[Op]:
        ops: list[Op] = [Delete(ID + self.lease_id), Delete(due_key(self.due, self.lease_id)),
                         Delete(IRREVOCABLE + self.lease_id)]
        if self.token_hash:
            ops.append(Delete(f"{TOKEN}{self.token_hash}/{self.lease_id}"))
        return ops


#: What a log record has of its own: an engine's facts may not take these names (``extra=`` would refuse them).
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def short_id(lease_id: str) -> str:
    """A lease id for the log: its path and the first 8 characters of its unique part."""
    head, _, tail = lease_id.rpartition("/")
    return f"{head}/{tail[:8]}" if head else lease_id[:8]


@dataclass(slots=True)
class PrefixResult:
    revoked: int = 0
    #: lease id -> what went wrong (and the error itself, when this process saw it)
    failed: dict[str, str] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)


class ExpirationManager:
    """Registers, renews and revokes leases; renew and revoke go to the issuing engine through the router."""

    def __init__(self, storage: Storage, router: Router, supervisor: Supervisor, *,
                 retry_window: float = RETRY_WINDOW) -> None:
        self.storage = storage
        self.retry_window = retry_window
        self.router = router
        self.supervisor = supervisor
        self._wake = asyncio.Event()
        self._next_due = float("inf")
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._sem = asyncio.Semaphore(CONCURRENCY)
        #: Live and irrevocable leases by (mount uuid, role), kept in storage (see core/leasecounts.py).
        self.counts = LeaseCounts(storage)
        #: Since this process started, by (mount, role): leases revoked on request, revoked because they
        #: expired, and revocation attempts that failed.
        labels = ("mount", "role")
        self.revoked = CounterVec("coffer_leases_revoked_total", "Leases revoked on request (or with their token).",
                                  labels)
        self.expired = CounterVec("coffer_leases_expired_total", "Leases revoked because they expired.", labels)
        self.failed = CounterVec("coffer_lease_revocation_failures_total",
                                 "Revocation attempts that failed (the lease is kept and retried).", labels)

    async def setup(self) -> None:
        """At unseal (or when this node becomes the active one): load the lease counters; a store written
        before they existed is counted once, now, before any request is served."""
        if await self.counts.load():
            return
        total = await self.count()
        if total:
            log.info("counting %d lease(s) once for the lease metrics (a store from before the counters)", total)
        await self.counts.recount(await self._every_lease_key())

    async def _every_lease_key(self) -> list[tuple[leasecounts.Key, bool]]:
        found: list[tuple[leasecounts.Key, bool]] = []
        start, end = ID, prefix_end(ID)
        while leases := await self._scan_leases(start, end):
            found += [(lease.count_key, lease.irrevocable) for lease in leases]
            start = ID + leases[-1].lease_id + "\x00"
        return found

    def mount_label(self, mount_uuid: str) -> str:
        mount = self.router.by_uuid(mount_uuid)
        return mount.info.path if mount is not None else ""

    # -- registration and lookup -------------------------------------------

    async def lease(self, req: Request, resp: Response, token_hash: str) -> Lease:
        """Register the lease of ``resp``, which carries a secret; fills in the response's lease fields.

        A lease made with a token is stored only while that token lives (in the same atomic batch):
        if it was revoked meanwhile, the secret is taken back at once and the request refused.
        """
        secret = resp.secret
        assert secret is not None
        mount = req.mount
        max_ttl = min(m for m in (mount.max_lease_ttl, secret.max_ttl) if m)
        ttl = secret.ttl or mount.default_lease_ttl
        if ttl > max_ttl:
            resp.warnings.append(f"TTL of {ttl}s exceeded the effective max_ttl of {max_ttl}s; TTL value is capped")
            ttl = max_ttl
        now = time.time()
        lease = Lease(
            lease_id=secret.lease_id or f"{req.path.rstrip('/')}/{uuid.uuid4()}", path=req.path,
            mount_uuid=mount.uuid, secret_type=secret.type, internal=secret.internal, issue_time=now,
            expire_time=now + ttl, max_expire_time=now + max_ttl, renewable=secret.renewable, ttl=ttl,
            token_hash=token_hash, due=now + ttl, metric_role=secret.metric_role,
        )
        expect = [Expect(TOKEN_ENTRY + token_hash)] if token_hash else []
        try:
            await self.counts.commit(lease.index_ops() + secret.commit_ops, {lease.count_key: Delta(live=1)},
                                     expect)
        except ConditionFailed:
            error = await self._attempt(lease)
            if error:
                log.error("a secret made for a token revoked meanwhile could not be taken back at once "
                          "(%s); the engine's rollback retries", error)
            raise PermissionDenied() from None
        self._schedule(lease.due)
        resp.lease_id, resp.lease_duration, resp.renewable = lease.lease_id, ttl, lease.renewable
        return lease

    async def _engine(self, lease: Lease, operation: str, data: dict[str, Any] | None = None) -> Response | None:
        """Send ``operation`` (renew or revoke) for ``lease`` to the engine that issued it."""
        mount = self.router.by_uuid(lease.mount_uuid)
        if mount is None:
            if operation == REVOKE:
                log.warning("lease %s belongs to a mount that is gone; forgetting it", lease.lease_id)
                return None
            raise InvalidRequest(f"the mount that issued lease {lease.lease_id} no longer exists")
        req = self.router.request(mount, operation, lease.path, data=data or {}, secret=Secret(
            type=lease.secret_type, internal=lease.internal, ttl=lease.ttl, renewable=lease.renewable,
            lease_id=lease.lease_id))
        return await mount.engine.handle(req)

    async def get(self, lease_id: str) -> Lease | None:
        if not lease_id or "//" in lease_id:
            return None
        raw = await self.storage.get(ID + lease_id)
        return None if raw is None else Lease(**orjson.loads(raw))

    async def require(self, lease_id: str) -> Lease:
        lease = await self.get(lease_id)
        if lease is None:
            raise InvalidRequest("invalid lease")
        return lease

    async def list_prefix(self, prefix: str, after: str = "", limit: int = 0) -> list[str]:
        """The lease ids (and folders) right under ``prefix``: those sorted after ``after``, at most ``limit``."""
        if not after and not limit:
            return await self.storage.list(ID + prefix)
        return await self.storage.list_page(ID + prefix, after, limit)

    async def _save(self, lease: Lease, old_due: float) -> None:
        ops = lease.index_ops()
        if old_due != lease.due:
            ops.append(Delete(due_key(old_due, lease.lease_id)))
        await self.storage.batch(ops)
        self._schedule(lease.due)

    async def renew_lease(self, lease_id: str, increment: int) -> Response:
        """Renew a lease through its engine (which may refuse); answers the renewal's response."""
        lease = await self.require(lease_id)
        if not lease.renewable:
            raise InvalidRequest("lease is not renewable")
        answer = await self._engine(lease, RENEW, {"increment": increment})
        ttl = increment or (answer.secret.ttl if answer and answer.secret else 0) or lease.ttl
        lease, warnings = await self.renew(lease, ttl)
        return Response(data=answer.data if answer else None, warnings=(answer.warnings if answer else []) + warnings,
                        lease_id=lease.lease_id, lease_duration=lease.ttl, renewable=lease.renewable)

    async def renew(self, lease: Lease, ttl: int) -> tuple[Lease, list[str]]:
        """Extend ``lease`` by ``ttl`` seconds, never past its max; answers warnings."""
        now = time.time()
        if not lease.renewable:
            raise InvalidRequest("lease is not renewable")
        if lease.irrevocable or lease.attempts:
            raise InvalidRequest("lease is being revoked and cannot be renewed")
        left = lease.max_expire_time - now
        if left < 1:
            raise InvalidRequest("lease has reached its max TTL and cannot be renewed; request a new secret")
        warnings = []
        if ttl > left:
            ttl = int(left)
            warnings.append(f"TTL of {ttl}s is capped by the lease's max TTL")
        old_due = lease.due
        lease.ttl, lease.expire_time, lease.last_renewal, lease.due = ttl, now + ttl, now, now + ttl
        await self._save(lease, old_due)
        return lease, warnings

    # -- revocation ----------------------------------------------------------

    async def revoke(self, lease_id: str) -> None:
        """Revoke one lease now; on failure it is queued for retries and the error raised."""
        lease = await self.require(lease_id)
        result = PrefixResult()
        await self._revoke_all([lease], result)
        if result.failed:
            # AWS (or whatever the engine reaches) being away is its trouble (5xx), not a bad request.
            error = result.errors.get(lease_id)
            kind = type(error) if isinstance(error, CofferError) and error.status >= 500 else InvalidRequest
            raise kind(f"failed to revoke lease {lease_id}: {result.failed[lease_id]}; "
                       "coffer keeps it and retries in the background")

    async def _failed(self, lease: Lease, error: str) -> None:
        now = time.time()
        old_due = lease.due
        lease.attempts += 1
        lease.last_error = error[:2000]
        lease.last_attempt = now
        lease.first_failure = lease.first_failure or now
        self.failed.inc((self.mount_label(lease.mount_uuid), lease.metric_role))
        deltas: dict[leasecounts.Key, Delta] = {}
        if now - lease.first_failure >= self.retry_window:
            if not lease.irrevocable:
                log.warning("lease %s is irrevocable after %d attempts in %ds: %s", lease.lease_id, lease.attempts,
                            now - lease.first_failure, lease.last_error)
                deltas[lease.count_key] = Delta(irrevocable=1)
            lease.irrevocable = True
            lease.due = now + IRREVOCABLE_RETRY
        else:
            lease.due = now + backoff(lease.attempts)
        ops = lease.index_ops()
        if old_due != lease.due:
            ops.append(Delete(due_key(old_due, lease.lease_id)))
        if lease.irrevocable:
            ops.append(Put(IRREVOCABLE + lease.lease_id, b""))
        await self.counts.commit(ops, deltas)
        self._schedule(lease.due)

    async def _attempt(self, lease: Lease, facts: dict[str, dict[str, Any]] | None = None) -> Exception | None:
        """Call the engine's revoke; answers None on success or the engine's error. What the engine says it
        did (for the log) goes into ``facts`` by lease id."""
        async with self._sem:
            try:
                answer = await self._engine(lease, REVOKE)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine's failure, kept with the lease
                return exc
            if facts is not None and answer is not None and answer.data:
                facts[lease.lease_id] = answer.data
            return None

    def _removal(self, leases: list[Lease]) -> tuple[list[Op], dict[leasecounts.Key, Delta]]:
        """The batch that forgets ``leases``, and what it does to the counters."""
        ops: list[Op] = []
        deltas: dict[leasecounts.Key, Delta] = {}
        for lease in leases:
            ops += lease.removal_ops()
            leasecounts.add(deltas, lease.count_key, live=-1, irrevocable=-1 if lease.irrevocable else 0)
        return ops, deltas

    def _gone(self, lease: Lease, expired: bool, facts: dict[str, Any] | None, forced: bool = False) -> None:
        """Count, and log (one line each), a lease that was revoked."""
        mount, role = self.mount_label(lease.mount_uuid), lease.metric_role
        (self.expired if expired else self.revoked).inc((mount, role))
        what = "expired and was revoked" if expired else "was forgotten without revoking" if forced else "revoked"
        details = "".join(f" {k}={v}" for k, v in (facts or {}).items() if isinstance(v, str | int))
        extra: dict[str, Any] = {"lease": short_id(lease.lease_id), "mount": mount, "role": role,
                                 "event": "lease_expired" if expired else "lease_revoked"}
        for key, value in (facts or {}).items():
            if isinstance(value, str | int) and key not in _RECORD_FIELDS:
                extra[key] = value
        log.info("lease %s %s (mount %s%s)%s", short_id(lease.lease_id), what, mount or "(gone)",
                 f", role {role}" if role else "", details, extra=extra)

    async def _revoke_all(self, leases: list[Lease], result: PrefixResult, expired: bool = False) -> None:
        """Revoke ``leases`` concurrently (bounded); forget the revoked ones in one batch.

        A lease already being revoked elsewhere is not revoked twice: its
        outcome is awaited and read back from storage.
        """
        mine: list[Lease] = []
        others: list[tuple[Lease, asyncio.Future[None]]] = []
        loop = asyncio.get_running_loop()
        for lease in leases:
            running = self._inflight.get(lease.lease_id)
            if running is not None:
                others.append((lease, running))
            else:
                self._inflight[lease.lease_id] = loop.create_future()
                mine.append(lease)
        try:
            facts: dict[str, dict[str, Any]] = {}
            errors = await asyncio.gather(*(self._attempt(lease, facts) for lease in mine))
            done = [lease for lease, error in zip(mine, errors, strict=True) if not error]
            now = time.time()
            for start in range(0, len(done), BATCH):
                chunk = done[start:start + BATCH]
                await self.counts.commit(*self._removal(chunk))
                for lease in chunk:
                    self._gone(lease, expired and lease.expire_time <= now + 1, facts.get(lease.lease_id))
            result.revoked += len(done)
            for lease, error in zip(mine, errors, strict=True):
                if error:
                    text = str(error) or type(error).__name__
                    await self._failed(lease, text)
                    result.failed[lease.lease_id] = text
                    result.errors[lease.lease_id] = error
        finally:
            for lease in mine:
                fut = self._inflight.pop(lease.lease_id)
                fut.set_result(None)
        for lease, running in others:
            await asyncio.shield(running)
            still = await self.get(lease.lease_id)
            if still is None:
                result.revoked += 1
            else:
                result.failed[lease.lease_id] = still.last_error or "revocation failed"

    async def _scan_leases(self, start: str, end: str) -> list[Lease]:
        rows = await self.storage.scan(start, end, BATCH)
        return [Lease(**orjson.loads(v)) for _, v in rows]

    async def revoke_prefix(self, prefix: str, progress: Callable[[PrefixResult], None] | None = None
                            ) -> PrefixResult:
        """Revoke every lease whose id starts with ``prefix``; failures are queued, not fatal."""
        result = PrefixResult()
        start, end = ID + prefix, prefix_end(ID + prefix)
        while True:
            leases = await self._scan_leases(start, end)
            if not leases:
                return result
            await self._revoke_all(leases, result)
            start = ID + leases[-1].lease_id + "\x00"
            if progress:
                progress(result)

    async def move_prefix(self, old: str, new: str) -> int:
        """Re-key every lease under ``old`` to ``new`` (a remount); answers how many moved."""
        moved = 0
        start, end = ID + old, prefix_end(ID + old)
        while leases := await self._scan_leases(start, end):
            ops: list[Op] = []
            for lease in leases:
                ops += lease.removal_ops()
                lease.lease_id = new + lease.lease_id[len(old):]
                if lease.path.startswith(old):
                    lease.path = new + lease.path[len(old):]
                ops += lease.index_ops()
                if lease.irrevocable:
                    ops.append(Put(IRREVOCABLE + lease.lease_id, b""))
            await self.storage.batch(ops)
            moved += len(leases)
        return moved

    async def revoke_force(self, prefix: str) -> int:
        """Forget every lease under ``prefix`` without calling the engine."""
        count = 0
        start, end = ID + prefix, prefix_end(ID + prefix)
        while leases := await self._scan_leases(start, end):
            await self.counts.commit(*self._removal(leases))
            for lease in leases:
                self._gone(lease, False, None, forced=True)
            count += len(leases)
        return count

    async def revoke_for_token(self, token_hash: str) -> PrefixResult:
        result = PrefixResult()
        prefix = f"{TOKEN}{token_hash}/"
        start, end = prefix, prefix_end(prefix)
        while True:
            rows = await self.storage.scan(start, end, BATCH)
            if not rows:
                return result
            leases = []
            for key, _ in rows:
                lease = await self.get(key[len(prefix):])
                if lease is None:
                    await self.storage.delete(key)
                else:
                    leases.append(lease)
            await self._revoke_all(leases, result)
            start = rows[-1][0] + "\x00"

    # -- listings --------------------------------------------------------------

    async def count(self, prefix: str = "") -> int:
        return await self.storage.count(ID + prefix, prefix_end(ID + prefix))

    async def leases(self, prefix: str = "", limit: int = 1000) -> list[Lease]:
        """The leases under ``prefix``, at most ``limit``, by id."""
        found: list[Lease] = []
        start, end = ID + prefix, prefix_end(ID + prefix)
        while len(found) < limit and (batch := await self._scan_leases(start, end)):
            found += batch[:limit - len(found)]
            start = ID + batch[-1].lease_id + "\x00"
        return found

    async def irrevocable(self, limit: int = 1000) -> list[Lease]:
        rows = await self.storage.scan(IRREVOCABLE, prefix_end(IRREVOCABLE), limit)
        found = []
        for key, _ in rows:
            lease = await self.get(key[len(IRREVOCABLE):])
            if lease is not None:
                found.append(lease)
        return found

    async def tidy(self) -> int:
        """Drop index keys whose lease is gone; answers how many."""
        removed = 0
        for prefix in (DUE, TOKEN, IRREVOCABLE):
            start, end = prefix, prefix_end(prefix)
            while rows := await self.storage.scan(start, end, BATCH):
                stale: list[Op] = []
                for key, _ in rows:
                    rest = key[len(prefix):]
                    lease_id = rest.split("/", 1)[1] if prefix != IRREVOCABLE else rest
                    if await self.get(lease_id) is None:
                        stale.append(Delete(key))
                if stale:
                    await self.storage.batch(stale)
                    removed += len(stale)
                start = rows[-1][0] + "\x00"
        return removed

    # -- the manager loop --------------------------------------------------------

    def _schedule(self, when: float) -> None:
        if when < self._next_due:
            self._next_due = when
            self._wake.set()

    async def run(self) -> None:
        """Revoke due leases until cancelled."""
        while True:
            now = time.time()
            rows = await self.storage.scan(DUE, f"{DUE}{int(now * 1000):015d}0", BATCH)
            if rows:
                await self._sweep(rows)
                continue
            head = await self.storage.scan(DUE, prefix_end(DUE), 1)
            self._next_due = float("inf")
            if head:
                self._next_due = int(head[0][0][len(DUE):len(DUE) + 15]) / 1000
            self._wake.clear()
            delay = min(max(self._next_due - time.time(), 0.0), 60.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _sweep(self, rows: list[tuple[str, bytes]]) -> None:
        leases: list[Lease] = []
        stale: list[Op] = []
        for n, (key, _) in enumerate(rows, 1):
            lease_id = key[len(DUE) + 16:]
            lease = await self.get(lease_id)
            if n % 100 == 0:
                await asyncio.sleep(0)  # let requests in between: a batch is up to 500 reads
            if lease is None or due_key(lease.due, lease_id) != key:
                stale.append(Delete(key))
            else:
                leases.append(lease)
        if stale:
            await self.storage.batch(stale)
        result = PrefixResult()
        await self._revoke_all(leases, result, expired=True)
        if result.failed:
            log.warning("%d of %d due leases failed to revoke; they will be retried", len(result.failed),
                        len(leases))
