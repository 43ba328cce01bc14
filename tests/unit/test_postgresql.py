"""The PostgreSQL backend beyond the shared conformance suite: options, tables, HA lock, fencing, cache.

Every test gets a fresh schema on the suite's PostgreSQL (see ``pg_support``); HA tests use
shortened lock timings (a constructor-only argument) so that expiry takes about a second.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import pg_support
from coffer.storage import open_storage
from coffer.storage.base import ConditionFailed, Delete, Expect, LockLost, Put, prefix_end
from coffer.storage.inmem import InmemStorage
from coffer.storage.postgresql import (
    DEFAULT_MAX_PARALLEL,
    LOCK_KEY,
    HATimings,
    PostgresqlHALock,
    PostgresqlStorage,
    mask_url,
)
from coffer.storage.sqlite import SqliteStorage

T = TypeVar("T")

#: Expiry in a second and a half; renewals seven times per TTL.
FAST = HATimings(ttl=1.5, renew_interval=0.2, retry_interval=0.05)


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_support.fresh_schema() as name:
        yield name


@pytest.fixture
def url(schema: str) -> str:
    return pg_support.schema_url(schema)


def rows(schema: str, table: str = "coffer_kv") -> dict[str, bytes]:
    """What the table holds, read behind the storage's back."""
    with pg_support.admin() as conn:
        return {k: bytes(v) for k, v in conn.execute(f'SELECT key, value FROM "{schema}"."{table}" ORDER BY key')}


def write_behind(schema: str, key: str, value: bytes) -> None:
    """A write by someone else (another node), straight into the table."""
    with pg_support.admin() as conn:
        conn.execute(
            f'INSERT INTO "{schema}".coffer_kv (key, value) VALUES (%s, %s)'
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ha(url: str, **kwargs: Any) -> PostgresqlStorage:
    return PostgresqlStorage(url, ha_enabled=True, ha_timings=FAST, **kwargs)


def lock_of(storage: PostgresqlStorage, identity: str, value: str = "") -> PostgresqlHALock:
    lock = storage.ha_lock(identity, value or f"https://{identity}:8200")
    assert lock is not None
    return lock


async def wait_until_expired(lock: PostgresqlHALock) -> None:
    """Let ``lock``'s row expire by the database's clock (its holder no longer renews it)."""
    while await lock.leader() is not None:
        await asyncio.sleep(0.05)


# -- options and connection errors ------------------------------------------------------


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://coffer:s3cret@db:5432/coffer") == "postgresql://coffer:***@db:5432/coffer"
    assert mask_url("postgres://u:p%40ss@db/x?sslmode=require") == "postgres://u:***@db/x?sslmode=require"
    assert mask_url("postgresql://u@db/x?password=hunter2&sslmode=disable") == (
        "postgresql://u@db/x?password=***&sslmode=disable"
    )
    assert mask_url("host=db user=u password='a b c' dbname=x") == "host=db user=u password=*** dbname=x"
    assert mask_url("postgresql://db/x") == "postgresql://db/x"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"connection_url": "postgresql://x/y", "bogus": "1"}, 'unknown option "bogus"'),
        ({"connection_url": "postgresql://x/y", "ha_enabled": "maybe"}, 'option "ha_enabled" must be "true" or "false"'),
        ({"connection_url": "postgresql://x/y", "max_parallel": "lots"}, 'option "max_parallel" must be a whole number'),
        ({"connection_url": "postgresql://x/y", "max_parallel": "0"}, 'option "max_parallel" must be between 1'),
        ({"connection_url": "postgresql://x/y", "max_idle_connections": "-1"}, 'option "max_idle_connections"'),
        ({"connection_url": "postgresql://x/y", "table": "kv; DROP TABLE x"}, 'option "table" must be a table name'),
        ({"connection_url": "postgresql://x/y", "ha_table": "a.b.c"}, 'option "ha_table" must be a table name'),
        ({"connection_url": "postgresql://x/y", "table": ""}, 'option "table" must be a table name'),
    ],
)
def test_bad_options_name_the_option(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresqlStorage.from_options(options, environ={})


def test_connection_url_is_required() -> None:
    with pytest.raises(ValueError, match='needs a "connection_url".*COFFER_PG_URL'):
        PostgresqlStorage.from_options({}, environ={})


def test_malformed_connection_url() -> None:
    with pytest.raises(ValueError, match="is not a valid PostgreSQL connection string") as info:
        PostgresqlStorage.from_options({"connection_url": "postgresql://u:topsecret@db/x?nonsense_option=1"}, {})
    assert "topsecret" not in str(info.value)
    assert "u:***@db" in str(info.value)


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://coffer:hunter2@127.0.0.1:{closed_port()}/coffer"
    with pytest.raises(ValueError) as info:
        PostgresqlStorage.from_options({"connection_url": url}, environ={})
    message = str(info.value)
    assert "hunter2" not in message
    assert "cannot connect to" in message and "coffer:***@127.0.0.1" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback


def test_refused_login_is_a_clear_error(url: str) -> None:
    bad = url.replace("postgres@", "no_such_role_here:pw123@", 1)
    with pytest.raises(ValueError, match="no_such_role_here") as info:
        PostgresqlStorage(bad)
    assert "pw123" not in str(info.value)


def test_url_from_the_environment(url: str, schema: str) -> None:
    for variable in ("COFFER_PG_URL", "VAULT_PG_CONNECTION_URL"):
        storage = PostgresqlStorage.from_options({"table": f"t_{variable.lower()}"}, environ={variable: url})
        run(storage.close)
    with pg_support.admin() as conn:
        names = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}
    assert names == {"t_coffer_pg_url", "t_vault_pg_connection_url"}
    # the option wins over the environment
    storage = PostgresqlStorage.from_options({"connection_url": url}, environ={"COFFER_PG_URL": "postgresql://x:1/y"})
    run(storage.close)


