"""``config/root`` (how coffer reaches AWS) and ``config/lease`` (how long keys live)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from coffer.durations import format_duration
from coffer.engines.aws.usernames import check_template
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView

ROOT = "config/root"
LEASE = "config/lease"
S, I, B, D = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION

#: Without config/lease, IAM user keys live one hour (as Vault's do).
DEFAULT_LEASE = 3600


async def read_root(storage: StorageView) -> dict[str, Any]:
    return await storage.get_json(ROOT) or {}


async def read_lease(storage: StorageView) -> dict[str, int] | None:
    return await storage.get_json(LEASE)


def _check_endpoint(name: str, value: str, problems: list[str]) -> None:
    if value:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"{name} must be an http(s) URL such as https://iam.amazonaws.com, got {value!r}")


async def write_root(req: Request, d: FieldData) -> Response | None:
    problems: list[str] = []
    if bool(d["access_key"]) != bool(d["secret_key"]):
        problems.append("give access_key and secret_key together (or neither, to use the AWS credential chain)")
    _check_endpoint("iam_endpoint", d["iam_endpoint"], problems)
    _check_endpoint("sts_endpoint", d["sts_endpoint"], problems)
    if d["max_retries"] < -1:
        problems.append("max_retries must be -1 (the SDK's default) or a number of retries")
    if d["username_template"]:
        try:
            check_template(d["username_template"])
        except ValueError as exc:
            problems.append(f"invalid username_template: {exc}")
    if problems:
        raise InvalidRequest(*problems)
    config = {
        "access_key": d["access_key"], "secret_key": d["secret_key"], "region": d["region"],
        "iam_endpoint": d["iam_endpoint"], "sts_endpoint": d["sts_endpoint"], "sts_region": d["sts_region"],
        "max_retries": d["max_retries"], "username_template": d["username_template"],
        "tag_users": d["tag_users"],
    }
    await req.storage.put_json(ROOT, config)
    return None


async def get_root(req: Request, d: FieldData) -> Response | None:
    config = await req.storage.get_json(ROOT)
    if config is None:
        return None
    shown = {k: v for k, v in config.items() if k != "secret_key"}
    return Response(data=shown)


async def write_lease(req: Request, d: FieldData) -> None:
    d.require("lease", "lease_max")
    if d["lease"] <= 0 or d["lease_max"] <= 0:
        raise InvalidRequest("lease and lease_max must be positive durations such as 1h")
    if d["lease"] > d["lease_max"]:
        raise InvalidRequest("lease cannot be longer than lease_max")
    await req.storage.put_json(LEASE, {"lease": d["lease"], "lease_max": d["lease_max"]})


async def get_lease(req: Request, d: FieldData) -> Response | None:
    lease = await read_lease(req.storage)
    if lease is None:
        return None
    return Response(data={"lease": format_duration(lease["lease"]), "lease_max": format_duration(lease["lease_max"])})


PATHS = [
    Path("config/root", {"read": get_root, "write": write_root}, {
        "access_key": Field(S, "Access key ID of the IAM user coffer acts as.", default=""),
        "secret_key": Field(S, "The secret access key that goes with access_key; a read never returns it.", default=""),
        "region": Field(S, "AWS region; else AWS_REGION, AWS_DEFAULT_REGION, then us-east-1.", default=""),
        "iam_endpoint": Field(S, "The address of the IAM API, for a private endpoint or an AWS-compatible service "
                                 "(default: AWS's own).", default=""),
        "sts_endpoint": Field(S, "The address of the STS API, for a private endpoint or an AWS-compatible service "
                                 "(default: AWS's own).", default=""),
        "sts_region": Field(S, "The region STS calls are made in (default: the region above).", default=""),
        "max_retries": Field(I, "Retries for recoverable AWS errors (-1: the SDK's default).", default=-1),
        "username_template": Field(S, "How IAM user names are made, in Vault's template syntax (at most 64 "
                                      "characters).", default=""),
        "tag_users": Field(B, "Tag each IAM user with coffer's mount, role and lease id (needs iam:TagUser).",
                           default=False),
    }, synopsis="Configure the root credentials coffer uses to create IAM users.",
        description="Without access_key and secret_key, the standard AWS credential chain is used "
                    "(environment, shared credentials file, instance or task role). Reading never returns "
                    "secret_key."),
    Path("config/lease", {"read": get_lease, "write": write_lease}, {
        "lease": Field(D, "How long IAM user keys live unless asked otherwise, e.g. 1h."),
        "lease_max": Field(D, "The longest IAM user keys may live; renewals stop there, e.g. 24h."),
    }, synopsis="Configure how long IAM user keys live.",
        description="Without this, keys live 1 hour (or the mount's tuned default_lease_ttl)."),
]
