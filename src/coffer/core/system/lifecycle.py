"""``sys/init``, ``sys/seal-status``, ``sys/unseal``, ``sys/seal``, ``sys/health``, ``sys/leader``.

These answer plain JSON (no envelope), and all but ``sys/seal`` work without a token.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Protocol

from coffer.core.autoseal import AutoSeal
from coffer.core.seal import SealConfig, SealManager, decode_key
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.storage.base import Backend

S, I, B, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.COMMA_LIST

UNAUTHENTICATED = ("init", "seal-status", "unseal", "health", "leader")
SUDO = ("seal",)


class Lifecycle(Protocol):
    """What these paths need of the server (``core.Core`` is one)."""

    physical: Backend
    sealing: SealManager
    autoseal: AutoSeal

    @property
    def sealed(self) -> bool: ...

    @property
    def standby(self) -> bool: ...

    def leader_status(self) -> dict[str, object]: ...

    async def load_seal_config(self) -> SealConfig | None: ...

    async def initialize(self, shares: int, threshold: int, root_token_id: str | None = None,
                         recovery_shares: int = 0, recovery_threshold: int = 0) -> tuple[list[bytes], str]: ...

    async def submit_unseal_key(self, key: bytes | None, reset: bool = False, migrate: bool = False) -> None: ...

    async def seal(self) -> None: ...

    def status(self) -> dict[str, object]: ...


def raw(data: dict[str, Any], status: int | None = None) -> Response:
    return Response(data=data, raw=True, status=status)


HEALTH_FIELDS = {
    "standbyok": Field(B, "Answer 200 on a standby node.", default=False),
    "perfstandbyok": Field(B, "Answer 200 on a performance standby.", default=False),
    "activecode": Field(I, "Status code when active.", default=200),
    "standbycode": Field(I, "Status code when standby.", default=429),
    "drsecondarycode": Field(I, "Status code for a DR secondary.", default=472),
    "performancestandbycode": Field(I, "Status code for a performance standby.", default=473),
    "sealedcode": Field(I, "Status code when sealed.", default=503),
    "uninitcode": Field(I, "Status code when not initialized.", default=501),
}


def paths(server: Lifecycle) -> list[Path]:
    async def init_status(req: Request, d: FieldData) -> Response:
        return raw({"initialized": await server.load_seal_config() is not None})

    async def init(req: Request, d: FieldData) -> Response:
        if d["pgp_keys"] or d["root_token_pgp_key"] or d["recovery_pgp_keys"]:
            # never hand out plaintext keys to a caller who asked for them encrypted
            raise InvalidRequest("pgp_keys, recovery_pgp_keys and root_token_pgp_key are not supported; "
                                 "initialize without them to receive the keys in plaintext")
        if server.autoseal.configured == "shamir":
            if d["recovery_shares"] or d["recovery_threshold"]:
                raise InvalidRequest("parameters recovery_shares,recovery_threshold not applicable to seal type "
                                     "shamir")
            d.require("secret_shares", "secret_threshold")
            keys, root_token = await server.initialize(d["secret_shares"], d["secret_threshold"])
            return raw({
                "keys": [k.hex() for k in keys],
                "keys_base64": [base64.b64encode(k).decode() for k in keys],
                "root_token": root_token,
            })
        # An auto-unseal seal keeps the root key itself: the keys people hold are recovery keys, and
        # secret_shares/secret_threshold are refused (as Vault and OpenBao do).
        if d["secret_shares"] or d["secret_threshold"]:
            raise InvalidRequest(f"parameters secret_shares,secret_threshold not applicable to seal type "
                                 f"{server.autoseal.configured}; give recovery_shares and recovery_threshold")
        d.require("recovery_shares", "recovery_threshold")
        keys, root_token = await server.initialize(1, 1, recovery_shares=d["recovery_shares"],
                                                   recovery_threshold=d["recovery_threshold"])
        recovery_b64 = [base64.b64encode(k).decode() for k in keys]
        return raw({
            "keys": [],
            "keys_base64": [],
            "recovery_keys": [k.hex() for k in keys],
            "recovery_keys_base64": recovery_b64,
            "recovery_keys_b64": recovery_b64,
            "root_token": root_token,
        })

    async def seal_status(req: Request, d: FieldData) -> Response:
        await server.load_seal_config()
        return raw(server.status())

    async def unseal(req: Request, d: FieldData) -> Response:
        if not d["reset"] and not d["key"]:
            raise InvalidRequest("'key' must be specified in request body as JSON, or 'reset' set to true")
        key = decode_key(d["key"]) if d["key"] and not d["reset"] else None  # reset wins, as in Vault
        await server.submit_unseal_key(key, reset=d["reset"], migrate=bool(d["migrate"]))
        return raw(server.status())

    async def seal(req: Request, d: FieldData) -> None:
        await server.seal()

    async def health(req: Request, d: FieldData) -> Response:
        for name in HEALTH_FIELDS:
            if name.endswith("code") and not 200 <= d[name] <= 599:
                raise InvalidRequest(f'invalid value for field "{name}": {d[name]} is not a usable HTTP '
                                     "status code (200-599)")
        config = await server.load_seal_config()
        body = {
            "initialized": config is not None,
            "sealed": server.sealed,
            "standby": server.standby,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": server.status()["version"],
            "cluster_name": "coffer",
            "cluster_id": "",
        }
        if config is None:
            status = d["uninitcode"]
        elif server.sealed:
            status = d["sealedcode"]
        elif server.standby:
            status = d["activecode"] if d["standbyok"] else d["standbycode"]
        else:
            status = d["activecode"]
        return raw(body, status)

    async def leader(req: Request, d: FieldData) -> Response:
        return raw(server.leader_status())

    return [
        Path("init", {"read": init_status, "write": init}, {
            "secret_shares": Field(I, "How many key shares to split the root key into."),
            "secret_threshold": Field(I, "How many shares are needed to unseal."),
            "pgp_keys": Field(L, "Not supported; must be empty."),
            "root_token_pgp_key": Field(S, "Not supported; must be empty."),
            "stored_shares": Field(I, "Ignored."),
            "recovery_shares": Field(I, "Under an auto-unseal seal (awskms): how many recovery key shares to make."),
            "recovery_threshold": Field(I, "Under an auto-unseal seal: how many recovery key shares authorize "
                                           "generate-root, unseal of a sealed node and seal migration."),
            "recovery_pgp_keys": Field(L, "Not supported; must be empty."),
        }, synopsis="Initialize a new server: create the keys and the root token."),
        Path("seal-status", {"read": seal_status}, synopsis="The seal status."),
        Path("unseal", {"write": unseal}, {
            "key": Field(S, "One unseal key share (a recovery key share on an auto-unseal seal), hex or base64."),
            "reset": Field(B, "Forget the shares given so far.", default=False),
            "migrate": Field(B, "Give the keys of the old seal to finish a pending seal migration (on every key "
                                "of it).", default=False),
        }, synopsis="Give one unseal key share."),
        Path("seal", {"write": seal}, synopsis="Seal the server (needs sudo)."),
        Path("health", {"read": health}, HEALTH_FIELDS, synopsis="Health: 200 active, 429 standby, 503 sealed, 501 uninitialized."),
        Path("leader", {"read": leader}, synopsis="High-availability status."),
    ]
