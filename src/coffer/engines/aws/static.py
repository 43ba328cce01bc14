"""Static roles: an existing IAM user whose one access key coffer rotates on a schedule.

``static-roles/<name>`` (``username``, ``rotation_period`` of at least a minute, and for a user in another
account ``assume_role_arn`` with ``assume_role_session_name`` and ``external_id``); ``static-creds/<name>``
answers the current key and when it will be replaced.

A rotation lists the user's keys, makes room if it holds two (deleting the oldest key that is not the
current one), creates a key, stores it, then deletes every other key: the user ends each rotation holding
exactly one key, the stored one. A rotation interrupted between creating and storing leaves a key the next
rotation removes; one interrupted after storing leaves old keys that the next tick deletes.

The schedule lives in storage (``static-due/<ms>/<name>``), looked at on the engine's periodic tick: a
rotation that fell due while the server was down happens after unseal, and a changed ``rotation_period``
moves the next rotation at once (to the last rotation plus the new period).

``COFFER_TEST_MIN_ROTATION_PERIOD`` (seconds) lowers the one-minute minimum: it exists for the test suite
only (an environment variable, which no configuration file can set).
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import orjson

from coffer.engines.aws.access_keys import create_access_key
from coffer.engines.aws.clients import error_code
from coffer.engines.aws.config import lowered_for_tests
from coffer.engines.aws.context import Aws
from coffer.engines.aws.failures import StepError, client_error, step
from coffer.engines.aws.runtime import ISSUE, ISSUE_DEADLINE, REVOKE
from coffer.errors import CofferError, InvalidRequest
from coffer.framework.backend import Path, match_name
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.storage.base import Delete, Op, Put

log = logging.getLogger("coffer.engines.aws")
S, D = FieldType.STRING, FieldType.DURATION
ROLE = "static-role/"
DUE = "static-due/"
#: Static roles whose old keys are still to be deleted.
PENDING = "static-pending/"
MIN_PERIOD = 60
#: After a failed rotation, retry this soon.
RETRY_AFTER = 30.0
#: Rotations done on one periodic tick, at most.
PER_TICK = 20


def min_period() -> int:
    return lowered_for_tests(MIN_PERIOD)


def due_key(when: float, name: str) -> str:
    return f"{DUE}{int(when * 1000):015d}/{name}"


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat().replace("+00:00", "Z")


class StaticRoles:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws

    # -- worker threads ----------------------------------------------------------------------------

    def _iam(self, config: dict[str, Any], role: dict[str, Any]) -> Any:
        if role.get("assume_role_arn"):
            return self.aws.clients.static_iam(config, role["assume_role_arn"],
                                               role.get("assume_role_session_name") or "coffer-static",
                                               role.get("external_id") or "")
        return self.aws.clients.iam(config)

    def _check_user(self, config: dict[str, Any], role: dict[str, Any]) -> None:
        try:
            self._iam(config, role).get_user(UserName=role["username"])
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                raise InvalidRequest(f"IAM user {role['username']} does not exist") from None
            raise StepError(f"Error looking up IAM user {role['username']}", exc) from exc

    def _new_key(self, config: dict[str, Any], role: dict[str, Any]) -> dict[str, Any]:
        """Make room if needed, then create a key; answers it and the keys to delete once it is stored."""
        iam, user = self._iam(config, role), role["username"]
        keys = step(f"Error listing the access keys of {user}", iam.list_access_keys,
                    UserName=user)["AccessKeyMetadata"]
        current = role.get("access_key")
        if len(keys) >= 2:
            spare = sorted((k for k in keys if k["AccessKeyId"] != current), key=lambda k: k["CreateDate"])
            victim = spare[0]["AccessKeyId"]
            step(f"Error deleting access key {victim} of {user}", iam.delete_access_key, UserName=user,
                 AccessKeyId=victim)
            keys = [k for k in keys if k["AccessKeyId"] != victim]
        made = create_access_key(iam, user, f"Error creating an access key for {user}",
                                 held=[k["AccessKeyId"] for k in keys])
        return {"access_key": made["AccessKeyId"], "secret_key": made["SecretAccessKey"],
                "old": [k["AccessKeyId"] for k in keys]}

    def _delete_keys(self, config: dict[str, Any], role: dict[str, Any], ids: list[str]) -> list[str]:
        """Delete ``ids``; answers those that could not be (errors logged)."""
        iam, left = self._iam(config, role), []
        for key_id in ids:
            try:
                iam.delete_access_key(UserName=role["username"], AccessKeyId=key_id)
            except Exception as exc:
                if error_code(exc) != "NoSuchEntity":
                    log.warning("could not delete old access key %s of %s: %s", key_id, role["username"], exc)
                    left.append(key_id)
        return left

    # -- rotating ---------------------------------------------------------------------------------

    async def rotate(self, req: Request, name: str, role: dict[str, Any], lane: str) -> dict[str, Any]:
        config = await self.aws.config(req.storage)
        deadline = ISSUE_DEADLINE if lane == ISSUE else None
        try:
            made = await self.aws.runtime.call(lane, self._new_key, config, role, deadline=deadline)
        except StepError as exc:
            raise client_error(exc, lane) from None
        now = time.time()
        old_due = role.get("next_rotation", 0)
        role.update(access_key=made["access_key"], secret_key=made["secret_key"], last_rotation=now,
                    next_rotation=now + role["rotation_period"], pending_delete=made["old"], last_error="")
        await self._save(req, name, role, old_due)
        await self.finish_deletes(req, name, role, lane)
        return role

    async def finish_deletes(self, req: Request, name: str, role: dict[str, Any], lane: str = REVOKE) -> None:
        if not role.get("pending_delete"):
            return
        config = await self.aws.config(req.storage)
        left = await self.aws.runtime.call(lane, self._delete_keys, config, role, role["pending_delete"])
        role["pending_delete"] = left
        marker = [Put(PENDING + name, b"")] if left else [Delete(PENDING + name)]
        await req.storage.batch([Put(ROLE + name, orjson.dumps(role)), *marker])

    @staticmethod
    async def _save(req: Request, name: str, role: dict[str, Any], old_due: float) -> None:
        ops: list[Op] = [Put(ROLE + name, orjson.dumps(role)), Put(due_key(role["next_rotation"], name), b"")]
        if old_due and old_due != role["next_rotation"]:
            ops.append(Delete(due_key(old_due, name)))
        await req.storage.batch(ops)

    async def tick(self, req: Request) -> None:
        """Rotate the roles that are due (and finish deletions a rotation left)."""
        now = time.time()
        rows = await req.storage.scan(DUE, f"{DUE}{int(now * 1000):015d}0", PER_TICK)
        for key, _ in rows:
            name = key[len(DUE) + 16:]
            role = await req.storage.get_json(ROLE + name)
            if role is None or due_key(role.get("next_rotation", 0), name) != key:
                await req.storage.delete(key)  # a stale schedule entry
                continue
            try:
                await self.rotate(req, name, role, REVOKE)
                log.info("rotated the key of static role %s at %s", name, req.mount_point)
            except CofferError as exc:
                log.warning("rotating static role %s at %s failed (retrying): %s", name, req.mount_point, exc)
                old_due = role["next_rotation"]
                role.update(next_rotation=time.time() + RETRY_AFTER, last_error=str(exc))
                await self._save(req, name, role, old_due)
        for name in await req.storage.list(PENDING):
            role = await req.storage.get_json(ROLE + name)
            if role and role.get("pending_delete"):
                try:
                    await self.finish_deletes(req, name, role)
                except CofferError as exc:
                    log.warning("deleting old keys of static role %s failed (retrying): %s", name, exc)
            else:
                await req.storage.delete(PENDING + name)

    # -- paths ------------------------------------------------------------------------------------

    async def write(self, req: Request, d: FieldData) -> Response | None:
        name = d["name"]
        existing = await req.storage.get_json(ROLE + name)
        problems = []
        if existing is None:
            if not d["username"]:
                problems.append('missing required field "username" (the IAM user whose key coffer rotates)')
        elif "username" in d and d["username"] != existing["username"]:
            problems.append(f"username cannot change (it is {existing['username']}); delete the role and create "
                            "it again")
        period = d["rotation_period"] if "rotation_period" in d else (existing or {}).get("rotation_period", 0)
        if not period:
            problems.append('missing required field "rotation_period" (e.g. 24h)')
        elif period < min_period():
            problems.append(f"rotation_period must be at least {min_period()}s")
        if problems:
            raise InvalidRequest(*problems)
        role = dict(existing or {})
        role["rotation_period"] = period
        for field in ("username", "assume_role_arn", "assume_role_session_name", "external_id"):
            if field in d or field not in role:
                role[field] = d[field]
        if existing is None:
            config = await self.aws.config(req.storage)
            try:
                await self.aws.runtime.call(ISSUE, self._check_user, config, role, deadline=ISSUE_DEADLINE)
            except StepError as exc:
                raise client_error(exc, ISSUE) from None
            await self.rotate(req, name, role, ISSUE)
            return None
        if role["rotation_period"] != existing.get("rotation_period"):
            # Takes effect at once: the next rotation is the last one plus the new period.
            role["next_rotation"] = max(role.get("last_rotation", time.time()) + period, time.time())
        await self._save(req, name, role, existing.get("next_rotation", 0))
        return None

    async def read(self, req: Request, d: FieldData) -> Response | None:
        role = await req.storage.get_json(ROLE + d["name"])
        if role is None:
            return None
        return Response(data={
            "name": d["name"], "username": role["username"], "rotation_period": role["rotation_period"],
            "assume_role_arn": role.get("assume_role_arn", ""),
            "assume_role_session_name": role.get("assume_role_session_name", ""),
            "external_id": role.get("external_id", ""),
            "last_rotation": _iso(role["last_rotation"]) if role.get("last_rotation") else "",
            "next_rotation": _iso(role["next_rotation"]) if role.get("next_rotation") else "",
            "last_error": role.get("last_error", ""),
        })

    async def delete(self, req: Request, d: FieldData) -> None:
        role = await req.storage.get_json(ROLE + d["name"])
        if role is None:
            return
        await req.storage.batch([Delete(ROLE + d["name"]), Delete(due_key(role.get("next_rotation", 0), d["name"])),
                                 Delete(PENDING + d["name"])])

    async def list_roles(self, req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list(ROLE)})

    async def creds(self, req: Request, d: FieldData) -> Response | None:
        role = await req.storage.get_json(ROLE + d["name"])
        if role is None:
            return None
        expires = role.get("next_rotation", 0)
        return Response(data={"access_key": role["access_key"], "secret_key": role["secret_key"],
                              "expiration": _iso(expires), "ttl": max(0, int(expires - time.time()))})

    async def exists(self, req: Request, captures: dict[str, str]) -> bool:
        return await req.storage.get(ROLE + captures["name"]) is not None

    def paths(self) -> list[Path]:
        fields = {
            "username": Field(S, "The existing IAM user whose access key coffer rotates.", default=""),
            "rotation_period": Field(D, "How often the key is replaced (at least 1m), e.g. 24h.", default=0),
            "assume_role_arn": Field(S, "For a user in another account: the role coffer assumes to manage it.",
                                     default=""),
            "assume_role_session_name": Field(S, "The session name for assume_role_arn.", default=""),
            "external_id": Field(S, "The external ID for assume_role_arn.", default=""),
        }
        return [
            Path("static-roles/?", {"list": self.list_roles}, synopsis="List the static roles."),
            Path(rf"static-roles/{match_name()}", {"read": self.read, "write": self.write, "delete": self.delete},
                 fields, exists=self.exists, synopsis="Manage a static role (an IAM user whose key coffer rotates).",
                 description="On create, coffer makes a fresh key for the user (deleting its other keys once the "
                             "new one is stored) and then rotates it every rotation_period; the user holds "
                             "exactly one key after each rotation."),
            Path(rf"static-creds/{match_name()}", {"read": self.creds},
                 synopsis="The current access key of a static role, and when it is replaced."),
        ]
