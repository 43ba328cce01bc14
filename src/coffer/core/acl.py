"""ACL evaluation: a token's policies, merged and compiled, answering requests (pure logic, no I/O).

Policies are parsed by :mod:`coffer.core.policy`. Matching follows Vault's rules:

* an exact (non-glob) pattern beats every glob;
* a trailing ``*`` is a prefix match, a ``+`` segment matches exactly one
  path segment (both may be combined, e.g. ``secret/+/*``);
* when several *different* glob patterns match, the most specific one wins
  (Vault's priority order, see :func:`_glob_priority`); capabilities of
  different patterns are never combined;
* when the *same* pattern appears in several policies (or several times in
  one), its capabilities and parameter constraints are merged, and ``deny``
  in the merged set wins over everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from coffer.core.policy import (
    CREATE,
    DELETE,
    DENY,
    LIST,
    PATCH,
    READ,
    ROOT_POLICY_NAME,
    SUDO,
    UPDATE,
    PathRule,
    Policy,
)

__all__ = [
    "ACL",
    "ACLResult",
    "ALL_CAPABILITIES",
    "OPERATIONS",
]

#: What a root token can do (everything but ``deny``).
ALL_CAPABILITIES = frozenset({CREATE, READ, UPDATE, DELETE, LIST, SUDO, PATCH})
#: Operations :meth:`ACL.allows` understands; each needs the same-named capability.
OPERATIONS = frozenset({READ, CREATE, UPDATE, DELETE, LIST, PATCH})
#: Operations whose request data is checked against parameter constraints.
_PARAMETER_CHECKED_OPERATIONS = frozenset({CREATE, UPDATE, PATCH})


@dataclass(frozen=True)
class ACLResult:
    allowed: bool
    is_root: bool = False
    #: Whether the matching rule grants ``sudo`` (always True for root).
    sudo: bool = False
    #: The capabilities of the matching rule (empty if nothing matched).
    capabilities: frozenset[str] = frozenset()
    #: The pattern that decided, if any (for diagnostics).
    pattern: str | None = None
    #: The wrapping TTL bounds of the matching rule (seconds; 0: none).
    min_wrapping_ttl: int = 0
    max_wrapping_ttl: int = 0


def _merge_parameter_maps(
    a: Mapping[str, tuple[Any, ...]], b: Mapping[str, tuple[Any, ...]]
) -> dict[str, tuple[Any, ...]]:
    # Vault's merge: keys are unioned; an empty list (any value) on either
    # side wins, otherwise the value lists are concatenated.
    out = dict(a)
    for key, values in b.items():
        if key in out:
            out[key] = () if not values or not out[key] else out[key] + values
        else:
            out[key] = values
    return out


def _merge_rules(a: PathRule, b: PathRule) -> PathRule:
    caps = a.capabilities | b.capabilities
    if DENY in caps:
        return PathRule(a.pattern, frozenset({DENY}))
    return PathRule(
        a.pattern,
        caps,
        _merge_parameter_maps(a.allowed_parameters, b.allowed_parameters),
        _merge_parameter_maps(a.denied_parameters, b.denied_parameters),
        tuple(dict.fromkeys(a.required_parameters + b.required_parameters)),
        # As in Vault: the lowest minimum and the highest maximum of the policies win.
        min((t for t in (a.min_wrapping_ttl, b.min_wrapping_ttl) if t), default=0),
        max(a.max_wrapping_ttl, b.max_wrapping_ttl),
    )


def _is_glob(pattern: str) -> bool:
    return pattern.endswith("*") or "+" in pattern.split("/")


def _glob_priority(pattern: str) -> tuple[int, bool, int, int, str]:
    """Sort key; a larger key means a higher priority (more specific).

    Vault's order, P1 being lower priority than P2 when, in turn:
    1. the first wildcard (``+``) or glob (``*``) occurs earlier in P1;
    2. P1 ends in ``*`` and P2 doesn't;
    3. P1 has more ``+`` segments;
    4. P1 is shorter;
    5. P1 is smaller lexicographically.
    """
    is_prefix = pattern.endswith("*")
    body = pattern[:-1] if is_prefix else pattern
    first = len(body) if is_prefix else len(pattern)
    pos = 0
    plus_count = 0
    for seg in body.split("/"):
        if seg == "+":
            plus_count += 1
            first = min(first, pos)
        pos += len(seg) + 1
    return (first, not pattern.endswith("*"), -plus_count, len(pattern), pattern)


class _Glob:
    __slots__ = ("rule", "prefix", "regex")

    def __init__(self, rule: PathRule) -> None:
        self.rule = rule
        pattern = rule.pattern
        is_prefix = pattern.endswith("*")
        body = pattern[:-1] if is_prefix else pattern
        segments = body.split("/")
        if "+" not in segments:
            # Plain prefix glob: a startswith() is all that is needed.
            self.prefix: str | None = body
            self.regex: re.Pattern[str] | None = None
        else:
            self.prefix = None
            parts = ["[^/]*" if seg == "+" else re.escape(seg) for seg in segments]
            expr = "/".join(parts) + (".*" if is_prefix else "")
            self.regex = re.compile(expr, re.S)

    def matches(self, path: str) -> bool:
        if self.prefix is not None:
            return path.startswith(self.prefix)
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


def _scalar_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _value_matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    """Whether one scalar request value matches a policy value list.

    Values compare as strings. Like Vault, a policy value that starts and/or
    ends with ``*`` is a suffix/prefix glob (``"*"`` alone matches anything).
    """
    s = _scalar_str(value)
    for candidate in allowed:
        c = _scalar_str(candidate)
        if s == c:
            return True
        if isinstance(candidate, str) and "*" in c:
            if c == "*":
                return True
            starts, ends = c.startswith("*"), c.endswith("*")
            if starts and ends:
                if c[1:-1] in s:
                    return True
            elif ends:
                if s.startswith(c[:-1]):
                    return True
            elif starts:
                if s.endswith(c[1:]):
                    return True
    return False


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_parameters(rule: PathRule, data: Mapping[str, Any]) -> bool:
    if not rule.has_parameter_constraints:
        return True
    keys = {str(k).lower(): v for k, v in data.items()}
    for name in rule.required_parameters:
        if name not in keys:
            return False
    denied = rule.denied_parameters
    allowed = rule.allowed_parameters
    for key, value in keys.items():
        # Denied beats allowed: any element matching a denied list denies.
        for dkey in (key, "*"):
            if dkey in denied:
                dvalues = denied[dkey]
                if not dvalues or any(_value_matches(v, dvalues) for v in _values(value)):
                    return False
        if allowed:
            if key in allowed:
                avalues = allowed[key]
            elif "*" in allowed:
                avalues = allowed["*"]
            else:
                return False
            if avalues and not all(_value_matches(v, avalues) for v in _values(value)):
                return False
    return True


class ACL:
    """The union of a token's policies, answering "may this path do that?"."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies: list[Policy] = list(policies)
        self.root = any(p.name == ROOT_POLICY_NAME for p in self.policies)
        merged: dict[str, PathRule] = {}
        for policy in self.policies:
            for rule in policy.rules:
                existing = merged.get(rule.pattern)
                merged[rule.pattern] = rule if existing is None else _merge_rules(existing, rule)
        self._exact: dict[str, PathRule] = {}
        globs: list[PathRule] = []
        for pattern, rule in merged.items():
            if _is_glob(pattern):
                globs.append(rule)
            else:
                self._exact[pattern] = rule
        globs.sort(key=lambda r: _glob_priority(r.pattern), reverse=True)
        self._globs: list[_Glob] = [_Glob(r) for r in globs]
        self._lookup_cached = lru_cache(maxsize=1024)(self._lookup)

    @property
    def policy_names(self) -> list[str]:
        return [p.name for p in self.policies]

    def _lookup(self, path: str) -> PathRule | None:
        rule = self._exact.get(path)
        if rule is not None:
            return rule
        for glob in self._globs:
            if glob.matches(path):
                return glob.rule
        return None

    def rule_for(self, path: str, *, list_operation: bool = False) -> PathRule | None:
        """The rule that decides for ``path`` (``None`` if none matches).

        For list operations a path with a trailing slash also matches rules
        written without it (``secret/foo`` covers listing ``secret/foo/``),
        exact rules first, as Vault does.
        """
        path = path.lstrip("/")
        if not list_operation or not path.endswith("/"):
            return self._lookup_cached(path)
        trimmed = path[:-1]
        rule = self._exact.get(path) or self._exact.get(trimmed)
        if rule is not None:
            return rule
        return self._lookup_cached(path) or self._lookup_cached(trimmed)

    def capabilities(self, path: str) -> set[str]:
        """Capabilities that apply to ``path``; empty if nothing matches."""
        if self.root:
            return set(ALL_CAPABILITIES)
        rule = self.rule_for(path)
        return set(rule.capabilities) if rule is not None else set()

    def any_capability_under(self, prefix: str) -> bool:
        """Whether some rule grants anything (other than deny) on a path under ``prefix`` (a mount's route):
        what decides if a mount is shown to a token (``sys/internal/ui/mounts``), as in Vault."""
        if self.root:
            return True
        for pattern, rule in self._exact.items():
            if pattern.startswith(prefix) and rule.capabilities and DENY not in rule.capabilities:
                return True
        for glob in self._globs:
            caps = glob.rule.capabilities
            if not caps or DENY in caps:
                continue
            literal = glob.prefix if glob.prefix is not None else glob.rule.pattern.split("+", 1)[0]
            if literal.startswith(prefix) or prefix.startswith(literal):
                return True
        return False

    def allows(self, path: str, operation: str, data: Mapping[str, Any] | None = None) -> ACLResult:
        """Check one request. ``data`` (if given) is checked against the
        matching rule's parameter constraints for create/update/patch."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        if self.root:
            return ACLResult(allowed=True, is_root=True, sudo=True, capabilities=ALL_CAPABILITIES)
        rule = self.rule_for(path, list_operation=operation == LIST)
        if rule is None:
            return ACLResult(allowed=False)
        caps = rule.capabilities
        if DENY in caps:
            return ACLResult(allowed=False, capabilities=caps, pattern=rule.pattern)
        sudo = SUDO in caps
        if operation not in caps:
            return ACLResult(allowed=False, sudo=sudo, capabilities=caps, pattern=rule.pattern)
        if data is not None and operation in _PARAMETER_CHECKED_OPERATIONS:
            if not _check_parameters(rule, data):
                return ACLResult(allowed=False, sudo=sudo, capabilities=caps, pattern=rule.pattern)
        return ACLResult(allowed=True, sudo=sudo, capabilities=caps, pattern=rule.pattern,
                         min_wrapping_ttl=rule.min_wrapping_ttl, max_wrapping_ttl=rule.max_wrapping_ttl)
