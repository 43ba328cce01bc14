"""The ``auth/token/`` backend: Vault's token endpoints over the TokenStore, and token roles.

Roles (``roles/<name>``) are stored in this mount's own storage. A token made
with ``create/<role>`` takes its policies from the role's allowed ones,
becomes an orphan if the role says so (no sudo needed), and gets the role's
period, explicit max TTL, use limit and bound CIDRs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from coffer.core.policystore import PolicyStore
from coffer.core.tokens import MAX_TOKEN_LENGTH, TokenEntry, TokenStore
from coffer.errors import InvalidRequest, PermissionDenied
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.framework.tokenutil import check_token_type, glob_match, parse_cidrs

S, I, B, D, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST

HELP = """The token store: create, look up, renew and revoke tokens, and token roles.

Tokens form a tree: revoking a token revokes every token created from it
(unless they were created as orphans). A token role (roles/<name>) fixes
what the tokens created with auth/token/create/<name> may be."""

ROLE_NAME = r"(?P<role_name>\w(?:[\w.-]*\w)?)"
_SUFFIX = re.compile(r"\w[\w.-]+\w(?:/\w[\w.-]+\w)*")
#: Renews a token (through the auth method that issued it, if any): answers the entry and the TTL granted.
Renewer = Callable[[TokenEntry, int], Awaitable[tuple[TokenEntry, int]]]


def _role_doc(d: FieldData, old: dict[str, Any] | None) -> dict[str, Any]:
    """A role as stored, from ``old`` and what the caller sent; raises InvalidRequest."""
    role: dict[str, Any] = dict(old or {
        "allowed_policies": [], "allowed_policies_glob": [], "disallowed_policies": [],
        "disallowed_policies_glob": [], "orphan": False, "renewable": True, "path_suffix": "",
        "token_period": 0, "token_explicit_max_ttl": 0, "token_type": "default-service", "token_ttl": 0,
        "token_max_ttl": 0, "token_num_uses": 0, "token_bound_cidrs": [], "token_no_default_policy": False,
    })
    for key in ("allowed_policies", "allowed_policies_glob", "disallowed_policies", "disallowed_policies_glob"):
        if key in d:
            role[key] = sorted({p.strip().lower() for p in d[key] if p.strip()})
    for key in ("orphan", "renewable", "token_no_default_policy"):
        if key in d:
            role[key] = d[key]
    # The older names, then the token_* ones (which win when both are sent).
    for old_name, name in (("period", "token_period"), ("explicit_max_ttl", "token_explicit_max_ttl"),
                           ("bound_cidrs", "token_bound_cidrs")):
        if old_name in d and name not in d:
            role[name] = d[old_name]
    for key in ("token_period", "token_explicit_max_ttl", "token_ttl", "token_max_ttl", "token_num_uses"):
        if key in d:
            role[key] = d[key]
    for key in ("token_period", "token_explicit_max_ttl", "token_ttl", "token_max_ttl", "token_num_uses"):
        if role[key] < 0:
            raise InvalidRequest(f"{key} cannot be negative")
    if "token_bound_cidrs" in d or "bound_cidrs" in d:
        raw = d["token_bound_cidrs"] if "token_bound_cidrs" in d else d["bound_cidrs"]
        role["token_bound_cidrs"] = parse_cidrs(raw, "token_bound_cidrs")
    if "token_type" in d:
        role["token_type"] = check_token_type(d["token_type"])
    if "path_suffix" in d:
        suffix = d["path_suffix"].strip().strip("/")
        if suffix and (".." in suffix.split("/") or not _SUFFIX.fullmatch(suffix)):
            raise InvalidRequest(f'path_suffix "{suffix[:80]}" is invalid: use letters, digits, "_", "-" and "." '
                                 "(each part at least 3 characters, starting and ending with a letter or digit), "
                                 'parts separated by "/"')
        role["path_suffix"] = suffix
    if role["token_max_ttl"] and role["token_ttl"] > role["token_max_ttl"]:
        raise InvalidRequest("token_ttl cannot be greater than token_max_ttl")
    if "root" in role["allowed_policies"]:
        raise InvalidRequest("allowed_policies cannot contain root: a token role never creates root tokens")
    return role


def _show_role(name: str, role: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "allowed_entity_aliases": None,
        "allowed_policies": role["allowed_policies"],
        "allowed_policies_glob": role["allowed_policies_glob"],
        "disallowed_policies": role["disallowed_policies"],
        "disallowed_policies_glob": role["disallowed_policies_glob"],
        "explicit_max_ttl": 0,
        "name": name,
        "orphan": role["orphan"],
        "path_suffix": role["path_suffix"],
        "period": 0,
        "renewable": role["renewable"],
        "token_explicit_max_ttl": role["token_explicit_max_ttl"],
        "token_no_default_policy": role["token_no_default_policy"],
        "token_period": role["token_period"],
        "token_type": role["token_type"],
    }
    # As in Vault, these appear only when set (token_ttl and token_max_ttl are coffer's additions).
    for key in ("token_bound_cidrs", "token_num_uses", "token_ttl", "token_max_ttl"):
        if role.get(key):
            data[key] = role[key]
    return dict(sorted(data.items()))


def _role_policies(role: dict[str, Any], wanted: list[str], no_default: bool) -> list[str]:
    """The policies a token made with ``role`` gets for ``wanted``; raises InvalidRequest."""
    add_default = not (no_default or role["token_no_default_policy"])
    allowed, allowed_glob = role["allowed_policies"], role["allowed_policies_glob"]
    if allowed or allowed_glob:
        policies = set(wanted) if wanted else set(allowed)
        if add_default:
            policies.add("default")
        permitted = set(allowed) | {"default"}
        outside = [p for p in policies if p not in permitted and not any(glob_match(g, p) for g in allowed_glob)]
        if outside:
            raise InvalidRequest(f"token policies ({sorted(policies)}) must be subset of the role's allowed "
                                 f"policies ({sorted(permitted)}) or glob policies ({allowed_glob})")
    else:
        policies = set(wanted)
        if add_default:
            policies.add("default")
    for policy in sorted(policies):
        if policy in role["disallowed_policies"] or any(glob_match(g, policy) for g in role["disallowed_policies_glob"]):
            if policy == "default" and not wanted:
                policies.discard("default")  # only added by default: the role's word wins
                continue
            raise InvalidRequest(f'token policy "{policy}" is disallowed by this role')
    if "root" in policies:
        raise InvalidRequest("a token role never creates root tokens")
    return sorted(policies)


def caller(req: Request) -> TokenEntry:
    """The calling token's full entry (core routes only authenticated requests here)."""
    if not isinstance(req.token, TokenEntry):
        raise PermissionDenied()
    return req.token


