"""AWS IAM auth: anything holding AWS credentials (an EC2 instance, a Lambda, a CI runner) logs in with them.

The client signs an ``sts:GetCallerIdentity`` request (SigV4) and sends the
signed request to coffer, not to AWS. coffer checks it is exactly that call
(no other action or version, the path "/", no query), that it carries the
server-ID header when one is configured (among the signed headers, so it
cannot be replayed against another server), forwards it unchanged — the
signed ``Host`` header included — to the configured STS endpoint, and
trusts only what STS answers: the caller's ARN, user ID and account. The
role's ``bound_iam_principal_arn`` (``*`` globs) must match the caller's
canonical ARN (an assumed role counts as its role's ARN).

With ``resolve_aws_unique_ids``, the role stores the unique IDs of the
principals it names (looked up in IAM with the config/client credentials),
so a user or role deleted and created again under the same name is not let
in.

Storage (the mount's view): ``config/client``, ``role/<name>``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http.client
import json
import re
import ssl
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from coffer.errors import InvalidRequest, UpstreamError
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import MountInfo, Request, Response
from coffer.framework.tokenutil import TOKEN_FIELDS, TokenParams, glob_match

S, I, B, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.COMMA_LIST

HELP = """AWS IAM auth: log in with AWS credentials, by a signed sts:GetCallerIdentity request.

