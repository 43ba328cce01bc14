"""boto3 clients for one mount, and running their (blocking) calls off the loop.

One IAM client per distinct ``config/root`` (STS joins with the STS credential types), cached by a
fingerprint of that config, so a rewrite of the config rebuilds them. Every
AWS call runs in a bounded thread pool shared by all mounts: a slow AWS call
never stalls the event loop, and concurrent requests are not serialised.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from coffer.framework import metrics

T = TypeVar("T")

#: AWS calls in flight at once, across every AWS mount of this server.
POOL_SIZE = 32
_pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="aws")

THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                  "SlowDown", "RequestThrottled", "RequestThrottledException"}


def region_of(config: dict[str, Any]) -> str:
    return (config.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1")


class Clients:
    """The IAM client of one mount, rebuilt whenever its config/root changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key = ""
        self._iam: Any = None

    def iam(self, config: dict[str, Any]) -> Any:
        """The IAM client for ``config`` (built once per distinct config)."""
        key = hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if key != self._key:
            with self._lock:
                if key != self._key:
                    self._iam = self._client("iam", config)
                    self._key = key
        return self._iam

    @staticmethod
    def _client(service: str, config: dict[str, Any]) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=config.get("access_key") or None,
            aws_secret_access_key=config.get("secret_key") or None,
            region_name=(config.get("sts_region") if service == "sts" else None) or region_of(config),
        )
        retries = config.get("max_retries", -1)
        botocfg = Config(
            retries={"mode": "standard", **({"total_max_attempts": retries + 1} if retries >= 0 else {})},
            max_pool_connections=POOL_SIZE,
            connect_timeout=10,
            read_timeout=30,
        )
        return instrument(session.client(service, endpoint_url=config.get(f"{service}_endpoint") or None,
                                         config=botocfg))


# -- metrics: every AWS call (with the SDK's retries) by service, action and outcome, and its latency

def _call_started(model: Any, context: dict[str, Any], **_: Any) -> None:
    context["coffer_call"] = (model.service_model.service_name, model.name, time.monotonic())


def _call_answered(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    service, action, started = context.pop("coffer_call", ("", "", 0.0))
    if not action:
        return
    outcome = metrics.OK
    if http_response.status_code >= 300:
        code = str((parsed or {}).get("Error", {}).get("Code", ""))
        outcome = metrics.THROTTLED if code in THROTTLE_CODES else metrics.ERROR
    metrics.aws_call(service, action, outcome, time.monotonic() - started)


def _call_failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    service, action, started = context.pop("coffer_call", ("", "", 0.0))
    if action:
        metrics.aws_call(service, action, metrics.ERROR, time.monotonic() - started)


def instrument(client: Any) -> Any:
    """Make ``client`` record each of its calls in coffer's metrics (framework.metrics.aws_call)."""
    events = client.meta.events
    events.register("before-call.*.*", _call_started)
    events.register("after-call.*.*", _call_answered)
    events.register("after-call-error.*.*", _call_failed)
    return client


def sts_with_key(config: dict[str, Any], access_key: str, secret_key: str) -> Any:
    """An STS client signing with a newly made key (one attempt per call)."""
    return Clients._client("sts", {**config, "access_key": access_key, "secret_key": secret_key, "max_retries": 0})


async def call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run one blocking AWS SDK call in the AWS thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, lambda: fn(*args, **kwargs))


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """AWS's own words for a failure, without the SDK's wrapping."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Message") or err.get("Code") or exc)
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def is_throttle(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLE_CODES
