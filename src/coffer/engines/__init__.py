"""Secrets engines. Each one exposes a factory: mount entry -> Backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coffer.core.mounts import MountEntry
    from coffer.framework.backend import Backend


def builtin_engines() -> dict[str, Callable[[MountEntry], Backend]]:
    from coffer.engines import kv

    return {"kv": kv.factory, "generic": kv.factory}
