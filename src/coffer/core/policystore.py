"""ACL policies kept in storage: each parsed once, ACLs compiled once per policy set.

Changing a policy re-parses only that policy and drops only the ACLs that
contain it. Large policies are parsed and compiled in a worker thread, so a
megabyte of HCL never stalls the event loop (and every other request) for
the seconds it takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import orjson

from coffer.core.acl import ACL
from coffer.core.policy import (
    DEFAULT_POLICY_NAME,
    DEFAULT_POLICY_TEXT,
    ROOT_POLICY,
    ROOT_POLICY_NAME,
    Policy,
    PolicyError,
    parse_policy,
)
from coffer.errors import InvalidRequest
from coffer.storage.base import Storage

PREFIX = "sys/policy/"
#: Policy text (characters) and rules beyond which parsing and compiling leave the event loop.
OFF_LOOP_TEXT = 64 * 1024
OFF_LOOP_RULES = 1000
ACL_CACHE_SIZE = 1024

T = TypeVar("T")


async def _maybe_in_thread(big: bool, fn: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(fn, *args) if big else fn(*args)


class PolicyStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._policies: dict[str, Policy | None] = {}
        self._acls: dict[tuple[str, ...], ACL] = {}

    def clear_cache(self) -> None:
        self._policies = {}
        self._acls = {}

    def _changed(self, name: str) -> None:
        self._policies.pop(name, None)
        self._acls = {key: acl for key, acl in self._acls.items() if name not in key}

    async def ensure_default(self) -> None:
        if await self.storage.get(PREFIX + DEFAULT_POLICY_NAME) is None:
            await self.put(DEFAULT_POLICY_NAME, DEFAULT_POLICY_TEXT)

    async def get(self, name: str) -> Policy | None:
        name = name.lower()
        if name in self._policies:
            return self._policies[name]
        text = await self.text(name)
        policy = None if text is None else await self._parse(name, text)
        self._policies[name] = policy
        return policy

    async def text(self, name: str) -> str | None:
        raw = await self.storage.get(PREFIX + name.lower())
        return None if raw is None else orjson.loads(raw)["policy"]

    @staticmethod
    async def _parse(name: str, text: str) -> Policy:
        return await _maybe_in_thread(len(text) > OFF_LOOP_TEXT, parse_policy, name, text)

    async def put(self, name: str, text: str) -> None:
        name = name.lower()
        if name == ROOT_POLICY_NAME:
            raise InvalidRequest('cannot update the "root" policy')
        try:
            policy = await self._parse(name, text)
        except PolicyError as exc:
            message = str(exc)
            if not message.startswith("failed to parse policy"):
                message = f"failed to parse policy: {message}"
            raise InvalidRequest(message) from None
        await self.storage.put(PREFIX + name, orjson.dumps({"name": name, "policy": text}))
        self._changed(name)
        self._policies[name] = policy

    async def delete(self, name: str) -> None:
        name = name.lower()
        if name in (ROOT_POLICY_NAME, DEFAULT_POLICY_NAME):
            raise InvalidRequest(f'cannot delete the "{name}" policy')
        await self.storage.delete(PREFIX + name)
        self._changed(name)

    async def names(self) -> list[str]:
        names = await self.storage.list(PREFIX)
        return sorted({*names, ROOT_POLICY_NAME})

    async def acl(self, names: list[str]) -> ACL:
        key = tuple(sorted(set(names)))
        acl = self._acls.get(key)
        if acl is None:
            policies = [p for n in key if n != ROOT_POLICY_NAME and (p := await self.get(n)) is not None]
            if ROOT_POLICY_NAME in key:
                policies.append(ROOT_POLICY)
            acl = await _maybe_in_thread(sum(len(p.rules) for p in policies) > OFF_LOOP_RULES, ACL, policies)
            if len(self._acls) >= ACL_CACHE_SIZE:
                self._acls.clear()
            self._acls[key] = acl
        return acl
