"""In-process tests: coffer's ASGI app driven through httpx, no server process, no sockets.

For logic that is dense (the pipeline, engines, the mount tables) and needs
no real HTTP server; the subprocess tests under integration/ and e2e/ keep
covering the real thing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from coffer.core.core import Core
from coffer.engines import builtin_auth_methods, builtin_engines, load_plugins
from coffer.http.app import App
from coffer.server import dev_setup
from coffer.storage.base import Storage
from coffer.storage.inmem import InmemStorage

PLUGINS = Path(__file__).parent.parent / "plugins"
ROOT = "root"


class InProcess:
    """A core and an HTTP client speaking to its ASGI app in-process."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=App(core)), base_url="http://coffer/v1/")

    async def call(self, method: str, path: str, token: str | None = ROOT, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["X-Vault-Token"] = token
        return await self.http.request(method, path, headers=headers, **kwargs)


def make_core(storage: Storage | None = None) -> Core:
    plugin_engines, plugin_auth = load_plugins(str(PLUGINS))
    return Core(storage or InmemStorage(), engines={**builtin_engines(), **plugin_engines},
                auth_methods={**builtin_auth_methods(), **plugin_auth})


@pytest.fixture
async def coffer() -> AsyncIterator[InProcess]:
    """A dev core (root token ``root``, kv version 1 at secret/ as with -dev-kv-v1) behind its ASGI app."""
    core = make_core()
    await core.load_seal_config()
    await dev_setup(core, ROOT, kv_version=1)
    app = InProcess(core)
    yield app
    await app.http.aclose()
    await core.shutdown()
