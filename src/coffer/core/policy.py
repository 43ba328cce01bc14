"""ACL policies: parsing and evaluation (pure logic, no I/O).

Policies use Vault's syntax (HCL or JSON)::

    path "secret/data/*" {
      capabilities = ["create", "read", "update", "delete", "list"]
      allowed_parameters = { "*" = [] }
      denied_parameters  = { "admin" = [] }
      required_parameters = ["owner"]
    }

and the legacy ``policy = "read" | "write" | "sudo" | "deny"`` form.

Matching follows Vault's rules:

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
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from coffer import hcl
from coffer.durations import parse_duration

__all__ = [
    "ACL",
    "ACLResult",
    "ALL_CAPABILITIES",
    "DEFAULT_POLICY_NAME",
    "DEFAULT_POLICY_TEXT",
    "OPERATIONS",
    "PathRule",
    "Policy",
    "PolicyError",
    "ROOT_POLICY",
    "ROOT_POLICY_NAME",
    "parse_policy",
]

ROOT_POLICY_NAME = "root"
DEFAULT_POLICY_NAME = "default"

CREATE = "create"
READ = "read"
UPDATE = "update"
DELETE = "delete"
LIST = "list"
SUDO = "sudo"
DENY = "deny"
PATCH = "patch"

#: Every capability a policy may name.
VALID_CAPABILITIES = frozenset({CREATE, READ, UPDATE, DELETE, LIST, SUDO, DENY, PATCH})
#: What a root token can do (everything but ``deny``).
ALL_CAPABILITIES = frozenset({CREATE, READ, UPDATE, DELETE, LIST, SUDO, PATCH})
#: Operations :meth:`ACL.allows` understands; each needs the same-named capability.
OPERATIONS = frozenset({READ, CREATE, UPDATE, DELETE, LIST, PATCH})
#: Operations whose request data is checked against parameter constraints.
_PARAMETER_CHECKED_OPERATIONS = frozenset({CREATE, UPDATE, PATCH})

_LEGACY_POLICIES: dict[str, frozenset[str]] = {
    "read": frozenset({READ, LIST}),
    "write": frozenset({CREATE, READ, UPDATE, DELETE, LIST}),
    "sudo": frozenset({CREATE, READ, UPDATE, DELETE, LIST, SUDO}),
    "deny": frozenset({DENY}),
}

_TOP_LEVEL_KEYS = frozenset({"path", "name"})
_PATH_KEYS = frozenset(
    {"capabilities", "policy", "allowed_parameters", "denied_parameters", "required_parameters",
     "min_wrapping_ttl", "max_wrapping_ttl"}
)
# Vault accepts these, but coffer does not implement them. Silently ignoring
# them would grant more than the author intended, so they are rejected.
_UNSUPPORTED_PATH_KEYS = frozenset(
    {
        "mfa_methods",
        "control_group",
        "subscribe_event_types",
    }
)

DEFAULT_POLICY_TEXT = """\
# coffer's built-in "default" policy, attached to every non-root token
# unless the token was created without it.

# Allow tokens to look up their own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Allow tokens to renew themselves.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Allow tokens to revoke themselves.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Allow a token to look up the ACL resulting from all its policies
# (used by UIs).
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Allow a token to renew a lease given its lease_id in the request body;
# sys/renew is the old path, sys/leases/renew the current one.
path "sys/renew" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID
# ahead of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token,
# and to look up, unwrap and rewrap wrapping tokens.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Allow general purpose tools.
path "sys/tools/hash" {
  capabilities = ["update"]
}

path "sys/tools/hash/*" {
  capabilities = ["update"]
}
"""


class PolicyError(ValueError):
    """A policy document is malformed or invalid; ``line`` is the line it is about, when known."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRule:
    """One ``path`` block (or several merged ones for the same pattern).

    ``allowed_parameters`` / ``denied_parameters`` map a lower-cased parameter
    name (or ``"*"`` for any name) to a tuple of values; an empty tuple means
    any value. ``required_parameters`` are lower-cased names.
    """

    pattern: str
    capabilities: frozenset[str]
    allowed_parameters: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    denied_parameters: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    required_parameters: tuple[str, ...] = ()
    #: Seconds; 0: no bound. A minimum makes response wrapping mandatory on the path.
    min_wrapping_ttl: int = 0
    max_wrapping_ttl: int = 0

    @property
    def has_parameter_constraints(self) -> bool:
        return bool(self.allowed_parameters or self.denied_parameters or self.required_parameters)


@dataclass
class Policy:
    name: str
    raw: str
    rules: list[PathRule] = field(default_factory=list)


