"""Audit devices cannot become code or damage the store (issue 11, #4; Vault's CVE-2025-6000)."""

from __future__ import annotations

import pytest

from coffer.core.core import Core
from coffer.engines import builtin_engines
from coffer.server import dev_setup
from coffer.storage.inmem import InmemStorage

from .conftest import ROOT, InProcess


@pytest.fixture
async def guarded(tmp_path):
    plugins, store = tmp_path / "plugins", tmp_path / "data"
    plugins.mkdir()
    store.mkdir()
    (tmp_path / "link").symlink_to(plugins)
    core = Core(InmemStorage(), engines=builtin_engines(), audit_protected=(str(plugins), str(store)))
    await core.load_seal_config()
    await dev_setup(core, ROOT)
    app = InProcess(core)
    app.tmp = tmp_path
    yield app
    await app.http.aclose()
    await core.shutdown()


async def enable(app, **options):
    return await app.call("PUT", "sys/audit/file", json={"type": "file", "options": options})


@pytest.mark.parametrize("target", ["plugins/evil.py", "data/coffer.db", "link/evil.py", "plugins/../plugins/x.py"])
async def test_audit_files_in_the_plugin_or_storage_folder_are_refused(guarded, target):
    r = await enable(guarded, file_path=str(guarded.tmp / target))
    assert r.status_code == 400 and "is refused" in r.json()["errors"][0]
    assert not (guarded.tmp / target).exists()


@pytest.mark.parametrize("mode", ["0755", "0700", "4600", "2600", "1600", "0601"])
async def test_executable_and_special_modes_are_refused(guarded, mode):
    r = await enable(guarded, file_path=str(guarded.tmp / "audit.log"), mode=mode)
    assert r.status_code == 400 and "may not be executable" in r.json()["errors"][0]


async def test_prefix_is_off_unless_the_config_allows_it(guarded):
    r = await enable(guarded, file_path=str(guarded.tmp / "audit.log"), prefix="import os #")
    assert r.status_code == 400 and "allow_audit_log_prefixing" in r.json()["errors"][0]
    assert (await enable(guarded, file_path=str(guarded.tmp / "audit.log"), mode="0640")).status_code == 204
