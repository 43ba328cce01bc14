"""The PostgreSQL server of the test suite (127.0.0.1:5432, user postgres, trust auth).

Each test gets a schema of its own, dropped afterwards; tests that need the server are
skipped, with the reason, where it does not answer (CI always starts it: ``.ci/run``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from urllib.parse import quote

import psycopg
import pytest

#: The database the schemas are made in (override with COFFER_TEST_PG_URL).
ADMIN_URL = os.environ.get("COFFER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@cache
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used by the tests, or None when it can."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {ADMIN_URL} ({' '.join(str(exc).split())})"
    return None


def require() -> None:
    """Skip the calling test when PostgreSQL is not reachable."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)


def schema_url(schema: str) -> str:
    """A connection URL whose unqualified table names resolve in ``schema``."""
    sep = "&" if "?" in ADMIN_URL else "?"
    return f"{ADMIN_URL}{sep}options={quote(f'-csearch_path={schema}')}"


def admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True)


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new, empty schema (its name), dropped with everything in it afterwards."""
    require()
    schema = f"coffer_test_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
