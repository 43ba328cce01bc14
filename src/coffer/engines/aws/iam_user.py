"""Issuing and tearing down IAM users, crash-safely.

Issue: a WAL entry naming the user is written before the first AWS call;
the user is created with its path, permissions boundary and tags in one
call, then policies, groups and an access key follow. The WAL entry is
removed in the same storage batch that records the lease (core does that),
so at every instant either a lease or a WAL entry knows about the user.

Teardown deletes everything that can hang off a user (keys, inline and
attached policies, groups, login profile, MFA devices, SSH keys, signing
certificates, service-specific credentials), paginating every listing, then
the user. Steps the root credentials may not perform are skipped; if IAM
then refuses DeleteUser, the error names what is left and what is missing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.parsers import ResponseParserError

from coffer.engines.aws import config as cfg
from coffer.engines.aws import live
from coffer.engines.aws.access_keys import create_access_key
from coffer.engines.aws.clients import error_code
from coffer.engines.aws.context import Abandoned, Aws, Skips
from coffer.engines.aws.failures import StepError, client_error, step
from coffer.engines.aws.roles import Role, load_role
from coffer.engines.aws.runtime import CONNECT_TIMEOUT, ISSUE, ISSUE_DEADLINE, READ_TIMEOUT, REVOKE
from coffer.engines.aws.usernames import has_randomness, iam_username
from coffer.errors import CofferError, RetryLater, Throttled
from coffer.framework import wal
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response, Secret
from coffer.storage.base import Delete, Op

SECRET_TYPE = "access_keys"
WAL_KIND = "iam_user"
#: IAM is eventually consistent: a user missing this soon after creation may yet appear.
CONSISTENCY_WINDOW = 300.0
#: Users a failed teardown attempt saw (so a later "no such user" means it is gone).
SEEN_PREFIX = "teardown-seen/"
#: An abandoned issue's worker thread is done by then (three attempts, each bounded by the SDK timeouts).
ABANDONED_SETTLE = 3 * (CONNECT_TIMEOUT + READ_TIMEOUT) + 5
ABANDONED_PER_TICK = 10


#: Listings every IAM endpoint has; the others may be missing from IAM look-alikes.
_CORE_LISTINGS = {"list_access_keys", "list_user_policies", "list_attached_user_policies", "list_groups_for_user"}


class NotOurs(StepError):
    """CreateUser refused a name that an IAM user (not made by this request) already has."""


class UserGone(Exception):
    """The IAM user does not exist."""


def create_user_sync(iam: Any, username: str, role_name: str, role: Role, tags: dict[str, str],
                     unique_name: bool = False) -> dict[str, str]:
    """Every AWS call of issuing, in order (runs in the AWS thread pool)."""
    params: dict[str, Any] = {"UserName": username}
    if role.user_path:
        params["Path"] = role.user_path
    if role.permissions_boundary_arn:
        params["PermissionsBoundary"] = role.permissions_boundary_arn
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    try:
        step("Error creating IAM user", iam.create_user, **params)
    except StepError as exc:
        # A name with random characters in it that exists is this user, made by an earlier attempt of this
        # very call whose answer was lost (the SDK retried): carry on with it. Any other name may be someone
        # else's user, which is never touched.
        if error_code(exc.cause) != "EntityAlreadyExists":
            raise
        if not unique_name:
            raise NotOurs("Error creating IAM user", exc.cause) from None
    for arn in role.policy_arns:
        step("Error attaching user policy", iam.attach_user_policy, UserName=username, PolicyArn=arn)
    if role.policy_document:
        step("Error putting user policy", iam.put_user_policy, UserName=username, PolicyName=role_name,
              PolicyDocument=role.policy_document)
    for group in role.iam_groups:
        step("Error adding user to group", iam.add_user_to_group, UserName=username, GroupName=group)
    key = create_access_key(iam, username, "Error creating access keys")
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}


@dataclass(frozen=True)
class Attachment:
    """One kind of thing that can hang off an IAM user, and how to take it off."""

    what: str
    listing: str  # the SDK's list method
    key: str  # where its answer holds the items
    list_permission: str
    removal: str  # the SDK's remove method
    removal_permission: str
    id_param: str  # the item's id, as the remove method's parameter


ATTACHMENTS = (
    Attachment("access key", "list_access_keys", "AccessKeyMetadata", "iam:ListAccessKeys",
               "delete_access_key", "iam:DeleteAccessKey", "AccessKeyId"),
    Attachment("inline policy", "list_user_policies", "PolicyNames", "iam:ListUserPolicies",
               "delete_user_policy", "iam:DeleteUserPolicy", "PolicyName"),
    Attachment("managed policy", "list_attached_user_policies", "AttachedPolicies", "iam:ListAttachedUserPolicies",
               "detach_user_policy", "iam:DetachUserPolicy", "PolicyArn"),
    Attachment("group", "list_groups_for_user", "Groups", "iam:ListGroupsForUser",
               "remove_user_from_group", "iam:RemoveUserFromGroup", "GroupName"),
    Attachment("MFA device", "list_mfa_devices", "MFADevices", "iam:ListMFADevices",
               "deactivate_mfa_device", "iam:DeactivateMFADevice", "SerialNumber"),
    Attachment("SSH key", "list_ssh_public_keys", "SSHPublicKeys", "iam:ListSSHPublicKeys",
               "delete_ssh_public_key", "iam:DeleteSSHPublicKey", "SSHPublicKeyId"),
    Attachment("signing certificate", "list_signing_certificates", "Certificates", "iam:ListSigningCertificates",
               "delete_signing_certificate", "iam:DeleteSigningCertificate", "CertificateId"),
    Attachment("service credential", "list_service_specific_credentials", "ServiceSpecificCredentials",
               "iam:ListServiceSpecificCredentials", "delete_service_specific_credential",
               "iam:DeleteServiceSpecificCredential", "ServiceSpecificCredentialId"),
)
_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


_LOGIN_PROFILE = "delete_login_profile"


def delete_user_sync(iam: Any, username: str, skips: Skips | None = None) -> None:
    """Tear the user down completely; raises UserGone if it does not exist."""
    skips = skips if skips is not None else Skips()
    try:
        _delete_user(iam, username, skips, full=False)
    except _SkippedTooMuch:
        _delete_user(iam, username, skips, full=True)


class _SkippedTooMuch(Exception):
    """DeleteUser found attachments left after a teardown that skipped calls refused earlier."""


def _delete_user(iam: Any, username: str, skips: Skips, full: bool) -> None:
    refused: list[str] = []  # permissions the root credentials lack
    left: list[str] = []  # what may still hang off the user because of that
    skipped = False
    seen = False

    def skip(call: str) -> bool:
        nonlocal skipped
        if call in skips.unsupported:
            return True
        if not full and skips.recently_refused(call):
            skipped = True
            return True
        return False

    def items(kind: Attachment) -> list[Any]:
        nonlocal seen
        if skip(kind.listing):
            return []
        try:
            if iam.can_paginate(kind.listing):
                pages = iam.get_paginator(kind.listing).paginate(UserName=username)
                found = [item for page in pages for item in page[kind.key]]
            else:
                found = list(getattr(iam, kind.listing)(UserName=username)[kind.key])
            seen = True  # a listing answered: the user exists
            return found
        except ResponseParserError:
            if kind.listing in _CORE_LISTINGS:
                raise
            skips.unsupported.add(kind.listing)
            return []
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                raise UserGone(username) from exc
            if code in _DENIED:
                skips.refused(kind.listing)
                refused.append(kind.list_permission)
                left.append(f"{kind.what}s")
                return []
            raise StepError(f"Error listing the {kind.what}s of user {username}", exc) from exc

    def remove(permission: str, what: str, fn: Any, **params: Any) -> bool:
        """Answers whether the call was refused."""
        try:
            fn(UserName=username, **params)
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return False
            if code in _DENIED:
                refused.append(permission)
                left.append(what)
                return True
            raise StepError(f"Error removing {what} from user {username}", exc) from exc
        return False

    try:
        for kind in ATTACHMENTS:
            for item in items(kind):
                ident = item if isinstance(item, str) else item[kind.id_param]
                remove(kind.removal_permission, f"{kind.what} {ident}", getattr(iam, kind.removal),
                       **{kind.id_param: ident})
        if not skip(_LOGIN_PROFILE) and remove("iam:DeleteLoginProfile", "login profile", iam.delete_login_profile):
            skips.refused(_LOGIN_PROFILE)
        try:
            iam.delete_user(UserName=username)
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return
            if code == "DeleteConflict" and skipped:
                raise _SkippedTooMuch() from exc
            if code == "DeleteConflict" and refused:
                raise StepError(
                    f"Error deleting IAM user {username}: it still has attachments coffer could not remove "
                    f"({', '.join(left)}) because the root credentials lack {', '.join(sorted(set(refused)))}",
                    exc) from exc
            raise StepError(f"Error deleting IAM user {username}", exc) from exc
    except StepError as exc:
        exc.user_seen = seen
        raise


async def wait_until_usable(aws: Aws, config: dict[str, Any], keys: dict[str, str], limit: int) -> bool:
    """Poll sts:GetCallerIdentity (which needs no permission) with the new key until AWS accepts it.

    New IAM keys are refused with InvalidClientTokenId for a few seconds after
    they are made (vault#687); a role may ask coffer to hand keys out only once
    they work. Answers False if they still did not after ``limit`` seconds.
    """
    def check() -> bool:
        sts = aws.clients.with_keys("sts", config, keys["access_key"], keys["secret_key"])
        try:
            sts.get_caller_identity()
            return True
        except Exception:  # refused (not yet known) or a passing error: try again until the deadline
            return False

    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    delay = 0.25
    while True:
        if await aws.runtime.call(ISSUE, check):
            return True
        if loop.time() + delay > deadline:
            return False
        await aws.runtime.sleep(delay)
        delay = min(delay * 2, 2.0)


def lease_ttls(role: Role, lease: dict[str, int] | None, mount_default: int, asked: int,
               warnings: list[str]) -> tuple[int, int]:
    """(ttl, max_ttl) of an IAM user's lease: the read's ttl, the role's, config/lease, the mount's."""
    max_ttl = role.max_ttl or (lease["lease_max"] if lease else 0)
    ttl = asked or role.ttl or (lease["lease"] if lease else 0) or mount_default or cfg.DEFAULT_LEASE
    if max_ttl and ttl > max_ttl:
        source = "the role's max_ttl" if role.max_ttl else "config/lease's lease_max"
        warnings.append(f"ttl of {ttl}s was clamped to {max_ttl}s by {source}")
        ttl = max_ttl
    return ttl, max_ttl


class IamUsers:
    """The iam_user credential type of one mount."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws

    def _create(self, config: dict[str, Any], username: str, role_name: str, role: Role,
                tags: dict[str, str]) -> dict[str, str]:
        return create_user_sync(self.aws.clients.iam(config), username, role_name, role, tags,
                                has_randomness(config.get("username_template", "")))

    def _delete(self, config: dict[str, Any], username: str) -> None:
        delete_user_sync(self.aws.clients.iam(config), username, self.aws.teardown_skips(config))

    async def issue(self, req: Request, d: FieldData, name: str, role: Role) -> Response:
        aws = self.aws
        config = await aws.config(req.storage, for_issue=True)
        lease = await cfg.read_lease(req.storage)
        warnings: list[str] = []
        ttl, max_ttl = lease_ttls(role, lease, req.mount.tuned_default_lease_ttl, d["ttl"], warnings)
        display = req.token.display_name if req.token else "token"
        username = iam_username(config.get("username_template", ""), display, name)
        lease_id = f"{req.path.rstrip('/')}/{uuid.uuid4()}"
        tags = dict(role.iam_tags)
        if config.get("tag_users"):
            tags.update({"coffer-mount": req.mount_point, "coffer-role": name, "coffer-lease-id": lease_id})
        aws.runtime.admit(ISSUE)
        await aws.live.since(req.storage)
        key = live.user_key(name, username)
        wal_id = await wal.put(req.storage, WAL_KIND, {"username": username, "role": name})
        if role.max_live_credentials:
            try:
                await aws.live.reserve(req.storage, name, role.max_live_credentials, key)
            except Throttled:
                await wal.delete(req.storage, wal_id)
                raise
        try:
            keys = await aws.runtime.call(ISSUE, self._create, config, username, name, role, tags,
                                          deadline=ISSUE_DEADLINE)
        except asyncio.CancelledError:
            aws.abandoned.append(Abandoned(wal_id, username, name, key))
            raise
        except NotOurs as exc:  # nothing was made: forget the intent, never touch that user
            await req.storage.batch([Delete(key), Delete(wal.WAL_PREFIX + wal_id)])
            raise client_error(exc, ISSUE) from None
        except StepError as exc:
            await self._undo(req, config, username, wal_id, key)
            raise client_error(exc, ISSUE) from None
        except CofferError:  # the runtime refused (server stopping): the WAL entry stays for the rollback
            raise
        if role.wait_for_usable_key and not await wait_until_usable(aws, config, keys, role.wait_for_usable_key):
            warnings.append(f"AWS did not accept the new key within {role.wait_for_usable_key}s; it usually "
                            "does within seconds, so retry calls refused with InvalidClientTokenId")
        created = time.time()
        secret = Secret(type=SECRET_TYPE, ttl=ttl, max_ttl=max_ttl, renewable=True, wal_id=wal_id,
                        lease_id=lease_id, metric_role=name,
                        internal={"username": username, "role": name, "created": created, "is_sts": False})
        secret.commit_ops.extend(aws.live.confirm_ops(req.storage, key, {"created": created, "lease_id": lease_id}))
        return Response(warnings=warnings, data={**keys, "session_token": None, "security_token": None},
                        secret=secret)

    async def _undo(self, req: Request, config: dict[str, Any], username: str, wal_id: str, key: str) -> None:
        """Remove a half-made user now; if that fails too, the WAL rollback retries later."""
        try:
            await self.aws.runtime.call(REVOKE, self._delete, config, username)
        except UserGone:
            pass
        except Exception:
            return
        await req.storage.batch([Delete(key), Delete(wal.WAL_PREFIX + wal_id)])

    async def revoke(self, req: Request, internal: dict[str, Any]) -> dict[str, str]:
        config = await self.aws.config(req.storage)
        username = internal["username"]
        seen_key = f"{SEEN_PREFIX}{username}"
        try:
            await self.aws.runtime.call(REVOKE, self._delete, config, username)
        except UserGone:
            # Missing right after creation may only mean "not visible yet"; but once an
            # earlier attempt saw the user, missing means an answer to DeleteUser was lost.
            young = time.time() - internal.get("created", 0) < CONSISTENCY_WINDOW
            if young and await req.storage.get(seen_key) is None:
                raise RetryLater(f"IAM user {username} is not visible yet (IAM is eventually "
                                 "consistent); retrying") from None
        except StepError as exc:
            if exc.user_seen:
                await req.storage.put(seen_key, b"1")
            raise client_error(exc, REVOKE) from None
        ops: list[Op] = [Delete(seen_key)]
        if internal.get("role"):
            ops.append(Delete(live.user_key(internal["role"], username)))
        await req.storage.batch(ops)
        return {"iam_user_deleted": username}  # for the server's log line about the revocation

    async def renew(self, req: Request, internal: dict[str, Any]) -> Response:
        lease = await cfg.read_lease(req.storage)
        role = await load_role(req.storage, internal.get("role", "")) if internal.get("role") else None
        ttl = (role.ttl if role else 0) or (lease["lease"] if lease else 0) or req.mount.tuned_default_lease_ttl \
            or cfg.DEFAULT_LEASE
        return Response(secret=Secret(type=SECRET_TYPE, ttl=ttl))

    async def rollback(self, req: Request, kind: str, data: dict[str, Any]) -> None:
        """Delete a user whose WAL entry outlived its request (a crash or a failed undo)."""
        config = await self.aws.config(req.storage)
        try:
            await self.aws.runtime.call(REVOKE, self._delete, config, data["username"])
        except UserGone:
            pass
        except StepError as exc:
            raise client_error(exc, REVOKE) from None
        if data.get("role"):
            await req.storage.delete(live.user_key(data["role"], data["username"]))

    async def tidy_abandoned(self, req: Request) -> None:
        """Remove what issues given up by their clients left behind (once their threads are surely done)."""
        due = [a for a in self.aws.abandoned if time.time() - a.at > ABANDONED_SETTLE][:ABANDONED_PER_TICK]
        if not due:
            return
        config = await self.aws.config(req.storage)
        for item in due:
            try:
                await self.aws.runtime.call(REVOKE, self._delete, config, item.username)
            except UserGone:
                pass
            except (StepError, CofferError):
                return  # AWS is in trouble: next tick (the WAL rollback covers these too)
            await req.storage.batch([Delete(item.live_key), Delete(wal.WAL_PREFIX + item.wal_id)])
            self.aws.abandoned.remove(item)
