"""What every part of one AWS mount's engine shares: its runtime, clients and index."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from coffer.engines.aws import config as cfg
from coffer.engines.aws.clients import Clients
from coffer.engines.aws.live import LiveIndex
from coffer.engines.aws.runtime import Runtime
from coffer.errors import InvalidRequest
from coffer.framework.storage import StorageView


@dataclass
class Abandoned:
    """An issue whose client went away mid-way: its half-made user is removed by the periodic tick."""

    wal_id: str
    username: str
    role: str
    live_key: str
    at: float = field(default_factory=time.time)


#: How long a teardown call the root credentials were refused is skipped before it is tried again.
REFUSAL_MEMORY = 900.0


class Skips:
    """What the teardowns of one mount leave out.

    Listings the endpoint does not implement (some IAM-compatible endpoints lack e.g. service-specific
    credentials) are skipped for good. Calls the root credentials were refused are skipped for
    ``REFUSAL_MEMORY`` seconds, or until the credentials change: a least-privilege root that may not list
    MFA devices would otherwise make that refused call (and an AccessDenied event in CloudTrail) on every
    revocation. Should IAM then refuse DeleteUser because something is left, the teardown is made again
    with nothing skipped.
    """

    def __init__(self) -> None:
        self.unsupported: set[str] = set()
        self._refused: dict[str, float] = {}
        self._credentials = ""

    def use(self, credentials: str) -> Skips:
        """These skips, for the credentials named ``credentials`` (other credentials forget the refusals)."""
        if credentials != self._credentials:
            self._refused.clear()
            self._credentials = credentials
        return self

    def refused(self, call: str) -> None:
        self._refused[call] = time.monotonic()

    def recently_refused(self, call: str) -> bool:
        at = self._refused.get(call)
        if at is None:
            return False
        if time.monotonic() - at < REFUSAL_MEMORY:
            return True
        self._refused.pop(call, None)  # (teardowns run on several worker threads)
        return False


class Aws:
    def __init__(self, mount: str) -> None:
        self.runtime = Runtime(mount)
        self.clients = Clients(self.runtime)
        self.live = LiveIndex()
        self._skips = Skips()
        self.abandoned: list[Abandoned] = []

    def teardown_skips(self, config: dict[str, Any]) -> Skips:
        """What teardowns with ``config``'s root credentials leave out."""
        return self._skips.use(f"{config.get('access_key', '')}|{config.get('role_arn', '')}")

    async def config(self, storage: StorageView, *, for_issue: bool = False) -> dict[str, Any]:
        """config/root, with the mount's call budget applied; InvalidRequest if it cannot work."""
        config = await cfg.read_root(storage)
        self.runtime.pacer.configure(config.get("max_calls_per_second") or 0)
        problems = cfg.unusable(config)
        if for_issue and (template := cfg.template_unusable(config)):
            problems.append(template)
        if problems:
            raise InvalidRequest(*problems)
        return config
