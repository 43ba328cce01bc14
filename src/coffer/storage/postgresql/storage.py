"""The backend: keys and values in one table, reads (with a cache), fenced and ordered writes, snapshots."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from coffer.storage.base import (
    Backend,
    ConditionFailed,
    Delete,
    Expect,
    LockLost,
    Op,
    Put,
    check_key,
    check_value,
)
from coffer.storage.postgresql.ha import LOCK_KEY, PostgresqlHALock
from coffer.storage.postgresql.options import (
    DEFAULT_HA_TABLE,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_PARALLEL,
    DEFAULT_TABLE,
    HATimings,
    _parse_table,
    _scrub,
    mask_url,
    storage_arguments,
)
from coffer.storage.postgresql.ordering import _KeyQueues
from coffer.storage.postgresql.schema import prepare_tables
from coffer.storage.postgresql.statements import _COUNT, _LOCK_KEYS, _LOCK_TABLE, _SCAN, _range, _signed32, _Sql

#: Read cache bounds: entries, the largest value kept, and all values together.
READ_CACHE_ENTRIES = 16384
READ_CACHE_MAX_VALUE = 64 * 1024
READ_CACHE_BYTES = 32 * 1024 * 1024
#: A write of more keys than this takes one table-wide advisory lock instead of one per key
#: (PostgreSQL's shared lock table is small: ~64 locks per connection).
MAX_KEY_LOCKS = 32


class PostgresqlStorage(Backend):
    """Keys and values in one PostgreSQL table; optionally an HA lock that fences every write.

    ``ha_timings`` is for tests only (the configuration never passes it): shorter TTLs
    make fail-over scenarios quick to exercise.
    """

    def __init__(
        self,
        connection_url: str,
        *,
        table: str = DEFAULT_TABLE,
        ha_enabled: bool = False,
        ha_table: str = DEFAULT_HA_TABLE,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        max_idle_connections: int = DEFAULT_MAX_IDLE,
        ha_timings: HATimings | None = None,
        connect_timeout: int = 10,
    ) -> None:
        self._url = connection_url
        self.display_url = mask_url(connection_url)
        try:
            params = conninfo_to_dict(connection_url)
        except psycopg.Error as exc:
            raise ValueError(
                f'storage "postgresql": connection_url {self.display_url!r} is not a valid PostgreSQL '
                f"connection string ({_scrub(mask_url(str(exc)), [connection_url])}); "
                "use e.g. postgresql://user:password@host:5432/database"
            ) from None
        self._secrets = [str(params["password"])] if params.get("password") else []
        self._connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        self.table = _parse_table("table", table)
        self.ha_table = _parse_table("ha_table", ha_table)
        self.ha_enabled = ha_enabled
        self.max_parallel = max(1, max_parallel)
        self.max_idle_connections = min(max(0, max_idle_connections), self.max_parallel)
        self.timings = ha_timings or HATimings()
        self._sql = _Sql(sql.Identifier(*self.table), sql.Identifier(*self.ha_table))
        table_oid = prepare_tables(self)
        self._lock_ns = {"table": table_oid, "ns": _signed32(table_oid)}
        self._pool: AsyncConnectionPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._queues = _KeyQueues()
        self._locks: list[PostgresqlHALock] = []
        self._holder: PostgresqlHALock | None = None
        # Closed while the lock is being renewed: every write share-locks the lock row, and a
        # stream of overlapping writes would keep the renewal (which must update it) waiting.
        self._gate: asyncio.Future[None] | None = None
        self._renewing = 0
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        self._cache_bytes = 0
        self._cache_gen = 0  # moves on with every write that ends and every drop of the cache
        self.cache_hits = 0

    @classmethod
    def from_options(cls, options: Mapping[str, str], environ: Mapping[str, str] | None = None) -> PostgresqlStorage:
        """The backend a ``storage "postgresql" { ... }`` block describes (Vault's option names)."""
        url, kwargs = storage_arguments(options, os.environ if environ is None else environ)
        return cls(url, **kwargs)

    # -- connections ---------------------------------------------------------------

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        # A transaction left idle (its node frozen) must not hold the lock row past a takeover.
        timeout_ms = max(100, int(self.timings.ttl * 1000))
        await conn.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")

    async def _get_pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and self._pool_loop is loop:
            return pool
        if self._closed:
            raise RuntimeError(f"PostgreSQL storage {self.display_url} is closed")
        if pool is not None:
            # The pool's tasks and connections belong to the loop that opened it (and a loop
            # must close the storage before it ends: psycopg's pool workers outlive a cancel).
            raise RuntimeError("this PostgreSQL storage is bound to another event loop; use one loop per storage")
        pool = AsyncConnectionPool(
            self._url,
            min_size=self.max_idle_connections,
            max_size=self.max_parallel,
            max_idle=60.0,
            timeout=15.0,
            open=False,
            name="coffer-postgresql",
            kwargs={"autocommit": True, **self._connect_kwargs},
            configure=self._configure,
        )
        await pool.open()
        if self._pool is not None and self._pool_loop is loop:  # another task opened one meanwhile
            await pool.close()
            return self._pool
        self._pool, self._pool_loop = pool, loop
        return pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        pool = await self._get_pool()
        async with pool.connection() as conn:
            yield conn

    # -- read cache ------------------------------------------------------------------

    def _may_cache(self) -> bool:
        """True while this storage is the only writer (no HA, or the lock is held right now)."""
        if not self.ha_enabled:
            return True
        holder = self._holder
        return holder is not None and holder._holding()

    def drop_cache(self) -> None:
        """Forget every cached value."""
        self._cache.clear()
        self._cache_bytes = 0
        self._cache_gen += 1

    def _remember(self, key: str, value: bytes | None) -> None:
        size = 0 if value is None else len(value)
        if size > READ_CACHE_MAX_VALUE:
            return
        cache = self._cache
        old = cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old)
        cache[key] = value
        self._cache_bytes += size
        while len(cache) > READ_CACHE_ENTRIES or self._cache_bytes > READ_CACHE_BYTES:
            _, dropped = cache.popitem(last=False)
            if dropped is not None:
                self._cache_bytes -= len(dropped)

    def _forget(self, keys: Iterable[str]) -> None:
        cache = self._cache
        for key in keys:
            old = cache.pop(key, None)
            if old is not None:
                self._cache_bytes -= len(old)
        self._cache_gen += 1

    # -- reads -----------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None (from the cache while this storage is the only writer)."""
        if self._may_cache():
            cache = self._cache
            if key in cache:
                cache.move_to_end(key)
                self.cache_hits += 1
                return cache[key]
            gen = self._cache_gen
            value = await self._fetch(key)
            if gen == self._cache_gen and self._may_cache():  # no write ended, no drop, meanwhile
                self._remember(key, value)
            return value
        return await self._fetch(key)

    async def _fetch(self, key: str) -> bytes | None:
        if "\x00" in key:
            return None
        async with self._connection() as conn:
            cur = await conn.execute(self._sql.get, (key,), binary=True)
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def list(self, prefix: str) -> builtins.list[str]:
        """Immediate children of ``prefix``, sorted (one skip-scan query in the database)."""
        if "\x00" in prefix:
            return []
        start = len(prefix)
        async with self._connection() as conn:
            cur = await conn.execute(self._sql.list, {"prefix": prefix, "end": prefix + "\U0010ffff", "n": start})
            rows = await cur.fetchall()
        out: list[str] = []
        for (key,) in rows:
            cut = key.find("/", start)
            if cut >= 0:
                out.append(key[start : cut + 1])
            elif len(key) > start:
                out.append(key[start:])
        return out

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        """Entries with ``start <= key < end`` in key order, at most ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("scan limit must not be negative")
        if limit == 0 or start >= end:
            return []
        query, bounds = _range(_SCAN, self._sql.kv, start, end)
        async with self._connection() as conn:
            cur = await conn.execute(query, (*bounds, limit), binary=True)
            rows = await cur.fetchall()
        return [(key, bytes(value)) for key, value in rows]

    async def count(self, start: str, end: str) -> int:
        """How many keys lie in ``start <= key < end`` (one query)."""
        if start >= end:
            return 0
        query, bounds = _range(_COUNT, self._sql.kv, start, end)
        async with self._connection() as conn:
            cur = await conn.execute(query, bounds)
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- writes ----------------------------------------------------------------------

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` at ``key`` (committed before returning)."""
        await self._write([(_writable_key(key), check_value(value))], ())

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        await self._write([(check_key(key), None)], ())

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        """Apply ``ops`` in one transaction (if ``expect`` holds); a bad op is rejected before anything is sent."""
        checked: list[tuple[str, bytes | None]] = []
        for op in ops:
            if isinstance(op, Put):
                checked.append((_writable_key(op.key), check_value(op.value)))
            elif isinstance(op, Delete):
                checked.append((check_key(op.key), None))
            else:
                raise TypeError(f"unknown storage op {op!r}")
        conditions = list(expect)
        for cond in conditions:
            check_key(cond.key)
        if not checked and not conditions and not self.ha_enabled:
            return
        await self._write(checked, conditions)

    def _fence(self) -> PostgresqlHALock | None:
        """The lock every write must be fenced by (None without HA); LockLost when it is not held."""
        if not self.ha_enabled:
            return None
        holder = self._holder
        if holder is None:
            raise LockLost("it never acquired the lock: a standby does not write")
        if not holder._holding():
            raise LockLost(holder.lost_reason or "the lock is not held")
        return holder

    async def _write(self, ops: Sequence[tuple[str, bytes | None]], expect: Sequence[Expect]) -> None:
        fence = self._fence()
        keys = frozenset([key for key, _ in ops] + [cond.key for cond in expect])
        turn = self._queues.enter(keys)
        try:
            await self._queues.wait(turn)
            if fence is not None:
                while (gate := self._gate) is not None:
                    await asyncio.shield(gate)
                fence = self._fence()  # the waits may have been long
            async with self._connection() as conn, conn.transaction():
                if fence is not None:
                    cur = await conn.execute(self._sql.fence, (LOCK_KEY, fence.identity))
                    if await cur.fetchone() is None:
                        error = LockLost("the lock expired or another node took it over")
                        fence._lose(error.reason)
                        raise error
                db_keys = [key for key in keys if "\x00" not in key]
                if len(db_keys) > MAX_KEY_LOCKS:
                    await conn.execute(_LOCK_TABLE, self._lock_ns)
                elif db_keys:
                    await conn.execute(_LOCK_KEYS, {**self._lock_ns, "keys": sorted(db_keys)})
                if expect:
                    await self._check(conn, expect)
                await self._apply(conn, ops)
        finally:
            self._queues.leave(turn)
            self._forget(keys)

    async def _check(self, conn: psycopg.AsyncConnection, expect: Sequence[Expect]) -> None:
        """Raise ConditionFailed unless every condition holds (keys are locked: nothing changes meanwhile)."""
        keys = sorted({cond.key for cond in expect if "\x00" not in cond.key})
        current: dict[str, bytes] = {}
        if keys:
            cur = await conn.execute(self._sql.values_of, (keys,), binary=True)
            current = {key: bytes(value) for key, value in await cur.fetchall()}
        for cond in expect:
            if not cond.met_by(current.get(cond.key)):
                raise ConditionFailed(cond.key)

    async def _apply(self, conn: psycopg.AsyncConnection, ops: Sequence[tuple[str, bytes | None]]) -> None:
        """Apply ``ops`` in order, each run of consecutive puts (or deletes) as one statement."""
        i, n = 0, len(ops)
        while i < n:
            is_put = ops[i][1] is not None
            j = i
            while j < n and (ops[j][1] is not None) == is_put:
                j += 1
            run = ops[i:j]
            i = j
            if is_put:
                latest = dict(run)  # within a run, a later put of a key wins, as it would one by one
                if len(latest) == 1:
                    await conn.execute(self._sql.put, next(iter(latest.items())))
                else:
                    await conn.execute(self._sql.put_many, (list(latest), list(latest.values())))
            else:
                keys = sorted({key for key, _ in run if "\x00" not in key})
                if len(keys) == 1:
                    await conn.execute(self._sql.delete, (keys[0],))
                elif keys:
                    await conn.execute(self._sql.delete_many, (keys,))

    # -- snapshots ---------------------------------------------------------------------

    async def snapshot(self, batch_size: int = 1000) -> AsyncIterator[builtins.list[tuple[str, bytes]]]:
        """Every entry in key order, through one REPEATABLE READ, READ ONLY transaction (one snapshot of the
        database) and a server-side cursor, so that neither a write made meanwhile nor the table's size shows."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # A slow reader of the snapshot leaves this transaction idle between batches; it holds no lock
            # a takeover needs, so the session's short idle timeout (see _configure) does not apply to it.
            await conn.execute("SELECT set_config('idle_in_transaction_session_timeout', '600000', true)")
            cursor = conn.cursor("coffer_snapshot", binary=True)
            try:
                await cursor.execute(sql.SQL("SELECT key, value FROM {} ORDER BY key").format(self._sql.kv))
                while rows := await cursor.fetchmany(max(1, batch_size)):
                    yield [(key, bytes(value)) for key, value in rows]
            finally:
                await cursor.close()

    async def replace_all(self, records: Iterable[tuple[str, bytes]]) -> int:
        """Empty the table and COPY ``records`` in, in one transaction (fenced by the HA lock like any
        write, and holding the table-wide write lock so no other node's write interleaves)."""
        fence = self._fence()
        count = 0
        try:
            async with self._connection() as conn, conn.transaction():
                if fence is not None:
                    cur = await conn.execute(self._sql.fence, (LOCK_KEY, fence.identity))
                    if await cur.fetchone() is None:
                        error = LockLost("the lock expired or another node took it over")
                        fence._lose(error.reason)
                        raise error
                await conn.execute(_LOCK_TABLE, self._lock_ns)
                await conn.execute(sql.SQL("DELETE FROM {}").format(self._sql.kv))
                copy_in = sql.SQL("COPY {} (key, value) FROM STDIN (FORMAT BINARY)").format(self._sql.kv)
                async with conn.cursor().copy(copy_in) as copy:
                    copy.set_types(["text", "bytea"])
                    for key, value in records:
                        await copy.write_row((_writable_key(key), check_value(value)))
                        count += 1
        finally:
            self.drop_cache()
        return count

    # -- HA ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writes_held_back(self) -> Iterator[None]:
        """While renewing: new writes wait before taking their share lock on the lock row."""
        if self._gate is None:
            self._gate = asyncio.get_running_loop().create_future()
        self._renewing += 1
        try:
            yield
        finally:
            self._renewing -= 1
            gate = self._gate
            if self._renewing == 0 and gate is not None:
                self._gate = None
                gate.set_result(None)

    def ha_lock(self, identity: str, value: str) -> PostgresqlHALock | None:
        """A handle on the HA lock for ``identity`` (unique per process), or None without HA."""
        if not self.ha_enabled:
            return None
        if not isinstance(identity, str) or not identity or "\x00" in identity:
            raise ValueError("an HA lock identity must be a non-empty string")
        lock = PostgresqlHALock(self, identity, "" if value is None else str(value).replace("\x00", ""))
        self._locks.append(lock)
        return lock

    def _took(self, lock: PostgresqlHALock) -> None:
        self.drop_cache()  # nothing cached before holding may be trusted
        self._holder = lock

    def _gave_up(self, lock: PostgresqlHALock) -> None:
        if self._holder is lock:
            self.drop_cache()

    # -- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        """Release a held lock (so a standby takes over at once), then close the connections."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            for lock in self._locks:
                if lock.held:
                    with contextlib.suppress(Exception):
                        await lock.release()
        for lock in self._locks:
            lock._stop_renewing()
        self._closed = True
        self.drop_cache()
        pool = self._pool
        if pool is None:
            return
        if self._pool_loop is not loop:
            raise RuntimeError("close the PostgreSQL storage on the event loop that uses it")
        self._pool = self._pool_loop = None
        await pool.close()


def _writable_key(key: object) -> str:
    checked = check_key(key)
    if "\x00" in checked:
        raise ValueError("PostgreSQL storage keys cannot contain NUL characters")
    checked.encode("utf-8")  # a lone surrogate has no UTF-8 form: UnicodeEncodeError before anything is sent
    return checked
