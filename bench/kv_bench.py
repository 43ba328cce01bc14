"""Benchmark 1: KV read/write throughput, coffer vs a bare ASGI app on the same HTTP server."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from common import Coffer, Http, LoadResult, Row, fmt3, load, log, raw_get, start_bare_app, stop

POLICY = 'path "secret/bench*" {\n  capabilities = ["create", "read", "update"]\n}\n'
SECRET = {"username": "bench-user", "password": "correct-horse-battery-staple", "url": "https://db.example:5432"}
PUT_BODY = b'{"username":"bench-user","password":"correct-horse-battery-staple","note":"written by wrk"}'


def setup_coffer(workdir: Path) -> tuple[Coffer, str]:
    """An initialized, unsealed SQLite server, kv at secret/, and a NON-root token allowed secret/bench*."""
    coffer = Coffer(workdir)
    coffer.start()
    coffer.init_unseal()
    c = coffer.http()
    c.put("sys/mounts/secret", {"type": "kv"})
    c.put("sys/policies/acl/bench-kv", {"policy": POLICY})
    token = c.put("auth/token/create", {"policies": ["bench-kv"], "no_default_policy": True, "ttl": "24h"}
                  )["auth"]["client_token"]
    c.put("secret/bench", SECRET)
    c.close()
    user = Http(coffer.port, token)
    user.get("secret/bench")  # the token works, the ACL allows it
    user.put("secret/bench-write", {"x": "1"})
    user.close()
    return coffer, token


def run(workdir: Path, *, quick: bool, reps: int = 3) -> tuple[list[Row], dict[str, Any]]:
    seconds = 4 if quick else 10
    coffer, token = setup_coffer(workdir / "kv")
    bare = None
    try:
        body = raw_get(coffer.port, "/v1/secret/bench", token)
        bare, bare_port = start_bare_app(workdir / "kv", body, "/v1/secret/bench")
        log(f"kv: coffer on :{coffer.port}, bare app on :{bare_port}; body {len(body)} bytes; "
            f"{reps} x {seconds}s per side, wrk 32 connections")
        # warm-up (first requests compile regexes, fill caches, grow the WAL file)
        for port in (bare_port, coffer.port):
            load(port, "/v1/secret/bench", seconds=1, token=token, lua="get.lua")
            load(port, "/v1/secret/bench-write", seconds=1, token=token, lua="put.lua", method="PUT",
                 body=PUT_BODY)
        res: dict[str, list[LoadResult]] = {k: [] for k in ("bare_read", "coffer_read", "bare_write",
                                                            "coffer_write")}
        for rep in range(reps):
            res["bare_read"].append(load(bare_port, "/v1/secret/bench", seconds=seconds, token=token))
            res["coffer_read"].append(load(coffer.port, "/v1/secret/bench", seconds=seconds, token=token))
            res["bare_write"].append(load(bare_port, "/v1/secret/bench-write", seconds=seconds, token=token,
                                          lua="put.lua", method="PUT", body=PUT_BODY))
            res["coffer_write"].append(load(coffer.port, "/v1/secret/bench-write", seconds=seconds, token=token,
                                            lua="put.lua", method="PUT", body=PUT_BODY))
            log(f"kv rep {rep + 1}: read {res['coffer_read'][-1].rps:.0f} vs {res['bare_read'][-1].rps:.0f} req/s, "
                f"write {res['coffer_write'][-1].rps:.0f} vs {res['bare_write'][-1].rps:.0f} req/s")
        errors = {k: sum(r.errors for r in v) for k, v in res.items()}
        if any(errors.values()):
            raise RuntimeError(f"error answers during the KV benchmark: {errors}")
        # the write really happened (durably: synchronous=FULL in coffer's SQLite storage)
        assert Http(coffer.port, token).get("secret/bench-write")["data"]["note"] == "written by wrk"
    finally:
        stop(bare)
        coffer.stop()

    rows = []
    for kind, target in (("read", 0.5), ("write", 0.2)):
        c = [r.rps for r in res[f"coffer_{kind}"]]
        b = [r.rps for r in res[f"bare_{kind}"]]
        ratios = [x / y for x, y in zip(c, b, strict=True)]
        ratio = statistics.median(ratios)
        what = "GET secret/bench, non-root token + ACL" if kind == "read" else \
            "PUT secret/bench-write, durable (SQLite synchronous=FULL)"
        rows.append(Row(f"KV {kind} req/s ({what})", fmt3(c), fmt3(b), f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                        f">= {target}x", ratio >= target))
        cp = [r.p99_ms for r in res[f"coffer_{kind}"]]
        bp = [r.p99_ms for r in res[f"bare_{kind}"]]
        rows.append(Row(f"KV {kind} p99 latency", fmt3(cp, 2, " ms"), fmt3(bp, 2, " ms"),
                        f"{statistics.median(cp) / statistics.median(bp):.1f}x", "report", None))
    raw = {k: [r.as_dict() for r in v] for k, v in res.items()}
    raw["seconds"] = seconds
    raw["tool"] = res["coffer_read"][0].tool
    return rows, raw


def profile(workdir: Path, kind: str, seconds: int = 6) -> str:
    """py-spy profile (text summary) of coffer serving the KV ``kind`` load with wrk."""
    import profiling

    coffer, token = setup_coffer(workdir / f"kv-profile-{kind}")
    try:
        lua, path = ("get.lua", "/v1/secret/bench") if kind == "read" else ("put.lua", "/v1/secret/bench-write")
        load(coffer.port, path, seconds=2, token=token, lua=lua)
        out = workdir / f"kv-profile-{kind}.txt"
        spy = profiling.start(coffer.pid, seconds, out)
        res = load(coffer.port, path, seconds=seconds - 1, token=token, lua=lua)
        profiling.finish(spy)
        return (f"coffer under wrk {kind} load for {seconds - 1}s ({res.rps:,.0f} req/s while sampled), "
                f"all threads of the server process:\n\n" + profiling.summarise(out, 30))
    finally:
        coffer.stop()
