"""A storage backend on PostgreSQL, shared by several coffer nodes for high availability.

Layout
------
Two tables, created when missing (both names are options)::

    coffer_kv        (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)
    coffer_ha_locks  (ha_key text COLLATE "C" PRIMARY KEY, ha_identity text NOT NULL,
                      ha_value text, valid_until timestamptz NOT NULL)

The ``"C"`` collation compares the UTF-8 bytes, which orders keys by code point exactly
as Python orders ``str``; the database must therefore use the UTF8 encoding. PostgreSQL
text cannot hold NUL: a key containing one is refused by writes, never found by reads,
and scan bounds containing one are rewritten to the equivalent bound without it.
``list`` is a skip scan run inside the database (one recursive query, one index probe
per child, however many keys a folder holds); ``scan`` and ``count`` are range queries.

Writes
------
Each put, delete or batch is one transaction on a pooled connection (psycopg 3, an
async pool of ``max_parallel`` connections). Writes touching a common key are applied
in the order they were made: in this process through a per-key queue, and against any
other writer through advisory locks on the keys' hashes taken in one sorted order (a
batch of more than a few dozen keys takes one table-wide lock instead), so a conditional
batch (``Expect``) checks its conditions and applies its ops atomically.

HA lock (Vault's scheme)
------------------------
One row per lock in the HA table. Taking it is one statement,
``INSERT ... ON CONFLICT (ha_key) DO UPDATE ... WHERE valid_until < now() OR
ha_identity = <me>``, judged by the database's clock: one row affected means held, for
``ttl`` (15 s) from then. The holder renews every 5 s with an ``UPDATE`` that succeeds
only while the row is still its own and unexpired, so a lapse - however short - always
counts as losing the lock; a node that wants the lock tries again every second.
Locally the lock counts as held until the start of the last successful renewal plus
the TTL (on a clock that also runs while the machine is suspended), never longer than
the database grants it.

Fencing
-------
Once this storage has taken the lock, every write begins by reading the lock row
``FOR SHARE`` in its own transaction and requiring it to be ours and unexpired by the
database's clock. Otherwise nothing is written and :class:`LockLost` is raised. The row
lock is held to the commit, so a takeover (which must update that row) waits for
writes already in flight and every write after it sees the new owner: a node that was
paused and lost the lock can never write after another took over. Sessions abort a
transaction left idle for longer than the TTL, so a node frozen mid-transaction cannot
hold up a takeover either; takeover attempts give up waiting after a few seconds. An
HA-enabled storage that never held the lock (a standby) refuses every write the same way.

Read cache
----------
Values read (and the absence of keys) are cached only while this storage is the only
writer: always when ``ha_enabled`` is false (one node by configuration), otherwise only
while it holds the lock. The cache is dropped the moment the lock is lost, released,
not renewed in time, or a fenced write finds it gone. Every write drops the entries of
the keys it touches when it ends (committed or not), and a read that overlapped a write
does not fill the cache, so a cached value is always the last committed one.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import logging
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from coffer.storage.base import (
    ConditionFailed,
    Delete,
    Expect,
    HALock,
    LockLost,
    Op,
    Put,
    Storage,
    check_key,
    check_value,
)

log = logging.getLogger("coffer.storage.postgresql")

DEFAULT_TABLE = "coffer_kv"
DEFAULT_HA_TABLE = "coffer_ha_locks"
#: Pool size. Vault's default (128) exceeds PostgreSQL's own default of 100 connections
#: for a single node; one asyncio process gains nothing past a few dozen concurrent
#: queries (the machine's PostgreSQL has as many cores to run them), and three nodes at 16
#: leave half of that default to standbys' growth, migrations and administration.
DEFAULT_MAX_PARALLEL = 16
#: Connections kept open while idle (more are opened on demand and closed after a minute idle).
DEFAULT_MAX_IDLE = 2
#: The lock's name in the HA table (Vault's).
LOCK_KEY = "core/lock"
HA_TTL = 15.0
HA_RENEW_INTERVAL = 5.0
HA_RETRY_INTERVAL = 1.0
#: How often every node (active or standby) writes its heartbeat row into the HA table.
HA_HEARTBEAT_INTERVAL = 5.0
#: Heartbeat rows are written with this key prefix in the HA table (never fenced: standbys write them too).
HEARTBEAT_PREFIX = "heartbeat/"
#: Test-only environment variables that shorten the HA timings of a server started from a
#: configuration (integration tests of fail-over). Never set them in production.
TEST_TIMING_ENV = {
    "ttl": "COFFER_TEST_HA_TTL",
    "renew_interval": "COFFER_TEST_HA_RENEW_INTERVAL",
    "retry_interval": "COFFER_TEST_HA_RETRY_INTERVAL",
    "heartbeat_interval": "COFFER_TEST_HA_HEARTBEAT_INTERVAL",
}
ENV_URLS = ("COFFER_PG_URL", "VAULT_PG_CONNECTION_URL")
OPTIONS = ("connection_url", "table", "ha_enabled", "ha_table", "max_parallel", "max_idle_connections")

#: Read cache bounds: entries, the largest value kept, and all values together.
READ_CACHE_ENTRIES = 16384
READ_CACHE_MAX_VALUE = 64 * 1024
READ_CACHE_BYTES = 32 * 1024 * 1024
#: A write of more keys than this takes one table-wide advisory lock instead of one per key
#: (PostgreSQL's shared lock table is small: ~64 locks per connection).
MAX_KEY_LOCKS = 32

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})
_SETUP_LOCK = 0x636F66666572  # "coffer": serialises table creation between nodes starting at once


def _clock() -> float:
    """Seconds on a clock that never goes back and keeps running while the machine is suspended."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


