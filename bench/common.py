"""Shared pieces of the benchmarks: processes that always get stopped, a coffer
server driven over HTTP, wrk (or the Python load generator), statistics.

Every process started here is registered in ``PROCS`` and stopped by
``stop_all()`` (run.py calls it in ``finally``, at exit and on SIGTERM/SIGINT);
children also get SIGTERM from the kernel if the benchmark process dies.
All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
PLUGIN_DIR = BENCH_DIR / "plugins"
PYTHON = sys.executable
HOST = "127.0.0.1"

PROCS: list[subprocess.Popen[Any]] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
    """Start a child (registered for cleanup) with stdout+stderr to ``log_path``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, preexec_fn=_die_with_parent)
    PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(ValueError):
        PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(PROCS)):
        with contextlib.suppress(Exception):
            stop(proc, timeout=10)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_port(port: int, proc: subprocess.Popen[Any] | None, timeout: float, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{tail}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout}s")


# --------------------------------------------------------------------------- HTTP


class Http:
    """A tiny keep-alive JSON client for one server (stdlib only, low overhead)."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 120.0) -> None:
        self.port, self.token, self.timeout = port, token, timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                ok: tuple[int, ...] = (200, 204)) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        tok = token if token is not None else self.token
        if tok:
            headers["X-Vault-Token"] = tok
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, "/v1/" + path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected):
                # a kept-alive connection the server had closed: reconnect once (never after a timeout,
                # which may have been a slow request that did happen)
                self.close()
                if attempt:
                    raise
            except (http.client.HTTPException, OSError):
                self.close()
                raise
        parsed = json.loads(raw) if raw else None
        if ok and resp.status not in ok:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {raw[:500]!r}")
        return resp.status, parsed

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)[1]

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)[1]


# --------------------------------------------------------------------------- coffer


@dataclass
class Coffer:
    """A ``coffer server -config`` subprocess on a SQLite file in ``workdir``."""

    workdir: Path
    plugins: bool = False
    port: int = 0
    proc: subprocess.Popen[Any] | None = None
    unseal_key: str = ""
    root_token: str = ""
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.workdir / "coffer.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "coffer.log"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        extra = self.extra_config
        if self.plugins:
            extra += f'\nplugin_directory = "{PLUGIN_DIR}"'
        cfg = self.workdir / "coffer.hcl"
        cfg.write_text(
            f'storage "sqlite" {{\n  path = "{self.db_path}"\n}}\n\n'
            f'listener "tcp" {{\n  address = "{HOST}:{self.port}"\n  tls_disable = true\n}}\n'
            f'log_level = "warn"\n{extra}\n'
        )
        return cfg

    def start(self, timeout: float = 60.0) -> float:
        """Start the process; answers the seconds until it listened."""
        cfg = self.write_config()
        t0 = time.perf_counter()
        self.proc = spawn([PYTHON, "-m", "coffer", "server", "-config", str(cfg)], self.log_path,
                          env={"HOME": str(self.workdir), **self.env})
        wait_port(self.port, self.proc, timeout, self.log_path)
        return time.perf_counter() - t0

    def http(self, token: str | None = None) -> Http:
        return Http(self.port, token if token is not None else self.root_token)

    def init_unseal(self) -> None:
        c = Http(self.port)
        body = c.put("sys/init", {"secret_shares": 1, "secret_threshold": 1})
        self.unseal_key, self.root_token = body["keys"][0], body["root_token"]
        self.unseal(c)
        c.close()

    def unseal(self, client: Http | None = None) -> None:
        c = client or Http(self.port)
        status = c.put("sys/unseal", {"key": self.unseal_key})
        if status.get("sealed"):
            raise RuntimeError(f"still sealed after the unseal key: {status}")
        if client is None:
            c.close()

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# --------------------------------------------------------------------------- load generation


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers plus socket errors
    tool: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    requests = int(m.group(1))
    seconds = _ms(m.group(2) + m.group(3)) / 1000
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return LoadResult(requests, seconds, rps, p50, p99, errors, "wrk")


WRK: str | None = None


def ensure_wrk(allow_install: bool = True) -> str | None:
    """wrk's path: installed with apt-get when missing (apt-get update on a first failure);
    None if that is impossible (the Python load generator is used instead)."""
    global WRK
    found = shutil.which("wrk")
    if found or not allow_install or not shutil.which("apt-get"):
        WRK = found
        return WRK
    log("wrk is missing: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "timeout": 300}
    try:
        if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:
            subprocess.run(["apt-get", "update"], **quiet)
            subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet)
    except (OSError, subprocess.TimeoutExpired):
        pass
    WRK = shutil.which("wrk")
    if WRK is None:
        log("wrk could not be installed: falling back to the Python load generator (bench/loadgen.py)")
    return WRK


def load(port: int, path: str, *, seconds: float, connections: int = 32, method: str = "GET",
         body: bytes = b"", token: str = "", lua: str = "get.lua", limit_per_thread: int = 0,
         threads: int = 2, timeout_s: int = 10, env: dict[str, str] | None = None) -> LoadResult:
    """Closed-loop load on ``http://127.0.0.1:port{path}``: wrk (with ``lua``) if present, else loadgen.

    ``limit_per_thread`` (creds.lua, request.lua): each wrk thread stops after that many answers.
    ``env``: more variables for the wrk script (request.lua reads BENCH_METHOD and BENCH_BODY).
    """
    if WRK:
        args = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s", f"--timeout={timeout_s}s", "--latency",
                "-s", str(LUA_DIR / lua), f"http://{HOST}:{port}{path}"]
        import tempfile

        done_dir = tempfile.mkdtemp(prefix="wrk-done-")
        env = {**os.environ, "BENCH_TOKEN": token, "BENCH_LIMIT_PER_THREAD": str(limit_per_thread),
               "BENCH_DONE_DIR": done_dir, **(env or {})}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                preexec_fn=_die_with_parent)
        PROCS.append(proc)
        try:
            if limit_per_thread:  # every thread stopped after its share: end wrk now (SIGINT prints the summary)
                deadline = time.monotonic() + seconds + 5
                while proc.poll() is None and time.monotonic() < deadline:
                    if len(os.listdir(done_dir)) >= threads:
                        proc.send_signal(signal.SIGINT)
                        break
                    time.sleep(0.02)
            out, _ = proc.communicate(timeout=seconds + 60)
        finally:
            stop(proc)
            shutil.rmtree(done_dir, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
        return parse_wrk(out)
    from loadgen import run_load

    headers = {"X-Vault-Token": token} if token else {}
    if method in ("PUT", "POST"):
        headers["Content-Type"] = "application/json"
    return run_load(port, path, seconds=seconds, connections=connections, method=method, body=body,
                    headers=headers, max_requests=limit_per_thread * threads or None)


# --------------------------------------------------------------------------- statistics


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def fmt3(values: list[float], digits: int = 0, unit: str = "") -> str:
    lo, med, hi = summary(values)
    return f"{med:,.{digits}f}{unit} (min {lo:,.{digits}f}, max {hi:,.{digits}f})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def raw_get(port: int, path: str, token: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"X-Vault-Token": token})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path} -> {resp.status}: {body!r}")
    return body


def start_bare_app(folder: Path, body: bytes, path: str) -> tuple[subprocess.Popen[Any], int]:
    """bench/bare_app.py on a free port, answering GETs with ``body`` (coffer's answer to ``path``): the HTTP server
    alone, with none of coffer's work. Answers the process and its port."""
    folder.mkdir(parents=True, exist_ok=True)
    body_file = folder / "bare-body.json"
    body_file.write_bytes(body)
    port = free_port()
    log_path = folder / "bare.log"
    proc = spawn([PYTHON, str(BENCH_DIR / "bare_app.py"), "--port", str(port), "--body-file", str(body_file)],
                 log_path)
    wait_port(port, proc, 30, log_path)
    assert raw_get(port, path, "") == body, "the bare app must answer the same bytes"
    return proc, port


@dataclass
class Row:
    """One line of the final table. ``passed`` None means informational (no target)."""

    name: str
    coffer: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None
    detail: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")
