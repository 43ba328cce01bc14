"""Auto-unseal with AWS KMS, recovery keys, and seal migration between Shamir and AWS KMS.

With ``seal "awskms"`` the root key is stored in (plain) storage encrypted by
KMS at ``core/seal-root-key``, so the server unseals itself at start. People
hold **recovery keys** instead of unseal keys: a Shamir split of a recovery
key that is stored at ``core/recovery-key`` encrypted with the root key. They
open nothing by themselves; they authorize what unseal keys authorize on a
Shamir server (``sys/generate-root``, and ``sys/unseal`` of a node sealed by
hand, which still needs KMS for the root key). The stored seal
configuration (``core/seal-config``) then has ``type: awskms`` and 1/1
shares (as Vault's); the recovery keys' shares and threshold are at
``core/recovery-config``.

Seal migration, as in Vault:

* shamir -> awskms: the config gains ``seal "awskms"`` (the old
  ``seal "shamir" { disabled = "true" }`` may stay beside it); the unseal keys
  are given with ``migrate=true``. A new root key is made and stored under
  KMS; the old root key becomes the recovery key, so the old unseal keys are
  the recovery keys from then on.
* awskms -> shamir: the awskms stanza gets ``disabled = "true"`` (KMS must
  still answer); the recovery keys are given with ``migrate=true``. The
  recovery key becomes the root key, so the recovery keys are the unseal keys
  from then on, and the KMS-encrypted copy is deleted.

Every unseal ends in ``Core._unseal_with``. Nothing here logs key material;
KMS errors are reported by their code and message only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from coffer.core.seal import RECOVERY_CONFIG_PATH, SEAL_CONFIG_PATH, SealConfig, check_shape, split
from coffer.errors import CofferError, InvalidRequest, UpstreamError
from coffer.storage.base import Delete, Op, Put

if TYPE_CHECKING:
    from coffer.core.core import Core

log = logging.getLogger("coffer.seal")

ROOT_KEY_PATH = "core/seal-root-key"
RECOVERY_KEY_PATH = "core/recovery-key"
#: Bound to every KMS call, so a ciphertext made for something else does not decrypt as a root key.
ENCRYPTION_CONTEXT = {"coffer": "root-key"}
#: Auto-unseal retries at start while KMS fails: the first wait, and the longest.
FIRST_RETRY = 1.0
MAX_RETRY = 30.0


class KmsFailed(UpstreamError):
    """KMS did not do what was asked (unreachable, refused, no credentials...): the message says why."""


@dataclass(slots=True)
class AwsKms:
    """The ``seal "awskms"`` stanza: where the KMS key is and how to reach it."""

    kms_key_id: str
    region: str = "us-east-1"
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""

    @classmethod
    def from_options(cls, options: dict[str, str]) -> AwsKms:
        return cls(kms_key_id=options["kms_key_id"], region=options.get("region") or "us-east-1",
                   endpoint=options.get("endpoint", ""), access_key=options.get("access_key", ""),
                   secret_key=options.get("secret_key", ""), session_token=options.get("session_token", ""))

    def where(self) -> str:
        return f"key {self.kms_key_id} in {self.region}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id=self.access_key or None,
                                        aws_secret_access_key=self.secret_key or None,
                                        aws_session_token=self.session_token or None, region_name=self.region)
        return session.client("kms", endpoint_url=self.endpoint or None, config=Config(
            connect_timeout=5, read_timeout=15, retries={"total_max_attempts": 2, "mode": "standard"}))

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self._client(), operation)(EncryptionContext=ENCRYPTION_CONTEXT, **params)
        except Exception as exc:  # every SDK failure becomes one secret-free reason
            raise KmsFailed(f"AWS KMS {operation} with {self.where()} failed: {describe(exc)}") from None

    async def encrypt(self, plaintext: bytes) -> bytes:
        answer = await asyncio.to_thread(self._call, "encrypt", KeyId=self.kms_key_id, Plaintext=plaintext)
        return bytes(answer["CiphertextBlob"])

    async def decrypt(self, ciphertext: bytes) -> bytes:
        answer = await asyncio.to_thread(self._call, "decrypt", KeyId=self.kms_key_id, CiphertextBlob=ciphertext)
        return bytes(answer["Plaintext"])


def describe(exc: BaseException) -> str:
    """Why a KMS call failed, without anything secret (the SDK's messages name no credentials)."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ("no AWS credentials found: set access_key and secret_key in the seal stanza, or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, NoRegionError):
        return "no AWS region: set region in the seal stanza or AWS_REGION"
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, BotoConnectionError | HTTPClientError):  # refused, closed, timed out
        return f"KMS is unreachable ({exc})"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        message = str(error.get("Message", ""))
        if "<Code>" in message:  # an XML error document inside the message: keep its code
            code = message.split("<Code>", 1)[1].split("</Code>", 1)[0]
            message = ""
        hints = {
            "NotFoundException": "the KMS key does not exist (check kms_key_id)",
            "AccessDeniedException": "KMS refused: the credentials may not allow this, or kms_key_id is not "
                                     "the key the root key was encrypted with",
            "IncorrectKeyException": "kms_key_id is not the key the root key was encrypted with",
            "DisabledException": "the KMS key is disabled",
            "KMSInvalidStateException": "the KMS key is not usable (disabled or pending deletion)",
            "InvalidCiphertextException": "the stored root key does not decrypt with this key",
            "InvalidClientTokenId": "the AWS access key is not valid",
            "UnrecognizedClientException": "the AWS access key is not valid",
            "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
        }
        text = code + (f": {message}" if message else "")
        return f"{text} ({hints[code]})" if code in hints else text
    return f"{type(exc).__name__}: {exc}"


