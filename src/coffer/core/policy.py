"""ACL policies: parsing (pure logic, no I/O).

Policies use Vault's syntax (HCL or JSON)::

    path "secret/data/*" {
      capabilities = ["create", "read", "update", "delete", "list"]
      allowed_parameters = { "*" = [] }
      denied_parameters  = { "admin" = [] }
      required_parameters = ["owner"]
    }

and the legacy ``policy = "read" | "write" | "sudo" | "deny"`` form.

How a set of parsed policies decides a request (matching, merging) is
:mod:`coffer.core.acl`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from coffer import hcl
from coffer.durations import parse_duration

__all__ = [
    "DEFAULT_POLICY_NAME",
    "DEFAULT_POLICY_TEXT",
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


#: The built-in root policy. It has no rules; an :class:`~coffer.core.acl.ACL` containing it
#: allows everything.
ROOT_POLICY = Policy(name=ROOT_POLICY_NAME, raw="", rules=[])


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
