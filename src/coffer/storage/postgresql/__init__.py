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

from coffer.storage.postgresql.ha import LOCK_KEY, PostgresqlHALock
from coffer.storage.postgresql.options import (
    DEFAULT_HA_TABLE,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_PARALLEL,
    DEFAULT_TABLE,
    HATimings,
    mask_url,
)
from coffer.storage.postgresql.storage import PostgresqlStorage

__all__ = [
    "DEFAULT_HA_TABLE",
    "DEFAULT_MAX_IDLE",
    "DEFAULT_MAX_PARALLEL",
    "DEFAULT_TABLE",
    "HATimings",
    "LOCK_KEY",
    "PostgresqlHALock",
    "PostgresqlStorage",
    "mask_url",
]
