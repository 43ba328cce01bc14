"""``config/root`` (how coffer reaches AWS) and ``config/lease`` (how long IAM users live).

config/root never refuses a value Vault accepts: where coffer is stricter it stores the value it can use and
says so in ``warnings`` (an endpoint written without a scheme gets https://), and a value it cannot use at all
is stored with a warning and named in the 400 of every read that needs it. It refuses only what Vault refuses
too (fallback endpoints without as many regions, automated rotation settings that contradict each other).
"""

from __future__ import annotations

import datetime
import os
from typing import Any
from urllib.parse import urlparse

from croniter import croniter

from coffer.durations import format_duration
from coffer.engines.aws.usernames import template_problem
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response
from coffer.framework.storage import StorageView

ROOT = "config/root"
LEASE = "config/lease"
S, I, B, D, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST

#: Without config/lease, IAM user keys live one hour (as Vault's do).
DEFAULT_LEASE = 3600
MIN_ROTATION_PERIOD = 10
#: Test-only (an environment variable, which no configuration file can set): lowers the rotation minimums
#: (the root's 10 s, the static roles' minute, rotation_window's hour) and lets rotation_schedule have a
#: seconds field, so the suite need not wait; it can only lower them.
TEST_MIN_PERIOD_ENV = "COFFER_TEST_MIN_ROTATION_PERIOD"
MIN_ROTATION_WINDOW = 3600
_ENDPOINTS = ("iam_endpoint", "sts_endpoint")


async def read_root(storage: StorageView) -> dict[str, Any]:
    return await storage.get_json(ROOT) or {}


async def read_lease(storage: StorageView) -> dict[str, int] | None:
    return await storage.get_json(LEASE)


def _endpoint(name: str, value: str, warnings: list[str]) -> str:
    """``value`` as a URL botocore can use; written without a scheme, https:// is assumed (as the AWS SDKs do)."""
    value = value.strip()
    if not value:
        return ""
    if "://" not in value:
        fixed = f"https://{value}"
        if urlparse(fixed).netloc:
            warnings.append(f"{name} {value!r} has no scheme; coffer uses {fixed}")
            return fixed
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        warnings.append(f"{name} {value!r} is not an http(s) URL; AWS calls through it fail until it is fixed")
    return value


def unusable(config: dict[str, Any]) -> list[str]:
    """What in ``config`` keeps every AWS call from working (each a sentence that says what to fix)."""
    problems = []
    for name in _ENDPOINTS:
        value = config.get(name) or ""
        parsed = urlparse(value)
        if value and (parsed.scheme not in ("http", "https") or not parsed.netloc):
            problems.append(f"config/root: {name} {value!r} is not an http(s) URL; write config/root with one")
    for value in config.get("sts_fallback_endpoints") or []:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"config/root: sts_fallback_endpoints entry {value!r} is not an http(s) URL")
    if bool(config.get("access_key")) != bool(config.get("secret_key")):
        problems.append("config/root has only one of access_key and secret_key; write both (or neither, to use "
                        "the AWS credential chain)")
    return problems


def template_unusable(config: dict[str, Any]) -> str:
    text = config.get("username_template") or ""
    if not text:
        return ""
    problem, usable = template_problem(text)
    return "" if usable else f"config/root: username_template does not parse ({problem}); write a working one"


def lowered_for_tests(minimum: int) -> int:
    """``minimum``, or less when the test suite set TEST_MIN_PERIOD_ENV."""
    raw = os.environ.get(TEST_MIN_PERIOD_ENV, "").strip()
    return min(minimum, max(1, int(raw))) if raw.isdigit() else minimum


def schedule_problem(schedule: str) -> str:
    """Why ``schedule`` is no rotation_schedule ("" if it is one): a cron expression of the five standard
    fields (or a macro such as @daily). A sixth field, for seconds, only under the test-only variable."""
    fields = len(schedule.split())
    seconds = fields == 6 and lowered_for_tests(60) < 60
    if not croniter.is_valid(schedule) or not (fields == 5 or seconds or schedule.startswith("@")):
        return (f"rotation_schedule {schedule!r} is not a cron expression of five fields (minute hour day-of-month "
                f"month day-of-week, UTC; e.g. \"0 3 * * SAT\")")
    return ""


def next_scheduled(schedule: str, after: float) -> float:
    start = datetime.datetime.fromtimestamp(after, datetime.UTC)
    return float(croniter(schedule, start).get_next(datetime.datetime).timestamp())


