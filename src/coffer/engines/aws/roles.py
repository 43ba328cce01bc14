"""``roles/<name>``: what an IAM user made for a role may do."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from coffer.errors import InvalidRequest
from coffer.framework.backend import Path, match_name
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView

IAM_USER = "iam_user"
STS_TYPES = ("assumed_role", "federation_token", "session_token")
MAX_KEY_WAIT = 300
LEGACY_WARNING = "Detected use of legacy role or policy parameter. Please upgrade to use the new parameters."
S, L, KV, RAW, D = (FieldType.STRING, FieldType.COMMA_LIST, FieldType.KV_MAP, FieldType.RAW,
                    FieldType.DURATION)

_USER_PATH = re.compile(r"^/(?:[\x21-\x7e]{0,510}/)?$")
_POLICY_ARN = re.compile(r"^arn:aws[\w-]*:iam::(?:\d{12}|aws):policy/[\x21-\x7e]+$")
_STS_ONLY = ("role_arns", "default_sts_ttl", "max_sts_ttl", "session_tags", "external_id", "mfa_serial_number")
_NEW_FIELDS = ("credential_type", "policy_document", "policy_arns", "role_arns", "user_path",
               "permissions_boundary_arn", "default_sts_ttl", "max_sts_ttl")


@dataclass
class Role:
    credential_type: str = IAM_USER
    policy_document: str = ""
    policy_arns: list[str] = field(default_factory=list)
    iam_groups: list[str] = field(default_factory=list)
    iam_tags: dict[str, str] = field(default_factory=dict)
    user_path: str = ""
    permissions_boundary_arn: str = ""
    #: Seconds to wait, at most, until AWS accepts a new key before answering (0: don't wait).
    wait_for_usable_key: int = 0

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "role_arns": [], "session_tags": {}, "external_id": "", "default_sts_ttl": 0,
                "max_sts_ttl": 0, "mfa_serial_number": ""}


def role_key(name: str) -> str:
    return f"role/{name}"


async def load_role(storage: StorageView, name: str) -> Role | None:
    doc = await storage.get_json(role_key(name))
    return None if doc is None else Role(**doc)


def compact_policy(raw: Any, problems: list[str], name: str = "policy_document") -> str:
    """The policy as compact JSON, or '' with a problem noted."""
    if isinstance(raw, dict):
        return orjson.dumps(raw).decode()
    if not isinstance(raw, str):
        problems.append(f"{name} must be a JSON object (the IAM policy document)")
        return ""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problems.append(f"{name} is not valid JSON: {exc}")
        return ""
    if not isinstance(doc, dict):
        problems.append(f"{name} must be a JSON object (the IAM policy document)")
        return ""
    return orjson.dumps(doc).decode()


def _from_legacy(d: FieldData, problems: list[str]) -> Role:
    clashing = [n for n in _NEW_FIELDS if n in d]
    for name in clashing:
        problems.append(f"cannot supply deprecated role or policy parameters with {name}")
    legacy = d["policy"] if "policy" in d else d["arn"]
    if isinstance(legacy, str) and legacy.strip().startswith("arn:"):
        arn = legacy.strip()
        if ":role/" in arn:
            problems.append("a role ARN makes an assumed_role role, which coffer does not support yet; "
                            "use a policy document or a managed policy ARN")
        elif not _POLICY_ARN.match(arn):
            problems.append(f"unable to parse supplied data: {arn!r} is not an IAM policy ARN")
        return Role(policy_arns=[arn])
    return Role(policy_document=compact_policy(legacy, problems, "policy"))


def _from_fields(d: FieldData, problems: list[str]) -> Role:
    credential_type = d["credential_type"]
    if not credential_type:
        problems.append("did not supply credential_type (iam_user)")
    elif credential_type in STS_TYPES:
        problems.append(f"credential_type {credential_type} is not supported yet (STS credentials come later); "
                        "use iam_user")
    elif credential_type != IAM_USER:
        problems.append(f"unrecognized credential type: {credential_type}")
    for name in _STS_ONLY:
        if d[name]:
            problems.append(f"{name} is only valid for STS credential types, not {IAM_USER}")
    role = Role(
        credential_type=IAM_USER,
        policy_document=compact_policy(d["policy_document"], problems) if d["policy_document"] else "",
        policy_arns=d["policy_arns"],
        iam_groups=d["iam_groups"],
        iam_tags=d["iam_tags"],
        user_path=d["user_path"],
        permissions_boundary_arn=d["permissions_boundary_arn"],
        wait_for_usable_key=d["wait_for_usable_key"],
    )
    if not 0 <= role.wait_for_usable_key <= MAX_KEY_WAIT:
        problems.append(f"wait_for_usable_key must be between 0 and {MAX_KEY_WAIT // 60} minutes")
    for arn in role.policy_arns:
        if not _POLICY_ARN.match(arn):
            problems.append(f"policy_arns: {arn!r} is not an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)")
    if role.user_path and not _USER_PATH.match(role.user_path):
        problems.append("user_path must start and end with / and use printable ASCII, e.g. /coffer/")
    if role.permissions_boundary_arn and not _POLICY_ARN.match(role.permissions_boundary_arn):
        problems.append("permissions_boundary_arn must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)")
    if len(role.iam_tags) > 50:
        problems.append("iam_tags: IAM allows at most 50 tags on a user")
    for key, value in role.iam_tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            problems.append(f"iam_tags: tag {key!r} must have a key of 1-128 and a value of at most 256 characters")
    return role


async def write_role(req: Request, d: FieldData) -> Response | None:
    problems: list[str] = []
    legacy = "policy" in d or "arn" in d
    role = _from_legacy(d, problems) if legacy else _from_fields(d, problems)
    if not (role.policy_document or role.policy_arns or role.iam_groups) and not problems:
        problems.append("an iam_user role needs at least one of policy_document, policy_arns or iam_groups")
    if problems:
        raise InvalidRequest(*problems)
    await req.storage.put_json(role_key(d["name"]), asdict(role))
    return Response(warnings=[LEGACY_WARNING]) if legacy else None


async def read_role(req: Request, d: FieldData) -> Response | None:
    role = await load_role(req.storage, d["name"])
    return None if role is None else Response(data=role.describe())


async def delete_role(req: Request, d: FieldData) -> None:
    await req.storage.delete(role_key(d["name"]))


async def list_roles(req: Request, d: FieldData) -> Response:
    return Response(data={"keys": await req.storage.list("role/")})


async def role_exists(req: Request, captures: dict[str, str]) -> bool:
    return await req.storage.get(role_key(captures["name"])) is not None


ROLE_FIELDS = {
    "credential_type": Field(S, "What the role makes: iam_user, a new IAM user with an access key per read (the STS "
                                "types are not supported yet).", default=""),
    "policy_document": Field(RAW, "The IAM policy (JSON) put inline on each user, named after the role."),
    "policy_arns": Field(L, "The ARNs of managed policies attached to each user.", default=[]),
    "iam_groups": Field(L, "The IAM groups each new user is added to (their policies apply to it).", default=[]),
    "iam_tags": Field(KV, "Tags set on each user when it is created (key=value pairs).", default={}),
    "user_path": Field(S, "The IAM path of the users, e.g. /coffer/.", default=""),
    "permissions_boundary_arn": Field(S, "A managed policy ARN set as each user's permissions boundary.",
                                      default=""),
    "wait_for_usable_key": Field(D, "Answer only once AWS accepts the new key, waiting at most this long "
                                    "(e.g. 30s; 0: answer at once). New IAM keys are often refused for 5-10 s.",
                                 default=0),
    "role_arns": Field(L, "For assumed_role credentials: the roles they may assume (STS types are not supported yet; "
                          "stored, unused).", default=[]),
    "default_sts_ttl": Field(D, "How long STS credentials live by default (STS types are not supported yet; stored, "
                                "unused).", default=0),
    "max_sts_ttl": Field(D, "The longest STS credentials may live (STS types are not supported yet; stored, "
                            "unused).", default=0),
    "session_tags": Field(KV, "Tags of the session when a role is assumed (STS types are not supported yet; stored, "
                              "unused).", default={}),
    "external_id": Field(S, "The external ID given when a role is assumed (STS types are not supported yet; stored, "
                            "unused).", default=""),
    "mfa_serial_number": Field(S, "The MFA device whose code session tokens need (STS types are not supported yet; "
                                  "stored, unused).", default=""),
    "policy": Field(RAW, "The older form of policy_document or policy_arns: an IAM policy document (JSON) or one "
                         "managed policy ARN."),
    "arn": Field(S, "The older form of policy_arns: one managed policy ARN attached to each user."),
}

PATHS = [
    Path("roles/?", {"list": list_roles}, synopsis="List the roles."),
    Path(rf"roles/{match_name()}", {"read": read_role, "write": write_role, "delete": delete_role},
         dict(ROLE_FIELDS), exists=role_exists,
         synopsis="Read, write and delete the roles that IAM users are made for.",
         description="Reading aws/creds/<name> makes a new IAM user with the role's inline policy "
                     "(policy_document), managed policies (policy_arns), groups (iam_groups), tags (iam_tags), "
                     "path (user_path) and permissions boundary, and an access key for it. The older form "
                     "policy=@policy.json (or arn=<managed policy ARN>) still works."),
]