Point config/client at STS (sts_endpoint) and optionally require a server-ID
header (iam_server_id_header_value); create roles binding IAM principals
(bound_iam_principal_arn, with * globs); log in at login with hvac's
iam_login payload (or coffer login -method=aws)."""

ROLE = r"(?P<role>\w(?:[\w.+@=,-]*\w)?)"
DEFAULT_STS = "https://sts.amazonaws.com"
SERVER_ID_HEADER = "x-vault-aws-iam-server-id"
FORWARD_TIMEOUT = 15.0
MAX_ANSWER = 64 * 1024
_ARN = re.compile(r"arn:(?P<partition>[\w-]+):(?P<service>iam|sts)::(?P<account>\d{12}|\*):(?P<kind>[\w-]+)/"
                  r"(?P<rest>.+)")
#: Hop-by-hop headers never forwarded (and Content-Length, which is recomputed and checked).
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection",
                  "content-length"}


def _b64(d: FieldData, name: str) -> bytes:
    raw = d[name]
    if not raw:
        raise InvalidRequest(f"missing {name}: send the signed GetCallerIdentity request as hvac's iam_login "
                             "does (iam_http_request_method, iam_request_url, iam_request_headers, "
                             "iam_request_body, all but the method base64-encoded)")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{name} is not valid base64") from None


def canonical_arn(arn: str) -> tuple[str, str, str]:
    """The ARN policies are bound to (an assumed role's session is its role), the entity's kind and name."""
    m = _ARN.fullmatch(arn)
    if not m:
        return arn, "", ""
    kind, rest = m["kind"], m["rest"]
    if m["service"] == "sts" and kind == "assumed-role":
        role = rest.split("/", 1)[0]
        return f"arn:{m['partition']}:iam::{m['account']}:role/{role}", "role", role
    return arn, kind, rest.rsplit("/", 1)[-1]


def _principal_id(arn: str, iam: Any) -> str:
    """The unique ID (AIDA..., AROA...) of the IAM user or role ``arn`` names (blocking)."""
    m = _ARN.fullmatch(arn)
    if not m or m["service"] != "iam" or m["kind"] not in ("user", "role"):
        raise ValueError(f"{arn} is not the ARN of an IAM user or role")
    name = m["rest"].rsplit("/", 1)[-1]
    if m["kind"] == "user":
        return iam.get_user(UserName=name)["User"]["UserId"]
    return iam.get_role(RoleName=name)["Role"]["RoleId"]


def _forward(endpoint: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """POST the signed request to STS as it was signed (blocking); answers status and body."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'sts_endpoint "{endpoint}" is not an http(s) URL')
    port = parts.port
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, port, timeout=FORWARD_TIMEOUT,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=FORWARD_TIMEOUT)
    try:
        conn.request("POST", (parts.path.rstrip("/") or "") + path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(MAX_ANSWER)
    finally:
        conn.close()


def _xml_fields(raw: bytes, names: tuple[str, ...]) -> dict[str, str]:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise ValueError("STS's answer carries a DOCTYPE")
    root = ET.fromstring(raw)
    found: dict[str, str] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in names and tag not in found:
            found[tag] = (element.text or "").strip()
    return found


class AwsAuth:
    def __init__(self, mount: MountInfo) -> None:
        self.mount = mount

    # -- config/client ---------------------------------------------------------

    async def client_config(self, req: Request) -> dict[str, Any]:
        return await req.storage.get_json("config/client") or {}

    async def write_client(self, req: Request, d: FieldData) -> None:
        config = await self.client_config(req)
        for key in ("access_key", "secret_key", "iam_endpoint", "sts_endpoint", "sts_region",
                    "iam_server_id_header_value"):
            if key in d:
                config[key] = d[key].strip()
        if "max_retries" in d:
            config["max_retries"] = d["max_retries"]
        if bool(config.get("access_key")) != bool(config.get("secret_key")):
            raise InvalidRequest("access_key and secret_key go together: give both, or neither")
        for key in ("iam_endpoint", "sts_endpoint"):
            if config.get(key) and not config[key].startswith(("https://", "http://")):
                raise InvalidRequest(f'{key} "{config[key][:200]}" is not an http(s) URL')
        await req.storage.put_json("config/client", config)

    async def read_client(self, req: Request, d: FieldData) -> Response | None:
        config = await req.storage.get_json("config/client")
        if config is None:
            return None
        shown = {"access_key": "", "iam_endpoint": "", "sts_endpoint": "", "sts_region": "",
                 "iam_server_id_header_value": "", "max_retries": -1}
        shown.update({k: v for k, v in config.items() if k != "secret_key"})
        return Response(data=dict(sorted(shown.items())))

    async def delete_client(self, req: Request, d: FieldData) -> None:
        await req.storage.delete("config/client")

    def iam(self, config: dict[str, Any]) -> Any:
        retries = config.get("max_retries", -1)
        boto_config = Config(connect_timeout=5, read_timeout=15,
                             retries={"mode": "standard"} if retries < 0 else {"total_max_attempts": retries + 1})
        return boto3.session.Session().client(
            "iam", endpoint_url=config.get("iam_endpoint") or None, region_name="us-east-1",
            aws_access_key_id=config["access_key"], aws_secret_access_key=config["secret_key"], config=boto_config)

    # -- roles ---------------------------------------------------------------------

    async def role(self, req: Request, name: str) -> dict[str, Any] | None:
        return await req.storage.get_json(f"role/{name.lower()}")

    async def role_exists(self, req: Request, captures: dict[str, str]) -> bool:
        return await self.role(req, captures["role"]) is not None

    async def write_role(self, req: Request, d: FieldData) -> None:
        name = d["role"].lower()
        role: dict[str, Any] = dict(await self.role(req, name) or {
            "auth_type": "iam", "bound_iam_principal_arn": [], "bound_account_id": [],
            "resolve_aws_unique_ids": False, "bound_iam_principal_id": [], "token": {}})
        if "auth_type" in d:
            if d["auth_type"] == "ec2":
                raise InvalidRequest('auth_type "ec2" is not supported by coffer; use auth_type=iam (sign '
                                     "sts:GetCallerIdentity with the instance's credentials)")
            if d["auth_type"] != "iam":
                raise InvalidRequest(f'invalid auth_type "{d["auth_type"]}"; use iam')
        if "bound_iam_principal_arn" in d:
            arns = [a.strip() for a in d["bound_iam_principal_arn"] if a.strip()]
            for arn in arns:
                if not _ARN.fullmatch(arn) and arn != "*":
                    raise InvalidRequest(f'bound_iam_principal_arn "{arn[:200]}" is not an IAM ARN such as '
                                         "arn:aws:iam::123456789012:user/name or ...:role/name (* globs allowed)")
            role["bound_iam_principal_arn"] = arns
        if "bound_account_id" in d:
            role["bound_account_id"] = [a.strip() for a in d["bound_account_id"] if a.strip()]
        if "resolve_aws_unique_ids" in d:
            if role["resolve_aws_unique_ids"] and not d["resolve_aws_unique_ids"] and role["bound_iam_principal_id"]:
                raise InvalidRequest("resolve_aws_unique_ids cannot be turned off once on: delete and recreate the "
                                     "role instead")
            role["resolve_aws_unique_ids"] = d["resolve_aws_unique_ids"]
        token = TokenParams.from_doc(role.get("token"))
        token.update(d)
        role["token"] = token.to_doc()
        if not role["bound_iam_principal_arn"]:
            raise InvalidRequest("bound_iam_principal_arn is required for an iam role: name the IAM users or roles "
                                 "(ARNs, * globs allowed) that may log in")
        role["bound_iam_principal_id"] = await self.resolve(req, role) if role["resolve_aws_unique_ids"] else []
        await req.storage.put_json(f"role/{name}", role)

    async def resolve(self, req: Request, role: dict[str, Any]) -> list[str]:
        """The unique IDs of the role's exact (glob-free) principal ARNs."""
        config = await self.client_config(req)
        if not (config.get("access_key") and config.get("secret_key")):
            raise InvalidRequest(f"resolve_aws_unique_ids=true needs IAM credentials to look the principals up: set "
                                 f"access_key and secret_key (and iam_endpoint if not AWS itself) in "
                                 f"{req.mount_point}config/client, or set resolve_aws_unique_ids=false")
        exact = [a for a in role["bound_iam_principal_arn"] if "*" not in a]
        if not exact:
            return []
        iam = self.iam(config)

        def look_up() -> list[str]:
            return [_principal_id(arn, iam) for arn in exact]

        try:
            return await asyncio.to_thread(look_up)
        except ValueError as exc:
            raise InvalidRequest(f"cannot resolve bound_iam_principal_arn: {exc}") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise InvalidRequest(f"cannot resolve bound_iam_principal_arn with IAM: {error.get('Code')}: "
                                 f"{error.get('Message')}") from None
        except BotoCoreError as exc:
            raise UpstreamError(f"cannot reach IAM to resolve bound_iam_principal_arn: {exc}") from None

    async def read_role(self, req: Request, d: FieldData) -> Response | None:
        role = await self.role(req, d["role"])
        if role is None:
            return None
        data = {k: v for k, v in role.items() if k != "token"}
        data.update(TokenParams.from_doc(role.get("token")).to_doc())
        return Response(data=dict(sorted(data.items())))

    async def delete_role(self, req: Request, d: FieldData) -> None:
        await req.storage.delete(f"role/{d['role'].lower()}")

    async def list_roles(self, req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list("role/")})

    # -- login -------------------------------------------------------------------

    def signed_request(self, d: FieldData, config: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
        """The checked path, headers and body of the login's signed request; raises InvalidRequest."""
        method = (d["iam_http_request_method"] or "").upper()
        if method != "POST":
            raise InvalidRequest("iam_http_request_method must be POST (a signed sts:GetCallerIdentity request)")
        url = urlsplit(_b64(d, "iam_request_url").decode("utf-8", "replace"))
        if url.path not in ("", "/") or url.query:
            raise InvalidRequest("iam_request_url must be the STS endpoint's root (path /, no query)")
        body = _b64(d, "iam_request_body")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, strict_parsing=False)
        if form != {"Action": ["GetCallerIdentity"], "Version": ["2011-06-15"]}:
            raise InvalidRequest("iam_request_body must be exactly Action=GetCallerIdentity&Version=2011-06-15: "
                                 "coffer forwards no other call to STS")
        try:
            raw_headers = json.loads(_b64(d, "iam_request_headers"))
        except ValueError:
            raise InvalidRequest("iam_request_headers must be base64 of a JSON object of header names to "
                                 "values") from None
        if not isinstance(raw_headers, dict):
            raise InvalidRequest("iam_request_headers must be a JSON object of header names to values")
        headers: dict[str, str] = {}
        for key, value in raw_headers.items():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in values) or not isinstance(key, str):
                raise InvalidRequest(f'iam_request_headers "{str(key)[:80]}" must be a string or a list of strings')
            if any("\r" in v or "\n" in v for v in values) or "\r" in key or "\n" in key or ":" in key:
                raise InvalidRequest("iam_request_headers may not contain line breaks")
            headers[key] = ",".join(values)
        lower = {k.lower(): v for k, v in headers.items()}
        authorization = lower.get("authorization", "")
        signed = re.search(r"SignedHeaders=([^,\s]+)", authorization)
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or signed is None:
            raise InvalidRequest("iam_request_headers must carry a SigV4 Authorization header (AWS4-HMAC-SHA256)")
        signed_headers = set(signed.group(1).lower().split(";"))
        if "host" not in lower or "host" not in signed_headers:
            raise InvalidRequest("the signed request must sign its Host header")
        expected = config.get("iam_server_id_header_value")
        if expected:
            if lower.get(SERVER_ID_HEADER) != expected or SERVER_ID_HEADER not in signed_headers:
                raise InvalidRequest("missing or wrong X-Vault-AWS-IAM-Server-ID header: this server requires the "
                                     "header it is configured with, among the signed headers (hvac: "
                                     "iam_login(header_value=...); coffer login -method=aws header_value=...)")
        if "content-length" in lower and lower["content-length"].strip() != str(len(body)):
            raise InvalidRequest("the signed Content-Length does not match iam_request_body")
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
        return "/", forwarded, body

    async def caller(self, config: dict[str, Any], path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        endpoint = config.get("sts_endpoint") or DEFAULT_STS
        try:
            status, answer = await asyncio.to_thread(_forward, endpoint, path, headers, body)
        except ValueError as exc:
            raise InvalidRequest(f"cannot forward the login to STS: {exc}; fix sts_endpoint in config/client") from None
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"cannot reach STS at {endpoint}: {exc}") from None
        try:
            if status != 200:
                error = _xml_fields(answer, ("Code", "Message"))
                message = f"{error.get('Code', f'HTTP {status}')}: {error.get('Message', '')}".rstrip(": ")
                if status >= 500:
                    raise UpstreamError(f"STS failed to check the signed request ({message})")
                raise InvalidRequest(f"STS refused the signed request: {message}")
            identity = _xml_fields(answer, ("Arn", "UserId", "Account"))
        except (ET.ParseError, ValueError):
            raise UpstreamError(f"STS at {endpoint} did not answer GetCallerIdentity's XML (HTTP {status})") from None
        if not identity.get("Arn") or not identity.get("UserId") or not identity.get("Account"):
            raise UpstreamError(f"STS at {endpoint} answered no caller identity")
        return identity

    async def login(self, req: Request, d: FieldData) -> Response:
        config = await self.client_config(req)
        path, headers, body = self.signed_request(d, config)
        identity = await self.caller(config, path, headers, body)
        arn, user_id, account = identity["Arn"], identity["UserId"], identity["Account"]
        canonical, kind, friendly = canonical_arn(arn)
        name = (d["role"] or friendly).lower()
        role = await self.role(req, name) if name else None
        if role is None:
            raise InvalidRequest(f'entry for role "{name}" not found' if name else "missing role: send role=<name>")
        if role["bound_account_id"] and account not in role["bound_account_id"]:
            raise InvalidRequest(f"account {account} is not among the role's bound_account_id")
        if not any(glob_match(p, canonical) for p in role["bound_iam_principal_arn"]):
            raise InvalidRequest(f'IAM principal "{canonical}" does not satisfy the role\'s bound_iam_principal_arn')
        if role["resolve_aws_unique_ids"]:
            # An exact ARN binds the principal's unique ID; one that only a glob matches is bound by its ARN.
            globs = [p for p in role["bound_iam_principal_arn"] if "*" in p]
            if (user_id.split(":", 1)[0] not in role["bound_iam_principal_id"]
                    and not any(glob_match(p, canonical) for p in globs)):
                raise InvalidRequest(f'IAM principal "{canonical}" is not the one the role was bound to (its unique '
                                     "ID differs: deleted and created again?)")
        token = TokenParams.from_doc(role.get("token"))
        metadata = {"client_arn": arn, "canonical_arn": canonical, "client_user_id": user_id, "account_id": account,
                    "auth_type": "iam", "inferred_entity_type": "", "inferred_entity_id": "",
                    "inferred_aws_region": ""}
        return Response(auth=token.auth(metadata=metadata, display_name=friendly or canonical,
                                        internal={"role": name, "canonical_arn": canonical}, alias=user_id))

    async def renew(self, req: Request) -> Response:
        assert req.auth is not None
        name = str(req.auth.internal.get("role", ""))
        role = await self.role(req, name) if name else None
        if role is None:
            raise InvalidRequest(f'role "{name}" does not exist any more; the token cannot be renewed')
        canonical = str(req.auth.internal.get("canonical_arn", ""))
        if not any(glob_match(p, canonical) for p in role["bound_iam_principal_arn"]):
            raise InvalidRequest("the role no longer binds this IAM principal; the token cannot be renewed")
        return Response(auth=TokenParams.from_doc(role.get("token")).renewed(req.auth))


