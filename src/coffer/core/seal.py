"""The seal: its configuration (shares and threshold), unseal key shares and their progress.

The root key is split with Shamir's scheme (``core.shamir``) when there is
more than one share; a single share is the root key itself. The seal
configuration lives in plain storage at ``core/seal-config`` (it must be
readable while sealed), written in one batch with the keyring at init.

Two key ceremonies also collect shares of the current root key, each in
memory, under its own nonce (as in Vault, a restart forgets them):
``Rekey`` (``sys/rekey/*``: a new root key split into new shares, with a
new configuration; optionally verified with the new shares before it takes
effect) and ``RootGeneration`` (``sys/generate-root/*``: a new root token,
handed out XORed with a one-time password). Core does what they decide
(``core.Core.rekey_update``...): this module never touches storage for them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string
import uuid
from dataclasses import asdict, dataclass, field

import orjson

from coffer.core import shamir
from coffer.errors import CofferError, InvalidRequest
from coffer.storage.base import Put, Storage

SEAL_CONFIG_PATH = "core/seal-config"
#: Shares and threshold of the recovery keys, on a seal that has them (awskms; see ``core.autoseal``).
RECOVERY_CONFIG_PATH = "core/recovery-config"
ROOT_KEY_SIZE = 32


class SealConfigDamaged(CofferError):
    """The stored seal configuration cannot be read: an operator must restore it."""

    status = 500


@dataclass(slots=True)
class SealConfig:
    secret_shares: int
    secret_threshold: int
    #: "shamir" or "awskms" for the stored seal configuration ("recovery" for the recovery keys' one); a
    #: store written before auto-unseal has no type: Shamir.
    type: str = "shamir"

    @property
    def share_size(self) -> int:
        """Bytes in one unseal key: the root key, plus Shamir's x coordinate when split."""
        return ROOT_KEY_SIZE if self.secret_threshold == 1 else ROOT_KEY_SIZE + 1


def decode_key(text: str) -> bytes:
    """An unseal key in hex or base64."""
    text = text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("'key' must be a valid hex or base64 string") from None


def check_shape(shares: int, threshold: int) -> None:
    if not 1 <= shares <= 255:
        raise InvalidRequest("secret_shares must be between 1 and 255")
    if not 1 <= threshold <= shares:
        raise InvalidRequest("secret_threshold must be between 1 and secret_shares")
    if shares > 1 and threshold == 1:
        raise InvalidRequest("secret_threshold must be greater than 1 when secret_shares is greater than 1")


def split(root_key: bytes, shares: int, threshold: int) -> list[bytes]:
    return [root_key] if shares == 1 else shamir.split(root_key, shares, threshold)


class SharesMismatch(InvalidRequest):
    """Shares that cannot come from one split (e.g. two with the same x coordinate)."""


def combine(shares: list[bytes]) -> bytes:
    try:
        return shares[0] if len(shares) == 1 else shamir.combine(shares)
    except ValueError as exc:
        raise SharesMismatch(f"the key shares do not combine: {exc}") from None


def nonce() -> str:
    return str(uuid.uuid4())


def _collect(shares: list[bytes], key: bytes, threshold: int, what: str) -> bytes | None:
    """Add ``key`` to ``shares``; the combined secret once ``threshold`` are in (the shares are then cleared)."""
    if key in shares:
        raise InvalidRequest(f"given key has already been provided during this {what}")
    shares.append(key)
    if len(shares) < threshold:
        return None
    given = list(shares)
    shares.clear()
    return combine(given)


@dataclass(slots=True)
class Rekey:
    """A rekey in progress: the new configuration, the current shares given so far, and (once they combined,
    when verification is required) the new root key waiting for the new shares to prove they work."""

    config: SealConfig
    require_verification: bool
    nonce: str = field(default_factory=nonce)
    shares: list[bytes] = field(default_factory=list)
    pending_root_key: bytes = b""
    verification_nonce: str = ""
    verification_shares: list[bytes] = field(default_factory=list)

    def status(self, required: int) -> dict[str, object]:
        return {"nonce": self.nonce, "started": True, "t": self.config.secret_threshold,
                "n": self.config.secret_shares, "progress": len(self.shares), "required": required,
                "pgp_fingerprints": None, "backup": False, "verification_required": self.require_verification}

    def verification_status(self) -> dict[str, object]:
        return {"nonce": self.verification_nonce, "started": True, "t": self.config.secret_threshold,
                "n": self.config.secret_shares, "progress": len(self.verification_shares)}


