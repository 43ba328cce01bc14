"""The encryption barrier: every value above it is AES-256-GCM encrypted.

The keyring (one 256-bit key per *term*) is itself encrypted with the root
key that the unseal key shares reconstruct, and stored at ``core/keyring``.
Each stored value is ``version(1) | term(4) | nonce(12) | ciphertext+tag``
with the storage path as associated data, so a value copied to another path
does not decrypt. Rotation adds a term; old terms stay readable.
"""

from __future__ import annotations

import asyncio
import builtins
import hmac
import logging
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.errors import CofferError, InvalidRequest, Sealed
from coffer.storage.base import ConditionFailed, Delete, Expect, Op, Put, Storage

log = logging.getLogger("coffer.barrier")

KEYRING_PATH = "core/keyring"
_VERSION = 1
_HEADER = struct.Struct(">BI")
_NONCE = 12


@dataclass(slots=True)
class Term:
    number: int
    key: bytes
    install_time: float


class StorageDamaged(CofferError):
    """A value in storage does not decrypt: it was damaged or changed outside coffer."""

    status = 500
    default_message = "a stored value failed to decrypt"


def _seal_blob(aead: AESGCM, term: int, path: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _HEADER.pack(_VERSION, term) + nonce + aead.encrypt(nonce, plaintext, path.encode())


class Barrier(Storage):
    """Storage that encrypts on the way down and decrypts on the way up."""

    def __init__(self, physical: Storage) -> None:
        self.physical = physical
        #: Values that failed to decrypt since start (each one is logged), and values encrypted since unseal.
        self.decrypt_failures = 0
        self.encryptions = 0
        self._terms: dict[int, AESGCM] = {}
        self._keyring: builtins.list[Term] = []
        self._active = 0
        #: Every write of the keyring (rotate, rekey) one at a time: each encrypts it with the root key in force.
        self._keyring_lock = asyncio.Lock()

    @property
    def sealed(self) -> bool:
        return not self._terms

    async def initialized(self) -> bool:
        return await self.physical.get(KEYRING_PATH) is not None

    def initialize(self, root_key: bytes) -> Put:
        """Create the first keyring (usable at once) and answer the write that stores it.

        The caller stores it last, with the seal configuration, in one batch: an
        init that dies half-way leaves no keyring behind.
        """
        self._load([Term(1, AESGCM.generate_key(256), time.time())])
        self._root_key = root_key
        return self._keyring_put(root_key)

    async def unseal(self, root_key: bytes) -> None:
        blob = await self.physical.get(KEYRING_PATH)
        if blob is None:
            raise InvalidRequest("Vault is not initialized")
        try:
            plain = AESGCM(root_key).decrypt(blob[_HEADER.size : _HEADER.size + _NONCE],
                                             blob[_HEADER.size + _NONCE :], KEYRING_PATH.encode())
        except (InvalidTag, ValueError):
            raise InvalidRequest("Error unsealing: the unseal key is wrong (the keyring did not decrypt)") from None
        doc = orjson.loads(plain)
        self._root_key = root_key
        self._load([Term(t["term"], bytes.fromhex(t["key"]), t["install_time"]) for t in doc["terms"]])

    async def reload(self) -> None:
        """Read the keyring again with the root key held (another HA node may have rotated it)."""
        self._check()
        await self.unseal(self._root_key)

    def seal(self) -> None:
        self._terms = {}
        self._keyring = []
        self._active = 0
        self._root_key = b""

    async def rotate(self) -> Term:
        """Add a new term and make it the one new writes use."""
        self._check()
        async with self._keyring_lock:
            term = Term(self._active + 1, AESGCM.generate_key(256), time.time())
            self._load([*self._keyring, term])
            await self._persist(self._root_key)
        return term

    def opens_keyring(self, blob: bytes) -> bool:
        """Whether the root key this unsealed barrier was opened with decrypts the keyring ``blob`` (a snapshot's)."""
        self._check()
        try:
            AESGCM(self._root_key).decrypt(blob[_HEADER.size : _HEADER.size + _NONCE], blob[_HEADER.size + _NONCE :],
                                           KEYRING_PATH.encode())
        except (InvalidTag, ValueError):
            return False
        return True

    def root_key(self) -> bytes:
        """The root key this unsealed barrier was opened with (to open it again after a storage restore)."""
        self._check()
        return self._root_key

    def is_root_key(self, key: bytes) -> bool:
        """Whether ``key`` is the root key this unsealed barrier was opened with."""
        self._check()
        return hmac.compare_digest(key, self._root_key)

    async def rekey(self, new_root_key: bytes, with_ops: Sequence[Op] = ()) -> None:
        """Encrypt the keyring with a new root key; ``with_ops`` are stored in the same batch (the new seal
        configuration), so the new shares and the configuration they need never part."""
        self._check()
        async with self._keyring_lock:
            await self.physical.batch([self._keyring_put(new_root_key), *with_ops])
            self._root_key = new_root_key

    def key_status(self) -> Term:
        self._check()
        return next(t for t in self._keyring if t.number == self._active)

    def _load(self, terms: builtins.list[Term]) -> None:
        if not self._terms:  # an unseal (not a rotation): count afresh
            self.encryptions = 0
        self._keyring = terms
        self._terms = {t.number: AESGCM(t.key) for t in terms}
        self._active = max(t.number for t in terms)

    def _keyring_put(self, root_key: bytes) -> Put:
        doc = {"terms": [{"term": t.number, "key": t.key.hex(), "install_time": t.install_time}
                         for t in self._keyring]}
        return Put(KEYRING_PATH, _seal_blob(AESGCM(root_key), 0, KEYRING_PATH, orjson.dumps(doc)))

    async def _persist(self, root_key: bytes) -> None:
        self._root_key = root_key
        await self.physical.batch([self._keyring_put(root_key)])

    def _check(self) -> None:
        if not self._terms:
            raise Sealed()

    def encrypt(self, path: str, plaintext: bytes) -> bytes:
        self._check()
        self.encryptions += 1
        return _seal_blob(self._terms[self._active], self._active, path, plaintext)

    def decrypt(self, path: str, blob: bytes) -> bytes:
        self._check()
        try:
            version, term = _HEADER.unpack_from(blob)
            aead = self._terms.get(term)
            if version != _VERSION or aead is None:
                raise ValueError(f"unknown barrier version {version} or key term {term}")
            return aead.decrypt(blob[_HEADER.size : _HEADER.size + _NONCE], blob[_HEADER.size + _NONCE :],
                                path.encode())
        except (InvalidTag, ValueError, struct.error) as exc:
            self.decrypt_failures += 1
            # The folder, not the whole key: keys name tokens' hashes and lease ids.
            where = "/".join(path.split("/")[:3])
            log.error("a stored value under %s/ failed to decrypt (%s): the storage is damaged or was changed "
                      "outside coffer; restore it from a backup", where, type(exc).__name__ if isinstance(
                          exc, InvalidTag) else exc)
            raise StorageDamaged("a stored value failed to decrypt (damaged storage); the server log has "
                                 "details") from None

    # -- the Storage interface, encrypted ---------------------------------

    async def get(self, key: str) -> bytes | None:
        self._check()
        blob = await self.physical.get(key)
        return None if blob is None else self.decrypt(key, blob)

    async def put(self, key: str, value: bytes) -> None:
        await self.physical.put(key, self.encrypt(key, value))

    async def delete(self, key: str) -> None:
        self._check()
        await self.physical.delete(key)

    async def list(self, prefix: str) -> builtins.list[str]:
        self._check()
        return await self.physical.list(prefix)

    async def count(self, start: str, end: str) -> int:
        self._check()
        return await self.physical.count(start, end)  # keys are not encrypted: nothing to decrypt

    async def list_page(self, prefix: str, after: str = "", limit: int = 0) -> builtins.list[str]:
        self._check()
        return await self.physical.list_page(prefix, after, limit)  # keys only: nothing to decrypt

    async def scan(self, start: str, end: str, limit: int | None = None) -> builtins.list[tuple[str, bytes]]:
        self._check()
        return [(k, self.decrypt(k, v)) for k, v in await self.physical.scan(start, end, limit)]

    async def batch(self, ops: builtins.list[Op], expect: Sequence[Expect] = ()) -> None:
        self._check()
        physical_expect = []
        for cond in expect:
            if cond.value is not None:
                # Values are stored encrypted (with a fresh nonce each time): compare the plaintext
                # here, then make the physical batch expect the very ciphertext that was compared,
                # so a write in between still fails the condition.
                blob = await self.physical.get(cond.key)
                if blob is None or self.decrypt(cond.key, blob) != cond.value:
                    raise ConditionFailed(cond.key)
                cond = Expect(cond.key, blob)
            physical_expect.append(cond)
        await self.physical.batch([Put(o.key, self.encrypt(o.key, o.value)) if isinstance(o, Put) else Delete(o.key)
                                   for o in ops], physical_expect)
