"""High availability: KV on PostgreSQL vs SQLite, a read forwarded by a standby vs direct, and the time from
``kill -9`` of the active node to the first 2xx from the new one (not part of run.py).

    .venv/bin/python bench/ha_bench.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--n 500]

Real ``coffer server`` processes: one on SQLite, two sharing a scratch PostgreSQL schema with
``ha_enabled`` (production lock timings: TTL 15 s, renewed every 5 s, retried every second). Latencies
are medians of ``--n`` sequential requests over one kept-alive connection (requests.Session).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    def __init__(self, home: Path, storage: str) -> None:
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        config = home / "coffer.hcl"
        config.write_text(f'{storage}\nlistener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n  tls_disable = true\n}}\n'
                          f'api_addr = "{self.addr}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_TEST_HA_")}
        self.log = open(home / "server.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "coffer", "server", "-config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**env, "HOME": str(home)})
        self.session = requests.Session()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.session.get(self.url("sys/seal-status"), timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"server on {self.addr} did not start")

    def url(self, path: str) -> str:
        return f"{self.addr}/v1/{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.log.close()


def init(node: Node) -> tuple[str, str]:
    body = node.session.put(node.url("sys/init"), json={"secret_shares": 1, "secret_threshold": 1}).json()
    return body["keys"][0], body["root_token"]


def wait_active(nodes: list[Node]) -> Node:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for n in nodes:
            try:
                if n.session.get(n.url("sys/leader"), timeout=2).json().get("is_self"):
                    return n
            except requests.RequestException:
                pass
        time.sleep(0.05)
    raise RuntimeError("no active node")


def median_ms(node: Node, token: str, method: str, path: str, n: int) -> float:
    headers = {"X-Vault-Token": token}
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        if method == "PUT":
            r = node.session.put(node.url(path), headers=headers, json={"value": f"v{i}"})
        else:
            r = node.session.get(node.url(path), headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("COFFER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    schema = f"coffer_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.url else "?"
    pg_url = f"{args.url}{sep}options={quote(f'-csearch_path={schema}')}"
    tmp = Path(tempfile.mkdtemp(prefix="ha-bench-"))
    nodes: list[Node] = []
    try:
        sqlite = Node(tmp / "sqlite", f'storage "sqlite" {{\n  path = "{tmp / "coffer.db"}"\n}}')
        nodes.append(sqlite)
        key, root = init(sqlite)
        sqlite.session.put(sqlite.url("sys/unseal"), json={"key": key}).raise_for_status()
        pg_storage = f'storage "postgresql" {{\n  connection_url = "{pg_url}"\n  ha_enabled = "true"\n}}'
        a, b = Node(tmp / "pg-a", pg_storage), Node(tmp / "pg-b", pg_storage)
        nodes += [a, b]
        pg_key, pg_root = init(a)
        for n in (a, b):
            n.session.put(n.url("sys/unseal"), json={"key": pg_key}).raise_for_status()
        active = wait_active([a, b])
        standby = b if active is a else a
        for node, token in ((sqlite, root), (active, pg_root)):
            node.session.post(node.url("sys/mounts/kv"), headers={"X-Vault-Token": token},
                              json={"type": "kv"}).raise_for_status()
        rows = []
        for label, node, token in (("sqlite", sqlite, root), ("postgresql", active, pg_root)):
            write = median_ms(node, token, "PUT", "kv/bench", args.n)
            read = median_ms(node, token, "GET", "kv/bench", args.n)
            rows.append((label, write, read))
        direct = median_ms(active, pg_root, "GET", "kv/bench", args.n)
        forwarded = median_ms(standby, pg_root, "GET", "kv/bench", args.n)
        # kill -9 of the active node, then poll the standby until the first 2xx.
        active.proc.kill()
        killed = time.perf_counter()
        while True:
            try:
                r = standby.session.get(standby.url("kv/bench"), headers={"X-Vault-Token": pg_root}, timeout=5)
                if 200 <= r.status_code < 300:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.02)
        failover = time.perf_counter() - killed
        print(f"KV median latency over {args.n} sequential requests (ms):")
        for label, write, read in rows:
            print(f"  {label:<11} write {write:7.2f}   read {read:7.2f}")
        (_, sw, sr), (_, pw, pr) = rows
        print(f"  postgresql / sqlite: write x{pw / sw:.2f}, read x{pr / sr:.2f}")
        print(f"read direct from the active node {direct:.2f} ms, forwarded by a standby {forwarded:.2f} ms "
              f"(x{forwarded / direct:.2f})")
        print(f"kill -9 of the active node to the first 2xx from the new one (TTL 15 s): {failover:.1f} s")
    finally:
        for n in nodes:
            n.stop()
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