#: The built-in root policy. It has no rules; an :class:`ACL` containing it
#: allows everything.
ROOT_POLICY = Policy(name=ROOT_POLICY_NAME, raw="", rules=[])


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


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _load(text: str) -> Any:
    try:
        return hcl.loads(text)
    except hcl.HclError as exc:
        raise PolicyError(f"failed to parse policy: {exc}", line=exc.line) from None


@contextmanager
def _at_line(line: int | None) -> Iterator[None]:
    """Say on which line a :class:`PolicyError` raised inside happened (the
    innermost line known wins)."""
    try:
        yield
    except PolicyError as exc:
        if line is None or exc.line is not None:
            raise
        raise PolicyError(f"line {line}: {exc}", line=line) from None


def _lines(block: Any, key: str) -> str:
    """`` (lines 2, 5)`` for a key written more than once, when the lines are known."""
    lines = block.lines.get(key, []) if isinstance(block, hcl.Object) else []
    return f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""


def _line(block: Any, key: str) -> int | None:
    return block.line_of(key) if isinstance(block, hcl.Object) else None


def _iter_path_entries(value: Any, line: int | None) -> Iterator[tuple[str, Any, int | None]]:
    """Yield ``(pattern, block, line)`` for every path block, whatever the shape.

    Accepts the HCL shape ``{"pattern": {...}}``, repeated blocks
    (:class:`coffer.hcl.Repeated`) and the JSON list shape
    ``[{"pattern": {...}}, ...]``. ``line`` is where the block starts (None for JSON).
    """
    if isinstance(value, dict):
        for pattern, block in value.items():
            lines: list[int | None] = list(value.lines.get(pattern, [])) if isinstance(value, hcl.Object) else []
            if not isinstance(pattern, str):
                with _at_line(lines[0] if lines else line):
                    raise PolicyError(f"invalid path pattern {pattern!r}: must be a string")
            yield from _iter_blocks(pattern, block, lines or [line])
    elif isinstance(value, list):
        for item in value:
            yield from _iter_path_entries(item, line)
    else:
        with _at_line(line):
            raise PolicyError('"path" must be a block: path "<pattern>" { capabilities = [...] }')


def _iter_blocks(pattern: str, block: Any, lines: list[int | None]) -> Iterator[tuple[str, Any, int | None]]:
    if isinstance(block, dict):
        yield pattern, block, lines[0]
    elif isinstance(block, hcl.Repeated) and len(lines) == len(block):
        for item, line in zip(block, lines, strict=True):
            yield from _iter_blocks(pattern, item, [line])
    elif isinstance(block, list):
        for item in block:
            yield from _iter_blocks(pattern, item, lines[:1])
    else:
        with _at_line(lines[0]):
            raise PolicyError(f"path {pattern!r}: expected a block with capabilities")


def _single(pattern: str, key: str, block: Any) -> Any:
    value = block[key]
    if isinstance(value, hcl.Repeated):
        raise PolicyError(f"path {pattern!r}: {key!r} is specified more than once{_lines(block, key)}")
    return value


def _parse_capabilities(pattern: str, block: Mapping[str, Any]) -> frozenset[str]:
    caps: set[str] = set()
    if "capabilities" in block:
        value = _single(pattern, "capabilities", block)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise PolicyError(f"path {pattern!r}: capabilities must be a list of strings")
        for cap in value:
            if not isinstance(cap, str):
                raise PolicyError(f"path {pattern!r}: invalid capability {cap!r}")
            if cap not in VALID_CAPABILITIES:
                raise PolicyError(
                    f"path {pattern!r}: invalid capability {cap!r} (valid: "
                    f"{', '.join(sorted(VALID_CAPABILITIES))})"
                )
            caps.add(cap)
    if "policy" in block:
        legacy = _single(pattern, "policy", block)
        if not isinstance(legacy, str) or legacy not in _LEGACY_POLICIES:
            raise PolicyError(
                f"path {pattern!r}: invalid policy {legacy!r} "
                f"(valid: {', '.join(sorted(_LEGACY_POLICIES))})"
            )
        caps |= _LEGACY_POLICIES[legacy]
    if "capabilities" not in block and "policy" not in block:
        raise PolicyError(f"path {pattern!r}: missing capabilities")
    if DENY in caps:
        return frozenset({DENY})
    return frozenset(caps)


