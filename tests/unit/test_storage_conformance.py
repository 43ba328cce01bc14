"""Behaviour every ``Storage`` backend must share.

The ``storage`` fixture is parametrised over backend factories; a new backend
joins the suite by adding one entry to ``BACKENDS``. The PostgreSQL backend gets a
fresh schema per test (dropped afterwards) and is skipped where no server answers.
Tests stay synchronous at the pytest level and drive coroutines with ``run``, all on
one event loop per test (a PostgreSQL storage's connection pool lives on one loop).
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import pytest

import pg_support
from coffer.storage.base import ConditionFailed, Delete, Expect, Put, Storage, prefix_end
from coffer.storage.inmem import InmemStorage
from coffer.storage.postgresql import PostgresqlStorage
from coffer.storage.sqlite import SqliteStorage

T = TypeVar("T")


_runner: asyncio.Runner | None = None


@pytest.fixture(autouse=True)
def _event_loop() -> Iterator[None]:
    """One event loop for each test, closed after the test's fixtures."""
    global _runner
    with asyncio.Runner() as runner:
        _runner = runner
        try:
            yield
        finally:
            _runner = None


def run(awaitable: Awaitable[T]) -> T:
    """Run one coroutine to completion on the test's event loop."""

    async def wrapper() -> T:
        return await awaitable

    if _runner is None:
        return asyncio.run(wrapper())
    return _runner.run(wrapper())


def _make_inmem(tmp_path: Path, stack: ExitStack) -> Storage:
    return InmemStorage()


def _make_sqlite(tmp_path: Path, stack: ExitStack) -> Storage:
    return SqliteStorage(str(tmp_path / "coffer.db"))


def _make_postgresql(tmp_path: Path, stack: ExitStack) -> Storage:
    schema = stack.enter_context(pg_support.fresh_schema())
    return PostgresqlStorage(pg_support.schema_url(schema))


#: Each factory makes a fresh backend; what it puts on ``stack`` is undone after the backend is closed.
BACKENDS: dict[str, Callable[[Path, ExitStack], Storage]] = {
    "inmem": _make_inmem,
    "sqlite": _make_sqlite,
    "postgresql": _make_postgresql,
}


@pytest.fixture(params=sorted(BACKENDS))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    with ExitStack() as stack:
        backend = BACKENDS[request.param](tmp_path, stack)
        yield backend
        run(backend.close())


def put_all(storage: Storage, keys: list[str], value: bytes = b"v") -> None:
    """Write every key in one batch."""
    run(storage.batch([Put(key, value) for key in keys]))


def reference_list(keys: list[str], prefix: str) -> list[str]:
    """The obviously correct (and slow) answer to ``list(prefix)``."""
    children = set()
    for key in keys:
        if key.startswith(prefix) and key != prefix:
            rest = key[len(prefix) :]
            cut = rest.find("/")
            children.add(rest if cut < 0 else rest[: cut + 1])
    return sorted(children)


# -- get / put / delete ------------------------------------------------------


def test_get_missing_is_none(storage: Storage) -> None:
    assert run(storage.get("nope")) is None
    assert run(storage.get("")) is None


@pytest.mark.parametrize(
    "value",
    [b"", b"hello", bytes(range(256)), b"\xff\xfe\x00\x80", b"\x00" * 10, bytes(1 << 20)],
    ids=["empty", "ascii", "all-bytes", "not-utf8", "nuls", "one-mib"],
)
def test_put_get_roundtrip(storage: Storage, value: bytes) -> None:
    run(storage.put("secret/item", value))
    got = run(storage.get("secret/item"))
    assert type(got) is bytes
    assert got == value


def test_value_is_copied(storage: Storage) -> None:
    buf = bytearray(b"original")
    run(storage.put("k", buf))  # type: ignore[arg-type]  # a mutable buffer on purpose
    buf[:] = b"mutated!"
    got = run(storage.get("k"))
    assert type(got) is bytes
    assert got == b"original"


def test_unicode_keys(storage: Storage) -> None:
    keys = ["naïve", "日本/語", "emoji/🔑", "a b/c"]
    for i, key in enumerate(keys):
        run(storage.put(key, bytes([i])))
    for i, key in enumerate(keys):
        assert run(storage.get(key)) == bytes([i])


