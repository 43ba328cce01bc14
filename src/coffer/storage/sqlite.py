"""A durable single-file storage backend on SQLite in WAL mode.

Reads (get, list, scan) are short indexed lookups, cheaper than a hop to
another thread, so they run on the event loop with their own connection.
Writes fsync, so they run on one dedicated writer thread with a second
connection; WAL lets the reader see every committed write without blocking.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import mmap
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from coffer.storage.base import (
    AFTER_SLASH,
    Backend,
    ConditionFailed,
    Delete,
    Expect,
    Op,
    Put,
    check_key,
    check_value,
    prefix_end,
)

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
_GET = "SELECT value FROM kv WHERE key = ?"
_PUT = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)"
_DELETE = "DELETE FROM kv WHERE key = ?"
_FIRST_FROM = "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1"
_FIRST_AFTER = "SELECT key FROM kv WHERE key > ? AND key < ? ORDER BY key LIMIT 1"
_SCAN = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"
_SCAN_ALL_FROM = "SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?"
_SCAN_ALL_AFTER = "SELECT key, value FROM kv WHERE key > ? ORDER BY key LIMIT ?"


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _settle_all(futures: Sequence[asyncio.Future[None]], outcomes: Sequence[BaseException | None]) -> None:
    """On the event loop: answer every writer of a group (one wake-up of the loop per group)."""
    for done, error in zip(futures, outcomes, strict=True):
        _settle(done, error)


#: One queued write: its ops and the conditions they are applied under.
_Batch = tuple[Sequence[Op], Sequence[Expect]]


def _check(conn: sqlite3.Connection, expect: Sequence[Expect]) -> None:
    """Raise ConditionFailed unless every condition holds (inside the writer's transaction)."""
    for cond in expect:
        rows = conn.execute(_GET, (check_key(cond.key),)).fetchall()
        if not cond.met_by(rows[0][0] if rows else None):
            raise ConditionFailed(cond.key)


def _apply(conn: sqlite3.Connection, op: Op) -> None:
    if isinstance(op, Put):
        conn.execute(_PUT, (check_key(op.key), check_value(op.value)))
    elif isinstance(op, Delete):
        conn.execute(_DELETE, (check_key(op.key),))
    else:
        raise TypeError(f"unknown storage op {op!r}")


#: Values kept by the read cache (the oldest goes first), and the largest value it keeps.
READ_CACHE_ENTRIES = 4096
READ_CACHE_MAX_VALUE = 16 * 1024
#: The first copy of the WAL-index header (``WalIndexHdr``) at the start of the ``-shm`` file.
#: SQLite changes it with every commit, by any connection of any process (and on a WAL reset).
_WAL_INDEX_HEADER = 48


def _map_wal_index(path: str) -> tuple[mmap.mmap, int] | None:
    """The ``-shm`` file mapped read-only and its descriptor, or None (then nothing is cached).

    The descriptor stays open as long as the mapping (Python's mmap keeps a duplicate of it): closing any
    descriptor of a file drops every POSIX lock this process holds on it, SQLite's included. Without its
    lock on the -shm file, the next process to open the database (a backup, the sqlite3 shell) believes
    it is alone, resets the file, and SQLite in this process dies of SIGBUS.
    """
    try:
        fd = os.open(path + "-shm", os.O_RDONLY)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < _WAL_INDEX_HEADER:
            os.close(fd)
            return None
        mapping = mmap.mmap(fd, _WAL_INDEX_HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError):
        os.close(fd)
        return None
    return mapping, fd


#: Multi-row statements take runs of up to this many ops (a power of two: see _apply_runs).
_MAX_RUN = 256


def _put_many(rows: int) -> str:
    return "INSERT OR REPLACE INTO kv (key, value) VALUES " + ", ".join(["(?, ?)"] * rows)


def _delete_many(rows: int) -> str:
    return "DELETE FROM kv WHERE key IN (" + ", ".join(["?"] * rows) + ")"


def _apply_runs(conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
    """Apply ``ops`` in order, each run of consecutive puts (or deletes) in a few multi-row statements.

    The same effect as one statement per op (within a run, a later put of a key wins, as it
    would one by one), but the writer goes through the GIL once per statement, not per op.
    Runs are cut into power-of-two sizes so that only a handful of statement texts exist
    (sqlite3 caches the prepared statements).
    """
    i, n = 0, len(ops)
    while i < n:
        kind = type(ops[i])
        j = i
        while j < n and type(ops[j]) is kind and j - i < _MAX_RUN:
            j += 1
        size = 1 << ((j - i).bit_length() - 1)  # the largest power of two <= the run
        run = ops[i : i + size]
        if kind is Put:
            puts = cast(Sequence[Put], run)
            if size == 1:
                conn.execute(_PUT, (check_key(puts[0].key), check_value(puts[0].value)))
            else:
                conn.execute(_put_many(size), [x for op in puts for x in (check_key(op.key), check_value(op.value))])
        elif kind is Delete:
            if size == 1:
                conn.execute(_DELETE, (check_key(run[0].key),))
            else:
                conn.execute(_delete_many(size), [check_key(op.key) for op in run])
        else:
            _apply(conn, ops[i])  # raises TypeError for what is not an op
            size = 1
        i += size


def _connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _create_private(path: str) -> None:
    """Make the database file (and a missing parent folder) readable by this user only, before SQLite opens it.

    Values are encrypted, but keys show every secret path, lease id and token accessor. SQLite creates
    the -wal and -shm files with the database file's permissions.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):  # left by an older version or another tool
        if os.path.exists(path + suffix):
            os.chmod(path + suffix, 0o600)


class SqliteStorage(Backend):
    """Keys and values in one table of one SQLite file.

    ``path`` must name a file: ``":memory:"`` and ``""`` are refused, since
    the reader and writer connections would each get a private database.
    The parent directory is created (0700) when missing; the files are private (0600).
    """

    def __init__(self, path: str) -> None:
        if path in ("", ":memory:"):
            raise ValueError(f"SqliteStorage needs a file path, not {path!r}")
        self.path = path
        _create_private(path)
        conns: list[sqlite3.Connection] = []
        try:
            writer = _connect(path)
            conns.append(writer)
            mode = writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ValueError(f"could not switch SQLite database {path!r} to WAL mode (got {mode!r})")
            writer.execute(_SCHEMA)
            reader = _connect(path)
            conns.append(reader)
            reader.execute("SELECT 1 FROM kv LIMIT 1").fetchall()
        except BaseException as exc:
            for conn in conns:
                conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise ValueError(f"cannot open SQLite database {path!r}: {exc}") from exc
            raise
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coffer-sqlite-writer")
        self._queue: builtins.list[tuple[_Batch, asyncio.Future[None]]] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        self._closed = False
        self._writer = writer
        self._reader = reader
        # Read cache. Under load a SQLite read costs far more than its ~4 us: the sqlite3
        # module releases the GIL for every statement, and getting it back means waiting
        # for the HTTP server's threads. Reads of values seen since the last commit are
        # answered from memory instead; the WAL-index header (shared memory, read without
        # releasing the GIL) tells when any connection - ours or another process's - has
        # committed since, and then the whole cache is dropped. So every read still sees
        # every commit, exactly as an uncached read would.
        self._cache: dict[str, bytes | None] = {}
        self._header = b""
        mapped = _map_wal_index(path)
        self._wal_index: mmap.mmap | None = mapped[0] if mapped else None
        self._wal_index_fd = mapped[1] if mapped else -1

    # -- reads: on the event loop --------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        wal_index = self._wal_index
        if wal_index is None:
            rows = self._reader.execute(_GET, (key,)).fetchall()
            return rows[0][0] if rows else None
        header = wal_index[:_WAL_INDEX_HEADER]
        cache = self._cache
        if header != self._header:  # something was committed since these values were read
            cache.clear()
            self._header = header
        elif key in cache:
            return cache[key]
        rows = self._reader.execute(_GET, (key,)).fetchall()
        value = rows[0][0] if rows else None
        if value is None or len(value) <= READ_CACHE_MAX_VALUE:
            if len(cache) >= READ_CACHE_ENTRIES:
                del cache[next(iter(cache))]
            cache[key] = value
        return value

    async def list(self, prefix: str) -> list[str]:
        """Immediate children of ``prefix`` by skip scan.

        Each step fetches the first key past a cursor. A leaf is emitted and
        the cursor moves just past it; a folder ``seg/`` is emitted and the
        cursor jumps to ``prefix + seg + "0"``, past everything inside it. The
        cost is one indexed query per child, however many keys a folder holds.
        A key equal to ``prefix`` itself is not a child and is left out.
        """
        end = prefix_end(prefix)
        start = len(prefix)
        out: list[str] = []
        query, cursor = _FIRST_FROM, prefix
        while True:
            rows = self._reader.execute(query, (cursor, end)).fetchall()
            if not rows:
                return out
            key: str = rows[0][0]
            cut = key.find("/", start)
            if cut < 0:
                if len(key) > start:
                    out.append(key[start:])
                query, cursor = _FIRST_AFTER, key
            else:
                out.append(key[start : cut + 1])
                query, cursor = _FIRST_FROM, key[:cut] + AFTER_SLASH

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        """Entries with ``start <= key < end`` in key order, at most ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("scan limit must not be negative")
        if limit == 0 or start >= end:
            return []
        rows = self._reader.execute(_SCAN, (start, end, -1 if limit is None else limit)).fetchall()
        return [(key, value) for key, value in rows]

    # -- writes: on the writer thread ------------------------------------------

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` at ``key`` and fsync before returning."""
        await self._write([Put(key, value)])

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present, durably."""
        await self._write([Delete(key)])

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        """Apply ``ops`` in one transaction (if ``expect`` holds); any failure rolls all of it back."""
        await self._write(list(ops), tuple(expect))

    async def _write(self, ops: Sequence[Op], expect: Sequence[Expect] = ()) -> None:
        """Queue ``ops`` for the writer thread and wait until they are committed.

        Group commit: the writer takes every batch queued so far and commits
        them in one transaction (one fsync), each inside its own savepoint, so
        a failing batch rolls back alone and the others still commit.
        """
        if self._closed:
            raise RuntimeError(f"SQLite storage {self.path!r} is closed")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._queue_lock:
            self._queue.append(((ops, expect), done))
            start = not self._draining
            self._draining = True
        if start:
            loop.run_in_executor(self._writer_pool, self._drain)
        await done

    def _drain(self) -> None:
        """Writer thread: commit queued batches, group by group, until none is left."""
        while True:
            with self._queue_lock:
                group, self._queue = self._queue, []
                if not group:
                    self._draining = False
                    return
            outcomes = self._apply_group([batch for batch, _ in group])
            # Wake each waiter on its own loop (one wake-up per loop and group): writers queued
            # from a later loop must not be answered on an earlier, closed one.
            by_loop: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
            for (_, done), error in zip(group, outcomes, strict=True):
                futures, errors = by_loop.setdefault(done.get_loop(), ([], []))
                futures.append(done)
                errors.append(error)
            for loop, (futures, errors) in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle_all, futures, errors)

    def _apply_group(self, batches: Sequence[_Batch]) -> builtins.list[BaseException | None]:
        """One transaction for the whole group; answers each batch's error (or None).

        Batches almost never fail, so they are first applied without savepoints
        (each statement costs the writer a round trip through the GIL). If any
        op fails, that transaction is rolled back and the group is applied again
        with a savepoint per batch, so that only the failing batches are lost.
        A batch whose conditions do not hold counts as failing.
        """
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            if any(expect for _, expect in batches):
                for ops, expect in batches:  # each batch's conditions see the batches before it
                    _check(conn, expect)
                    _apply_runs(conn, ops)
            else:
                _apply_runs(conn, [op for ops, _ in batches for op in ops])
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return self._apply_isolated(batches)
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:  # SQLite may already have rolled back
                conn.execute("ROLLBACK")
            return [exc] * len(batches)
        return [None] * len(batches)

    def _apply_isolated(self, batches: Sequence[_Batch]) -> builtins.list[BaseException | None]:
        """One transaction, a savepoint per batch; answers each batch's error (or None)."""
        conn = self._writer
        outcomes: builtins.list[BaseException | None] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for ops, expect in batches:
                conn.execute("SAVEPOINT batch")
                try:
                    _check(conn, expect)
                    for op in ops:
                        _apply(conn, op)
                    conn.execute("RELEASE batch")
                    outcomes.append(None)
                except Exception as exc:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                    outcomes.append(exc)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:  # SQLite may already have rolled back
                conn.execute("ROLLBACK")
            return [exc] * len(batches)
        return outcomes

    # -- snapshots ---------------------------------------------------------------

    async def snapshot(self, batch_size: int = 1000) -> AsyncIterator[builtins.list[tuple[str, bytes]]]:
        """Every entry in key order, read in one read transaction of a connection of its own.

        In WAL mode that transaction sees the database as of its first read, whatever is committed
        meanwhile, and blocks no writer. Each batch is a short indexed range read on the event loop.
        """
        if self._closed:
            raise RuntimeError(f"SQLite storage {self.path!r} is closed")
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN")
            rows = conn.execute(_SCAN_ALL_FROM, ("", max(1, batch_size))).fetchall()
            while rows:
                batch = [(key, value) for key, value in rows]
                yield batch
                rows = conn.execute(_SCAN_ALL_AFTER, (batch[-1][0], max(1, batch_size))).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()

    async def replace_all(self, records: Iterable[tuple[str, bytes]]) -> int:
        """Empty the table and insert ``records``, in one transaction on the writer thread.

        The writer runs one job at a time, so queued writes come before or after it, never inside.
        """
        if self._closed:
            raise RuntimeError(f"SQLite storage {self.path!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_pool, self._replace_all, records)

    def _replace_all(self, records: Iterable[tuple[str, bytes]]) -> int:
        conn = self._writer
        count = 0

        def rows() -> Iterable[tuple[str, bytes]]:
            nonlocal count
            for key, value in records:
                count += 1
                yield check_key(key), check_value(value)

        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM kv")
            conn.executemany(_PUT, rows())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    # -- lifecycle -------------------------------------------------------------

    async def close(self) -> None:
        """Finish queued writes, close both connections, stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        self._cache.clear()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer_pool, self._writer.close)
        finally:
            self._writer_pool.shutdown(wait=True)
            # Only now that SQLite is done with the file (see _map_wal_index).
            if self._wal_index is not None:
                self._wal_index.close()
                self._wal_index = None
                os.close(self._wal_index_fd)
