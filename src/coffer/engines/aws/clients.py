"""boto3 clients for one mount, and running their (blocking) calls off the loop.

One IAM and one STS client per distinct ``config/root``, cached by a
fingerprint of that config, so a rewrite of the config rebuilds them. Every
AWS call runs in a bounded thread pool shared by all mounts: a slow AWS call
never stalls the event loop, and concurrent requests are not serialised.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
    """The clients of one mount, rebuilt whenever its config/root changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key = ""
        self._iam: Any = None
        self._sts: Any = None

    def _build(self, config: dict[str, Any]) -> None:
        key = hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if key == self._key:
            return
        with self._lock:
            if key == self._key:
                return
            session = boto3.session.Session(
                aws_access_key_id=config.get("access_key") or None,
                aws_secret_access_key=config.get("secret_key") or None,
                region_name=region_of(config),
            )
            retries = config.get("max_retries", -1)
            botocfg = Config(
                retries={"mode": "standard", **({"total_max_attempts": retries + 1} if retries >= 0 else {})},
                max_pool_connections=POOL_SIZE,
                connect_timeout=10,
                read_timeout=30,
            )
            self._iam = session.client("iam", endpoint_url=config.get("iam_endpoint") or None, config=botocfg)
            self._sts = session.client("sts", endpoint_url=config.get("sts_endpoint") or None,
                                       region_name=config.get("sts_region") or region_of(config), config=botocfg)
            self._key = key

    def iam(self, config: dict[str, Any]) -> Any:
        self._build(config)
        return self._iam

    def sts(self, config: dict[str, Any]) -> Any:
        self._build(config)
        return self._sts


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
