"""Audit devices: one JSON line per request and per response, secrets hashed.

Every string in request and response data (and every token) is replaced by
``hmac-sha256:<hex>`` keyed with the device's own salt, unless the device
was enabled with ``log_raw=true``. ``sys/audit-hash/<path>`` gives the same
hash for an input, so an operator can find a known value in the log.

Fail closed: with devices enabled, a request no device can record is refused
(500) before it has any effect; a response no device can record is withheld
and, if it carried a lease or a token, that is revoked at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from coffer.errors import InvalidRequest
from coffer.storage.base import Storage
from coffer.truth import parse_bool

log = logging.getLogger("coffer.audit")
TABLE_PATH = "core/audit"
DEVICE_TYPES = ("file",)
_FILE_OPTIONS = {"file_path", "path", "mode", "log_raw", "hmac_accessor", "format", "prefix", "elide_list_responses"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


_BOOL_OPTIONS = ("log_raw", "hmac_accessor", "elide_list_responses")


def _true(value: Any, default: bool) -> bool:
    """A boolean option. enable() refuses other words, so one here (from an older
    table) keeps the option's default, which is the side that hashes."""
    try:
        return parse_bool(str(value))
    except ValueError:
        return default


@dataclass
class AuditDevice:
    path: str
    type: str
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)
    salt: str = ""
    _out: TextIO | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def raw(self) -> bool:
        return _true(self.options.get("log_raw", "false"), False)

    @property
    def hash_accessor(self) -> bool:
        return _true(self.options.get("hmac_accessor", "true"), True)

    def hash(self, value: str) -> str:
        return "hmac-sha256:" + hmac.new(bytes.fromhex(self.salt), value.encode(), hashlib.sha256).hexdigest()

    def open(self) -> None:
        target = self.options.get("file_path") or self.options.get("path") or ""
        if target in ("stdout", "discard"):
            self._out = sys.stdout if target == "stdout" else open(os.devnull, "a")  # noqa: SIM115
            return
        mode = int(self.options.get("mode", "0600"), 8)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        if mode:
            os.chmod(target, mode)
        self._out = os.fdopen(fd, "a", encoding="utf-8")

    def reopen(self) -> None:
        """Close and open the file again (log rotation moves the old one away)."""
        with self._lock:
            if self._out not in (None, sys.stdout):
                self._out.close()
            self.open()

    def close(self) -> None:
        with self._lock:
            if self._out not in (None, sys.stdout):
                self._out.close()
            self._out = None

    def write(self, entry: dict[str, Any]) -> None:
        line = orjson.dumps(entry).decode() + "\n"
        prefix = self.options.get("prefix", "")
        with self._lock:
            if self._out is None:
                self.open()
            assert self._out is not None
            self._out.write(prefix + line)
            self._out.flush()

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "description": self.description, "options": self.options, "local": False,
                "path": self.path}

    def to_doc(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "description": self.description, "options": self.options,
                "salt": self.salt}


def hash_values(value: Any, hasher: Any) -> Any:
    """``value`` with every string replaced by its hash (recursively)."""
    if isinstance(value, str):
        return hasher(value)
    if isinstance(value, dict):
        return {k: hash_values(v, hasher) for k, v in value.items()}
    if isinstance(value, list):
        return [hash_values(v, hasher) for v in value]
    return value


