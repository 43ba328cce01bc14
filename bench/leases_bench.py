"""Benchmark 3: a million leases (quick: 100,000).

Leases are made through the whole pipeline and the lease manager, by HTTP
reads of ``bench/creds/<name>`` on the bench-only engine bench/plugins/benchlease.py
(no-op revoke), driven by wrk with many connections (bench/lua/creds.lua).

* restart + unseal + first served request, and RSS after it: with N live
  leases vs the same server with 0 leases (measured before the leases exist);
* storage bytes per lease;
* a sweep: M leases all falling due in the same second are revoked while a
  paced reader keeps reading a KV secret (its p99 is reported); the rate comes
  from polling ``GET sys/leases/count``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
from common import Coffer, Http, Row, fmt3, load, log, percentile, rss_mb

LONG_TTL = "720h"


def db_bytes(coffer: Coffer) -> int:
    return sum(p.stat().st_size for p in coffer.workdir.glob("coffer.db*") if p.is_file())


def lease_count(c: Http, prefix: str = "") -> int:
    path = "sys/leases/count" + (f"?prefix={prefix}" if prefix else "")
    return c.get(path)["data"]["lease_count"]


def restart(coffer: Coffer) -> dict[str, float]:
    """Stop, start, unseal, first KV read; answers the timings and the RSS after them."""
    coffer.stop()
    t0 = time.perf_counter()
    coffer.start()
    t_listen = time.perf_counter() - t0
    c = Http(coffer.port, coffer.root_token)
    coffer.unseal(c)
    t_unsealed = time.perf_counter() - t0
    value = c.get("secret/bench")["data"]
    t_first = time.perf_counter() - t0
    assert value["username"] == "bench-user"
    c.close()
    return {"listen_s": t_listen, "unsealed_s": t_unsealed, "first_request_s": t_first, "rss_mb": rss_mb(coffer.pid)}


def issue(coffer: Coffer, count: int, query: str, seconds_cap: float) -> tuple[int, float, int]:
    """Issue ``count`` leases with wrk (32 connections); answers (issued, seconds, errors)."""
    per_thread = (count + 1) // 2
    t0 = time.perf_counter()
    res = load(coffer.port, f"/v1/bench/creds/{query}", seconds=seconds_cap, connections=32, token=coffer.root_token,
               lua="creds.lua", limit_per_thread=per_thread)
    return res.requests, time.perf_counter() - t0, res.errors


def fill(coffer: Coffer, c: Http, target: int, query: str, rate_hint: float,
         before: float | None = None) -> tuple[float, int]:
    """Bring the count under bench/creds/<name> to >= ``target`` (stopping at unix time ``before``);
    answers (seconds, errors)."""
    name = query.split("?")[0]
    t0 = time.perf_counter()
    errors = 0
    for _ in range(5):  # wrk stops a thread after its share of answers; top up what is missing
        have = lease_count(c, f"bench/creds/{name}/")
        if have >= target:
            break
        cap = max(30.0, 3 * (target - have) / rate_hint)
        if before is not None:
            cap = min(cap, before - time.time())
            if cap < 1:
                break
        _, _, err = issue(coffer, target - have, query, seconds_cap=cap)
        errors += err
    return time.perf_counter() - t0, errors


class PacedReader:
    """Reads secret/bench at a fixed pace in a thread (4 connections x ~100 req/s), recording latencies."""

    def __init__(self, port: int, token: str, connections: int = 4, pace: float = 0.01) -> None:
        self.port, self.token, self.connections, self.pace = port, token, connections, pace
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rec: loadgen.Recorder | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            raw = loadgen.build_request(self.port, "GET", "/v1/secret/bench", {"X-Vault-Token": self.token})
            self.rec, _ = await loadgen.drive(self.port, lambda: raw, seconds=600, connections=self.connections,
                                              pace=self.pace, stop=self._stop)

        asyncio.run(main())

    def start(self) -> PacedReader:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> loadgen.Recorder:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        if self.rec is None:
            raise RuntimeError("the paced KV reader did not stop")
        return self.rec


def sweep(coffer: Coffer, c: Http, count: int, rate_hint: float, rep: int) -> dict[str, Any]:
    """``count`` leases due in the same second, then revoked while a paced reader reads KV."""
    name = f"due{rep}"
    issue_estimate = count / max(rate_hint, 200.0)
    due_at = int(time.time() + issue_estimate * 1.5 + 5)
    took, errors = fill(coffer, c, count, f"{name}?due_at={due_at}", rate_hint, before=due_at - 1)
    issued = lease_count(c, f"bench/creds/{name}/")
    if time.time() >= due_at:
        log(f"leases: WARNING issuing {count} leases took {took:.1f}s, past their due time")
    reader = PacedReader(coffer.port, coffer.root_token).start()
    samples: list[tuple[float, int]] = []
    try:
        deadline = due_at + 300
        while time.time() < deadline:
            n = lease_count(c, f"bench/creds/{name}/")
            samples.append((time.time(), n))
            if n == 0:
                break
            time.sleep(0.2)
    finally:
        rec = reader.stop()
    t_zero = samples[-1][0] if samples and samples[-1][1] == 0 else float("nan")
    started = next((t for t, n in samples if n < issued), float("nan"))
    during = [ms for ms in rec.latencies_ms]
    return {
        "leases": issued, "issue_s": took, "issue_errors": errors, "due_at": due_at,
        "sweep_s_from_due": t_zero - due_at, "sweep_s_from_first_drop": t_zero - started,
        "rate_from_due": issued / (t_zero - due_at), "kv_reads": rec.ok, "kv_errors": rec.errors,
        "kv_p50_ms": percentile(during, 50), "kv_p99_ms": percentile(during, 99),
        "kv_max_ms": max(during) if during else float("nan"), "polls": len(samples),
    }


def run(workdir: Path, *, quick: bool, reps: int = 3, leases: int | None = None,
        due: int | None = None) -> tuple[list[Row], dict[str, Any]]:
    n_leases = leases or (100_000 if quick else 1_000_000)
    n_due = due or (20_000 if quick else 100_000)
    coffer = Coffer(workdir / "leases", plugins=True)
    # the baseline: the same server, set up the same way, with 0 leases (restarted in turn with the other)
    zero = Coffer(workdir / "leases-zero", plugins=True)
    raw: dict[str, Any] = {"leases": n_leases, "due": n_due}
    try:
        for server in (coffer, zero):
            server.start()
            server.init_unseal()
            c = server.http()
            c.put("sys/mounts/bench", {"type": "benchlease"})
            c.put("sys/mounts/secret", {"type": "kv"})
            c.put("secret/bench", {"username": "bench-user", "password": "correct-horse-battery-staple"})
            c.get(f"bench/creds/warm?ttl={LONG_TTL}")
            c.put("sys/leases/revoke-prefix/bench/creds/warm")
            c.close()
        size0 = db_bytes(coffer)
        # N live leases with long TTLs
        c = coffer.http()
        t0 = time.perf_counter()
        took, errors = fill(coffer, c, n_leases, f"long?ttl={LONG_TTL}", rate_hint=2000)
        total = lease_count(c)
        rate = total / took
        c.close()
        log(f"leases: {total:,} leases issued in {took:.1f}s ({rate:,.0f}/s, {errors} error answers)")
        # checkpoint so the size is of the database, not of a WAL waiting to be folded in
        coffer.stop()
        import sqlite3

        conn = sqlite3.connect(coffer.db_path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = db_bytes(coffer)
        os.sync()  # the file just written must not be flushed during the timed restarts
        time.sleep(1)
        empty, full = [], []
        for _ in range(reps):  # interleaved: 0 leases, N leases, 0, N, ...
            empty.append(restart(zero))
            full.append(restart(coffer))
        zero.stop()
        log(f"leases: 0 leases: restart->first request {fmt3([r['first_request_s'] for r in empty], 3)} s, "
            f"RSS {fmt3([r['rss_mb'] for r in empty], 1)} MB")
        log(f"leases: {total} leases: restart->first request {fmt3([r['first_request_s'] for r in full], 3)} s, "
            f"RSS {fmt3([r['rss_mb'] for r in full], 1)} MB")
        raw.update({"issued": total, "issue_s": took, "issue_rate": rate, "issue_errors": errors,
                    "db_bytes_empty": size0, "db_bytes": size, "restart_empty": empty, "restart_full": full,
                    "wall_s": time.perf_counter() - t0})
        # the sweep, with the N leases still there
        c = coffer.http()
        sweeps = []
        for rep in range(reps):
            s = sweep(coffer, c, n_due, rate, rep)
            sweeps.append(s)
            log(f"leases: sweep {rep + 1}: {s['leases']:,} due leases revoked in {s['sweep_s_from_due']:.2f}s after "
                f"their due time ({s['rate_from_due']:,.0f}/s); KV reads during it: p99 {s['kv_p99_ms']:.1f} ms "
                f"({s['kv_reads']} reads, {s['kv_errors']} errors)")
        raw["sweeps"] = sweeps
        raw["left_after"] = lease_count(c)
        c.close()
    finally:
        coffer.stop()
        zero.stop()

    rows = []
    fe = [r["first_request_s"] for r in empty]
    ff = [r["first_request_s"] for r in full]
    ratio = statistics.median(ff) / statistics.median(fe)
    rows.append(Row(f"Restart+unseal+first request, {raw['issued']:,} leases vs 0", fmt3(ff, 2, " s"),
                    fmt3(fe, 2, " s") + " (0 leases)", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5))
    re_ = [r["rss_mb"] for r in empty]
    rf = [r["rss_mb"] for r in full]
    diff = statistics.median(rf) - statistics.median(re_)
    rows.append(Row(f"RSS after restart, {raw['issued']:,} leases vs 0", fmt3(rf, 1, " MB"),
                    fmt3(re_, 1, " MB") + " (0 leases)", f"{diff:+.1f} MB", "<= +50 MB", diff <= 50))
    per = (raw["db_bytes"] - raw["db_bytes_empty"]) / raw["issued"]
    rows.append(Row("Storage per lease (SQLite file growth / leases)", f"{per:,.0f} bytes",
                    f"{raw['db_bytes'] / 1e6:,.0f} MB for {raw['issued']:,}", "-", "report", None))
    rows.append(Row(f"Lease issue rate, wrk 32 connections ({raw['issued']:,}), 1 run",
                    f"{raw['issue_rate']:,.0f} leases/s", "-", "-", "report", None))
    rates = [s["rate_from_due"] for s in sweeps]
    rows.append(Row(f"Sweep of {n_due:,} leases due at once (from due time to count 0)", fmt3(rates, 0, "/s"), "-",
                    "-", ">= 5,000/s", statistics.median(rates) >= 5000))
    p99 = [s["kv_p99_ms"] for s in sweeps]
    rows.append(Row("KV read p99 during the sweep (paced reader, ~400 req/s)", fmt3(p99, 1, " ms"), "-", "-",
                    "report (all answered)", None if all(s["kv_errors"] == 0 for s in sweeps) else False))
    return rows, raw
