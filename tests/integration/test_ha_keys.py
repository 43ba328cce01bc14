"""HA and the unseal keys: a node holding keys that were changed through another node seals itself when it
takes the lock (instead of trying for ever while answering as a healthy standby)."""

from __future__ import annotations

from pathlib import Path

from test_ha import fresh_cluster, wait_for

from conftest import remember_secret


def test_a_standby_whose_keys_were_rekeyed_elsewhere_seals_itself(tmp_path: Path) -> None:
    with fresh_cluster(tmp_path) as c:
        a, b = c.node(), c.node()
        root = c.init_one_key(a)
        for node in (a, b):
            c.unseal(node)
        assert c.active() is a
        a.request("POST", "sys/mounts/kv", token=root, json={"type": "kv"}).raise_for_status()
        a.request("PUT", "kv/app", token=root, json={"v": "kept"}).raise_for_status()

        nonce = a.request("PUT", "sys/rekey/init", token=None,
                          json={"secret_shares": 3, "secret_threshold": 2}).json()["nonce"]
        answer = a.request("PUT", "sys/rekey/update", token=None, json={"key": c.keys[0], "nonce": nonce}).json()
        assert answer["complete"] is True, answer
        remember_secret(answer["keys"])
        new_keys = answer["keys"]

        a.stop()  # b takes the lock with the old root key in memory
        wait_for("b sealed", lambda: b.request("GET", "sys/seal-status", token=None).json()["sealed"] is True)
        assert "the keyring no longer opens with the key this node was unsealed with" in b.log()
        status = b.request("GET", "sys/seal-status", token=None).json()
        assert (status["t"], status["n"]) == (2, 3)  # the seal it must now be unsealed with
        assert b.request("GET", "sys/health", token=None).status_code == 503

        c.keys = new_keys[:2]
        c.unseal(b)
        assert c.active(among=[b]) is b
        assert b.request("GET", "kv/app", token=root).json()["data"] == {"v": "kept"}
