"""STS credentials: ``assumed_role`` (AssumeRole), ``federation_token`` (GetFederationToken) and
``session_token`` (GetSessionToken).

Their leases are not renewable and last exactly as long as AWS's credentials (the lease TTL is taken from
the Expiration AWS answers); revoking one only forgets it, as AWS cannot end a session. When the asked TTL
is clamped, a warning names the limit that applied: the role's ``max_sts_ttl``, AWS's maximum for the type,
AWS's one-hour limit on role chaining (when coffer's own credentials are temporary), the IAM role's
``MaxSessionDuration``, or the mount's ``max_lease_ttl``.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import unquote

import orjson

from coffer.durations import format_duration
from coffer.engines.aws import live
from coffer.engines.aws.clients import error_code, error_message
from coffer.engines.aws.context import Aws
from coffer.engines.aws.failures import StepError, client_error, step
from coffer.engines.aws.roles import ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN, STS_MIN_TTL, Role
from coffer.engines.aws.runtime import ISSUE, ISSUE_DEADLINE
from coffer.engines.aws.usernames import sts_name
from coffer.errors import InvalidRequest, Throttled
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response, Secret

SECRET_TYPE = "access_keys"
DEFAULT_TTL = 3600
CHAINING_LIMIT = 3600
#: AWS's longest credentials of each type.
AWS_MAX = {ASSUMED_ROLE: 43200, FEDERATION_TOKEN: 129600, SESSION_TOKEN: 129600}
ACTIONS = {ASSUMED_ROLE: "AssumeRole", FEDERATION_TOKEN: "GetFederationToken", SESSION_TOKEN: "GetSessionToken"}
#: How long a role's MaxSessionDuration, once read, is trusted.
MAX_SESSION_CACHE = 300.0
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_MFA_CODE = re.compile(r"^\d{6}$")


def _statements(doc: Any) -> list[Any]:
    if isinstance(doc, str):
        doc = orjson.loads(unquote(doc))
    found = doc.get("Statement", []) if isinstance(doc, dict) else []
    return found if isinstance(found, list) else [found]


def group_policies_sync(iam: Any, groups: list[str]) -> tuple[list[Any], list[str]]:
    """The inline policies' statements and the managed policy ARNs of ``groups``."""
    statements: list[Any] = []
    arns: list[str] = []
    for group in groups:
        names = [n for page in step(f"Error listing the policies of group {group}",
                                    lambda **kw: list(iam.get_paginator("list_group_policies").paginate(**kw)),
                                    GroupName=group) for n in page["PolicyNames"]]
        for name in names:
            doc = step(f"Error reading policy {name} of group {group}", iam.get_group_policy, GroupName=group,
                       PolicyName=name)["PolicyDocument"]
            statements += _statements(doc)
        pages = step(f"Error listing the managed policies of group {group}",
                     lambda **kw: list(iam.get_paginator("list_attached_group_policies").paginate(**kw)),
                     GroupName=group)
        arns += [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]
    return statements, arns


