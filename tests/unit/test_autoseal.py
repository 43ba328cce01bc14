"""The seal configuration's stored shapes, and how KMS failures are put into words (no secrets)."""

from __future__ import annotations

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from coffer.core.autoseal import describe
from coffer.core.seal import RECOVERY_CONFIG_PATH, SEAL_CONFIG_PATH, SealConfigDamaged, SealManager
from coffer.storage.inmem import InmemStorage


async def test_a_seal_config_without_type_is_shamir() -> None:
    storage = InmemStorage()
    await storage.put(SEAL_CONFIG_PATH, orjson.dumps({"secret_shares": 3, "secret_threshold": 2}))  # store-v1
    sealing = SealManager(storage)
    config = await sealing.load()
    assert config is not None and config.type == "shamir" and sealing.barrier_config == config


async def test_an_awskms_seal_counts_recovery_key_shares() -> None:
    storage = InmemStorage()
    await storage.put(SEAL_CONFIG_PATH, orjson.dumps({"secret_shares": 1, "secret_threshold": 1, "type": "awskms"}))
    await storage.put(RECOVERY_CONFIG_PATH, orjson.dumps({"secret_shares": 5, "secret_threshold": 3,
                                                          "type": "recovery"}))
    sealing = SealManager(storage)
    config = await sealing.load()
    assert config is not None and (config.secret_shares, config.secret_threshold) == (5, 3)
    assert sealing.barrier_config is not None and sealing.barrier_config.type == "awskms"


@pytest.mark.parametrize("stored", [
    {"secret_shares": 1, "secret_threshold": 1, "type": "awskms"},  # no recovery configuration beside it
    {"secret_shares": 1, "secret_threshold": 1, "type": "hsm"},
])
async def test_a_damaged_seal_config_says_so(stored: dict) -> None:
    storage = InmemStorage()
    await storage.put(SEAL_CONFIG_PATH, orjson.dumps(stored))
    with pytest.raises(SealConfigDamaged):
        await SealManager(storage).load()


def test_kms_failures_are_described_without_secrets() -> None:
    assert "no AWS credentials found" in describe(NoCredentialsError())
    assert "unreachable" in describe(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    refused = ClientError({"Error": {"Code": "AccessDeniedException", "Message": ""}}, "Decrypt")
    assert describe(refused).startswith("AccessDeniedException (KMS refused")
    xml = ClientError({"Error": {"Code": "403", "Message": "<ErrorResponse><Error><Code>InvalidClientTokenId</Code>"
                                                         "</Error></ErrorResponse>"}}, "Decrypt")
    assert describe(xml) == "InvalidClientTokenId (the AWS access key is not valid)"
