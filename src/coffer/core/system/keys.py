"""``sys/rotate``, ``sys/key-status`` and ``sys/internal/specs/openapi``."""

from __future__ import annotations

import logging
import time
from typing import Any

from coffer import __version__
from coffer.core.barrier import Barrier
from coffer.core.router import Router
from coffer.errors import CofferError
from coffer.framework.backend import Path
from coffer.framework.fields import FieldData
from coffer.framework.request import HELP, Request, Response

#: sys/rotate/keyring is OpenBao's name for sys/rotate (what its CLI's ``operator rotate`` sends).
SUDO = ("rotate", "rotate/keyring")
log = logging.getLogger("coffer.core")


def paths(barrier: Barrier, router: Router) -> list[Path]:
    async def rotate(req: Request, d: FieldData) -> None:
        term = await barrier.rotate()
        log.info("rotated the encryption key: new writes use term %d", term.number,
                 extra={"event": "key_rotation", "term": term.number})

    async def key_status(req: Request, d: FieldData) -> Response:
        term = barrier.key_status()
        installed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(term.install_time))
        # Vault documents term/install_time at the top level; hvac reads data.
        # encryptions: a number, as Vault answers (the Go CLI refuses anything else); counted since unseal.
        return Response(data={"term": term.number, "install_time": installed, "encryptions": barrier.encryptions},
                        data_at_top_level=True)

    async def openapi(req: Request, d: FieldData) -> Response:
        """Every mount's paths, as each engine describes them at its root (path-help)."""
        documented: dict[str, Any] = {}
        for mount in list(router.mounts.values()):
            try:
                answer = await mount.engine.handle(router.request(mount, HELP, mount.route))
            except CofferError:  # an unavailable mount has nothing to say
                continue
            if answer is not None and answer.data:
                documented.update(answer.data.get("openapi", {}).get("paths", {}))
        return Response(raw=True, data={
            "openapi": "3.0.2",
            "info": {"title": "coffer", "version": __version__,
                     "description": "The HTTP API of coffer (Vault-compatible)."},
            "paths": dict(sorted(documented.items())),
        })

    return [
        Path("rotate", {"write": rotate}, synopsis="Add a new encryption key term (needs sudo)."),
        Path("rotate/keyring", {"write": rotate}, synopsis="The same as sys/rotate (OpenBao's name for it)."),
        Path("key-status", {"read": key_status}, synopsis="The active encryption key term."),
        Path("internal/specs/openapi", {"read": openapi}, synopsis="The OpenAPI document of every path."),
    ]
