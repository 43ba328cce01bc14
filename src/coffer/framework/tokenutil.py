"""What every auth method shares: the ``token_*`` settings of a role or user, CIDR blocks and globs.

A role (AppRole, JWT, AWS) or a user (userpass) says what the tokens logged in
with it get: ``token_policies``, ``token_ttl``, ``token_max_ttl``,
``token_period``, ``token_explicit_max_ttl``, ``token_num_uses``,
``token_bound_cidrs``, ``token_no_default_policy``, ``token_type``. They are
declared, validated, stored and shown the same way everywhere; ``auth()``
turns them into the ``Auth`` a login answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from coffer.errors import InvalidRequest
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Auth

S, I, B, D, L = FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST

#: The fields every role/user path declares.
TOKEN_FIELDS: dict[str, Field] = {
    "token_policies": Field(L, "Policies of the tokens issued (the default policy is added unless "
                               "token_no_default_policy)."),
    "policies": Field(L, "Older name of token_policies."),
    "token_ttl": Field(D, "Default TTL of the tokens issued (0: the mount's default)."),
    "token_max_ttl": Field(D, "Maximum TTL of the tokens issued (0: the mount's maximum)."),
    "token_period": Field(D, "Make the tokens periodic: renewable for this long each time, without a maximum."),
    "period": Field(D, "Older name of token_period."),
    "token_explicit_max_ttl": Field(D, "A hard limit on the tokens' life, renewals included."),
    "token_num_uses": Field(I, "How many requests each token may make (0: unlimited)."),
    "token_bound_cidrs": Field(L, "CIDR blocks (or addresses) the tokens may be used from."),
    "token_no_default_policy": Field(B, "Do not add the default policy."),
    "token_type": Field(S, "default or service (batch tokens do not exist in coffer)."),
    "token_strictly_bind_ip": Field(B, "Accepted for compatibility; coffer always checks token_bound_cidrs."),
}

_SERVICE_TYPES = ("default", "service", "default-service")
_BATCH_TYPES = ("batch", "default-batch")


def check_token_type(value: str, field_name: str = "token_type") -> str:
    """A token type coffer can issue, or a clear 400."""
    value = (value or "default").strip().lower()
    if value in _BATCH_TYPES:
        raise InvalidRequest(f'{field_name} "{value}" is not supported: coffer issues service tokens only (batch '
                             f'tokens do not exist yet); use {field_name}=service or leave it unset')
    if value not in _SERVICE_TYPES:
        raise InvalidRequest(f'invalid {field_name} "{value}"; use default or service')
    return value


def parse_cidrs(values: Iterable[str], field_name: str) -> list[str]:
    """CIDR blocks (``10.0.0.0/8``) or single addresses, normalized; a clear 400 for anything else."""
    out: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InvalidRequest(f'invalid {field_name} entry "{value[:80]}": expected a CIDR block such as '
                                 "10.0.0.0/8 or an address such as 10.1.2.3") from None
        single = net.num_addresses == 1
        out.append(str(net.network_address) if single and "/" not in value else str(net))
    return out


def addr_allowed(addr: str, cidrs: Iterable[str]) -> bool:
    """Whether ``addr`` lies in one of ``cidrs`` (an empty list allows every address)."""
    blocks = list(cidrs)
    if not blocks:
        return True
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    for block in blocks:
        try:
            if ip in ipaddress.ip_network(block, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def cidrs_within(inner: Iterable[str], outer: Iterable[str]) -> bool:
    """Whether every block of ``inner`` lies inside a block of ``outer`` (an empty ``outer`` contains all)."""
    outs = [ipaddress.ip_network(b, strict=False) for b in outer]
    if not outs:
        return True
    for block in inner:
        net = ipaddress.ip_network(block, strict=False)
        if not any(net.version == o.version and net.subnet_of(o) for o in outs):  # type: ignore[arg-type]
            return False
    return True


def glob_match(pattern: str, value: str) -> bool:
    """``*`` matches any run of characters (none included); everything else matches itself."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == value
    if not value.startswith(parts[0]):
        return False
    pos = len(parts[0])
    for middle in parts[1:-1]:
        found = value.find(middle, pos)
        if found < 0:
            return False
        pos = found + len(middle)
    last = parts[-1]
    return len(value) - pos >= len(last) and value.endswith(last)


def clean_policies(names: Iterable[str], field_name: str = "token_policies") -> list[str]:
    policies = sorted({n.strip().lower() for n in names if n.strip()})
    if "root" in policies:
        raise InvalidRequest(f"{field_name} cannot contain root: an auth method never issues root tokens")
    return policies


@dataclass
class TokenParams:
    """The ``token_*`` settings of one role or user, as stored."""

    token_policies: list[str] = field(default_factory=list)
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_period: int = 0
    token_explicit_max_ttl: int = 0
    token_num_uses: int = 0
    token_bound_cidrs: list[str] = field(default_factory=list)
    token_no_default_policy: bool = False
    token_type: str = "default"
    token_strictly_bind_ip: bool = False

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> TokenParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (doc or {}).items() if k in names})

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, d: FieldData) -> None:
        """Apply the token fields the caller sent (the older names too); raises InvalidRequest."""
        if "token_policies" in d:
            self.token_policies = clean_policies(d["token_policies"])
        elif "policies" in d:
            self.token_policies = clean_policies(d["policies"], "policies")
        for name in ("token_ttl", "token_max_ttl", "token_explicit_max_ttl"):
            if name in d:
                setattr(self, name, d[name])
        if "token_period" in d:
            self.token_period = d["token_period"]
        elif "period" in d:
            self.token_period = d["period"]
        if "token_num_uses" in d:
            if d["token_num_uses"] < 0:
                raise InvalidRequest("token_num_uses cannot be negative")
            self.token_num_uses = d["token_num_uses"]
        if "token_bound_cidrs" in d:
            self.token_bound_cidrs = parse_cidrs(d["token_bound_cidrs"], "token_bound_cidrs")
        if "token_no_default_policy" in d:
            self.token_no_default_policy = d["token_no_default_policy"]
        if "token_strictly_bind_ip" in d:
            self.token_strictly_bind_ip = d["token_strictly_bind_ip"]
        if "token_type" in d:
            self.token_type = check_token_type(d["token_type"])
        for name in ("token_ttl", "token_max_ttl", "token_period", "token_explicit_max_ttl"):
            if getattr(self, name) < 0:
                raise InvalidRequest(f"{name} cannot be negative")
        if self.token_max_ttl and self.token_ttl > self.token_max_ttl:
            raise InvalidRequest("token_ttl cannot be greater than token_max_ttl; lower token_ttl or raise "
                                 "token_max_ttl")

    def auth(self, **kwargs: Any) -> Auth:
        """The ``Auth`` of a login with these settings (``kwargs``: metadata, display_name, internal...)."""
        return Auth(
            policies=list(self.token_policies), ttl=self.token_ttl, max_ttl=self.token_max_ttl,
            period=self.token_period, explicit_max_ttl=self.token_explicit_max_ttl, num_uses=self.token_num_uses,
            bound_cidrs=list(self.token_bound_cidrs), no_default_policy=self.token_no_default_policy, **kwargs,
        )

    def renewed(self, auth: Auth) -> Auth:
        """The current settings applied to a token being renewed (``auth`` is what the token has)."""
        auth.ttl, auth.max_ttl, auth.period = self.token_ttl, self.token_max_ttl, self.token_period
        return auth
