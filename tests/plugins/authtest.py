"""A test-only auth method (mounted under auth/): one path, served without a token."""

from __future__ import annotations

from coffer.framework.backend import Backend, Path
from coffer.framework.request import Response

KIND = "auth"


async def _hello(req, d):
    return Response(data={"mount": req.mount_point})


def factory(mount):
    return Backend([Path("hello", {"read": _hello}, synopsis="Say which mount answered.")],
                   unauthenticated=("hello",), help="A test auth method.")
