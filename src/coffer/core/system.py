"""The ``sys/`` backend: lifecycle, mounts, policies, keys and specs."""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING, Any

from coffer.core.lease_paths import SUDO_PATHS as LEASE_SUDO_PATHS
from coffer.core.lease_paths import lease_paths
from coffer.core.mounts import RESERVED, MountEntry, normalize
from coffer.core.policy import ROOT_POLICY_NAME
from coffer.durations import parse_duration
from coffer.errors import InvalidRequest, NotFound
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType, convert
from coffer.framework.request import Request, Response

if TYPE_CHECKING:
    from coffer.core.core import Core

S, I, B, M, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.MAP, FieldType.COMMA_LIST

HELP = """The system backend: coffer's own configuration and lifecycle.

It initializes, unseals and seals the server, mounts secrets engines,
manages ACL policies and rotates the encryption key."""


def decode_key(text: str) -> bytes:
    """An unseal key in hex or base64."""
    text = text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("'key' must be a valid hex or base64 string") from None


def system_backend(core: Core) -> Backend:
    def raw(data: dict[str, Any], status: int | None = None) -> Response:
        return Response(data=data, raw=True, status=status)

    def top(data: dict[str, Any]) -> Response:
        return Response(data=data, data_at_top_level=True)

    # -- lifecycle (answer plain JSON, no envelope) -------------------------

    async def init_status(req: Request, d: FieldData) -> Response:
        return raw({"initialized": await core.load_seal_config() is not None})

    async def init(req: Request, d: FieldData) -> Response:
        d.require("secret_shares", "secret_threshold")
        if d["pgp_keys"] or d["root_token_pgp_key"]:
            # never hand out plaintext keys to a caller who asked for them encrypted
            raise InvalidRequest("pgp_keys and root_token_pgp_key are not supported; "
                                 "initialize without them to receive the keys in plaintext")
        keys, root_token = await core.initialize(d["secret_shares"], d["secret_threshold"])
        return raw({
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "root_token": root_token,
        })

    async def seal_status(req: Request, d: FieldData) -> Response:
        await core.load_seal_config()
        return raw(core.status())

    async def unseal(req: Request, d: FieldData) -> Response:
        if not d["reset"] and not d["key"]:
            raise InvalidRequest("'key' must be specified in request body as JSON, or 'reset' set to true")
        key = decode_key(d["key"]) if d["key"] and not d["reset"] else None  # reset wins, as in Vault
        await core.submit_unseal_key(key, reset=d["reset"])
        return raw(core.status())

    async def seal(req: Request, d: FieldData) -> None:
        await core.seal()

    async def health(req: Request, d: FieldData) -> Response:
        for name in health_fields:
            if name.endswith("code") and not 200 <= d[name] <= 599:
                raise InvalidRequest(f'invalid value for field "{name}": {d[name]} is not a usable HTTP '
                                     "status code (200-599)")
        config = await core.load_seal_config()
        body = {
            "initialized": config is not None,
            "sealed": core.sealed,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": core.status()["version"],
            "cluster_name": "coffer",
            "cluster_id": "",
        }
        if config is None:
            status = d["uninitcode"]
        elif core.sealed:
            status = d["sealedcode"]
        else:
            status = d["activecode"]
        return raw(body, status)

    async def leader(req: Request, d: FieldData) -> Response:
        return raw({
            "ha_enabled": core.physical.ha_enabled,
            "is_self": False,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": False,
            "performance_standby_last_remote_wal": 0,
        })

    # -- mounts ------------------------------------------------------------

    def ttl_config(raw_config: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        config = dict(base or {})
        for key in ("default_lease_ttl", "max_lease_ttl"):
            if raw_config.get(key) not in (None, ""):
                try:
                    config[key] = parse_duration(raw_config[key])
                except ValueError as exc:
                    raise InvalidRequest(f"invalid {key}: {exc}") from None
        if raw_config.get("force_no_cache") is not None:
            config["force_no_cache"] = convert("force_no_cache", Field(B), raw_config["force_no_cache"])
        default, maximum = config.get("default_lease_ttl", 0), config.get("max_lease_ttl", 0)
        if default and default > (maximum or core.max_lease_ttl):
            raise InvalidRequest("default_lease_ttl cannot be greater than max_lease_ttl"
                                 f" ({maximum or core.max_lease_ttl}s)")
        if maximum and maximum > core.max_lease_ttl:
            raise InvalidRequest(f"max_lease_ttl cannot exceed the server's max_lease_ttl ({core.max_lease_ttl}s)")
        return config

    def system_mounts() -> dict[str, Any]:
        sys_entry = MountEntry(path="sys/", type="system", description="system endpoints used for control, "
                               "policy and debugging", uuid="system", accessor="system_0")
        return {"sys/": sys_entry.describe()}

    async def list_mounts(req: Request, d: FieldData) -> Response:
        mounts = {p: e.describe() for p, e in sorted(core.mounts.entries.items())}
        mounts.update(system_mounts())
        return top(mounts)

    def entry_for(path: str) -> MountEntry:
        entry = core.mounts.entries.get(normalize(path))
        if entry is None:
            raise InvalidRequest(f'no secrets engine is mounted at "{normalize(path)}"')
        return entry

    async def read_mount(req: Request, d: FieldData) -> Response:
        return top(entry_for(d["path"]).describe())

    def check_kv_version(mount_type: str, options: dict[str, str] | None) -> None:
        if mount_type in ("kv", "generic") and str((options or {}).get("version", "1")) not in ("1", ""):
            raise InvalidRequest("kv version 2 is not supported yet; mount kv with options version=1")

    async def enable(req: Request, d: FieldData) -> None:
        path = normalize(d["path"])
        d.require("type")
        mount_type = d["type"]
        check_kv_version(mount_type, d["options"])
        entry = MountEntry(
            path=path, type=mount_type, description=d["description"] or "",
            config=ttl_config(d["config"] or {}),
            options={str(k): str(v) for k, v in (d["options"] or {}).items()},
            local=d["local"], seal_wrap=d["seal_wrap"],
        )
        await core.mount(entry)

    async def disable(req: Request, d: FieldData) -> None:
        path = normalize(d["path"])
        if any(path.startswith(r) for r in RESERVED):
            raise InvalidRequest(f'cannot unmount "{path}": it belongs to coffer itself')
        await core.unmount(path)

    async def read_tune(req: Request, d: FieldData) -> Response:
        path = normalize(d["path"])
        if path in ("sys/", "auth/token/"):
            return top({"default_lease_ttl": core.default_lease_ttl, "max_lease_ttl": core.max_lease_ttl,
                        "force_no_cache": False, "description": ""})
        entry = entry_for(path)
        return top({
            "default_lease_ttl": entry.default_lease_ttl or core.default_lease_ttl,
            "max_lease_ttl": entry.max_lease_ttl or core.max_lease_ttl,
            "force_no_cache": bool(entry.config.get("force_no_cache", False)),
            "description": entry.description,
            "options": entry.options or None,
        })

    async def tune(req: Request, d: FieldData) -> None:
        entry = entry_for(d["path"])
        config = ttl_config(d.given(), entry.config)
        if "options" in d:
            check_kv_version(entry.type, d["options"])
        entry.config = config
        if "description" in d:
            entry.description = d["description"]
        if "options" in d:
            entry.options.update({str(k): str(v) for k, v in (d["options"] or {}).items()})
        await core.mounts.save()

    async def remount(req: Request, d: FieldData) -> None:
        d.require("from", "to")
        await core.remount(normalize(d["from"]), normalize(d["to"]))

    async def list_auth(req: Request, d: FieldData) -> Response:
        token = MountEntry(path="token/", type="token", description="token based credentials",
                           uuid="token", accessor="auth_token_0",
                           config={"default_lease_ttl": 0, "max_lease_ttl": 0})
        return top({"token/": token.describe()})

    # -- policies ----------------------------------------------------------

    async def list_policies(req: Request, d: FieldData) -> Response:
        names = await core.policies.names()
        return top({"policies": names, "keys": names})

    async def read_policy(req: Request, d: FieldData) -> Response:
        name = d["name"].lower()
        text = "" if name == ROOT_POLICY_NAME else await core.policies.text(name)
        if text is None:
            raise NotFound(f'no policy named "{name}"')
        return top({"name": name, "rules": text, "policy": text})

    async def read_acl_policy(req: Request, d: FieldData) -> Response:
        resp = await read_policy(req, d)
        assert resp.data is not None
        resp.data.pop("rules")
        return resp

    async def write_policy(req: Request, d: FieldData) -> None:
        text = d["policy"] if "policy" in d else d["rules"]
        if not text:
            raise InvalidRequest('missing required field "policy" (the policy text in HCL or JSON)')
        await core.policies.put(d["name"], text)

    async def delete_policy(req: Request, d: FieldData) -> None:
        await core.policies.delete(d["name"])

    async def list_acl(req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await core.policies.names()})

    # -- capabilities --------------------------------------------------------

    async def capabilities_for(policies: list[str], paths: list[str]) -> dict[str, Any]:
        acl = await core.policies.acl(policies)
        result: dict[str, Any] = {}
        for p in paths:
            caps = sorted(acl.capabilities(p.lstrip("/"))) or ["deny"]
            if "root" in policies:
                caps = ["root"]
            result[p] = caps
        if len(paths) == 1:
            result["capabilities"] = result[paths[0]]
        return result

    def wanted_paths(d: FieldData) -> list[str]:
        paths = d["paths"] or ([d["path"]] if d["path"] else [])
        if not paths:
            raise InvalidRequest('missing required field "paths" (the paths to check)')
        return paths

    async def capabilities(req: Request, d: FieldData) -> Response:
        d.require("token")
        entry = await core.tokens.lookup(d["token"])
        if entry is None:
            raise InvalidRequest("invalid token")
        return top(await capabilities_for(entry.policies, wanted_paths(d)))

    async def capabilities_self(req: Request, d: FieldData) -> Response:
        assert req.token is not None
        return top(await capabilities_for(req.token.policies, wanted_paths(d)))

    async def capabilities_accessor(req: Request, d: FieldData) -> Response:
        d.require("accessor")
        entry = await core.tokens.lookup_accessor(d["accessor"])
        if entry is None:
            raise InvalidRequest("invalid accessor")
        return top(await capabilities_for(entry.policies, wanted_paths(d)))

    # -- audit devices ---------------------------------------------------------

    async def list_audit(req: Request, d: FieldData) -> Response:
        return top({p: dev.describe() for p, dev in sorted(core.audit.devices.items())})

    async def enable_audit(req: Request, d: FieldData) -> None:
        d.require("type")
        options = {str(k): str(v) for k, v in (d["options"] or {}).items()}
        await core.audit.enable(normalize(d["path"]), d["type"], d["description"] or "", options)

    async def disable_audit(req: Request, d: FieldData) -> None:
        await core.audit.disable(normalize(d["path"]))

    async def audit_hash(req: Request, d: FieldData) -> Response:
        d.require("input")
        return top({"hash": core.audit.hash(normalize(d["path"]), d["input"])})

    # -- keys and specs ------------------------------------------------------

    async def rotate(req: Request, d: FieldData) -> None:
        await core.barrier.rotate()

    async def key_status(req: Request, d: FieldData) -> Response:
        term = core.barrier.key_status()
        installed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(term.install_time))
        # Vault documents term/install_time at the top level; hvac reads data.
        return Response(data={"term": term.number, "install_time": installed, "encryptions": None},
                        data_at_top_level=True)

    async def openapi(req: Request, d: FieldData) -> Response:
        paths: dict[str, Any] = {}
        paths.update(backend.openapi_paths("sys/"))
        paths.update(core.token_backend.openapi_paths("auth/token/"))
        for mount_path, b in sorted(core.backends.items()):
            paths.update(b.openapi_paths(mount_path))
        return raw({"openapi": "3.0.2", "info": {"title": "coffer", "version": core.status()["version"],
                                                  "description": "The HTTP API of coffer (Vault-compatible)."},
                    "paths": paths})

    mount_fields = {
        "path": Field(S, "The path to mount at, e.g. aws."),
        "type": Field(S, "The engine type: kv (alias generic) or aws."),
        "description": Field(S, "A human-friendly description."),
        "config": Field(M, "default_lease_ttl, max_lease_ttl, force_no_cache."),
        "options": Field(FieldType.KV_MAP, "Engine options."),
        "local": Field(B, "Ignored (no replication).", default=False),
        "seal_wrap": Field(B, "Ignored.", default=False),
        "plugin_name": Field(S, "Ignored (the engine type is type)."),
        "plugin_version": Field(S, "Ignored."),
        "external_entropy_access": Field(B, "Ignored.", default=False),
    }
    tune_fields = {
        "path": Field(S, "The mount to tune."),
        "default_lease_ttl": Field(S, "Default lease TTL (e.g. 1h)."),
        "max_lease_ttl": Field(S, "Maximum lease TTL (e.g. 24h)."),
        "force_no_cache": Field(B, "Ignored."),
        "description": Field(S, "A new description."),
        "options": Field(FieldType.KV_MAP, "Engine options to set."),
    }
    policy_fields = {
        "name": Field(S, "The policy's name (lower-cased)."),
        "policy": Field(S, "The policy document, HCL or JSON."),
        "rules": Field(S, "Older name of policy."),
    }
    cap_fields = {
        "token": Field(S, "The token to check."),
        "accessor": Field(S, "The accessor of the token to check."),
        "path": Field(S, "One path to check (older form)."),
        "paths": Field(L, "The paths to check."),
    }
    health_fields = {
        "standbyok": Field(B, "Answer 200 on a standby node.", default=False),
        "perfstandbyok": Field(B, "Answer 200 on a performance standby.", default=False),
        "activecode": Field(I, "Status code when active.", default=200),
        "standbycode": Field(I, "Status code when standby.", default=429),
        "drsecondarycode": Field(I, "Status code for a DR secondary.", default=472),
        "performancestandbycode": Field(I, "Status code for a performance standby.", default=473),
        "sealedcode": Field(I, "Status code when sealed.", default=503),
        "uninitcode": Field(I, "Status code when not initialized.", default=501),
    }
    any_name = r"(?P<name>[^/]+)"
    backend = Backend(
        [
            Path("init", {"read": init_status, "write": init}, {
                "secret_shares": Field(I, "How many key shares to split the root key into."),
                "secret_threshold": Field(I, "How many shares are needed to unseal."),
                "pgp_keys": Field(L, "Not supported; must be empty."),
                "root_token_pgp_key": Field(S, "Not supported; must be empty."),
                "stored_shares": Field(I, "Ignored."),
                "recovery_shares": Field(I, "Ignored."),
                "recovery_threshold": Field(I, "Ignored."),
            }, synopsis="Initialize a new server: create the keys and the root token."),
            Path("seal-status", {"read": seal_status}, synopsis="The seal status."),
            Path("unseal", {"write": unseal}, {
                "key": Field(S, "One unseal key share, hex or base64."),
                "reset": Field(B, "Forget the shares given so far.", default=False),
                "migrate": Field(B, "Ignored."),
            }, synopsis="Give one unseal key share."),
            Path("seal", {"write": seal}, synopsis="Seal the server (needs sudo)."),
            Path("health", {"read": health}, health_fields, synopsis="Health: 200 active, 503 sealed, 501 uninitialized."),
            Path("leader", {"read": leader}, synopsis="High-availability status."),
            Path("mounts", {"read": list_mounts}, synopsis="List the mounted secrets engines."),
            Path(r"mounts/(?P<path>.+?)/tune", {"read": read_tune, "write": tune}, tune_fields,
                 synopsis="Read or change a mount's lease TTLs and description."),
            Path(r"mounts/(?P<path>.+)", {"read": read_mount, "write": enable, "delete": disable}, mount_fields,
                 synopsis="Mount (POST), describe (GET) or unmount (DELETE) a secrets engine."),
            Path("remount", {"write": remount}, {"from": Field(S, "The current mount path."),
                                                 "to": Field(S, "The new mount path.")},
                 synopsis="Move a mount to a new path."),
            Path("auth", {"read": list_auth}, synopsis="List the auth methods."),
            Path("policy/?", {"read": list_policies, "list": list_acl}, synopsis="List the ACL policies."),
            Path(rf"policy/{any_name}", {"read": read_policy, "write": write_policy, "delete": delete_policy},
                 policy_fields, synopsis="Read, write or delete an ACL policy."),
            Path(r"policies/acl/?", {"list": list_acl}, synopsis="List the ACL policies."),
            Path(rf"policies/acl/{any_name}", {"read": read_acl_policy, "write": write_policy,
                                               "delete": delete_policy},
                 policy_fields, synopsis="Read, write or delete an ACL policy."),
            Path("capabilities", {"write": capabilities}, cap_fields, synopsis="A token's capabilities on paths."),
            Path("capabilities-self", {"write": capabilities_self}, cap_fields,
                 synopsis="The calling token's capabilities on paths."),
            Path("capabilities-accessor", {"write": capabilities_accessor}, cap_fields,
                 synopsis="The capabilities of the token with this accessor."),
            Path("audit", {"read": list_audit}, synopsis="List the enabled audit devices (sudo)."),
            Path(r"audit/(?P<path>.+)", {"write": enable_audit, "delete": disable_audit}, {
                "path": Field(S, "Where to enable the device, e.g. file."),
                "type": Field(S, "The device type: file."),
                "description": Field(S, "A description."),
                "options": Field(FieldType.KV_MAP, "file_path (a file or stdout), mode, log_raw, hmac_accessor, "
                                                   "format (json), prefix."),
                "local": Field(B, "Ignored (no replication).", default=False),
            }, synopsis="Enable (PUT) or disable (DELETE) an audit device (sudo)."),
            Path(r"audit-hash/(?P<path>.+)", {"write": audit_hash}, {
                "path": Field(S, "The audit device."), "input": Field(S, "The value to hash.")},
                 synopsis="The hash an audit device writes for a value."),
            Path("rotate", {"write": rotate}, synopsis="Add a new encryption key term (needs sudo)."),
            Path("key-status", {"read": key_status}, synopsis="The active encryption key term."),
            Path("internal/specs/openapi", {"read": openapi}, synopsis="The OpenAPI document of every path."),
            *lease_paths(core),
        ],
        help=HELP,
        unauthenticated=("init", "seal-status", "unseal", "health", "leader"),
        sudo_paths=("seal", "rotate", "remount", "audit", "audit/*", *LEASE_SUDO_PATHS),
    )
    return backend
