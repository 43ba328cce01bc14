"""The soak: mixed load on a real server while AWS misbehaves and the server is killed, then the books are checked.

Used by tests/hardening/test_soak.py (a minute, in the suite) and bench/soak.py (`make soak`, ten minutes).
KV writes, AWS issues and revokes, token create/revoke run from a few threads; a proxy in front of moto
fails a share of AWS calls (throttling, 500s, dropped answers, answers lost after the work was done, 5 s
stalls); the server is SIGKILLed and restarted on a timer. At the end:

* every write acknowledged with a 2xx reads back;
* no 500 at all (AWS trouble answers 502 or 429; sealed or restarting, 503 or a refused connection);
* no lease lost: every acknowledged, unrevoked lease is still known;
* no orphan: after coffer revokes all its leases, moto has no IAM user of the soak's role left;
* no write-ahead entry left after the last restart's rollback;
* the server's memory growth (RSS before each kill, against the first) stays under a bound.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from aws_support import FaultProxy, _Fault
from conftest import CofferProcess, free_port, init_and_unseal, write_config

CHAOS_KINDS = ("throttle", "error500", "drop", "drop_after", "timeout")
ROLE_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}'
FULL_IAM = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:*", "sts:*"], "Resource": "*"}]}
#: Statuses a request may get while AWS fails and the server restarts; anything else is a finding.
ALLOWED = {200, 204, 202, 403, 404, 429, 502, 503}


class ChaosProxy(FaultProxy):
    """A fault proxy that fails each AWS call with probability ``rate``, with a random kind of fault."""

    def __init__(self, target: str, rate: float, stall: float = 5.0, seed: int = 0) -> None:
        super().__init__(target, timeout_hold=stall)
        self.rate = rate
        self.enabled = True
        self._random = random.Random(seed)

    def _take_fault(self, action: str) -> _Fault | None:
        with self._lock:
            if not self.enabled or self._random.random() >= self.rate:
                return None
            kind = self._random.choice(CHAOS_KINDS)
        return _Fault(action, kind, None, self.timeout_hold)


@dataclass
class SoakResult:
    seconds: float = 0.0
    kills: int = 0
    statuses: Counter[Any] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    kv_acknowledged: int = 0
    leases_issued: int = 0
    leases_revoked: int = 0
    tokens: int = 0
    aws_calls: int = 0
    aws_faults: int = 0
    rss_mb: list[float] = field(default_factory=list)

    @property
    def rss_growth_mb(self) -> float:
        return max(self.rss_mb) - self.rss_mb[0] if self.rss_mb else 0.0


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Soak:
    def __init__(self, workdir: Path, moto: Any, *, seconds: float, kill_every: float, fault_rate: float = 0.3,
                 rss_limit_mb: float = 100.0) -> None:
        self.workdir, self.moto = workdir, moto
        self.seconds, self.kill_every, self.rss_limit_mb = seconds, kill_every, rss_limit_mb
        self.proxy = ChaosProxy(moto.endpoint, fault_rate)
        self.result = SoakResult()
        self.role = f"soak{uuid.uuid4().hex[:6]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kv: dict[str, str] = {}
        self._leases: dict[str, str] = {}  # lease id -> access key, acknowledged and not revoked
        self.server: CofferProcess | None = None

    # -- setup and restarts -------------------------------------------------------

    def _start_server(self) -> None:
        port = free_port()
        config = write_config(self.workdir, port)
        self.server = CofferProcess(["-config", str(config)], port, self.workdir).start()
        keys, self.root = init_and_unseal(self.server)
        self.key = keys[0]
        s = self.server
        key = self.moto.make_user(f"soakroot-{uuid.uuid4().hex[:6]}", FULL_IAM)
        s.request("POST", "sys/mounts/aws", token=self.root, json={"type": "aws"}).raise_for_status()
        s.request("PUT", "aws/config/root", token=self.root, json={
            "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
            "iam_endpoint": self.proxy.endpoint, "sts_endpoint": self.proxy.endpoint, "max_retries": 2,
        }).raise_for_status()
        s.request("PUT", f"aws/roles/{self.role}", token=self.root,
                  json={"credential_type": "iam_user", "policy_document": ROLE_POLICY}).raise_for_status()
        s.request("POST", "sys/mounts/kv", token=self.root, json={"type": "kv"}).raise_for_status()

    def _restart(self, sig: int = signal.SIGKILL) -> None:
        assert self.server is not None
        proc = self.server.proc
        if proc is not None:
            self.result.rss_mb.append(_rss_mb(proc.pid))
        self.server.stop(sig)
        self.server.start()
        for _ in range(50):  # a fresh process: unseal it
            with contextlib.suppress(requests.RequestException):
                r = self.server.request("PUT", "sys/unseal", token=None, json={"key": self.key})
                if r.status_code == 200 and not r.json()["sealed"]:
                    return
            time.sleep(0.1)
        self.result.findings.append("the server did not unseal after a restart")

    # -- the load -----------------------------------------------------------------

    def _call(self, session: requests.Session, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        assert self.server is not None
        try:
            r = session.request(method, self.server.url(path), headers={"X-Vault-Token": kwargs.pop("token", self.root)},
                                timeout=60, **kwargs)
        except requests.RequestException:
            with self._lock:
                self.result.statuses["refused"] += 1
            return None
        with self._lock:
            self.result.statuses[r.status_code] += 1
            if r.status_code not in ALLOWED:
                self.result.findings.append(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        return r

    def _kv_worker(self, n: int) -> None:
        session, i = requests.Session(), 0
        while not self._stop.is_set():
            i += 1
            path, value = f"kv/w{n}/{i}", uuid.uuid4().hex
            r = self._call(session, "PUT", path, json={"v": value})
            if r is not None and r.status_code == 204:
                with self._lock:
                    self._kv[path] = value

    def _aws_worker(self) -> None:
        session = requests.Session()
        mine: list[str] = []
        while not self._stop.is_set():
            if mine and random.random() < 0.4:
                lease_id = mine.pop(random.randrange(len(mine)))
                r = self._call(session, "PUT", "sys/leases/revoke", json={"lease_id": lease_id})
                with self._lock:
                    if r is not None and r.status_code == 204:
                        self._leases.pop(lease_id, None)
                        self.result.leases_revoked += 1
                    else:  # failed or unknown: coffer keeps retrying; it may be gone or still there
                        self._leases.pop(lease_id, None)
                continue
            r = self._call(session, "GET", f"aws/creds/{self.role}")
            if r is not None and r.status_code == 200:
                body = r.json()
                mine.append(body["lease_id"])
                with self._lock:
                    self._leases[body["lease_id"]] = body["data"]["access_key"]
                    self.result.leases_issued += 1

    def _token_worker(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            r = self._call(session, "POST", "auth/token/create", json={"policies": ["default"], "ttl": "10m"})
            if r is not None and r.status_code == 200:
                token = r.json()["auth"]["client_token"]
                self._call(session, "POST", "auth/token/revoke-self", token=token)
                with self._lock:
                    self.result.tokens += 1

    # -- the run --------------------------------------------------------------------

    def run(self) -> SoakResult:
        self.proxy.start()
        try:
            self._start_server()
            self._run_load()
            self._check()
        finally:
            self.proxy.stop()
            if self.server is not None:
                self.server.stop()
        return self.result

    def _run_load(self) -> None:
        workers = [threading.Thread(target=self._kv_worker, args=(n,)) for n in range(2)]
        workers += [threading.Thread(target=self._aws_worker) for _ in range(2)]
        workers.append(threading.Thread(target=self._token_worker))
        start = time.monotonic()
        for w in workers:
            w.start()
        next_kill = start + self.kill_every
        while time.monotonic() - start < self.seconds:
            time.sleep(0.2)
            if time.monotonic() >= next_kill:
                self._restart()
                self.result.kills += 1
                next_kill = time.monotonic() + self.kill_every
        self._stop.set()
        for w in workers:
            w.join(timeout=120)
        self.result.seconds = time.monotonic() - start
        self.result.aws_calls = len(self.proxy.calls)
        self.result.aws_faults = sum(1 for _, status in self.proxy.calls if status is None or status >= 400)

    def _check(self) -> None:
        assert self.server is not None
        findings = self.result.findings
        self.proxy.enabled = False  # AWS behaves again
        self._restart()  # the unseal rolls back every write-ahead entry older than it
        s = self.server
        session = requests.Session()
        for path, value in self._kv.items():
            r = s.request("GET", path, token=self.root)
            if r.status_code != 200 or r.json()["data"] != {"v": value}:
                findings.append(f"acknowledged write {path} reads back {r.status_code} {r.text[:200]}")
        self.result.kv_acknowledged = len(self._kv)
        for lease_id, access_key in self._leases.items():
            r = s.request("PUT", "sys/leases/lookup", token=self.root, json={"lease_id": lease_id})
            if r.status_code != 200:
                findings.append(f"lease {lease_id} was acknowledged and never revoked, but coffer lost it")
            elif not self.moto.user_of(access_key):
                findings.append(f"the IAM user of live lease {lease_id} is gone")
        deadline = time.monotonic() + 60
        while _wal_entries(self.workdir / "coffer.db") and time.monotonic() < deadline:
            time.sleep(0.5)
        if left := _wal_entries(self.workdir / "coffer.db"):
            findings.append(f"{left} write-ahead entries were not rolled back")
        r = s.request("PUT", f"sys/leases/revoke-prefix/aws/creds/{self.role}", token=self.root)
        if r.status_code not in (200, 204):
            findings.append(f"revoke-prefix answered {r.status_code} {r.text[:300]}")
        orphans = [u for u in self.moto.user_names() if f"-{self.role}-" in u]
        if orphans:
            findings.append(f"{len(orphans)} IAM user(s) of the role survive every lease: {orphans[:5]}")
        with contextlib.suppress(requests.RequestException):
            session.close()
        if self.result.rss_growth_mb > self.rss_limit_mb:
            findings.append(f"RSS grew by {self.result.rss_growth_mb:.0f} MB (limit {self.rss_limit_mb:.0f})")


def _wal_entries(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with contextlib.closing(conn):
        return conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'logical/%/wal/%'").fetchone()[0]