def test_options_reach_the_backend(url: str) -> None:
    storage = PostgresqlStorage.from_options(
        {"connection_url": url, "max_parallel": "7", "max_idle_connections": "3", "ha_enabled": "TRUE"}, environ={}
    )
    try:
        assert storage.ha_enabled and storage.max_parallel == 7 and storage.max_idle_connections == 3
        assert storage.timings == HATimings()  # the configuration cannot shorten the lock timings
    finally:
        run(storage.close)
    plain = PostgresqlStorage.from_options({"connection_url": url}, environ={})
    assert not plain.ha_enabled and plain.max_parallel == DEFAULT_MAX_PARALLEL
    assert plain.ha_lock("node-a", "addr") is None
    run(plain.close)


def test_open_storage_opens_postgresql(url: str) -> None:
    storage = open_storage("postgresql", {"connection_url": url})
    assert isinstance(storage, PostgresqlStorage)

    async def scenario() -> None:
        await storage.put("k", b"v")
        assert await storage.get("k") == b"v"
        await storage.close()

    run(scenario)


def test_test_only_timing_variables() -> None:
    assert HATimings.from_environment({}) == HATimings(15.0, 5.0, 1.0)
    assert HATimings.from_environment(
        {"COFFER_TEST_HA_TTL": "2", "COFFER_TEST_HA_RENEW_INTERVAL": "0.5", "COFFER_TEST_HA_RETRY_INTERVAL": "0.1"}
    ) == HATimings(2.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="COFFER_TEST_HA_TTL"):
        HATimings.from_environment({"COFFER_TEST_HA_TTL": "soon"})
    with pytest.raises(ValueError, match="renewed at least twice"):
        HATimings.from_environment({"COFFER_TEST_HA_TTL": "1"})  # the default renewal (5 s) would be too late
    with pytest.raises(ValueError, match="positive"):
        HATimings(ttl=1, renew_interval=0.5, retry_interval=0)


