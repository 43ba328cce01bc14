"""Looked-up token entries are cached parsed and shared by every request: nothing can change the shared
object, and each change (renewal, a use, a parent's revocation) goes to storage through a copy."""

from __future__ import annotations

import pytest

from coffer.errors import PermissionDenied

from .conftest import ROOT


async def _token(coffer, **body) -> str:
    r = await coffer.call("POST", "auth/token/create", json={"policies": ["default"], "ttl": "1h", **body})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


async def test_a_looked_up_entry_is_shared_and_refuses_changes(coffer):
    store = coffer.core.tokens
    token = await _token(coffer)
    first, again = await store.lookup(token), await store.lookup(token)
    assert first is again  # parsed once, not per request
    with pytest.raises(AttributeError, match="shared"):
        first.expire_time = 0


async def test_a_renewal_changes_a_copy_and_a_failed_one_changes_nothing(coffer):
    store = coffer.core.tokens
    token = await _token(coffer)
    shared = await store.lookup(token)
    renewed, granted = await store.renew(shared, 7200)
    assert granted == 7200 and renewed is not shared and renewed.expire_time > shared.expire_time
    assert (await store.lookup(token)).expire_time == renewed.expire_time  # the cache dropped the old entry

    cached = await store.lookup(token)
    expire_time = cached.expire_time
    await store.revoke_tree(await store.lookup(await _token(coffer)))  # another token: this cache entry stays
    assert await store.lookup(token) is cached
    assert (await coffer.call("POST", "auth/token/revoke", json={"token": token})).status_code == 204
    with pytest.raises(PermissionDenied):  # its write finds the token gone
        await store.renew(cached, 3600)
    assert cached.expire_time == expire_time and await store.lookup(token) is None


async def test_limited_use_tokens_count_down_through_copies(coffer):
    token = await _token(coffer, num_uses=3)
    shared = await coffer.core.tokens.lookup(token)
    seen = []
    for _ in range(3):
        r = await coffer.call("GET", "auth/token/lookup-self", token=token)
        assert r.status_code == 200, r.text
        seen.append(r.json()["data"]["num_uses"])
    assert seen == [2, 1, 0]  # what is left after the use each request made
    assert shared.num_uses == 3  # the object first looked up was never changed
    assert (await coffer.call("GET", "auth/token/lookup-self", token=token)).status_code == 403


async def test_orphaned_children_are_written_from_a_copy(coffer):
    parent = await _token(coffer, policies=["root"])
    r = await coffer.call("POST", "auth/token/create", token=parent, json={"policies": ["default"], "ttl": "1h"})
    child = r.json()["auth"]["client_token"]
    before = await coffer.core.tokens.lookup(child)
    assert before.parent and not before.orphan
    r = await coffer.call("POST", "auth/token/revoke-orphan", token=ROOT, json={"token": parent})
    assert r.status_code == 204, r.text
    after = await coffer.core.tokens.lookup(child)
    assert after.orphan and not after.parent
    assert before.parent and not before.orphan  # the shared object the first lookup handed out is as it was


async def test_a_sealed_server_keeps_no_token_or_entry_it_looked_up(coffer):
    token = await _token(coffer)
    assert (await coffer.call("GET", "auth/token/lookup-self", token=token)).status_code == 200
    store = coffer.core.tokens
    assert store._hashes and store._cache
    assert (await coffer.call("PUT", "sys/seal")).status_code == 204
    assert not store._hashes and not store._cache  # no token id (nor its entry) stays in memory while sealed


async def test_only_ids_short_enough_to_look_up_keep_their_hash(coffer):
    """The hash cache holds ids a lookup takes (at most 256 characters), not the long ones a root caller may
    choose, and never more than CACHE_SIZE of them."""
    from coffer.core import tokens

    store = coffer.core.tokens
    store.hash("x" * 5000)
    assert "x" * 5000 not in store._hashes
    for n in range(tokens.CACHE_SIZE + 5):
        store.hash(f"hvs.{n}")
    assert len(store._hashes) <= tokens.CACHE_SIZE


async def test_a_custom_id_too_long_to_look_up_is_refused(coffer):
    """No lookup takes an id over 256 characters, so creating a token with one is a 400, not a token that
    never works."""
    r = await coffer.call("POST", "auth/token/create", json={"policies": ["default"], "id": "x" * 257})
    assert r.status_code == 400 and "256" in r.json()["errors"][0]
    r = await coffer.call("POST", "auth/token/create", json={"policies": ["default"], "id": "y" * 256})
    assert r.status_code == 200, r.text
    assert (await coffer.call("GET", "auth/token/lookup-self", token="y" * 256)).status_code == 200