def test_overwrite(storage: Storage) -> None:
    run(storage.put("k", b"one"))
    run(storage.put("k", b"two"))
    assert run(storage.get("k")) == b"two"
    assert run(storage.scan("", prefix_end(""))) == [("k", b"two")]


def test_delete(storage: Storage) -> None:
    run(storage.put("k", b"v"))
    run(storage.put("k2", b"v2"))
    run(storage.delete("k"))
    assert run(storage.get("k")) is None
    assert run(storage.get("k2")) == b"v2"
    run(storage.delete("k"))  # again: not an error
    run(storage.delete("never-existed"))
    assert run(storage.list("")) == ["k2"]


def test_non_bytes_value_rejected(storage: Storage) -> None:
    with pytest.raises(TypeError):
        run(storage.put("k", "text"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        run(storage.put("k", None))  # type: ignore[arg-type]
    assert run(storage.get("k")) is None


# -- list --------------------------------------------------------------------


def test_list_docstring_example(storage: Storage) -> None:
    put_all(storage, ["a/b", "a/c/d", "a/c/e"])
    assert run(storage.list("a/")) == ["b", "c/"]


def test_list_immediate_children_sorted(storage: Storage) -> None:
    put_all(storage, ["s/zeta", "s/alpha", "s/dir/x", "s/dir/y/z", "s/mid", "s/dir2/q", "other/x"])
    assert run(storage.list("s/")) == ["alpha", "dir/", "dir2/", "mid", "zeta"]
    assert run(storage.list("s/dir/")) == ["x", "y/"]
    assert run(storage.list("s/dir/y/")) == ["z"]


def test_list_empty_prefix_is_top_level(storage: Storage) -> None:
    put_all(storage, ["top", "sys/policy/root", "secret/a", "secret/b/c"])
    assert run(storage.list("")) == ["secret/", "sys/", "top"]


def test_list_empty_storage_and_unknown_prefix(storage: Storage) -> None:
    assert run(storage.list("")) == []
    put_all(storage, ["a/b"])
    assert run(storage.list("zzz/")) == []
    assert run(storage.list("a/b/")) == []


def test_list_key_that_prefixes_another(storage: Storage) -> None:
    put_all(storage, ["a", "a/b"])
    assert run(storage.list("")) == ["a", "a/"]
    assert run(storage.list("a/")) == ["b"]


def test_list_partial_prefix(storage: Storage) -> None:
    put_all(storage, ["app-one", "app-two/x", "apple", "b"])
    assert run(storage.list("app")) == ["-one", "-two/", "le"]


def test_list_neighbours_of_slash(storage: Storage) -> None:
    # '.' sorts just before '/', '0' just after: the folder skip must not
    # swallow or repeat either neighbour.
    keys = ["f.x", "f/1", "f/2/deep", "f0", "f0/y", "f", "f-", "f1"]
    put_all(storage, keys)
    assert run(storage.list("")) == ["f", "f-", "f.x", "f/", "f0", "f0/", "f1"]
    assert run(storage.list("")) == reference_list(keys, "")


def test_list_matches_reference_on_random_keys(storage: Storage) -> None:
    rng = random.Random(1234)
    alphabet = "ab/.0é"
    keys = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(600)})
    put_all(storage, keys)
    prefixes = {"", "a", "a/", "b/", "a/b/", "é", "./"} | {key[: rng.randint(0, len(key))] for key in keys[:80]}
    for prefix in sorted(prefixes):
        assert run(storage.list(prefix)) == reference_list(keys, prefix), prefix


def test_list_with_many_keys_in_one_folder(storage: Storage) -> None:
    keys = [f"big/{i:05d}" for i in range(20_000)] + ["small/a", "small/b", "small/c"]
    put_all(storage, keys)
    assert run(storage.list("")) == ["big/", "small/"]
    assert run(storage.list("small/")) == ["a", "b", "c"]
    listed = run(storage.list("big/"))
    assert len(listed) == 20_000
    assert listed[:2] == ["00000", "00001"]
    assert listed[-1] == "19999"


# -- scan --------------------------------------------------------------------


