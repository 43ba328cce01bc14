"""The key/value engine, version 1 (also mounted under the name ``generic``).

Any JSON object written to a path is stored as is (encrypted by the barrier)
and read back whole. Listing a folder answers its immediate children. The
storage layout is one key per secret, at its path inside the mount; version 2
upgrades a mount of this layout in place (see ``upgrade``).
"""

from __future__ import annotations

from coffer.durations import parse_duration
from coffer.engines.kv.common import check_key_text
from coffer.errors import InvalidRequest
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

HELP = """The kv secrets engine, version 1: one value per path, no history.

Write any set of key/value pairs to a path under the mount, read them back,
list a folder's children, and delete a path. A write replaces the whole
secret. Values are encrypted at rest. Tune the mount with options version=2
to keep every version of each secret (the data is kept)."""


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
    await req.storage.put_json(check_key_text(_key(req)), data)


async def _delete(req: Request, d: FieldData) -> None:
    await req.storage.delete(_key(req))


async def _list(req: Request, d: FieldData) -> Response:
    prefix = req.relative_path
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Response(data={"keys": await req.storage.list(prefix)})


def backend() -> Backend:
    return Backend(
        [
            Path(
                r"(?P<path>.*)",
                {"read": _read, "write": _write, "delete": _delete, "list": _list},
                {"path": Field(FieldType.STRING, "Where the secret lives inside the mount, e.g. app/db "
                                                 "(a folder, ending in /, when listing).")},
                exists=_exists,
                open_fields=True,
                synopsis="Pass-through secret storage: any key/value pairs at any path.",
                description="A write (PUT or POST) stores the request body as the secret, replacing what was "
                            "there; a read returns it; a delete removes it; a list shows the keys and "
                            "sub-folders of a folder. Every field of the body is stored as given: a field "
                            "named ttl sets the lease_duration that reads report, as a hint for how often to "
                            "read the secret again (nothing expires).",
            )
        ],
        help=HELP,
    )
