"""The ``auth/token/`` backend: Vault's token endpoints over the TokenStore."""

from __future__ import annotations

import re

from coffer.core.policystore import PolicyStore
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.errors import InvalidRequest, PermissionDenied
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S, I, B, D, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST

HELP = """The token store: create, look up, renew and revoke tokens.

Tokens form a tree: revoking a token revokes every token created from it
(unless they were created as orphans)."""


def caller(req: Request) -> TokenEntry:
    """The calling token's full entry (core routes only authenticated requests here)."""
    if not isinstance(req.token, TokenEntry):
        raise PermissionDenied()
    return req.token


def token_backend(store: TokenStore, policies: PolicyStore) -> Backend:

    async def create(req: Request, d: FieldData, orphan: bool = False) -> Response:
        parent = caller(req)
        sudo = parent.is_root or await has_sudo(req)
        if d["type"] not in ("", "service", "default"):
            raise InvalidRequest(f'token type "{d["type"]}" is not supported; use "service"')
        # Vault answers 400 (not 403) for each of these refusals.
        if parent.num_uses:
            raise InvalidRequest("restricted use token cannot generate child tokens")
        if d["id"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to specify token id")
        if d["no_parent"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to create orphan token")
        if d["period"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to create periodic token")
        if d["num_uses"] < 0:
            raise InvalidRequest("num_uses cannot be negative")
        wanted = [p.strip().lower() for p in (d["policies"] if "policies" in d else []) if p.strip()]
        add_default = False
        if not wanted:
            # No policies asked for: inherit the parent's as they are.
            policies = set(parent.policies)
        else:
            policies = set(wanted)
            if not sudo:
                extra = policies - set(parent.policies)
                if extra:
                    raise InvalidRequest(f"child policies must be subset of parent; not allowed: "
                                         f"{', '.join(sorted(extra))}")
                add_default = "default" in parent.policies
            else:
                add_default = True
        if "root" in policies:
            policies = {"root"}
            if not parent.is_root:
                raise InvalidRequest("root tokens may not be created without parent token being root")
        elif add_default and not d["no_default_policy"]:
            policies.add("default")
        if d["no_default_policy"]:
            policies.discard("default")
        if not policies:
            raise InvalidRequest("a token needs at least one policy")
        name = re.sub(r"[^\w.-]+", "-", d["display_name"] or "").strip("-")
        token_id, entry = await store.create(
            policies=sorted(policies), parent=parent, token_id=d["id"] or None,
            ttl=d["ttl"], explicit_max_ttl=d["explicit_max_ttl"], period=d["period"],
            num_uses=d["num_uses"], renewable=d["renewable"],
            display_name=f"token-{name}" if name else "token", meta=d["meta"],
            orphan=orphan or d["no_parent"], path=f"auth/token/{req.relative_path}",
        )
        return Response(auth=entry.auth_block(token_id))

    async def create_orphan(req: Request, d: FieldData) -> Response:
        return await create(req, d, orphan=True)

    async def has_sudo(req: Request) -> bool:
        acl = await policies.acl(caller(req).policies)
        return acl.allows(req.path, "update").sudo

    async def by_token(d: FieldData) -> tuple[str, TokenEntry]:
        d.require("token")
        entry = await store.lookup(d["token"])
        if entry is None:
            raise PermissionDenied("bad token")
        return d["token"], entry

    async def by_accessor(d: FieldData) -> TokenEntry:
        d.require("accessor")
        entry = await store.lookup_accessor(d["accessor"])
        if entry is None:
            raise InvalidRequest("invalid accessor")
        return entry

    async def lookup(req: Request, d: FieldData) -> Response:
        token_id, entry = await by_token(d)
        return Response(data=entry.describe(token_id))

    async def lookup_self(req: Request, d: FieldData) -> Response:
        return Response(data=caller(req).describe(req.client_token or ""))

    async def lookup_accessor(req: Request, d: FieldData) -> Response:
        return Response(data=(await by_accessor(d)).describe(""))

    async def renew(req: Request, d: FieldData) -> Response:
        token_id, entry = await by_token(d)
        entry = await store.renew(entry, d["increment"])
        return Response(auth=entry.auth_block(token_id))

    async def renew_self(req: Request, d: FieldData) -> Response:
        entry = await store.renew(caller(req), d["increment"])
        return Response(auth=entry.auth_block(req.client_token or ""))

    async def renew_accessor(req: Request, d: FieldData) -> Response:
        entry = await store.renew(await by_accessor(d), d["increment"])
        return Response(auth=entry.auth_block(""))

    async def revoke(req: Request, d: FieldData) -> None:
        d.require("token")
        entry = await store.lookup(d["token"])
        if entry is not None:
            await store.revoke_tree(entry)

    async def revoke_self(req: Request, d: FieldData) -> None:
        await store.revoke_tree(caller(req))

    async def revoke_accessor(req: Request, d: FieldData) -> None:
        await store.revoke_tree(await by_accessor(d))

    async def revoke_orphan(req: Request, d: FieldData) -> None:
        d.require("token")
        entry = await store.lookup(d["token"])
        if entry is not None:
            await store.revoke_orphan(entry)

    async def accessors(req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await store.accessors()})

    create_fields = {
        "id": Field(S, "The token value to use (root or sudo only)."),
        "policies": Field(L, "Policies for the token; defaults to the caller's."),
        "meta": Field(FieldType.KV_MAP, "Metadata kept with the token."),
        "no_parent": Field(B, "Create an orphan token (root or sudo only).", default=False),
        "no_default_policy": Field(B, "Do not attach the default policy.", default=False),
        "renewable": Field(B, "Whether the token can be renewed.", default=True),
        "ttl": Field(D, "Time to live, e.g. 1h.", default=0),
        "explicit_max_ttl": Field(D, "A hard limit on the token's life.", default=0),
        "period": Field(D, "Make a periodic token renewed for this long each time.", default=0),
        "display_name": Field(S, "A name shown in lookups and audit logs.", default=""),
        "num_uses": Field(I, "How many requests the token may make (0: unlimited).", default=0),
        "type": Field(S, "Token type; only service tokens exist.", default="service"),
        "entity_alias": Field(S, "Ignored."),
        "lease": Field(S, "Older name of ttl (ignored)."),
    }
    token_field = {"token": Field(S, "The token.")}
    accessor_field = {"accessor": Field(S, "The token's accessor.")}
    increment = {"increment": Field(D, "How long to extend the TTL by.", default=0)}
    return Backend(
        [
            Path("create", {"write": create}, create_fields, synopsis="Create a child token of the caller."),
            Path("create-orphan", {"write": create_orphan}, dict(create_fields),
                 synopsis="Create a token with no parent."),
            Path("lookup", {"read": lookup, "write": lookup}, dict(token_field), synopsis="Look up a token."),
            Path("lookup-self", {"read": lookup_self, "write": lookup_self}, synopsis="Look up the calling token."),
            Path("lookup-accessor", {"write": lookup_accessor}, dict(accessor_field),
                 synopsis="Look up a token by its accessor."),
            Path("renew", {"write": renew}, {**token_field, **increment}, synopsis="Renew a token."),
            Path("renew-self", {"write": renew_self}, {**increment, "token": Field(S, "Ignored.")},
                 synopsis="Renew the calling token."),
            Path("renew-accessor", {"write": renew_accessor}, {**accessor_field, **increment},
                 synopsis="Renew a token by its accessor."),
            Path("revoke", {"write": revoke}, dict(token_field), synopsis="Revoke a token and its children."),
            Path("revoke-self", {"write": revoke_self}, synopsis="Revoke the calling token and its children."),
            Path("revoke-accessor", {"write": revoke_accessor}, dict(accessor_field),
                 synopsis="Revoke a token (and its children) by accessor."),
            Path("revoke-orphan", {"write": revoke_orphan}, dict(token_field),
                 synopsis="Revoke a token but not its children, which become orphans (sudo)."),
            Path("accessors/?", {"list": accessors}, synopsis="List token accessors (sudo)."),
        ],
        help=HELP,
        sudo_paths=("revoke-orphan", "accessors", "accessors/"),
    )
