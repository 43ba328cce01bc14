"""The UI's pages with many leases under one prefix (default 100,000): what one page costs the server.

Fills ``bench/creds/many/`` with N leases (the bench-only engine, through the whole pipeline), then times,
side by side on the same server:

* one page of the leases page, as the UI asks for it: ``LIST sys/leases/lookup/<prefix>?after=&limit=101``
  at the front, the middle and the end, vs the same LIST without after/limit (every id);
* the lookups the page makes for its 100 rows (``PUT sys/leases/lookup``);
* a scrape of ``sys/metrics?format=prometheus`` (from the lease counters, never a scan), vs
  ``GET sys/leases/count?prefix=`` (which counts keys).

    .venv/bin/python bench/ui_pages_bench.py [--leases 100000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from pathlib import Path

from common import Coffer, log
from leases_bench import fill, lease_count

PREFIX = "bench/creds/many/"


def timed(fn, reps: int = 5) -> float:
    """Median seconds of ``fn()``."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leases", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ui-pages-"))
    coffer = Coffer(workdir, plugins=True, extra_config='telemetry {\n  prometheus_retention_time = "1h"\n}\n')
    coffer.start()
    coffer.init_unseal()
    c = coffer.http()
    try:
        c.put("sys/mounts/bench", {"type": "benchlease"})
        took, errors = fill(coffer, c, args.leases, "many?ttl=720h", rate_hint=2000)
        total = lease_count(c, PREFIX)
        log(f"{total:,} leases under {PREFIX} in {took:.0f}s ({errors} error answers)")
        everything = c.request("LIST", f"sys/leases/lookup/{PREFIX}")[1]["data"]["keys"]
        middle, last = everything[len(everything) // 2], everything[-102]

        def page(after: str = "") -> list[str]:
            query = f"?limit=101&after={after}" if after else "?limit=101"
            return c.request("LIST", f"sys/leases/lookup/{PREFIX}{query}")[1]["data"]["keys"]

        assert page(middle)[0] > middle and len(page(last)) == 101
        full = timed(lambda: c.request("LIST", f"sys/leases/lookup/{PREFIX}"), reps=3)
        front, mid, end = timed(page), timed(lambda: page(middle)), timed(lambda: page(last))
        ids = page(middle)[:100]
        lookups = timed(lambda: [c.put("sys/leases/lookup", {"lease_id": PREFIX + i}) for i in ids], reps=3)
        def metrics() -> bytes:
            conn = http.client.HTTPConnection("127.0.0.1", coffer.port, timeout=60)
            conn.request("GET", "/v1/sys/metrics?format=prometheus", headers={"X-Vault-Token": coffer.root_token})
            body = conn.getresponse().read()
            conn.close()
            assert b"coffer_leases_live" in body
            return body

        scrape = timed(metrics)
        count = timed(lambda: lease_count(c, PREFIX), reps=3)
        print(f"\n{total:,} leases under {PREFIX}")
        print(f"  LIST without after/limit (every id): {full * 1000:8.1f} ms")
        print(f"  one page (limit=101) front/middle/end: {front * 1000:.1f} / {mid * 1000:.1f} / {end * 1000:.1f} ms"
              f"  ({full / max(front, mid, end):.0f}x less than everything)")
        print(f"  the page's 100 lease lookups:        {lookups * 1000:8.1f} ms")
        print(f"  sys/metrics?format=prometheus:       {scrape * 1000:8.1f} ms (lease counters in memory)")
        print(f"  sys/leases/count?prefix= (a scan):   {count * 1000:8.1f} ms")
    finally:
        c.close()
        coffer.stop()


if __name__ == "__main__":
    main()