def test_other_backends_have_no_ha(tmp_path: Any) -> None:
    assert InmemStorage().ha_lock("a", "b") is None
    db = SqliteStorage(str(tmp_path / "x.db"))
    assert db.ha_lock("a", "b") is None
    run(db.close)


# -- tables --------------------------------------------------------------------------------


def columns(schema: str, table: str) -> dict[str, tuple[str, str | None]]:
    with pg_support.admin() as conn:
        return {
            name: (kind, collation)
            for name, kind, collation in conn.execute(
                "SELECT column_name, data_type, collation_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
        }


def test_tables_are_created_when_missing(url: str, schema: str) -> None:
    storage = PostgresqlStorage(url)
    run(storage.close)
    assert columns(schema, "coffer_kv") == {"key": ("text", "C"), "value": ("bytea", None)}
    assert columns(schema, "coffer_ha_locks") == {}  # only with ha_enabled

    storage = PostgresqlStorage(url, table="other_kv", ha_enabled=True, ha_table="other_locks")
    run(storage.close)
    assert columns(schema, "other_kv")["key"] == ("text", "C")
    assert columns(schema, "other_locks") == {
        "ha_key": ("text", "C"), "ha_identity": ("text", "C"), "ha_value": ("text", None),
        "valid_until": ("timestamp with time zone", None),
    }
    with pg_support.admin() as conn:
        pk = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary", (f'"{schema}".coffer_kv',)
        ).fetchall()
    assert pk == [("key",)]


def test_schema_qualified_table_and_reopen(schema: str) -> None:
    url = pg_support.ADMIN_URL  # no search_path: the option names the schema
    storage = PostgresqlStorage(url, table=f"{schema}.kv")

    async def write() -> None:
        await storage.put("persisted", b"yes")
        await storage.close()

    run(write)
    again = PostgresqlStorage(url, table=f"{schema}.kv")

    async def read() -> bytes | None:
        try:
            return await again.get("persisted")
        finally:
            await again.close()

    assert run(read) == b"yes"
    assert rows(schema, "kv") == {"persisted": b"yes"}


def test_a_table_of_another_layout_is_refused(url: str, schema: str) -> None:
    with pg_support.admin() as conn:
        conn.execute(f'CREATE TABLE "{schema}".vault_kv_store (parent_path text, path text, key text, value bytea)')
        conn.execute(f'CREATE TABLE "{schema}".wrong_order (key text PRIMARY KEY, value bytea)')  # default collation
    with pytest.raises(ValueError, match="does not have the layout"):
        PostgresqlStorage(url, table="vault_kv_store")
    with pytest.raises(ValueError, match='COLLATE "C"'):
        PostgresqlStorage(url, table="wrong_order")


def test_nul_in_keys(url: str) -> None:
    async def scenario() -> None:
        storage = PostgresqlStorage(url)
        try:
            with pytest.raises(ValueError, match="NUL"):
                await storage.put("a\x00b", b"v")
            assert await storage.get("a\x00b") is None
            await storage.delete("a\x00b")
            await storage.batch([Put("a", b"1"), Put("a/b", b"2"), Put("ab", b"3"), Put("b", b"4")])
            # bounds holding NUL, as callers build them to continue after a key
            assert [k for k, _ in await storage.scan("a\x00", prefix_end(""))] == ["a/b", "ab", "b"]
            assert [k for k, _ in await storage.scan("", "ab\x00")] == ["a", "a/b", "ab"]
            assert await storage.count("a\x00", "b") == 2
            assert await storage.list("a\x00") == []
            with pytest.raises(ConditionFailed):
                await storage.batch([Put("c", b"")], [Expect("x\x00")])
            await storage.batch([Put("c", b"")], [Expect("x\x00", exists=False)])
        finally:
            await storage.close()

    run(scenario)


