"""``sys/internal/ui/mounts`` and ``sys/internal/ui/mounts/<path>``: the mounts a token may use.

Vault's CLI (its ``kv`` commands ask which version a kv mount has) and web UIs read these. Both are served
without requiring a token, and look at the caller's token themselves: the listing shows the mounts tuned
``listing_visibility=unauth`` (to a caller without a valid token only their type, description and options)
and, to a token, those under which its policies grant any capability; one mount (the mount that contains
``<path>``) is shown only to a token with some capability under it, with its ``path`` added.
"""

from __future__ import annotations

from typing import Any

from coffer.core.acl import ACL
from coffer.core.policystore import PolicyStore
from coffer.core.router import Router
from coffer.core.tokens import TokenStore
from coffer.errors import PermissionDenied
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

UNAUTHENTICATED = ("internal/ui/mounts", "internal/ui/mounts/*")


def paths(router: Router, tokens: TokenStore, policies: PolicyStore) -> list[Path]:
    async def acl_of(req: Request) -> ACL | None:
        token = await tokens.lookup(req.client_token) if req.client_token else None
        return None if token is None else await policies.acl(token.policies)

    async def list_mounts(req: Request, d: FieldData) -> Response:
        acl = await acl_of(req)
        shown: dict[str, dict[str, Any]] = {"auth": {}, "secret": {}}
        for _, mount in sorted(router.mounts.items()):
            entry = mount.entry
            unauth = entry.config.get("listing_visibility") == "unauth"
            if acl is not None and (unauth or acl.any_capability_under(mount.route)):
                view = entry.describe()
            elif acl is None and unauth:
                view = {"description": entry.description, "options": entry.options or None, "type": entry.type}
            else:
                continue
            shown["auth" if mount.auth else "secret"][entry.path] = view
        return Response(data=shown)

    async def read_mount(req: Request, d: FieldData) -> Response:
        path = d["path"].strip("/") + "/"
        acl = await acl_of(req)
        if acl is None:
            raise PermissionDenied()
        mount = router.match(path)
        if mount is None or not acl.any_capability_under(mount.route):
            raise PermissionDenied("preflight capability check returned 403, please ensure client's policies "
                                   f'grant access to path "{path}"')
        return Response(data={**mount.entry.describe(), "path": mount.entry.path})

    return [
        Path("internal/ui/mounts", {"read": list_mounts},
             synopsis="The secrets engines and auth methods the calling token may use.",
             description="Answers {auth: {...}, secret: {...}} with the mounts tuned listing_visibility=unauth "
                         "and those under which the caller's policies grant any capability, each described as "
                         "sys/mounts does; without a valid token only the first, by type, description and "
                         "options."),
        Path(r"internal/ui/mounts/(?P<path>.+)", {"read": read_mount},
             {"path": Field(FieldType.STRING, "Any path; the mount that contains it is described, e.g. "
                                              "secret/data/app describes secret/.")},
             synopsis="The mount that holds a path, if the calling token may use it.",
             description="The mount's description as sys/mounts/<path> gives it, plus its path. 403 when the "
                         "caller has no capability under that mount (or no valid token)."),
    ]
