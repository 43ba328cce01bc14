"""What both kv versions share: the reserved part of a mount's storage, key checks, time stamps."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from coffer.errors import InvalidRequest

#: Everything kv version 2 stores lives under this prefix of the mount's storage, so it can never meet a
#: secret written by version 1 (whose keys are the secrets' paths): no path a client can write starts with a
#: control character (``check_key_text``), and the upgrade from version 1 moves every other key in here.
V2_PREFIX = "\x01kv2/"
#: Version 2's documents: a key's metadata, its versions' data.
META = V2_PREFIX + "meta/"
VERSIONS = V2_PREFIX + "versions/"


def new_meta(now: int) -> dict[str, Any]:
    """The metadata document of a key with no versions yet (times in nanoseconds)."""
    return {"created_time": now, "updated_time": now, "current_version": 0, "oldest_version": 0,
            "max_versions": 0, "cas_required": False, "delete_version_after": 0, "custom_metadata": None,
            "versions": {}}


def version_key(key: str, n: int) -> str:
    """Where version ``n`` of ``key`` is stored (by the path's hash: a key's versions never share a folder
    with another key's)."""
    return f"{VERSIONS}{hashlib.sha256(key.encode()).hexdigest()}/{n}"


def check_key_text(key: str) -> str:
    """Refuse a secret path that begins with a control character (the reserved part of the storage does)."""
    if key and ord(key[0]) < 0x20:
        raise InvalidRequest("a secret path cannot begin with a control character")
    return key


def rfc3339_ns(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 in UTC, fractions trimmed as Go prints them."""
    if not ns:
        return ""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"