def test_scan_order_bounds_and_limit(storage: Storage) -> None:
    keys = ["b", "a/2", "a/1", "c", "a/10", "ab"]
    for key in keys:
        run(storage.put(key, key.encode()))
    everything = run(storage.scan("", prefix_end("")))
    assert everything == [(key, key.encode()) for key in sorted(keys)]
    # start inclusive, end exclusive
    assert [k for k, _ in run(storage.scan("a/10", "b"))] == ["a/10", "a/2", "ab"]
    assert [k for k, _ in run(storage.scan("a/", prefix_end("a/")))] == ["a/1", "a/10", "a/2"]
    # limit
    assert [k for k, _ in run(storage.scan("", prefix_end(""), limit=2))] == ["a/1", "a/10"]
    assert run(storage.scan("", prefix_end(""), limit=0)) == []
    assert len(run(storage.scan("", prefix_end(""), limit=100))) == len(keys)
    # empty and inverted ranges
    assert run(storage.scan("x", "z")) == []
    assert run(storage.scan("c", "a")) == []
    assert run(storage.scan("b", "b")) == []


def test_scan_negative_limit_rejected(storage: Storage) -> None:
    with pytest.raises(ValueError, match="limit"):
        run(storage.scan("", prefix_end(""), limit=-1))


def test_scan_unicode_order_matches_python(storage: Storage) -> None:
    keys = ["z", "é", "日本", "🔑", "Z", "a\u00ff", "a\u0100", "~"]
    put_all(storage, keys)
    assert [k for k, _ in run(storage.scan("", prefix_end("")))] == sorted(keys)


# -- batch -------------------------------------------------------------------


def test_batch_applies_puts_and_deletes_in_order(storage: Storage) -> None:
    put_all(storage, ["keep", "drop"], b"old")
    run(
        storage.batch(
            [
                Put("new", b"1"),
                Delete("drop"),
                Put("keep", b"new"),
                Put("tmp", b"x"),
                Delete("tmp"),
                Delete("missing"),
                Put("gone-then-back", b"a"),
                Delete("gone-then-back"),
                Put("gone-then-back", b"b"),
            ]
        )
    )
    assert run(storage.list("")) == ["gone-then-back", "keep", "new"]
    assert run(storage.get("keep")) == b"new"
    assert run(storage.get("gone-then-back")) == b"b"
    assert run(storage.get("tmp")) is None


def test_empty_batch(storage: Storage) -> None:
    run(storage.batch([]))
    assert run(storage.list("")) == []


def test_failed_batch_applies_nothing(storage: Storage) -> None:
    put_all(storage, ["existing"], b"old")
    not_bytes: Any = object()
    not_an_op: Any = "not-an-op"
    ops = [Put("first", b"1"), Delete("existing"), Put("existing2", b"2"), Put("broken", not_bytes), Put("after", b"3")]
    with pytest.raises(TypeError):
        run(storage.batch(ops))
    assert run(storage.scan("", prefix_end(""))) == [("existing", b"old")]
    with pytest.raises(TypeError):
        run(storage.batch([Put("first", b"1"), not_an_op]))
    assert run(storage.get("first")) is None
    # the backend is still usable afterwards
    run(storage.put("first", b"1"))
    assert run(storage.get("first")) == b"1"


# -- SQLite specifics ----------------------------------------------------------


def test_sqlite_failed_batch_rolls_back_midway(tmp_path: Path) -> None:
    """The failing op is reached only after earlier statements ran in the transaction."""
    db = SqliteStorage(str(tmp_path / "db.sqlite"))
    try:
        run(db.put("existing", b"old"))
        before = run(db.scan("", prefix_end("")))
        earlier: list[Any] = [Put(f"k{i}", b"x") for i in range(100)] + [Delete("existing")]

        # rejected by the backend's own check on the writer thread
        with pytest.raises(TypeError):
            run(db.batch([*earlier, Put("bad", 42)]))  # type: ignore[arg-type]
        assert run(db.scan("", prefix_end(""))) == before

        # rejected by the sqlite3 driver while binding (a lone surrogate has no UTF-8 form)
        with pytest.raises(UnicodeEncodeError):
            run(db.batch([*earlier, Put("\ud800", b"y")]))
        assert run(db.scan("", prefix_end(""))) == before

        # no transaction is left open: the next write commits normally
        run(db.put("after", b"ok"))
        assert run(db.list("")) == ["after", "existing"]
    finally:
        run(db.close())


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "nested" / "dir" / "coffer.db")  # parent dirs are created
    db = SqliteStorage(path)
    run(db.put("secret/a", b"\x00\xffpayload"))
    run(db.batch([Put("secret/b", b"b"), Put("sys/x", b"x"), Delete("secret/a")]))
    run(db.put("secret/a", b"again"))
    run(db.close())
    run(db.close())  # closing twice is harmless

    db = SqliteStorage(path)
    try:
        assert run(db.get("secret/a")) == b"again"
        assert run(db.list("")) == ["secret/", "sys/"]
        assert run(db.list("secret/")) == ["a", "b"]
    finally:
        run(db.close())


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "coffer.db"
    db = SqliteStorage(str(path))
    try:
        run(db.put("k", b"v"))
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT value FROM kv WHERE key = 'k'").fetchone()[0] == b"v"
        finally:
            conn.close()
    finally:
        run(db.close())