def _seal_recovery_key(root_key: bytes, recovery_key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(root_key).encrypt(nonce, recovery_key, RECOVERY_KEY_PATH.encode())


def _open_recovery_key(root_key: bytes, blob: bytes) -> bytes:
    try:
        return AESGCM(root_key).decrypt(blob[:12], blob[12:], RECOVERY_KEY_PATH.encode())
    except (InvalidTag, ValueError):
        raise CofferError(f"the recovery key at {RECOVERY_KEY_PATH} does not decrypt with the root key: the "
                          "storage is damaged; restore it from a backup") from None


def _config_put(path: str, config: SealConfig) -> Put:
    return Put(path, orjson.dumps(asdict(config)))


class AutoSeal:
    """The configured seal (in force, and the old one of a pending migration) and what it does for core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        #: The seal type in force in the configuration.
        self.configured = "shamir"
        #: The awskms stanza (in force, or the disabled one being migrated away from).
        self.kms: AwsKms | None = None
        #: While unsealed on a recovery seal: the recovery key (what recovery key shares must combine to), and
        #: the root key (that encrypts it in storage).
        self.recovery_key: bytes | None = None
        self._held_root_key: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    def configure(self, configured: str, kms: AwsKms | None) -> None:
        self.configured, self.kms = configured, kms

    # -- what the storage says ---------------------------------------------------

    @property
    def stored(self) -> str:
        """The seal type of the storage (the configured one before init)."""
        config = self.core.sealing.barrier_config
        return config.type if config is not None else self.configured

    @property
    def recovery(self) -> bool:
        return self.stored != "shamir"

    @property
    def migration(self) -> bool:
        """A migration is pending: the storage is sealed one way and the configuration says another."""
        return self.core.sealing.barrier_config is not None and self.stored != self.configured

    def _kms(self) -> AwsKms:
        if self.kms is None:
            raise InvalidRequest(f'the storage is sealed with {self.stored} but the configuration has no seal '
                                 f'"{self.stored}" stanza; add it back (with disabled = "true" to migrate away '
                                 "from it)")
        return self.kms

    # -- init ------------------------------------------------------------------------

    async def init_ops(self, root_key: bytes, shares: int, threshold: int) -> tuple[list[Op], list[bytes]]:
        """For an init under awskms: the writes that store the seal, and the recovery key shares. KMS is asked
        first, so a KMS failure leaves the storage untouched."""
        try:
            check_shape(shares, threshold)
        except InvalidRequest as exc:
            raise InvalidRequest(str(exc).replace("secret_", "recovery_")) from None
        ciphertext = await self._kms().encrypt(root_key)
        recovery_key = AESGCM.generate_key(256)
        barrier_config, recovery_config = SealConfig(1, 1, "awskms"), SealConfig(shares, threshold, "recovery")
        ops: list[Op] = [
            _config_put(SEAL_CONFIG_PATH, barrier_config),
            _config_put(RECOVERY_CONFIG_PATH, recovery_config),
            Put(ROOT_KEY_PATH, ciphertext),
            Put(RECOVERY_KEY_PATH, _seal_recovery_key(root_key, recovery_key)),
        ]
        return ops, split(recovery_key, shares, threshold)

    # -- unseal ------------------------------------------------------------------------

    async def _root_key(self) -> bytes:
        ciphertext = await self.core.physical.get(ROOT_KEY_PATH)
        if ciphertext is None:
            raise CofferError(f"the storage says it is sealed with awskms but holds no {ROOT_KEY_PATH}: restore "
                              "it from a backup")
        return await self._kms().decrypt(ciphertext)

    async def _recovery_key(self, root_key: bytes) -> bytes:
        blob = await self.core.physical.get(RECOVERY_KEY_PATH)
        if blob is None:
            raise CofferError(f"the storage holds no {RECOVERY_KEY_PATH}: restore it from a backup")
        return _open_recovery_key(root_key, blob)

    async def open_with(self, root_key: bytes) -> None:
        """Unseal with the root key from KMS (the caller holds the unseal lock)."""
        recovery_key = await self._recovery_key(root_key)
        await self.core._unseal_with(root_key)
        self.recovery_key, self._held_root_key = recovery_key, root_key

    async def auto_unseal(self) -> bool:
        """Unseal with KMS if this is what the configuration and storage say; whether there was anything to do."""
        core = self.core
        async with core._unseal_lock:
            if not core.barrier.sealed or self.configured != "awskms":
                return False
            if await core.sealing.load() is None or self.stored != "awskms":
                return False
            await self.open_with(await self._root_key())
            log.info("unsealed with AWS KMS (%s)", self._kms().where())
            return True

    async def unseal_with_recovery_key(self, recovery_key: bytes) -> None:
        """``sys/unseal`` on a recovery seal (a node sealed by hand): the recovery keys authorize, KMS opens."""
        root_key = await self._root_key()
        if not hmac.compare_digest(await self._recovery_key(root_key), recovery_key):
            raise InvalidRequest("the recovery keys given are wrong (they do not make the recovery key)")
        await self.open_with(root_key)

    def check_recovery_key(self, key: bytes) -> bool:
        return self.recovery_key is not None and hmac.compare_digest(key, self.recovery_key)

    def forget(self) -> None:
        self.recovery_key = self._held_root_key = None

    async def install_recovery_key(self, recovery_key: bytes, config: SealConfig) -> None:
        """The end of a rekey of the recovery keys: the new recovery key and its configuration, in one batch."""
        if self._held_root_key is None:  # pragma: no cover - rekeys run on an unsealed server only
            raise InvalidRequest("the server is sealed")
        recovery_config = SealConfig(config.secret_shares, config.secret_threshold, "recovery")
        await self.core.physical.batch([_config_put(RECOVERY_CONFIG_PATH, recovery_config),
                                        Put(RECOVERY_KEY_PATH, _seal_recovery_key(self._held_root_key, recovery_key))])
        self.core.sealing.config, self.recovery_key = recovery_config, recovery_key
        log.info("recovery keys rekeyed: %d key shares, threshold %d", config.secret_shares, config.secret_threshold)

    # -- migration -----------------------------------------------------------------------

    async def migrate(self, combined: bytes) -> None:
        """Finish a pending migration with the keys of the old seal (the caller holds the unseal lock)."""
        if self.stored == "shamir" and self.configured == "awskms":
            await self._to_awskms(combined)
        elif self.stored == "awskms" and self.configured == "shamir":
            await self._to_shamir(combined)
        else:  # pragma: no cover - the configuration knows two seal types
            raise InvalidRequest(f"no migration from {self.stored} to {self.configured}")

    async def _to_awskms(self, old_root_key: bytes) -> None:
        core, sealing = self.core, self.core.sealing
        old = sealing.config
        assert old is not None
        new_root_key = AESGCM.generate_key(256)
        ciphertext = await self._kms().encrypt(new_root_key)  # KMS must work before anything changes
        barrier_config = SealConfig(1, 1, "awskms")
        recovery_config = SealConfig(old.secret_shares, old.secret_threshold, "recovery")

        async def rewrite() -> None:
            await core.barrier.rekey(new_root_key, [
                _config_put(SEAL_CONFIG_PATH, barrier_config),
                _config_put(RECOVERY_CONFIG_PATH, recovery_config),
                Put(ROOT_KEY_PATH, ciphertext),
                Put(RECOVERY_KEY_PATH, _seal_recovery_key(new_root_key, old_root_key)),
            ])
            sealing.barrier_config, sealing.config = barrier_config, recovery_config
            self.recovery_key, self._held_root_key = old_root_key, new_root_key

        # Wrong unseal keys fail at the unseal: sealed as before, nothing written.
        await core._unseal_rewriting_seal(old_root_key, rewrite)
        log.info("seal migration shamir -> awskms done (%s): the unseal keys are now the recovery keys",
                 self._kms().where())

    async def _to_shamir(self, recovery_key: bytes) -> None:
        core, sealing = self.core, self.core.sealing
        recovery = sealing.config
        assert recovery is not None
        root_key = await self._root_key()
        if not hmac.compare_digest(await self._recovery_key(root_key), recovery_key):
            raise InvalidRequest("the recovery keys given are wrong (they do not make the recovery key), so the "
                                 "seal migration made no progress")
        config = SealConfig(recovery.secret_shares, recovery.secret_threshold, "shamir")

        async def rewrite() -> None:
            # The recovery key becomes the root key: the recovery key shares are the unseal keys from now on.
            await core.barrier.rekey(recovery_key, [
                _config_put(SEAL_CONFIG_PATH, config),
                Delete(RECOVERY_CONFIG_PATH), Delete(ROOT_KEY_PATH), Delete(RECOVERY_KEY_PATH),
            ])
            sealing.barrier_config = sealing.config = config
            self.recovery_key = self._held_root_key = None

        await core._unseal_rewriting_seal(root_key, rewrite)
        log.info("seal migration awskms -> shamir done: the recovery keys are now the unseal keys; the "
                 "awskms stanza may be removed from the configuration")

    # -- at start ------------------------------------------------------------------------

    def start(self) -> None:
        """Unseal in the background at start, retrying with backoff while KMS fails."""
        if self.configured != "shamir" or self.kms is not None or self.migration:
            self._task = asyncio.get_running_loop().create_task(self._keep_trying(), name="auto-unseal")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _keep_trying(self) -> None:
        try:
            await self.core.sealing.load()
        except CofferError as exc:
            log.error("%s", exc)
            return
        if self.migration and self.kms is None:
            log.error('the storage is sealed with %s but the configuration has no seal "%s" stanza: the server '
                      'cannot unseal; add the stanza back (with disabled = "true" to migrate to shamir)',
                      self.stored, self.stored)
            return
        if self.migration:
            log.warning("a seal migration from %s to %s is pending: the server stays sealed until the %s keys are "
                        "given with `coffer operator unseal -migrate`", self.stored, self.configured,
                        "recovery" if self.recovery else "unseal")
            return
        delay, last = FIRST_RETRY, ""
        while True:
            try:
                await self.auto_unseal()
                return
            except CofferError as exc:
                reason = " ".join(exc.messages)
            except Exception as exc:  # never let the retry loop die silently
                reason = f"{type(exc).__name__}: {exc}"
                log.debug("auto-unseal failed", exc_info=True)
            if reason != last:
                log.error("auto-unseal failed, so the server stays sealed (retrying, at most every %gs): %s",
                          MAX_RETRY, reason)
                last = reason
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY)
