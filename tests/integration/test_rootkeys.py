"""Rekey and root generation on a real SQLite server: 5/3 -> 3/2, then a restart unseals with the new shares
and refuses the old ones; a generated root token works."""

from __future__ import annotations

from coffer.core.seal import decode_token, new_otp
from conftest import init_and_unseal


def unseal(server, keys: list[str]) -> dict:
    body: dict = {}
    for key in keys:
        r = server.request("PUT", "sys/unseal", token=None, json={"key": key})
        if r.status_code != 200:
            return {"error": r.json()["errors"], "status": r.status_code}
        body = r.json()
    return body


def test_rekey_then_restart_unseals_only_with_the_new_shares(sqlite_server):
    server = sqlite_server
    old_keys, root = init_and_unseal(server, shares=5, threshold=3)
    server.request("PUT", "sys/mounts/kv", token=root, json={"type": "kv-v2"}).raise_for_status()
    server.request("PUT", "kv/data/app", token=root, json={"data": {"pw": "kept"}}).raise_for_status()
    nonce = server.request("PUT", "sys/rekey/init", token=None,
                           json={"secret_shares": 3, "secret_threshold": 2}).json()["nonce"]
    answer = {}
    for key in old_keys[1:4]:
        answer = server.request("PUT", "sys/rekey/update", token=None, json={"key": key, "nonce": nonce}).json()
    assert answer["complete"] is True
    new_keys = answer["keys_base64"]
    assert len(new_keys) == 3 and not set(answer["keys"]) & set(old_keys)

    server.stop()
    server.start()
    status = server.request("GET", "sys/seal-status", token=None).json()
    assert status["sealed"] is True and (status["n"], status["t"]) == (3, 2)
    refused = unseal(server, old_keys[:2])
    assert refused["status"] == 400 and "unseal key is wrong" in refused["error"][0]
    assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is True
    server.request("PUT", "sys/unseal", token=None, json={"reset": True})
    assert unseal(server, [new_keys[2], new_keys[0]])["sealed"] is False
    assert server.request("GET", "kv/data/app", token=root).json()["data"]["data"] == {"pw": "kept"}


def test_generate_root_makes_a_working_root_token(sqlite_server):
    server = sqlite_server
    keys, _ = init_and_unseal(server, shares=3, threshold=2)
    otp = new_otp()
    started = server.request("PUT", "sys/generate-root/attempt", token=None, json={"otp": otp}).json()
    answer = {}
    for key in keys[:2]:
        answer = server.request("PUT", "sys/generate-root/update", token=None,
                                json={"key": key, "nonce": started["nonce"]}).json()
    assert answer["complete"] is True
    token = decode_token(answer["encoded_token"], otp)
    assert server.request("PUT", "sys/mounts/made-by-new-root", token=token, json={"type": "kv"}).status_code == 204
    assert server.request("GET", "auth/token/lookup-self", token=token).json()["data"]["policies"] == ["root"]
