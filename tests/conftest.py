"""Shared test harness: real coffer servers in subprocesses on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
import requests

ROOT_TOKEN = "root"

# --- Secrets never reach a server's log: every log written by the suite's servers is grepped, at the end, for
# the secrets the tests created (tests/hardening/test_secrets_in_logs.py runs last).

#: Every server log file written during this session.
SERVER_LOGS: list[Path] = []
#: Secret values tests created or received: tokens, unseal keys, AWS secret keys, passwords, kv values...
SECRETS: set[str] = set()
#: Shorter values would match ordinary words of a log line (the dev root token "root").
MIN_SECRET_LENGTH = 8
#: Fields whose values are secrets, in request bodies and answers alike.
SECRET_FIELDS = {"secret_key", "security_token", "session_token", "client_token", "secret_id", "password",
                 "root_token", "token", "wrapping_token", "jwt", "otp", "encoded_token", "encoded_root_token"}
#: Fields that are secrets only at the top level (sys/init's answer, sys/unseal's body).
TOP_SECRET_FIELDS = {"keys", "keys_base64", "key", "unseal_key"}


def remember_secret(*values: object) -> None:
    """Note secret values (strings, or lists of them) that no server log may contain."""
    for value in values:
        if isinstance(value, list | tuple | set):
            remember_secret(*value)
        elif isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            SECRETS.add(value)


def harvest_secrets(doc: object, top: bool = True, kv: bool = False) -> None:
    """Remember the secret fields of a JSON request body or answer (``kv``: every value is one)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in SECRET_FIELDS or (top and key in TOP_SECRET_FIELDS):
                remember_secret(value)
            if kv and isinstance(value, str):
                remember_secret(value)
            harvest_secrets(value, top=False, kv=kv and key == "data")
    elif isinstance(doc, list):
        for item in doc:
            harvest_secrets(item, top=False)


def _kv_write(method: str, url: str) -> bool:
    """A write to a kv mount as the tests name them (secret/, kv*/): its values are secrets."""
    path = url.split("/v1/", 1)[1] if "/v1/" in url else ""
    return method in ("PUT", "POST") and (path.startswith(("secret/", "kv")) or "/data/" in path)


@pytest.fixture(scope="session", autouse=True)
def _secrets_from_http():
    """Every request the tests send through ``requests`` (hvac included): its secret fields are remembered."""
    import json as _json

    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send

    def send(self, request, *args, **kwargs):
        response = original(self, request, *args, **kwargs)
        try:
            if "/v1/" in request.url:
                if request.body:
                    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
                    if body.lstrip().startswith("{"):
                        harvest_secrets(_json.loads(body), kv=_kv_write(request.method, request.url))
                if "json" in response.headers.get("content-type", ""):
                    harvest_secrets(response.json())
        except Exception:  # a body that is not JSON has nothing to harvest
            pass
        return response

    HTTPAdapter.send = send
    yield
    HTTPAdapter.send = original


def pytest_collection_modifyitems(session, config, items):
    """The log check runs after everything else, so it sees every log."""
    last = [item for item in items if item.nodeid.endswith("test_secrets_in_logs.py::test_no_secret_in_any_server_log")]
    for item in last:
        items.remove(item)
        items.append(item)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CofferProcess:
    """A ``coffer server`` running as a subprocess."""

    def __init__(self, args: list[str], port: int, home: Path, scheme: str = "http", verify: object = True) -> None:
        self.args = args
        self.port = port
        self.home = home
        self.addr = f"{scheme}://127.0.0.1:{port}"
        self.verify = verify
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = home / f"server-{port}.log"
        SERVER_LOGS.append(self.log_path)

    def start(self, timeout: float = 20.0) -> CofferProcess:
        env = {**os.environ, "HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coffer", "server", *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                requests.get(self.url("sys/seal-status"), timeout=1, verify=self.verify)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def url(self, path: str) -> str:
        return f"{self.addr}/v1/{path}"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def client(self, token: str | None = ROOT_TOKEN) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token, verify=self.verify)

    def request(self, method: str, path: str, token: str | None = ROOT_TOKEN, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers.setdefault("X-Vault-Token", token)
        return requests.request(method, self.url(path), headers=headers, timeout=30, verify=self.verify, **kwargs)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CofferProcess]:
    """One shared dev server (root token ``root``); tests use unique paths."""
    home = tmp_path_factory.mktemp("dev-home")
    port = free_port()
    server = CofferProcess(["-dev", "-dev-root-token-id", ROOT_TOKEN, "-dev-listen-address", f"127.0.0.1:{port}"],
                           port, home).start()
    yield server
    server.stop()