def test_sessions_abort_transactions_left_idle(url: str) -> None:
    async def scenario() -> None:
        storage = ha(url)
        try:
            async with storage._connection() as conn:
                cur = await conn.execute("SHOW idle_in_transaction_session_timeout")
                assert (await cur.fetchone()) == ("1500ms",)
        finally:
            await storage.close()

    run(scenario)


# -- the read cache ---------------------------------------------------------------------------


def test_single_node_caches_reads_and_writes_invalidate(url: str, schema: str) -> None:
    async def scenario() -> None:
        storage = PostgresqlStorage(url)
        try:
            await storage.put("k", b"one")
            assert await storage.get("k") == b"one"
            hits = storage.cache_hits
            assert await storage.get("k") == b"one"
            assert await storage.get("missing") is None
            assert await storage.get("missing") is None
            assert storage.cache_hits == hits + 2
            # our own writes are seen at once
            await storage.put("k", b"two")
            assert await storage.get("k") == b"two"
            await storage.batch([Delete("k"), Put("missing", b"now")])
            assert await storage.get("k") is None
            assert await storage.get("missing") == b"now"
            with pytest.raises(ConditionFailed):
                await storage.batch([Put("k", b"x")], [Expect("nope")])
            assert await storage.get("k") is None
            # a write behind its back is not seen while cached: ha_enabled=false means one node
            write_behind(schema, "missing", b"elsewhere")
            assert await storage.get("missing") == b"now"
            storage.drop_cache()
            assert await storage.get("missing") == b"elsewhere"
        finally:
            await storage.close()

    run(scenario)


def test_read_overlapping_a_write_does_not_cache_the_old_value(url: str) -> None:
    async def scenario() -> None:
        storage = PostgresqlStorage(url)
        try:
            for i in range(30):
                await storage.put("k", b"old")
                storage.drop_cache()
                read = asyncio.ensure_future(storage.get("k"))
                await storage.put("k", b"new%d" % i)
                await read  # may see either value...
                assert await storage.get("k") == b"new%d" % i  # ...but the cache never keeps the old one
        finally:
            await storage.close()

    run(scenario)


def test_standby_does_not_cache(url: str, schema: str) -> None:
    async def scenario() -> None:
        active, standby = ha(url), ha(url)
        try:
            assert await lock_of(active, "node-a").acquire()
            await active.put("k", b"1")
            assert await standby.get("k") == b"1"
            await active.put("k", b"2")
            assert await standby.get("k") == b"2"  # another node's write is seen at once
            assert standby.cache_hits == 0
        finally:
            await active.close()
            await standby.close()

    run(scenario)


def test_cache_is_dropped_when_the_lock_is_lost(url: str, schema: str) -> None:
    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a"), lock_of(b, "node-b")
        try:
            assert await lock_a.acquire()
            await a.put("k", b"from-a")
            assert await a.get("k") == b"from-a"
            hits = a.cache_hits
            assert await a.get("k") == b"from-a"
            assert a.cache_hits == hits + 1  # the holder caches

            lock_a._stop_renewing()  # node A pauses: no more renewals
            await wait_until_expired(lock_a)
            await lock_b.lock()
            await b.put("k", b"from-b")

            assert not lock_a.held
            assert await a.get("k") == b"from-b"  # not the cached value
            assert await a.get("k") == b"from-b"
            assert a.cache_hits == hits + 1  # and nothing is cached any more
            await lock_a.wait_lost()  # returns: the lock is gone
            assert lock_a.lost_reason and "TTL" in lock_a.lost_reason
        finally:
            await a.close()
            await b.close()

    run(scenario)


# -- the HA lock --------------------------------------------------------------------------------


