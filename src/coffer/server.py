"""Wires a configuration into a running server: storage -> core -> HTTP."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coffer.client import save_token
from coffer.config import DEFAULT_PROMETHEUS_RETENTION, ServerConfig, parse_address
from coffer.core.autoseal import AwsKms
from coffer.core.core import Core
from coffer.core.expiration import PrefixResult
from coffer.core.seal import SealConfigDamaged
from coffer.engines import builtin_auth_methods, builtin_engines, load_plugins
from coffer.engines.aws import interrupt_all as interrupt_aws
from coffer.http.app import App
from coffer.http.body import BodyLimits
from coffer.storage import open_storage

log = logging.getLogger("coffer.server")
#: How long an in-memory server spends revoking its leases when it stops (-dev-revoke-timeout).
DEV_REVOKE_TIMEOUT = 30.0


async def dev_setup(core: Core, root_token_id: str | None, kv_version: int = 2) -> tuple[bytes, str]:
    """Initialize with one key share, unseal, and mount kv at secret/ (version 2, as Vault's dev server does;
    ``kv_version=1`` for the old behaviour, ``-dev-kv-v1``)."""
    keys, root_token = await core.initialize(1, 1, root_token_id=root_token_id)
    await core.submit_unseal_key(keys[0])
    await core.router.mount(core.router.new_entry("secret/", "kv", description="key/value secret storage",
                                                  options={"version": str(kv_version)}))
    return keys[0], root_token


async def serve(config: ServerConfig, *, dev: bool = False, dev_root_token_id: str | None = None,
                dev_revoke_timeout: float = DEV_REVOKE_TIMEOUT, dev_leave_leases: bool = False,
                dev_kv_v1: bool = False, announce: Callable[[str], object] = print) -> None:
    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    listener = config.listener
    host, port = parse_address(listener.address)
    _check_free(host, port)
    engines, auth_methods = builtin_engines(), builtin_auth_methods()
    if config.plugin_directory:
        plugin_engines, plugin_auth = load_plugins(config.plugin_directory)
        engines.update(plugin_engines)
        auth_methods.update(plugin_auth)
    storage = open_storage(config.storage.type, config.storage.options)
    protected = [config.plugin_directory or ""]
    if config.storage.type == "sqlite":
        protected.append(os.path.dirname(os.path.abspath(config.storage.options["path"])))
    core = Core(storage, default_lease_ttl=config.default_lease_ttl, max_lease_ttl=config.max_lease_ttl,
                storage_type=config.storage.type, engines=engines, auth_methods=auth_methods,
                audit_protected=tuple(protected), allow_audit_log_prefixing=config.allow_audit_log_prefixing,
                revocation_retry_window=config.revocation_retry_window)
    if storage.ha_enabled:
        try:
            api_addr, cluster_addr = ha_addresses(config)
        except ValueError:
            await storage.close()
            raise
        timings = getattr(storage, "timings", None)
        core.enable_ha(api_addr, cluster_addr, heartbeat_interval=getattr(timings, "heartbeat_interval", 5.0))
    # Prometheus' format needs a telemetry block, as in Vault; a dev server has it on, and open, as OpenBao's.
    core.metrics.prometheus_retention = config.prometheus_retention_time or (DEFAULT_PROMETHEUS_RETENTION if dev else 0)
    if not dev:  # a dev server is always Shamir with one key, as Vault's -dev without a seal stanza
        kms = next((s for s in config.seals if s.type == "awskms"), None)
        core.autoseal.configure(config.seal.type, AwsKms.from_options(kms.options) if kms else None)
    try:
        await core.load_seal_config()
    except SealConfigDamaged as exc:
        await storage.close()
        raise ValueError(str(exc)) from None
    tls = not listener.tls_disable
    _raise_open_files_limit(listener.max_connections + 1024)
    limits = BodyLimits(max_request_size=listener.max_request_size, read_timeout=listener.http_read_timeout,
                        max_json_depth=listener.max_json_depth)
    app = App(core, limits, ui=config.ui or dev, unauthenticated_metrics=listener.unauthenticated_metrics_access or dev)
    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,
        # HTTP/1.1 only: in granian's "auto" mode a connection that sends nothing waits forever for the bytes
        # that tell HTTP/1 from HTTP/2 (before any timeout below starts), and an HTTP/2 connection has no idle
        # timeout at all; either kind, opened by the thousand, held the server's connections forever.
        http=HTTPModes.http1,
        log_enabled=config.log_level == "debug",
        ssl_cert=Path(listener.tls_cert_file) if tls and listener.tls_cert_file else None,
        ssl_key=Path(listener.tls_key_file) if tls and listener.tls_key_file else None,
        ssl_protocol_min=SSLProtocols.tls13 if listener.tls_min_version == "tls13" else SSLProtocols.tls12,
        backlog=4096,
        # Connections served at once (granian's default is its backlog: 1,024 idle sockets locked everyone out).
        backpressure=listener.max_connections,
        # hyper closes a connection whose next request's headers take longer than this, which also bounds
        # how long a kept-alive connection may sit idle between requests; bodies are timed in http/body.py.
        http1_settings=HTTP1Settings(
            header_read_timeout=1000 * min(listener.http_read_header_timeout, listener.http_idle_timeout)),
    )
    scheme = "https" if tls else "http"
    if dev:
        key, root_token = await dev_setup(core, dev_root_token_id, kv_version=1 if dev_kv_v1 else 2)
        _write_token_file(root_token)
        announce(_dev_banner(f"{scheme}://{listener.address}", key, root_token))
    for warning in config.warnings:
        log.warning("%s", warning)
    loop = asyncio.get_running_loop()
    def stop() -> None:
        interrupt_aws()  # AWS calls in flight end now (503) instead of holding the shutdown
        server.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, core.audit.reopen)  # log rotation
    announce(f"coffer server listening on {scheme}://{listener.address} (storage: {config.storage.type})")
    core.autoseal.start()  # awskms: unseal with KMS now, retrying in the background while KMS fails
    try:
        await server.serve()
    finally:
        if config.storage.type == "inmem" and not core.sealed:
            await drain_leases(core, 0 if dev_leave_leases else dev_revoke_timeout, announce)
        if app.forwarder is not None:
            await app.forwarder.close()
        await core.shutdown()


def ha_addresses(config: ServerConfig) -> tuple[str, str]:
    """This node's api_addr and cluster_addr for HA: as configured, else derived from the listener (as Vault
    does: the listener's scheme and address; the cluster address on the next port)."""
    listener = config.listener
    scheme = "http" if listener.tls_disable else "https"
    host, port = parse_address(listener.address)
    api_addr = (config.api_addr or os.environ.get("VAULT_API_ADDR", "")).strip().rstrip("/")
    if not api_addr:
        if host in ("", "0.0.0.0", "::", "[::]"):
            raise ValueError(f'high availability needs api_addr: the listener address "{listener.address}" is not '
                             "one the other nodes can reach; set api_addr = \"https://this-node.example.com:8200\" "
                             "(the address clients and the other nodes use for this node)")
        shown = f"[{host}]" if ":" in host else host
        api_addr = f"{scheme}://{shown}:{port}"
    if not api_addr.startswith(("http://", "https://")):
        raise ValueError(f'api_addr must be a URL such as "https://node1.example.com:8200", not "{api_addr}"')
    cluster_addr = (config.cluster_addr or "").strip()
    if not cluster_addr:
        from urllib.parse import urlsplit

        parts = urlsplit(api_addr)
        cluster_addr = f"https://{parts.hostname}:{(parts.port or 8200) + 1}"
    return api_addr, cluster_addr