#: A kv version 1 mount on the shared dev server, for tests of v1 behaviour (the dev server's secret/ is kv
#: version 2, as Vault's; see ``kv1``).
KV1 = "kv-v1"


def ensure_kv1(server: CofferProcess, path: str = KV1) -> str:
    """Mount kv version 1 at ``path`` unless something is there already; answers the mount path."""
    r = server.request("POST", f"sys/mounts/{path}", json={"type": "kv", "options": {"version": "1"}})
    assert r.status_code == 204 or "already in use" in r.text, r.text
    return path


@pytest.fixture
def kv1(dev_server: CofferProcess) -> str:
    """The shared dev server's kv version 1 mount (``kv-v1``)."""
    return ensure_kv1(dev_server)


def write_config(directory: Path, port: int, extra: str = "", storage: str | None = None) -> Path:
    storage = storage or f'storage "sqlite" {{\n  path = "{directory / "coffer.db"}"\n}}'
    path = directory / "coffer.hcl"
    path.write_text(
        f'{storage}\n\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n{extra}\n'
    )
    return path


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[CofferProcess]:
    """An uninitialized server on a SQLite file in tmp_path (restartable)."""
    port = free_port()
    config = write_config(tmp_path, port)
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    yield server
    server.stop()


def init_and_unseal(server: CofferProcess, shares: int = 1, threshold: int = 1) -> tuple[list[str], str]:
    r = server.request("PUT", "sys/init", token=None, json={"secret_shares": shares, "secret_threshold": threshold})
    r.raise_for_status()
    body = r.json()
    remember_secret(body["keys"], body["keys_base64"], body["root_token"])
    for key in body["keys"][:threshold]:
        server.request("PUT", "sys/unseal", token=None, json={"key": key}).raise_for_status()
    return body["keys"], body["root_token"]


PLUGIN_DIR = Path(__file__).parent / "plugins"


def start_lease_server(tmp_path: Path, extra: str = "") -> CofferProcess:
    """An initialized, unsealed SQLite server with the test engine mounted at ``things/``.

    ``server.unseal_key`` and ``server.root_token`` allow restarts.
    """
    port = free_port()
    config = write_config(tmp_path, port, extra=f'plugin_directory = "{PLUGIN_DIR}"\n{extra}')
    server = CofferProcess(["-config", str(config)], port, tmp_path).start()
    keys, root = init_and_unseal(server)
    server.unseal_key, server.root_token = keys[0], root
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    return server


@pytest.fixture
def lease_server(tmp_path: Path) -> Iterator[CofferProcess]:
    """See ``start_lease_server``."""
    server = start_lease_server(tmp_path)
    yield server
    server.stop()


# --- AWS: moto's server with IAM auth enforced, and a fault proxy (see tests/aws_support.py)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory):
    """One moto server for the session, admin bootstrapped (``moto.admin``)."""
    from aws_support import MotoServer

    server = MotoServer(log_dir=tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(moto):
    """A fresh FaultProxy in front of the session's moto."""
    from aws_support import FaultProxy

    proxy = FaultProxy(moto.endpoint).start()
    yield proxy
    proxy.stop()
