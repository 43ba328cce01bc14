"""``sys/storage/raft/snapshot`` (GET: save, POST: restore) and ``sys/storage/raft/snapshot-force``: online backups.

Vault's paths, so clients that know Vault's snapshot API work; coffer's snapshot file is its own format
(``storage.snapshot``) and holds every key of the store as storage holds it (encrypted by the barrier),
whichever backend it came from. Both need sudo, as in Vault.

A restore checks the whole file first (a damaged one is refused, nothing is touched), then replaces the
store in one transaction and reloads it (``Core.restore_storage``): the server stays unsealed when the
snapshot's keyring opens with the root key in force; otherwise only ``snapshot-force`` restores it, and
the server is then sealed, to be unsealed with the snapshot's keys.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, BinaryIO

from coffer.core.barrier import KEYRING_PATH
from coffer.core.seal import SEAL_CONFIG_PATH
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response
from coffer.storage import snapshot

if TYPE_CHECKING:
    from coffer.core.core import Core

SUDO = ("storage/raft/snapshot", "storage/raft/snapshot-force")
CONTENT_TYPE = "application/octet-stream"


def _empty(file: BinaryIO) -> bool:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size == 0


def paths(core: Core) -> list[Path]:
    async def save(req: Request, d: FieldData) -> Response:
        return Response(stream=snapshot.encode(core.physical.snapshot()), content_type=CONTENT_TYPE, raw=True)

    async def restore(req: Request, force: bool) -> None:
        file = req.upload
        if file is None or _empty(file):
            raise InvalidRequest("send the snapshot file as the request body (coffer operator snapshot restore FILE)")
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(None, snapshot.read, file, (KEYRING_PATH, SEAL_CONFIG_PATH))
        except snapshot.SnapshotError as exc:
            raise InvalidRequest(f"{exc}; nothing was restored") from None
        keyring = info.values.get(KEYRING_PATH)
        if keyring is None or SEAL_CONFIG_PATH not in info.values:
            raise InvalidRequest("the snapshot holds no keyring or seal configuration, so it is not a snapshot of "
                                 "an initialized coffer store; nothing was restored")

        async def replace() -> int:
            file.seek(0)
            try:
                return await core.physical.replace_all(snapshot.records(file))
            except (ValueError, TypeError) as exc:  # a key this backend cannot hold (PostgreSQL: no NUL)
                raise InvalidRequest(f"the snapshot cannot be stored in this server's storage ({exc}); nothing "
                                     "was restored") from None

        await core.restore_storage(keyring, replace, force)

    async def restore_checked(req: Request, d: FieldData) -> None:
        await restore(req, force=False)

    async def restore_forced(req: Request, d: FieldData) -> None:
        await restore(req, force=True)

    return [
        Path("storage/raft/snapshot", {"read": save, "update": restore_checked},
             synopsis="Save (GET) or restore (POST) a snapshot of the whole storage.",
             description="GET answers the snapshot file (every key as storage holds it, encrypted). POST takes "
                         "one as the request body, checks it whole, replaces the storage with it in one "
                         "transaction and reloads; it is refused when the snapshot's keyring does not open "
                         "with this server's root key (use snapshot-force)."),
        Path("storage/raft/snapshot-force", {"update": restore_forced},
             synopsis="Restore a snapshot even when it was taken with other unseal keys.",
             description="As POST sys/storage/raft/snapshot; when the snapshot's keyring is another one, the "
                         "server is left sealed: unseal it with the snapshot's keys."),
    ]
