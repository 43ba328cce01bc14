"""The functions a template can call: Vault's helpers and Go's built-ins.

Each is described by a :class:`Func`: its parameter and result types (checked
when the template is compiled), its implementation, and what the compiler and
the length analysis need to know about it.
"""

from __future__ import annotations

import base64 as _b64
import hashlib
import operator
import secrets
import uuid as _uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EvalError
from .limits import MAX_RANDOM_LENGTH, MAX_VALUE_LENGTH
from .printf import printf
from .timelayout import format_time
from .values import ANY, BOOL, INT, STR, Value, check_grow, kind

# ---------------------------------------------------------------------------
# Vault's helpers
# ---------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 248 = 4 * 62: bytes below it map uniformly onto the alphabet; the rest are dropped.
_RANDOM_TABLE = bytes(ord(_BASE62[b % 62]) for b in range(256))
_RANDOM_DROP = bytes(range(248, 256))


def _check_random_length(n: int) -> None:
    if n < 0:
        raise EvalError(f"length must be >= 0 but was {n}")
    if n > MAX_RANDOM_LENGTH:
        raise EvalError(f"length must be <= {MAX_RANDOM_LENGTH} but was {n}")


def _random(n: int) -> str:
    _check_random_length(n)
    out = b""
    while len(out) < n:
        need = n - len(out)
        out += secrets.token_bytes(need + need // 16 + 4).translate(_RANDOM_TABLE, _RANDOM_DROP)
    return out[:n].decode("ascii")


def _check_truncate(n: int) -> None:
    if n <= 0:
        raise EvalError(f"max length must be > 0 but was {n}")


def _truncate(n: int, s: str) -> str:
    _check_truncate(n)
    return s[:n]


def _check_truncate_sha256(n: int) -> None:
    if n <= 8:
        raise EvalError(f"max length must be > 8 but was {n}")


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _truncate_sha256(n: int, s: str) -> str:
    # Vault: keep the first n-8 characters and append the first 8 hex digits of
    # the SHA-256 of the characters that were cut off.
    _check_truncate_sha256(n)
    if len(s) <= n:
        return s
    cut = n - 8
    return s[:cut] + hashlib.sha256(_utf8(s[cut:])).hexdigest()[:8]


def _map_chars(s: str, method: Callable[[str], str]) -> str:
    # Character-by-character mapping that never changes the length (Go's
    # strings.ToUpper uses simple case mapping: "ß" stays "ß").
    if s.isascii():
        return method(s)
    out = []
    for ch in s:
        mapped = method(ch)
        out.append(mapped if len(mapped) == 1 else ch)
    return "".join(out)


def _uppercase(s: str) -> str:
    return _map_chars(s, str.upper)


def _lowercase(s: str) -> str:
    return _map_chars(s, str.lower)


def _replace(old: str, new: str, s: str) -> str:
    # Python's str.replace matches Go's strings.ReplaceAll, including an empty
    # pattern (which inserts ``new`` at every character boundary).
    if len(new) > len(old):
        estimate = len(s) + s.count(old) * (len(new) - len(old))
        if estimate > MAX_VALUE_LENGTH and estimate > len(s) + len(old) + len(new):
            raise EvalError(f"result would exceed {MAX_VALUE_LENGTH} characters")
    return s.replace(old, new)


def _sha256(s: str) -> str:
    return hashlib.sha256(_utf8(s)).hexdigest()


def _base64(s: str) -> str:
    return check_grow(_b64.b64encode(_utf8(s)).decode("ascii"), len(s))


def _uuid() -> str:
    return str(_uuidlib.uuid4())


def _unix_time(now_us: int) -> str:
    return str(now_us // 1_000_000)


def _unix_time_millis(now_us: int) -> str:
    return str(now_us // 1000)


# ---------------------------------------------------------------------------
# Go's built-ins: comparison and logic
# ---------------------------------------------------------------------------


def _same_kind(a: Value, b: Value) -> None:
    if kind(a) != kind(b):
        raise EvalError(f"incompatible types for comparison: {kind(a)} and {kind(b)}")


def _eq(a: Value, *others: Value) -> bool:
    for b in others:
        _same_kind(a, b)
        if a == b:
            return True
    return False


def _ne(a: Value, b: Value) -> bool:
    _same_kind(a, b)
    return a != b


def _ordering(op: Callable[[Any, Any], bool]) -> Callable[[Value, Value], bool]:
    """lt/le/gt/ge: both operands strings, or both integers."""

    def compare(a: Value, b: Value) -> bool:
        _same_kind(a, b)
        if type(a) is bool:
            raise EvalError("invalid type for comparison: bool")
        return op(a, b)

    return compare


def _not(a: Value) -> bool:
    return not a


# ---------------------------------------------------------------------------
# The function table
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Func:
    name: str
    params: tuple[str, ...]  # the type of each parameter (values.STR, ...)
    returns: str
    # None for and/or, which the compiler evaluates itself (short-circuit).
    impl: Callable[..., Value] | None
    variadic: str | None = None  # the type of any further arguments; None: no more are allowed
    deterministic: bool = True  # the same arguments always give the same result
    needs_time: bool = False  # impl takes the render's clock (microseconds) before its arguments
    check: Callable[[int], None] | None = None  # validates a constant first (integer) argument at compile time

    def arity_text(self) -> str:
        n = len(self.params)
        plural = "s" if n != 1 else ""
        if self.variadic is not None:
            return f"at least {n} argument{plural}"
        return f"{n} argument{plural}"

    def param_type(self, i: int) -> str:
        """The type of argument ``i``; only call it for an index the arity allows."""
        if i < len(self.params):
            return self.params[i]
        assert self.variadic is not None
        return self.variadic


FUNCS: dict[str, Func] = {
    f.name: f
    for f in (
        Func("random", (INT,), STR, _random, deterministic=False, check=_check_random_length),
        Func("truncate", (INT, STR), STR, _truncate, check=_check_truncate),
        Func("truncate_sha256", (INT, STR), STR, _truncate_sha256, check=_check_truncate_sha256),
        Func("uppercase", (STR,), STR, _uppercase),
        Func("lowercase", (STR,), STR, _lowercase),
        Func("replace", (STR, STR, STR), STR, _replace),
        Func("sha256", (STR,), STR, _sha256),
        Func("base64", (STR,), STR, _base64),
        Func("uuid", (), STR, _uuid, deterministic=False),
        Func("unix_time", (), STR, _unix_time, deterministic=False, needs_time=True),
        Func("unix_time_millis", (), STR, _unix_time_millis, deterministic=False, needs_time=True),
        Func("timestamp", (STR,), STR, format_time, deterministic=False, needs_time=True),
        Func("printf", (STR,), STR, printf, variadic=ANY),
        Func("eq", (ANY, ANY), BOOL, _eq, variadic=ANY),
        Func("ne", (ANY, ANY), BOOL, _ne),
        Func("lt", (ANY, ANY), BOOL, _ordering(operator.lt)),
        Func("le", (ANY, ANY), BOOL, _ordering(operator.le)),
        Func("gt", (ANY, ANY), BOOL, _ordering(operator.gt)),
        Func("ge", (ANY, ANY), BOOL, _ordering(operator.ge)),
        Func("not", (ANY,), BOOL, _not),
        Func("and", (ANY,), ANY, None, variadic=ANY),
        Func("or", (ANY,), ANY, None, variadic=ANY),
    )
}
