"""The ``storage`` block (and a migration's ``storage_source`` / ``storage_destination``) and the
``seal`` stanzas."""

from __future__ import annotations

import os
from typing import Any

from coffer import hcl
from coffer.config.checks import Checks, did_you_mean, lines_of, show
from coffer.config.model import SealStanza, StorageConfig

SUPPORTED_STORAGE_TYPES = ("inmem", "sqlite", "postgresql")
STORAGE_EXAMPLE = 'storage "sqlite" { path = "/var/lib/coffer/coffer.db" }'

#: The seal types coffer knows, and the keys of their stanzas (Vault's names).
SEAL_TYPES = ("shamir", "awskms")
_SEAL_KEYS = {"shamir": frozenset({"disabled"}),
              "awskms": frozenset({"disabled", "region", "kms_key_id", "endpoint", "access_key", "secret_key",
                                   "session_token"})}
#: Vault's awskms settings that coffer does not use (accepted quietly).
_SEAL_IGNORED = frozenset({"name", "priority", "shared_credentials_file", "profile", "web_identity_token_file",
                           "role_arn", "role_session_name"})
_SEAL_EXAMPLE = 'seal "awskms" { region = "us-east-1" kms_key_id = "alias/coffer" }'


class StorageSealChecks(Checks):
    """The checks of the storage block and the seal stanzas."""

    def storage(self, data: dict[str, Any]) -> StorageConfig:
        present = [k for k in ("storage", "backend") if k in data]
        if not present:
            raise self.error(f"a storage block is required, for example: {STORAGE_EXAMPLE}")
        if len(present) > 1:
            raise self.error(
                'both "storage" and "backend" are set; they mean the same thing, so keep only "storage"',
                self.line_of("backend"),
            )
        return self.storage_block(data, present[0])

    def ha_storage(self, data: dict[str, Any], storage: StorageConfig) -> StorageConfig:
        """Vault's ``ha_storage`` (older word ``ha_backend``): where the HA lock lives. coffer fences every write
        with the lock in the same transaction, so only the storage's own PostgreSQL database can hold it; such a
        block turns HA on (with its ``ha_table``), any other is refused."""
        present = [k for k in ("ha_storage", "ha_backend") if k in data]
        if not present:
            return storage
        key, line = present[0], self.line_of(present[0])
        instead = ('set ha_enabled = "true" in the storage "postgresql" block instead (coffer fences every write '
                   'with the lock in the same transaction, so the lock lives in the storage\'s own database)')
        if len(present) > 1:
            raise self.error('both "ha_storage" and "ha_backend" are set; they mean the same thing, so keep only '
                             '"ha_storage"', self.line_of("ha_backend"))
        found = self.blocks(key, data[key], STORAGE_EXAMPLE)
        if storage.type != "postgresql" or len(found) != 1 or found[0][0] != "postgresql":
            raise self.error(f'"{key}" must name the storage\'s own PostgreSQL database: {instead}', line)
        ha = self.storage_block(data, key)
        if ha.options.get("connection_url", "") != storage.options.get("connection_url", ""):
            raise self.error(f'"{key}" names another database than the storage block: {instead}', line)
        options = {**storage.options, "ha_enabled": "true"}
        if "ha_table" in ha.options:
            options["ha_table"] = ha.options["ha_table"]
        return StorageConfig(type=storage.type, options=options)

    def storage_block(self, data: dict[str, Any], key: str) -> StorageConfig:
        """The one ``key "<type>" { ... }`` block (``storage``, or a migration's ``storage_source``...)."""
        line = self.line_of(key)
        found = self.blocks(key, data[key], STORAGE_EXAMPLE)
        if len(found) > 1:
            where = lines_of(data, key) or " (" + ", ".join(f'"{t}"' for t, _ in found) + ")"
            raise self.error(f'only one "{key}" block is allowed, found {len(found)}{where}', line)
        storage_type, body = found[0]
        if storage_type not in SUPPORTED_STORAGE_TYPES:
            supported = ", ".join(f'"{t}"' for t in SUPPORTED_STORAGE_TYPES)
            raise self.error(f'storage type "{storage_type}" is not supported; use one of {supported}', line)
        options: dict[str, str] = {}
        for name, value in body.items():
            at = body.line_of(name) if isinstance(body, hcl.Object) else None
            value = self.single(f'storage "{storage_type}": option "{name}"', body, name, at or line)
            if isinstance(value, bool):
                options[str(name)] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                options[str(name)] = str(value)
            else:
                raise self.error(
                    f'storage "{storage_type}": option "{name}" must be a single value, not {show(value)}',
                    at or line,
                )
        if storage_type == "sqlite" and not options.get("path", "").strip():
            raise self.error(
                'storage "sqlite" needs a "path" to the database file, for example: '
                'storage "sqlite" { path = "/var/lib/coffer/coffer.db" }',
                line,
            )
        return StorageConfig(type=storage_type, options=options)

    def seals(self, data: dict[str, Any]) -> list[SealStanza]:
        if "seal" not in data:
            return []
        line = self.line_of("seal")
        stanzas = []
        found = self.blocks("seal", data["seal"], _SEAL_EXAMPLE)
        lines = data.lines.get("seal", []) if isinstance(data, hcl.Object) else []
        for index, (seal_type, body) in enumerate(found):
            where = lines[index] if len(lines) == len(found) else line
            if seal_type not in SEAL_TYPES:
                raise self.error(f'seal type "{seal_type}" is not supported; use "awskms" or "shamir"', where)
            options: dict[str, str] = {}
            for name, value in body.items():
                name = str(name)
                name_line = body.line_of(name) if isinstance(body, hcl.Object) else None
                value = self.single(f'seal "{seal_type}": option "{name}"', body, name, name_line or where)
                if name in _SEAL_IGNORED:
                    continue
                if name not in _SEAL_KEYS[seal_type]:
                    self.warn(f'seal "{seal_type}": unknown option "{name}" (ignored)'
                              f"{did_you_mean(name, _SEAL_KEYS[seal_type])}", name_line or where)
                    continue
                if isinstance(value, bool):
                    value = "true" if value else "false"
                options[name] = self.as_str(f'seal "{seal_type}": option "{name}"', value if not isinstance(
                    value, int | float) else str(value), name_line or where)
            disabled = self.as_bool(f'seal "{seal_type}": option "disabled"', options.pop("disabled", "false"),
                                    where)
            if seal_type == "awskms":
                self.awskms_options(options, where)
            stanzas.append(SealStanza(seal_type, options, disabled, where))
        if len(stanzas) > 2:
            raise self.error(f"at most two seal stanzas are allowed (the seal in force and, during a migration, "
                             f"the old one with disabled = \"true\"); found {len(stanzas)}", line)
        if len(stanzas) == 2:
            enabled = [s for s in stanzas if not s.disabled]
            if len(enabled) != 1:
                raise self.error('two seal stanzas are a seal migration: exactly one of them must have '
                                 'disabled = "true" (the seal being migrated away from)', stanzas[1].line)
            if stanzas[0].type == stanzas[1].type:
                raise self.error(f'two seal "{stanzas[0].type}" stanzas: a seal migration goes between two '
                                 "different seal types", stanzas[1].line)
        elif stanzas and stanzas[0].disabled and stanzas[0].type == "shamir":
            raise self.error('seal "shamir" with disabled = "true" needs the new seal stanza beside it '
                             '(for example seal "awskms" { ... })', stanzas[0].line)
        return stanzas

    def awskms_options(self, options: dict[str, str], line: int | None) -> None:
        """Fill in what Vault's awskms seal takes from the environment, and check the key id is there."""
        env = os.environ
        if not options.get("kms_key_id") and env.get("VAULT_AWSKMS_SEAL_KEY_ID"):
            options["kms_key_id"] = env["VAULT_AWSKMS_SEAL_KEY_ID"]
        if not options.get("region"):
            options["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        if not options.get("endpoint") and env.get("AWS_KMS_ENDPOINT"):
            options["endpoint"] = env["AWS_KMS_ENDPOINT"]
        if not options.get("kms_key_id"):
            raise self.error('seal "awskms" needs "kms_key_id" (a KMS key id, ARN or alias; or set '
                             "VAULT_AWSKMS_SEAL_KEY_ID)", line)
        if bool(options.get("access_key")) != bool(options.get("secret_key")):
            raise self.error('seal "awskms": set both "access_key" and "secret_key", or neither (then the AWS '
                             "SDK's usual credentials are used: AWS_ACCESS_KEY_ID, ...)", line)
