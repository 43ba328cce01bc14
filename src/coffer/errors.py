"""Errors are values with an HTTP status.

Handlers raise these; the HTTP layer turns them into ``{"errors": [...]}``
with the status. Anything else that escapes a handler is a bug (500).
"""

from __future__ import annotations


class CofferError(Exception):
    status = 500

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = [m for m in messages if m] or [self.default_message]

    default_message = "internal error"

    def __str__(self) -> str:
        return "; ".join(self.messages)


class InvalidRequest(CofferError):
    status = 400
    default_message = "invalid request"


class PermissionDenied(CofferError):
    status = 403
    default_message = "permission denied"


class NotFound(CofferError):
    status = 404
    default_message = "not found"


class UnsupportedOperation(CofferError):
    status = 405
    default_message = "unsupported operation"


class PayloadTooLarge(CofferError):
    status = 413
    default_message = "request body too large"


class UnsupportedMediaType(CofferError):
    status = 415
    default_message = "unsupported media type"


class UpstreamError(CofferError):
    status = 502
    default_message = "upstream error"


class Sealed(CofferError):
    status = 503
    default_message = "Vault is sealed"


class RetryLater(CofferError):
    """Not done yet for a passing reason (e.g. an eventually consistent service); the caller retries later."""

    status = 503
    default_message = "temporarily unable to complete; retry later"


class Throttled(CofferError):
    """Too many requests (an outside service throttled coffer, or a quota); ``retry_after`` in seconds."""

    status = 429
    default_message = "too many requests"

    def __init__(self, *messages: str, retry_after: int = 1) -> None:
        super().__init__(*messages)
        self.retry_after = retry_after
