"""init / unseal / seal / restart / rotate on a real SQLite file, over real HTTP.

Behaviour follows Vault's documented API for sys/init, sys/seal-status,
sys/unseal, sys/seal, sys/health, sys/leader, sys/rotate and sys/key-status.
"""

from __future__ import annotations

import base64
import concurrent.futures
import uuid
from pathlib import Path

import pytest

SEALED_BODY = {"errors": ["Vault is sealed"]}


# -- helpers -------------------------------------------------------------------


def init(server, shares: int = 5, threshold: int = 3) -> dict:
    r = server.request("PUT", "sys/init", token=None, json={"secret_shares": shares, "secret_threshold": threshold})
    assert r.status_code == 200, r.text
    return r.json()


def unseal(server, key: str | None = None, **body) -> dict:
    if key is not None:
        body["key"] = key
    r = server.request("PUT", "sys/unseal", token=None, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def unseal_with(server, keys: list[str]) -> dict:
    status = {}
    for key in keys:
        status = unseal(server, key)
    assert status["sealed"] is False, status
    assert status["progress"] == 0
    return status


def seal_status(server) -> dict:
    r = server.request("GET", "sys/seal-status", token=None)
    assert r.status_code == 200, r.text
    return r.json()


def restart(server) -> None:
    server.stop()  # SIGTERM
    server.start()


def storage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("coffer.db"))


def storage_bytes(directory: Path) -> bytes:
    files = storage_files(directory)
    assert any(p.name == "coffer.db" for p in files), f"no SQLite file in {directory}: {list(directory.iterdir())}"
    return b"".join(p.read_bytes() for p in files)


def assert_not_in_storage(directory: Path, needle: str, what: str) -> None:
    forms = {needle.encode(), needle.encode("utf-16-le"), base64.b64encode(needle.encode())}
    for path in storage_files(directory):
        raw = path.read_bytes()
        for form in forms:
            assert form not in raw, f"{what} appears in plaintext in {path.name}"


@pytest.fixture
def unsealed(sqlite_server):
    """An initialized (5 shares, threshold 3) and unsealed SQLite server."""
    body = init(sqlite_server)
    unseal_with(sqlite_server, body["keys"][:3])
    return sqlite_server, body["keys"], body["root_token"]


def mount_kv(server, token: str, path: str = "kv") -> None:
    r = server.request("POST", f"sys/mounts/{path}", token=token, json={"type": "kv"})
    assert r.status_code == 204, r.text


def write(server, token: str, path: str, data: dict) -> None:
    r = server.request("PUT", path, token=token, json=data)
    assert r.status_code == 204, r.text


def read(server, token: str, path: str) -> dict:
    r = server.request("GET", path, token=token)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
    return r.json()["data"]


# -- before init -------------------------------------------------------------------


def test_uninitialized_server(sqlite_server):
    r = sqlite_server.request("GET", "sys/init", token=None)
    assert r.status_code == 200
    assert r.json() == {"initialized": False}

    r = sqlite_server.request("GET", "sys/health", token=None)
    assert r.status_code == 501
    assert r.json()["initialized"] is False
    assert r.json()["sealed"] is True

    status = seal_status(sqlite_server)
    assert status["initialized"] is False and status["sealed"] is True

    # Anything else answers a clear error, never a 500.
    for method, path in [("GET", "secret/foo"), ("PUT", "kv/foo"), ("GET", "sys/mounts"),
                         ("POST", "auth/token/create"), ("PUT", "sys/seal")]:
        r = sqlite_server.request(method, path, json={"a": "b"} if method in ("PUT", "POST") else None)
        assert r.status_code == 503, f"{method} {path}: {r.status_code} {r.text}"
        errors = r.json()["errors"]
        assert errors and any("sealed" in e or "not initialized" in e for e in errors), errors

    # Unsealing before init explains itself.
    r = sqlite_server.request("PUT", "sys/unseal", token=None, json={"key": "00" * 33})
    assert r.status_code == 400
    assert "not initialized" in r.json()["errors"][0]


