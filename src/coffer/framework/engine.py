"""The one contract between core and every backend it mounts (secrets engines, auth methods, built-ins).

Core knows an engine only through this: it asks which operation a write is
(``resolve``, before the ACL check), reads its special paths, and sends it
every request (``handle``) — the HTTP ones, and renew, revoke, rollback and
the periodic tick that core originates. ``framework.backend.Backend`` is the
implementation engines are written with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from coffer.framework.request import MountInfo, Request, Response


@dataclass(frozen=True)
class SpecialPaths:
    """Paths (relative to the mount) that core treats specially.

    A pattern is an exact path, or a prefix when it ends with ``*``.
    """

    #: Served without a token (a login, sys/init...).
    unauthenticated: tuple[str, ...] = ()
    #: Need the ``sudo`` capability besides the operation's own.
    sudo: tuple[str, ...] = ()
    _unauth: tuple[frozenset[str], tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _sudo: tuple[frozenset[str], tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_unauth", _compile(self.unauthenticated))
        object.__setattr__(self, "_sudo", _compile(self.sudo))

    def is_unauthenticated(self, path: str) -> bool:
        return _matches(self._unauth, path)

    def needs_sudo(self, path: str) -> bool:
        return _matches(self._sudo, path)


def _compile(patterns: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    return (frozenset(p for p in patterns if not p.endswith("*")),
            tuple(p[:-1] for p in patterns if p.endswith("*")))


def _matches(compiled: tuple[frozenset[str], tuple[str, ...]], path: str) -> bool:
    exact, prefixes = compiled
    return path in exact or path.startswith(prefixes)


class Engine(Protocol):
    """What every mounted backend is, to core."""

    special_paths: SpecialPaths

    async def resolve(self, req: Request) -> str:
        """The operation a write to ``req.relative_path`` is: create or update (by its existence check).

        Raises NotFound for a path the engine does not serve.
        """
        ...

    async def handle(self, req: Request) -> Response | None:
        """Serve ``req`` for any operation, including renew, revoke, rollback and periodic."""
        ...


#: How a mount's engine is made: one call per mount (and again after each unseal).
Factory = Callable[[MountInfo], Engine]
