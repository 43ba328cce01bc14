"""Tokens: creation, lookup, renewal and the parent/child revocation tree.

A token is ``hvs.`` + 24 base62 characters. coffer never stores it: entries
live under the HMAC-SHA256 of the token with a per-server salt, and every
index (accessor, parent, expiry) refers to that hash.

Storage layout (inside the barrier):
  sys/token/salt                       the HMAC key
  sys/token/id/<hash>                  the entry (JSON)
  sys/token/accessor/<accessor>        -> hash
  sys/token/parent/<parent hash>/<hash>
  sys/token/expiry/<ms, 15 digits>/<hash>   time-ordered, for the sweeper
  sys/token/revoking/<hash>            the entry of a token being revoked (its id entry is gone)
  sys/token/mount/<mount uuid>/<hash>  tokens an auth method's login issued (revoked when it is disabled)

Revocation first moves a token's entry from ``id/`` to ``revoking/`` (one
batch), so it stops working at once, and every write that would attach
something to it — a child token, a lease, a renewal — fails its storage
condition from then on. Only then are its children found and revoked the
same way, and its leases and cubbyhole taken back; the ``revoking/`` entry
goes last. A revocation cut short by a crash is finished after the next unseal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from coffer.durations import format_duration
from coffer.errors import InvalidRequest, PermissionDenied
from coffer.framework.request import TokenInfo
from coffer.storage.base import ConditionFailed, Delete, Expect, Put, Storage, prefix_end

_ALPHABET = string.ascii_letters + string.digits
SALT = "sys/token/salt"
ID = "sys/token/id/"
ACCESSOR = "sys/token/accessor/"
PARENT = "sys/token/parent/"
EXPIRY = "sys/token/expiry/"
REVOKING = "sys/token/revoking/"
MOUNT = "sys/token/mount/"
#: Token entries kept decrypted in memory (the cache is emptied when full).
CACHE_SIZE = 10_000
#: Longer token ids are never looked up (and never kept in the cache of token hashes).
MAX_TOKEN_LENGTH = 256


#: Bytes below this map evenly onto the alphabet (the rest are drawn again).
_EVEN = 256 - 256 % len(_ALPHABET)


#: Byte b (below _EVEN) to its character; the bytes at and above _EVEN are dropped by ``bytes.translate``.
_TO_CHARACTER = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))
_DRAWN_AGAIN = bytes(range(_EVEN, 256))


def _random_text(length: int) -> str:
    """``length`` characters, each uniform over the alphabet, from one read of the OS's random source
    (``secrets.choice`` reads it once per character, 48 reads for a token and its accessor)."""
    chars = b""
    while len(chars) < length:
        chars += secrets.token_bytes(length + 8).translate(_TO_CHARACTER, _DRAWN_AGAIN)
    return chars[:length].decode()


def new_token() -> str:
    return "hvs." + _random_text(24)


def new_accessor() -> str:
    return _random_text(24)


def expiry_key(expire_time: float, token_hash: str) -> str:
    return f"{EXPIRY}{int(expire_time * 1000):015d}/{token_hash}"


def rfc3339(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True, kw_only=True)
class TokenEntry(TokenInfo):
    """A token as stored: what engines see of it (``TokenInfo``) plus its place in the token tree."""

    hash: str
    parent: str = ""
    #: This token's own cap on its life without renewal limits (its mount's or role's; 0: the server's).
    max_ttl: int = 0
    #: Addresses the token may be used from (empty: any).
    bound_cidrs: list[str] = field(default_factory=list)
    #: The token role it was created with (auth/token/create/<role>).
    role: str = ""
    #: The uuid of the auth mount whose login issued it ("" for the token store's own tokens).
    auth_mount: str = ""
    #: What that auth method keeps with the token (handed back on renewal; never shown).
    internal: dict[str, Any] = field(default_factory=dict)
    #: The caller's name at that auth method.
    alias: str = ""

    def remaining(self, now: float | None = None) -> int:
        if not self.expire_time:
            return 0
        return max(0, int(self.expire_time - (now or time.time())))

    def describe(self, token_id: str = "") -> dict[str, Any]:
        """The data block of a lookup, as Vault shapes it."""
        doc: dict[str, Any] = {
            "accessor": self.accessor,
            "creation_time": int(self.creation_time),
            "creation_ttl": self.ttl,
            "display_name": self.display_name,
            "entity_id": "",
            "expire_time": rfc3339(self.expire_time),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": token_id,
            "issue_time": rfc3339(self.creation_time),
            "meta": self.meta or None,
            "num_uses": max(self.num_uses, 0),
            "orphan": self.orphan,
            "path": self.path,
            "period": self.period or None,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.remaining(),
            "type": "service",
        }
        if self.role:
            doc["role"] = self.role
        if self.bound_cidrs:
            doc["bound_cidrs"] = list(self.bound_cidrs)
        return dict(sorted(doc.items()))

    def auth_block(self, token_id: str, lease_duration: int | None = None) -> dict[str, Any]:
        """Vault's ``auth`` block; ``lease_duration`` defaults to the TTL the token was created with."""
        return {
            "client_token": token_id,
            "accessor": self.accessor,
            "policies": self.policies,
            "token_policies": self.policies,
            "identity_policies": None,
            "metadata": self.meta or None,
            "lease_duration": self.ttl if lease_duration is None else lease_duration,
            "renewable": self.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": self.orphan,
            "mfa_requirement": None,
            "num_uses": max(self.num_uses, 0),
        }