def test_init(sqlite_server):
    body = init(sqlite_server)
    assert set(body) >= {"keys", "keys_base64", "root_token"}
    assert len(body["keys"]) == 5 and len(body["keys_base64"]) == 5
    assert len(set(body["keys"])) == 5
    for hex_key, b64_key in zip(body["keys"], body["keys_base64"], strict=True):
        assert bytes.fromhex(hex_key) == base64.b64decode(b64_key)
    assert body["root_token"].startswith("hvs.")

    assert sqlite_server.request("GET", "sys/init", token=None).json() == {"initialized": True}

    again = sqlite_server.request("PUT", "sys/init", token=None, json={"secret_shares": 5, "secret_threshold": 3})
    assert again.status_code == 400
    assert "already initialized" in again.json()["errors"][0]
    # the failed second init changed nothing: the original shares still unseal
    unseal_with(sqlite_server, body["keys"][2:5])


def test_concurrent_inits_yield_exactly_one_usable_keyset(sqlite_server):
    def attempt(_):
        return sqlite_server.request("PUT", "sys/init", token=None, json={"secret_shares": 3, "secret_threshold": 2})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [400] * 7, f"one init must win, the others be refused: {codes}"
    winner = next(r.json() for r in answers if r.status_code == 200)
    # the winner's shares really unseal the server, and its root token works
    unseal_with(sqlite_server, winner["keys"][:2])
    assert sqlite_server.request("GET", "sys/mounts", token=winner["root_token"]).status_code == 200
    restart(sqlite_server)
    unseal_with(sqlite_server, winner["keys"][1:])
    assert sqlite_server.request("GET", "auth/token/lookup-self", token=winner["root_token"]).status_code == 200


@pytest.mark.parametrize(
    "shares,threshold",
    [(0, 0), (3, 4), (5, 1), (256, 3), (-1, 1)],
)
def test_init_rejects_bad_parameters(sqlite_server, shares, threshold):
    r = sqlite_server.request("PUT", "sys/init", token=None,
                              json={"secret_shares": shares, "secret_threshold": threshold})
    assert r.status_code == 400, r.text
    assert r.json()["errors"]
    # still uninitialized, and a good init works afterwards
    assert sqlite_server.request("GET", "sys/init", token=None).json() == {"initialized": False}
    init(sqlite_server)


@pytest.mark.parametrize("extra", [
    {"pgp_keys": ["a", "b", "c", "d", "e"]},
    {"root_token_pgp_key": "mQENBF..."},
])
def test_init_refuses_pgp_rather_than_returning_plaintext_keys(sqlite_server, extra):
    r = sqlite_server.request("PUT", "sys/init", token=None,
                              json={"secret_shares": 5, "secret_threshold": 3, **extra})
    assert r.status_code == 400, f"PGP-encrypted keys were asked for; got {r.status_code} {r.text[:200]}"
    assert "pgp" in r.json()["errors"][0]
    assert sqlite_server.request("GET", "sys/init", token=None).json() == {"initialized": False}


# -- sealed --------------------------------------------------------------------


def test_sealed_server(sqlite_server):
    init(sqlite_server)

    r = sqlite_server.request("GET", "sys/health", token=None)
    assert r.status_code == 503
    assert r.json()["initialized"] is True and r.json()["sealed"] is True
    r = sqlite_server.request("GET", "sys/health?sealedcode=299", token=None)
    assert r.status_code == 299
    assert r.json()["sealed"] is True
    r = sqlite_server.request("GET", "sys/health?sealedcode=99", token=None)
    assert r.status_code == 400, "an invalid status code must be refused (it used to kill the server)"
    assert "sealedcode" in r.json()["errors"][0]
    assert sqlite_server.request("GET", "sys/health", token=None).status_code == 503

    for method, path in [("GET", "secret/any"), ("GET", "kv/some/path"), ("PUT", "secret/any"),
                         ("GET", "sys/mounts"), ("GET", "auth/token/lookup-self")]:
        r = sqlite_server.request(method, path, token="hvs.whatever", json={"a": "b"} if method == "PUT" else None)
        assert r.status_code == 503, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json() == SEALED_BODY
        assert r.headers["Content-Type"].startswith("application/json")

    status = seal_status(sqlite_server)
    assert status["sealed"] is True and status["initialized"] is True
    assert (status["t"], status["n"], status["progress"]) == (3, 5, 0)
    assert status["type"] == "shamir"


