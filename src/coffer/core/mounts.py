"""The mount table: which engine answers under which path prefix."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from coffer.errors import InvalidRequest
from coffer.storage.base import Storage

TABLE_PATH = "core/mounts"
#: Mount points that belong to coffer itself.
RESERVED = ("sys/", "auth/", "cubbyhole/", "identity/")


def normalize(path: str) -> str:
    path = path.strip().strip("/")
    if not path:
        raise InvalidRequest("a mount path is required, e.g. sys/mounts/aws")
    if any(not seg or seg in (".", "..") for seg in path.split("/")):
        raise InvalidRequest(f'invalid mount path "{path}": empty, "." and ".." segments are not allowed')
    return path + "/"


@dataclass(slots=True)
class MountEntry:
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
    def storage_prefix(self) -> str:
        return f"logical/{self.uuid}/"

    @property
    def default_lease_ttl(self) -> int:
        return int(self.config.get("default_lease_ttl") or 0)

    @property
    def max_lease_ttl(self) -> int:
        return int(self.config.get("max_lease_ttl") or 0)

    def describe(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "max_lease_ttl": self.max_lease_ttl,
                "force_no_cache": bool(self.config.get("force_no_cache", False)),
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
    """Logical mounts, persisted as one JSON document inside the barrier."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.entries: dict[str, MountEntry] = {}

    async def load(self) -> None:
        raw = await self.storage.get(TABLE_PATH)
        docs = orjson.loads(raw) if raw else []
        self.entries = {d["path"]: MountEntry(**d) for d in docs}

    async def save(self) -> None:
        await self.storage.put(TABLE_PATH, orjson.dumps([asdict(e) for e in self.entries.values()]))

    def match(self, path: str) -> MountEntry | None:
        """The mount with the longest path that prefixes ``path``."""
        probe = path if path.endswith("/") else path + "/"
        end = len(probe)
        while end > 0:
            entry = self.entries.get(probe[:end])
            if entry is not None:
                return entry
            end = probe.rfind("/", 0, end - 1) + 1
        return None

    def by_uuid(self, mount_uuid: str) -> MountEntry | None:
        return next((e for e in self.entries.values() if e.uuid == mount_uuid), None)

    def check_free(self, path: str) -> None:
        for reserved in RESERVED:
            if path.startswith(reserved) or reserved.startswith(path):
                raise InvalidRequest(f'cannot mount at "{path}": "{reserved}" is reserved for coffer itself')
        for existing in self.entries:
            if path.startswith(existing) or existing.startswith(path):
                raise InvalidRequest(f"path is already in use at {existing}")

    async def add(self, entry: MountEntry) -> None:
        self.check_free(entry.path)
        self.entries[entry.path] = entry
        await self.save()

    async def remove(self, path: str) -> MountEntry | None:
        entry = self.entries.pop(path, None)
        if entry is not None:
            await self.save()
        return entry

    async def move(self, src: str, dst: str) -> MountEntry:
        entry = self.entries.get(src)
        if entry is None:
            raise InvalidRequest(f'no mount at "{src}"; list mounts with GET sys/mounts')
        del self.entries[src]
        try:
            self.check_free(dst)
        except InvalidRequest:
            self.entries[src] = entry
            raise
        entry.path = dst
        self.entries[dst] = entry
        await self.save()
        return entry
