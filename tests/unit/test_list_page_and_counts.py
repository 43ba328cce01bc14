"""Storage.list_page (LIST ?after=&limit=) and the lease counters (core/leasecounts.py) on every backend."""
# ruff: noqa: F811 - the tests take the imported ``storage`` fixture

from __future__ import annotations

import asyncio
import random

import orjson
import pytest
from test_storage_conformance import _event_loop, run, storage  # noqa: F401 - every backend, one loop per test

from coffer.core.leasecounts import READY, Delta, LeaseCounts
from coffer.storage.base import ConditionFailed, Expect, Put, Storage

KEYS = ["a", "a-b", "b/x", "b/y/z", "c", "dir", "dir/one", "dir/two/three", "e", "z/1"]


def _fill(storage: Storage, keys: list[str], prefix: str = "p/") -> None:
    run(storage.batch([Put(prefix + k, b"v") for k in keys]))


def test_list_page_is_a_slice_of_list(storage: Storage) -> None:
    _fill(storage, KEYS)
    whole = run(storage.list("p/"))
    assert whole == ["a", "a-b", "b/", "c", "dir", "dir/", "e", "z/"]
    assert run(storage.list_page("p/")) == whole
    for after in ["", "a", "a-", "b", "b/", "c", "dir", "dir/", "dz", "z/", "zz"]:
        for limit in [0, 1, 2, 3, 100]:
            expected = [k for k in whole if k > after] if after else list(whole)
            if limit:
                expected = expected[:limit]
            assert run(storage.list_page("p/", after, limit)) == expected, (after, limit)


def test_list_page_matches_list_on_random_keys(storage: Storage) -> None:
    rng = random.Random(7)
    keys = sorted({"/".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(300)})
    _fill(storage, keys, "r/")
    whole = run(storage.list("r/"))
    # Walking page by page, as the UI does, visits every child once, in order.
    walked, after = [], ""
    while page := run(storage.list_page("r/", after, 3)):
        walked += page
        after = page[-1]
    assert walked == whole


def test_list_page_of_a_big_folder_reads_only_the_page(storage: Storage) -> None:
    run(storage.batch([Put(f"leases/{n:06d}", b"x") for n in range(3000)]))
    assert run(storage.list_page("leases/", "000100", 5)) == ["000101", "000102", "000103", "000104", "000105"]
    assert run(storage.list_page("leases/", "002999", 5)) == []


# -- lease counters -------------------------------------------------------------


def _stored(storage: Storage, counts: LeaseCounts, key: tuple[str, str]) -> int:
    raw = run(storage.get(counts.storage_key(key)))
    return 0 if raw is None else orjson.loads(raw)["live"]


def test_counters_survive_concurrent_batches_some_failing(storage: Storage) -> None:
    """Counters carry absolute values; batches touching one counter reach storage in the order they were made,
    and a failed one is undone and rewritten, so the stored value ends equal to the true count."""
    counts = LeaseCounts(storage)
    assert run(counts.load()) is False
    run(counts.recount([]))
    key = ("mount-uuid", "deploy")

    async def one(n: int) -> bool:
        expect = [Expect(f"missing/{n}")] if n % 7 == 3 else []  # these fail: the key does not exist
        try:
            await counts.commit([Put(f"lease/{n}", b"l")], {key: Delta(live=1)}, expect)
            return True
        except ConditionFailed:
            return False

    async def many() -> list[bool]:
        return await asyncio.gather(*(one(n) for n in range(60)))

    done = run(many())
    assert sum(done) == 60 - len([n for n in range(60) if n % 7 == 3])
    assert counts.live[key] == sum(done) == _stored(storage, counts, key)

    async def remove() -> None:
        await asyncio.gather(*(counts.commit([], {key: Delta(live=-1)}) for _ in range(sum(done))))

    run(remove())
    assert counts.live[key] == 0 and run(storage.get(counts.storage_key(key))) is None  # zero: the key goes


def test_a_cancelled_caller_still_counts(storage: Storage) -> None:
    counts = LeaseCounts(storage)
    run(counts.recount([]))
    key = ("m", "")

    async def cancelled() -> None:
        task = asyncio.ensure_future(counts.commit([Put("lease/x", b"l")], {key: Delta(live=1)}))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # the shielded write goes on

    run(cancelled())
    assert run(storage.get("lease/x")) == b"l"
    assert counts.live[key] == 1 == _stored(storage, counts, key)


def test_recount_and_load(storage: Storage) -> None:
    counts = LeaseCounts(storage)
    run(counts.recount([(("m1", "a"), False), (("m1", "a"), True), (("m2", ""), False)]))
    assert run(storage.get(READY)) == b"1"
    again = LeaseCounts(storage)
    assert run(again.load()) is True
    assert again.live == {("m1", "a"): 2, ("m2", ""): 1} and again.irrevocable == {("m1", "a"): 1}
    assert again.totals() == (3, 1)
    # A role with characters that need quoting round-trips.
    run(again.commit([], {("m1", "a/b c"): Delta(live=1)}))
    third = LeaseCounts(storage)
    run(third.load())
    assert third.live[("m1", "a/b c")] == 1