def test_unseal_progress(sqlite_server):
    keys = init(sqlite_server)
    hex_keys, b64_keys = keys["keys"], keys["keys_base64"]

    s = unseal(sqlite_server, hex_keys[0])
    assert (s["sealed"], s["progress"], s["t"], s["n"]) == (True, 1, 3, 5)

    s = unseal(sqlite_server, hex_keys[0])  # the same share again does not count twice
    assert s["progress"] == 1 and s["sealed"] is True

    s = unseal(sqlite_server, b64_keys[1])  # base64 is accepted too
    assert s["progress"] == 2 and s["sealed"] is True

    s = unseal(sqlite_server, b64_keys[0])  # share 1 again, in the other encoding
    assert s["progress"] == 2 and s["sealed"] is True

    s = unseal(sqlite_server, reset=True)
    assert s["progress"] == 0 and s["sealed"] is True
    assert seal_status(sqlite_server)["progress"] == 0

    s = unseal(sqlite_server, hex_keys[4])
    assert s["progress"] == 1
    s = unseal(sqlite_server, b64_keys[2])
    assert s["progress"] == 2
    s = unseal(sqlite_server, hex_keys[3])
    assert s["sealed"] is False and s["progress"] == 0

    status = seal_status(sqlite_server)
    assert status["sealed"] is False and status["progress"] == 0
    r = sqlite_server.request("GET", "sys/health", token=None)
    assert r.status_code == 200 and r.json()["sealed"] is False


