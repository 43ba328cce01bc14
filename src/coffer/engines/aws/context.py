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


class Aws:
    def __init__(self, mount: str) -> None:
        self.runtime = Runtime(mount)
        self.clients = Clients(self.runtime)
        self.live = LiveIndex()
        #: Listings some IAM-compatible endpoints lack (skipped once seen missing).
        self.unsupported: set[str] = set()
        self.abandoned: list[Abandoned] = []

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
