"""Idle and slow connections cannot lock other clients out (issue 11, #2)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
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


# --- The listener's own timeouts: a connection that never finishes its headers, or sits idle between requests,
# is closed by the server (the limit is short here; Vault's defaults are 10 s and 5 min).

#: How long a test waits for the server to close a connection whose timeout is 1 s.
CLOSE_DEADLINE = 15.0


@contextlib.contextmanager
def short_timeout_server(tmp_path, **timeouts: str) -> Iterator[CofferProcess]:
    """An uninitialized server whose listener has the given timeouts (sys/seal-status still answers), stopped
    at the end."""
    port = free_port()
    config = write_config(tmp_path, port)
    limits = "".join(f'\n  {name} = "{value}"' for name, value in timeouts.items())
    config.write_text(config.read_text().replace("tls_disable = true", "tls_disable = true" + limits))
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def closed_by_server(s: socket.socket, deadline: float) -> bool:
    """Read until the server closes ``s`` (end of stream or a reset); False if it is still open at ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if s.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def still_answered(server: CofferProcess) -> None:
    """A client on a fresh connection gets its answer."""
    assert requests.get(server.url("sys/seal-status"), timeout=10).status_code == 200


#: What an HTTP/2 client with prior knowledge sends first: the connection preface and an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("opening", [b"", H2_PREFACE], ids=["nothing", "http2-preface-then-nothing"])
def test_a_connection_that_sends_no_request_is_closed(tmp_path, opening):
    """A socket that never sends a request is closed, whether it sends nothing at all (the server once waited
    forever to learn which HTTP version it spoke) or opens HTTP/2 and then idles (HTTP/2 had no timeout)."""
    with short_timeout_server(tmp_path, http_read_header_timeout="1s") as server:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            idle.sendall(opening)
            assert closed_by_server(idle, time.monotonic() + CLOSE_DEADLINE)
        still_answered(server)


def test_headers_trickled_a_byte_at_a_time_are_cut_off(tmp_path):
    """Each byte arrives well within the timeout, yet the headers as a whole must be complete in time."""
    with short_timeout_server(tmp_path, http_read_header_timeout="1s") as server:
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            deadline = time.monotonic() + CLOSE_DEADLINE
            closed = False
            while not closed and time.monotonic() < deadline:
                try:
                    slow.send(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                # a pause between bytes that doubles as the check for the server's close
                closed = closed_by_server(slow, time.monotonic() + 0.2)
            assert closed, "the server kept reading headers trickled in for longer than its header timeout"
        still_answered(server)


def test_a_kept_alive_connection_idle_past_the_timeout_is_closed(tmp_path):
    """http_idle_timeout alone (the header timeout left at its 10 s default) bounds the wait between requests."""
    import http.client

    with short_timeout_server(tmp_path, http_idle_timeout="1s") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/v1/sys/seal-status")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.getheader("Connection", "").lower() != "close"
            answer.read()
            assert conn.sock is not None  # kept alive for a next request
            assert closed_by_server(conn.sock, time.monotonic() + CLOSE_DEADLINE)
        finally:
            conn.close()
        still_answered(server)