def token_backend(store: TokenStore, policies: PolicyStore, renewer: Renewer | None = None) -> Backend:
    renew_token: Renewer = renewer or store.renew

    async def read_role_doc(req: Request, name: str) -> dict[str, Any] | None:
        return await req.storage.get_json(f"roles/{name.lower()}")

    async def create(req: Request, d: FieldData, orphan: bool = False) -> Response:
        parent = caller(req)
        sudo = parent.is_root or await has_sudo(req)
        check_token_type(d["type"] or "service", "type")
        if d.get("role_name"):
            return await create_with_role(req, d, parent, sudo)
        # Vault answers 400 (not 403) for each of these refusals.
        common_checks(d, parent, sudo)
        if d["no_parent"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to create orphan token")
        if d["period"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to create periodic token")
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
        warnings: list[str] = []
        token_id, entry = await store.create(
            policies=sorted(policies), parent=parent, token_id=d["id"] or None,
            ttl=d["ttl"], explicit_max_ttl=d["explicit_max_ttl"], period=d["period"],
            num_uses=d["num_uses"], renewable=d["renewable"],
            display_name=display_name(d), meta=d["meta"],
            orphan=orphan or d["no_parent"], path=f"auth/token/{req.relative_path}",
            default_ttl=req.mount.default_lease_ttl, max_ttl=req.mount.max_lease_ttl, warnings=warnings,
        )
        return Response(auth=entry.auth_block(token_id), warnings=warnings)

    def display_name(d: FieldData) -> str:
        name = re.sub(r"[^\w.-]+", "-", d["display_name"] or "").strip("-")
        return f"token-{name}" if name else "token"

    def common_checks(d: FieldData, parent: TokenEntry, sudo: bool) -> None:
        if parent.num_uses:
            raise InvalidRequest("restricted use token cannot generate child tokens")
        if d["id"] and not sudo:
            raise InvalidRequest("root or sudo privileges required to specify token id")
        if len(d["id"] or "") > MAX_TOKEN_LENGTH:
            raise InvalidRequest(f"a token id may be at most {MAX_TOKEN_LENGTH} characters long (lookups take no "
                                 f"longer ones); this one has {len(d['id'])}")
        if d["num_uses"] < 0:
            raise InvalidRequest("num_uses cannot be negative")
        for key in ("ttl", "explicit_max_ttl", "period"):
            if d[key] < 0:
                raise InvalidRequest(f"{key} cannot be negative")

    async def create_with_role(req: Request, d: FieldData, parent: TokenEntry, sudo: bool) -> Response:
        name = d["role_name"].lower()
        role = await read_role_doc(req, name)
        if role is None:
            raise InvalidRequest(f'unknown role {name}: create it first with auth/token/roles/{name}')
        common_checks(d, parent, sudo)
        wanted = [p.strip().lower() for p in (d["policies"] if "policies" in d else []) if p.strip()]
        token_policies = _role_policies(role, wanted, d["no_default_policy"])
        if not token_policies:
            raise InvalidRequest("a token needs at least one policy: give policies, or allowed_policies on the role")
        warnings: list[str] = []
        period = role["token_period"]
        if d["period"]:
            if period and d["period"] != period:
                warnings.append("Period specified both during creation call and in role; using the lesser value "
                                f"of {min(period, d['period'])} seconds")
            period = min(period, d["period"]) if period else d["period"]
        explicit = min((v for v in (role["token_explicit_max_ttl"], d["explicit_max_ttl"]) if v), default=0)
        num_uses = min((v for v in (role["token_num_uses"], d["num_uses"]) if v), default=0)
        path = f"auth/token/create/{name}" + (f"/{role['path_suffix']}" if role["path_suffix"] else "")
        orphan = role["orphan"] or (d["no_parent"] and sudo)
        token_id, entry = await store.create(
            policies=token_policies, parent=parent, token_id=d["id"] or None, ttl=d["ttl"] or role["token_ttl"],
            explicit_max_ttl=explicit, period=period, num_uses=num_uses,
            renewable=role["renewable"] and d["renewable"], display_name=display_name(d), meta=d["meta"],
            orphan=orphan, path=path, default_ttl=req.mount.default_lease_ttl,
            max_ttl=role["token_max_ttl"] or req.mount.max_lease_ttl, bound_cidrs=role["token_bound_cidrs"],
            role=name, warnings=warnings,
        )
        known = set(await policies.names())
        warnings += [f'Policy "{p}" does not exist' for p in token_policies if p not in known]
        return Response(auth=entry.auth_block(token_id), warnings=warnings)

    async def write_role(req: Request, d: FieldData) -> None:
        name = d["role_name"].lower()
        role = _role_doc(d, await read_role_doc(req, name))
        await req.storage.put_json(f"roles/{name}", role)

    async def read_role(req: Request, d: FieldData) -> Response | None:
        name = d["role_name"].lower()
        role = await read_role_doc(req, name)
        return None if role is None else Response(data=_show_role(name, role))

    async def delete_role(req: Request, d: FieldData) -> None:
        await req.storage.delete(f"roles/{d['role_name'].lower()}")

    async def list_roles(req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list("roles/")})

    async def role_exists(req: Request, captures: dict[str, str]) -> bool:
        return await read_role_doc(req, captures["role_name"]) is not None

    async def tidy(req: Request, d: FieldData) -> Response:
        done = await store.tidy()
        return Response(data=done, status=202, warnings=[
            "Tidy operation finished: removed index entries of tokens that no longer exist and revoked "
            "expired tokens (counts in data)."])

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
        entry, granted = await renew_token(entry, d["increment"])
        return Response(auth=entry.auth_block(token_id, granted))

    async def renew_self(req: Request, d: FieldData) -> Response:
        entry, granted = await renew_token(caller(req), d["increment"])
        return Response(auth=entry.auth_block(req.client_token or "", granted))

    async def renew_accessor(req: Request, d: FieldData) -> Response:
        entry, granted = await renew_token(await by_accessor(d), d["increment"])
        return Response(auth=entry.auth_block("", granted))

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
        "type": Field(S, "Token type; only service tokens exist (batch is refused).", default="service"),
        "entity_alias": Field(S, "Ignored."),
        "lease": Field(S, "Older name of ttl (ignored)."),
    }
    role_fields = {
        "allowed_policies": Field(L, "Policies tokens of this role may have (the default policy is always allowed)."),
        "allowed_policies_glob": Field(L, "Globs (with *) of policies tokens of this role may have."),
        "disallowed_policies": Field(L, "Policies tokens of this role may never have."),
        "disallowed_policies_glob": Field(L, "Globs (with *) of policies tokens of this role may never have."),
        "orphan": Field(B, "Tokens of this role are orphans (no sudo needed)."),
        "renewable": Field(B, "Whether tokens of this role can be renewed."),
        "path_suffix": Field(S, "Appended to the tokens' path (auth/token/create/<role>/<suffix>)."),
        "token_period": Field(D, "Tokens are periodic with this period."),
        "period": Field(D, "Older name of token_period."),
        "token_explicit_max_ttl": Field(D, "A hard limit on the tokens' life."),
        "explicit_max_ttl": Field(D, "Older name of token_explicit_max_ttl."),
        "token_ttl": Field(D, "Default TTL of the tokens (coffer's addition; 0: the mount's)."),
        "token_max_ttl": Field(D, "Maximum TTL of the tokens (coffer's addition; 0: the mount's)."),
        "token_num_uses": Field(I, "How many requests each token may make (0: unlimited)."),
        "token_bound_cidrs": Field(L, "CIDR blocks the tokens may be used from."),
        "bound_cidrs": Field(L, "Older name of token_bound_cidrs."),
        "token_no_default_policy": Field(B, "Do not add the default policy."),
        "token_type": Field(S, "default-service or service (batch tokens do not exist in coffer)."),
        "token_strictly_bind_ip": Field(B, "Accepted for compatibility."),
        "allowed_entity_aliases": Field(L, "Accepted for compatibility (there is no identity store)."),
    }
    token_field = {"token": Field(S, "The token.")}
    accessor_field = {"accessor": Field(S, "The token's accessor.")}
    increment = {"increment": Field(D, "How long to extend the TTL by.", default=0)}
    return Backend(
        [
            Path("create", {"write": create}, create_fields, synopsis="Create a child token of the caller."),
            Path("create-orphan", {"write": create_orphan}, dict(create_fields),
                 synopsis="Create a token with no parent."),
            Path(f"create/{ROLE_NAME}", {"write": create}, dict(create_fields),
                 synopsis="Create a token with a token role."),
            Path("roles/?", {"list": list_roles}, synopsis="List the token roles."),
            Path(f"roles/{ROLE_NAME}", {"read": read_role, "write": write_role, "delete": delete_role},
                 role_fields, exists=role_exists, synopsis="Create, read, update or delete a token role."),
            Path("tidy", {"write": tidy}, synopsis="Clean up the token store's indexes and expired tokens."),
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
