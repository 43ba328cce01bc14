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
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

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
    {"capabilities", "policy", "allowed_parameters", "denied_parameters", "required_parameters"}
)
# Vault accepts these, but coffer does not implement them. Silently ignoring
# them would grant more than the author intended, so they are rejected.
_UNSUPPORTED_PATH_KEYS = frozenset(
    {
        "min_wrapping_ttl",
        "max_wrapping_ttl",
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
    """A policy document is malformed or invalid."""


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


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


class _Dup(list):
    """All values of a key that was given more than once in one object."""


_parser_lock = threading.Lock()
_parser: Any = None


def _hcl_parser() -> Any:
    """A shared pyhcl parser that keeps duplicate keys instead of merging.

    pyhcl merges repeated blocks key by key (``path "a" {...}`` twice keeps
    only the last ``capabilities``), which could silently drop a ``deny``.
    This subclass records repeated keys as :class:`_Dup` lists so that every
    block is seen. Building the parser tables is slow (tens of ms), so one
    instance is shared; callers hold ``_parser_lock`` while using it.
    """
    global _parser
    if _parser is None:
        from hcl.parser import HclParser

        class _DupKeepingParser(HclParser):
            def objectlist_flat(self, lt, replace):  # noqa: ARG002 - pyhcl's signature
                d: dict[Any, Any] = {}
                for k, v in lt:
                    if k in d:
                        if isinstance(d[k], _Dup):
                            d[k].append(v)
                        else:
                            d[k] = _Dup([d[k], v])
                    else:
                        d[k] = v
                return d

        _parser = _DupKeepingParser()
    return _parser


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            if isinstance(d[k], _Dup):
                d[k].append(v)
            else:
                d[k] = _Dup([d[k], v])
        else:
            d[k] = v
    return d


_PLY_PARSE_ERROR = re.compile(r"^Line (\d+), column (\d+): (.*)$", re.S)
_PLY_LEX_ERROR = re.compile(r"^Line (\d+), column (\d+), index \d+: (.*)$", re.S)


def _describe_hcl_error(text: str, exc: Exception) -> str:
    msg = str(exc)
    m = _PLY_LEX_ERROR.match(msg)
    if m:
        return f"line {m.group(1)}, column {int(m.group(2)) + 1}: {m.group(3)}"
    m = _PLY_PARSE_ERROR.match(msg)
    if m:
        # pyhcl reports the absolute offset as "column"; recompute a real one.
        pos = int(m.group(2))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line}, column {column}: {m.group(3)}"
    if msg.startswith("Unexpected end of file"):
        line = text.count("\n") + (0 if text.endswith("\n") else 1)
        return f"line {max(line, 1)}: unexpected end of file{msg[len('Unexpected end of file'):]}"
    return msg


def _load(text: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            raise PolicyError(
                f"failed to parse policy: line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    if not stripped:
        return {}
    try:
        with _parser_lock:
            return _hcl_parser().parse(text)
    except ValueError as exc:
        raise PolicyError(f"failed to parse policy: {_describe_hcl_error(text, exc)}") from None
    except Exception as exc:  # pyhcl raises assorted errors on odd input
        raise PolicyError(f"failed to parse policy: {exc}") from None


def _iter_path_entries(value: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(pattern, block)`` for every path block, whatever the shape.

    Accepts the HCL shape ``{"pattern": {...}}``, repeated blocks
    (:class:`_Dup`) and the JSON list shape ``[{"pattern": {...}}, ...]``.
    """
    if isinstance(value, dict):
        for pattern, block in value.items():
            if not isinstance(pattern, str):
                raise PolicyError(f"invalid path pattern {pattern!r}: must be a string")
            yield from _iter_blocks(pattern, block)
    elif isinstance(value, list):
        for item in value:
            yield from _iter_path_entries(item)
    else:
        raise PolicyError('"path" must be a block: path "<pattern>" { capabilities = [...] }')


def _iter_blocks(pattern: str, block: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(block, dict):
        yield pattern, block
    elif isinstance(block, list):
        for item in block:
            yield from _iter_blocks(pattern, item)
    else:
        raise PolicyError(f"path {pattern!r}: expected a block with capabilities")


def _single(pattern: str, key: str, value: Any) -> Any:
    if isinstance(value, _Dup):
        raise PolicyError(f"path {pattern!r}: {key!r} is specified more than once")
    return value


def _parse_capabilities(pattern: str, block: Mapping[str, Any]) -> frozenset[str]:
    caps: set[str] = set()
    if "capabilities" in block:
        value = _single(pattern, "capabilities", block["capabilities"])
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
        legacy = _single(pattern, "policy", block["policy"])
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


def _parse_parameter_map(pattern: str, key: str, value: Any) -> dict[str, tuple[Any, ...]]:
    value = _single(pattern, key, value)
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
        if isinstance(values, _Dup):
            raise PolicyError(f"path {pattern!r}: {key}: {name!r} is specified more than once")
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


def _parse_required(pattern: str, value: Any) -> tuple[str, ...]:
    value = _single(pattern, "required_parameters", value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"path {pattern!r}: required_parameters must be a list of strings")
    return tuple(dict.fromkeys(v.lower() for v in value))


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
    """Parse an HCL or JSON policy document. Raises :class:`PolicyError`."""
    if not isinstance(text, str):
        raise PolicyError("policy text must be a string")
    doc = _load(text)
    if not isinstance(doc, dict):
        raise PolicyError("failed to parse policy: top level must be an object")
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            raise PolicyError(f"invalid key {key!r} at top level (expected 'path')")
    rules: list[PathRule] = []
    if "path" in doc:
        for raw_pattern, block in _iter_path_entries(doc["path"]):
            pattern = _validate_pattern(raw_pattern)
            for key in block:
                if key in _UNSUPPORTED_PATH_KEYS:
                    raise PolicyError(f"path {pattern!r}: {key!r} is not supported by coffer")
                if key not in _PATH_KEYS:
                    raise PolicyError(f"path {pattern!r}: invalid key {key!r}")
            caps = _parse_capabilities(pattern, block)
            allowed: dict[str, tuple[Any, ...]] = {}
            denied: dict[str, tuple[Any, ...]] = {}
            required: tuple[str, ...] = ()
            if "allowed_parameters" in block:
                allowed = _parse_parameter_map(pattern, "allowed_parameters", block["allowed_parameters"])
            if "denied_parameters" in block:
                denied = _parse_parameter_map(pattern, "denied_parameters", block["denied_parameters"])
            if "required_parameters" in block:
                required = _parse_required(pattern, block["required_parameters"])
            rules.append(PathRule(pattern, caps, allowed, denied, required))
    return Policy(name=name, raw=text, rules=rules)


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
        return ACLResult(allowed=True, sudo=sudo, capabilities=caps, pattern=rule.pattern)
