"""The server's lifecycle: it builds core's services, and initializes, unseals and seals.

Unseal is all or nothing: once the root key opens the keyring, the tokens,
mount tables and audit devices are loaded and the background work started;
if any of it fails, the server seals again and says why. Requests go
through ``core.pipeline``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer import __version__
from coffer.core.audit import AuditBroker
from coffer.core.barrier import KEYRING_PATH, Barrier
from coffer.core.cubbyhole import cubbyhole_backend
from coffer.core.expiration import RETRY_WINDOW, ExpirationManager
from coffer.core.logins import Logins
from coffer.core.metrics import Metrics
from coffer.core.pipeline import Pipeline
from coffer.core.policystore import PolicyStore
from coffer.core.router import Router
from coffer.core.seal import SealConfig, SealManager, check_shape, split
from coffer.core.supervisor import Supervisor
from coffer.core.system import system_backend
from coffer.core.token_backend import token_backend
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.core.wrapping import Wrapping
from coffer.durations import DEFAULT_LEASE_TTL
from coffer.errors import CofferError, InvalidRequest
from coffer.framework.engine import Engine, Factory
from coffer.framework.request import PERIODIC, ROLLBACK, Request, Response
from coffer.framework.storage import StorageView
from coffer.storage.base import Storage

log = logging.getLogger("coffer.core")

#: How often write-ahead entries are rolled back, and how old they must be (except at unseal: all of them).
ROLLBACK_EVERY = 60.0
ROLLBACK_MIN_AGE = 300.0
#: How often engines get their periodic tick.
PERIODIC_EVERY = 5.0


class Core:
    def __init__(
        self,
        physical: Storage,
        *,
        default_lease_ttl: int = DEFAULT_LEASE_TTL,
        max_lease_ttl: int = DEFAULT_LEASE_TTL,
        storage_type: str = "inmem",
        engines: dict[str, Factory] | None = None,
        auth_methods: dict[str, Factory] | None = None,
        audit_protected: tuple[str, ...] = (),
        allow_audit_log_prefixing: bool = False,
        revocation_retry_window: float = RETRY_WINDOW,
    ) -> None:
        self.physical = physical
        self.barrier = Barrier(physical)
        self.storage_type = storage_type
        self.default_lease_ttl = default_lease_ttl
        self.max_lease_ttl = max_lease_ttl
        self.sealing = SealManager(physical)
        self.supervisor = Supervisor()
        self.tokens = TokenStore(self.barrier, default_lease_ttl, max_lease_ttl)
        self.policies = PolicyStore(self.barrier)
        self.audit = AuditBroker(self.barrier, protected=audit_protected, allow_prefixing=allow_audit_log_prefixing)
        token_engine = token_backend(self.tokens, self.policies, renewer=lambda entry, increment:
                                     self.logins.renew(entry, increment))
        cubbyhole = cubbyhole_backend()
        # The built-in mounts' engines (the system backend is made below: it needs the router).
        self.router = Router(self.barrier, secrets_engines=dict(engines or {}), auth_methods=dict(auth_methods or {}),
                             builtins={"system": lambda info: self.system, "token": lambda info: token_engine,
                                       "cubbyhole": lambda info: cubbyhole},
                             default_lease_ttl=default_lease_ttl, max_lease_ttl=max_lease_ttl)
        self.expiration = ExpirationManager(self.barrier, self.router, self.supervisor,
                                            retry_window=revocation_retry_window)
        self.logins = Logins(self.tokens, self.router)
        self.wrapping = Wrapping(self.tokens, self._cubbyhole_storage)
        self.metrics = Metrics(self)
        self.system: Engine = system_backend(self)
        self.tokens.revoke_hooks.append(self._token_revoked)
        self.pipeline = Pipeline(lambda: not self._serving, self.router, self.system, self.tokens, self.policies, self.audit,
                                 self.expiration, self.logins, self.wrapping)
        self._unseal_lock = asyncio.Lock()
        #: Unsealed and set up: requests are served (the barrier alone is also open while initializing).
        self._serving = False
        self._rollback_before = 0.0

    async def handle(self, req: Request) -> Response | None:
        return await self.pipeline.handle(req)

    # -- lifecycle ---------------------------------------------------------

    @property
    def sealed(self) -> bool:
        return not self._serving

    async def load_seal_config(self) -> SealConfig | None:
        return await self.sealing.load()

    async def initialize(self, shares: int, threshold: int, root_token_id: str | None = None) -> tuple[list[bytes], str]:
        """Create the keyring and the root token; answer unseal keys and root token."""
        # One init at a time (and none during an unseal): two concurrent inits
        # would interleave two keyrings in storage and brick the server.
        async with self._unseal_lock:
            if await self.sealing.load() is not None:
                raise InvalidRequest("Vault is already initialized")
            check_shape(shares, threshold)
            if await self.physical.get(KEYRING_PATH) is not None:
                raise InvalidRequest("the storage holds a keyring but no seal configuration: it was initialized "
                                     "before and its seal configuration is lost; restore it from a backup (an init "
                                     "would destroy every secret in it)")
            # Whatever is in storage without a keyring is left over from an init that died
            # half-way: encrypted under a keyring that was never kept.
            await StorageView(self.physical, "").delete_tree()
            root_key = AESGCM.generate_key(256)
            keyring = self.barrier.initialize(root_key)
            try:
                await self._load()
                await self.policies.ensure_default()
                root_token, _ = await self.tokens.create(policies=["root"], parent=None, token_id=root_token_id,
                                                         display_name="root", path="auth/token/root")
                config = SealConfig(shares, threshold)
                await self.physical.batch([keyring, self.sealing.config_put(config)])
                self.sealing.config = config
            finally:
                await self._unload()
            return split(root_key, shares, threshold), root_token

    async def submit_unseal_key(self, key: bytes | None, reset: bool = False) -> None:
        async with self._unseal_lock:
            if reset:
                self.sealing.reset()
            if key is None:
                return
            if self.sealing.config is None and await self.sealing.load() is None:
                raise InvalidRequest("Vault is not initialized")
            self.sealing.check(key)
            if not self.barrier.sealed:
                return
            root_key = self.sealing.add(key)
            if root_key is None:
                return
            await self.barrier.unseal(root_key)
            try:
                await self._load()
                self._start_background()
                self._serving = True
            except Exception as exc:
                await self._unload()
                log.exception("unseal failed: the server stays sealed")
                raise CofferError(f"unseal failed, so the server stays sealed: {exc}") from None
            log.info("unsealed")

    async def _load(self) -> None:
        await self.tokens.setup()
        await self.router.load()
        await self.audit.load()
        await self.expiration.setup()

    async def _unload(self) -> None:
        self._serving = False
        await self.supervisor.stop()
        self.router.clear()
        self.audit.close()
        self.policies.clear_cache()
        self.barrier.seal()

    async def seal(self) -> None:
        await self._unload()
        log.info("sealed")

    async def shutdown(self) -> None:
        if not self.barrier.sealed:
            await self.seal()
        await self.physical.close()

    # -- background work ---------------------------------------------------

    def _start_background(self) -> None:
        self.supervisor.spawn(self.tokens.finish_revocations(), "token-revocations")
        run = self.supervisor.every
        run("token-expiry", 1.0, self._expire_tokens)
        run("lease-expiry", 1.0, self.expiration.run)
        # First undo every write-ahead entry written before this unseal (no request
        # of this process wrote it), then, every minute, those older than five minutes.
        self._rollback_before = time.time()
        run("wal-rollback", ROLLBACK_EVERY, self._rollback_round)
        run("periodic", PERIODIC_EVERY, self._periodic_round)

    async def _to_every_mount(self, operation: str, data: dict[str, Any]) -> None:
        for mount in list(self.router.mounts.values()):
            try:
                await mount.engine.handle(self.router.request(mount, operation, mount.route, data=dict(data)))
            except Exception:  # one engine failing does not stop the others
                log.exception("%s of the mount %s failed", operation, mount.route)

    async def _rollback_round(self) -> None:
        await self._to_every_mount(ROLLBACK, {"created_before": self._rollback_before})
        self._rollback_before = time.time() - ROLLBACK_MIN_AGE

    async def _periodic_round(self) -> None:
        await self._to_every_mount(PERIODIC, {})

    async def _expire_tokens(self) -> None:
        while await self.tokens.revoke_expired() >= 500:
            await asyncio.sleep(0)

    def _cubbyhole_storage(self) -> StorageView | None:
        cubbyhole = self.router.mounts.get("cubbyhole/")
        return None if cubbyhole is None else cubbyhole.storage

    async def _token_revoked(self, token: TokenEntry) -> None:
        """What goes with a token: the leases it created, and its cubbyhole."""
        await self.expiration.revoke_for_token(token.hash)
        cubbyhole = self._cubbyhole_storage()
        if cubbyhole is not None:
            await cubbyhole.sub(f"{token.hash}/").delete_tree()

    # -- status --------------------------------------------------------------

    def status(self) -> dict[str, object]:
        config = self.sealing.config
        return {
            "type": "shamir",
            "initialized": config is not None,
            "sealed": self.sealed,
            "t": config.secret_threshold if config else 0,
            "n": config.secret_shares if config else 0,
            "progress": self.sealing.progress,
            "nonce": "",
            "version": __version__,
            "build_date": "",
            "migration": False,
            "recovery_seal": False,
            "storage_type": self.storage_type,
        }

