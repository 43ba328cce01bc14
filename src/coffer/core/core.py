"""The request pipeline and the server's lifecycle (init, unseal, seal).

One request: sealed? -> route to a mount -> token -> ACL (and sudo) ->
field validation -> audit the request -> the engine's handler -> register
a lease if the answer carries a secret -> audit the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.core import shamir
from coffer.core.audit import AuditBroker
from coffer.core.barrier import Barrier
from coffer.core.expiration import ExpirationManager, Lease
from coffer.core.mounts import MountEntry, MountTable
from coffer.core.policystore import PolicyStore
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.errors import CofferError, InvalidRequest, NotFound, PermissionDenied, Sealed
from coffer.framework import wal
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import FieldData
from coffer.framework.request import CREATE, HELP, UPDATE, Request, Response
from coffer.framework.storage import StorageView
from coffer.storage.base import Delete, Put, Storage

log = logging.getLogger("coffer.core")

SEAL_CONFIG_PATH = "core/seal-config"
DEFAULT_TTL = 768 * 3600
ROLLBACK_EVERY = 60.0
ROLLBACK_MIN_AGE = 300.0
BackendFactory = Callable[[MountEntry], Backend]


@dataclass(slots=True)
class SealConfig:
    secret_shares: int
    secret_threshold: int


class Core:
    def __init__(
        self,
        physical: Storage,
        *,
        default_lease_ttl: int = DEFAULT_TTL,
        max_lease_ttl: int = DEFAULT_TTL,
        storage_type: str = "inmem",
        engines: dict[str, BackendFactory] | None = None,
    ) -> None:
        from coffer.core.system import system_backend
        from coffer.core.token_backend import token_backend
        from coffer.engines import builtin_engines

        self.physical = physical
        self.barrier = Barrier(physical)
        self.storage_type = storage_type
        self.default_lease_ttl = default_lease_ttl
        self.max_lease_ttl = max_lease_ttl
        self.engines = engines if engines is not None else builtin_engines()
        self.tokens = TokenStore(self.barrier, default_lease_ttl, max_lease_ttl)
        self.expiration = ExpirationManager(self.barrier, self._revoke_lease)
        self.audit = AuditBroker(self.barrier)
        self.tokens.revoke_hooks.append(self._revoke_token_leases)
        self.policies = PolicyStore(self.barrier)
        self.mounts = MountTable(self.barrier)
        self.backends: dict[str, Backend] = {}
        self.system = system_backend(self)
        self.token_backend = token_backend(self)
        self.seal_config: SealConfig | None = None
        self._progress: list[bytes] = []
        self._unseal_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._rollback_before = 0.0

    # -- lifecycle ---------------------------------------------------------

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    async def load_seal_config(self) -> SealConfig | None:
        raw = await self.physical.get(SEAL_CONFIG_PATH)
        self.seal_config = SealConfig(**orjson.loads(raw)) if raw else None
        return self.seal_config

    @property
    def unseal_progress(self) -> int:
        return len(self._progress)

    async def initialize(self, shares: int, threshold: int, root_token_id: str | None = None) -> tuple[list[bytes], str]:
        """Create the keyring and the root token; answer unseal keys and root token."""
        # One init at a time (and none during an unseal): two concurrent inits
        # would interleave two keyrings in storage and brick the server.
        async with self._unseal_lock:
            return await self._initialize(shares, threshold, root_token_id)

    async def _initialize(self, shares: int, threshold: int, root_token_id: str | None) -> tuple[list[bytes], str]:
        if await self.load_seal_config() is not None:
            raise InvalidRequest("Vault is already initialized")
        if not 1 <= shares <= 255:
            raise InvalidRequest("secret_shares must be between 1 and 255")
        if not 1 <= threshold <= shares:
            raise InvalidRequest("secret_threshold must be between 1 and secret_shares")
        if shares > 1 and threshold == 1:
            raise InvalidRequest("secret_threshold must be greater than 1 when secret_shares is greater than 1")
        # Whatever is in storage without a seal configuration is left over from an
        # init that died half-way: encrypted under a keyring that was never kept.
        await StorageView(self.physical, "").delete_tree()
        root_key = AESGCM.generate_key(256)
        keyring = self.barrier.initialize(root_key)
        try:
            await self._setup()
            await self.policies.ensure_default()
            root_token, _ = await self.tokens.create(
                policies=["root"], parent=None, token_id=root_token_id, display_name="root", path="auth/token/root"
            )
            config = SealConfig(shares, threshold)
            await self.physical.batch([keyring, Put(SEAL_CONFIG_PATH, orjson.dumps(asdict(config)))])
            self.seal_config = config
        finally:
            self.barrier.seal()
        keys = [root_key] if shares == 1 else shamir.split(root_key, shares, threshold)
        return keys, root_token

    async def submit_unseal_key(self, key: bytes | None, reset: bool = False) -> None:
        async with self._unseal_lock:
            if reset:
                self._progress = []
            if key is None:
                return
            config = self.seal_config or await self.load_seal_config()
            if config is None:
                raise InvalidRequest("Vault is not initialized")
            if not self.sealed:
                return
            expected = 32 if config.secret_threshold == 1 else 33
            if len(key) != expected:
                raise InvalidRequest(f"'key' must be one unseal key of {expected} bytes (hex or base64); "
                                     f"this one has {len(key)} bytes")
            if key not in self._progress:
                self._progress.append(key)
            if len(self._progress) < config.secret_threshold:
                return
            shares, self._progress = self._progress, []
            try:
                root_key = shares[0] if len(shares) == 1 else shamir.combine(shares)
            except ValueError as exc:
                raise InvalidRequest(f"Error unsealing: {exc}") from None
            await self.barrier.unseal(root_key)
            await self._setup()
            self._start_background()
            log.info("unsealed")

    async def _setup(self) -> None:
        await self.tokens.setup()
        await self.mounts.load()
        await self.audit.load()
        self.backends = {}
        for entry in self.mounts.entries.values():
            self.backends[entry.path] = self._instantiate(entry)

    def _instantiate(self, entry: MountEntry) -> Backend:
        factory = self.engines.get(entry.type)
        if factory is None:
            raise InvalidRequest(f'plugin not found in the catalog: {entry.type} (known types: '
                                 f'{", ".join(sorted(self.engines))})')
        return factory(entry)

    async def seal(self) -> None:
        await self._stop_background()
        self.barrier.seal()
        self.backends = {}
        self.audit.close()
        self.policies.clear_cache()
        log.info("sealed")

    async def shutdown(self) -> None:
        if not self.sealed:
            await self.seal()
        await self.physical.close()

    # -- background work ---------------------------------------------------

    def _start_background(self) -> None:
        self._tasks.append(asyncio.create_task(self._periodic(self._expire_tokens, 1.0), name="token-expiry"))
        self._tasks.append(asyncio.create_task(self._periodic(self.expiration.run, 1.0), name="lease-expiry"))
        # First undo every write-ahead entry written before this unseal (no request
        # of this process wrote it), then, every minute, those older than five minutes.
        self._rollback_before = time.time()
        self._tasks.append(asyncio.create_task(self._periodic(self._rollback_round, ROLLBACK_EVERY),
                                               name="wal-rollback"))

    async def _stop_background(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _periodic(self, job: Callable[[], Awaitable[object]], every: float) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed sweep must not kill the loop
                log.exception("background job %s failed", getattr(job, "__name__", job))
            await asyncio.sleep(every)

    async def _rollback_round(self) -> None:
        await self.rollback(self._rollback_before)
        self._rollback_before = time.time() - ROLLBACK_MIN_AGE

    async def _expire_tokens(self) -> None:
        while await self.tokens.revoke_expired() >= 500:
            await asyncio.sleep(0)

    # -- mounts ------------------------------------------------------------

    async def mount(self, entry: MountEntry) -> None:
        backend = self._instantiate(entry)
        await self.mounts.add(entry)
        self.backends[entry.path] = backend

    async def unmount(self, path: str) -> bool:
        entry = self.mounts.entries.get(path)
        if entry is None:
            return False
        result = await self.expiration.revoke_prefix(path)
        if result.failed:
            first = next(iter(result.failed.items()))
            raise InvalidRequest(
                f"cannot unmount {path}: {len(result.failed)} lease(s) could not be revoked (e.g. {first[0]}: "
                f"{first[1]}); fix the cause, or forget them with sys/leases/revoke-force/{path}, then retry"
            )
        self.backends.pop(path, None)
        await self.mounts.remove(path)
        await StorageView(self.barrier, entry.storage_prefix).delete_tree()
        return True

    async def remount(self, src: str, dst: str) -> None:
        """Move a mount; its leases move with it (their ids change, as in Vault)."""
        await self.mounts.move(src, dst)
        self.backends[dst] = self.backends.pop(src)
        await self.expiration.move_prefix(src, dst)

    # -- the request pipeline ---------------------------------------------

    def _route(self, path: str) -> tuple[Backend, str, MountEntry | None]:
        if path.startswith("sys/") or path == "sys":
            return self.system, "sys/", None
        if path.startswith("auth/token/") or path == "auth/token":
            return self.token_backend, "auth/token/", None
        entry = self.mounts.match(path)
        if entry is None:
            raise NotFound(f'no handler for route "{path}": no secrets engine is mounted there '
                           "(list mounts with GET sys/mounts)")
        return self.backends[entry.path], entry.path, entry

    async def handle(self, req: Request) -> Response | None:
        try:
            return await self._handle(req)
        except CofferError as exc:
            if self.audit.enabled and not self.sealed:
                self.audit.log_response(req, None, error="; ".join(exc.messages))
            raise

    async def _handle(self, req: Request) -> Response | None:
        req.request_id = req.request_id or str(uuid.uuid4())
        if self.sealed:
            if not req.path.startswith("sys/") or req.path[4:] not in self.system.unauthenticated:
                raise Sealed()
            backend, mount_point, entry = self.system, "sys/", None
        else:
            backend, mount_point, entry = self._route(req.path)
        rel = req.path[len(mount_point):] if len(req.path) >= len(mount_point) else ""
        req.mount_point, req.relative_path = mount_point, rel
        unauthenticated = rel in backend.unauthenticated
        token: TokenEntry | None = None
        if not unauthenticated:
            token = await self.tokens.lookup(req.client_token)
            if token is None:
                raise PermissionDenied()
            req.token = token
        if req.operation == HELP and not any(p.regex.fullmatch(rel) for p in backend.paths):
            if rel.strip("/"):
                raise NotFound(f'no help for "{req.path}": unsupported path')
            return backend.help_response(None, req)  # the mount root: the engine's own help
        path, captures = backend.route(rel)
        if entry is not None:
            req.mount_type, req.mount_accessor = entry.type, entry.accessor
            req.mount_config = self._mount_config(entry)
            req.storage = StorageView(self.barrier, entry.storage_prefix)
        if req.operation in (CREATE, UPDATE):
            req.operation = await backend.resolve_write(path, req, captures)
        if token is not None and req.operation != HELP:
            await self._authorize(req, token, backend, rel)
        data = backend.field_data(path, captures, req)
        last_use = token is not None and await self.tokens.use(token)
        try:
            return await self._run(req, backend, path, data, entry, token)
        finally:
            if last_use:
                assert token is not None
                await self.tokens.revoke_tree(token)

    async def _run(self, req: Request, backend: Backend, path: Path, data: FieldData, entry: MountEntry | None,
                   token: TokenEntry | None) -> Response | None:
        """The engine's part, between the request's and the response's audit."""
        if self.audit.enabled and not self.audit.log_request(req):
            raise CofferError("no audit device could record the request, so it was refused; "
                              "check the audit devices (sys/audit)")
        resp = await backend.handle(req, path, data)
        if resp is not None and resp.secret is not None:
            await self._lease(req, resp, entry, token)
        if self.audit.enabled and not self.audit.log_response(req, resp):
            await self._withdraw(resp)
            raise CofferError("no audit device could record the response, so it was withheld "
                              "(any lease or token in it was revoked); check the audit devices (sys/audit)")
        return resp

    async def _withdraw(self, resp: Response | None) -> None:
        """Take back what an unaudited response would have handed out."""
        if resp is None:
            return
        if resp.lease_id:
            try:
                await self.expiration.revoke(resp.lease_id)
            except CofferError:
                log.error("could not revoke unaudited lease %s at once; it is queued for retries", resp.lease_id)
        if resp.auth and resp.auth.get("client_token"):
            created = await self.tokens.lookup(resp.auth["client_token"])
            if created is not None:
                await self.tokens.revoke_tree(created)

    async def _lease(self, req: Request, resp: Response, entry: MountEntry | None, token: TokenEntry | None) -> None:
        """Register the lease of a response that carries a secret."""
        secret = resp.secret
        assert secret is not None and entry is not None
        mount_default = entry.default_lease_ttl or self.default_lease_ttl
        max_ttl = min(m for m in (entry.max_lease_ttl or self.max_lease_ttl, secret.max_ttl) if m)
        ttl = secret.ttl or mount_default
        if ttl > max_ttl:
            resp.warnings.append(f"TTL of {ttl}s exceeded the effective max_ttl of {max_ttl}s; TTL value is capped")
            ttl = max_ttl
        # The write-ahead entry goes in the same batch that records the lease.
        wal_ops = [Delete(f"{entry.storage_prefix}{wal.WAL_PREFIX}{secret.wal_id}")] if secret.wal_id else []
        lease = await self.expiration.register(
            req.path, entry.uuid, secret.type, secret.internal, ttl=ttl, max_ttl=max_ttl,
            renewable=secret.renewable, token_hash=token.hash if token else "",
            lease_id=secret.lease_id, extra_ops=wal_ops,
        )
        resp.lease_id, resp.lease_duration, resp.renewable = lease.lease_id, ttl, lease.renewable

    def lease_request(self, lease: Lease, operation: str) -> tuple[Request, Backend]:
        """A request an engine's renew/revoke callback runs with."""
        entry = self.mounts.by_uuid(lease.mount_uuid)
        if entry is None:
            raise InvalidRequest(f"the mount that issued lease {lease.lease_id} no longer exists")
        return self._engine_request(entry, operation, lease.path), self.backends[entry.path]

    def _mount_config(self, entry: MountEntry) -> dict[str, int]:
        return {"default_lease_ttl": entry.default_lease_ttl or self.default_lease_ttl,
                "max_lease_ttl": entry.max_lease_ttl or self.max_lease_ttl,
                "mount_default_lease_ttl": entry.default_lease_ttl}

    def _engine_request(self, entry: MountEntry, operation: str, path: str) -> Request:
        return Request(operation=operation, path=path, mount_point=entry.path, mount_type=entry.type,
                       mount_accessor=entry.accessor, relative_path=path[len(entry.path):],
                       storage=StorageView(self.barrier, entry.storage_prefix), mount_config=self._mount_config(entry))

    async def rollback(self, created_before: float) -> None:
        """Run engines' rollbacks for write-ahead entries written before ``created_before``."""
        for entry in list(self.mounts.entries.values()):
            backend = self.backends.get(entry.path)
            if backend is None or backend.rollback is None:
                continue
            req = self._engine_request(entry, "rollback", entry.path)
            assert req.storage is not None
            for item in await wal.entries(req.storage, created_before=created_before):
                try:
                    await backend.rollback(req, item.kind, item.data)
                except Exception as exc:  # kept; the next round retries
                    log.warning("rollback of %s at %s failed (will retry): %s", item.kind, entry.path, exc)
                    continue
                await wal.delete(req.storage, item.id)

    async def _revoke_lease(self, lease: Lease) -> None:
        if self.mounts.by_uuid(lease.mount_uuid) is None:
            log.warning("lease %s belongs to a mount that is gone; forgetting it", lease.lease_id)
            return
        req, backend = self.lease_request(lease, "revoke")
        secret_type = backend.secrets.get(lease.secret_type)
        if secret_type is None:
            raise InvalidRequest(f'the engine at {req.mount_point} has no secret type "{lease.secret_type}"')
        await secret_type.revoke(req, lease.internal)

    async def _revoke_token_leases(self, token: TokenEntry) -> None:
        await self.expiration.revoke_for_token(token.hash)

    async def _authorize(self, req: Request, token: TokenEntry, backend: Backend, rel: str) -> None:
        if token.is_root:
            return
        acl = await self.policies.acl(token.policies)
        result = acl.allows(req.path, req.operation, req.data)
        if not result.allowed:
            raise PermissionDenied()
        if backend.sudo_paths and any(fnmatch.fnmatchcase(rel, glob) for glob in backend.sudo_paths):
            if not result.sudo:
                raise PermissionDenied()

    # -- used by the sys backend ---------------------------------------------

    def status(self) -> dict[str, object]:
        config = self.seal_config
        return {
            "type": "shamir",
            "initialized": config is not None,
            "sealed": self.sealed,
            "t": config.secret_threshold if config else 0,
            "n": config.secret_shares if config else 0,
            "progress": self.unseal_progress,
            "nonce": "",
            "version": _version(),
            "build_date": "",
            "migration": False,
            "recovery_seal": False,
            "storage_type": self.storage_type,
        }


def _version() -> str:
    from coffer import __version__

    return __version__