async def write_root(req: Request, d: FieldData) -> Response | None:
    problems: list[str] = []
    warnings: list[str] = []
    endpoints = {name: _endpoint(name, d[name], warnings) for name in _ENDPOINTS}
    fallbacks = [_endpoint("sts_fallback_endpoints", e, warnings) for e in d["sts_fallback_endpoints"]]
    if len(fallbacks) != len(d["sts_fallback_regions"]):
        problems.append("sts_fallback_endpoints and sts_fallback_regions must have the same number of entries "
                        f"(got {len(fallbacks)} and {len(d['sts_fallback_regions'])})")
    if bool(d["access_key"]) != bool(d["secret_key"]):
        warnings.append("only one of access_key and secret_key was given: AWS calls fail until both are (or "
                        "neither, to use the AWS credential chain)")
    max_retries = d["max_retries"]
    if max_retries < -1:
        warnings.append(f"max_retries {max_retries} means the SDK's default here (-1)")
        max_retries = -1
    if d["username_template"]:
        problem, usable = template_problem(d["username_template"])
        if problem:
            warnings.append(f"username_template: {problem}" if usable else
                            f"username_template does not parse ({problem}); every read of creds/ fails until it "
                            "is fixed")
    if d["role_arn"] and not d["role_arn"].startswith("arn:"):
        warnings.append(f"role_arn {d['role_arn']!r} does not look like an IAM role ARN")
    if d["max_calls_per_second"] < 0:
        problems.append("max_calls_per_second must be 0 (no limit) or a positive number of AWS calls per second")
    for name in ("identity_token_audience", "identity_token_ttl"):
        if d[name]:
            warnings.append(f"{name}: workload identity federation is not available in coffer; ignored")
    period, schedule, window = d["rotation_period"], d["rotation_schedule"].strip(), d["rotation_window"]
    if period and schedule:
        problems.append("rotation_period and rotation_schedule are mutually exclusive: give one")
    if period and period < lowered_for_tests(MIN_ROTATION_PERIOD):
        problems.append(f"rotation_period must be at least {lowered_for_tests(MIN_ROTATION_PERIOD)}s")
    if schedule and (problem := schedule_problem(schedule)):
        problems.append(problem)
    if window and not schedule:
        problems.append("rotation_window applies only with rotation_schedule")
    if window and window < lowered_for_tests(MIN_ROTATION_WINDOW):
        problems.append("rotation_window must be at least 1h")
    if (period or schedule) and not (d["access_key"] and d["secret_key"]):
        warnings.append("automated root rotation needs access_key and secret_key; until they are set it does "
                        "nothing")
    if problems:
        raise InvalidRequest(*problems)
    config = {
        "access_key": d["access_key"], "secret_key": d["secret_key"], "region": d["region"],
        **endpoints, "sts_region": d["sts_region"],
        "sts_fallback_endpoints": fallbacks, "sts_fallback_regions": d["sts_fallback_regions"],
        "max_retries": max_retries, "username_template": d["username_template"], "role_arn": d["role_arn"],
        "tag_users": d["tag_users"], "max_calls_per_second": d["max_calls_per_second"],
        "rotation_period": period, "rotation_schedule": schedule, "rotation_window": window,
        "disable_automated_rotation": d["disable_automated_rotation"],
    }
    await req.storage.put_json(ROOT, config)
    return Response(warnings=warnings) if warnings else None


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


ROOT_FIELDS = {
    "access_key": Field(S, "Access key ID of the IAM user coffer acts as.", default=""),
    "secret_key": Field(S, "Its secret access key (never returned).", default=""),
    "region": Field(S, "AWS region; else AWS_REGION, AWS_DEFAULT_REGION, then us-east-1.", default=""),
    "iam_endpoint": Field(S, "A custom IAM endpoint URL.", default=""),
    "sts_endpoint": Field(S, "A custom STS endpoint URL.", default=""),
    "sts_region": Field(S, "Region for STS calls (default: region).", default=""),
    "sts_fallback_endpoints": Field(L, "STS endpoints tried in order when sts_endpoint does not answer.",
                                    default=[]),
    "sts_fallback_regions": Field(L, "The region of each fallback endpoint (as many as endpoints).", default=[]),
    "max_retries": Field(I, "Retries for recoverable AWS errors (-1: the SDK's default).", default=-1),
    "username_template": Field(S, "Template for IAM user and STS session names (Vault's syntax).", default=""),
    "role_arn": Field(S, "An IAM role every engine call is made as (assumed with the credentials above).",
                      default=""),
    "tag_users": Field(B, "Tag each IAM user with coffer's mount, role and lease id (in CreateUser).",
                       default=False),
    "max_calls_per_second": Field(I, "This mount's budget of AWS calls per second (0: no limit); revocation "
                                     "goes first.", default=0),
    "rotation_period": Field(D, "Rotate the root key this often (at least 10s).", default=0),
    "rotation_schedule": Field(S, "Rotate the root key on this cron schedule (UTC).", default=""),
    "rotation_window": Field(D, "With rotation_schedule: give up a scheduled rotation not done within this "
                                "long (at least 1h).", default=0),
    "disable_automated_rotation": Field(B, "Keep the rotation settings but do not rotate automatically.",
                                        default=False),
    "identity_token_audience": Field(S, "Not available in coffer (workload identity); ignored.", default=""),
    "identity_token_ttl": Field(D, "Not available in coffer (workload identity); ignored.", default=0),
}

PATHS = [
    Path("config/root", {"read": get_root, "write": write_root}, dict(ROOT_FIELDS),
         synopsis="Configure the root credentials coffer uses to reach AWS.",
         description="Without access_key and secret_key, the standard AWS credential chain is used "
                     "(environment, shared credentials file, instance or task role). Reading never returns "
                     "secret_key."),
    Path("config/lease", {"read": get_lease, "write": write_lease}, {
        "lease": Field(D, "Default lease of IAM user keys, e.g. 1h."),
        "lease_max": Field(D, "Maximum lease (renewals stop there), e.g. 24h."),
    }, synopsis="Configure how long IAM user keys live.",
        description="Without this, keys live 1 hour (or the mount's tuned default_lease_ttl)."),
]
