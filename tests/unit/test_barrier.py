"""The encryption barrier over in-memory storage: what it promises."""

from __future__ import annotations

import asyncio
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.core.barrier import KEYRING_PATH, Barrier, StorageDamaged
from coffer.errors import InvalidRequest, Sealed
from coffer.storage.inmem import InmemStorage

PLAINTEXT = b'{"password": "s3cr3t-barrier-value"}'


def run(coro):
    return asyncio.run(coro)


def term_of(blob: bytes) -> int:
    """The key term recorded in a stored value's header (version byte, then term)."""
    _version, term = struct.unpack_from(">BI", blob)
    return term


@pytest.fixture
def physical() -> InmemStorage:
    return InmemStorage()


@pytest.fixture
def root_key() -> bytes:
    return AESGCM.generate_key(256)


@pytest.fixture
def barrier(physical: InmemStorage, root_key: bytes) -> Barrier:
    b = Barrier(physical)
    run(physical.batch([b.initialize(root_key)]))
    return b


def test_initialize_stores_a_keyring_and_leaves_it_usable(barrier, physical):
    assert run(physical.get(KEYRING_PATH)) is not None
    assert run(barrier.initialized()) is True
    assert barrier.sealed is False
    assert barrier.key_status().number == 1


def test_roundtrip(barrier):
    run(barrier.put("logical/abc/db", PLAINTEXT))
    assert run(barrier.get("logical/abc/db")) == PLAINTEXT
    assert run(barrier.get("logical/abc/missing")) is None
    assert run(barrier.list("logical/abc/")) == ["db"]
    run(barrier.delete("logical/abc/db"))
    assert run(barrier.get("logical/abc/db")) is None


def test_empty_value_roundtrips(barrier):
    run(barrier.put("k", b""))
    assert run(barrier.get("k")) == b""


def test_ciphertext_differs_from_plaintext_and_between_writes(barrier, physical):
    run(barrier.put("a", PLAINTEXT))
    first = run(physical.get("a"))
    run(barrier.put("a", PLAINTEXT))
    second = run(physical.get("a"))
    assert first is not None and second is not None
    for blob in (first, second):
        assert PLAINTEXT not in blob
        assert b"s3cr3t-barrier-value" not in blob
    assert first != second, "two writes of the same value must use fresh nonces"
    assert run(barrier.get("a")) == PLAINTEXT


def test_value_copied_to_another_path_does_not_decrypt(barrier, physical):
    run(barrier.put("logical/one/secret", PLAINTEXT))
    blob = run(physical.get("logical/one/secret"))
    run(physical.put("logical/two/secret", blob))
    with pytest.raises(StorageDamaged):  # the AES-GCM tag does not verify (InvalidTag), reported as damage
        run(barrier.get("logical/two/secret"))
    # the original is untouched
    assert run(barrier.get("logical/one/secret")) == PLAINTEXT


def test_tampered_value_does_not_decrypt(barrier, physical):
    run(barrier.put("k", PLAINTEXT))
    blob = bytearray(run(physical.get("k")))
    blob[-1] ^= 0x01
    run(physical.put("k", bytes(blob)))
    with pytest.raises(StorageDamaged, match="failed to decrypt"):
        run(barrier.get("k"))
    assert barrier.decrypt_failures == 1


def test_decryption_failures_are_logged_without_the_key(barrier, physical, caplog):
    run(barrier.put("sys/token/id/0123456789abcdef", PLAINTEXT))
    blob = bytearray(run(physical.get("sys/token/id/0123456789abcdef")))
    blob[20] ^= 0xFF
    run(physical.put("sys/token/id/0123456789abcdef", bytes(blob)))
    with pytest.raises(StorageDamaged):
        run(barrier.get("sys/token/id/0123456789abcdef"))
    assert "under sys/token/id/ failed to decrypt" in caplog.text and "0123456789abcdef" not in caplog.text


def test_unseal_with_the_right_key(barrier, root_key):
    run(barrier.put("k", PLAINTEXT))
    barrier.seal()
    assert barrier.sealed is True
    run(barrier.unseal(root_key))
    assert barrier.sealed is False
    assert run(barrier.get("k")) == PLAINTEXT