def _parse_parameter_map(pattern: str, key: str, block: Any) -> dict[str, tuple[Any, ...]]:
    value = _single(pattern, key, block)
    if isinstance(value, list):
        # HCL "key { ... }" repeated, or JSON list-of-objects form.
        merged: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict):
                raise PolicyError(f"path {pattern!r}: {key} must be a map of name to list of values")
            for k, v in item.items():
                if k in merged:
                    raise PolicyError(f"path {pattern!r}: {key}: {k!r} is specified more than once")
                merged[k] = v
        value = merged
    if not isinstance(value, dict):
        raise PolicyError(f"path {pattern!r}: {key} must be a map of name to list of values")
    out: dict[str, tuple[Any, ...]] = {}
    for name, values in value.items():
        if isinstance(values, hcl.Repeated):
            raise PolicyError(f"path {pattern!r}: {key}: {name!r} is specified more than once{_lines(value, name)}")
        if not isinstance(name, str):
            raise PolicyError(f"path {pattern!r}: {key}: invalid parameter name {name!r}")
        if values is None:
            values = []
        if not isinstance(values, list):
            values = [values]
        for v in values:
            if isinstance(v, (dict, list)):
                raise PolicyError(
                    f"path {pattern!r}: {key}: values of {name!r} must be scalars"
                )
        lname = name.lower()
        if lname in out:
            # "Foo" and "foo" both given: merge like Vault does.
            out[lname] = () if not out[lname] or not values else out[lname] + tuple(values)
        else:
            out[lname] = tuple(values)
    return out


def _parse_required(pattern: str, block: Any) -> tuple[str, ...]:
    value = _single(pattern, "required_parameters", block)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"path {pattern!r}: required_parameters must be a list of strings")
    return tuple(dict.fromkeys(v.lower() for v in value))


def _parse_wrapping_ttl(pattern: str, key: str, block: Any) -> int:
    value = _single(pattern, key, block)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PolicyError(f"path {pattern!r}: {key} must be a duration such as 30s or 5m")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise PolicyError(f"path {pattern!r}: {key}: {exc}") from None
    if seconds < 0:
        raise PolicyError(f"path {pattern!r}: {key} cannot be negative")
    return seconds


def _validate_pattern(pattern: str) -> str:
    if pattern.startswith("/"):
        pattern = pattern.lstrip("/")
    star = pattern.find("*")
    if star != -1 and star != len(pattern) - 1:
        raise PolicyError(
            f"path {pattern!r}: '*' is only allowed at the end of a path "
            "(use '+' to match a single segment)"
        )
    return pattern


def parse_policy(name: str, text: str) -> Policy:
    """Parse an HCL or JSON policy document. Raises :class:`PolicyError`.

    Errors in HCL documents start with the line they are about.
    """
    if not isinstance(text, str):
        raise PolicyError("policy text must be a string")
    doc = _load(text)
    if not isinstance(doc, dict):
        raise PolicyError("failed to parse policy: top level must be an object")
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            with _at_line(_line(doc, key)):
                raise PolicyError(f"invalid key {key!r} at top level (expected 'path')")
    rules: list[PathRule] = []
    if "path" in doc:
        for raw_pattern, block, line in _iter_path_entries(doc["path"], _line(doc, "path")):
            with _at_line(line):
                rules.append(_parse_rule(raw_pattern, block))
    return Policy(name=name, raw=text, rules=rules)


def _parse_rule(raw_pattern: str, block: Mapping[str, Any]) -> PathRule:
    pattern = _validate_pattern(raw_pattern)
    for key in block:
        with _at_line(_line(block, key)):
            if key in _UNSUPPORTED_PATH_KEYS:
                raise PolicyError(f"path {pattern!r}: {key!r} is not supported by coffer")
            if key not in _PATH_KEYS:
                raise PolicyError(f"path {pattern!r}: invalid key {key!r}")
    with _at_line(_line(block, "capabilities") or _line(block, "policy")):
        caps = _parse_capabilities(pattern, block)
    allowed: dict[str, tuple[Any, ...]] = {}
    denied: dict[str, tuple[Any, ...]] = {}
    required: tuple[str, ...] = ()
    if "allowed_parameters" in block:
        with _at_line(_line(block, "allowed_parameters")):
            allowed = _parse_parameter_map(pattern, "allowed_parameters", block)
    if "denied_parameters" in block:
        with _at_line(_line(block, "denied_parameters")):
            denied = _parse_parameter_map(pattern, "denied_parameters", block)
    if "required_parameters" in block:
        with _at_line(_line(block, "required_parameters")):
            required = _parse_required(pattern, block)
    wrap_min = wrap_max = 0
    if "min_wrapping_ttl" in block:
        with _at_line(_line(block, "min_wrapping_ttl")):
            wrap_min = _parse_wrapping_ttl(pattern, "min_wrapping_ttl", block)
    if "max_wrapping_ttl" in block:
        with _at_line(_line(block, "max_wrapping_ttl")):
            wrap_max = _parse_wrapping_ttl(pattern, "max_wrapping_ttl", block)
    if wrap_min and wrap_max and wrap_max < wrap_min:
        raise PolicyError(f"path {pattern!r}: max_wrapping_ttl cannot be less than min_wrapping_ttl")
    return PathRule(pattern, caps, allowed, denied, required, wrap_min, wrap_max)


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


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