if not hasattr(time, "CLOCK_BOOTTIME"):  # pragma: no cover - not Linux
    _clock = time.monotonic  # noqa: F811


# -- options -----------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (URI userinfo and ``password=`` settings)."""
    out = url
    if "://" in url:
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            userinfo, at, host = parts.netloc.rpartition("@")
            if at and ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                out = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", r"\1***", out)


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def _option_error(name: str, problem: str) -> ValueError:
    return ValueError(f'storage "postgresql": option "{name}" {problem}')


def _parse_bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _option_error(name, f'must be "true" or "false", not "{raw}"')


def _parse_int(name: str, raw: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _option_error(name, f'must be a whole number, not "{raw}"') from None
    if not minimum <= value <= maximum:
        raise _option_error(name, f"must be between {minimum} and {maximum}, not {value}")
    return value


def _parse_table(name: str, raw: str) -> tuple[str, ...]:
    """``name`` or ``schema.name`` as identifier parts, checked."""
    parts = tuple(raw.strip().split("."))
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise _option_error(
            name, f'must be a table name (letters, digits, "_"; optionally "schema.table"), not "{raw}"'
        )
    return parts


def _parse_seconds(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable} (test only) must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{variable} (test only) must be positive, not {raw!r}")
    return value


@dataclass(frozen=True)
class HATimings:
    """The HA lock's TTL and how often it is renewed (holder) or retried (waiting node), in seconds."""

    ttl: float = HA_TTL
    renew_interval: float = HA_RENEW_INTERVAL
    retry_interval: float = HA_RETRY_INTERVAL
    heartbeat_interval: float = HA_HEARTBEAT_INTERVAL

    def __post_init__(self) -> None:
        if not (self.ttl > 0 and self.renew_interval > 0 and self.retry_interval > 0 and self.heartbeat_interval > 0):
            raise ValueError(f"HA timings must be positive: {self}")
        if self.renew_interval * 2 > self.ttl:
            raise ValueError(f"the HA lock must be renewed at least twice per TTL: {self}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> HATimings:
        """The defaults, or what the test-only ``COFFER_TEST_HA_*`` variables set."""
        given = {name: _parse_seconds(var, environ[var]) for name, var in TEST_TIMING_ENV.items() if environ.get(var)}
        if not given:
            return cls()
        log.warning("HA lock timings shortened by test-only environment variables: %s", given)
        return cls(**given)


# -- SQL -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sql:
    """Every statement, composed once for the configured table names."""

    kv: sql.Composable
    ha: sql.Composable
    get: sql.Composed = field(init=False)
    put: sql.Composed = field(init=False)
    put_many: sql.Composed = field(init=False)
    delete: sql.Composed = field(init=False)
    delete_many: sql.Composed = field(init=False)
    values_of: sql.Composed = field(init=False)
    list: sql.Composed = field(init=False)
    count: sql.Composed = field(init=False)
    fence: sql.Composed = field(init=False)
    acquire: sql.Composed = field(init=False)
    renew: sql.Composed = field(init=False)
    release: sql.Composed = field(init=False)
    leader: sql.Composed = field(init=False)
    heartbeat: sql.Composed = field(init=False)
    members: sql.Composed = field(init=False)

    def __post_init__(self) -> None:
        kv, ha = self.kv, self.ha

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(kv=kv, ha=ha)

        set_ = object.__setattr__
        set_(self, "get", q("SELECT value FROM {kv} WHERE key = %s"))
        upsert = " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        set_(self, "put", q("INSERT INTO {kv} (key, value) VALUES (%s, %b)" + upsert))
        set_(self, "put_many", q("INSERT INTO {kv} (key, value) SELECT * FROM unnest(%s::text[], %b::bytea[])" + upsert))
        set_(self, "delete", q("DELETE FROM {kv} WHERE key = %s"))
        set_(self, "delete_many", q("DELETE FROM {kv} WHERE key = ANY(%s::text[])"))
        set_(self, "values_of", q("SELECT key, value FROM {kv} WHERE key = ANY(%s::text[])"))
        # The skip scan: each step finds the first key at or after a cursor; after a leaf the
        # cursor is the leaf plus chr(1) (the next possible key, as text holds no NUL), after
        # a folder "seg/" it is "seg0" ("0" follows "/"), past everything inside the folder.
        set_(self, "list", q(
            "WITH RECURSIVE walk(k) AS ("
            " (SELECT key FROM {kv} WHERE key >= %(prefix)s AND key < %(end)s ORDER BY key LIMIT 1)"
            " UNION ALL"
            " SELECT (SELECT key FROM {kv} WHERE key >= CASE"
            "   WHEN strpos(substr(w.k, %(n)s::int + 1), '/') > 0"
            "   THEN left(w.k, %(n)s::int + strpos(substr(w.k, %(n)s::int + 1), '/') - 1) || '0'"
            "   ELSE w.k || chr(1) END"
            "  AND key < %(end)s ORDER BY key LIMIT 1)"
            " FROM walk AS w WHERE w.k IS NOT NULL"
            ") SELECT k FROM walk WHERE k IS NOT NULL"
        ))
        set_(self, "count", q("SELECT count(*) FROM {kv} WHERE key >= %s AND key < %s"))
        set_(self, "fence", q(
            "SELECT 1 FROM {ha} WHERE ha_key = %s AND ha_identity = %s AND valid_until > clock_timestamp() FOR SHARE"
        ))
        set_(self, "acquire", q(
            "INSERT INTO {ha} AS l (ha_key, ha_identity, ha_value, valid_until)"
            " VALUES (%(key)s, %(identity)s, %(value)s, now() + make_interval(secs => %(ttl)s))"
            " ON CONFLICT (ha_key) DO UPDATE SET ha_identity = EXCLUDED.ha_identity,"
            " ha_value = EXCLUDED.ha_value, valid_until = EXCLUDED.valid_until"
            " WHERE l.valid_until < now() OR l.ha_identity = EXCLUDED.ha_identity"
        ))
        set_(self, "renew", q(
            "UPDATE {ha} SET valid_until = now() + make_interval(secs => %(ttl)s)"
            " WHERE ha_key = %(key)s AND ha_identity = %(identity)s AND valid_until > clock_timestamp()"
        ))
        set_(self, "release", q("DELETE FROM {ha} WHERE ha_key = %s AND ha_identity = %s"))
        set_(self, "leader", q("SELECT ha_identity, ha_value FROM {ha} WHERE ha_key = %s AND valid_until > now()"))
        # Heartbeats: one row per node, its valid_until the time of the last echo (the database's clock).
        set_(self, "heartbeat", q(
            "INSERT INTO {ha} (ha_key, ha_identity, ha_value, valid_until) VALUES (%s, %s, %s, now())"
            " ON CONFLICT (ha_key) DO UPDATE SET ha_value = EXCLUDED.ha_value, valid_until = EXCLUDED.valid_until"
        ))
        set_(self, "members", q(
            "SELECT ha_identity, ha_value, valid_until FROM {ha} WHERE ha_key >= %s AND ha_key < %s"
            " AND valid_until > now() - make_interval(secs => %s) ORDER BY ha_key"
        ))


def _range(select: str, kv: sql.Composable, start: str, end: str) -> tuple[sql.Composed, list[str]]:
    """``select`` over ``start <= key < end``; a bound holding NUL becomes its NUL-free equivalent.

    For keys without NUL, ``key >= p + "\\x00" + rest`` is ``key > p`` and ``key < p + "\\x00" + rest``
    is ``key <= p``.
    """
    lower, low = ">=", start
    if "\x00" in start:
        lower, low = ">", start[: start.index("\x00")]
    upper, high = "<", end
    if "\x00" in end:
        upper, high = "<=", end[: end.index("\x00")]
    query = sql.SQL(select).format(kv=kv, lower=sql.SQL(lower), upper=sql.SQL(upper))
    return query, [low, high]


_SCAN = "SELECT key, value FROM {kv} WHERE key {lower} %s AND key {upper} %s ORDER BY key LIMIT %s"
_COUNT = "SELECT count(*) FROM {kv} WHERE key {lower} %s AND key {upper} %s"


_LOCK_KEYS = (
    "SELECT CASE WHEN s.h IS NULL THEN pg_advisory_xact_lock_shared(%(table)s::bigint)"
    " ELSE pg_advisory_xact_lock(%(ns)s::int, s.h) END FROM ("
    " SELECT h FROM (SELECT NULL::int AS h UNION ALL SELECT DISTINCT hashtext(k) FROM unnest(%(keys)s::text[]) AS k) AS u"
    " ORDER BY h NULLS FIRST OFFSET 0) AS s"
)
_LOCK_TABLE = "SELECT pg_advisory_xact_lock(%(table)s::bigint)"


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


# -- in-process ordering of writes -------------------------------------------------


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


# -- the backend -----------------------------------------------------------------------


class PostgresqlStorage(Storage):
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
        table_oid = self._setup()
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
        env = os.environ if environ is None else environ
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(
                f'storage "postgresql": unknown option "{unknown[0]}"; the options are {", ".join(OPTIONS)}'
            )
        url = options.get("connection_url", "").strip()
        if not url:
            url = next((env[name].strip() for name in ENV_URLS if env.get(name, "").strip()), "")
        if not url:
            raise ValueError(
                'storage "postgresql" needs a "connection_url" (or the environment variable COFFER_PG_URL), '
                'for example: connection_url = "postgresql://coffer:password@db.example.com:5432/coffer"'
            )
        kwargs: dict[str, Any] = {
            "table": ".".join(_parse_table("table", options.get("table", DEFAULT_TABLE))),
            "ha_table": ".".join(_parse_table("ha_table", options.get("ha_table", DEFAULT_HA_TABLE))),
            "ha_enabled": _parse_bool("ha_enabled", options.get("ha_enabled", "false")),
            "max_parallel": _parse_int("max_parallel", options.get("max_parallel", str(DEFAULT_MAX_PARALLEL)), 1, 10000),
        }
        if "max_idle_connections" in options:
            kwargs["max_idle_connections"] = _parse_int(
                "max_idle_connections", options["max_idle_connections"], 0, 10000
            )
        if kwargs["ha_enabled"]:
            kwargs["ha_timings"] = HATimings.from_environment(env)
        return cls(url, **kwargs)

    # -- setup (synchronous: runs once, when the server starts) -----------------------

    def _error(self, doing: str, exc: BaseException) -> ValueError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return ValueError(f'storage "postgresql": {doing} {self.display_url}: {_scrub(detail, self._secrets)}')

    def _setup(self) -> int:
        """Check the server, create missing tables, check their layout; the data table's oid."""
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self._connect_kwargs)
        except psycopg.Error as exc:
            raise self._error("cannot connect to", exc) from None
        try:
            with conn:
                encoding = str(conn.execute("SHOW server_encoding").fetchone()[0])  # type: ignore[index]
                if encoding.upper().replace("-", "") != "UTF8":
                    raise ValueError(
                        f'storage "postgresql": the database at {self.display_url} uses the {encoding} encoding; '
                        "coffer needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
                    )
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_SETUP_LOCK,))
                    conn.execute(sql.SQL(
                        'CREATE TABLE IF NOT EXISTS {} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)'
                    ).format(self._sql.kv))
                    if self.ha_enabled:
                        conn.execute(sql.SQL(
                            'CREATE TABLE IF NOT EXISTS {} (ha_key text COLLATE "C" PRIMARY KEY,'
                            ' ha_identity text COLLATE "C" NOT NULL, ha_value text,'
                            " valid_until timestamptz NOT NULL)"
                        ).format(self._sql.ha))
                oid = self._check_layout(conn, self.table, {"key": ("text", True), "value": ("bytea", False)})
                if self.ha_enabled:
                    self._check_layout(conn, self.ha_table, {
                        "ha_key": ("text", False), "ha_identity": ("text", False),
                        "ha_value": ("text", False), "valid_until": ("timestamp with time zone", False),
                    })
                return oid
        except psycopg.Error as exc:
            raise self._error("cannot prepare the tables at", exc) from None

    def _check_layout(self, conn: psycopg.Connection, table: tuple[str, ...], want: dict[str, tuple[str, bool]]) -> int:
        name = ".".join(table)
        row = conn.execute("SELECT to_regclass(%s)::oid", (sql.Identifier(*table).as_string(conn),)).fetchone()
        if row is None or row[0] is None:
            raise ValueError(f'storage "postgresql": table {name} is missing at {self.display_url}')
        oid = int(row[0])
        columns = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), c.collname FROM pg_attribute a"
                " LEFT JOIN pg_collation c ON c.oid = a.attcollation"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
                (oid,),
            )
        }
        for column, (kind, needs_c) in want.items():
            got = columns.get(column)
            if got is None or got[0] != kind or (needs_c and got[1] not in ("C", "POSIX")):
                collation = ' COLLATE "C"' if needs_c else ""
                raise ValueError(
                    f'storage "postgresql": table {name} at {self.display_url} does not have the layout coffer '
                    f"needs (column {column} {kind}{collation}); "
                    'name another table with the "table"/"ha_table" options'
                )
        return oid

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

    async def members(self, window: float) -> list[tuple[str, str, datetime.datetime]]:
        """``(identity, info, last echo)`` of every node whose heartbeat is at most ``window`` seconds old."""
        end = HEARTBEAT_PREFIX[:-1] + chr(ord(HEARTBEAT_PREFIX[-1]) + 1)
        async with self.storage._connection() as conn:
            cur = await conn.execute(self.storage._sql.members, (HEARTBEAT_PREFIX, end, window))
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


__all__ = [
    "DEFAULT_HA_TABLE",
    "DEFAULT_MAX_PARALLEL",
    "DEFAULT_TABLE",
    "HATimings",
    "LOCK_KEY",
    "PostgresqlHALock",
    "PostgresqlStorage",
    "mask_url",
]
