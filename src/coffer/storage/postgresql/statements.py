"""The SQL the backend runs: every statement composed for the configured tables, and the advisory locks."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql


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
    forget_members: sql.Composed = field(init=False)

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
        set_(self, "forget_members", q(
            "DELETE FROM {ha} WHERE ha_key >= %s AND ha_key < %s AND valid_until < now() - make_interval(secs => %s)"
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