def test_lock_acquire_renew_release_and_leader(url: str, schema: str) -> None:
    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a", "https://a:8200"), lock_of(b, "node-b", "https://b:8200")
        try:
            assert await lock_a.leader() is None
            assert await lock_a.acquire()
            assert lock_a.held
            assert await lock_a.acquire()  # already ours: still held
            assert not await lock_b.acquire()
            assert not lock_b.held
            assert await lock_b.leader() == ("node-a", "https://a:8200")
            # renewals keep it past several TTLs, in the background and on demand
            await asyncio.sleep(FAST.ttl * 2.5)
            assert lock_a.held and await lock_a.renew()
            assert not await lock_b.acquire()
            with pg_support.admin() as conn:
                (left,) = conn.execute(
                    f'SELECT extract(epoch FROM valid_until - now()) FROM "{schema}".coffer_ha_locks WHERE ha_key = %s',
                    (LOCK_KEY,),
                ).fetchone()  # type: ignore[misc]
            assert 0 < float(left) <= FAST.ttl
            # a release hands over at once
            await lock_a.release()
            assert not lock_a.held
            await lock_a.wait_lost()
            assert await lock_b.acquire()
            assert await lock_a.leader() == ("node-b", "https://b:8200")
            assert not await lock_a.renew()  # released: renewing does not take it back
        finally:
            await a.close()
            await b.close()
        with pg_support.admin() as conn:  # closing the holder released its lock
            assert conn.execute(f'SELECT count(*) FROM "{schema}".coffer_ha_locks').fetchone() == (0,)

    run(scenario)


def test_heartbeats_of_nodes_long_gone_are_deleted(url: str, schema: str) -> None:
    async def scenario() -> None:
        storage = ha(url)
        try:
            lock = lock_of(storage, "node-a")
            with pg_support.admin() as conn:  # a node last heard two days ago, one an hour ago
                for key, age in (("heartbeat/gone", "2 days"), ("heartbeat/recent", "1 hour")):
                    conn.execute(f'INSERT INTO "{schema}".coffer_ha_locks (ha_key, ha_identity, ha_value, valid_until)'
                                 f" VALUES (%s, %s, '', now() - interval '{age}')", (key, key[10:]))
            await lock.heartbeat("info of a")
            with pg_support.admin() as conn:
                keys = [r[0] for r in conn.execute(f'SELECT ha_key FROM "{schema}".coffer_ha_locks ORDER BY ha_key')]
            assert keys == ["heartbeat/node-a", "heartbeat/recent"]
            assert [m[0] for m in await lock.members(60)] == ["node-a"]
        finally:
            await storage.close()

    run(scenario)


def test_takeover_after_expiry(url: str) -> None:
    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a"), lock_of(b, "node-b")
        try:
            assert await lock_a.acquire()
            waiter = asyncio.ensure_future(lock_a.wait_lost())
            lock_a._stop_renewing()
            assert not await lock_b.acquire()
            await lock_b.lock()  # retries until the row has expired by the database's clock
            assert lock_b.held
            assert await lock_b.leader() == ("node-b", "https://node-b:8200")
            await waiter
            assert not lock_a.held
            assert not await lock_a.renew()  # a lapse is a loss: renew never takes it back
            assert not await lock_a.acquire()  # B holds it now
        finally:
            await a.close()
            await b.close()

    run(scenario)


def test_renew_notices_a_takeover(url: str, schema: str) -> None:
    """Even when the local deadline has not passed (clocks disagree), the database decides."""

    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a"), lock_of(b, "node-b")
        try:
            assert await lock_a.acquire()
            lock_a._stop_renewing()
            await wait_until_expired(lock_a)
            assert await lock_b.acquire()
            lock_a._held_until = float("inf")  # A's own view: still held
            assert not await lock_a.renew()
            assert not lock_a.held and "another node" in (lock_a.lost_reason or "")
        finally:
            await a.close()
            await b.close()

    run(scenario)


def test_takeover_does_not_wait_forever_for_a_stuck_transaction(url: str, schema: str) -> None:
    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a"), lock_of(b, "node-b")
        try:
            assert await lock_a.acquire()
            lock_a._stop_renewing()
            await wait_until_expired(lock_a)
            with pg_support.admin() as stuck:  # holds the lock row as a write in flight would
                stuck.execute("BEGIN")
                stuck.execute(f'SELECT 1 FROM "{schema}".coffer_ha_locks FOR SHARE')
                assert not await lock_b.acquire()  # gave up waiting instead of hanging
                stuck.execute("ROLLBACK")
            assert await lock_b.acquire()
        finally:
            await a.close()
            await b.close()

    run(scenario)