def capped(ttl: int, limit: int, what: str = "max_ttl") -> tuple[int, str]:
    """``ttl`` within ``limit`` (0: none), with Vault's warning when it had to be lowered."""
    if limit and ttl > limit:
        return limit, (f'TTL of "{format_duration(ttl)}" exceeded the effective {what} of '
                       f'"{format_duration(limit)}"; TTL value is capped accordingly')
    return ttl, ""


_FIELDS = tuple(f.name for f in fields(TokenEntry))


class _SharedEntry(TokenEntry):
    """A cached entry: every request that looks its token up is handed this one object, so it cannot be
    changed (a change would reach every holder, and outlive a write that failed). ``TokenStore`` changes
    a copy from ``_private`` and writes that."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a cached token entry is shared and cannot be changed (tried {name!r}); "
                             "change a copy from coffer.core.tokens._private")


def _shared(doc: dict[str, Any]) -> _SharedEntry:
    entry = TokenEntry(**doc)  # the dataclass's own checks and defaults
    shared = object.__new__(_SharedEntry)
    for name in _FIELDS:
        object.__setattr__(shared, name, getattr(entry, name))
    return shared


def _private(entry: TokenEntry) -> TokenEntry:
    """A copy of ``entry`` that may be changed (lists and dicts included)."""
    return TokenEntry(**orjson.loads(_dump(entry)))


def _dump(entry: TokenEntry) -> bytes:
    if type(entry) is TokenEntry:
        return orjson.dumps(entry)
    return orjson.dumps({name: getattr(entry, name) for name in _FIELDS})  # orjson takes no dataclass subclass


def _keep(cache: dict[str, Any], key: str, value: Any) -> None:
    """Put ``key`` in ``cache``, emptying it first once it holds CACHE_SIZE keys."""
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value


RevokeHook = Callable[[TokenEntry], Awaitable[None]]
#: ``num_uses`` of a limited-use token whose last use is under way.
USED_UP = -1


class TokenStore:
    def __init__(self, storage: Storage, default_ttl: int, max_ttl: int) -> None:
        self.storage = storage
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self._salt = b""
        self._use_lock = asyncio.Lock()
        #: Called for each token as it is revoked (leases hook in here).
        self.revoke_hooks: list[RevokeHook] = []
        #: hash -> live entries as read from storage, so the lookup every request makes skips a
        #: storage read, a decryption and a parse. Every write and removal of an entry goes through
        #: this class and drops it here; ``_generation`` stops a read that raced one from caching
        #: what it read. The entries are shared by every request, so they cannot be changed.
        self._cache: dict[str, _SharedEntry] = {}
        self._generation = 0
        #: token id -> its hash (HMAC-SHA256 under the salt) for recently seen tokens: the hash
        #: costs more than the rest of a cached lookup. Emptied when full and at every setup.
        self._hashes: dict[str, str] = {}

    def _forget(self, token_hash: str) -> None:
        self._generation += 1
        self._cache.pop(token_hash, None)

    def clear_cache(self) -> None:
        """Drop every cached entry and token hash (at seal, and before each setup)."""
        self._cache.clear()
        self._hashes.clear()
        self._generation += 1

    async def setup(self) -> None:
        self.clear_cache()
        salt = await self.storage.get(SALT)
        if salt is None:
            salt = secrets.token_bytes(32)
            await self.storage.put(SALT, salt)
        self._salt = salt

    def hash(self, token_id: str) -> str:
        known = self._hashes.get(token_id)
        if known is not None:
            return known
        # Not hmac.digest(): that one-shot releases the GIL, which on a busy server costs far
        # more than the hash (the HMAC object does not, for a message this short).
        token_hash = hmac.new(self._salt, token_id.encode(), hashlib.sha256).hexdigest()
        if len(token_id) <= MAX_TOKEN_LENGTH:
            _keep(self._hashes, token_id, token_hash)
        return token_hash

    async def _load(self, token_hash: str) -> TokenEntry | None:
        """The stored entry of ``token_hash``, shared and unchangeable (``_private`` for a copy to change)."""
        entry = self._cache.get(token_hash)
        if entry is not None:
            return entry
        generation = self._generation
        raw = await self.storage.get(ID + token_hash)
        if raw is None:
            return None
        doc = orjson.loads(raw)
        if not hmac.compare_digest(doc["hash"], token_hash):
            return None
        entry = _shared(doc)
        if generation == self._generation:
            _keep(self._cache, token_hash, entry)
        return entry

    @property
    def generation(self) -> int:
        """Changes whenever any token entry may have changed (see ``still_live``)."""
        return self._generation

    def still_live(self, entry: TokenEntry, generation: int) -> bool:
        """Whether ``entry``, looked up at ``generation``, is what ``lookup`` would answer now."""
        return (generation == self._generation and entry.num_uses != USED_UP
                and not (entry.expire_time and entry.expire_time <= time.time()))

    async def lookup(self, token_id: str | None) -> TokenEntry | None:
        """The live entry for ``token_id``, or None (unknown or expired)."""
        if not token_id or len(token_id) > MAX_TOKEN_LENGTH:
            return None
        entry = await self._load(self.hash(token_id))
        if entry is None or entry.num_uses == USED_UP or (entry.expire_time and entry.expire_time <= time.time()):
            return None
        return entry

    async def lookup_accessor(self, accessor: str) -> TokenEntry | None:
        raw = await self.storage.get(ACCESSOR + accessor) if accessor and "/" not in accessor else None
        if raw is None:
            return None
        entry = await self._load(raw.decode())
        if entry is None or (entry.expire_time and entry.expire_time <= time.time()):
            return None
        return entry

    async def _write(self, entry: TokenEntry, *, old_expire: float = 0.0, new: bool = False) -> None:
        """Store ``entry``: a new token only while its parent lives, a change only while the token does."""
        ops: list[Put | Delete] = [Put(ID + entry.hash, _dump(entry))]
        expect = [Expect(ID + entry.hash, exists=not new)]
        if new:
            ops.append(Put(ACCESSOR + entry.accessor, entry.hash.encode()))
            if entry.parent:
                ops.append(Put(f"{PARENT}{entry.parent}/{entry.hash}", b""))
                expect.append(Expect(ID + entry.parent))
            if entry.auth_mount:
                ops.append(Put(f"{MOUNT}{entry.auth_mount}/{entry.hash}", b""))
        if old_expire and old_expire != entry.expire_time:
            ops.append(Delete(expiry_key(old_expire, entry.hash)))
        if entry.expire_time and entry.expire_time != old_expire:
            ops.append(Put(expiry_key(entry.expire_time, entry.hash), b""))
        self._forget(entry.hash)
        try:
            await self.storage.batch(ops, expect)
        except ConditionFailed as exc:
            if exc.key == ID + entry.hash and new:
                raise InvalidRequest("a token with that id already exists; choose another id") from None
            raise PermissionDenied() from None  # the token (or the parent) was revoked meanwhile
        finally:
            self._forget(entry.hash)

    async def create(
        self,
        *,
        policies: list[str],
        parent: TokenEntry | None,
        token_id: str | None = None,
        ttl: int = 0,
        explicit_max_ttl: int = 0,
        period: int = 0,
        num_uses: int = 0,
        renewable: bool = True,
        display_name: str = "token",
        meta: dict[str, str] | None = None,
        orphan: bool = False,
        path: str = "auth/token/create",
        default_ttl: int = 0,
        max_ttl: int = 0,
        bound_cidrs: list[str] | None = None,
        role: str = "",
        auth_mount: str = "",
        internal: dict[str, Any] | None = None,
        alias: str = "",
        warnings: list[str] | None = None,
    ) -> tuple[str, TokenEntry]:
        """Store a new token; answers it and its entry.

        ``ttl`` 0 takes ``default_ttl`` (else the server's); ``max_ttl`` (else the server's) and
        ``explicit_max_ttl`` cap it, and a periodic token lives ``period`` (within ``explicit_max_ttl``).
        A warning for each cap applied is appended to ``warnings``.
        """
        token_id = token_id or new_token()
        token_hash = self.hash(token_id)
        now = time.time()
        notes: list[str] = []
        if period:
            ttl, note = capped(period, explicit_max_ttl, "explicit_max_ttl")
            notes.append(note)
        else:
            if not ttl:
                # A root token made without a TTL never expires, as in Vault.
                ttl = explicit_max_ttl if "root" in policies else (default_ttl or self.default_ttl)
            limits = [c for c in (max_ttl or self.max_ttl, explicit_max_ttl) if c]
            if ttl and limits:
                ttl, note = capped(ttl, min(limits))
                notes.append(note)
        if warnings is not None:
            warnings.extend(n for n in notes if n)
        entry = TokenEntry(
            hash=token_hash,
            accessor=new_accessor(),
            policies=policies,
            parent="" if orphan or parent is None else parent.hash,
            meta=meta or {},
            display_name=display_name,
            num_uses=num_uses,
            creation_time=now,
            ttl=ttl,
            explicit_max_ttl=explicit_max_ttl,
            period=period,
            renewable=renewable and bool(ttl),
            expire_time=now + ttl if ttl else 0.0,
            path=path,
            orphan=orphan or parent is None,
            max_ttl=max_ttl,
            bound_cidrs=list(bound_cidrs or []),
            role=role,
            auth_mount=auth_mount,
            internal=dict(internal or {}),
            alias=alias,
        )
        await self._write(entry, new=True)
        return token_id, entry

    async def renew(self, entry: TokenEntry, increment: int = 0, *, ttl: int | None = None,
                    max_ttl: int | None = None, period: int | None = None) -> tuple[TokenEntry, int]:
        """Extend ``entry``'s life; answers it and the TTL granted.

        ``ttl``, ``max_ttl`` and ``period`` are what the token's auth method says apply now (None: keep
        the token's own). A periodic token gets its period again; another gets ``increment`` (else its
        TTL), never past its max TTL or explicit max TTL counted from its creation.
        """
        if not entry.renewable or not entry.expire_time:
            raise InvalidRequest("lease is not renewable")
        entry = _private(entry)
        now = time.time()
        if max_ttl is not None:
            entry.max_ttl = max_ttl
        if period is not None:
            entry.period = period
        granted = entry.period or increment or ttl or entry.ttl
        limits = [entry.creation_time + entry.explicit_max_ttl - now] if entry.explicit_max_ttl else []
        if not entry.period:
            limits.append(entry.creation_time + (entry.max_ttl or self.max_ttl) - now)
        if limits:
            granted = int(min(granted, *limits))
        if granted <= 0:
            raise InvalidRequest("token has reached its maximum TTL and cannot be renewed; create a new token")
        old = entry.expire_time
        entry.expire_time = now + granted
        await self._write(entry, old_expire=old)
        return entry, granted

    async def use(self, entry: TokenEntry) -> tuple[bool, TokenEntry]:
        """Count one use of a limited-use token, before its request runs.

        Answers whether that was its last use (the caller revokes the token once
        the request is done) and the entry as it now stands. Concurrent requests are
        counted one at a time against what is stored, so a token never serves more
        requests than it has uses; a used-up token is stored with ``num_uses = -1``
        (still a limited-use token) until revoked.
        """
        if not entry.num_uses:
            return False, entry
        async with self._use_lock:
            stored = await self._load(entry.hash)
            if stored is None or stored.num_uses <= 0:
                raise PermissionDenied()
            counted = _private(stored)
            counted.num_uses -= 1
            last = counted.num_uses == 0
            if last:
                counted.num_uses = USED_UP
            await self._write(counted, old_expire=counted.expire_time)
        return last, counted

    async def children(self, token_hash: str) -> list[str]:
        return [k for k in await self.storage.list(f"{PARENT}{token_hash}/") if not k.endswith("/")]

    async def revoke_tree(self, entry: TokenEntry) -> int:
        """Revoke ``entry`` and every descendant; answers how many."""
        await self._tombstone(entry)
        return await self._finish(entry)

    async def revoke_orphan(self, entry: TokenEntry) -> None:
        """Revoke only ``entry``; its children become orphans."""
        await self._tombstone(entry)
        for child_hash in await self.children(entry.hash):
            child = await self._load(child_hash)
            if child is not None:
                child = _private(child)
                child.parent, child.orphan = "", True
                try:
                    await self._write(child, old_expire=child.expire_time)
                except PermissionDenied:
                    pass  # revoked meanwhile
            await self.storage.delete(f"{PARENT}{entry.hash}/{child_hash}")
        await self._finish(entry, with_children=False)

    async def _tombstone(self, entry: TokenEntry) -> None:
        """Stop ``entry`` working, atomically: its entry moves to ``revoking/``."""
        self._forget(entry.hash)
        try:
            await self.storage.batch([Delete(ID + entry.hash), Put(REVOKING + entry.hash, _dump(entry))])
        finally:
            self._forget(entry.hash)

    async def _finish(self, root: TokenEntry, *, with_children: bool = True) -> int:
        """Revoke what hangs off a tombstoned token: its descendants (tombstoned first), then, deepest
        first, each one's leases and cubbyhole (the revoke hooks) and index entries."""
        order = [root]
        pending = [root] if with_children else []
        while pending:
            node = pending.pop()
            for child_hash in await self.children(node.hash):
                child = await self._load(child_hash)
                if child is not None:
                    await self._tombstone(child)
                else:  # tombstoned already (a revocation being finished), or gone
                    raw = await self.storage.get(REVOKING + child_hash)
                    if raw is None:
                        await self.storage.delete(f"{PARENT}{node.hash}/{child_hash}")
                        continue
                    child = TokenEntry(**orjson.loads(raw))
                order.append(child)
                pending.append(child)
        for node in reversed(order):
            for hook in self.revoke_hooks:
                await hook(node)
            ops: list[Put | Delete] = [Delete(REVOKING + node.hash), Delete(ACCESSOR + node.accessor)]
            if node.parent:
                ops.append(Delete(f"{PARENT}{node.parent}/{node.hash}"))
            if node.expire_time:
                ops.append(Delete(expiry_key(node.expire_time, node.hash)))
            if node.auth_mount:
                ops.append(Delete(f"{MOUNT}{node.auth_mount}/{node.hash}"))
            await self.storage.batch(ops)
        return len(order)

    async def finish_revocations(self) -> int:
        """Finish the revocations a crash cut short (at unseal, before anything else runs)."""
        count = 0
        while rows := await self.storage.scan(REVOKING, prefix_end(REVOKING), 100):
            for _, raw in rows:
                count += await self._finish(TokenEntry(**orjson.loads(raw)))
        return count

    async def revoke_mount(self, mount_uuid: str) -> int:
        """Revoke every token the auth mount ``mount_uuid`` issued (it is being disabled); answers how many."""
        count = 0
        folder = f"{MOUNT}{mount_uuid}/"
        while names := [k for k in await self.storage.list(folder) if not k.endswith("/")]:
            for token_hash in names:
                entry = await self._load(token_hash)
                if entry is not None:
                    count += await self.revoke_tree(entry)
                else:
                    await self.storage.delete(folder + token_hash)
        return count

    async def accessors(self) -> list[str]:
        return await self.storage.list(ACCESSOR)

    async def tidy(self) -> dict[str, int]:
        """Remove index entries that point at no token (left by crashes or old bugs) and revoke expired
        tokens; answers what was done."""
        done = {"accessors": 0, "parent_links": 0, "expiry_entries": 0, "expired_tokens": 0}

        async def dangling(token_hash: str) -> bool:
            return (await self.storage.get(ID + token_hash) is None
                    and await self.storage.get(REVOKING + token_hash) is None)

        for accessor in await self.storage.list(ACCESSOR):
            raw = await self.storage.get(ACCESSOR + accessor)
            if raw is not None and await dangling(raw.decode()):
                await self.storage.delete(ACCESSOR + accessor)
                done["accessors"] += 1
        for parent in await self.storage.list(PARENT):
            parent_hash = parent.rstrip("/")
            parent_gone = await dangling(parent_hash)
            for child in await self.children(parent_hash):
                if parent_gone or await dangling(child):
                    child_entry = await self._load(child)
                    if child_entry is not None and parent_gone:
                        # Its parent is gone without having revoked it: it dies as the parent did.
                        done["expired_tokens"] += await self.revoke_tree(child_entry)
                    await self.storage.delete(f"{PARENT}{parent_hash}/{child}")
                    done["parent_links"] += 1
        start = EXPIRY
        while rows := await self.storage.scan(start, prefix_end(EXPIRY), 500):
            for key, _ in rows:
                if await dangling(key.rsplit("/", 1)[1]):
                    await self.storage.delete(key)
                    done["expiry_entries"] += 1
            start = rows[-1][0] + "\x00"
        done["expired_tokens"] += await self.revoke_expired()
        return done

    async def revoke_expired(self, now: float | None = None, limit: int = 500) -> int:
        """Revoke tokens whose expiry has passed, oldest first."""
        end = f"{EXPIRY}{int((now or time.time()) * 1000):015d}0"
        rows = await self.storage.scan(EXPIRY, end, limit)
        count = 0
        for key, _ in rows:
            token_hash = key.rsplit("/", 1)[1]
            entry = await self._load(token_hash)
            if entry is None:
                await self.storage.delete(key)
                continue
            count += await self.revoke_tree(entry)
        return count
