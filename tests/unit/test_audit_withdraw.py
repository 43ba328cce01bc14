"""A response no audit device can record is withheld, and its lease revoked at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coffer.core.core import Core
from coffer.engines import builtin_engines, load_plugins
from coffer.errors import CofferError
from coffer.framework.request import READ, Request
from coffer.server import dev_setup
from coffer.storage.inmem import InmemStorage

PLUGINS = Path(__file__).parent.parent / "plugins"


def test_unaudited_secret_is_revoked(tmp_path):
    async def scenario():
        core = Core(InmemStorage(), engines={**builtin_engines(), **load_plugins(str(PLUGINS))[0]})
        await core.load_seal_config()
        _, root = await dev_setup(core, "root")
        await core.handle(Request("update", "sys/mounts/things", {"type": "leasetest"}, client_token=root))
        await core.handle(Request("update", "sys/audit/file", {"type": "file",
                                                               "options": {"file_path": str(tmp_path / "a.log")}},
                                  client_token=root))
        device = core.audit.devices["file/"]
        real_write = device.write

        def write(entry):  # the device takes requests but fails on responses
            if entry["type"] == "response":
                raise OSError("disk full")
            real_write(entry)

        device.write = write
        with pytest.raises(CofferError) as err:
            await core.handle(Request(READ, "things/creds/leaky", {"ttl": "1h"}, client_token=root))
        assert err.value.status == 500 and "withheld" in str(err.value)
        assert await core.expiration.count("things/") == 0
        device.write = real_write
        revoked = await core.handle(Request(READ, "things/revocations/leaky", {}, client_token=root))
        assert list(revoked.data.values()) == [1]
        await core.shutdown()

    asyncio.run(scenario())


def test_unaudited_login_and_wrapping_tokens_are_revoked(tmp_path):
    from coffer.engines import builtin_auth_methods

    async def scenario():
        core = Core(InmemStorage(), engines=builtin_engines(), auth_methods=builtin_auth_methods())
        await core.load_seal_config()
        _, root = await dev_setup(core, "root")
        await core.handle(Request("update", "sys/auth/approle", {"type": "approle"}, client_token=root))
        await core.handle(Request("update", "auth/approle/role/r", {"token_policies": "default",
                                                                    "bind_secret_id": False,
                                                                    "secret_id_bound_cidrs": "127.0.0.1/32",
                                                                    "role_id": "rid"}, client_token=root))
        await core.handle(Request("update", "sys/audit/file", {"type": "file",
                                                               "options": {"file_path": str(tmp_path / "a.log")}},
                                  client_token=root))
        device = core.audit.devices["file/"]

        def write(entry):
            if entry["type"] == "response":
                raise OSError("disk full")

        before = set(await core.tokens.accessors())
        device.write = write
        for wrap_ttl in (0, 60):  # a login's token, and a wrapping token (and the token it wraps)
            with pytest.raises(CofferError) as err:
                await core.handle(Request("update", "auth/approle/login", {"role_id": "rid"}, remote_addr="127.0.0.1",
                                          wrap_ttl=wrap_ttl))
            assert "withheld" in str(err.value)
        assert set(await core.tokens.accessors()) == before
        await core.shutdown()

    asyncio.run(scenario())
