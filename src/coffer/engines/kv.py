"""The key/value engine, version 1 (also mounted under the name ``generic``).

Any JSON object written to a path is stored as is (encrypted by the barrier)
and read back whole. Listing a folder answers its immediate children.
"""

from __future__ import annotations

from coffer.durations import parse_duration
from coffer.errors import InvalidRequest
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import FieldData
from coffer.framework.request import MountInfo, Request, Response

HELP = """The kv secrets engine stores arbitrary secrets.

Write any set of key/value pairs to a path under the mount, read them back,
list a folder's children, and delete a path. Values are encrypted at rest."""


def _key(req: Request) -> str:
    key = req.relative_path
    if not key or key.endswith("/"):
        raise InvalidRequest(f'"{req.path}" is a folder; give a secret path such as {req.mount_point}my-secret')
    return key


async def _exists(req: Request, captures: dict[str, str]) -> bool:
    return bool(req.relative_path) and await req.storage.get(req.relative_path) is not None


async def _read(req: Request, d: FieldData) -> Response | None:
    value = await req.storage.get_json(_key(req))
    if value is None:
        return None
    # As Vault's kv v1: lease_duration is a refresh hint, the secret's own
    # "ttl" (or older "lease") key, else the mount's default lease TTL.
    hint = req.mount.default_lease_ttl
    raw_ttl = value.get("ttl", value.get("lease")) if isinstance(value, dict) else None
    if raw_ttl is not None:
        try:
            hint = parse_duration(raw_ttl)
        except ValueError:
            pass
    return Response(data=value, lease_duration=hint)


async def _write(req: Request, d: FieldData) -> None:
    data = dict(req.data)
    if not data:
        raise InvalidRequest("no data provided; write at least one key=value pair")
    await req.storage.put_json(_key(req), data)


async def _delete(req: Request, d: FieldData) -> None:
    await req.storage.delete(_key(req))


async def _list(req: Request, d: FieldData) -> Response:
    prefix = req.relative_path
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Response(data={"keys": await req.storage.list(prefix)})


def factory(mount: MountInfo) -> Backend:
    return Backend(
        [
            Path(
                r"(?P<path>.*)",
                {"read": _read, "write": _write, "delete": _delete, "list": _list},
                exists=_exists,
                open_fields=True,
                synopsis="Pass-through secret storage: any key/value pairs at any path.",
                description="Write stores the request body as the secret; read returns it; list shows a folder.",
            )
        ],
        help=HELP,
    )