async def drain_leases(core: Core, timeout: float, announce: Callable[[str], object]) -> None:
    """Before an in-memory server stops: revoke its leases (for at most ``timeout`` seconds), then name
    what is left, since those leases (and the IAM users behind them) are forgotten with the process."""
    total = await core.expiration.count()
    if total and timeout > 0:
        log.info("revoking %d lease(s) before this in-memory server stops (at most %gs)", total, timeout)

        def progress(result: PrefixResult) -> None:
            log.info("revoked %d of %d lease(s)", result.revoked, total)

        try:
            await asyncio.wait_for(core.expiration.revoke_prefix("", progress), timeout)
        except TimeoutError:
            log.warning("gave up revoking leases after %gs", timeout)
    left = await core.expiration.leases(limit=10_000)
    if not left:
        if total:
            announce(f"Revoked all {total} lease(s) before stopping.")
        return
    lines = [f"{len(left)} lease(s) were not revoked and are forgotten with this in-memory server; "
             "clean up by hand what they stand for:"]
    for lease in left:
        user = lease.internal.get("username")
        lines.append(f"  {lease.lease_id}" + (f"  (IAM user {user})" if user else ""))
    announce("\n".join(lines))


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit towards ``wanted`` (never above the hard one)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open files limit to %d: %s", target, exc)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("the open files limit (%d) is below max_connections; raise it (ulimit -n)", soft)


def _check_free(host: str, port: int) -> None:
    """Fail early and clearly when the listen address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _write_token_file(token: str) -> None:
    try:
        save_token(token)
    except OSError as exc:  # a read-only home must not stop a dev server
        log.warning("could not write the token file: %s", exc)


def _dev_banner(address: str, key: bytes, root_token: str) -> str:
    import base64

    return (
        "WARNING! dev mode is enabled! In this mode, coffer runs entirely in memory\n"
        "and starts unsealed with a single unseal key. Do not run it in production.\n\n"
        "You may need to set the following environment variables:\n\n"
        f"    $ export VAULT_ADDR='{address}'\n\n"
        "The unseal key and root token are displayed below in case you want to\n"
        "seal/unseal the server or re-authenticate.\n\n"
        f"Unseal Key: {base64.b64encode(key).decode()}\n"
        f"Root Token: {root_token}\n"
    )


#: The configuration's log levels, as Python's (trace is Python's debug).
LOG_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR}
# What every LogRecord has: the rest of its attributes came from ``extra=`` and go into JSON lines as fields.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                    "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with Vault's (hclog's) key names, plus the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        line: dict[str, Any] = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                          + f".{int(record.msecs):03d}Z",
            "@level": {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower()),
            "@module": record.name,
            "@message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
        if record.exc_info:
            line["@exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def setup_logging(level: str, log_format: str = "standard") -> None:
    """The server's log: stderr, at ``level``, as text lines or (``json``) one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LOG_LEVELS.get(level, logging.INFO))


def run(config: ServerConfig, **kwargs: Any) -> None:
    setup_logging(config.log_level, config.log_format)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    faulthandler.enable()  # a crash (SIGSEGV, SIGBUS...) leaves the Python stacks in the log
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(serve(config, **kwargs))
    else:
        uvloop.run(serve(config, **kwargs))