def test_sqlite_reader_sees_writes_from_other_connection(tmp_path: Path) -> None:
    path = tmp_path / "coffer.db"
    db = SqliteStorage(str(path))
    try:
        assert run(db.get("k")) is None
        other = sqlite3.connect(path)
        with other:
            other.execute("INSERT INTO kv (key, value) VALUES ('k', x'01')")
        other.close()
        assert run(db.get("k")) == b"\x01"
    finally:
        run(db.close())


def test_sqlite_list_skips_big_folders(tmp_path: Path) -> None:
    """Listing costs one query per child, not one per key below the prefix."""
    db = SqliteStorage(str(tmp_path / "coffer.db"))
    try:
        keys = [f"top/big/{i:05d}" for i in range(20_000)]
        keys += ["top/leaf", "top/small/a", "top/small/b/c", "other/x"]
        put_all(db, keys)

        statements: list[str] = []
        db._reader.set_trace_callback(statements.append)
        assert run(db.list("top/")) == ["big/", "leaf", "small/"]
        assert len(statements) <= 4  # one per child, plus the final miss
        statements.clear()
        assert run(db.list("")) == ["other/", "top/"]
        assert len(statements) <= 3
        db._reader.set_trace_callback(None)
    finally:
        run(db.close())


def test_sqlite_rejects_non_database_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is certainly not a SQLite database\n" * 200)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        SqliteStorage(str(path))


def test_sqlite_rejects_memory_database() -> None:
    with pytest.raises(ValueError, match="file path"):
        SqliteStorage(":memory:")


def test_sqlite_write_after_close_fails(tmp_path: Path) -> None:
    db = SqliteStorage(str(tmp_path / "coffer.db"))
    run(db.close())
    with pytest.raises(RuntimeError):
        run(db.put("k", b"v"))


def test_concurrent_batches_commit_independently(storage):
    """Many writers at once (SQLite commits them as one group): a bad batch fails alone."""

    async def scenario():
        good = [storage.batch([Put(f"g/{i}/a", b"1"), Put(f"g/{i}/b", b"2")]) for i in range(40)]
        bad = storage.batch([Put("bad/a", b"1"), Put("bad/b", "not bytes")])  # type: ignore[arg-type]
        outcomes = await asyncio.gather(*good, bad, return_exceptions=True)
        assert all(o is None for o in outcomes[:-1])
        assert isinstance(outcomes[-1], TypeError)
        assert await storage.get("bad/a") is None
        assert len(await storage.list("g/")) == 40
        assert await storage.get("g/39/b") == b"2"

    run(scenario())


def test_count_counts_keys_in_range(storage):
    put_all(storage, [f"c/{i:04d}" for i in range(2500)] + ["d/x", "b/y"])
    assert run(storage.count("c/", prefix_end("c/"))) == 2500
    assert run(storage.count("c/0100", "c/0200")) == 100
    assert run(storage.count("z/", prefix_end("z/"))) == 0


# -- conditional batches ---------------------------------------------------------


def test_conditional_batch_applies_when_conditions_hold(storage: Storage) -> None:
    put_all(storage, ["parent"], b"p1")
    run(storage.batch([Put("child", b"c")], [Expect("parent"), Expect("parent", b"p1"), Expect("other", exists=False)]))
    assert run(storage.get("child")) == b"c"


@pytest.mark.parametrize("cond", [Expect("gone"), Expect("parent", b"other"), Expect("parent", exists=False)],
                         ids=["missing", "changed", "present"])
