"""Logins: the tokens auth methods ask for, minted through the token store, and their renewal.

An auth method's login answers ``Response(auth=Auth(...))``. ``Logins.mint``
makes the token that describes: an orphan whose path is the login's path
(``auth/<mount>/login...``), with the mount's default and maximum TTLs
applying, and replaces the ``Auth`` with Vault's rendered ``auth`` block.
When such a token is renewed, its auth method is asked first (Vault's renew
callback): it may refuse, or say which TTLs apply now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coffer.core.tokens import TokenEntry, TokenStore
from coffer.errors import InvalidRequest
from coffer.framework.request import RENEW, Auth, Request, Response
from coffer.framework.tokenutil import parse_cidrs

if TYPE_CHECKING:
    from coffer.core.router import Router


def _display_name(mount_path: str, name: str) -> str:
    """Vault's: the mount path with "/" as "-", then the method's name for the caller ("userpass-alice")."""
    source = mount_path.removeprefix("auth/").strip("/").replace("/", "-")
    return f"{source}-{name}".rstrip("-") if name else source


class Logins:
    def __init__(self, tokens: TokenStore, router: Router) -> None:
        self.tokens = tokens
        self.router = router

    async def mint(self, req: Request, resp: Response) -> None:
        """Make the token ``resp.auth`` (an ``Auth``) asks for; ``resp.auth`` becomes its auth block."""
        auth = resp.auth
        assert isinstance(auth, Auth)
        policies = {p.strip().lower() for p in auth.policies if p.strip()}
        if "root" in policies:
            raise InvalidRequest("auth methods cannot create root tokens; remove root from the policies")
        if not auth.no_default_policy:
            policies.add("default")
        if auth.num_uses < 0:
            raise InvalidRequest("num_uses cannot be negative")
        mount = req.mount
        max_ttl = min((t for t in (auth.max_ttl, mount.max_lease_ttl) if t), default=0)
        warnings: list[str] = []
        period = auth.period
        if period and max_ttl and period > max_ttl:
            warnings.append(f"period of {period}s exceeded the effective max_ttl of {max_ttl}s; "
                            "period value is capped accordingly")
            period = max_ttl
        token_id, entry = await self.tokens.create(
            policies=sorted(policies), parent=None, orphan=True, ttl=auth.ttl, default_ttl=mount.default_lease_ttl,
            max_ttl=max_ttl, explicit_max_ttl=auth.explicit_max_ttl, period=period, num_uses=auth.num_uses,
            renewable=auth.renewable, display_name=_display_name(mount.path, auth.display_name),
            meta={str(k): str(v) for k, v in auth.metadata.items()}, path=req.path,
            bound_cidrs=parse_cidrs(auth.bound_cidrs, "token_bound_cidrs"), auth_mount=mount.uuid,
            internal=auth.internal, alias=auth.alias, warnings=warnings,
        )
        resp.auth = entry.auth_block(token_id)
        resp.warnings.extend(warnings)

    async def renew(self, entry: TokenEntry, increment: int) -> tuple[TokenEntry, int]:
        """Renew ``entry``, asking the auth method that issued it first; answers it and the TTL granted."""
        if not entry.auth_mount or not entry.renewable or not entry.expire_time:
            return await self.tokens.renew(entry, increment)
        mount = self.router.by_uuid(entry.auth_mount)
        if mount is None:
            raise InvalidRequest("the auth method that issued this token is no longer enabled; log in again")
        current = Auth(policies=[p for p in entry.policies if p != "default"], metadata=dict(entry.meta),
                       display_name=entry.display_name, ttl=entry.ttl, max_ttl=entry.max_ttl, period=entry.period,
                       explicit_max_ttl=entry.explicit_max_ttl, num_uses=max(entry.num_uses, 0),
                       renewable=entry.renewable, bound_cidrs=list(entry.bound_cidrs),
                       no_default_policy="default" not in entry.policies, internal=dict(entry.internal),
                       alias=entry.alias)
        answer = await mount.engine.handle(self.router.request(mount, RENEW, entry.path,
                                                               data={"increment": increment}, auth=current))
        if answer is None or not isinstance(answer.auth, Auth):
            return await self.tokens.renew(entry, increment)
        now = answer.auth
        max_ttl = min((t for t in (now.max_ttl, mount.info.max_lease_ttl) if t), default=0)
        return await self.tokens.renew(entry, increment, ttl=now.ttl or mount.info.default_lease_ttl,
                                       max_ttl=max_ttl, period=now.period)
