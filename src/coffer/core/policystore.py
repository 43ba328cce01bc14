"""ACL policies kept in storage, with compiled ACLs cached per policy set."""

from __future__ import annotations

import orjson

from coffer.core.policy import (
    ACL,
    DEFAULT_POLICY_NAME,
    DEFAULT_POLICY_TEXT,
    ROOT_POLICY_NAME,
    Policy,
    PolicyError,
    parse_policy,
)
from coffer.errors import InvalidRequest
from coffer.storage.base import Storage

PREFIX = "sys/policy/"


class PolicyStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._acls: dict[tuple[str, ...], ACL] = {}

    def clear_cache(self) -> None:
        self._acls = {}

    async def ensure_default(self) -> None:
        if await self.storage.get(PREFIX + DEFAULT_POLICY_NAME) is None:
            await self.put(DEFAULT_POLICY_NAME, DEFAULT_POLICY_TEXT)

    async def get(self, name: str) -> Policy | None:
        raw = await self.storage.get(PREFIX + name.lower())
        if raw is None:
            return None
        doc = orjson.loads(raw)
        return parse_policy(doc["name"], doc["policy"])

    async def text(self, name: str) -> str | None:
        raw = await self.storage.get(PREFIX + name.lower())
        return None if raw is None else orjson.loads(raw)["policy"]

    async def put(self, name: str, text: str) -> None:
        name = name.lower()
        if name == ROOT_POLICY_NAME:
            raise InvalidRequest('cannot update the "root" policy')
        try:
            parse_policy(name, text)
        except PolicyError as exc:
            message = str(exc)
            if not message.startswith("failed to parse policy"):
                message = f"failed to parse policy: {message}"
            raise InvalidRequest(message) from None
        await self.storage.put(PREFIX + name, orjson.dumps({"name": name, "policy": text}))
        self.clear_cache()

    async def delete(self, name: str) -> None:
        name = name.lower()
        if name in (ROOT_POLICY_NAME, DEFAULT_POLICY_NAME):
            raise InvalidRequest(f'cannot delete the "{name}" policy')
        await self.storage.delete(PREFIX + name)
        self.clear_cache()

    async def names(self) -> list[str]:
        names = await self.storage.list(PREFIX)
        return sorted({*names, ROOT_POLICY_NAME})

    async def acl(self, names: list[str]) -> ACL:
        key = tuple(sorted(set(names)))
        acl = self._acls.get(key)
        if acl is None:
            policies = [p for n in key if n != ROOT_POLICY_NAME and (p := await self.get(n)) is not None]
            if ROOT_POLICY_NAME in key:
                from coffer.core.policy import ROOT_POLICY

                policies.append(ROOT_POLICY)
            acl = ACL(policies)
            if len(self._acls) > 1024:
                self._acls.clear()
            self._acls[key] = acl
        return acl