@pytest.mark.parametrize("body", [
    {"key": "zz!!"},
    {"key": "abcd"},  # valid hex, wrong length
    {"key": base64.b64encode(b"x" * 10).decode()},
    {},
])
def test_unseal_rejects_garbage(sqlite_server, body):
    keys = init(sqlite_server)["keys"]
    unseal(sqlite_server, keys[0])
    r = sqlite_server.request("PUT", "sys/unseal", token=None, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"] and r.json()["errors"][0]
    # the server keeps serving, and the good share given before still counts
    status = seal_status(sqlite_server)
    assert status["sealed"] is True and status["progress"] == 1
    unseal_with(sqlite_server, keys[1:3])


def test_unseal_with_shares_of_another_server_fails_and_resets(sqlite_server):
    keys = init(sqlite_server)["keys"]
    # 33-byte shares with the right shape that do not combine to this root key
    foreign = ["01" + "11" * 32, "02" + "22" * 32, "03" + "33" * 32]
    unseal(sqlite_server, foreign[0])
    unseal(sqlite_server, foreign[1])
    r = sqlite_server.request("PUT", "sys/unseal", token=None, json={"key": foreign[2]})
    assert r.status_code == 400, r.text
    status = seal_status(sqlite_server)
    assert status["sealed"] is True and status["progress"] == 0
    unseal_with(sqlite_server, keys[:3])


# -- persistence, restart, rotation ------------------------------------------------


def test_secrets_survive_restart_and_rotation(unsealed):
    server, keys, root = unsealed
    mount_kv(server, root)
    secrets = {f"kv/app{i}/config": {"user": f"u{i}", "password": f"p-{uuid.uuid4()}", "n": i} for i in range(5)}
    secrets["kv/deep/a/b/c"] = {"nested": {"x": [1, 2, 3]}, "flag": True}
    for path, data in secrets.items():
        write(server, root, path, data)

    restart(server)
    status = seal_status(server)
    assert status["sealed"] is True and status["initialized"] is True
    assert (status["t"], status["n"], status["progress"]) == (3, 5, 0)
    assert server.request("GET", "kv/app0/config", token=root).json() == SEALED_BODY

    unseal_with(server, keys[2:5])  # shares 3, 4, 5
    for path, data in secrets.items():
        assert read(server, root, path) == data
    assert "kv/" in server.request("GET", "sys/mounts", token=root).json()["data"]

    r = server.request("GET", "sys/key-status", token=root)
    assert r.status_code == 200, r.text
    assert r.json()["term"] == 1
    assert r.json()["data"]["term"] == 1
    assert r.json()["install_time"]

    r = server.request("PUT", "sys/rotate", token=root)
    assert r.status_code == 204, r.text
    assert server.request("GET", "sys/key-status", token=root).json()["term"] == 2

    write(server, root, "kv/after-rotate", {"value": "written with term 2"})
    for path, data in secrets.items():
        assert read(server, root, path) == data

    restart(server)
    assert seal_status(server)["sealed"] is True
    unseal_with(server, [keys[4], keys[0], keys[2]])
    assert server.request("GET", "sys/key-status", token=root).json()["term"] == 2
    for path, data in secrets.items():
        assert read(server, root, path) == data
    assert read(server, root, "kv/after-rotate") == {"value": "written with term 2"}
    # the root token survived both restarts
    r = server.request("GET", "auth/token/lookup-self", token=root)
    assert r.status_code == 200 and "root" in r.json()["data"]["policies"]


def test_rotate_needs_sudo(unsealed):
    server, _keys, root = unsealed
    token = _token_with_policy(server, root, "rotate-no-sudo",
                               'path "sys/rotate" { capabilities = ["update", "create"] }\n'
                               'path "sys/key-status" { capabilities = ["read"] }')
    r = server.request("PUT", "sys/rotate", token=token)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    assert server.request("GET", "sys/key-status", token=token).json()["term"] == 1


# -- nothing in plaintext -----------------------------------------------------------


def test_no_plaintext_secret_or_root_token_in_sqlite_files(unsealed, tmp_path):
    server, keys, root = unsealed
    mount_kv(server, root)
    value = f"s3cr3t-value-{uuid.uuid4()}"
    other = f"s3cr3t-other-{uuid.uuid4()}"
    write(server, root, "kv/plain/check", {"password": value})
    write(server, root, "kv/plain/second", {"api_key": other, "note": value})
    # a child token: its id must not be stored either
    r = server.request("POST", "auth/token/create", token=root, json={"policies": ["default"], "ttl": "1h"})
    assert r.status_code == 200, r.text
    child = r.json()["auth"]["client_token"]
    assert read(server, root, "kv/plain/check") == {"password": value}

    # while running (values may still sit in the -wal file)
    assert storage_bytes(tmp_path)
    for needle, what in [(value, "a secret value"), (other, "a secret value"),
                         (root, "the root token"), (child, "a child token")]:
        assert_not_in_storage(tmp_path, needle, what)
    for key in keys:
        assert_not_in_storage(tmp_path, key, "an unseal key share (hex)")

    # after a clean stop (checkpointed into the main file)
    server.stop()
    assert storage_bytes(tmp_path)
    for needle, what in [(value, "a secret value"), (other, "a secret value"),
                         (root, "the root token"), (child, "a child token")]:
        assert_not_in_storage(tmp_path, needle, what)

    server.start()
    unseal_with(server, keys[:3])
    assert read(server, root, "kv/plain/second") == {"api_key": other, "note": value}


# -- seal ------------------------------------------------------------------------


def _token_with_policy(server, root: str, name: str, policy: str) -> str:
    r = server.request("PUT", f"sys/policy/{name}", token=root, json={"policy": policy})
    assert r.status_code == 204, r.text
    r = server.request("POST", "auth/token/create", token=root, json={"policies": [name], "ttl": "1h"})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def test_seal_needs_sudo(unsealed):
    server, keys, root = unsealed
    token = _token_with_policy(server, root, "seal-no-sudo", 'path "sys/seal" { capabilities = ["update", "create"] }')
    r = server.request("PUT", "sys/seal", token=token)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    assert seal_status(server)["sealed"] is False

    for bad in (None, "hvs.not-a-real-token"):
        r = server.request("PUT", "sys/seal", token=bad)
        assert r.status_code == 403
        assert seal_status(server)["sealed"] is False

    r = server.request("PUT", "sys/seal", token=root)
    assert r.status_code == 204, r.text
    assert r.content == b""
    status = seal_status(server)
    assert status["sealed"] is True and status["progress"] == 0
    assert server.request("GET", "sys/health", token=None).status_code == 503
    assert server.request("GET", "sys/mounts", token=root).json() == SEALED_BODY

    # and it unseals again with any threshold of shares
    unseal_with(server, [keys[1], keys[3], keys[4]])
    assert server.request("GET", "sys/mounts", token=root).status_code == 200


def test_seal_with_sudo_policy(unsealed):
    server, _keys, root = unsealed
    token = _token_with_policy(server, root, "seal-sudo", 'path "sys/seal" { capabilities = ["update", "sudo"] }')
    r = server.request("PUT", "sys/seal", token=token)
    assert r.status_code == 204, r.text
    assert seal_status(server)["sealed"] is True


# -- leader ------------------------------------------------------------------------


def test_leader(sqlite_server):
    r = sqlite_server.request("GET", "sys/leader", token=None)
    assert r.status_code == 200
    assert r.json()["ha_enabled"] is False
    init(sqlite_server)
    r = sqlite_server.request("GET", "sys/leader", token=None)
    assert r.status_code == 200 and r.json()["ha_enabled"] is False
