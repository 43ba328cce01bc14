"""The seal: its configuration (shares and threshold), unseal key shares and their progress.

The root key is split with Shamir's scheme (``core.shamir``) when there is
more than one share; a single share is the root key itself. The seal
configuration lives in plain storage at ``core/seal-config`` (it must be
readable while sealed), written in one batch with the keyring at init.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass

import orjson

from coffer.core import shamir
from coffer.errors import CofferError, InvalidRequest
from coffer.storage.base import Put, Storage

SEAL_CONFIG_PATH = "core/seal-config"
ROOT_KEY_SIZE = 32


class SealConfigDamaged(CofferError):
    """The stored seal configuration cannot be read: an operator must restore it."""

    status = 500


@dataclass(slots=True)
class SealConfig:
    secret_shares: int
    secret_threshold: int

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


class SealManager:
    """The seal configuration and the unseal shares given so far."""

    def __init__(self, physical: Storage) -> None:
        self.physical = physical
        self.config: SealConfig | None = None
        self._shares: list[bytes] = []

    async def load(self) -> SealConfig | None:
        raw = await self.physical.get(SEAL_CONFIG_PATH)
        if raw is None:
            self.config = None
            return None
        try:
            self.config = SealConfig(**orjson.loads(raw))
            check_shape(self.config.secret_shares, self.config.secret_threshold)
        except (orjson.JSONDecodeError, TypeError, InvalidRequest) as exc:
            raise SealConfigDamaged(f"the seal configuration at {SEAL_CONFIG_PATH} is damaged ({exc}); restore "
                                    "the storage from a backup") from None
        return self.config

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
