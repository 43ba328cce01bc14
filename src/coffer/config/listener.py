"""The ``listener "tcp"`` block, and the ``host:port`` addresses it listens on."""

from __future__ import annotations

import json
import re
from typing import Any

from coffer import hcl
from coffer.config.checks import Checks, did_you_mean, lines_of, show
from coffer.config.model import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_REQUEST_SIZE,
    LISTENER_LIMITS,
    ListenerConfig,
)

TLS_VERSIONS = ("tls10", "tls11", "tls12", "tls13")

_LISTENER_EXAMPLE = 'listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }'

_LISTENER_KEYS = frozenset({"address", "tls_disable", "tls_cert_file", "tls_key_file", "tls_min_version",
                            "max_request_size", "max_connections", "max_json_depth", "telemetry",
                            "unauthenticated_metrics_access", *LISTENER_LIMITS})
_LISTENER_IGNORED = frozenset(
    {
        "cluster_address",
        "http_write_timeout",
        "profiling",
    }
)
_LISTENER_UNSUPPORTED = frozenset(
    {
        "chroot_namespace",
        "custom_response_headers",
        "disable_replication_status_endpoints",
        "disable_request_limiter",
        "max_request_duration",
        "proxy_protocol_authorized_addrs",
        "proxy_protocol_behavior",
        "redact_addresses",
        "redact_cluster_name",
        "redact_version",
        "tls_cipher_suites",
        "tls_client_ca_file",
        "tls_disable_client_certs",
        "tls_max_version",
        "tls_prefer_server_cipher_suites",
        "x_forwarded_for_authorized_addrs",
        "x_forwarded_for_client_cert_header",
        "x_forwarded_for_client_cert_header_decoders",
        "x_forwarded_for_hop_skips",
        "x_forwarded_for_reject_not_authorized",
        "x_forwarded_for_reject_not_present",
    }
)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` as (host, port); ValueError unless it is one.

    An IPv6 host goes in brackets (``[::1]:8200``, returned without them); an
    empty host (``:8200``) means every interface, as in Vault, and is returned
    as ``0.0.0.0``.
    """
    host, sep, port = address.rpartition(":")
    valid = bool(sep) and re.fullmatch(r"[0-9]{1,5}", port) is not None and int(port) <= 65535
    if host.startswith("[") or host.endswith("]"):
        valid = valid and host.startswith("[") and host.endswith("]") and len(host) > 2
        host = host[1:-1]
    elif ":" in host:  # IPv6 hosts need brackets
        valid = False
    if not valid:
        raise ValueError(f'address {json.dumps(address)} must be host:port, such as "127.0.0.1:8200" or "[::1]:8200"')
    return host or "0.0.0.0", int(port)


class ListenerChecks(Checks):
    """The checks of the listener block."""

    def listener(self, data: dict[str, Any]) -> ListenerConfig:
        if "listener" not in data:
            raise self.error(f"a listener block is required, for example: {_LISTENER_EXAMPLE}")
        line = self.line_of("listener")
        found = self.blocks("listener", data["listener"], _LISTENER_EXAMPLE)
        if len(found) > 1:
            lines = data.lines.get("listener", []) if isinstance(data, hcl.Object) else []
            self.warn(
                f"found {len(found)} listener blocks{lines_of(data, 'listener')}; coffer serves a single listener, "
                "so only the first is used and the others are ignored",
                lines[1] if len(lines) > 1 else None,
            )
        listener_type, body = found[0]
        if listener_type != "tcp":
            raise self.error(f'listener type "{listener_type}" is not supported; only "tcp" listeners are', line)
        return self.tcp_listener(body, line)

    def tcp_listener(self, body: dict[str, Any], line: int | None) -> ListenerConfig:
        what = 'listener "tcp"'

        def at(name: str) -> int | None:
            return (body.line_of(name) if isinstance(body, hcl.Object) else None) or line

        def get(name: str, default: Any = None) -> Any:
            return self.single(f"{what}: {name}", body, name, at(name)) if name in body else default

        for raw_key in body:
            key = str(raw_key)
            key_line = at(key)
            if key in _LISTENER_KEYS or key in _LISTENER_IGNORED:
                continue
            if key in _LISTENER_UNSUPPORTED:
                self.warn(f'{what}: "{key}" is not supported (ignored)', key_line)
            elif key == "tls_require_and_verify_client_cert":
                if self.as_bool(f"{what}: {key}", get(key), key_line):
                    raise self.error(
                        f"{what}: {key} is not supported; coffer cannot require client certificates", key_line
                    )
            else:
                known = _LISTENER_KEYS | _LISTENER_IGNORED | _LISTENER_UNSUPPORTED
                self.warn(f'{what}: unknown key "{key}" (ignored){did_you_mean(key, known)}', key_line)

        address = self.as_str(f"{what}: address", get("address", DEFAULT_LISTEN_ADDRESS), at("address"))
        try:
            parse_address(address)
        except ValueError as exc:
            raise self.error(f"{what}: {exc}", at("address")) from None
        tls_disable = self.as_bool(f"{what}: tls_disable", get("tls_disable", False), at("tls_disable"))
        cert = get("tls_cert_file")
        key_file = get("tls_key_file")
        if cert is not None:
            cert = self.as_str(f"{what}: tls_cert_file", cert, at("tls_cert_file")) or None
        if key_file is not None:
            key_file = self.as_str(f"{what}: tls_key_file", key_file, at("tls_key_file")) or None
        min_version = self.as_str(
            f"{what}: tls_min_version", get("tls_min_version", "tls12"), at("tls_min_version")
        )
        if min_version not in TLS_VERSIONS:
            choices = ", ".join(TLS_VERSIONS)
            raise self.error(
                f"{what}: tls_min_version {show(min_version)} is not one of {choices}", at("tls_min_version")
            )

        if not tls_disable:
            missing = [name for name, v in (("tls_cert_file", cert), ("tls_key_file", key_file)) if not v]
            if missing:
                raise self.error(
                    f"{what}: TLS is on, so tls_cert_file and tls_key_file are both required "
                    f"(missing {' and '.join(missing)}); set them, or set tls_disable = true to serve plain HTTP",
                    line,
                )
        elif cert or key_file:
            self.warn(f"{what}: tls_cert_file and tls_key_file are not used because tls_disable is set", line)
        limits: dict[str, int] = {}
        for name, default in LISTENER_LIMITS.items():
            limits[name] = self.positive_duration(body, name, default, what=f"{what}: {name}", line=at(name))
        for name, default, unit in (("max_request_size", DEFAULT_MAX_REQUEST_SIZE, "bytes"),
                                    ("max_connections", DEFAULT_MAX_CONNECTIONS, "connections"),
                                    ("max_json_depth", DEFAULT_MAX_JSON_DEPTH, "levels")):
            value = get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit() \
                    or int(value) < 1:
                raise self.error(f"{what}: {name} must be a positive whole number of {unit}, not {show(value)}",
                                 at(name))
            limits[name] = int(value)
        metrics_open = self.listener_telemetry(body, get, at)
        if limits["max_json_depth"] > DEFAULT_MAX_JSON_DEPTH:
            raise self.error(f"{what}: max_json_depth can be at most {DEFAULT_MAX_JSON_DEPTH} (deeper JSON cannot be "
                             "written back in responses)", at("max_json_depth"))
        return ListenerConfig(
            address=address,
            tls_disable=tls_disable,
            tls_cert_file=cert,
            tls_key_file=key_file,
            tls_min_version=min_version,
            unauthenticated_metrics_access=metrics_open,
            **limits,
        )

    def listener_telemetry(self, body: dict[str, Any], get: Any, at: Any) -> bool:
        """``telemetry { unauthenticated_metrics_access = true }`` inside a listener (or the key on its own)."""
        what = 'listener "tcp"'
        open_access = False
        if "unauthenticated_metrics_access" in body:
            open_access = self.as_bool(f"{what}: unauthenticated_metrics_access", get("unauthenticated_metrics_access"),
                                       at("unauthenticated_metrics_access"))
        if "telemetry" not in body:
            return open_access
        block = get("telemetry")
        if not isinstance(block, dict):
            raise self.error(f"{what}: telemetry must be a block such as telemetry {{ unauthenticated_metrics_access "
                             f"= true }}, not {show(block)}", at("telemetry"))
        for raw_key in block:
            key = str(raw_key)
            line = (block.line_of(key) if isinstance(block, hcl.Object) else None) or at("telemetry")
            if key == "unauthenticated_metrics_access":
                open_access = self.as_bool(f"{what}: telemetry: {key}", self.single(
                    f"{what}: telemetry: {key}", block, key, line), line)
            elif key not in ("unauthenticated_pprof_access", "unauthenticated_in_flight_requests_access"):
                self.warn(f'{what}: telemetry: unknown key "{key}" (ignored)'
                          f"{did_you_mean(key, {'unauthenticated_metrics_access'})}", line)
        return open_access
