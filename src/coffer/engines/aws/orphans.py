"""The orphan finder: IAM users that look like coffer's but that coffer does not know.

A user looks like coffer's when it sits at an iam_user role's ``user_path`` and its name starts with what
the username template always puts first for that role. coffer knows a user when its live index holds it
(it has a lease), a write-ahead entry names it (it is being made or rolled back), or it is a static role's
user or coffer's own root user. IAM is listed first and coffer's storage read afterwards, so a user made
while the finder runs is known by then (its write-ahead entry is written before CreateUser).

``LIST orphans`` answers them with age and attachments; ``POST tidy`` (``dry_run`` by default) deletes them
with the complete teardown revocation uses, checking each against storage once more just before.
"""

from __future__ import annotations

import time
from typing import Any

from coffer.engines.aws import live as live_index
from coffer.engines.aws.context import Aws
from coffer.engines.aws.failures import StepError, client_error, step
from coffer.engines.aws.iam_user import WAL_KIND, UserGone, delete_user_sync
from coffer.engines.aws.roles import IAM_USER, load_role
from coffer.engines.aws.runtime import ISSUE, REVOKE
from coffer.engines.aws.static import ROLE as STATIC_ROLE
from coffer.engines.aws.usernames import constant_prefix
from coffer.framework import wal
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

B, D = FieldType.BOOL, FieldType.DURATION


class Orphans:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws

    # -- worker threads ------------------------------------------------------------------------------

    def _candidates(self, config: dict[str, Any], targets: dict[str, list[str]]) -> dict[str, Any]:
        clients = self.aws.clients
        iam = clients.iam(config)
        me = ""
        try:
            arn = clients.sts_call(config, "get_caller_identity")["Arn"]
            me = arn.rsplit("/", 1)[-1] if ":user/" in arn else ""
        except Exception:  # then the root user is excluded by name below only if it matches nothing
            pass
        users: list[dict[str, Any]] = []
        for path, prefixes in targets.items():
            pages = step(f"Error listing the IAM users under {path}",
                         lambda **kw: list(iam.get_paginator("list_users").paginate(**kw)), PathPrefix=path)
            for page in pages:
                for user in page["Users"]:
                    if user["Path"] == path and any(user["UserName"].startswith(p) for p in prefixes):
                        users.append({"name": user["UserName"], "path": user["Path"],
                                      "created": user["CreateDate"].timestamp()})
        return {"me": me, "users": users}

    def _attachments(self, config: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
        iam = self.aws.clients.iam(config)
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            info: dict[str, Any] = {}
            try:
                info["access_keys"] = [k["AccessKeyId"] for k in
                                       iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
                info["inline_policies"] = iam.list_user_policies(UserName=name)["PolicyNames"]
                info["managed_policies"] = [p["PolicyArn"] for p in
                                            iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]]
                info["groups"] = [g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]]
            except Exception as exc:  # listed without what could not be read
                info["error"] = str(exc)
            found[name] = info
        return found

    def _delete(self, config: dict[str, Any], name: str) -> None:
        delete_user_sync(self.aws.clients.iam(config), name, self.aws.teardown_skips(config))

    # -- finding -----------------------------------------------------------------------------------------

    async def _targets(self, req: Request, config: dict[str, Any], warnings: list[str]) -> dict[str, list[str]]:
        targets: dict[str, list[str]] = {}
        for name in await req.storage.list("role/"):
            role = await load_role(req.storage, name)
            if role is None or IAM_USER not in role.credential_types:
                continue
            path = role.user_path or "/"
            prefix = constant_prefix(config.get("username_template", ""), name)
            if path == "/" and not prefix:
                warnings.append(f'role "{name}": its user names have no fixed beginning and its user_path is /, '
                                "so any IAM user could be its: not searched")
                continue
            targets.setdefault(path, [])
            if prefix not in targets[path]:
                targets[path].append(prefix)
        return targets

    async def _known(self, req: Request) -> set[str]:
        known = await self.aws.live.usernames(req.storage)
        for item in await wal.entries(req.storage, created_before=float("inf")):
            if item.kind == WAL_KIND and item.data.get("username"):
                known.add(item.data["username"])
        for name in await req.storage.list(STATIC_ROLE):
            static = await req.storage.get_json(STATIC_ROLE + name)
            if static:
                known.add(static["username"])
        known |= {a.username for a in self.aws.abandoned}
        return known

    async def find(self, req: Request, older_than: int, warnings: list[str]) -> list[dict[str, Any]]:
        config = await self.aws.config(req.storage)
        targets = await self._targets(req, config, warnings)
        if not targets:
            if not warnings:
                warnings.append("no iam_user role: no IAM user looks like coffer's")
            return []
        since = await self.aws.live.since(req.storage)
        try:
            seen = await self.aws.runtime.call(ISSUE, self._candidates, config, targets)
        except StepError as exc:
            raise client_error(exc, ISSUE) from None
        known = await self._known(req)  # read after listing IAM: see the module's docstring
        now = time.time()
        orphans, predating = [], 0
        for user in seen["users"]:
            if user["name"] in known or user["name"] == seen["me"]:
                continue
            if user["created"] < since:
                predating += 1
                continue
            if now - user["created"] < older_than:
                continue
            orphans.append({**user, "age": int(now - user["created"])})
        if predating:
            warnings.append(f"{predating} IAM user(s) that look like coffer's were created before coffer began "
                            f"indexing the users it makes ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))})"
                            " and are not listed")
        if orphans:
            details = await self.aws.runtime.call(ISSUE, self._attachments, config, [o["name"] for o in orphans])
            for orphan in orphans:
                orphan.update(details.get(orphan["name"], {}))
        return orphans

    # -- paths -------------------------------------------------------------------------------------------

    async def list_orphans(self, req: Request, d: FieldData) -> Response:
        warnings: list[str] = []
        orphans = await self.find(req, d["older_than"], warnings)
        info = {}
        for orphan in orphans:
            entry = dict(orphan)
            name = entry.pop("name")
            entry["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["created"]))
            info[name] = entry
        return Response(data={"keys": sorted(info), "key_info": info}, warnings=warnings)

    async def tidy(self, req: Request, d: FieldData) -> Response:
        warnings: list[str] = []
        dry_run = d["dry_run"]
        orphans = await self.find(req, d["older_than"], warnings)
        deleted: list[str] = []
        failed: dict[str, str] = {}
        if not dry_run and orphans:
            config = await self.aws.config(req.storage)
            for orphan in orphans:
                name = orphan["name"]
                if name in await self._known(req):  # became known meanwhile: not an orphan after all
                    continue
                try:
                    await self.aws.runtime.call(REVOKE, self._delete, config, name)
                except UserGone:
                    pass
                except StepError as exc:
                    failed[name] = str(client_error(exc, REVOKE))
                    continue
                deleted.append(name)
        return Response(data={"dry_run": dry_run, "orphans": [o["name"] for o in orphans], "deleted": deleted,
                              "failed": failed}, warnings=warnings)

    def paths(self) -> list[Path]:
        older = Field(D, "Only users created at least this long ago (e.g. 1h).", default=0)
        return [
            Path("orphans/?", {"list": self.list_orphans}, {"older_than": older},
                 synopsis="IAM users that look like coffer's but have no lease or write-ahead entry."),
            Path("tidy", {"write": self.tidy}, {
                "dry_run": Field(B, "Only report what would be deleted (the default).", default=True),
                "older_than": older,
            }, synopsis="Delete the orphaned IAM users (dry_run=false), with the complete teardown."),
        ]


__all__ = ["Orphans", "live_index"]
