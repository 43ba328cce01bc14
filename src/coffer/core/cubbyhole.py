"""``cubbyhole/``: storage private to each token, destroyed with it (a built-in mount).

Every token sees only its own folder (named by its hash) below the mount;
core deletes the folder when the token is revoked.
"""

from __future__ import annotations

from coffer.core.tokens import TokenEntry
from coffer.errors import InvalidRequest, PermissionDenied
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView

HELP = """The cubbyhole stores secrets that only the token that wrote them can read.

Each token has its own cubbyhole; no other token, not even root, can see it,
and it is destroyed when the token is revoked or expires."""


def _own(req: Request) -> StorageView:
    if not isinstance(req.token, TokenEntry):
        raise PermissionDenied()
    return req.storage.sub(f"{req.token.hash}/")


def _key(req: Request) -> str:
    key = req.relative_path
    if not key or key.endswith("/"):
        raise InvalidRequest(f'"{req.path}" is a folder; give a path such as cubbyhole/my-secret')
    return key


async def _read(req: Request, d: FieldData) -> Response | None:
    value = await _own(req).get_json(_key(req))
    return None if value is None else Response(data=value)


async def _write(req: Request, d: FieldData) -> None:
    if not req.data:
        raise InvalidRequest("no data provided; write at least one key=value pair")
    await _own(req).put_json(_key(req), dict(req.data))


async def _delete(req: Request, d: FieldData) -> None:
    await _own(req).delete(_key(req))


async def _list(req: Request, d: FieldData) -> Response:
    prefix = req.relative_path
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Response(data={"keys": await _own(req).list(prefix)})


def cubbyhole_backend() -> Backend:
    return Backend(
        [Path(r"(?P<path>.*)", {"read": _read, "write": _write, "delete": _delete, "list": _list}, open_fields=True,
              synopsis="Secrets only the calling token can see.",
              description="Write stores the request body; read returns it; list shows a folder; all of it is "
                          "private to the calling token and destroyed with it.")],
        help=HELP,
    )
