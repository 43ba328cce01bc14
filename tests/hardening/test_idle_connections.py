"""Idle and slow connections cannot lock other clients out (issue 11, #2)."""

from __future__ import annotations

import socket
import time

import requests

from conftest import CofferProcess, free_port, init_and_unseal, write_config

IDLE, SLOW = 5000, 200


def test_clients_are_answered_while_thousands_of_connections_idle_or_trickle(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port)
    text = config.read_text().replace("tls_disable = true", "tls_disable = true\n  http_read_timeout = \"3s\"")
    config.write_text(text)
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    sockets: list[socket.socket] = []
    try:
        _, root = init_and_unseal(server)
        server.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
        for _ in range(IDLE):  # connect and send nothing
            sockets.append(socket.create_connection(("127.0.0.1", port)))
        slow = []
        for i in range(SLOW):  # a body promised, then trickled
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"PUT /v1/kv/slow{i} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
            slow.append(s)
        sockets += slow
        # an ordinary client is still answered, and can write
        assert requests.get(server.url("sys/health"), timeout=10).status_code == 200
        r = requests.put(server.url("kv/ok"), headers={"X-Vault-Token": root}, json={"a": "b"}, timeout=10)
        assert r.status_code == 204
        # the slow bodies are answered 408 once http_read_timeout has passed, and nothing of theirs is stored
        deadline = time.monotonic() + 20
        answered = 0
        for s in slow:
            s.settimeout(max(deadline - time.monotonic(), 0.1))
            if s.recv(64).startswith(b"HTTP/1.1 408"):
                answered += 1
        assert answered == SLOW
        assert requests.get(server.url("kv/slow0"), headers={"X-Vault-Token": root}, timeout=10).status_code == 404
        assert requests.get(server.url("sys/health"), timeout=10).status_code == 200
    finally:
        for s in sockets:
            s.close()
        server.stop()
