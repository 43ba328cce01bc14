"""AppRole: machines log in with a role ID (like a user name) and a secret ID (like a password).

Secret IDs are stored only as HMACs keyed with a per-mount salt; an entry
keeps its accessor, use count, expiry, metadata and CIDR bindings. A login
refuses a secret ID that is unknown, expired, used up or presented from an
address outside its (or its role's) CIDR blocks, with one message for all
of "wrong role ID" and "wrong secret ID".

Storage (the mount's view):
  salt                               the HMAC key
  role/<name>                        the role (JSON)
  role_id/<hmac(role id)>            -> role name
  secret_id/<role>/<hmac(secret id)> the secret ID's entry
  accessor/<role>/<accessor>         -> hmac(secret id)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from coffer.errors import InvalidRequest, NotFound
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import MountInfo, Request, Response
from coffer.framework.salt import Salt
from coffer.framework.tokenutil import TOKEN_FIELDS, TokenParams, addr_allowed, cidrs_within, parse_cidrs
from coffer.storage.base import ConditionFailed, Delete, Expect, Put

S, I, B, D, L, M = (FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST,
                    FieldType.MAP)

HELP = """AppRole: log in with a role ID and a secret ID.

Create a role (role/<name>) saying what its tokens get, read its role ID
(role/<name>/role-id), generate secret IDs (role/<name>/secret-id, best
delivered wrapped), and log in with both at login."""

ROLE = r"(?P<role_name>\w(?:[\w.-]*\w)?)"
INVALID = "invalid role or secret ID"
#: How often the periodic tick removes expired secret IDs.
TIDY_EVERY = 600.0

#: role/<name>/<field> endpoints that read or set one field of a role.
ROLE_FIELDS = {
    "policies": "token_policies", "secret-id-num-uses": "secret_id_num_uses", "secret-id-ttl": "secret_id_ttl",
    "token-ttl": "token_ttl", "token-max-ttl": "token_max_ttl", "bind-secret-id": "bind_secret_id",
    "secret-id-bound-cidrs": "secret_id_bound_cidrs", "token-bound-cidrs": "token_bound_cidrs",
    "period": "token_period", "token-num-uses": "token_num_uses",
}


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _metadata(d: FieldData) -> dict[str, str]:
    meta = d["metadata"] or {}
    out: dict[str, str] = {}
    for key, value in meta.items():
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidRequest(f'metadata "{key}" must be a string; metadata is a JSON object of strings, '
                                 'e.g. {"env": "prod"}')
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class AppRole:
    def __init__(self, mount: MountInfo) -> None:
        self.salt = Salt()
        self._lock = asyncio.Lock()  # secret ID uses are counted one at a time
        self._tidied = 0.0

    async def h(self, req: Request, value: str) -> str:
        return await self.salt.hash(req.storage, value)

    # -- roles ------------------------------------------------------------

    async def role(self, req: Request, name: str) -> dict[str, Any] | None:
        return await req.storage.get_json(f"role/{name.lower()}")

    async def need_role(self, req: Request, name: str) -> dict[str, Any]:
        role = await self.role(req, name)
        if role is None:
            raise NotFound(f'role "{name.lower()}" does not exist')
        return role

    async def role_exists(self, req: Request, captures: dict[str, str]) -> bool:
        return await self.role(req, captures["role_name"]) is not None

    def apply(self, role: dict[str, Any], d: FieldData) -> dict[str, Any]:
        """``role`` with what the caller sent; raises InvalidRequest."""
        token = TokenParams.from_doc(role.get("token"))
        token.update(d)
        role["token"] = token.to_doc()
        if "bind_secret_id" in d:
            role["bind_secret_id"] = d["bind_secret_id"]
        if "secret_id_bound_cidrs" in d or "bound_cidr_list" in d:
            raw = d["secret_id_bound_cidrs"] if "secret_id_bound_cidrs" in d else d["bound_cidr_list"]
            role["secret_id_bound_cidrs"] = parse_cidrs(raw, "secret_id_bound_cidrs")
        if "secret_id_num_uses" in d:
            if d["secret_id_num_uses"] < 0:
                raise InvalidRequest("secret_id_num_uses cannot be negative")
            role["secret_id_num_uses"] = d["secret_id_num_uses"]
        if "secret_id_ttl" in d:
            role["secret_id_ttl"] = d["secret_id_ttl"]
        if "local_secret_ids" in d:
            role["local_secret_ids"] = d["local_secret_ids"]
        if not role["bind_secret_id"] and not role["secret_id_bound_cidrs"] and not token.token_bound_cidrs:
            raise InvalidRequest("at least one constraint should be enabled on the role: keep bind_secret_id=true, "
                                 "or set secret_id_bound_cidrs or token_bound_cidrs")
        return role

    async def write_role(self, req: Request, d: FieldData) -> None:
        name = d["role_name"].lower()
        old = await self.role(req, name)
        role = self.apply(dict(old or {"bind_secret_id": True, "secret_id_bound_cidrs": [], "secret_id_num_uses": 0,
                                       "secret_id_ttl": 0, "local_secret_ids": False, "token": {}}), d)
        ops: list[Put | Delete] = []
        expect: list[Expect] = []
        if old is None or ("role_id" in d and d["role_id"] != old.get("role_id")):
            role_id = d["role_id"] or str(uuid.uuid4())
            ops, expect = await self.role_id_ops(req, name, role_id, old)
            role["role_id"] = role_id
        ops.insert(0, Put(f"role/{name}", orjson.dumps(role)))
        await self.batch(req, ops, expect)

    async def role_id_ops(self, req: Request, name: str, role_id: str,
                          old: dict[str, Any] | None) -> tuple[list[Put | Delete], list[Expect]]:
        if not role_id.strip():
            raise InvalidRequest("role_id cannot be empty")
        key = f"role_id/{await self.h(req, role_id)}"
        ops: list[Put | Delete] = [Put(key, name.encode())]
        if old is not None and old.get("role_id"):
            ops.insert(0, Delete(f"role_id/{await self.h(req, old['role_id'])}"))
        return ops, [Expect(key, exists=False)]

    async def batch(self, req: Request, ops: list[Put | Delete], expect: list[Expect]) -> None:
        try:
            await req.storage.batch(ops, expect)
        except ConditionFailed as exc:
            if exc.key.startswith(req.storage.prefix + "role_id/"):
                raise InvalidRequest("that role_id is already used by another role; choose another") from None
            raise

    async def read_role(self, req: Request, d: FieldData) -> Response | None:
        role = await self.role(req, d["role_name"])
        return None if role is None else Response(data=self.show(role))

    @staticmethod
    def show(role: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in role.items() if k not in ("token", "role_id")}
        data["secret_id_bound_cidrs"] = role["secret_id_bound_cidrs"] or None
        data.update(TokenParams.from_doc(role.get("token")).to_doc())
        return dict(sorted(data.items()))

    async def delete_role(self, req: Request, d: FieldData) -> None:
        name = d["role_name"].lower()
        role = await self.role(req, name)
        if role is None:
            return
        await req.storage.delete_tree(f"secret_id/{name}/")
        await req.storage.delete_tree(f"accessor/{name}/")
        await req.storage.batch([Delete(f"role_id/{await self.h(req, role['role_id'])}"), Delete(f"role/{name}")])

    async def list_roles(self, req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list("role/")})

    async def read_role_id(self, req: Request, d: FieldData) -> Response | None:
        role = await self.role(req, d["role_name"])
        return None if role is None else Response(data={"role_id": role["role_id"]})

    async def write_role_id(self, req: Request, d: FieldData) -> None:
        d.require("role_id")
        name = d["role_name"].lower()
        role = await self.need_role(req, name)
        if d["role_id"] == role["role_id"]:
            return
        ops, expect = await self.role_id_ops(req, name, d["role_id"], role)
        role["role_id"] = d["role_id"]
        await self.batch(req, [Put(f"role/{name}", orjson.dumps(role)), *ops], expect)

    async def read_role_field(self, req: Request, d: FieldData) -> Response | None:
        role = await self.role(req, d["role_name"])
        if role is None:
            return None
        name = ROLE_FIELDS[d["field"]]
        return Response(data={name: self.show(role)[name]})

    async def write_role_field(self, req: Request, d: FieldData) -> None:
        name = d["role_name"].lower()
        role = await self.need_role(req, name)
        field = ROLE_FIELDS[d["field"]]
        if field not in d:
            raise InvalidRequest(f'missing required field "{field}"')
        role = self.apply(role, FieldData(ROLE_PATH_FIELDS, {field: d.raw[field]}))
        await req.storage.put_json(f"role/{name}", role)

    async def delete_role_field(self, req: Request, d: FieldData) -> None:
        name = d["role_name"].lower()
        role = await self.need_role(req, name)
        field = ROLE_FIELDS[d["field"]]
        default = {"bind_secret_id": True, "secret_id_bound_cidrs": [], "token_policies": [],
                   "token_bound_cidrs": []}.get(field, 0)
        role = self.apply(role, FieldData(ROLE_PATH_FIELDS, {field: default}))
        await req.storage.put_json(f"role/{name}", role)

    # -- secret IDs ---------------------------------------------------------------

    async def generate(self, req: Request, d: FieldData, custom: str = "") -> Response:
        name = d["role_name"].lower()
        role = await self.need_role(req, name)
        if not role["bind_secret_id"]:
            raise InvalidRequest(f'role "{name}" does not use secret IDs (bind_secret_id=false)')
        cidr_list = parse_cidrs(d["cidr_list"] or [], "cidr_list")
        if not cidrs_within(cidr_list, role["secret_id_bound_cidrs"]):
            raise InvalidRequest(f"cidr_list {cidr_list} must lie within the role's secret_id_bound_cidrs "
                                 f"{role['secret_id_bound_cidrs']}")
        token_cidrs = parse_cidrs(d["token_bound_cidrs"] or [], "token_bound_cidrs")
        role_token_cidrs = TokenParams.from_doc(role.get("token")).token_bound_cidrs
        if not cidrs_within(token_cidrs, role_token_cidrs):
            raise InvalidRequest(f"token_bound_cidrs {token_cidrs} must lie within the role's token_bound_cidrs "
                                 f"{role_token_cidrs}")
        num_uses = role["secret_id_num_uses"]
        if "num_uses" in d:
            if d["num_uses"] < 0:
                raise InvalidRequest("num_uses cannot be negative")
            if num_uses and (d["num_uses"] == 0 or d["num_uses"] > num_uses):
                raise InvalidRequest(f"num_uses cannot be more than the role's secret_id_num_uses ({num_uses})")
            num_uses = d["num_uses"] or num_uses
        ttl = role["secret_id_ttl"]
        if d["ttl"]:
            if ttl and d["ttl"] > ttl:
                raise InvalidRequest(f"ttl cannot be longer than the role's secret_id_ttl ({ttl}s)")
            ttl = d["ttl"]
        metadata = _metadata(d)
        secret_id = custom or str(uuid.uuid4())
        accessor = str(uuid.uuid4())
        now = time.time()
        entry = {"secret_id_accessor": accessor, "secret_id_num_uses": num_uses, "secret_id_ttl": ttl,
                 "creation_time": now, "expiration_time": now + ttl if ttl else 0, "last_updated_time": now,
                 "metadata": metadata, "cidr_list": cidr_list, "token_bound_cidrs": token_cidrs}
        hashed = await self.h(req, secret_id)
        key = f"secret_id/{name}/{hashed}"
        try:
            await req.storage.batch([Put(key, orjson.dumps(entry)),
                                     Put(f"accessor/{name}/{accessor}", hashed.encode())],
                                    [Expect(key, exists=False), Expect(f"role/{name}")])
        except ConditionFailed as exc:
            if exc.key == req.storage.prefix + key:
                raise InvalidRequest("that secret ID is already registered for this role; choose another") from None
            raise NotFound(f'role "{name}" does not exist') from None
        return Response(data={"secret_id": secret_id, "secret_id_accessor": accessor,
                              "secret_id_num_uses": num_uses, "secret_id_ttl": ttl})

    async def generate_custom(self, req: Request, d: FieldData) -> Response:
        d.require("secret_id")
        return await self.generate(req, d, custom=d["secret_id"])

    @staticmethod
    def describe(entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "cidr_list": entry["cidr_list"],
            "creation_time": _time(entry["creation_time"]),
            "expiration_time": _time(entry["expiration_time"]) if entry["expiration_time"] else "0001-01-01T00:00:00Z",
            "last_updated_time": _time(entry["last_updated_time"]),
            "metadata": entry["metadata"],
            "secret_id_accessor": entry["secret_id_accessor"],
            "secret_id_num_uses": entry["secret_id_num_uses"],
            "secret_id_ttl": entry["secret_id_ttl"],
            "token_bound_cidrs": entry["token_bound_cidrs"],
        }

    async def entry(self, req: Request, name: str, hashed: str) -> dict[str, Any] | None:
        entry = await req.storage.get_json(f"secret_id/{name}/{hashed}")
        if entry is not None and entry["expiration_time"] and entry["expiration_time"] <= time.time():
            return None
        return entry

    async def lookup(self, req: Request, d: FieldData) -> Response | None:
        d.require("secret_id")
        name = d["role_name"].lower()
        await self.need_role(req, name)
        entry = await self.entry(req, name, await self.h(req, d["secret_id"]))
        return None if entry is None else Response(data=self.describe(entry))

    async def destroy(self, req: Request, d: FieldData) -> None:
        d.require("secret_id")
        name = d["role_name"].lower()
        await self.need_role(req, name)
        await self.remove(req, name, await self.h(req, d["secret_id"]))

    async def remove(self, req: Request, name: str, hashed: str) -> None:
        entry = await req.storage.get_json(f"secret_id/{name}/{hashed}")
        ops: list[Put | Delete] = [Delete(f"secret_id/{name}/{hashed}")]
        if entry is not None:
            ops.append(Delete(f"accessor/{name}/{entry['secret_id_accessor']}"))
        await req.storage.batch(ops)

    async def by_accessor(self, req: Request, d: FieldData) -> tuple[str, str]:
        d.require("secret_id_accessor")
        name = d["role_name"].lower()
        await self.need_role(req, name)
        accessor = d["secret_id_accessor"]
        raw = await req.storage.get(f"accessor/{name}/{accessor}") if "/" not in accessor else None
        if raw is None:
            raise NotFound(f'failed to find accessor entry for secret_id_accessor: "{accessor[:80]}"')
        return name, raw.decode()

    async def lookup_accessor(self, req: Request, d: FieldData) -> Response:
        name, hashed = await self.by_accessor(req, d)
        entry = await self.entry(req, name, hashed)
        if entry is None:
            raise NotFound(f'failed to find accessor entry for secret_id_accessor: "{d["secret_id_accessor"]}"')
        return Response(data=self.describe(entry))

    async def destroy_accessor(self, req: Request, d: FieldData) -> None:
        name, hashed = await self.by_accessor(req, d)
        await self.remove(req, name, hashed)

    async def list_secret_ids(self, req: Request, d: FieldData) -> Response:
        name = d["role_name"].lower()
        await self.need_role(req, name)
        return Response(data={"keys": await req.storage.list(f"accessor/{name}/")})

    # -- login -----------------------------------------------------------------

    async def login(self, req: Request, d: FieldData) -> Response:
        d.require("role_id")
        raw_name = await req.storage.get(f"role_id/{await self.h(req, d['role_id'])}")
        role = await self.role(req, raw_name.decode()) if raw_name else None
        if raw_name is None or role is None:
            raise InvalidRequest(INVALID)
        name = raw_name.decode()
        addr = req.remote_addr
        if not addr_allowed(addr, role["secret_id_bound_cidrs"]):
            raise InvalidRequest(f'source address "{addr}" unauthorized by CIDR restrictions on the role')
        metadata: dict[str, str] = {}
        token_cidrs: list[str] = []
        if role["bind_secret_id"]:
            d.require("secret_id")
            entry = await self.use_secret_id(req, name, await self.h(req, d["secret_id"]))
            metadata, token_cidrs = dict(entry["metadata"]), list(entry["token_bound_cidrs"])
        token = TokenParams.from_doc(role.get("token"))
        auth = token.auth(metadata={**metadata, "role_name": name}, internal={"role_name": name},
                          alias=role["role_id"])
        if token_cidrs:
            auth.bound_cidrs = token_cidrs
        return Response(auth=auth)

    async def use_secret_id(self, req: Request, name: str, hashed: str) -> dict[str, Any]:
        """Count one use of a secret ID (refusing an unknown, expired, used-up or out-of-range one)."""
        key = f"secret_id/{name}/{hashed}"
        async with self._lock:
            raw = await req.storage.get(key)
            if raw is None:
                raise InvalidRequest(INVALID)
            entry = orjson.loads(raw)
            if entry["expiration_time"] and entry["expiration_time"] <= time.time():
                await self.remove(req, name, hashed)
                raise InvalidRequest(INVALID)
            if not addr_allowed(req.remote_addr, entry["cidr_list"]):
                raise InvalidRequest(f'source address "{req.remote_addr}" unauthorized by CIDR restrictions on '
                                     "the secret ID")
            uses = entry["secret_id_num_uses"]
            try:
                if uses == 1:
                    await req.storage.batch([Delete(key), Delete(f"accessor/{name}/{entry['secret_id_accessor']}")],
                                            [Expect(key, raw)])
                elif uses > 1:
                    entry["secret_id_num_uses"] = uses - 1
                    entry["last_updated_time"] = time.time()
                    await req.storage.batch([Put(key, orjson.dumps(entry))], [Expect(key, raw)])
            except ConditionFailed:
                raise InvalidRequest(INVALID) from None  # used (or destroyed) meanwhile
            return entry

    async def renew(self, req: Request) -> Response:
        """A token renews only while its role exists, with the role's TTLs as they are now."""
        assert req.auth is not None
        name = str(req.auth.internal.get("role_name", ""))
        role = await self.role(req, name) if name else None
        if role is None:
            raise InvalidRequest(f'role "{name}" does not exist any more; the token cannot be renewed')
        return Response(auth=TokenParams.from_doc(role.get("token")).renewed(req.auth))

    # -- tidy ----------------------------------------------------------------------

    async def tidy(self, req: Request, d: FieldData | None = None) -> Response:
        now = time.time()
        removed = dangling = 0
        for role in [r.rstrip("/") for r in await req.storage.list("secret_id/")]:
            start = f"secret_id/{role}/"
            for key, raw in await req.storage.scan(start, start + "\xff"):
                entry = orjson.loads(raw)
                if entry["expiration_time"] and entry["expiration_time"] <= now:
                    await self.remove(req, role, key.rsplit("/", 1)[1])
                    removed += 1
        for role in [r.rstrip("/") for r in await req.storage.list("accessor/")]:
            start = f"accessor/{role}/"
            for key, raw in await req.storage.scan(start, start + "\xff"):
                if await req.storage.get(f"secret_id/{role}/{raw.decode()}") is None:
                    await req.storage.delete(key)
                    dangling += 1
        self._tidied = now
        return Response(data={"expired_secret_ids": removed, "dangling_accessors": dangling}, status=202,
                        warnings=["Tidy operation finished: expired secret IDs and accessors without a secret ID "
                                  "were removed (counts in data)."])

    async def periodic(self, req: Request) -> None:
        if time.time() - self._tidied >= TIDY_EVERY:
            await self.tidy(req)


