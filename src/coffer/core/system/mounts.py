"""``sys/mounts*``, ``sys/auth*`` and ``sys/remount``: the two mount tables."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from coffer.core.expiration import ExpirationManager
from coffer.core.router import AUTH_PREFIX, RESERVED, MountEntry, Router, normalize
from coffer.core.tokens import TokenStore
from coffer.durations import parse_duration
from coffer.errors import InvalidRequest, NotFound
from coffer.framework.backend import Handler, Path
from coffer.framework.fields import Field, FieldData, FieldType, convert
from coffer.framework.request import Request, Response

S, B, M, KV = FieldType.STRING, FieldType.BOOL, FieldType.MAP, FieldType.KV_MAP

SUDO = ("remount",)
#: A mount's ``listing_visibility``, as Vault takes it ("hidden" is a hint for web UIs; it changes no answer).
LISTING_VISIBILITY = ("", "unauth", "hidden")


def top(data: dict[str, Any]) -> Response:
    return Response(data=data, data_at_top_level=True)


def paths(router: Router, expiration: ExpirationManager, tokens: TokenStore) -> list[Path]:
    server_max = router.max_lease_ttl

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
        if raw_config.get("listing_visibility") is not None:
            visibility = str(raw_config["listing_visibility"])
            if visibility not in LISTING_VISIBILITY:
                raise InvalidRequest(f'invalid listing_visibility "{visibility[:40]}": use "unauth" (listed to '
                                     'callers without a token by sys/internal/ui/mounts), "hidden" or ""')
            config["listing_visibility"] = visibility
        default, maximum = config.get("default_lease_ttl", 0), config.get("max_lease_ttl", 0)
        if default and default > (maximum or server_max):
            raise InvalidRequest(f"default_lease_ttl cannot be greater than max_lease_ttl ({maximum or server_max}s)")
        if maximum and maximum > server_max:
            raise InvalidRequest(f"max_lease_ttl cannot exceed the server's max_lease_ttl ({server_max}s)")
        return config

    def kv_options(mount_type: str, options: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
        """The type and options a mount is stored with: ``kv-v2`` is kv with version 2; kv's version is 1 or 2."""
        opts = {str(k): str(v) for k, v in (options or {}).items()}
        if mount_type == "kv-v2":
            mount_type = "kv"
            opts.setdefault("version", "2")
        if mount_type in ("kv", "generic") and opts.get("version", "1").strip() not in ("1", "2", ""):
            raise InvalidRequest(f'invalid kv version "{opts["version"]}": use options version=1 or version=2')
        return mount_type, opts

    def route_of(d: FieldData, auth: bool) -> str:
        return (AUTH_PREFIX if auth else "") + normalize(d["path"])

    def listing(auth: bool) -> Response:
        return top({m.entry.path: m.entry.describe() for m in router.table(auth)})

    async def list_mounts(req: Request, d: FieldData) -> Response:
        return listing(auth=False)

    async def list_auth(req: Request, d: FieldData) -> Response:
        return listing(auth=True)

    async def read_mount(req: Request, d: FieldData, auth: bool = False) -> Response:
        return top(router.get(route_of(d, auth)).entry.describe())

    async def enable(req: Request, d: FieldData, auth: bool = False) -> None:
        d.require("type")
        mount_type, options = kv_options(d["type"], d["options"]) if not auth else (d["type"], {
            str(k): str(v) for k, v in (d["options"] or {}).items()})
        entry = router.new_entry(
            normalize(d["path"]), mount_type, auth=auth, description=d["description"] or "",
            config=ttl_config(d["config"] or {}), options=options, local=d["local"], seal_wrap=d["seal_wrap"],
        )
        await router.mount(entry, auth=auth)

    async def disable(req: Request, d: FieldData, auth: bool = False) -> None:
        route = route_of(d, auth)
        mount = router.mounts.get(route)
        if mount is None:
            if not auth and route.startswith(RESERVED):
                raise InvalidRequest(f'cannot unmount "{route}": it belongs to coffer itself')
            return  # nothing there: done
        router.check_unmountable(route)
        result = await expiration.revoke_prefix(route)
        if result.failed:
            lease_id, error = next(iter(result.failed.items()))
            raise InvalidRequest(
                f"cannot unmount {route}: {len(result.failed)} lease(s) could not be revoked (e.g. {lease_id}: "
                f"{error}); fix the cause, or forget them with sys/leases/revoke-force/{route}, then retry"
            )
        if auth:  # the tokens its logins issued go with it (and their leases with them)
            await tokens.revoke_mount(mount.entry.uuid)
        await router.unmount(route)

    async def read_tune(req: Request, d: FieldData, auth: bool = False) -> Response:
        entry = router.get(route_of(d, auth)).entry
        return top({
            "default_lease_ttl": entry.default_lease_ttl or router.default_lease_ttl,
            "max_lease_ttl": entry.max_lease_ttl or router.max_lease_ttl,
            "force_no_cache": bool(entry.config.get("force_no_cache", False)),
            "description": entry.description,
            "options": entry.options or None,
            **entry.listing_visibility,
        })

    async def tune(req: Request, d: FieldData, auth: bool = False) -> Response | None:
        route = route_of(d, auth)
        entry = router.get(route).entry
        config = ttl_config(d.given(), entry.config)
        options = {str(k): str(v) for k, v in (d["options"] or {}).items()}
        warnings = []
        if "options" in d and entry.type in ("kv", "generic"):
            _, options = kv_options(entry.type, options)
            before = "2" if entry.options.get("version", "").strip() == "2" else "1"
            after = options.get("version", "").strip() or before
            if before == "2" and after != "2":
                raise InvalidRequest("cannot downgrade mount from version 2")
            if before == "1" and after == "2":
                # The kv engine upgrades its storage on the first request it serves as version 2.
                warnings.append("Upgrading mount from version 1 to version 2. This mount will be unavailable "
                                "for a brief period and will resume service shortly.")

        def change(entry: MountEntry) -> None:
            entry.config = config
            if "description" in d:
                entry.description = d["description"]
            if "options" in d:
                entry.options.update(options)

        await router.update(route, change)
        return Response(warnings=warnings) if warnings else None

    migrations: dict[str, dict[str, str]] = {}  # the last moves, for sys/remount/status

    async def remount(req: Request, d: FieldData) -> Response:
        d.require("from", "to")
        src, dst = normalize(d["from"]), normalize(d["to"])
        await router.remount(src, dst)
        await expiration.move_prefix(src, dst)
        # Vault's remount runs in the background and answers a migration id to poll; coffer's is done now.
        migration_id = str(uuid.uuid4())
        migrations[migration_id] = {"source_mount": src, "target_mount": dst, "status": "success"}
        while len(migrations) > 100:
            del migrations[next(iter(migrations))]
        return Response(data={"migration_id": migration_id}, data_at_top_level=True)

    async def remount_status(req: Request, d: FieldData) -> Response:
        info = migrations.get(d["migration_id"])
        if info is None:
            raise NotFound(f'no mount migration with id "{d["migration_id"]}" (ids are kept for the last 100 moves '
                           "until the server restarts)")
        return Response(data={"migration_id": d["migration_id"], "migration_info": info})

    def for_auth(handler: Callable[..., Awaitable[Response | None]]) -> Handler:
        return functools.partial(handler, auth=True)

    mount_fields = {
        "path": Field(S, "The path to mount at, e.g. aws."),
        "type": Field(S, "The engine or auth method type, e.g. kv or aws."),
        "description": Field(S, "A human-friendly description."),
        "config": Field(M, "default_lease_ttl, max_lease_ttl, force_no_cache, listing_visibility."),
        "options": Field(KV, "Engine options."),
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
        "listing_visibility": Field(S, '"unauth" to list the mount to callers without a token in '
                                       'sys/internal/ui/mounts (as web UIs use it on their login page); "hidden" '
                                       'or "" not.'),
        "description": Field(S, "A new description."),
        "options": Field(KV, "Engine options to set."),
    }
    return [
        Path("mounts", {"read": list_mounts}, synopsis="List the mounted secrets engines."),
        Path(r"mounts/(?P<path>.+?)/tune", {"read": read_tune, "write": tune}, tune_fields,
             synopsis="Read or change a mount's lease TTLs and description."),
        Path(r"mounts/(?P<path>.+)", {"read": read_mount, "write": enable, "delete": disable}, mount_fields,
             synopsis="Mount (POST), describe (GET) or unmount (DELETE) a secrets engine."),
        Path("remount", {"write": remount}, {"from": Field(S, "The current mount path."),
                                             "to": Field(S, "The new mount path.")},
             synopsis="Move a mount to a new path."),
        Path(r"remount/status/(?P<migration_id>[^/]+)", {"read": remount_status},
             {"migration_id": Field(S, "The id sys/remount answered.")}, synopsis="The outcome of a mount move."),
        Path("auth", {"read": list_auth}, synopsis="List the auth methods."),
        Path(r"auth/(?P<path>.+?)/tune", {"read": for_auth(read_tune), "write": for_auth(tune)}, dict(tune_fields),
             synopsis="Read or change an auth method's lease TTLs and description."),
        Path(r"auth/(?P<path>.+)", {"read": for_auth(read_mount), "write": for_auth(enable),
                                    "delete": for_auth(disable)}, dict(mount_fields),
             synopsis="Enable (POST), describe (GET) or disable (DELETE) an auth method."),
    ]
