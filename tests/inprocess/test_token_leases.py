"""Revoking a token revokes every lease it made, however many (a batch of the index is 500), crash or not."""

from __future__ import annotations

import asyncio

from coffer.server import dev_setup

from .conftest import ROOT, InProcess, make_core


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


async def test_a_revocation_cut_short_by_a_crash_is_finished_after_unseal():
    """A token's revocation stops after its first step (the entry moved to revoking/, as a crash right there
    leaves it): after the next unseal its child token, its leases and the child's are revoked all the same."""
    core = make_core()
    await core.load_seal_config()
    key, _ = await dev_setup(core, ROOT, kv_version=1)
    coffer = InProcess(core)
    try:
        assert (await coffer.call("POST", "sys/mounts/things", json={"type": "leasetest"})).status_code == 204
        parent = (await coffer.call("POST", "auth/token/create", json={"policies": ["root"]})).json()["auth"]
        child = (await coffer.call("POST", "auth/token/create", token=parent["client_token"],
                                   json={"policies": ["root"]})).json()["auth"]
        for token in (parent, parent, child):
            r = await coffer.call("GET", "things/creds/cut", token=token["client_token"], params={"ttl": "1h"})
            assert r.status_code == 200
        entry = await core.tokens.lookup(parent["client_token"])
        assert entry is not None
        await core.tokens._tombstone(entry)  # the crash: nothing of the revocation after its first batch
        assert (await coffer.call("GET", "sys/leases/count")).json()["data"]["lease_count"] == 3

        await core.seal()
        await core.submit_unseal_key(key)
        for _ in range(200):
            if (await coffer.call("GET", "sys/leases/count")).json()["data"]["lease_count"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await coffer.call("GET", "sys/leases/count")).json()["data"]["lease_count"] == 0
        revoked = (await coffer.call("GET", "things/revocations/cut")).json()["data"]
        assert len(revoked) == 3 and set(revoked.values()) == {1}
        for token in (parent, child):
            r = await coffer.call("GET", "auth/token/lookup-self", token=token["client_token"])
            assert r.status_code == 403
        assert await core.tokens.storage.list("sys/token/revoking/") == []
    finally:
        await coffer.http.aclose()
        await core.shutdown()
