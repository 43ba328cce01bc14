"""Rotating the root key: ``config/rotate-root`` on demand, and on config/root's schedule.

A rotation makes a new key for the root IAM user, waits (briefly) until AWS accepts it, stores it, then
deletes the old key with the old key itself. It refuses a root user that holds two keys (AWS allows two,
and coffer would not know which one is not in use). A deletion that fails is retried on the periodic tick.

The schedule (``rotation_period`` or the cron ``rotation_schedule`` with its ``rotation_window``) is kept in
storage (``root-rotation``): a rotation that fell due while the server was down happens after unseal.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from coffer.engines.aws import config as cfg
from coffer.engines.aws.access_keys import create_access_key
from coffer.engines.aws.clients import error_code
from coffer.engines.aws.context import Aws
from coffer.engines.aws.failures import StepError, client_error, step
from coffer.engines.aws.runtime import REVOKE
from coffer.errors import CofferError, InvalidRequest
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response
from coffer.storage.base import Put

log = logging.getLogger("coffer.engines.aws")
STATE = "root-rotation"
#: After a failed scheduled rotation, try again this soon (or at the next scheduled time, if sooner).
RETRY_AFTER = 60.0
#: How long, at most, a rotation waits for AWS to accept the new key before storing it.
USABLE_WAIT = 10.0


class RootRotation:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws

    # -- worker threads -----------------------------------------------------------------------

    def _new_key(self, config: dict[str, Any]) -> dict[str, str]:
        iam = self.aws.clients.base_iam(config)
        user = step("Error getting the root IAM user (iam:GetUser)", iam.get_user)["User"]["UserName"]
        keys = step("Error listing the root user's access keys", iam.list_access_keys,
                    UserName=user)["AccessKeyMetadata"]
        others = [k["AccessKeyId"] for k in keys if k["AccessKeyId"] != config["access_key"]]
        if others:
            raise InvalidRequest(f"the root IAM user {user} has {len(keys)} access keys; coffer rotates the root "
                                 f"key only while the user holds just the one coffer uses: delete "
                                 f"{', '.join(others)} first")
        made = create_access_key(iam, user, "Error creating the new root access key", held=[config["access_key"]])
        return {"user": user, "access_key": made["AccessKeyId"], "secret_key": made["SecretAccessKey"]}

    def _usable(self, config: dict[str, Any], access_key: str, secret_key: str) -> bool:
        deadline = time.monotonic() + USABLE_WAIT
        delay = 0.25
        while True:
            try:
                self.aws.clients.with_keys("sts", config, access_key, secret_key).get_caller_identity()
                return True
            except Exception:
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _delete_key(self, config: dict[str, Any], user: str, access_key: str) -> None:
        iam = self.aws.clients.base_iam(config)
        try:
            iam.delete_access_key(UserName=user, AccessKeyId=access_key)
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise StepError(f"Error deleting the old root access key {access_key}", exc) from exc

    # -- rotating ---------------------------------------------------------------------------

    async def rotate(self, req: Request) -> tuple[str, list[str]]:
        """Rotate now; answers the new access key and warnings."""
        config = await self.aws.config(req.storage)
        if not (config.get("access_key") and config.get("secret_key")):
            raise InvalidRequest("rotating the root key needs access_key and secret_key in config/root (keys coffer "
                                 "owns, not the AWS credential chain)")
        run = self.aws.runtime.call
        try:
            made = await run(REVOKE, self._new_key, config)
        except StepError as exc:
            raise client_error(exc, REVOKE) from None
        warnings = []
        if not await run(REVOKE, self._usable, config, made["access_key"], made["secret_key"]):
            warnings.append(f"AWS did not accept the new root key within {USABLE_WAIT:g}s; calls may be refused "
                            "for a few seconds")
        old = dict(config)
        new_config = {**config, "access_key": made["access_key"], "secret_key": made["secret_key"]}
        state = await req.storage.get_json(STATE) or {}
        state.update(last=time.time(), last_error="", pending_delete={"user": made["user"],
                                                                     "access_key": old["access_key"]})
        state["next"] = self.next_due(new_config, time.time())
        await req.storage.batch([Put(cfg.ROOT, orjson.dumps(new_config)), Put(STATE, orjson.dumps(state))])
        await self.finish_delete(req, old)
        state = await req.storage.get_json(STATE) or {}
        if state.get("pending_delete"):
            warnings.append(f"the old root key {old['access_key']} could not be deleted yet "
                            f"({state.get('last_error')}); coffer retries")
        return made["access_key"], warnings

    async def finish_delete(self, req: Request, old_config: dict[str, Any] | None = None) -> None:
        """Delete the previous root key if a rotation left it (with itself, else with the new key)."""
        state = await req.storage.get_json(STATE) or {}
        pending = state.get("pending_delete")
        if not pending:
            return
        config = await cfg.read_root(req.storage)
        signer = old_config or config
        try:
            await self.aws.runtime.call(REVOKE, self._delete_key, signer, pending["user"], pending["access_key"])
        except (StepError, CofferError) as exc:
            if old_config is None:
                state["last_error"] = str(exc)
                await req.storage.put_json(STATE, state)
                return
            try:  # the old key may not delete itself: the new one can
                await self.aws.runtime.call(REVOKE, self._delete_key, config, pending["user"],
                                            pending["access_key"])
            except (StepError, CofferError) as again:
                state["last_error"] = str(again)
                await req.storage.put_json(STATE, state)
                return
        state.pop("pending_delete", None)
        await req.storage.put_json(STATE, state)

    # -- the schedule ---------------------------------------------------------------------------

    @staticmethod
    def next_due(config: dict[str, Any], after: float) -> float:
        """When the next scheduled rotation falls (0: none)."""
        if config.get("disable_automated_rotation") or not (config.get("access_key") and config.get("secret_key")):
            return 0.0
        if config.get("rotation_period"):
            return after + config["rotation_period"]
        if config.get("rotation_schedule"):
            return cfg.next_scheduled(config["rotation_schedule"], after)
        return 0.0

    async def schedule_changed(self, req: Request) -> None:
        """config/root was written: start (or stop, or move) the schedule from now."""
        config = await cfg.read_root(req.storage)
        state = await req.storage.get_json(STATE) or {}
        state["next"] = self.next_due(config, state.get("last") or time.time()) if config.get("rotation_period") \
            else self.next_due(config, time.time())
        if state["next"] and state["next"] < time.time() and config.get("rotation_period"):
            state["next"] = time.time()  # overdue by the new period: rotate at the next tick
        await req.storage.put_json(STATE, state)

    async def tick(self, req: Request) -> None:
        state = await req.storage.get_json(STATE)
        if not state:
            return
        if state.get("pending_delete"):
            await self.finish_delete(req)
        due = state.get("next") or 0
        now = time.time()
        if not due or due > now:
            return
        config = await cfg.read_root(req.storage)
        window = config.get("rotation_window") or 0
        if config.get("rotation_schedule") and window and now > due + window:
            log.warning("the scheduled root rotation of %s at %s was missed by more than its window; skipped",
                        req.mount_point, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due)))
            state["next"] = self.next_due(config, now)
            await req.storage.put_json(STATE, state)
            return
        try:
            await self.rotate(req)
            log.info("rotated the root key of %s on schedule", req.mount_point)
        except CofferError as exc:
            log.warning("scheduled root rotation of %s failed (retrying): %s", req.mount_point, exc)
            state = await req.storage.get_json(STATE) or {}
            state["last_error"] = str(exc)
            retry = now + RETRY_AFTER
            scheduled = self.next_due(config, now)
            state["next"] = min(retry, scheduled) if scheduled else retry
            await req.storage.put_json(STATE, state)


async def rotate_root(rotation: RootRotation, req: Request, d: FieldData) -> Response:
    access_key, warnings = await rotation.rotate(req)
    return Response(data={"access_key": access_key}, warnings=warnings)