ROLE_PATH_FIELDS: dict[str, Field] = {
    **TOKEN_FIELDS,
    "role_id": Field(S, "A role ID of your choosing (default: a random UUID)."),
    "bind_secret_id": Field(B, "Require a secret ID at login (default true)."),
    "secret_id_bound_cidrs": Field(L, "CIDR blocks logins with this role's secret IDs may come from."),
    "bound_cidr_list": Field(L, "Older name of secret_id_bound_cidrs."),
    "secret_id_num_uses": Field(I, "Logins each secret ID allows (0: unlimited)."),
    "secret_id_ttl": Field(D, "How long secret IDs stay valid (0: no limit)."),
    "local_secret_ids": Field(B, "Accepted for compatibility (no replication)."),
}


def factory(mount: MountInfo) -> Backend:
    a = AppRole(mount)
    name = {"role_name": Field(S, "The role's name.", required=True)}
    secret_fields = {
        **name,
        "metadata": Field(M, 'Metadata (a JSON object of strings, e.g. {"env": "prod"}) kept with the secret ID '
                             "and copied to the tokens' metadata."),
        "cidr_list": Field(L, "CIDR blocks logins with this secret ID may come from."),
        "token_bound_cidrs": Field(L, "CIDR blocks the tokens of logins with this secret ID may be used from."),
        "num_uses": Field(I, "Logins this secret ID allows (0: the role's secret_id_num_uses)."),
        "ttl": Field(D, "How long this secret ID stays valid (0: the role's secret_id_ttl)."),
    }
    field_names = "|".join(ROLE_FIELDS)
    return Backend(
        [
            Path("login", {"write": a.login}, {"role_id": Field(S, "The role ID."),
                                               "secret_id": Field(S, "The secret ID.")},
                 synopsis="Log in with a role ID and a secret ID."),
            Path("role/?", {"list": a.list_roles}, synopsis="List the roles."),
            Path(f"role/{ROLE}", {"read": a.read_role, "write": a.write_role, "delete": a.delete_role},
                 {**name, **ROLE_PATH_FIELDS}, exists=a.role_exists, synopsis="Create, read, update or delete a role."),
            Path(f"role/{ROLE}/role-id", {"read": a.read_role_id, "write": a.write_role_id},
                 {**name, "role_id": Field(S, "The new role ID.")}, synopsis="Read or set the role's role ID."),
            Path(f"role/{ROLE}/secret-id/?", {"write": a.generate, "list": a.list_secret_ids}, secret_fields,
                 synopsis="Generate a secret ID (POST) or list the accessors of the role's secret IDs (LIST)."),
            Path(f"role/{ROLE}/custom-secret-id", {"write": a.generate_custom},
                 {**secret_fields, "secret_id": Field(S, "The secret ID to register.")},
                 synopsis="Register a secret ID of your choosing."),
            Path(f"role/{ROLE}/secret-id/lookup", {"write": a.lookup},
                 {**name, "secret_id": Field(S, "The secret ID.")}, synopsis="Show a secret ID's properties."),
            Path(f"role/{ROLE}/secret-id/destroy", {"write": a.destroy, "delete": a.destroy},
                 {**name, "secret_id": Field(S, "The secret ID.")}, synopsis="Destroy a secret ID."),
            Path(f"role/{ROLE}/secret-id-accessor/lookup", {"write": a.lookup_accessor},
                 {**name, "secret_id_accessor": Field(S, "The secret ID's accessor.")},
                 synopsis="Show a secret ID's properties by its accessor."),
            Path(f"role/{ROLE}/secret-id-accessor/destroy", {"write": a.destroy_accessor, "delete": a.destroy_accessor},
                 {**name, "secret_id_accessor": Field(S, "The secret ID's accessor.")},
                 synopsis="Destroy a secret ID by its accessor."),
            Path(f"role/{ROLE}/(?P<field>{field_names})",
                 {"read": a.read_role_field, "write": a.write_role_field, "delete": a.delete_role_field},
                 {**name, "field": Field(S, "The role field.", required=True), **ROLE_PATH_FIELDS},
                 synopsis="Read, set or reset one field of a role."),
            Path("tidy/secret-id", {"write": a.tidy}, synopsis="Remove expired secret IDs and dangling accessors."),
        ],
        help=HELP,
        unauthenticated=("login",),
        periodic=a.periodic,
        renew_auth=a.renew,
    )