# -- fencing -----------------------------------------------------------------------------------------


def test_standby_writes_are_refused(url: str, schema: str) -> None:
    async def scenario() -> None:
        standby = ha(url)
        try:
            lock_of(standby, "node-s")  # a handle, never acquired
            for write in (standby.put("k", b"v"), standby.delete("k"), standby.batch([Put("k", b"v")]),
                          standby.batch([], [Expect("k", exists=False)])):
                with pytest.raises(LockLost, match="standby"):
                    await write
            assert await standby.get("k") is None  # reads are fine
        finally:
            await standby.close()
        assert rows(schema) == {}

    run(scenario)


def test_a_paused_node_cannot_write_after_a_takeover(url: str, schema: str) -> None:
    async def scenario() -> None:
        a, b = ha(url), ha(url)
        lock_a, lock_b = lock_of(a, "node-a"), lock_of(b, "node-b")
        try:
            assert await lock_a.acquire()
            await a.put("shared", b"a-1")
            await a.put("a-only", b"a-1")
            assert await a.get("shared") == b"a-1"  # cached by A

            lock_a._stop_renewing()  # A is paused: it stops renewing
            await wait_until_expired(lock_a)
            await lock_b.lock()
            await b.put("shared", b"b-1")
            await b.batch([Put("b-only", b"b-1"), Delete("a-only")])

            # A wakes up: its own clock tells it the lock is gone
            with pytest.raises(LockLost):
                await a.put("shared", b"a-2")
            # A's view may be stale (a pause between its check and its transaction, a clock
            # that lies): the database refuses its writes all the same.
            lock_a._held, lock_a._held_until = True, float("inf")
            with pytest.raises(LockLost, match="another node"):
                await a.put("shared", b"a-3")
            assert not lock_a.held  # the refusal counts as losing the lock
            lock_a._held, lock_a._held_until = True, float("inf")
            with pytest.raises(LockLost):
                await a.batch([Put("a-batch", b"a-4"), Delete("b-only")], [Expect("shared")])
            lock_a._held, lock_a._held_until = True, float("inf")
            with pytest.raises(LockLost):
                await a.delete("b-only")
            assert a._cache == {}
            assert await a.get("shared") == b"b-1"
        finally:
            await a.close()
            await b.close()
        assert rows(schema) == {"b-only": b"b-1", "shared": b"b-1"}

    run(scenario)


def test_writes_resume_after_reacquiring(url: str, schema: str) -> None:
    async def scenario() -> None:
        a = ha(url)
        lock_a = lock_of(a, "node-a")
        try:
            assert await lock_a.acquire()
            await a.put("k", b"1")
            await lock_a.release()
            with pytest.raises(LockLost, match="released"):
                await a.put("k", b"2")
            assert await lock_a.acquire()
            await a.put("k", b"3")
        finally:
            await a.close()
        assert rows(schema) == {"k": b"3"}

    run(scenario)


# -- concurrency ---------------------------------------------------------------------------------


