"""``roles/<name>``: what credentials a role hands out, and everything checked when it is written.

One credential type per role, as in Vault: ``iam_user`` (a new IAM user per read), ``assumed_role``
(sts:AssumeRole of one of ``role_arns``), ``federation_token`` (sts:GetFederationToken) and
``session_token`` (sts:GetSessionToken). A role that could never issue is refused when it is written, with
every problem listed at once and one message per problem. Only a role written with the legacy ``policy`` or
``arn`` parameter serves two types: ``iam_user`` on ``creds/`` and ``federation_token`` on ``sts/``.

A write to an existing role changes only the fields it names (as Vault's does); a legacy write replaces it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from coffer.errors import InvalidRequest
from coffer.framework.backend import Path, match_name
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView

IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN = "iam_user", "assumed_role", "federation_token", \
    "session_token"
TYPES = (IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN)
STS_TYPES = (ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN)
MAX_KEY_WAIT = 300
#: AWS's shortest STS credentials.
STS_MIN_TTL = 900
LEGACY_WARNING = "Detected use of legacy role or policy parameter. Please upgrade to use the new parameters."
S, I, L, KV, RAW, D = (FieldType.STRING, FieldType.INT, FieldType.COMMA_LIST, FieldType.KV_MAP, FieldType.RAW,
                       FieldType.DURATION)

_USER_PATH = re.compile(r"^/(?:[\x21-\x7e]{0,510}/)?$")
_POLICY_ARN = re.compile(r"^arn:aws[\w-]*:iam::(?:\d{12}|aws):policy/[\x21-\x7e]+$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_GROUP = re.compile(r"^[\w+=,.@-]{1,128}$")

#: The credential types each type-specific field is valid for (the others are valid for every type).
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "role_arns": (ASSUMED_ROLE,),
    "policy_document": (IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN),
    "policy_arns": (IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN),
    "iam_groups": (IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN),
    "iam_tags": (IAM_USER,),
    "user_path": (IAM_USER,),
    "permissions_boundary_arn": (IAM_USER,),
    "wait_for_usable_key": (IAM_USER,),
    "ttl": (IAM_USER,),
    "max_ttl": (IAM_USER,),
    "default_sts_ttl": STS_TYPES,
    "max_sts_ttl": STS_TYPES,
    "session_tags": (ASSUMED_ROLE,),
    "external_id": (ASSUMED_ROLE,),
    "mfa_serial_number": (ASSUMED_ROLE, SESSION_TOKEN),
}
_NEW_FIELDS = ("credential_type", "policy_document", "policy_arns", "role_arns", "user_path",
               "permissions_boundary_arn", "default_sts_ttl", "max_sts_ttl")


@dataclass
class Role:
    #: One type; two only for a legacy policy role (iam_user on creds/, federation_token on sts/).
    credential_types: list[str] = field(default_factory=lambda: [IAM_USER])
    #: Written with the legacy policy/arn parameters: each path serves only its own kind (as in Vault).
    legacy: bool = False
    policy_document: str = ""
    policy_arns: list[str] = field(default_factory=list)
    role_arns: list[str] = field(default_factory=list)
    iam_groups: list[str] = field(default_factory=list)
    iam_tags: dict[str, str] = field(default_factory=dict)
    user_path: str = ""
    permissions_boundary_arn: str = ""
    default_sts_ttl: int = 0
    max_sts_ttl: int = 0
    session_tags: dict[str, str] = field(default_factory=dict)
    external_id: str = ""
    mfa_serial_number: str = ""
    #: Seconds to wait, at most, until AWS accepts a new key before answering (0: don't wait).
    wait_for_usable_key: int = 0
    #: Lease TTL and max TTL of iam_user credentials (0: config/lease, then the mount's).
    ttl: int = 0
    max_ttl: int = 0
    #: At most this many live credentials of this role at once (0: no limit).
    max_live_credentials: int = 0

    @property
    def credential_type(self) -> str:
        return self.credential_types[0]

    def type_for(self, path_kind: str) -> str:
        """The credential type a read of ``creds/`` or ``sts/`` gets; InvalidRequest for a legacy mismatch."""
        if len(self.credential_types) > 1:
            return IAM_USER if path_kind == "creds" else FEDERATION_TOKEN
        kind = self.credential_type
        if self.legacy and kind == IAM_USER and path_kind == "sts":
            raise InvalidRequest("attempted to retrieve iam_user credentials through the sts path; this is not "
                                 "allowed for legacy roles (read creds/ instead)")
        if self.legacy and kind != IAM_USER and path_kind == "creds":
            raise InvalidRequest(f"attempted to retrieve {kind} credentials through the creds path; this is not "
                                 "allowed for legacy roles (read sts/ instead)")
        return kind

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        del data["credential_types"], data["legacy"]
        return {"credential_type": ",".join(self.credential_types), **data}


def role_key(name: str) -> str:
    return f"role/{name}"


_ROLE_FIELDS = {f.name for f in fields(Role)}


def role_from_doc(doc: dict[str, Any]) -> Role:
    doc = dict(doc)
    if "credential_type" in doc and "credential_types" not in doc:  # stored before STS types existed
        doc["credential_types"] = [doc.pop("credential_type")]
    return Role(**{k: v for k, v in doc.items() if k in _ROLE_FIELDS})


async def load_role(storage: StorageView, name: str) -> Role | None:
    doc = await storage.get_json(role_key(name))
    return None if doc is None else role_from_doc(doc)


def compact_policy(raw: Any, problems: list[str], name: str = "policy_document") -> str:
    """The policy as compact JSON, or '' with a problem noted."""
    doc = raw
    if isinstance(raw, str):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{name} is not valid JSON: {exc}")
            return ""
    if not isinstance(doc, dict) or "Statement" not in doc:
        problems.append(f"{name} must be a JSON object with a Statement (an IAM policy document)")
        return ""
    return orjson.dumps(doc).decode()


def _legacy_role(d: FieldData, problems: list[str]) -> Role:
    for name in _NEW_FIELDS:
        if name in d:
            problems.append(f"cannot supply deprecated role or policy parameters with {name}")
    if "policy" in d and "arn" in d:
        problems.append("give only one of the legacy parameters policy or arn")
    legacy = d["policy"] if "policy" in d else d["arn"]
    if isinstance(legacy, str) and legacy.strip().startswith("arn:"):
        arn = legacy.strip()
        if _ROLE_ARN.match(arn):
            return Role(credential_types=[ASSUMED_ROLE], role_arns=[arn], legacy=True)
        if _POLICY_ARN.match(arn):
            return Role(credential_types=[IAM_USER], policy_arns=[arn], legacy=True)
        problems.append(f"unable to parse supplied data: {arn!r} is neither an IAM policy ARN nor a role ARN")
        return Role(credential_types=[""], legacy=True)
    return Role(credential_types=[IAM_USER, FEDERATION_TOKEN], policy_document=compact_policy(legacy, problems, "policy"),
                legacy=True)


def _given(d: FieldData, name: str) -> bool:
    """Whether the caller set ``name`` to something other than its empty value."""
    return name in d and d[name] not in ("", 0, [], {}, None)


def _updated_role(d: FieldData, existing: Role | None, problems: list[str]) -> Role:
    role = Role(**asdict(existing)) if existing is not None and not existing.legacy else Role()
    if "credential_type" in d:
        kind = d["credential_type"]
        if kind not in TYPES:
            problems.append(f"unrecognized credential_type: {kind!r} (one of {', '.join(TYPES)})")
        role.credential_types = [kind]
    elif existing is None or existing.legacy:
        problems.append(f"did not supply credential_type (one of {', '.join(TYPES)})")
        role.credential_types = [""]  # nothing type-specific can be checked
    role.legacy = False
    if "policy_document" in d:
        raw = d["policy_document"]
        role.policy_document = compact_policy(raw, problems) if raw not in ("", None, {}) else ""
    for name in ("policy_arns", "role_arns", "iam_groups", "iam_tags", "user_path", "permissions_boundary_arn",
                 "default_sts_ttl", "max_sts_ttl", "session_tags", "external_id", "mfa_serial_number",
                 "wait_for_usable_key", "ttl", "max_ttl", "max_live_credentials"):
        if name in d:
            setattr(role, name, d[name])
    return role


def check_role(role: Role, problems: list[str], policy_refused: bool = False) -> None:
    """Every reason ``role`` could never issue, one message each."""
    kind = role.credential_type
    if kind not in TYPES:
        return  # already said; nothing else can be checked against an unknown type
    if not role.legacy:
        for name, allowed in FIELD_TYPES.items():
            if getattr(role, name) not in ("", 0, [], {}) and kind not in allowed:
                problems.append(f"{name} is only valid for credential_type {' or '.join(allowed)}, not {kind}")
    if kind == ASSUMED_ROLE and not role.role_arns:
        problems.append("an assumed_role role needs role_arns (the ARNs of the IAM roles it may assume)")
    if kind in (IAM_USER, FEDERATION_TOKEN) and not (role.policy_document or role.policy_arns or role.iam_groups
                                                     or policy_refused):
        problems.append(f"a {kind} role needs at least one of policy_document, policy_arns or iam_groups")
    for arn in role.policy_arns:
        if not _POLICY_ARN.match(arn):
            problems.append(f"policy_arns: {arn!r} is not an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)")
    if kind in (ASSUMED_ROLE, FEDERATION_TOKEN) and len(role.policy_arns) > 10:
        problems.append("policy_arns: AWS accepts at most 10 managed policy ARNs as session policies")
    for arn in role.role_arns:
        if not _ROLE_ARN.match(arn):
            problems.append(f"role_arns: {arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    for group in role.iam_groups:
        if not _GROUP.match(group):
            problems.append(f"iam_groups: {group!r} is not an IAM group name")
    if role.user_path and not _USER_PATH.match(role.user_path):
        problems.append("user_path must start and end with / and use printable ASCII, e.g. /coffer/")
    if role.permissions_boundary_arn and not _POLICY_ARN.match(role.permissions_boundary_arn):
        problems.append("permissions_boundary_arn must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)")
    _check_tags("iam_tags", role.iam_tags, problems)
    _check_tags("session_tags", role.session_tags, problems)
    if not 0 <= role.wait_for_usable_key <= MAX_KEY_WAIT:
        problems.append(f"wait_for_usable_key must be between 0 and {MAX_KEY_WAIT // 60} minutes")
    for name in ("default_sts_ttl", "max_sts_ttl"):
        value = getattr(role, name)
        if value and value < STS_MIN_TTL:
            problems.append(f"{name} must be at least 15m: AWS's shortest STS credentials last {STS_MIN_TTL}s")
    if role.default_sts_ttl and role.max_sts_ttl and role.default_sts_ttl > role.max_sts_ttl:
        problems.append("default_sts_ttl cannot be longer than max_sts_ttl")
    if role.ttl and role.max_ttl and role.ttl > role.max_ttl:
        problems.append("ttl cannot be longer than max_ttl")
    if role.external_id and not _EXTERNAL_ID.match(role.external_id):
        problems.append("external_id must be 2-1224 characters of letters, digits and +=,.@:/-")
    if role.mfa_serial_number and not 9 <= len(role.mfa_serial_number) <= 256:
        problems.append("mfa_serial_number must be the MFA device's ARN or serial number (9-256 characters)")
    if role.max_live_credentials < 0:
        problems.append("max_live_credentials must be 0 (no limit) or a positive number")


def _check_tags(name: str, tags: dict[str, str], problems: list[str]) -> None:
    if len(tags) > 50:
        problems.append(f"{name}: AWS allows at most 50 tags")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            problems.append(f"{name}: tag {key!r} must have a key of 1-128 and a value of at most 256 characters")


async def write_role(req: Request, d: FieldData) -> Response | None:
    problems: list[str] = []
    legacy = "policy" in d or "arn" in d
    if legacy:
        role = _legacy_role(d, problems)
    else:
        role = _updated_role(d, await load_role(req.storage, d["name"]), problems)
    # A policy_document refused above is not also reported as missing.
    check_role(role, problems, policy_refused=any(p.startswith(("policy_document ", "policy ")) for p in problems))
    if problems:
        raise InvalidRequest(*dict.fromkeys(problems))
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


def _only(kinds: tuple[str, ...]) -> str:
    return f" ({' and '.join(kinds)} only)"


ROLE_FIELDS = {
    "credential_type": Field(S, f"One of {', '.join(TYPES)}."),
    "policy_document": Field(RAW, "An IAM policy (JSON): put inline on each IAM user; for assumed_role and "
                                  "federation_token a session policy that narrows what the credentials may do."),
    "policy_arns": Field(L, "Managed policy ARNs: attached to each IAM user, or session policies for "
                            "assumed_role and federation_token."),
    "role_arns": Field(L, "The IAM roles this role may assume" + _only(FIELD_TYPES["role_arns"]) + "."),
    "iam_groups": Field(L, "IAM groups: each IAM user joins them; for assumed_role and federation_token their "
                           "policies are merged into the session policy."),
    "iam_tags": Field(KV, "Tags set on each IAM user when it is created (key=value pairs)" + _only((IAM_USER,))
                      + "."),
    "user_path": Field(S, "The IAM path of the users, e.g. /coffer/" + _only((IAM_USER,)) + "."),
    "permissions_boundary_arn": Field(S, "A managed policy ARN set as each user's permissions boundary"
                                      + _only((IAM_USER,)) + "."),
    "wait_for_usable_key": Field(D, "Answer only once AWS accepts the new key, waiting at most this long "
                                    "(e.g. 30s; 0: answer at once). New IAM keys are often refused for 5-10 s."),
    "ttl": Field(D, "Lease of each IAM user (default: config/lease, then the mount's)" + _only((IAM_USER,)) + "."),
    "max_ttl": Field(D, "Longest an IAM user's lease may be renewed to" + _only((IAM_USER,)) + "."),
    "default_sts_ttl": Field(D, "STS credentials' lifetime when a read asks none (default 1h)."),
    "max_sts_ttl": Field(D, "Longest STS credentials this role hands out (longer asks are clamped, with a "
                            "warning)."),
    "session_tags": Field(KV, "Session tags passed to AssumeRole (key=value pairs)" + _only((ASSUMED_ROLE,))
                          + "."),
    "external_id": Field(S, "The external ID AssumeRole presents" + _only((ASSUMED_ROLE,)) + "."),
    "mfa_serial_number": Field(S, "The MFA device of coffer's root IAM user; reads must then give mfa_code."),
    "max_live_credentials": Field(I, "At most this many credentials of this role live at once (0: no limit); "
                                     "beyond it, reads answer 429."),
    "policy": Field(RAW, "Deprecated: an IAM policy document, or a managed policy or role ARN."),
    "arn": Field(S, "Deprecated: a managed policy ARN or a role ARN."),
}

PATHS = [
    Path("roles/?", {"list": list_roles}, synopsis="List the roles."),
    Path(rf"roles/{match_name()}", {"read": read_role, "write": write_role, "delete": delete_role},
         dict(ROLE_FIELDS), exists=role_exists,
         synopsis="Read, write and delete the roles credentials are made for.",
         description="credential_type iam_user makes a new IAM user per read of creds/<name> (with the role's "
                     "policy_document, policy_arns, iam_groups, iam_tags, user_path and permissions boundary); "
                     "assumed_role, federation_token and session_token hand out STS credentials. A role that "
                     "could never issue is refused here, with every problem listed. The older form "
                     "policy=@policy.json (or arn=<policy or role ARN>) still works."),
]
