"""Response wrapping: a response kept in the cubbyhole of a single-use token, handed over as that token.

A request with ``X-Vault-Wrap-TTL`` gets, instead of its response, a
wrapping token: an orphan with one use, the policy ``response-wrapping``
and the wrapping TTL as its life. The response waits in that token's
cubbyhole (``response``, with ``wrapinfo`` for lookups) and goes with the
token: unwrapping uses the token up, and an expired token is revoked with
its cubbyhole like any other. So a wrapped secret is read at most once, and
whoever unwraps it learns whether somebody else did first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from coffer.core.acl import ACL
from coffer.core.policy import parse_policy
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.errors import InvalidRequest, PermissionDenied, Sealed
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView
from coffer.storage.base import Put

POLICY = "response-wrapping"
#: What a wrapping token may do: be unwrapped and looked up (it is refused everywhere else).
ACL_OF_WRAPPING_TOKENS = ACL([parse_policy(POLICY, """
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update", "read"]
}
""")])
INVALID = "wrapping token is not valid or does not exist"
RESPONSE, INFO = "response", "wrapinfo"


def rfc3339_nano(ts: float) -> str:
    """An RFC 3339 time with the fraction Vault prints (trailing zeros dropped)."""
    whole = datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ts - int(ts):.9f}"[2:].rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def is_wrapping_token(entry: TokenEntry | None) -> bool:
    return entry is not None and entry.policies == [POLICY]


def _payload(req: Request, resp: Response) -> dict[str, Any]:
    """What unwrapping answers: the response as the client would have had it."""
    return {
        "data": resp.data,
        "auth": resp.auth if isinstance(resp.auth, dict) else None,
        "lease_id": resp.lease_id,
        "lease_duration": resp.lease_duration,
        "renewable": resp.renewable,
        "warnings": list(resp.warnings),
        "mount_type": req.mount_type,
    }


def _wrapped_accessor(resp: Response) -> str:
    """The accessor of what the wrapped response hands out: its token's, or an AppRole secret ID's."""
    if isinstance(resp.auth, dict) and resp.auth.get("accessor"):
        return str(resp.auth["accessor"])
    if isinstance(resp.data, dict) and isinstance(resp.data.get("secret_id_accessor"), str):
        return resp.data["secret_id_accessor"]
    return ""


class Wrapping:
    def __init__(self, tokens: TokenStore, cubbyhole: Callable[[], StorageView | None]) -> None:
        self.tokens = tokens
        #: The cubbyhole mount's storage (None while sealed).
        self._cubbyhole = cubbyhole

    def _cubby(self, entry: TokenEntry) -> StorageView:
        storage = self._cubbyhole()
        if storage is None:
            raise Sealed()
        return storage.sub(f"{entry.hash}/")

    # -- making -------------------------------------------------------------

    async def wrap(self, req: Request, resp: Response, ttl: int) -> Response:
        """The answer that replaces ``resp``: a new wrapping token holding it."""
        return await self._store(_payload(req, resp), ttl, req.path, _wrapped_accessor(resp))

    async def _store(self, payload: dict[str, Any], ttl: int, creation_path: str, wrapped_accessor: str) -> Response:
        if ttl <= 0:
            raise InvalidRequest("the wrapping TTL must be positive")
        token_id, entry = await self.tokens.create(
            policies=[POLICY], parent=None, orphan=True, ttl=ttl, max_ttl=ttl, explicit_max_ttl=ttl, num_uses=1,
            renewable=False, path=creation_path)
        created = rfc3339_nano(entry.creation_time)
        info = {"creation_path": creation_path, "creation_time": created, "creation_ttl": ttl,
                "wrapped_accessor": wrapped_accessor}
        cubby = self._cubby(entry)
        try:
            await cubby.batch([Put(RESPONSE, orjson.dumps(payload)), Put(INFO, orjson.dumps(info))])
        except BaseException:
            await self.tokens.revoke_tree(entry)
            raise
        wrap_info: dict[str, Any] = {"token": token_id, "accessor": entry.accessor, "ttl": ttl,
                                     "creation_time": created, "creation_path": creation_path}
        if wrapped_accessor:
            wrap_info["wrapped_accessor"] = wrapped_accessor
        return Response(wrap_info=wrap_info)

    # -- using ------------------------------------------------------------------

    async def _entry(self, token_id: str | None) -> TokenEntry:
        entry = await self.tokens.lookup(token_id) if token_id else None
        if not is_wrapping_token(entry):
            raise InvalidRequest(INVALID)
        assert entry is not None
        return entry

    async def _read(self, entry: TokenEntry) -> tuple[dict[str, Any], dict[str, Any]]:
        cubby = self._cubby(entry)
        payload, info = await cubby.get_json(RESPONSE), await cubby.get_json(INFO)
        if payload is None or info is None:
            raise InvalidRequest(INVALID)
        return payload, info

    async def _consume(self, entry: TokenEntry) -> tuple[dict[str, Any], dict[str, Any]]:
        """Use up a wrapping token given in a body: read what it holds, then revoke it."""
        try:
            _, entry = await self.tokens.use(entry)  # one at a time: a second, concurrent unwrap fails here
        except PermissionDenied:
            raise InvalidRequest(INVALID) from None
        try:
            return await self._read(entry)
        finally:
            await self.tokens.revoke_tree(entry)

    async def lookup(self, token_id: str | None) -> dict[str, Any]:
        _, info = await self._read(await self._entry(token_id))
        return {"creation_path": info["creation_path"], "creation_time": info["creation_time"],
                "creation_ttl": info["creation_ttl"]}

    async def unwrap(self, req: Request, body_token: str | None) -> Response:
        """``body_token`` (the caller's own token authenticated the request), else the request's token,
        which core has counted as its one use and revokes once the request is done."""
        caller = req.token if isinstance(req.token, TokenEntry) else None
        if body_token:
            if req.client_token and body_token == req.client_token:
                raise InvalidRequest("the wrapping token was given both as the request's token and in the body; "
                                     "send it in one place only")
            payload, _ = await self._consume(await self._entry(body_token))
        else:
            if not is_wrapping_token(caller):
                raise InvalidRequest(f"{INVALID}: give the wrapping token in the body (token=...) or as the "
                                     "request's token")
            assert caller is not None
            payload, _ = await self._read(caller)
        return Response(data=payload.get("data"), auth=payload.get("auth"), lease_id=payload.get("lease_id", ""),
                        lease_duration=payload.get("lease_duration", 0), renewable=payload.get("renewable", False),
                        warnings=list(payload.get("warnings") or []))

    async def rewrap(self, token_id: str | None) -> Response:
        """A new wrapping token for what ``token_id`` holds (same TTL and creation path); the old one is used up."""
        payload, info = await self._consume(await self._entry(token_id))
        return await self._store(payload, int(info["creation_ttl"]), info["creation_path"],
                                 info.get("wrapped_accessor", ""))
