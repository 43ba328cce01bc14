"""PostgreSQL storage: get() latency from the read cache vs from the database (not part of run.py).

    .venv/bin/python bench/pg_get.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--n 5000]

Makes a scratch schema, writes 1,000 values of 200 bytes (about a KV secret's ciphertext),
then times sequential get()s and 32 concurrent readers, three ways: a single-node storage
(cache on), the HA lock holder (cache on, the lock's deadline checked on each read) and an
HA standby (no cache: every read is a query). Prints median per-call latency and reads/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from urllib.parse import quote

import psycopg

from coffer.storage.base import Put
from coffer.storage.postgresql import PostgresqlStorage

KEYS = [f"logical/0000/secret/item-{i:04d}" for i in range(1000)]


async def sequential(storage: PostgresqlStorage, n: int) -> float:
    """Median microseconds per get() over ``n`` reads in batches of 100."""
    samples = []
    for start in range(0, n, 100):
        t0 = time.perf_counter()
        for i in range(start, start + 100):
            await storage.get(KEYS[i % len(KEYS)])
        samples.append((time.perf_counter() - t0) / 100 * 1e6)
    return statistics.median(samples)


async def concurrent(storage: PostgresqlStorage, n: int, tasks: int = 32) -> float:
    """Reads per second with ``tasks`` readers sharing ``n`` reads."""

    async def reader(offset: int) -> None:
        for i in range(offset, n, tasks):
            await storage.get(KEYS[i % len(KEYS)])

    t0 = time.perf_counter()
    await asyncio.gather(*(reader(k) for k in range(tasks)))
    return n / (time.perf_counter() - t0)


async def main(url: str, n: int) -> None:
    single = PostgresqlStorage(url)
    holder = PostgresqlStorage(url, ha_enabled=True)
    standby = PostgresqlStorage(url, ha_enabled=True)
    try:
        lock = holder.ha_lock(f"bench-{uuid.uuid4()}", "bench")
        assert lock is not None and await lock.acquire()
        await holder.batch([Put(k, bytes(200)) for k in KEYS])
        print(f"{'storage':<28}{'sequential us/get':>20}{'32 readers gets/s':>20}")
        for name, storage in (("single node (cache)", single), ("HA holder (cache)", holder),
                              ("HA standby (no cache)", standby)):
            await sequential(storage, len(KEYS))  # warm the pool, the prepared statements and the cache
            us = await sequential(storage, n)
            rate = await concurrent(storage, n)
            print(f"{name:<28}{us:>20.1f}{rate:>20,.0f}")
        single.drop_cache()
        us = []
        for _ in range(n // 100):
            single.drop_cache()  # a cold read every time
            us.append(await sequential(single, 100))
        print(f"{'single node, cache dropped':<28}{statistics.median(us):>20.1f}{'':>20}")
    finally:
        for storage in (single, holder, standby):
            await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    schema = f"coffer_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in args.url else "?"
        asyncio.run(main(f"{args.url}{sep}options={quote(f'-csearch_path={schema}')}", args.n))
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