def test_unseal_with_a_wrong_root_key_is_refused(barrier):
    barrier.seal()
    with pytest.raises(InvalidRequest, match="unseal"):
        run(barrier.unseal(AESGCM.generate_key(256)))
    assert barrier.sealed is True


def test_unseal_with_a_root_key_of_the_wrong_length_is_refused(barrier):
    barrier.seal()
    with pytest.raises(InvalidRequest):
        run(barrier.unseal(b"short"))
    assert barrier.sealed is True


def test_unseal_before_initialize_is_refused(physical, root_key):
    b = Barrier(physical)
    assert run(b.initialized()) is False
    with pytest.raises(InvalidRequest, match="not initialized"):
        run(b.unseal(root_key))


def test_rotate_uses_the_new_term_for_new_writes(barrier, physical, root_key):
    run(barrier.put("old", b"old-value"))
    assert term_of(run(physical.get("old"))) == 1

    term = run(barrier.rotate())
    assert term.number == 2
    assert barrier.key_status().number == 2

    run(barrier.put("new", b"new-value"))
    assert term_of(run(physical.get("new"))) == 2
    assert term_of(run(physical.get("old"))) == 1
    assert run(barrier.get("old")) == b"old-value"
    assert run(barrier.get("new")) == b"new-value"

    # the rotated keyring was persisted under the same root key
    barrier.seal()
    run(barrier.unseal(root_key))
    assert barrier.key_status().number == 2
    assert run(barrier.get("old")) == b"old-value"
    assert run(barrier.get("new")) == b"new-value"
    # rewriting an old value moves it to the active term
    run(barrier.put("old", b"old-value"))
    assert term_of(run(physical.get("old"))) == 2


def test_rotate_twice(barrier):
    run(barrier.put("t1", b"1"))
    run(barrier.rotate())
    run(barrier.put("t2", b"2"))
    assert run(barrier.rotate()).number == 3
    run(barrier.put("t3", b"3"))
    assert [run(barrier.get(k)) for k in ("t1", "t2", "t3")] == [b"1", b"2", b"3"]


def test_batch_encrypts(barrier, physical):
    from coffer.storage.base import Delete, Put

    run(barrier.put("gone", b"x"))
    run(barrier.batch([Put("b1", PLAINTEXT), Delete("gone")]))
    assert PLAINTEXT not in run(physical.get("b1"))
    assert run(barrier.get("b1")) == PLAINTEXT
    assert run(barrier.get("gone")) is None
    assert run(barrier.scan("b", "c")) == [("b1", PLAINTEXT)]


@pytest.mark.parametrize(
    "operation",
    [
        lambda b: b.get("k"),
        lambda b: b.put("k", b"v"),
        lambda b: b.delete("k"),
        lambda b: b.list(""),
        lambda b: b.scan("a", "z"),
        lambda b: b.batch([]),
        lambda b: b.rotate(),
    ],
    ids=["get", "put", "delete", "list", "scan", "batch", "rotate"],
)
def test_sealed_barrier_raises_sealed(barrier, operation):
    run(barrier.put("k", PLAINTEXT))
    barrier.seal()
    with pytest.raises(Sealed):
        run(operation(barrier))


def test_sealed_barrier_key_status_raises_sealed(barrier):
    barrier.seal()
    with pytest.raises(Sealed):
        barrier.key_status()


def test_fresh_barrier_is_sealed(physical):
    b = Barrier(physical)
    assert b.sealed is True
    with pytest.raises(Sealed):
        run(b.get("k"))


def test_conditional_batch_compares_plaintext(barrier, physical):
    from coffer.storage.base import ConditionFailed, Expect, Put

    run(barrier.put("cfg", b"v1"))
    run(barrier.batch([Put("x", b"1")], [Expect("cfg", b"v1")]))  # a fresh nonce each write: compared decrypted
    assert run(barrier.get("x")) == b"1"
    with pytest.raises(ConditionFailed):
        run(barrier.batch([Put("y", b"2")], [Expect("cfg", b"v2")]))
    with pytest.raises(ConditionFailed):
        run(barrier.batch([Put("y", b"2")], [Expect("nothing", b"v1")]))
    assert run(barrier.get("y")) is None
