"""``sys/capabilities*``: what a token may do on given paths."""

from __future__ import annotations

from typing import Any

from coffer.core.policystore import PolicyStore
from coffer.core.tokens import TokenStore
from coffer.errors import InvalidRequest, PermissionDenied
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S, L = FieldType.STRING, FieldType.COMMA_LIST


def paths(tokens: TokenStore, policies: PolicyStore) -> list[Path]:
    async def capabilities_for(token_policies: list[str], wanted: list[str]) -> Response:
        acl = await policies.acl(token_policies)
        result: dict[str, Any] = {}
        for p in wanted:
            result[p] = ["root"] if "root" in token_policies else sorted(acl.capabilities(p.lstrip("/"))) or ["deny"]
        if len(wanted) == 1:
            result["capabilities"] = result[wanted[0]]
        return Response(data=result, data_at_top_level=True)

    def wanted_paths(d: FieldData) -> list[str]:
        wanted = d["paths"] or ([d["path"]] if d["path"] else [])
        if not wanted:
            raise InvalidRequest('missing required field "paths" (the paths to check)')
        return wanted

    async def capabilities(req: Request, d: FieldData) -> Response:
        d.require("token")
        entry = await tokens.lookup(d["token"])
        if entry is None:
            raise InvalidRequest("invalid token")
        return await capabilities_for(entry.policies, wanted_paths(d))

    async def capabilities_self(req: Request, d: FieldData) -> Response:
        if req.token is None:
            raise PermissionDenied()
        return await capabilities_for(req.token.policies, wanted_paths(d))

    async def capabilities_accessor(req: Request, d: FieldData) -> Response:
        d.require("accessor")
        entry = await tokens.lookup_accessor(d["accessor"])
        if entry is None:
            raise InvalidRequest("invalid accessor")
        return await capabilities_for(entry.policies, wanted_paths(d))

    fields = {
        "token": Field(S, "The token to check."),
        "accessor": Field(S, "The accessor of the token to check."),
        "path": Field(S, "One path to check (older form)."),
        "paths": Field(L, "The paths to check."),
    }
    return [
        Path("capabilities", {"write": capabilities}, fields, synopsis="A token's capabilities on paths."),
        Path("capabilities-self", {"write": capabilities_self}, dict(fields),
             synopsis="The calling token's capabilities on paths."),
        Path("capabilities-accessor", {"write": capabilities_accessor}, dict(fields),
             synopsis="The capabilities of the token with this accessor."),
    ]
