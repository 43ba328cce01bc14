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
import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from coffer.storage.base import AFTER_SLASH, Delete, Op, Put, Storage, check_key, check_value, prefix_end

_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
_GET = "SELECT value FROM kv WHERE key = ?"
_PUT = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)"
_DELETE = "DELETE FROM kv WHERE key = ?"
_FIRST_FROM = "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1"
_FIRST_AFTER = "SELECT key FROM kv WHERE key > ? AND key < ? ORDER BY key LIMIT 1"
_SCAN = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"


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


def _apply(conn: sqlite3.Connection, op: Op) -> None:
    if isinstance(op, Put):
        conn.execute(_PUT, (check_key(op.key), check_value(op.value)))
    elif isinstance(op, Delete):
        conn.execute(_DELETE, (check_key(op.key),))
    else:
        raise TypeError(f"unknown storage op {op!r}")


def _connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class SqliteStorage(Storage):
    """Keys and values in one table of one SQLite file.

    ``path`` must name a file: ``":memory:"`` and ``""`` are refused, since
    the reader and writer connections would each get a private database.
    The parent directory is created when missing.
    """

    def __init__(self, path: str) -> None:
        if path in ("", ":memory:"):
            raise ValueError(f"SqliteStorage needs a file path, not {path!r}")
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
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
        self._queue: builtins.list[tuple[Sequence[Op], asyncio.Future[None]]] = []
        self._queue_lock = threading.Lock()
        self._draining = False
        self._closed = False
        self._writer = writer
        self._reader = reader

    # -- reads: on the event loop --------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None."""
        rows = self._reader.execute(_GET, (key,)).fetchall()
        return rows[0][0] if rows else None

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

    async def batch(self, ops: builtins.list[Op]) -> None:
        """Apply ``ops`` in one transaction; any failure rolls all of it back."""
        await self._write(list(ops))

    async def _write(self, ops: Sequence[Op]) -> None:
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
            self._queue.append((ops, done))
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
            outcomes = self._apply_group([ops for ops, _ in group])
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

    def _apply_group(self, batches: Sequence[Sequence[Op]]) -> builtins.list[BaseException | None]:
        """One transaction for the whole group; answers each batch's error (or None).

        Batches almost never fail, so they are first applied without savepoints
        (each statement costs the writer a round trip through the GIL). If any
        op fails, that transaction is rolled back and the group is applied again
        with a savepoint per batch, so that only the failing batches are lost.
        """
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for ops in batches:
                for op in ops:
                    _apply(conn, op)
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

    def _apply_isolated(self, batches: Sequence[Sequence[Op]]) -> builtins.list[BaseException | None]:
        """One transaction, a savepoint per batch; answers each batch's error (or None)."""
        conn = self._writer
        outcomes: builtins.list[BaseException | None] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for ops in batches:
                conn.execute("SAVEPOINT batch")
                try:
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

    # -- lifecycle -------------------------------------------------------------

    async def close(self) -> None:
        """Finish queued writes, close both connections, stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer_pool, self._writer.close)
        finally:
            self._writer_pool.shutdown(wait=True)
