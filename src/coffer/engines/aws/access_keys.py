"""CreateAccessKey, with the keys of lost answers cleaned up.

When an answer to CreateAccessKey is lost (the connection dropped after IAM
made the key) the SDK retries, and IAM makes another key: the first one is
live and nobody holds its secret. Two such losses fill a user's quota of two
keys, and the third attempt fails with LimitExceeded. So whenever the SDK
retried, every key on the user that the caller did not hold before and that
is not the one answered is deleted; on LimitExceeded they are deleted first
and the key created once more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from coffer.engines.aws.clients import error_code
from coffer.engines.aws.failures import StepError, step

log = logging.getLogger("coffer.engines.aws")


def _retried(answer: Any) -> bool:
    return bool((answer or {}).get("ResponseMetadata", {}).get("RetryAttempts", 0))


def _delete_strays(iam: Any, user: str, keep: set[str], what: str) -> list[str]:
    """Delete every key of ``user`` not in ``keep``; answers their ids."""
    keys = step(f"{what} (listing the keys of {user} after a lost answer)", iam.list_access_keys,
                UserName=user)["AccessKeyMetadata"]
    strays = [k["AccessKeyId"] for k in keys if k["AccessKeyId"] not in keep]
    for key_id in strays:
        try:
            iam.delete_access_key(UserName=user, AccessKeyId=key_id)
        except Exception as exc:
            if error_code(exc) != "NoSuchEntity":
                raise StepError(f"{what} (deleting key {key_id} of {user}, made by a lost attempt)", exc) from exc
    return strays


def create_access_key(iam: Any, user: str, what: str, held: Iterable[str] = ()) -> dict[str, Any]:
    """A new key of ``user`` (IAM's AccessKey dict); ``held`` are the user's keys the caller knows of."""
    keep = set(held)
    try:
        answer = iam.create_access_key(UserName=user)
    except Exception as exc:
        if error_code(exc) != "LimitExceeded" or not _retried(getattr(exc, "response", None)):
            raise StepError(what, exc) from exc
        _delete_strays(iam, user, keep, what)
        answer = step(what, iam.create_access_key, UserName=user)
    made: dict[str, Any] = answer["AccessKey"]
    if _retried(answer):
        try:
            _delete_strays(iam, user, keep | {made["AccessKeyId"]}, what)
        except StepError as exc:
            # The new key is good; the stray stays live until it can be deleted by hand (or with the user).
            log.warning("%s", exc)
    return made
