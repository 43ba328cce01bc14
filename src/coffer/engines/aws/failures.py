"""Turning AWS's failures (and the runtime's refusals) into the errors a caller sees."""

from __future__ import annotations

from typing import Any

from coffer.engines.aws.clients import action_of, error_code, error_message, is_throttle
from coffer.engines.aws.runtime import ISSUE, translate
from coffer.errors import InvalidRequest, Throttled, UpstreamError

#: What a client throttled by AWS beyond coffer's retries is told to wait.
THROTTLED_RETRY_AFTER = 5


class StepError(Exception):
    """One AWS call of a multi-step operation failed."""

    def __init__(self, what: str, exc: Exception) -> None:
        super().__init__(f"{what}: {error_message(exc)}")
        self.what = what
        self.cause = exc
        #: During a teardown: the user was seen to exist before the failure.
        self.user_seen = False


def step(what: str, fn: Any, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise StepError(what, exc) from exc


def client_error(exc: Exception, lane: str, what: str = "") -> Exception:
    """The error for a failed AWS operation: AWS's refusal is a 400, its trouble a 502, its throttling a 429
    (on issuance; revocation retries in the background, so there it stays AWS's trouble, 502)."""
    cause = exc.cause if isinstance(exc, StepError) else exc
    what = exc.what if isinstance(exc, StepError) else what
    message = str(exc) if isinstance(exc, StepError) else f"{what}: {error_message(exc)}" if what else \
        error_message(exc)
    own = translate(cause, what or "AWS call", lane)
    if own is not None:
        return own
    if is_throttle(cause):
        action = action_of(cause) or "the call"
        if lane == ISSUE:
            return Throttled(f"{message} (AWS throttled {action} beyond coffer's retries; retry after "
                             f"{THROTTLED_RETRY_AFTER}s)", retry_after=THROTTLED_RETRY_AFTER)
        return UpstreamError(f"{message} (AWS rate-limited {action}; retrying)")
    # botocore's connection errors carry ``response = None``: no HTTP status, so AWS's trouble (502).
    response = getattr(cause, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if error_code(cause) and status < 500:
        return InvalidRequest(message)
    return UpstreamError(message)