class Sts:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self._max_session: dict[str, tuple[float, int]] = {}

    # -- the calls (worker threads) ----------------------------------------------------

    def _policies(self, config: dict[str, Any], role: Role) -> tuple[str, list[str]]:
        """The session policy (JSON) and managed policy ARNs: the role's, with its groups' merged in."""
        statements = _statements(role.policy_document) if role.policy_document else []
        arns = list(role.policy_arns)
        if role.iam_groups:
            group_statements, group_arns = group_policies_sync(self.aws.clients.iam(config), role.iam_groups)
            statements += group_statements
            arns += [a for a in group_arns if a not in arns]
        if not statements:
            return "", arns
        if not role.iam_groups:
            return role.policy_document, arns
        return orjson.dumps({"Version": "2012-10-17", "Statement": statements}).decode(), arns

    def _role_max_session(self, config: dict[str, Any], role_arn: str) -> int:
        """The IAM role's MaxSessionDuration (0 when it cannot be read, e.g. in another account)."""
        cached = self._max_session.get(role_arn)
        if cached and time.monotonic() - cached[0] < MAX_SESSION_CACHE:
            return cached[1]
        try:
            found = self.aws.clients.iam(config).get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
            seconds = int(found.get("MaxSessionDuration") or 3600) if found.get("Arn") == role_arn else 0
        except Exception:  # not allowed, or not this account's role: AWS's own refusal tells, if any
            seconds = 0
        self._max_session[role_arn] = (time.monotonic(), seconds)
        return seconds

    def _prepare(self, config: dict[str, Any], role: Role, kind: str, role_arn: str, asked: int) -> dict[str, Any]:
        policy, arns = self._policies(config, role) if kind != SESSION_TOKEN else ("", [])
        # A role's MaxSessionDuration is at least an hour: it matters only for longer asks.
        wanted = kind == ASSUMED_ROLE and asked > 3600
        return {"policy": policy, "arns": arns, "temporary": self.aws.clients.root_is_temporary(config),
                "max_session": self._role_max_session(config, role_arn) if wanted else 0}

    @staticmethod
    def _prepared_here(config: dict[str, Any], role: Role, kind: str, asked: int) -> dict[str, Any] | None:
        """What _prepare answers, when it needs no AWS call and no credential lookup (the common case)."""
        if role.iam_groups or (kind == ASSUMED_ROLE and asked > 3600):
            return None
        if not (config.get("access_key") and config.get("secret_key")):
            return None  # the credential chain: is it temporary?
        if config.get("role_arn") or config["access_key"].startswith("ASIA"):
            return None
        policy = role.policy_document if kind != SESSION_TOKEN else ""
        arns = list(role.policy_arns) if kind != SESSION_TOKEN else []
        return {"policy": policy, "arns": arns, "temporary": "", "max_session": 0}

    def _get(self, config: dict[str, Any], kind: str, params: dict[str, Any]) -> dict[str, Any]:
        operation = {ASSUMED_ROLE: "assume_role", FEDERATION_TOKEN: "get_federation_token",
                     SESSION_TOKEN: "get_session_token"}[kind]
        return step(f"Error calling sts:{ACTIONS[kind]}", lambda: self.aws.clients.sts_call(config, operation,
                                                                                            **params))

    # -- issuing ---------------------------------------------------------------------------

    async def issue(self, req: Request, d: FieldData, name: str, role: Role, kind: str) -> Response:
        aws = self.aws
        config = await aws.config(req.storage, for_issue=True)
        role_arn = self._role_arn(d, name, role) if kind == ASSUMED_ROLE else ""
        self._check_mfa(d, name, role)
        session_name = d["role_session_name"]
        if session_name and not _SESSION_NAME.match(session_name):
            raise InvalidRequest("role_session_name must be 2-64 characters of letters, digits and +=,.@_-")
        display = req.token.display_name if req.token else "token"
        template = config.get("username_template", "")
        aws.runtime.admit(ISSUE)
        asked = d["ttl"] or role.default_sts_ttl or DEFAULT_TTL
        prepared = self._prepared_here(config, role, kind, asked)
        if prepared is None:
            try:
                prepared = await aws.runtime.call(ISSUE, self._prepare, config, role, kind, role_arn, asked,
                                                  deadline=ISSUE_DEADLINE)
            except StepError as exc:
                raise client_error(exc, ISSUE) from None
        if prepared["temporary"] and kind in (FEDERATION_TOKEN, SESSION_TOKEN):
            raise InvalidRequest(self._temporary_message(kind, prepared["temporary"]))
        warnings: list[str] = []
        ttl = self._ttl(req, d, role, kind, prepared, warnings)

        params: dict[str, Any] = {"DurationSeconds": ttl}
        if kind == ASSUMED_ROLE:
            params.update(RoleArn=role_arn, RoleSessionName=session_name or sts_name(template, display, name, 64))
            if role.external_id:
                params["ExternalId"] = role.external_id
            if role.session_tags:
                params["Tags"] = [{"Key": k, "Value": v} for k, v in role.session_tags.items()]
        elif kind == FEDERATION_TOKEN:
            params["Name"] = (session_name or sts_name(template, display, name, 32))[:32]
        if kind != SESSION_TOKEN:
            if prepared["policy"]:
                params["Policy"] = prepared["policy"]
            if prepared["arns"]:
                if len(prepared["arns"]) > 10:
                    raise InvalidRequest(f"role \"{name}\" and its iam_groups name {len(prepared['arns'])} managed "
                                         "policies; AWS accepts at most 10 as session policies")
                params["PolicyArns"] = [{"arn": a} for a in prepared["arns"]]
        if role.mfa_serial_number:
            params.update(SerialNumber=role.mfa_serial_number, TokenCode=d["mfa_code"])

        live_key = ""
        if role.max_live_credentials:
            live_key = live.sts_key(name, time.time() + live.RESERVATION)
            await aws.live.reserve(req.storage, name, role.max_live_credentials, live_key)
        try:
            answer = await self._call(config, kind, params, warnings)
        except BaseException:
            if live_key:
                await req.storage.delete(live_key)
            raise
        creds = answer["Credentials"]
        expires = creds["Expiration"].timestamp()
        lease_ttl = max(1, int(expires - time.time()))
        data: dict[str, Any] = {
            "access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
            "session_token": creds["SessionToken"], "security_token": creds["SessionToken"],
            "ttl": lease_ttl, "expiration": creds["Expiration"].isoformat(),
        }
        internal: dict[str, Any] = {"is_sts": True, "role": name, "credential_type": kind}
        if kind == ASSUMED_ROLE:
            data["arn"] = answer["AssumedRoleUser"]["Arn"]
            internal["arn"] = data["arn"]
        elif kind == FEDERATION_TOKEN:
            internal["arn"] = answer.get("FederatedUser", {}).get("Arn", "")
        secret = Secret(type=SECRET_TYPE, ttl=lease_ttl, max_ttl=lease_ttl, renewable=False, internal=internal,
                        metric_role=name)
        if live_key:
            final = live.sts_key(name, expires)
            internal["live_key"] = final
            secret.commit_ops.extend(aws.live.confirm_ops(req.storage, final, {"expires": expires}, live_key))
        return Response(data=data, secret=secret, warnings=warnings)

    async def _call(self, config: dict[str, Any], kind: str, params: dict[str, Any],
                    warnings: list[str]) -> dict[str, Any]:
        try:
            return await self.aws.runtime.call(ISSUE, self._get, config, kind, params, deadline=ISSUE_DEADLINE)
        except StepError as exc:
            message = error_message(exc.cause)
            if kind == ASSUMED_ROLE and "MaxSessionDuration" in message and params["DurationSeconds"] > 3600:
                # The role's limit, learned from AWS's refusal (its MaxSessionDuration could not be read).
                warnings.append(f"ttl of {params['DurationSeconds']}s was clamped to 3600s by the IAM role's "
                                f"MaxSessionDuration (AWS refused longer: {message})")
                params["DurationSeconds"] = 3600
                return await self._call(config, kind, params, warnings)
            if "session credentials" in message.lower() or error_code(exc.cause) == "InvalidClientTokenId" and \
                    kind in (FEDERATION_TOKEN, SESSION_TOKEN) and "session" in message.lower():
                raise InvalidRequest(self._temporary_message(kind, f"AWS said: {message}")) from None
            raise client_error(exc, ISSUE) from None

    @staticmethod
    def _temporary_message(kind: str, reason: str) -> str:
        action = ACTIONS[kind]
        return (f"{kind} credentials need coffer's root credentials to be an IAM user's long-term access key: "
                f"AWS refuses sts:{action} called with temporary credentials (\"Cannot call {action} with session "
                f"credentials\"), and {reason}. Write config/root with an IAM user's access key and no role_arn, "
                "or use an assumed_role role")

    @staticmethod
    def _role_arn(d: FieldData, name: str, role: Role) -> str:
        given = d["role_arn"]
        if given:
            if given not in role.role_arns:
                raise InvalidRequest(f'role_arn "{given}" is not one of the role_arns of role "{name}" '
                                     f"({', '.join(role.role_arns)})")
            return str(given)
        if len(role.role_arns) == 1:
            return role.role_arns[0]
        raise InvalidRequest(f'role "{name}" has {len(role.role_arns)} role_arns: give role_arn, one of '
                             f"{', '.join(role.role_arns)}")

    @staticmethod
    def _check_mfa(d: FieldData, name: str, role: Role) -> None:
        code = d["mfa_code"]
        if role.mfa_serial_number and not code:
            raise InvalidRequest(f'role "{name}" needs mfa_code: the current 6-digit code of MFA device '
                                 f"{role.mfa_serial_number}")
        if code and not role.mfa_serial_number:
            raise InvalidRequest(f'mfa_code was given, but role "{name}" has no mfa_serial_number')
        if code and not _MFA_CODE.match(code):
            raise InvalidRequest("mfa_code must be the device's 6-digit code")

    @staticmethod
    def _ttl(req: Request, d: FieldData, role: Role, kind: str, prepared: dict[str, Any],
             warnings: list[str]) -> int:
        asked = d["ttl"] or role.default_sts_ttl or DEFAULT_TTL
        limits: list[tuple[int, str]] = []
        if role.max_sts_ttl:
            limits.append((role.max_sts_ttl, "the role's max_sts_ttl"))
        limits.append((AWS_MAX[kind], f"AWS's longest {kind} credentials"))
        if kind == ASSUMED_ROLE and prepared["temporary"]:
            limits.append((CHAINING_LIMIT, f"AWS's 1-hour limit on role chaining ({prepared['temporary']})"))
        if kind == ASSUMED_ROLE and prepared["max_session"]:
            limits.append((prepared["max_session"], "the IAM role's MaxSessionDuration"))
        if req.mount.max_lease_ttl:
            limits.append((req.mount.max_lease_ttl, "the mount's max_lease_ttl"))
        ttl = asked
        tightest = min(limits, key=lambda limit: limit[0])
        if asked > tightest[0]:
            ttl = tightest[0]
            warnings.append(f"ttl of {format_duration(asked)} was clamped to {format_duration(ttl)} by "
                            f"{tightest[1]} ({ttl}s)")
        if ttl < STS_MIN_TTL:
            source = "asked" if ttl == asked else f"left by {tightest[1]}"
            raise InvalidRequest(f"ttl must be at least 15m: AWS's shortest STS credentials last {STS_MIN_TTL}s "
                                 f"({ttl}s {source})")
        return ttl

    # -- leases --------------------------------------------------------------------------------

    async def revoke(self, req: Request, internal: dict[str, Any]) -> None:
        """AWS cannot end a session: revoking only forgets the lease. Its quota entry (``max_live_credentials``)
        stays until the credentials expire, since they work until then."""


__all__ = ["Sts", "Throttled"]
