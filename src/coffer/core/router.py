"""The two mount tables (secrets engines, and auth methods under ``auth/``) and routing over them.

Every backend is a mount: ``sys/`` (the system backend), ``cubbyhole/`` and
``auth/token/`` are built-in entries of those tables, persisted like the
others so their uuids and accessors stay stable, and never unmountable.
Routing is one longest-prefix lookup over both tables.

Storage (inside the barrier): ``core/mounts`` and ``core/auth`` hold the
tables as JSON lists; a mount's own data lives under ``logical/<uuid>/``
(secrets) or ``auth/<uuid>/`` (auth methods).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from coffer.errors import InvalidRequest, NotFound, UnsupportedOperation
from coffer.framework.engine import Engine, Factory, SpecialPaths
from coffer.framework.request import MountInfo, Request, Response
from coffer.framework.storage import StorageView
from coffer.storage.base import Storage

log = logging.getLogger("coffer.router")

SECRETS_TABLE = "core/mounts"
AUTH_TABLE = "core/auth"
AUTH_PREFIX = "auth/"
#: Secrets mount points that belong to coffer itself (a user mount may not start with one).
RESERVED = ("sys/", "auth/", "cubbyhole/", "identity/")
#: Built-in entries: path -> (type, description). Vault's descriptions.
BUILTIN_SECRETS = {"sys/": ("system", "system endpoints used for control, policy and debugging"),
                   "cubbyhole/": ("cubbyhole", "per-token private secret storage")}
BUILTIN_AUTH = {"token/": ("token", "token based credentials")}
BUILTIN_TYPES = frozenset(t for t, _ in (*BUILTIN_SECRETS.values(), *BUILTIN_AUTH.values()))


def normalize(path: str) -> str:
    path = path.strip().strip("/")
    if not path:
        raise InvalidRequest("a mount path is required, e.g. sys/mounts/aws")
    if any(not seg or seg in (".", "..") for seg in path.split("/")):
        raise InvalidRequest(f'invalid mount path "{path}": empty, "." and ".." segments are not allowed')
    return path + "/"


@dataclass(slots=True)
class MountEntry:
    """One row of a mount table, as stored. ``path`` is relative to its table (``userpass/``, not ``auth/userpass/``)."""

    path: str
    type: str
    description: str = ""
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    accessor: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    local: bool = False
    seal_wrap: bool = False
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.accessor:
            self.accessor = f"{self.type}_{secrets.token_hex(4)}"

    @property
    def default_lease_ttl(self) -> int:
        return int(self.config.get("default_lease_ttl") or 0)

    @property
    def max_lease_ttl(self) -> int:
        return int(self.config.get("max_lease_ttl") or 0)

    @property
    def listing_visibility(self) -> dict[str, str]:
        """``{"listing_visibility": ...}`` when it is set, else nothing (Vault shows the key only when set);
        ``unauth`` makes ``sys/internal/ui/mounts`` show the mount to callers without a token."""
        value = self.config.get("listing_visibility")
        return {"listing_visibility": value} if value else {}

    def describe(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "max_lease_ttl": self.max_lease_ttl,
                "force_no_cache": bool(self.config.get("force_no_cache", False)),
                **self.listing_visibility,
            },
            "description": self.description,
            "external_entropy_access": False,
            "local": self.local,
            "options": self.options or None,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.type,
            "uuid": self.uuid,
        }


class MountTable:
    """One table, persisted as one JSON document inside the barrier; built-in entries are added when missing."""

    def __init__(self, storage: Storage, key: str, builtins: dict[str, tuple[str, str]], accessor_prefix: str = ""):
        self.storage = storage
        self.key = key
        self.builtins = builtins
        self.accessor_prefix = accessor_prefix
        self.entries: dict[str, MountEntry] = {}

    def new_entry(self, path: str, mount_type: str, **kwargs: Any) -> MountEntry:
        return MountEntry(path=path, type=mount_type,
                          accessor=f"{self.accessor_prefix}{mount_type}_{secrets.token_hex(4)}", **kwargs)

    async def load(self) -> None:
        raw = await self.storage.get(self.key)
        try:
            docs = orjson.loads(raw) if raw else []
            entries = {d["path"]: MountEntry(**d) for d in docs}
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"the mount table {self.key} is damaged ({exc})") from None
        missing = {p: v for p, v in self.builtins.items() if p not in entries}
        for path, (mount_type, description) in missing.items():
            entries[path] = self.new_entry(path, mount_type, description=description,
                                           local=mount_type == "cubbyhole")
        self.entries = entries
        if missing:  # a store from before built-in entries existed: keep them from now on
            await self.save()

    async def save(self) -> None:
        await self.storage.put(self.key, orjson.dumps([asdict(e) for e in self.entries.values()]))


class Unavailable:
    """The engine of a mount whose type cannot be instantiated (its plugin is gone): every request fails clearly."""

    special_paths = SpecialPaths()

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def resolve(self, req: Request) -> str:
        return req.operation

    async def handle(self, req: Request) -> Response | None:
        raise UnsupportedOperation(f"the mount {req.mount_point} is unavailable: {self.reason}")


@dataclass(slots=True)
class Mount:
    """A mounted backend at run time: its entry, where it routes, its engine and its storage."""

    entry: MountEntry
    route: str  # the full prefix, e.g. "aws/" or "auth/approle/"
    auth: bool
    engine: Engine
    info: MountInfo
    storage: StorageView

    @property
    def builtin(self) -> bool:
        return self.entry.type in BUILTIN_TYPES


class Router:
    def __init__(self, storage: Storage, *, secrets_engines: dict[str, Factory], auth_methods: dict[str, Factory],
                 builtins: dict[str, Factory], default_lease_ttl: int, max_lease_ttl: int) -> None:
        self.storage = storage
        self.factories = {False: secrets_engines, True: auth_methods}
        self.builtins = builtins
        self.default_lease_ttl = default_lease_ttl
        self.max_lease_ttl = max_lease_ttl
        self.tables = {False: MountTable(storage, SECRETS_TABLE, BUILTIN_SECRETS),
                       True: MountTable(storage, AUTH_TABLE, BUILTIN_AUTH, accessor_prefix="auth_")}
        self.mounts: dict[str, Mount] = {}
        self._by_uuid: dict[str, Mount] = {}

    # -- loading ---------------------------------------------------------------

    async def load(self) -> None:
        """Read both tables and instantiate every engine (a type that is gone leaves that mount unavailable)."""
        mounts: dict[str, Mount] = {}
        for auth, table in self.tables.items():
            await table.load()
            for entry in table.entries.values():
                mount = self._instantiate(entry, auth, strict=False)
                mounts[mount.route] = mount
        self.mounts = mounts
        self._by_uuid = {m.entry.uuid: m for m in mounts.values()}

    def clear(self) -> None:
        self.mounts, self._by_uuid = {}, {}
        for table in self.tables.values():
            table.entries = {}

    def _factory(self, mount_type: str, auth: bool) -> Factory | None:
        return self.builtins.get(mount_type) or self.factories[auth].get(mount_type)

    def _instantiate(self, entry: MountEntry, auth: bool, *, strict: bool) -> Mount:
        route = (AUTH_PREFIX if auth else "") + entry.path
        info = self.info(entry, route)
        factory = self._factory(entry.type, auth)
        engine: Engine
        if factory is None:
            reason = self._unknown(entry.type, auth)
            if strict:
                raise InvalidRequest(reason)
            log.error("mount %s is unavailable: %s", route, reason)
            engine = Unavailable(reason)
        else:
            try:
                engine = factory(info)
            except Exception as exc:
                if strict:
                    raise InvalidRequest(f"cannot set up a {entry.type} engine: {exc}") from None
                log.exception("mount %s is unavailable: its engine failed to start", route)
                engine = Unavailable(f"its {entry.type} engine failed to start: {exc}")
        prefix = f"{'auth' if auth else 'logical'}/{entry.uuid}/"
        return Mount(entry, route, auth, engine, info, StorageView(self.storage, prefix))

    def info(self, entry: MountEntry, route: str) -> MountInfo:
        return MountInfo(
            path=route, type=entry.type, uuid=entry.uuid, accessor=entry.accessor, options=dict(entry.options),
            default_lease_ttl=entry.default_lease_ttl or self.default_lease_ttl,
            max_lease_ttl=entry.max_lease_ttl or self.max_lease_ttl,
            tuned_default_lease_ttl=entry.default_lease_ttl,
        )

    def _unknown(self, mount_type: str, auth: bool) -> str:
        known = ", ".join(sorted(self.factories[auth])) or "none yet"
        return f"plugin not found in the catalog: {mount_type} (known types: {known})"

    # -- lookup ----------------------------------------------------------------

    def match(self, path: str) -> Mount | None:
        """The mount with the longest route that prefixes ``path``."""
        mounts = self.mounts
        probe = path if path.endswith("/") else path + "/"
        end = len(probe)
        while end > 0:
            mount = mounts.get(probe[:end])
            if mount is not None:
                return mount
            end = probe.rfind("/", 0, end - 1) + 1
        return None

    def by_uuid(self, mount_uuid: str) -> Mount | None:
        return self._by_uuid.get(mount_uuid)

    def table(self, auth: bool) -> Iterator[Mount]:
        """The mounts of one table, by path."""
        return (m for _, m in sorted(self.mounts.items()) if m.auth == auth)

    def get(self, route: str) -> Mount:
        mount = self.mounts.get(route)
        if mount is None:
            what = "auth method is enabled" if route.startswith(AUTH_PREFIX) else "secrets engine is mounted"
            raise InvalidRequest(f'no {what} at "{route}"')
        return mount

    def request(self, mount: Mount, operation: str, path: str, **kwargs: Any) -> Request:
        """A request core itself sends to ``mount`` (renew, revoke, rollback, periodic, help)."""
        return Request(operation=operation, path=path, mount=mount.info, relative_path=path[len(mount.route):],
                       storage=mount.storage, **kwargs)

    # -- changes -----------------------------------------------------------------

    def _check_free(self, route: str, auth: bool) -> None:
        if not auth:
            for reserved in RESERVED:
                if route.startswith(reserved) or reserved.startswith(route):
                    raise InvalidRequest(f'cannot mount at "{route}": "{reserved}" is reserved for coffer itself')
        for existing in self.mounts:
            if existing.startswith(AUTH_PREFIX) != auth:
                continue
            if route.startswith(existing) or existing.startswith(route):
                raise InvalidRequest(f"path is already in use at {existing}")

    def _check_mountable(self, mount_type: str, auth: bool) -> None:
        if mount_type in BUILTIN_TYPES:
            raise InvalidRequest(f'"{mount_type}" is built in and mounted once, by coffer itself; '
                                 "it cannot be mounted again")
        if mount_type not in self.factories[auth]:
            raise InvalidRequest(self._unknown(mount_type, auth))

    def new_entry(self, path: str, mount_type: str, *, auth: bool = False, **kwargs: Any) -> MountEntry:
        return self.tables[auth].new_entry(path, mount_type, **kwargs)

    async def mount(self, entry: MountEntry, *, auth: bool = False) -> Mount:
        self._check_mountable(entry.type, auth)
        table = self.tables[auth]
        route = (AUTH_PREFIX if auth else "") + entry.path
        self._check_free(route, auth)
        mount = self._instantiate(entry, auth, strict=True)
        table.entries[entry.path] = entry
        try:
            await table.save()
        except BaseException:
            del table.entries[entry.path]
            raise
        self.mounts[route] = mount
        self._by_uuid[entry.uuid] = mount
        return mount

    def _user_mount(self, route: str, verb: str) -> Mount:
        mount = self.get(route)
        if mount.builtin:
            raise InvalidRequest(f'cannot {verb} "{route}": it is built into coffer and always mounted')
        return mount

    async def unmount(self, route: str) -> MountEntry:
        """Remove the mount and delete all of its data (the caller revoked its leases first)."""
        mount = self._user_mount(route, "unmount")
        table = self.tables[mount.auth]
        del table.entries[mount.entry.path]
        await table.save()
        self.mounts.pop(route, None)
        self._by_uuid.pop(mount.entry.uuid, None)
        await mount.storage.delete_tree()
        return mount.entry

    def check_unmountable(self, route: str) -> Mount:
        return self._user_mount(route, "unmount")

    async def remount(self, src: str, dst: str) -> Mount:
        mount = self._user_mount(src, "move")
        auth = mount.auth
        if dst.startswith(AUTH_PREFIX) != auth:
            raise InvalidRequest("cannot move a mount between the secrets engines and the auth methods")
        del self.mounts[src]
        try:
            self._check_free(dst, auth)
        except InvalidRequest:
            self.mounts[src] = mount
            raise
        table = self.tables[auth]
        del table.entries[mount.entry.path]
        mount.entry.path = dst[len(AUTH_PREFIX):] if auth else dst
        table.entries[mount.entry.path] = mount.entry
        await table.save()
        moved = Mount(mount.entry, dst, auth, mount.engine, self.info(mount.entry, dst), mount.storage)
        self.mounts[dst] = moved
        self._by_uuid[mount.entry.uuid] = moved
        return moved

    async def update(self, route: str, change: Callable[[MountEntry], None]) -> None:
        """Apply ``change`` to a mount's entry (a tune) and persist it; requests see it at once."""
        mount = self.get(route)
        before = asdict(mount.entry)
        change(mount.entry)
        try:
            await self.tables[mount.auth].save()
        except BaseException:
            for key, value in before.items():
                setattr(mount.entry, key, value)
            raise
        mount.info = self.info(mount.entry, route)


def not_found(path: str) -> NotFound:
    return NotFound(f'no handler for route "{path}": no secrets engine is mounted there '
                    "(list mounts with GET sys/mounts)")