def test_conditional_batch_applies_nothing_when_a_condition_fails(storage: Storage, cond: Expect) -> None:
    put_all(storage, ["parent"], b"p1")
    with pytest.raises(ConditionFailed) as info:
        run(storage.batch([Put("child", b"c"), Delete("parent")], [Expect("parent"), cond]))
    assert info.value.key == cond.key
    assert run(storage.get("child")) is None
    assert run(storage.get("parent")) == b"p1"


def test_conditions_see_the_batches_committed_before(storage: Storage) -> None:
    """Concurrent writers (one SQLite group): a batch conditioned on a key that an earlier one deletes fails alone."""

    async def scenario():
        await storage.put("parent", b"p")
        outcomes = await asyncio.gather(
            storage.batch([Put("a", b"1")], [Expect("parent")]),
            storage.batch([Delete("parent")]),
            storage.batch([Put("b", b"2")], [Expect("parent")]),
            storage.batch([Put("c", b"3")], [Expect("parent", exists=False)]),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
        assert isinstance(outcomes[2], ConditionFailed)
        assert [await storage.get(k) for k in ("a", "b", "c")] == [b"1", None, b"3"]

    run(scenario())


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    folder = tmp_path / "new-folder"
    db = SqliteStorage(str(folder / "coffer.db"))
    run(db.put("k", b"v"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("coffer.db", "coffer.db-wal", "coffer.db-shm"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    run(db.close())
    # an existing world-readable database is made private when opened
    os.chmod(folder / "coffer.db", 0o644)
    db = SqliteStorage(str(folder / "coffer.db"))
    assert stat.S_IMODE((folder / "coffer.db").stat().st_mode) == 0o600
    run(db.close())


_OPEN_AND_WAIT = """
import asyncio, sys
from coffer.storage.sqlite import SqliteStorage
async def main():
    db = SqliteStorage(sys.argv[1])
    await db.put("k", b"v1")
    assert await db.get("k") == b"v1"
    print("ready", flush=True)
    sys.stdin.readline()  # another process reads the database meanwhile
    assert await db.get("k") == b"v1"
    await db.put("k", b"v2")
    assert await db.get("k") == b"v2"
    await db.close()
    print("ok", flush=True)
asyncio.run(main())
"""


def test_sqlite_survives_another_process_reading_the_database(tmp_path: Path) -> None:
    """The read cache maps the -shm file: another process opening the database (an operator's sqlite3, a
    backup tool) must neither crash the server nor be answered from a stale cache."""
    import subprocess
    import sys

    path = str(tmp_path / "coffer.db")
    server = subprocess.Popen([sys.executable, "-c", _OPEN_AND_WAIT, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    assert server.stdout.readline().strip() == "ready"
    reader = subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}"
                             "?mode=ro', uri=True); print(c.execute('select count(*) from kv').fetchone()[0]); "
                             "c.close()", path], capture_output=True, text=True, timeout=30)
    assert reader.stdout.strip() == "1", reader.stderr
    out, _ = server.communicate("go\n", timeout=30)
    assert server.returncode == 0 and out.strip() == "ok", f"exit {server.returncode}"


def test_sqlite_keeps_its_locks_on_the_shm_file(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops the process's POSIX locks on it: the read cache's must stay open,
    or another process that opens the database takes SQLite's DMS lock, resets the -shm file under this
    process's SQLite and kills it with SIGBUS (seen as a rare crash after a restart in the AWS tests)."""
    import subprocess
    import sys

    path = str(tmp_path / "coffer.db")
    db = SqliteStorage(path)
    try:
        run(db.put("k", b"v"))
        probe = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\ntry:\n"
                 "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n    print('granted')\n"
                 "except OSError:\n    print('refused')\n")
        out = subprocess.run([sys.executable, "-c", probe, path + "-shm"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
        assert out == "refused"  # SQLite's dead-man-switch byte is still locked by this process
    finally:
        run(db.close())


# -- snapshots: a consistent read of everything, and an atomic replacement ------------------------


async def _collect(storage: Storage, batch_size: int = 1000) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    async for batch in storage.snapshot(batch_size):
        assert 0 < len(batch) <= batch_size
        out += batch
    return out


async def _snapshot_file(storage: Storage, path: Path) -> Path:
    from coffer.storage import snapshot

    with path.open("wb") as fh:
        async for chunk in snapshot.encode(storage.snapshot(7)):
            fh.write(chunk)
    return path


SNAPSHOT_KEYS = ["core/keyring", "core/seal-config", "logical/a/b", "logical/a/c", "sys/expire/id/x", "z", "é/ü"]


@pytest.mark.parametrize("target_kind", sorted(BACKENDS))
def test_snapshot_restores_into_every_backend(storage: Storage, tmp_path: Path, target_kind: str) -> None:
    from coffer.storage import snapshot

    entries = {key: f"value of {key}".encode() + bytes(range(256)) for key in SNAPSHOT_KEYS}
    entries.update({f"many/{i:05d}": bytes([i % 256]) * (i % 50) for i in range(40)})
    run(storage.batch([Put(k, v) for k, v in entries.items()]))
    assert run(_collect(storage, 3)) == sorted(entries.items())
    path = run(_snapshot_file(storage, tmp_path / "snap.bin"))
    with ExitStack() as stack:
        target = BACKENDS[target_kind](tmp_path / "target", stack)
        try:
            run(target.batch([Put("stale/key", b"gone after the restore"), Put("logical/a/b", b"old")]))
            with path.open("rb") as fh:
                info = snapshot.read(fh, keep=("core/keyring",))
                assert info.count == len(entries)
                assert info.values == {"core/keyring": entries["core/keyring"]}
                assert run(target.replace_all(snapshot.records(fh))) == len(entries)
            assert run(_collect(target)) == sorted(entries.items())
            assert run(target.get("stale/key")) is None
            assert run(target.get("logical/a/b")) == entries["logical/a/b"]
            assert run(target.list("logical/")) == ["a/"]
        finally:
            run(target.close())


def test_snapshot_is_one_consistent_view(storage: Storage) -> None:
    put_all(storage, [f"k/{i:02d}" for i in range(10)], b"before")

    async def scenario() -> list[tuple[str, bytes]]:
        seen: list[tuple[str, bytes]] = []
        batches = storage.snapshot(3)
        seen += await anext(batches)
        # Writes after the snapshot began: none of them may show in its later batches.
        await storage.batch([Put("k/05", b"after"), Delete("k/08"), Put("k/99", b"new")])
        async for batch in batches:
            seen += batch
        return seen

    seen = run(scenario())
    assert seen == [(f"k/{i:02d}", b"before") for i in range(10)]
    assert run(storage.get("k/05")) == b"after"  # the writes themselves went through


def test_replace_all_is_atomic(storage: Storage) -> None:
    put_all(storage, ["keep/a", "keep/b"], b"original")

    def failing() -> Iterator[tuple[str, bytes]]:
        yield "new/a", b"x"
        yield "new/b", b"y"
        raise ValueError("the snapshot broke off")

    with pytest.raises(ValueError, match="broke off"):
        run(storage.replace_all(failing()))
    assert run(_collect(storage)) == [("keep/a", b"original"), ("keep/b", b"original")]
    assert run(storage.replace_all(iter([]))) == 0
    assert run(_collect(storage)) == []


def test_snapshot_file_damage_is_detected(tmp_path: Path) -> None:
    from coffer.storage import snapshot

    source = InmemStorage()
    run(source.batch([Put(f"k/{i}", bytes([i]) * 100) for i in range(50)]))
    good = run(_snapshot_file(source, tmp_path / "good.bin")).read_bytes()

    def check(data: bytes) -> str:
        path = tmp_path / "bad.bin"
        path.write_bytes(data)
        with path.open("rb") as fh, pytest.raises(snapshot.SnapshotError) as caught:
            snapshot.read(fh)
        return str(caught.value)

    with (tmp_path / "good.bin").open("rb") as fh:
        assert snapshot.read(fh).count == 50
    assert "truncated" in check(good[: len(good) // 2])
    assert "truncated" in check(good[:-3])
    assert "not a coffer snapshot" in check(b"hello, world\n" * 10)
    assert "not a coffer snapshot" in check(b"")
    assert "damaged" in check(good + b"x")
    # A record changed and re-compressed consistently: only the checksum can tell.
    import zlib

    plain = bytearray(zlib.decompress(good[len(snapshot.MAGIC):]))
    plain[20] ^= 0x01
    assert "checksum" in check(snapshot.MAGIC + zlib.compress(bytes(plain)))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    assert "damaged" in check(bytes(flipped))