#: The one-time password of a root generation: as long as a token (coffer's are ``hvs.`` + 24 characters).
OTP_LENGTH = 28
_OTP_ALPHABET = string.ascii_letters + string.digits


def new_otp() -> str:
    return "".join(secrets.choice(_OTP_ALPHABET) for _ in range(OTP_LENGTH))


def encode_token(token: str, otp: str) -> str:
    """The token XORed with the one-time password, base64 without padding (what the operator decodes)."""
    raw = bytes(a ^ b for a, b in zip(token.encode(), otp.encode(), strict=True))
    return base64.b64encode(raw).decode().rstrip("=")


def decode_token(encoded: str, otp: str) -> str:
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    if len(raw) != len(otp):
        raise ValueError(f"the encoded token has {len(raw)} bytes but the OTP {len(otp)} characters")
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()


@dataclass(slots=True)
class RootGeneration:
    otp: str
    nonce: str = field(default_factory=nonce)
    shares: list[bytes] = field(default_factory=list)

    def status(self, required: int, *, encoded: str = "", otp: str = "") -> dict[str, object]:
        return {"nonce": self.nonce, "started": True, "progress": required if encoded else len(self.shares),
                "required": required, "complete": bool(encoded), "encoded_token": encoded, "encoded_root_token": encoded,
                "pgp_fingerprint": "", "otp": otp, "otp_length": OTP_LENGTH}


