"""userpass: people (or scripts) log in with a user name and a password.

Passwords are stored as argon2id hashes (argon2-cffi); hashing and checking
run in worker threads, a few at a time, so a burst of logins never stalls
the server. A login for an unknown user checks the password against a
dummy hash, so "no such user" and "wrong password" take the same time and
answer the same message. User names are case-insensitive.

Storage (the mount's view): ``user/<name>`` -> the user (JSON: password
hash and token settings).
"""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from coffer.errors import InvalidRequest
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import MountInfo, Request, Response
from coffer.framework.tokenutil import TOKEN_FIELDS, TokenParams

S = FieldType.STRING

HELP = """userpass: log in with a user name and a password.

Create users at users/<name> with a password and the policies their tokens
get; they log in at login/<name>."""

USER = r"(?P<username>\w(?:[\w.@+-]*\w)?)"
INVALID = "invalid username or password"
#: Hashes computed at once (argon2id takes ~64 MiB each).
CONCURRENT_HASHES = 4
MAX_PASSWORD = 4096

_hasher = PasswordHasher()
#: Checked against when the user does not exist, so that takes as long as a wrong password (made once).
_dummy_hash = ""


def _verify(stored: str, password: str) -> bool:
    """argon2's own constant-time check of ``password`` against ``stored``."""
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_password(d: FieldData) -> str:
    password = d["password"]
    if not password:
        raise InvalidRequest("missing password: send password=...")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"the password is too long (at most {MAX_PASSWORD} characters)")
    return password


class Userpass:
    def __init__(self, mount: MountInfo) -> None:
        self.mount = mount
        self._slots = asyncio.Semaphore(CONCURRENT_HASHES)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        async with self._slots:
            return await asyncio.to_thread(fn, *args)

    async def dummy_hash(self) -> str:
        global _dummy_hash
        if not _dummy_hash:
            _dummy_hash = await self.hash_password("coffer: no such user")
        return _dummy_hash

    async def hash_password(self, password: str) -> str:
        return await self._in_thread(_hasher.hash, password)

    async def user(self, req: Request, name: str) -> dict[str, Any] | None:
        return await req.storage.get_json(f"user/{name.lower()}")

    async def exists(self, req: Request, captures: dict[str, str]) -> bool:
        return await self.user(req, captures["username"]) is not None

    async def write_user(self, req: Request, d: FieldData) -> None:
        name = d["username"].lower()
        old = await self.user(req, name)
        if old is None and not d["password"]:
            raise InvalidRequest("must provide a password for a new user: send password=...")
        token = TokenParams.from_doc((old or {}).get("token"))
        token.update(d)
        user: dict[str, Any] = dict(old or {})
        user["token"] = token.to_doc()
        if d["password"]:
            user["password_hash"] = await self.hash_password(_check_password(d))
        await req.storage.put_json(f"user/{name}", user)

    async def read_user(self, req: Request, d: FieldData) -> Response | None:
        user = await self.user(req, d["username"])
        if user is None:
            return None
        return Response(data=TokenParams.from_doc(user.get("token")).to_doc())

    async def delete_user(self, req: Request, d: FieldData) -> None:
        await req.storage.delete(f"user/{d['username'].lower()}")

    async def list_users(self, req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list("user/")})

    async def _existing(self, req: Request, d: FieldData) -> tuple[str, dict[str, Any]]:
        name = d["username"].lower()
        user = await self.user(req, name)
        if user is None:
            raise InvalidRequest(f'username "{name}" does not exist; create it at users/{name}')
        return name, user

    async def set_password(self, req: Request, d: FieldData) -> None:
        name, user = await self._existing(req, d)
        user["password_hash"] = await self.hash_password(_check_password(d))
        await req.storage.put_json(f"user/{name}", user)

    async def set_policies(self, req: Request, d: FieldData) -> None:
        name, user = await self._existing(req, d)
        if "token_policies" not in d and "policies" not in d:
            raise InvalidRequest("missing token_policies: send token_policies=a,b")
        token = TokenParams.from_doc(user.get("token"))
        token.update(d)
        user["token"] = token.to_doc()
        await req.storage.put_json(f"user/{name}", user)

    async def login(self, req: Request, d: FieldData) -> Response:
        password = _check_password(d)
        name = d["username"].lower()
        user = await self.user(req, name)
        stored = (user or {}).get("password_hash") or await self.dummy_hash()
        matches = await self._in_thread(_verify, stored, password)
        if user is None or not matches:
            raise InvalidRequest(INVALID)
        token = TokenParams.from_doc(user.get("token"))
        return Response(auth=token.auth(metadata={"username": name}, display_name=name,
                                        internal={"username": name}, alias=name))

    async def renew(self, req: Request) -> Response:
        """A token renews only while its user exists with the same policies (Vault's rule)."""
        assert req.auth is not None
        name = str(req.auth.internal.get("username", ""))
        user = await self.user(req, name) if name else None
        if user is None:
            raise InvalidRequest(f'user "{name}" does not exist any more; the token cannot be renewed')
        token = TokenParams.from_doc(user.get("token"))
        if set(token.token_policies) - {"default"} != set(req.auth.policies) - {"default"}:
            raise InvalidRequest("the user's policies have changed since the login; log in again for a token "
                                 "with the new policies")
        return Response(auth=token.renewed(req.auth))


def factory(mount: MountInfo) -> Backend:
    u = Userpass(mount)
    name = {"username": Field(S, "The user's name (case-insensitive).", required=True)}
    password = {"password": Field(S, "The password.")}
    return Backend(
        [
            Path(f"login/{USER}", {"write": u.login}, {**name, **password},
                 synopsis="Log in with the user's password."),
            Path("users/?", {"list": u.list_users}, synopsis="List the users."),
            Path(f"users/{USER}", {"read": u.read_user, "write": u.write_user, "delete": u.delete_user},
                 {**name, **password, **TOKEN_FIELDS},
                 exists=u.exists, synopsis="Create, read, update or delete a user."),
            Path(f"users/{USER}/password", {"write": u.set_password}, {**name, **password},
                 synopsis="Change a user's password."),
            Path(f"users/{USER}/policies", {"write": u.set_policies},
                 {**name, "token_policies": TOKEN_FIELDS["token_policies"], "policies": TOKEN_FIELDS["policies"]},
                 synopsis="Change a user's policies."),
        ],
        help=HELP,
        unauthenticated=("login/*",),
        renew_auth=u.renew,
    )
