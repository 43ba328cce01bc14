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
from coffer.engines.aws.clients import Clients, call, error_code, error_message, is_throttle, sts_with_key
from coffer.engines.aws.roles import Role, load_role
from coffer.engines.aws.usernames import iam_username
from coffer.errors import InvalidRequest, RetryLater, UpstreamError
from coffer.framework import wal
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response, Secret

SECRET_TYPE = "access_keys"
WAL_KIND = "iam_user"
#: IAM is eventually consistent: a user missing this soon after creation may yet appear.
CONSISTENCY_WINDOW = 300.0
#: Users a failed teardown attempt saw (so a later "no such user" means it is gone).
SEEN_PREFIX = "teardown-seen/"


#: Listings every IAM endpoint has; the others may be missing from IAM look-alikes.
_CORE_LISTINGS = {"list_access_keys", "list_user_policies", "list_attached_user_policies", "list_groups_for_user"}


class StepError(Exception):
    """One AWS call of a multi-step operation failed."""

    def __init__(self, what: str, exc: Exception) -> None:
        super().__init__(f"{what}: {error_message(exc)}")
        self.cause = exc
        #: During a teardown: the user was seen to exist before the failure.
        self.user_seen = False


class UserGone(Exception):
    """The IAM user does not exist."""


def _step(what: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise StepError(what, exc) from exc


def create_user_sync(iam: Any, username: str, role_name: str, role: Role, tags: dict[str, str]) -> dict[str, str]:
    """Every AWS call of issuing, in order (runs in the AWS thread pool)."""
    params: dict[str, Any] = {"UserName": username}
    if role.user_path:
        params["Path"] = role.user_path
    if role.permissions_boundary_arn:
        params["PermissionsBoundary"] = role.permissions_boundary_arn
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    _step("Error creating IAM user", iam.create_user, **params)
    for arn in role.policy_arns:
        _step("Error attaching user policy", iam.attach_user_policy, UserName=username, PolicyArn=arn)
    if role.policy_document:
        _step("Error putting user policy", iam.put_user_policy, UserName=username, PolicyName=role_name,
              PolicyDocument=role.policy_document)
    for group in role.iam_groups:
        _step("Error adding user to group", iam.add_user_to_group, UserName=username, GroupName=group)
    key = _step("Error creating access keys", iam.create_access_key, UserName=username)["AccessKey"]
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


def delete_user_sync(iam: Any, username: str, unsupported: set[str] | None = None) -> None:
    """Tear the user down completely; raises UserGone if it does not exist.

    ``unsupported`` remembers listings the endpoint does not implement (some
    IAM-compatible endpoints lack e.g. service-specific credentials); they
    are skipped from then on.
    """
    refused: list[str] = []  # permissions the root credentials lack
    left: list[str] = []  # what may still hang off the user because of that
    unsupported = unsupported if unsupported is not None else set()
    seen = False

    def items(kind: Attachment) -> list[Any]:
        nonlocal seen
        if kind.listing in unsupported:
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
            unsupported.add(kind.listing)
            return []
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                raise UserGone(username) from exc
            if code in _DENIED:
                refused.append(kind.list_permission)
                left.append(f"{kind.what}s")
                return []
            raise StepError(f"Error listing the {kind.what}s of user {username}", exc) from exc

    def remove(permission: str, what: str, fn: Any, **params: Any) -> None:
        try:
            fn(UserName=username, **params)
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return
            if code in _DENIED:
                refused.append(permission)
                left.append(what)
                return
            raise StepError(f"Error removing {what} from user {username}", exc) from exc

    try:
        for kind in ATTACHMENTS:
            for item in items(kind):
                ident = item if isinstance(item, str) else item[kind.id_param]
                remove(kind.removal_permission, f"{kind.what} {ident}", getattr(iam, kind.removal),
                       **{kind.id_param: ident})
        remove("iam:DeleteLoginProfile", "login profile", iam.delete_login_profile)
        try:
            iam.delete_user(UserName=username)
        except Exception as exc:
            code = error_code(exc)
            if code == "NoSuchEntity":
                return
            if code == "DeleteConflict" and refused:
                raise StepError(
                    f"Error deleting IAM user {username}: it still has attachments coffer could not remove "
                    f"({', '.join(left)}) because the root credentials lack {', '.join(sorted(set(refused)))}",
                    exc) from exc
            raise StepError(f"Error deleting IAM user {username}", exc) from exc
    except StepError as exc:
        exc.user_seen = seen
        raise


def _upstream(exc: StepError) -> Exception:
    """The error a caller sees for a failed AWS step: AWS's refusal is a 400, its trouble a 502."""
    if is_throttle(exc.cause):
        return UpstreamError(f"{exc} (AWS rate-limited the call; retry shortly)")
    # botocore's connection errors carry ``response = None``: no HTTP status, so AWS's trouble (502).
    response = getattr(exc.cause, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if error_code(exc.cause) and status < 500:
        return InvalidRequest(str(exc))
    return UpstreamError(str(exc))


async def wait_until_usable(config: dict[str, Any], keys: dict[str, str], limit: int) -> bool:
    """Poll sts:GetCallerIdentity (which needs no permission) with the new key until AWS accepts it.

    New IAM keys are refused with InvalidClientTokenId for a few seconds after
    they are made (vault#687); a role may ask coffer to hand keys out only once
    they work. Answers False if they still did not after ``limit`` seconds.
    """
    sts = await call(sts_with_key, config, keys["access_key"], keys["secret_key"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    delay = 0.25
    while True:
        try:
            await call(sts.get_caller_identity)
            return True
        except Exception:  # refused (not yet known) or a passing error: try again until the deadline
            if loop.time() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class IamUsers:
    """The iam_user credential type of one mount."""

    def __init__(self) -> None:
        self.clients = Clients()
        self.unsupported: set[str] = set()

    async def issue(self, req: Request, d: FieldData) -> Response:
        name = d["name"]
        role = await load_role(req.storage, name)
        if role is None:
            raise InvalidRequest(f'Role "{name}" not found')
        config = await cfg.read_root(req.storage)
        lease = await cfg.read_lease(req.storage)
        display = req.token.display_name if req.token else "token"
        username = iam_username(config.get("username_template", ""), display, name)
        lease_id = f"{req.path.rstrip('/')}/{uuid.uuid4()}"
        tags = dict(role.iam_tags)
        if config.get("tag_users"):
            tags.update({"coffer-mount": req.mount_point, "coffer-role": name, "coffer-lease-id": lease_id})
        wal_id = await wal.put(req.storage, WAL_KIND, {"username": username})
        iam = self.clients.iam(config)
        try:
            keys = await call(create_user_sync, iam, username, name, role, tags)
        except StepError as exc:
            await self._undo(iam, req, username, wal_id)
            raise _upstream(exc) from None
        warnings = []
        if role.wait_for_usable_key and not await wait_until_usable(config, keys, role.wait_for_usable_key):
            warnings.append(f"AWS did not accept the new key within {role.wait_for_usable_key}s; it usually "
                            "does within seconds, so retry calls refused with InvalidClientTokenId")
        mount_default = req.mount.tuned_default_lease_ttl
        ttl = lease["lease"] if lease else (mount_default or cfg.DEFAULT_LEASE)
        max_ttl = lease["lease_max"] if lease else 0
        return Response(
            warnings=warnings,
            data={**keys, "session_token": None, "security_token": None},
            secret=Secret(type=SECRET_TYPE, ttl=ttl, max_ttl=max_ttl, renewable=True, wal_id=wal_id,
                          lease_id=lease_id, metric_role=name,
                          internal={"username": username, "role": name, "created": time.time(),
                                    "is_sts": False}),
        )

    async def _undo(self, iam: Any, req: Request, username: str, wal_id: str) -> None:
        """Remove a half-made user now; if that fails too, the WAL rollback retries later."""
        try:
            await call(delete_user_sync, iam, username, self.unsupported)
        except UserGone:
            pass
        except Exception:
            return
        await wal.delete(req.storage, wal_id)

    async def revoke(self, req: Request, internal: dict[str, Any]) -> dict[str, str]:
        iam = self.clients.iam(await cfg.read_root(req.storage))
        username = internal["username"]
        seen_key = f"{SEEN_PREFIX}{username}"
        try:
            await call(delete_user_sync, iam, username, self.unsupported)
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
            raise _upstream(exc) from None
        if await req.storage.get(seen_key) is not None:
            await req.storage.delete(seen_key)
        return {"iam_user_deleted": username}  # for the server's log line about the revocation

    async def renew(self, req: Request, internal: dict[str, Any]) -> Response:
        lease = await cfg.read_lease(req.storage)
        mount_default = req.mount.tuned_default_lease_ttl
        ttl = lease["lease"] if lease else (mount_default or cfg.DEFAULT_LEASE)
        return Response(secret=Secret(type=SECRET_TYPE, ttl=ttl))

    async def rollback(self, req: Request, kind: str, data: dict[str, Any]) -> None:
        """Delete a user whose WAL entry outlived its request (a crash or a failed undo)."""
        iam = self.clients.iam(await cfg.read_root(req.storage))
        try:
            await call(delete_user_sync, iam, data["username"], self.unsupported)
        except UserGone:
            return
        except StepError as exc:
            raise _upstream(exc) from None
