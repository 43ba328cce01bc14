"""``sys/wrapping/*``: wrap a value, look up, unwrap and rewrap wrapping tokens (core/wrapping.py)."""

from __future__ import annotations

from coffer.core.wrapping import Wrapping
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S = FieldType.STRING

#: Looking a wrapping token up needs no other token (the wrapping token is the credential).
UNAUTHENTICATED = ("wrapping/lookup",)


def paths(wrapping: Wrapping) -> list[Path]:
    async def wrap(req: Request, d: FieldData) -> Response:
        if not req.wrap_ttl:
            raise InvalidRequest("endpoint requires response wrapping to be used: send the X-Vault-Wrap-TTL header "
                                 "(e.g. X-Vault-Wrap-TTL: 5m) with the data to wrap as the body")
        return Response(data=dict(req.data))

    async def lookup(req: Request, d: FieldData) -> Response:
        return Response(data=await wrapping.lookup(d["token"] or req.client_token))

    async def unwrap(req: Request, d: FieldData) -> Response:
        return await wrapping.unwrap(req, d["token"] or None)

    async def rewrap(req: Request, d: FieldData) -> Response:
        d.require("token")
        return await wrapping.rewrap(d["token"])

    token = {"token": Field(S, "The wrapping token.", default="")}
    return [
        Path("wrapping/wrap", {"write": wrap}, open_fields=True,
             synopsis="Wrap the request's body in a wrapping token (needs X-Vault-Wrap-TTL)."),
        Path("wrapping/lookup", {"read": lookup, "write": lookup}, dict(token),
             synopsis="Look up a wrapping token's creation path, time and TTL (no other token needed)."),
        Path("wrapping/unwrap", {"write": unwrap}, dict(token),
             synopsis="Unwrap: the wrapping token in the body, or as the request's token with no body."),
        Path("wrapping/rewrap", {"write": rewrap}, dict(token),
             synopsis="Move a wrapped response into a new wrapping token (the old one is used up)."),
    ]
