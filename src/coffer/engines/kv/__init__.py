"""The key/value secrets engine (type ``kv``, also ``generic``): version 1 or 2, by the mount's options.

A mount's ``options.version`` chooses: "2" serves ``v2`` (versioned secrets), anything else ``v1``. The
version is read from the mount on every request, so tuning a mount from version 1 to 2 takes effect at
once; the first request version 2 serves then upgrades the storage in place (``upgrade``).
"""

from __future__ import annotations

from coffer.engines.kv import v1, v2
from coffer.framework.backend import Backend
from coffer.framework.engine import SpecialPaths
from coffer.framework.request import MountInfo, Request, Response

__all__ = ["factory", "version_of"]


def version_of(mount: MountInfo) -> int:
    return 2 if str(mount.options.get("version", "")).strip() == "2" else 1


class KV:
    """One mount of kv: hands each request to the version the mount has now."""

    special_paths = SpecialPaths()

    def __init__(self) -> None:
        self.v1: Backend = v1.backend()
        self.v2: Backend = v2.KVv2()

    def _for(self, req: Request) -> Backend:
        return self.v2 if version_of(req.mount) == 2 else self.v1

    async def resolve(self, req: Request) -> str:
        return await self._for(req).resolve(req)

    async def handle(self, req: Request) -> Response | None:
        return await self._for(req).handle(req)


def factory(mount: MountInfo) -> KV:
    return KV()
