"""Rekey and root generation in-process: the shapes Vault answers, the nonce and share checks, verification,
and that the keys in force change only when they should."""

from __future__ import annotations

import pytest

from coffer.core.seal import OTP_LENGTH, decode_token, new_otp
from coffer.storage.inmem import InmemStorage

from .conftest import InProcess, make_core


@pytest.fixture
async def sealed5():
    """A core initialized with 5 shares / threshold 3, unsealed, its storage kept (for a later unseal)."""
    storage = InmemStorage()
    core = make_core(storage)
    keys, root = await core.initialize(5, 3)
    for key in keys[:3]:
        await core.submit_unseal_key(key)
    app = InProcess(core)
    app.keys, app.root, app.storage = [k.hex() for k in keys], root, storage
    yield app
    await app.http.aclose()
    await core.shutdown()


async def put(app, path, body, token=None):
    return await app.call("PUT", path, token=token, json=body)


async def unseals_with(storage, keys) -> bool:
    core = make_core(storage)
    await core.load_seal_config()
    try:
        for key in keys:
            await core.submit_unseal_key(bytes.fromhex(key))
    except Exception:
        return False
    finally:
        sealed = core.sealed
        await core.shutdown() if not sealed else None
    return not sealed


async def test_rekey_flow_and_the_keys_it_replaces(sealed5):
    app = sealed5
    idle = (await app.call("GET", "sys/rekey/init", token=None)).json()
    assert idle == {"nonce": "", "started": False, "t": 0, "n": 0, "progress": 0, "required": 3,
                    "pgp_fingerprints": None, "backup": False, "verification_required": False}
    started = (await put(app, "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})).json()
    assert started["started"] is True and (started["n"], started["t"], started["required"]) == (3, 2, 3)
    assert (await app.call("GET", "sys/rekey/init", token=None)).json() == started
    again = await put(app, "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})
    assert again.status_code == 400 and again.json()["errors"] == ["rekey already in progress"]
    nonce = started["nonce"]
    wrong = await put(app, "sys/rekey/update", {"key": app.keys[0]})
    assert wrong.json()["errors"] == [f'incorrect nonce supplied; nonce for this rekey operation is "{nonce}"']
    first = (await put(app, "sys/rekey/update", {"key": app.keys[0], "nonce": nonce})).json()
    assert first["progress"] == 1
    twice = await put(app, "sys/rekey/update", {"key": app.keys[0], "nonce": nonce})
    assert twice.status_code == 400 and "already been provided" in twice.json()["errors"][0]
    await put(app, "sys/rekey/update", {"key": app.keys[1], "nonce": nonce})
    done = (await put(app, "sys/rekey/update", {"key": app.keys[2], "nonce": nonce})).json()
    assert done["complete"] is True and len(done["keys"]) == 3 and len(done["keys_base64"]) == 3
    assert done["verification_required"] is False
    status = (await app.call("GET", "sys/seal-status", token=None)).json()
    assert (status["n"], status["t"]) == (3, 2)
    assert (await app.call("GET", "sys/rekey/init", token=None)).json()["required"] == 2
    # the data is still there; the old keys no longer unseal, the new ones do
    assert (await app.call("GET", "auth/token/lookup-self", token=app.root)).status_code == 200
    assert not await unseals_with(app.storage, app.keys[:3])
    assert await unseals_with(app.storage, done["keys"][:2])


async def test_rekey_with_verification(sealed5):
    app = sealed5
    nonce = (await put(app, "sys/rekey/init", {"secret_shares": 2, "secret_threshold": 2,
                                              "require_verification": True})).json()["nonce"]
    for key in app.keys[:2]:
        await put(app, "sys/rekey/update", {"key": key, "nonce": nonce})
    done = (await put(app, "sys/rekey/update", {"key": app.keys[2], "nonce": nonce})).json()
    assert done["verification_required"] is True and done["verification_nonce"]
    assert (await app.call("GET", "sys/seal-status", token=None)).json()["n"] == 5  # not in force yet
    vn = done["verification_nonce"]
    status = (await app.call("GET", "sys/rekey/verify", token=None)).json()
    assert status == {"nonce": vn, "started": True, "t": 2, "n": 2, "progress": 0}
    # an old key counts as a share, but the shares then do not make the new root key: start over
    assert (await put(app, "sys/rekey/verify", {"key": app.keys[0], "nonce": vn})).json()["progress"] == 1
    bad = await put(app, "sys/rekey/verify", {"key": done["keys"][0], "nonce": vn})
    assert bad.status_code == 400 and "not the new unseal keys" in bad.json()["errors"][0]
    assert (await put(app, "sys/rekey/verify", {"key": done["keys"][0], "nonce": vn})).json()["progress"] == 1
    assert (await put(app, "sys/rekey/verify", {"key": done["keys"][1], "nonce": vn})).json() == {
        "nonce": vn, "complete": True}
    assert (await app.call("GET", "sys/seal-status", token=None)).json()["n"] == 2
    assert await unseals_with(app.storage, done["keys"])
    r = await app.call("GET", "sys/rekey/verify", token=None)
    assert r.status_code == 400 and r.json()["errors"] == ["no rekey configuration found"]


async def test_rekey_verification_with_shares_that_cannot_belong_together(sealed5):
    """A new share that happens to carry an old share's x coordinate: the pair cannot combine, which says the
    same as any wrong pair (not the new keys; start over), never an error about coordinates."""
    app = sealed5
    nonce = (await put(app, "sys/rekey/init", {"secret_shares": 2, "secret_threshold": 2,
                                              "require_verification": True})).json()["nonce"]
    for key in app.keys[:3]:
        done = (await put(app, "sys/rekey/update", {"key": key, "nonce": nonce})).json()
    vn = done["verification_nonce"]
    old, new = bytes.fromhex(app.keys[0]), bytes.fromhex(done["keys"][0])
    clash = (new[:-1] + old[-1:]).hex()  # a share of the new size with the old share's x coordinate
    assert (await put(app, "sys/rekey/verify", {"key": app.keys[0], "nonce": vn})).json()["progress"] == 1
    bad = await put(app, "sys/rekey/verify", {"key": clash, "nonce": vn})
    assert bad.status_code == 400 and "not the new unseal keys" in bad.json()["errors"][0]
    for key in done["keys"]:
        last = (await put(app, "sys/rekey/verify", {"key": key, "nonce": vn})).json()
    assert last == {"nonce": vn, "complete": True}


async def test_rekey_refusals(sealed5):
    app = sealed5
    missing = await put(app, "sys/rekey/init", {"secret_threshold": 2})
    assert missing.status_code == 400 and "secret_shares" in missing.json()["errors"][0]
    bad = await put(app, "sys/rekey/init", {"secret_shares": 1, "secret_threshold": 2})
    assert bad.status_code == 400 and bad.json()["errors"][0].startswith("invalid rekey seal configuration")
    assert (await put(app, "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2,
                                              "pgp_keys": ["x"]})).status_code == 400
    assert (await put(app, "sys/rekey/update", {"key": app.keys[0], "nonce": "x"})).json()["errors"] == [
        "no rekey in progress"]
    nonce = (await put(app, "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2})).json()["nonce"]
    assert (await app.call("DELETE", "sys/rekey/init", token=None)).status_code == 204
    assert (await put(app, "sys/rekey/update", {"key": app.keys[0], "nonce": nonce})).status_code == 400
    backup = await app.call("GET", "sys/rekey/backup", token=app.root)
    assert backup.status_code == 400 and backup.json()["errors"] == ["no backed-up keys found"]
    assert (await app.call("GET", "sys/rekey/backup", token=None)).status_code == 403
    assert (await app.call("DELETE", "sys/rekey/backup", token=app.root)).status_code == 204


async def test_generate_root_with_an_otp(sealed5):
    app = sealed5
    idle = (await app.call("GET", "sys/generate-root/attempt", token=None)).json()
    assert idle == {"nonce": "", "started": False, "progress": 0, "required": 3, "complete": False,
                    "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "",
                    "otp_length": OTP_LENGTH}
    short = await put(app, "sys/generate-root/attempt", {"otp": "tooshort"})
    assert short.status_code == 400 and short.json()["errors"] == ["OTP string has incorrect length"]
    otp = new_otp()
    started = (await put(app, "sys/generate-root/attempt", {"otp": otp})).json()
    assert started["started"] is True and started["otp"] == ""
    assert (await put(app, "sys/generate-root/attempt", {"otp": otp})).json()["errors"] == [
        "root generation already in progress"]
    nonce = started["nonce"]
    for key in app.keys[:2]:
        assert (await put(app, "sys/generate-root/update", {"key": key, "nonce": nonce})).json()["complete"] is False
    done = (await put(app, "sys/generate-root/update", {"key": app.keys[4], "nonce": nonce})).json()
    assert done["complete"] is True and done["encoded_token"] == done["encoded_root_token"]
    token = decode_token(done["encoded_token"], otp)
    looked = (await app.call("GET", "auth/token/lookup-self", token=token)).json()["data"]
    assert looked["policies"] == ["root"] and looked["path"] == "auth/token/root" and looked["expire_time"] is None
    assert (await app.call("GET", "sys/generate-root/attempt", token=None)).json()["started"] is False


async def test_generate_root_without_an_otp_gets_one_from_the_server(sealed5):
    app = sealed5
    started = (await put(app, "sys/generate-root/attempt", {})).json()
    otp = started["otp"]
    assert len(otp) == OTP_LENGTH
    assert (await app.call("GET", "sys/generate-root/attempt", token=None)).json()["otp"] == ""
    wrong = await put(app, "sys/generate-root/update", {"key": app.keys[0]})
    assert "incorrect nonce supplied" in wrong.json()["errors"][0]
    assert (await app.call("DELETE", "sys/generate-root/attempt", token=None)).status_code == 204
    assert (await app.call("GET", "sys/generate-root/attempt", token=None)).json()["started"] is False