def test_many_concurrent_conditional_batches(url: str, schema: str) -> None:
    """Conditional batches made at once behave as if applied one by one, in the order they were made."""

    async def scenario() -> None:
        storage = PostgresqlStorage(url, max_parallel=8)
        try:
            # create-if-absent races: exactly one of each group wins, the first one made
            creates = [storage.batch([Put(f"slot/{i % 10}", b"%d" % i)], [Expect(f"slot/{i % 10}", exists=False)])
                       for i in range(100)]
            outcomes = await asyncio.gather(*creates, return_exceptions=True)
            assert [o is None for o in outcomes] == [i < 10 for i in range(100)]
            assert all(isinstance(o, ConditionFailed) for o in outcomes[10:])
            assert {k: v for k, v in rows(schema).items()} == {f"slot/{i}": b"%d" % i for i in range(10)}

            # compare-and-swap chain: each step expects the value the previous one wrote
            await storage.put("counter", b"0")
            steps = [storage.batch([Put("counter", b"%d" % (i + 1))], [Expect("counter", b"%d" % i)])
                     for i in range(50)]
            stale = storage.batch([Put("counter", b"stale")], [Expect("counter", b"0")])
            outcomes = await asyncio.gather(*steps, stale, return_exceptions=True)
            assert all(o is None for o in outcomes[:-1])
            assert isinstance(outcomes[-1], ConditionFailed)
            assert await storage.get("counter") == b"50"

            # the SQLite conformance case, many times over, interleaved with unrelated writes
            for round_ in range(20):
                await storage.put("parent", b"p")
                outcomes = await asyncio.gather(
                    storage.batch([Put("a", b"1")], [Expect("parent")]),
                    storage.put(f"noise/{round_}", b"x"),
                    storage.batch([Delete("parent")]),
                    storage.batch([Put("b", b"2")], [Expect("parent")]),
                    storage.batch([Put("c", b"3")], [Expect("parent", exists=False)]),
                    return_exceptions=True,
                )
                assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 3 + ["ConditionFailed", "NoneType"]
                assert [await storage.get(k) for k in ("a", "b", "c")] == [b"1", None, b"3"]
                await storage.batch([Delete("a"), Delete("c")])
        finally:
            await storage.close()

    run(scenario)


def test_conditional_batches_are_atomic_across_processes(url: str) -> None:
    """Two storages (two processes' worth of connections) racing to create the same keys: one wins each."""

    async def scenario() -> None:
        one, two = PostgresqlStorage(url), PostgresqlStorage(url)
        try:
            for i in range(30):
                key = f"race/{i}"
                outcomes = await asyncio.gather(
                    one.batch([Put(key, b"one"), Put(f"{key}/by", b"one")], [Expect(key, exists=False)]),
                    two.batch([Put(key, b"two"), Put(f"{key}/by", b"two")], [Expect(key, exists=False)]),
                    return_exceptions=True,
                )
                assert sorted(type(o).__name__ for o in outcomes) == ["ConditionFailed", "NoneType"]
                one.drop_cache()
                assert await one.get(key) == await one.get(f"{key}/by")
        finally:
            await one.close()
            await two.close()

    run(scenario)


def test_a_large_batch_takes_one_table_lock(url: str, schema: str) -> None:
    async def scenario() -> None:
        storage = PostgresqlStorage(url)
        try:
            big = [Put(f"big/{i:05d}", b"v") for i in range(5000)]
            await asyncio.gather(storage.batch(big), storage.put("big/00001", b"small"),
                                 storage.batch(big[:100], [Expect("big/00001", b"small")]))
            assert await storage.count("big/", prefix_end("big/")) == 5000
            assert await storage.get("big/00001") == b"v"
        finally:
            await storage.close()

    run(scenario)


def test_renewals_are_not_starved_by_a_stream_of_writes(url: str) -> None:
    """Every write share-locks the lock row; renewing must still get through under constant writes."""

    async def scenario() -> None:
        storage = ha(url, max_parallel=32)
        lock = lock_of(storage, "node-a")
        try:
            assert await lock.acquire()
            loop = asyncio.get_running_loop()
            stop = loop.time() + FAST.ttl * 4

            async def writer(n: int) -> int:
                done = 0
                while loop.time() < stop:
                    await storage.put(f"w/{n}", b"%d" % done)
                    done += 1
                return done

            counts = await asyncio.gather(*(writer(n) for n in range(32)))
            assert all(counts)
            assert lock.held, lock.lost_reason
        finally:
            await storage.close()

    run(scenario)