def factory(mount: MountInfo) -> Backend:
    a = AwsAuth(mount)
    client_fields = {
        "access_key": Field(S, "IAM access key for looking principals up (resolve_aws_unique_ids)."),
        "secret_key": Field(S, "Its secret key (never read back)."),
        "iam_endpoint": Field(S, "IAM endpoint URL (default: AWS's)."),
        "sts_endpoint": Field(S, f"STS endpoint URL the signed logins are forwarded to (default {DEFAULT_STS})."),
        "sts_region": Field(S, "The STS region (informational: the client signs for its own region)."),
        "iam_server_id_header_value": Field(S, "Require this X-Vault-AWS-IAM-Server-ID header, signed, in logins."),
        "max_retries": Field(I, "Retries of IAM look-ups (-1: the SDK's default)."),
        "endpoint": Field(S, "Accepted for compatibility (EC2 is not used)."),
        "use_sts_region_from_client": Field(B, "Accepted for compatibility."),
    }
    role_fields = {
        "role": Field(S, "The role's name.", required=True),
        "auth_type": Field(S, "iam (the only type coffer serves)."),
        "bound_iam_principal_arn": Field(L, "ARNs of the IAM users or roles that may log in (* globs allowed)."),
        "bound_account_id": Field(L, "AWS accounts the caller must belong to."),
        "resolve_aws_unique_ids": Field(B, "Bind the principals' unique IDs too (needs IAM credentials in "
                                           "config/client)."),
        **TOKEN_FIELDS,
    }
    login_fields = {
        "role": Field(S, "The role (default: the caller's IAM user or role name)."),
        "iam_http_request_method": Field(S, "POST."),
        "iam_request_url": Field(S, "The signed request's URL, base64."),
        "iam_request_body": Field(S, "Its body (Action=GetCallerIdentity&Version=2011-06-15), base64."),
        "iam_request_headers": Field(S, "Its headers as JSON (name -> value or [values]), base64."),
    }
    return Backend(
        [
            Path("login", {"write": a.login}, login_fields, synopsis="Log in with a signed sts:GetCallerIdentity."),
            Path("config/client", {"read": a.read_client, "write": a.write_client, "delete": a.delete_client},
                 client_fields, synopsis="Where logins are checked (STS) and IAM look-ups are made."),
            Path("role/?", {"list": a.list_roles}, synopsis="List the roles."),
            Path(f"role/{ROLE}", {"read": a.read_role, "write": a.write_role, "delete": a.delete_role}, role_fields,
                 exists=a.role_exists, synopsis="Create, read, update or delete a role."),
        ],
        help=HELP,
        unauthenticated=("login",),
        renew_auth=a.renew,
    )