class AuditBroker:
    def __init__(self, storage: Storage, *, protected: tuple[str, ...] = (), allow_prefixing: bool = False) -> None:
        self.storage = storage
        self.devices: dict[str, AuditDevice] = {}
        #: Since start: entries each device failed to record (by device path), and entries no device recorded.
        self.failures: dict[str, int] = {}
        self.unrecorded = 0
        #: Folders an audit file may never be written into (the plugin directory, the storage's folder):
        #: a file there could be loaded as code, or damage the store (Vault's CVE-2025-6000).
        self.protected = tuple(os.path.realpath(p) for p in protected if p)
        #: ``prefix`` (text written before each line) only when the server config allows it.
        self.allow_prefixing = allow_prefixing

    @property
    def enabled(self) -> bool:
        return bool(self.devices)

    async def load(self) -> None:
        self.close()
        raw = await self.storage.get(TABLE_PATH)
        for doc in orjson.loads(raw) if raw else []:
            device = AuditDevice(**doc)
            if device.options.get("prefix") and not self.allow_prefixing:
                log.warning("audit device %s: its prefix is ignored (allow_audit_log_prefixing is off)", device.path)
                device.options = {k: v for k, v in device.options.items() if k != "prefix"}
            try:
                self._check_target(device.options.get("file_path") or device.options.get("path") or "")
                device.open()
            except InvalidRequest as exc:  # kept closed: requests fail closed until it is fixed
                log.error("audit device %s is not opened: %s", device.path, exc)
                self.devices[device.path] = device
                continue
            except OSError as exc:  # keep it: writes will fail (closed) until fixed
                log.error("audit device %s cannot open its file: %s", device.path, exc)
            self.devices[device.path] = device

    async def _save(self) -> None:
        await self.storage.put(TABLE_PATH, orjson.dumps([d.to_doc() for d in self.devices.values()]))

    async def enable(self, path: str, device_type: str, description: str, options: dict[str, str]) -> None:
        if path in self.devices:
            raise InvalidRequest(f"path already in use: an audit device is enabled at {path}")
        if device_type not in DEVICE_TYPES:
            raise InvalidRequest(f'unknown audit device type "{device_type}"; supported: {", ".join(DEVICE_TYPES)}')
        unknown = sorted(set(options) - _FILE_OPTIONS)
        if unknown:
            raise InvalidRequest(f"unknown option(s) for a file audit device: {', '.join(unknown)}")
        if not (options.get("file_path") or options.get("path")):
            raise InvalidRequest('the file audit device needs option file_path (a file, or "stdout")')
        if options.get("format", "json") != "json":
            raise InvalidRequest('only format "json" is supported')
        try:
            mode = int(options.get("mode", "0600"), 8)
        except ValueError:
            raise InvalidRequest(f'mode must be an octal file mode such as 0600, got {options["mode"]!r}') from None
        if mode & 0o7111 or not 0 <= mode <= 0o777:
            raise InvalidRequest(f"mode {options['mode']} is refused: an audit file may not be executable "
                                 "(or setuid, setgid, sticky); use e.g. 0600")
        if options.get("prefix") and not self.allow_prefixing:
            raise InvalidRequest("the prefix option is disabled; set allow_audit_log_prefixing = true in the "
                                 "server configuration to allow it")
        for name in _BOOL_OPTIONS:
            try:
                parse_bool(str(options.get(name, "false")))
            except ValueError:
                raise InvalidRequest(f"{name} must be true or false, got {options[name]!r}") from None
        self._check_target(options.get("file_path") or options.get("path") or "")
        device = AuditDevice(path, device_type, description, options, secrets.token_hex(32))
        try:
            device.open()
        except OSError as exc:
            raise InvalidRequest(f"cannot open the audit file: {exc.strerror} ({exc.filename})") from None
        self.devices[path] = device
        await self._save()

    def _check_target(self, target: str) -> None:
        if target in ("stdout", "discard"):
            return
        real = os.path.realpath(target)
        for folder in self.protected:
            if real == folder or real.startswith(folder.rstrip("/") + "/"):
                raise InvalidRequest(f"file_path {target!r} is refused: it lies in {folder}, which holds coffer's "
                                     "plugins or storage; write audit logs elsewhere")

    async def disable(self, path: str) -> None:
        device = self.devices.pop(path, None)
        if device is not None:
            device.close()
            await self._save()

    def reopen(self) -> None:
        for device in self.devices.values():
            try:
                device.reopen()
            except OSError as exc:
                log.error("audit device %s cannot reopen its file: %s", device.path, exc)

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        self.devices = {}

    def _record(self, build: Any) -> bool:
        """Write the entry ``build(device)`` makes to every device; True if any took it."""
        ok = False
        for device in self.devices.values():
            try:
                device.write(build(device))
                ok = True
            except Exception as exc:  # a device failing is survivable while another records
                self.failures[device.path] = self.failures.get(device.path, 0) + 1
                log.error("audit device %s failed to record: %s", device.path, exc)
        if not ok:
            self.unrecorded += 1
        return ok

    def log_request(self, req: Any, error: str = "") -> bool:
        return self._record(lambda d: self._entry(d, "request", req, None, error))

    def log_response(self, req: Any, resp: Any, error: str = "") -> bool:
        return self._record(lambda d: self._entry(d, "response", req, resp, error))

    def _entry(self, device: AuditDevice, kind: str, req: Any, resp: Any, error: str) -> dict[str, Any]:
        def h(value: Any) -> Any:
            return value if device.raw else hash_values(value, device.hash)

        token = req.token
        auth: dict[str, Any] = {}
        if token is not None:
            auth = {
                "client_token": h(req.client_token or ""),
                "accessor": h(token.accessor) if device.hash_accessor else token.accessor,
                "display_name": token.display_name,
                "policies": token.policies,
                "token_policies": token.policies,
                "metadata": token.meta or None,
                "entity_id": "",
                "token_type": "service",
                "token_ttl": token.ttl,
            }
        entry: dict[str, Any] = {
            "time": _now(),
            "type": kind,
            "auth": auth,
            "request": {
                "id": req.request_id,
                "operation": req.operation,
                "mount_type": req.mount_type,
                "mount_point": req.mount_point,
                "client_token": h(req.client_token or "") if req.client_token else "",
                "path": req.path,
                "data": h(req.data) if req.data else None,
                "remote_address": req.remote_addr,
            },
        }
        if kind == "response":
            body: dict[str, Any] = {"mount_type": req.mount_type}
            if resp is not None:
                body["data"] = h(resp.data) if resp.data else None
                if resp.lease_id:
                    body["secret"] = {"lease_id": resp.lease_id}
                if resp.auth:
                    body["auth"] = {**resp.auth, "client_token": h(resp.auth.get("client_token", "")),
                                    "accessor": h(resp.auth.get("accessor", "")) if device.hash_accessor
                                    else resp.auth.get("accessor", "")}
                if resp.wrap_info:
                    wrap = resp.wrap_info
                    body["wrap_info"] = {**wrap, "token": h(wrap.get("token", "")),
                                         "accessor": h(wrap.get("accessor", "")) if device.hash_accessor
                                         else wrap.get("accessor", "")}
                if resp.warnings:
                    body["warnings"] = resp.warnings
            entry["response"] = body
        if error:
            entry["error"] = error
        return entry

    def hash(self, path: str, value: str) -> str:
        device = self.devices.get(path)
        if device is None:
            raise InvalidRequest(f"no audit device is enabled at {path}")
        return device.hash(value)
