"""Serving while thousands of connections sit idle or trickle (hardening: the 1,024-connection lockout).

KV reads (8 connections, closed loop) on a SQLite server, alone and then with 5,000 connections that
send nothing plus 200 that trickle a body, side by side in one run; the ratio is loaded / alone.
The test suite proves the server still answers under that load (tests/hardening/test_idle_connections.py);
this row shows what it costs.
"""

from __future__ import annotations

import socket
import statistics
from pathlib import Path
from typing import Any

from common import Coffer, Row, fmt3, load, log


def _open(port: int, idle: int, slow: int, token: str) -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    for i in range(slow):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"PUT /v1/kv/slow{i} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {token}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode())
        socks.append(s)
    return socks


def run(workdir: Path, *, quick: bool, reps: int) -> tuple[list[Row], dict[str, Any]]:
    seconds = 5 if quick else 15
    server = Coffer(workdir / "idle", extra_config="")
    server.start()
    server.init_unseal()
    http = server.http()
    http.put("sys/mounts/kv", {"type": "kv", "options": {"version": "1"}})
    http.put("kv/bench", {"value": "x" * 64})
    raw: dict[str, list[Any]] = {"alone": [], "loaded": []}
    try:
        for rep in range(reps):
            raw["alone"].append(load(server.port, "/v1/kv/bench", seconds=seconds, connections=8,
                                     token=server.root_token))
            socks = _open(server.port, 5000, 200, server.root_token)
            try:
                raw["loaded"].append(load(server.port, "/v1/kv/bench", seconds=seconds, connections=8,
                                          token=server.root_token))
            finally:
                for s in socks:
                    s.close()
            log(f"idle: rep {rep + 1}: {raw['alone'][-1].rps:.0f} req/s alone, {raw['loaded'][-1].rps:.0f} "
                "with 5,000 idle + 200 slowloris connections")
    finally:
        http.close()
        server.stop()

    def values(kind: str, attr: str) -> list[float]:
        return [getattr(r, attr) for r in raw[kind]]

    def ratio(attr: str) -> str:
        return f"{statistics.median(values('loaded', attr)) / max(statistics.median(values('alone', attr)), 1e-9):.2f}x"

    rows = [
        Row("KV read req/s with 5,000 idle + 200 slowloris connections (vs none)", fmt3(values("loaded", "rps")),
            fmt3(values("alone", "rps")), ratio("rps"), "info", None),
        Row("KV read p99 ms with 5,000 idle + 200 slowloris connections (vs none)",
            fmt3(values("loaded", "p99_ms"), 1), fmt3(values("alone", "p99_ms"), 1), ratio("p99_ms"), "info", None),
    ]
    return rows, {k: [vars(r) for r in v] for k, v in raw.items()}