def idle_root_generation(required: int) -> dict[str, object]:
    return {"nonce": "", "started": False, "progress": 0, "required": required, "complete": False,
            "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "", "otp_length": OTP_LENGTH}


def idle_rekey(required: int) -> dict[str, object]:
    return {"nonce": "", "started": False, "t": 0, "n": 0, "progress": 0, "required": required,
            "pgp_fingerprints": None, "backup": False, "verification_required": False}


class SealManager:
    """The seal configuration, the unseal shares given so far, and the key ceremonies in progress."""

    def __init__(self, physical: Storage) -> None:
        self.physical = physical
        #: The stored seal configuration (``core/seal-config``).
        self.barrier_config: SealConfig | None = None
        #: The configuration of the keys people hold: the unseal keys' (the same as ``barrier_config``) on
        #: Shamir, the recovery keys' on awskms. Every key ceremony counts shares against it.
        self.config: SealConfig | None = None
        self._shares: list[bytes] = []
        self.rekey: Rekey | None = None
        self.root_generation: RootGeneration | None = None

    async def load(self) -> SealConfig | None:
        raw = await self.physical.get(SEAL_CONFIG_PATH)
        if raw is None:
            self.config = self.barrier_config = None
            return None
        barrier_config = self._parse(SEAL_CONFIG_PATH, raw)
        config = barrier_config
        if barrier_config.type != "shamir":
            recovery = await self.physical.get(RECOVERY_CONFIG_PATH)
            if recovery is None:
                raise SealConfigDamaged(f"the storage is sealed with {barrier_config.type} but has no recovery "
                                        f"configuration at {RECOVERY_CONFIG_PATH}; restore it from a backup")
            config = self._parse(RECOVERY_CONFIG_PATH, recovery)
        self.barrier_config, self.config = barrier_config, config
        return self.config

    @staticmethod
    def _parse(path: str, raw: bytes) -> SealConfig:
        try:
            config = SealConfig(**orjson.loads(raw))
            check_shape(config.secret_shares, config.secret_threshold)
            if config.type not in ("shamir", "awskms", "recovery"):
                raise InvalidRequest(f"unknown seal type {config.type!r}")
        except (orjson.JSONDecodeError, TypeError, InvalidRequest) as exc:
            raise SealConfigDamaged(f"the seal configuration at {path} is damaged ({exc}); restore "
                                    "the storage from a backup") from None
        return config

    def config_put(self, config: SealConfig) -> Put:
        return Put(SEAL_CONFIG_PATH, orjson.dumps(asdict(config)))

    @property
    def progress(self) -> int:
        return len(self._shares)

    def reset(self) -> None:
        self._shares = []

    def check(self, key: bytes) -> SealConfig:
        """Refuse a key of the wrong size for this seal (before it counts as a share)."""
        config = self.config
        if config is None:
            raise InvalidRequest("Vault is not initialized")
        if len(key) != config.share_size:
            raise InvalidRequest(f"'key' must be one unseal key of {config.share_size} bytes (hex or base64); "
                                 f"this one has {len(key)} bytes")
        return config

    def add(self, key: bytes) -> bytes | None:
        """Count one share; answers the root key once the threshold is reached (and starts over)."""
        config = self.check(key)
        if key not in self._shares:
            self._shares.append(key)
        if len(self._shares) < config.secret_threshold:
            return None
        shares, self._shares = self._shares, []
        try:
            return shares[0] if len(shares) == 1 else shamir.combine(shares)
        except ValueError as exc:
            raise InvalidRequest(f"Error unsealing: {exc}") from None

    # -- rekey -------------------------------------------------------------------

    @property
    def required(self) -> int:
        return self.config.secret_threshold if self.config else 0

    def start_rekey(self, shares: int, threshold: int, require_verification: bool) -> Rekey:
        if self.rekey is not None:
            raise InvalidRequest("rekey already in progress")
        try:
            check_shape(shares, threshold)
        except InvalidRequest as exc:
            raise InvalidRequest(f"invalid rekey seal configuration: {exc}") from None
        self.rekey = Rekey(SealConfig(shares, threshold), require_verification)
        return self.rekey

    def _running_rekey(self, given_nonce: str | None) -> Rekey:
        rekey = self.rekey
        if rekey is None:
            raise InvalidRequest("no rekey in progress")
        if given_nonce != rekey.nonce:
            raise InvalidRequest(f'incorrect nonce supplied; nonce for this rekey operation is "{rekey.nonce}"')
        return rekey

    def rekey_add(self, key: bytes, given_nonce: str | None) -> bytes | None:
        """Count one current share; the current root key once the current threshold is reached."""
        rekey = self._running_rekey(given_nonce)
        if rekey.verification_nonce:
            raise InvalidRequest("the new keys were made and wait for verification (sys/rekey/verify); cancel "
                                 "the rekey (DELETE sys/rekey/init) to start again")
        config = self.check(key)
        return _collect(rekey.shares, key, config.secret_threshold, "rekey operation")

    def rekey_verify_add(self, key: bytes, given_nonce: str | None) -> bytes | None:
        """Count one new share; the root key they make once the new threshold is reached."""
        rekey = self.rekey
        if rekey is None or not rekey.verification_nonce:
            raise InvalidRequest("no rekey configuration found")
        if given_nonce != rekey.verification_nonce:
            raise InvalidRequest("incorrect nonce supplied; nonce for this verify operation is "
                                 f'"{rekey.verification_nonce}"')
        if len(key) != rekey.config.share_size:
            raise InvalidRequest(f"'key' must be one of the new unseal keys ({rekey.config.share_size} bytes); "
                                 f"this one has {len(key)} bytes")
        return _collect(rekey.verification_shares, key, rekey.config.secret_threshold, "verify operation")

    # -- root generation -----------------------------------------------------------

    def start_root_generation(self, otp: str) -> RootGeneration:
        if self.root_generation is not None:
            raise InvalidRequest("root generation already in progress")
        if len(otp) != OTP_LENGTH:
            raise InvalidRequest("OTP string has incorrect length")
        self.root_generation = RootGeneration(otp)
        return self.root_generation

    def root_generation_add(self, key: bytes, given_nonce: str | None) -> bytes | None:
        generation = self.root_generation
        if generation is None:
            raise InvalidRequest("no root generation in progress")
        if given_nonce != generation.nonce:
            raise InvalidRequest("incorrect nonce supplied; nonce for this root generation operation is "
                                 f'"{generation.nonce}"')
        config = self.check(key)
        return _collect(generation.shares, key, config.secret_threshold, "root generation operation")
