"""The ``sys/leases/*`` paths (and Vault's older ``sys/renew``, ``sys/revoke*``)."""

from __future__ import annotations

from typing import Any

from coffer.core.expiration import ExpirationManager, Lease
from coffer.core.tokens import rfc3339
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

SUDO = ("leases/lookup/*", "leases/revoke-prefix/*", "revoke-prefix/*", "leases/revoke-force/*",
              "revoke-force/*")
S, B, D, I = FieldType.STRING, FieldType.BOOL, FieldType.DURATION, FieldType.INT


def paths(manager: ExpirationManager) -> list[Path]:
    def lease_id_of(d: FieldData) -> str:
        lease_id = d["url_lease_id"] or d["lease_id"]
        if not lease_id:
            raise InvalidRequest('missing required field "lease_id"')
        return lease_id.strip("/")

    def describe(lease: Lease) -> dict[str, Any]:
        return {
            "id": lease.lease_id,
            "issue_time": rfc3339(lease.issue_time),
            "expire_time": rfc3339(lease.expire_time),
            "last_renewal": rfc3339(lease.last_renewal),
            "renewable": lease.renewable,
            "ttl": lease.remaining(),
        }

    async def lookup(req: Request, d: FieldData) -> Response:
        return Response(data=describe(await manager.require(lease_id_of(d))))

    async def list_leases(req: Request, d: FieldData) -> Response:
        prefix = d["prefix"] or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        # Only the page asked for (LIST ?after=&limit=) is read: a prefix may hold 100,000 leases.
        return Response(data={"keys": await manager.list_prefix(prefix, req.list_after, req.list_limit)})

    async def renew(req: Request, d: FieldData) -> Response:
        return await manager.renew_lease(lease_id_of(d), d["increment"])

    async def revoke(req: Request, d: FieldData) -> Response | None:
        lease_id = lease_id_of(d)
        await manager.require(lease_id)
        if not d["sync"]:
            manager.supervisor.spawn(manager.revoke(lease_id))
            return Response(status=202)
        await manager.revoke(lease_id)
        return None

    async def revoke_prefix(req: Request, d: FieldData) -> Response | None:
        prefix = d["prefix"]
        if not d["sync"]:
            manager.supervisor.spawn(manager.revoke_prefix(prefix))
            return Response(status=202)
        result = await manager.revoke_prefix(prefix)
        if not result.failed:
            return None
        sample = "; ".join(f"{k}: {v}" for k, v in list(result.failed.items())[:3])
        return Response(data={"revoked": result.revoked, "failed": len(result.failed)}, warnings=[
            f"{len(result.failed)} lease(s) could not be revoked and will be retried in the background "
            f"(see GET sys/leases?type=irrevocable once retries are exhausted); e.g. {sample}"])

    async def revoke_force(req: Request, d: FieldData) -> None:
        await manager.revoke_force(d["prefix"])

    async def tidy(req: Request, d: FieldData) -> Response:
        manager.supervisor.spawn(manager.tidy())
        return Response(status=202)

    async def leases(req: Request, d: FieldData) -> Response:
        if d["type"] != "irrevocable":
            raise InvalidRequest('type must be "irrevocable" (the leases whose revocation keeps failing)')
        found = await manager.irrevocable(d["limit"])
        return Response(data={"lease_count": len(found), "leases": [{
            "lease_id": lease.lease_id,
            "mount_id": lease.mount_uuid,
            "error": lease.last_error,
            "attempts": lease.attempts,
            "first_failure": rfc3339(lease.first_failure),
            "last_attempt": rfc3339(lease.last_attempt),
            "next_attempt": rfc3339(lease.due),
            "expire_time": rfc3339(lease.expire_time),
        } for lease in found]})

    async def count(req: Request, d: FieldData) -> Response:
        if d["type"] == "irrevocable":
            return Response(data={"lease_count": len(await manager.irrevocable(1_000_000))})
        return Response(data={"lease_count": await manager.count(d["prefix"] or "")})

    lease_field = {"lease_id": Field(S, "The lease's id."),
                   "url_lease_id": Field(S, "The lease's id, given in the path.", required=False)}
    sync = {"sync": Field(B, "Wait for the revocation to finish (false answers 202 at once).", default=True)}
    increment = {"increment": Field(D, "Requested new TTL, e.g. 1h (the engine's default if absent).",
                                    default=0)}
    prefix_field = {"prefix": Field(S, "The lease id prefix, e.g. aws/creds/deploy.")}
    paths: list[Path] = [
        Path("leases/lookup", {"write": lookup}, dict(lease_field), synopsis="Look up a lease."),
        Path(r"leases/lookup/(?P<prefix>.*)", {"list": list_leases}, dict(prefix_field),
             synopsis="List lease ids under a prefix (sudo)."),
        Path("leases", {"read": leases}, {"type": Field(S, "irrevocable", default="irrevocable"),
                                          "limit": Field(I, "At most this many.", default=1000)},
             synopsis="Leases whose revocation keeps failing, with their last error."),
        Path("leases/count", {"read": count}, {"type": Field(S, "irrevocable, or empty for all leases.",
                                                             default=""),
                                               "prefix": Field(S, "Count only under this prefix.")},
             synopsis="How many leases there are (under a prefix)."),
        Path("leases/tidy", {"write": tidy}, synopsis="Drop lease index entries that point at nothing."),
    ]
    for base in ("leases/", ""):
        paths += [
            Path(rf"{base}renew(?:/(?P<url_lease_id>.+))?", {"write": renew}, {**lease_field, **increment},
                 synopsis="Renew a lease."),
            Path(rf"{base}revoke(?:/(?P<url_lease_id>.+))?", {"write": revoke}, {**lease_field, **sync},
                 synopsis="Revoke a lease."),
            Path(rf"{base}revoke-prefix/(?P<prefix>.+)", {"write": revoke_prefix}, {**prefix_field, **sync},
                 synopsis="Revoke every lease under a prefix (sudo)."),
            Path(rf"{base}revoke-force/(?P<prefix>.+)", {"write": revoke_force}, dict(prefix_field),
                 synopsis="Forget every lease under a prefix without revoking it at the engine (sudo)."),
        ]
    return paths
