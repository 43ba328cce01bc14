"""The token file the CLI and a dev server write: ~/.coffer-token, private from the start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from coffer import client, server


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("COFFER_TOKEN", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_token_writes_a_private_file(home: Path) -> None:
    path = client.save_token("hvs.first")
    assert path == home / ".coffer-token"
    assert path.read_text() == "hvs.first" and mode(path) == 0o600
    assert client.default_token() == "hvs.first"


def test_the_file_is_created_private_not_made_private_afterwards(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with a umask that lets everything through and no chmod at all, the new file is 0600.
    monkeypatch.setattr(os, "fchmod", lambda fd, m: None)
    old = os.umask(0)
    try:
        path = client.save_token("hvs.token")
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_an_existing_file_is_made_private_and_replaced(home: Path) -> None:
    path = home / ".coffer-token"
    path.write_text("hvs.a-much-longer-old-token\n")
    path.chmod(0o644)
    client.save_token("hvs.new")
    assert path.read_text() == "hvs.new" and mode(path) == 0o600


def test_the_dev_server_writes_the_same_file(home: Path) -> None:
    server._write_token_file("hvs.root")
    assert client.default_token() == "hvs.root" and mode(home / ".coffer-token") == 0o600


def test_the_dev_server_survives_a_home_it_cannot_write(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    (home / ".coffer-token").mkdir()  # not a file: the write fails
    server._write_token_file("hvs.root")
    assert "could not write the token file" in caplog.text
    assert "hvs.root" not in caplog.text
