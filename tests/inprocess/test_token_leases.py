"""Revoking a token revokes every lease it made, however many (a batch of the index is 500)."""

from __future__ import annotations


async def test_revoking_a_token_revokes_all_its_leases(coffer):
    assert (await coffer.call("POST", "sys/mounts/things", json={"type": "leasetest"})).status_code == 204
    token = (await coffer.call("POST", "auth/token/create", json={"policies": ["root"]})).json()["auth"]
    for _ in range(1234):
        r = await coffer.call("GET", "things/creds/many", token=token["client_token"], params={"ttl": "1h"})
        assert r.status_code == 200
    assert (await coffer.call("GET", "sys/leases/count")).json()["data"]["lease_count"] == 1234
    assert (await coffer.call("POST", "auth/token/revoke", json={"token": token["client_token"]})).status_code == 204
    assert (await coffer.call("GET", "sys/leases/count")).json()["data"]["lease_count"] == 0
    revoked = (await coffer.call("GET", "things/revocations/many")).json()["data"]
    assert len(revoked) == 1234 and set(revoked.values()) == {1}
