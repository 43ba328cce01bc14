"""Preparing the tables (synchronous: runs once, when the server starts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from coffer.storage.postgresql.options import _scrub

if TYPE_CHECKING:
    from coffer.storage.postgresql.storage import PostgresqlStorage

_SETUP_LOCK = 0x636F66666572  # "coffer": serialises table creation between nodes starting at once


def _error(storage: PostgresqlStorage, doing: str, exc: BaseException) -> ValueError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ValueError(f'storage "postgresql": {doing} {storage.display_url}: {_scrub(detail, storage._secrets)}')


def prepare_tables(storage: PostgresqlStorage) -> int:
    """Check the server, create missing tables, check their layout; the data table's oid."""
    try:
        conn = psycopg.connect(storage._url, autocommit=True, **storage._connect_kwargs)
    except psycopg.Error as exc:
        raise _error(storage, "cannot connect to", exc) from None
    try:
        with conn:
            encoding = str(conn.execute("SHOW server_encoding").fetchone()[0])  # type: ignore[index]
            if encoding.upper().replace("-", "") != "UTF8":
                raise ValueError(
                    f'storage "postgresql": the database at {storage.display_url} uses the {encoding} encoding; '
                    "coffer needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
                )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_SETUP_LOCK,))
                conn.execute(sql.SQL(
                    'CREATE TABLE IF NOT EXISTS {} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)'
                ).format(storage._sql.kv))
                if storage.ha_enabled:
                    conn.execute(sql.SQL(
                        'CREATE TABLE IF NOT EXISTS {} (ha_key text COLLATE "C" PRIMARY KEY,'
                        ' ha_identity text COLLATE "C" NOT NULL, ha_value text,'
                        " valid_until timestamptz NOT NULL)"
                    ).format(storage._sql.ha))
            oid = _check_layout(storage, conn, storage.table, {"key": ("text", True), "value": ("bytea", False)})
            if storage.ha_enabled:
                _check_layout(storage, conn, storage.ha_table, {
                    "ha_key": ("text", False), "ha_identity": ("text", False),
                    "ha_value": ("text", False), "valid_until": ("timestamp with time zone", False),
                })
            return oid
    except psycopg.Error as exc:
        raise _error(storage, "cannot prepare the tables at", exc) from None


def _check_layout(
    storage: PostgresqlStorage, conn: psycopg.Connection, table: tuple[str, ...], want: dict[str, tuple[str, bool]]
) -> int:
    name = ".".join(table)
    row = conn.execute("SELECT to_regclass(%s)::oid", (sql.Identifier(*table).as_string(conn),)).fetchone()
    if row is None or row[0] is None:
        raise ValueError(f'storage "postgresql": table {name} is missing at {storage.display_url}')
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
                f'storage "postgresql": table {name} at {storage.display_url} does not have the layout coffer '
                f"needs (column {column} {kind}{collation}); "
                'name another table with the "table"/"ha_table" options'
            )
    return oid
