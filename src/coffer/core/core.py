"""The server's lifecycle: it builds core's services, and initializes, unseals and seals.

Unseal is all or nothing: once the root key opens the keyring, the tokens,
mount tables and audit devices are loaded and the background work started;
if any of it fails, the server seals again and says why. Requests go
through ``core.pipeline``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer import __version__
from coffer.core.audit import AuditBroker
from coffer.core.autoseal import AutoSeal
from coffer.core.barrier import KEYRING_PATH, Barrier
from coffer.core.cubbyhole import cubbyhole_backend
from coffer.core.expiration import RETRY_WINDOW, ExpirationManager
from coffer.core.ha import HighAvailability, KeysChanged
from coffer.core.logins import Logins
from coffer.core.metrics import Metrics
from coffer.core.pipeline import Pipeline
from coffer.core.policystore import PolicyStore
from coffer.core.router import Router
from coffer.core.seal import (
    SealConfig,
    SealManager,
    SharesMismatch,
    check_shape,
    encode_token,
    idle_rekey,
    idle_root_generation,
    new_otp,
    nonce,
    split,
)
from coffer.core.supervisor import Supervisor
from coffer.core.system import system_backend
from coffer.core.token_backend import token_backend
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.core.wrapping import Wrapping
from coffer.durations import DEFAULT_LEASE_TTL
from coffer.errors import CofferError, InvalidRequest, Sealed
from coffer.framework.engine import Engine, Factory
from coffer.framework.request import PERIODIC, ROLLBACK, Request, Response
from coffer.framework.storage import StorageView
from coffer.storage.base import Backend

log = logging.getLogger("coffer.core")

#: How often write-ahead entries are rolled back, and how old they must be (except at unseal: all of them).
ROLLBACK_EVERY = 60.0
ROLLBACK_MIN_AGE = 300.0
#: How often engines get their periodic tick.
PERIODIC_EVERY = 5.0


class Core:
    def __init__(
        self,
        physical: Backend,
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
        #: The configured seal: Shamir unless the server's config says awskms (``core.autoseal``).
        self.autoseal = AutoSeal(self)
        #: Unsealed and set up: requests are served (the barrier alone is also open while initializing).
        self._serving = False
        self._rollback_before = 0.0
        #: Set by enable_ha when the storage has an HA lock: then an unsealed node starts as a standby.
        self.ha: HighAvailability | None = None
        self.metrics.ha_role = lambda: self.ha.role if self.ha is not None and self.ha.role != "sealed" else ""

    def enable_ha(self, api_addr: str, cluster_addr: str, heartbeat_interval: float = 5.0) -> bool:
        """Use the storage's HA lock (if it has one): True when this node now takes part in HA."""
        lock = self.physical.ha_lock(uuid.uuid4().hex, "")
        if lock is None:
            return False
        self.ha = HighAvailability(lock, self.barrier, api_addr=api_addr, cluster_addr=cluster_addr,
                                   activate=self._activate, deactivate=self._deactivate, seal=self._seal_for_new_keys,
                                   heartbeat_interval=heartbeat_interval)
        return True

    async def handle(self, req: Request) -> Response | None:
        return await self.pipeline.handle(req)

    # -- lifecycle ---------------------------------------------------------

    @property
    def sealed(self) -> bool:
        return not self._serving and not self.standby

    @property
    def standby(self) -> bool:
        """Unsealed, but another node is the active one (HA)."""
        return self.ha is not None and self.ha.standby and not self._serving

    async def load_seal_config(self) -> SealConfig | None:
        return await self.sealing.load()

    async def initialize(self, shares: int, threshold: int, root_token_id: str | None = None,
                         recovery_shares: int = 0, recovery_threshold: int = 0) -> tuple[list[bytes], str]:
        """Create the keyring and the root token; answer unseal keys (recovery keys under awskms, which
        unseals at once) and root token."""
        auto = self.autoseal.configured != "shamir"
        # One init at a time (and none during an unseal): two concurrent inits
        # would interleave two keyrings in storage and brick the server.
        async with self._unseal_lock:
            if await self.sealing.load() is not None:
                raise InvalidRequest("Vault is already initialized")
            if not auto:
                check_shape(shares, threshold)
            if await self.physical.get(KEYRING_PATH) is not None:
                raise InvalidRequest("the storage holds a keyring but no seal configuration: it was initialized "
                                     "before and its seal configuration is lost; restore it from a backup (an init "
                                     "would destroy every secret in it)")
            # Whatever is in storage without a keyring is left over from an init that died
            # half-way: encrypted under a keyring that was never kept.
            root_key = AESGCM.generate_key(256)
            seal_ops, keys = (await self.autoseal.init_ops(root_key, recovery_shares, recovery_threshold) if auto
                              else ([], split(root_key, shares, threshold)))
            if self.ha is not None:  # every write of an HA storage is fenced by the lock
                await self.ha.hold_lock("an init")
            await StorageView(self.physical, "").delete_tree()
            keyring = self.barrier.initialize(root_key)
            try:
                await self._load()
                await self.policies.ensure_default()
                root_token, _ = await self.tokens.create(policies=["root"], parent=None, token_id=root_token_id,
                                                         display_name="root", path="auth/token/root")
                if not auto:
                    config = SealConfig(shares, threshold)
                    seal_ops = [self.sealing.config_put(config)]
                    self.sealing.config = self.sealing.barrier_config = config
                await self.physical.batch([keyring, *seal_ops])
            finally:
                await self._unload()
            if auto:  # stored: the seal unseals the server at once
                await self.sealing.load()
                await self.autoseal.open_with(root_key)
            return keys, root_token

    async def submit_unseal_key(self, key: bytes | None, reset: bool = False, migrate: bool = False) -> None:
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
            autoseal = self.autoseal
            if self.ha is not None and autoseal.migration:
                await self.sealing.load()  # the storage is shared: another node may have migrated it meanwhile
            if autoseal.migration != migrate:
                raise InvalidRequest(f"migrate option not provided and seal migration is pending (from "
                                     f"{autoseal.stored} to {autoseal.configured}): give the keys with migrate=true "
                                     "(coffer operator unseal -migrate)"
                                     if autoseal.migration else "migrate=true was given but no seal migration is "
                                     "pending (the configuration's seal is the one the storage is sealed with)")
            root_key = self.sealing.add(key)
            if root_key is None:
                return
            if migrate:
                await autoseal.migrate(root_key)
            elif autoseal.recovery:
                await autoseal.unseal_with_recovery_key(root_key)
            else:
                await self._unseal_with(root_key)

    async def _unseal_with(self, root_key: bytes) -> None:
        """Open the barrier with ``root_key`` and start serving: where every way of unsealing ends (the caller
        holds ``_unseal_lock``)."""
        await self.barrier.unseal(root_key)
        await self._serve_unsealed()

    async def _unseal_rewriting_seal(self, root_key: bytes, rewrite: Callable[[], Awaitable[None]]) -> None:
        """A seal migration's unseal: open the barrier with the old seal's ``root_key``, store the new seal
        (``rewrite``), then serve. On HA storage that write must be fenced, so this node takes the HA lock
        first (and so is the active node afterwards); while another node holds it, nothing changes."""
        if self.ha is not None:
            await self.ha.hold_lock("a seal migration")
        try:
            await self.barrier.unseal(root_key)
            await rewrite()
        except BaseException:
            await self._unload()
            raise
        await self._serve_unsealed()

    async def _serve_unsealed(self) -> None:
        """The barrier is open: load everything and serve, or on HA storage start as a standby."""
        if self.ha is not None:  # a standby until it takes the HA lock (then _activate)
            self.ha.start()
            return
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

    async def _activate(self) -> None:
        """HA: this node took the lock; load everything and serve (the barrier is open)."""
        try:
            await self.barrier.reload()
        except InvalidRequest:  # the root key held no longer opens the keyring
            raise KeysChanged("the keyring no longer opens with the key this node was unsealed with: the unseal "
                              "keys were changed through another node (a rekey or a seal migration). This node "
                              "seals itself; unseal it with the current keys") from None
        await self._load()
        self._start_background()
        self._serving = True

    async def _seal_for_new_keys(self) -> None:
        """HA: the unseal keys changed through another node; seal, and read the seal configuration they need."""
        await self.seal()
        await self.sealing.load()

    async def _deactivate(self) -> None:
        """Stop serving and stop the background work; the barrier stays as it is."""
        self._serving = False
        await self.supervisor.stop()
        self.router.clear()
        self.audit.close()
        self.policies.clear_cache()
        self.tokens.clear_cache()
        drop_cache = getattr(self.physical, "drop_cache", None)
        if drop_cache is not None:
            drop_cache()

    async def _unload(self) -> None:
        if self.ha is not None:
            await self.ha.stop()
        self.sealing.rekey = self.sealing.root_generation = None
        self.autoseal.forget()
        await self._deactivate()
        self.barrier.seal()

    async def seal(self) -> None:
        await self._unload()
        log.info("sealed")

    async def restore_storage(self, keyring: bytes, replace: Callable[[], Awaitable[int]], force: bool) -> bool:
        """Replace the whole storage by ``replace()`` (a snapshot restore) and reload everything from it.

        When the root key in force opens ``keyring`` (the snapshot's), the server unseals again at once and
        answers True. Otherwise, only with ``force``, it stays sealed (unseal with the snapshot's keys) and
        answers False. Should ``replace`` fail, storage is untouched and the server unseals as it was.
        """
        async with self._unseal_lock:
            if not self._serving:
                raise Sealed()
            same = self.barrier.opens_keyring(keyring)
            if not same and not force:
                raise InvalidRequest("the snapshot was taken from a store with other unseal keys (its keyring does "
                                     "not open with this server's root key); restore it with -force "
                                     "(sys/storage/raft/snapshot-force), then unseal with the snapshot's keys")
            root_key = self.barrier.root_key()
            if self.ha is not None:
                await self._deactivate()  # the HA lock stays held: it fences the restore's writes
            else:
                await self._unload()
            replaced = False
            try:
                count = await replace()
                replaced = True
                log.info("storage restored from a snapshot (%d entries)", count)
            finally:
                self.sealing.reset()
                await self.sealing.load()
                if self.ha is not None:
                    await (self._activate() if same or not replaced else self._unload())
                elif same or not replaced:
                    await self._unseal_with(root_key)
            return same

    async def shutdown(self) -> None:
        await self.autoseal.stop()
        if not self.barrier.sealed:
            await self.seal()
        await self.physical.close()

    # -- key ceremonies: rekey and root generation (state in core.seal) -----------

    def _unsealed_config(self) -> SealConfig:
        if not self._serving or self.sealing.config is None:
            raise Sealed()
        return self.sealing.config

    def _check_root_key(self, root_key: bytes, what: str) -> None:
        if self.autoseal.recovery:  # on a recovery seal, the key shares people hold make the recovery key
            if not self.autoseal.check_recovery_key(root_key):
                raise InvalidRequest(f"the keys given do not make the recovery key, so the {what} made no "
                                     "progress; give the recovery keys again")
            return
        if not self.barrier.is_root_key(root_key):
            raise InvalidRequest(f"the keys given do not make the root key, so the {what} made no progress; give "
                                 "the current unseal keys again")

    def rekey_status(self) -> dict[str, object]:
        config = self._unsealed_config()
        rekey = self.sealing.rekey
        return rekey.status(config.secret_threshold) if rekey else idle_rekey(config.secret_threshold)

    def rekey_init(self, shares: int, threshold: int, require_verification: bool = False,
                   recovery: bool = False) -> dict[str, object]:
        config = self._unsealed_config()
        if recovery != self.autoseal.recovery:
            raise InvalidRequest(f"this server is sealed with {self.autoseal.stored} and has recovery keys, not "
                                 "unseal keys: rekey them with sys/rekey-recovery-key" if self.autoseal.recovery
                                 else "this server has no recovery keys (its seal is shamir): rekey its unseal "
                                 "keys with sys/rekey")
        return self.sealing.start_rekey(shares, threshold, require_verification).status(config.secret_threshold)

    def rekey_cancel(self) -> None:
        self._unsealed_config()
        self.sealing.rekey = None

    async def rekey_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]:
        """Count one current unseal key; once enough are in, make the new root key and its shares (in force at
        once, or after sys/rekey/verify when the rekey asked for verification)."""
        async with self._unseal_lock:
            config = self._unsealed_config()
            root_key = self.sealing.rekey_add(key, given_nonce)
            rekey = self.sealing.rekey
            assert rekey is not None  # rekey_add checked it
            if root_key is None:
                return rekey.status(config.secret_threshold)
            self._check_root_key(root_key, "rekey")
            new_root_key = AESGCM.generate_key(256)
            shares = split(new_root_key, rekey.config.secret_shares, rekey.config.secret_threshold)
            answer: dict[str, object] = {
                "nonce": rekey.nonce, "complete": True, "keys": [k.hex() for k in shares],
                "keys_base64": [base64.b64encode(k).decode() for k in shares], "pgp_fingerprints": None,
                "backup": False, "verification_required": rekey.require_verification,
            }
            if rekey.require_verification:
                rekey.pending_root_key, rekey.verification_nonce = new_root_key, nonce()
                answer["verification_nonce"] = rekey.verification_nonce
            else:
                await self._install_root_key(new_root_key, rekey.config)
            return answer

    def rekey_verify_status(self) -> dict[str, object]:
        self._unsealed_config()
        rekey = self.sealing.rekey
        if rekey is None or not rekey.verification_nonce:
            raise InvalidRequest("no rekey configuration found")
        return rekey.verification_status()

    def rekey_verify_cancel(self) -> dict[str, object]:
        """Start the verification over (the new keys stay pending, under a new nonce)."""
        status = self.rekey_verify_status()
        rekey = self.sealing.rekey
        assert rekey is not None
        rekey.verification_shares, rekey.verification_nonce = [], nonce()
        return {**status, "nonce": rekey.verification_nonce, "progress": 0}

    async def rekey_verify_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]:
        async with self._unseal_lock:
            self._unsealed_config()
            try:
                made: bytes | None = self.sealing.rekey_verify_add(key, given_nonce)
            except SharesMismatch:
                made = b""  # shares that cannot belong together are not the new keys either
            rekey = self.sealing.rekey
            assert rekey is not None
            if made is None:
                return rekey.verification_status()
            if not hmac.compare_digest(made, rekey.pending_root_key):
                raise InvalidRequest("the keys given are not the new unseal keys of this rekey; the verification "
                                     "starts over")
            await self._install_root_key(rekey.pending_root_key, rekey.config)
            return {"nonce": rekey.verification_nonce, "complete": True}

    async def _install_root_key(self, root_key: bytes, config: SealConfig) -> None:
        if self.autoseal.recovery:  # a rekey of the recovery keys: the root key stays
            await self.autoseal.install_recovery_key(root_key, config)
            self.sealing.rekey = None
            return
        await self.barrier.rekey(root_key, [self.sealing.config_put(config)])
        self.sealing.config = self.sealing.barrier_config = config
        self.sealing.rekey = None
        log.info("rekeyed: %d key shares, threshold %d", config.secret_shares, config.secret_threshold)

    def generate_root_status(self) -> dict[str, object]:
        config = self._unsealed_config()
        generation = self.sealing.root_generation
        return generation.status(config.secret_threshold) if generation else idle_root_generation(
            config.secret_threshold)

    def generate_root_init(self, otp: str = "") -> dict[str, object]:
        """Start a root generation; without ``otp`` the server makes one, answered this once."""
        config = self._unsealed_config()
        made = "" if otp else new_otp()
        generation = self.sealing.start_root_generation(otp or made)
        return generation.status(config.secret_threshold, otp=made)

    def generate_root_cancel(self) -> None:
        self._unsealed_config()
        self.sealing.root_generation = None

    async def generate_root_update(self, key: bytes, given_nonce: str | None) -> dict[str, object]:
        async with self._unseal_lock:
            config = self._unsealed_config()
            root_key = self.sealing.root_generation_add(key, given_nonce)
            generation = self.sealing.root_generation
            assert generation is not None
            if root_key is None:
                return generation.status(config.secret_threshold)
            self._check_root_key(root_key, "root generation")
            token, _ = await self.tokens.create(policies=["root"], parent=None, display_name="root",
                                                path="auth/token/root")
            self.sealing.root_generation = None
            log.info("a root token was generated from the unseal keys")
            return generation.status(config.secret_threshold, encoded=encode_token(token, generation.otp))

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

    def leader_status(self) -> dict[str, object]:
        """sys/leader's answer."""
        if self.ha is None:
            return {"ha_enabled": self.physical.ha_enabled, "is_self": False,
                    "active_time": "0001-01-01T00:00:00Z", "leader_address": "", "leader_cluster_address": "",
                    "performance_standby": False, "performance_standby_last_remote_wal": 0}
        return self.ha.leader_status()

    def status(self) -> dict[str, object]:
        config = self.sealing.config
        return {
            # The configured seal, also while a migration to it is pending (as Vault/OpenBao); t and n are
            # those of the keys to give (the old seal's during a migration).
            "type": self.autoseal.configured,
            "initialized": config is not None,
            "sealed": self.sealed,
            "t": config.secret_threshold if config else 0,
            "n": config.secret_shares if config else 0,
            "progress": self.sealing.progress,
            "nonce": "",
            "version": __version__,
            "build_date": "",
            "migration": self.autoseal.migration,
            "recovery_seal": self.autoseal.configured != "shamir",
            **({"recovery_seal_type": "shamir"} if self.autoseal.configured != "shamir" else {}),
            "storage_type": self.storage_type,
        }

