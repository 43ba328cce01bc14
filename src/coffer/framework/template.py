"""Vault-style username templates: a small, safe subset of Go's ``text/template``.

Secrets engines that mint dynamic users (the AWS engine's IAM users, database
users, ...) let operators shape the generated name with a template such as::

    {{ printf "vault-%s-%s" (.DisplayName | truncate 16) (random 20) | truncate 64 }}

This module implements the language Vault documents for that ("Username
templating"): literal text, ``{{ pipeline }}`` actions, ``{{-``/``-}}`` trim
markers, ``{{/* comments */}}``, ``if``/``else if``/``else``/``end``,
pipelines ``a | f x`` (the previous value becomes the *last* argument, as in
Go), parenthesised sub-pipelines, string literals (``"..."`` with Go escapes
and raw backquoted strings), integer literals, ``true``/``false`` and field
references ``.Name`` looked up in the context mapping.

Functions: Vault's helpers ``random``, ``truncate``, ``truncate_sha256``,
``uppercase``, ``lowercase``, ``replace``, ``sha256``, ``base64``, ``uuid``,
``unix_time``, ``unix_time_millis`` and ``timestamp``, plus Go's built-ins
``printf``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``and``, ``or`` and
``not``.

Public API::

    tpl = compile_template(text)            # raises TemplateError
    tpl.render(context, now=None) -> str    # raises TemplateError
    tpl.max_length(field_bounds, fixed=None) -> int | None
    tpl.max_length_when(field_bounds, fixed) -> int | None
    tpl.fields -> frozenset[str]            # field names the template references

Nothing is evaluated with Python's ``eval``; there is no attribute or method
access, no variables, no loops and no template inclusion.  Work is bounded: the
template text is at most :data:`MAX_TEMPLATE_LENGTH` characters, ``if`` and
parenthesis nesting is at most :data:`MAX_NESTING_DEPTH`, ``random`` and
``printf`` widths are capped, and functions that can grow a value (``printf``,
``replace``, ``base64``) refuse to produce more than :data:`MAX_VALUE_LENGTH`
characters beyond what they were given.

Deviations from Go/Vault (all deliberate):

* Strings are sequences of Unicode code points, not bytes: ``truncate`` and
  ``truncate_sha256`` never split a character and lengths count characters
  (identical for ASCII).  ``uppercase``/``lowercase`` map character by
  character, so they never change the length (like Go's simple case mapping).
* Unknown functions, arity errors, literal arguments of the wrong type, a
  constant ``printf`` format whose verbs do not match its arguments, and
  constant out-of-range arguments (``truncate 0``) are reported when the
  template is compiled, even inside a branch that would never run.
* ``printf`` raises :class:`TemplateError` where Go would print ``%!d(...)``,
  ``%!s(MISSING)`` or ``%!(EXTRA ...)``; ``%s``/``%v`` accept integers and
  booleans (formatted like ``%d`` / ``true``).  Supported: ``%s %v %d %%``
  with flags ``- + space 0``, width and precision.
* ``timestamp`` formats in UTC (Vault uses the server's local zone); all
  time functions in one ``render`` call see the same instant.
* ``uuid`` returns a random (version 4) UUID.
* Missing fields raise :class:`TemplateError`, as they do for Vault's structs;
  context values must be strings.
"""

from __future__ import annotations

import base64 as _b64
import hashlib
import re
import secrets
import time
import uuid as _uuidlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_TEMPLATE_LENGTH",
    "MAX_VALUE_LENGTH",
    "Template",
    "TemplateError",
    "compile_template",
]

MAX_TEMPLATE_LENGTH = 4096
MAX_NESTING_DEPTH = 32
MAX_VALUE_LENGTH = 65536
MAX_RANDOM_LENGTH = 4096
MAX_FORMAT_WIDTH = 4096

# Upper bounds used by max_length for the clock functions (seconds stay at or
# below 11 digits until the year 5138).
UNIX_TIME_MAX_DIGITS = 11
UNIX_TIME_MILLIS_MAX_DIGITS = 14


class TemplateError(ValueError):
    """A template could not be parsed, or could not be rendered.

    ``message`` is the bare description; ``line``/``column`` (1-based) locate
    the offending construct when known, and ``str(err)`` includes them.
    """

    def __init__(self, message: str, source: str | None = None, pos: int | None = None) -> None:
        self.message = message
        self.pos = pos
        self.line: int | None = None
        self.column: int | None = None
        text = message
        if source is not None and pos is not None:
            self.line = source.count("\n", 0, pos) + 1
            self.column = pos - (source.rfind("\n", 0, pos) + 1) + 1
            text = f"{message} (line {self.line}, column {self.column})"
        super().__init__(text)


class _EvalError(Exception):
    """Raised by function implementations; converted to TemplateError with a position."""


# ---------------------------------------------------------------------------
# Values and types
# ---------------------------------------------------------------------------

STR, INT, BOOL, ANY = "string", "int", "bool", "any"


def _kind(value: object) -> str:
    t = type(value)
    if t is str:
        return STR
    if t is bool:
        return BOOL
    if t is int:
        return INT
    return t.__name__


def _to_text(value: object) -> str:
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    if t is bool:
        return "true" if value else "false"
    return str(value)


def _check_grow(result: str, given: int) -> str:
    if len(result) > MAX_VALUE_LENGTH and len(result) > given:
        raise _EvalError(f"result would exceed {MAX_VALUE_LENGTH} characters")
    return result


# ---------------------------------------------------------------------------
# Vault's helper functions
# ---------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 248 = 4 * 62: bytes below it map uniformly onto the alphabet; the rest are dropped.
_RANDOM_TABLE = bytes(ord(_BASE62[b % 62]) for b in range(256))
_RANDOM_DROP = bytes(range(248, 256))


def _check_random_length(n: int) -> None:
    if n < 0:
        raise _EvalError(f"length must be >= 0 but was {n}")
    if n > MAX_RANDOM_LENGTH:
        raise _EvalError(f"length must be <= {MAX_RANDOM_LENGTH} but was {n}")


def _random(n: int) -> str:
    _check_random_length(n)
    out = b""
    while len(out) < n:
        need = n - len(out)
        out += secrets.token_bytes(need + need // 16 + 4).translate(_RANDOM_TABLE, _RANDOM_DROP)
    return out[:n].decode("ascii")


def _check_truncate(n: int) -> None:
    if n <= 0:
        raise _EvalError(f"max length must be > 0 but was {n}")


def _truncate(n: int, s: str) -> str:
    if n <= 0:
        _check_truncate(n)
    return s[:n]


def _check_truncate_sha256(n: int) -> None:
    if n <= 8:
        raise _EvalError(f"max length must be > 8 but was {n}")


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _truncate_sha256(n: int, s: str) -> str:
    # Vault: keep the first n-8 characters and append the first 8 hex digits of
    # the SHA-256 of the characters that were cut off.
    if n <= 8:
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
            raise _EvalError(f"result would exceed {MAX_VALUE_LENGTH} characters")
    return s.replace(old, new)


def _sha256(s: str) -> str:
    return hashlib.sha256(_utf8(s)).hexdigest()


def _base64(s: str) -> str:
    return _check_grow(_b64.b64encode(_utf8(s)).decode("ascii"), len(s))


def _uuid() -> str:
    return str(_uuidlib.uuid4())


# ---------------------------------------------------------------------------
# Go time layouts (for ``timestamp``)
# ---------------------------------------------------------------------------

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# token -> (formatter(datetime, nanoseconds) -> str, maximum length)
_LayoutFmt = Callable[[datetime, int], str]


def _hour12(d: datetime) -> int:
    return d.hour % 12 or 12


_STD: dict[str, tuple[_LayoutFmt, int]] = {
    "January": (lambda d, ns: _MONTHS[d.month - 1], 9),
    "Jan": (lambda d, ns: _MONTHS[d.month - 1][:3], 3),
    "1": (lambda d, ns: str(d.month), 2),
    "01": (lambda d, ns: f"{d.month:02d}", 2),
    "Monday": (lambda d, ns: _DAYS[d.weekday()], 9),
    "Mon": (lambda d, ns: _DAYS[d.weekday()][:3], 3),
    "2": (lambda d, ns: str(d.day), 2),
    "_2": (lambda d, ns: f"{d.day:2d}", 2),
    "02": (lambda d, ns: f"{d.day:02d}", 2),
    "__2": (lambda d, ns: f"{d.timetuple().tm_yday:3d}", 3),
    "002": (lambda d, ns: f"{d.timetuple().tm_yday:03d}", 3),
    "15": (lambda d, ns: f"{d.hour:02d}", 2),
    "3": (lambda d, ns: str(_hour12(d)), 2),
    "03": (lambda d, ns: f"{_hour12(d):02d}", 2),
    "4": (lambda d, ns: str(d.minute), 2),
    "04": (lambda d, ns: f"{d.minute:02d}", 2),
    "5": (lambda d, ns: str(d.second), 2),
    "05": (lambda d, ns: f"{d.second:02d}", 2),
    "2006": (lambda d, ns: f"{d.year:04d}", 4),
    "06": (lambda d, ns: f"{d.year % 100:02d}", 2),
    "PM": (lambda d, ns: "PM" if d.hour >= 12 else "AM", 2),
    "pm": (lambda d, ns: "pm" if d.hour >= 12 else "am", 2),
    "MST": (lambda d, ns: "UTC", 3),
    # Always UTC: numeric zones are +00..., ISO 8601 zones are "Z".
    "-070000": (lambda d, ns: "+000000", 7),
    "-07:00:00": (lambda d, ns: "+00:00:00", 9),
    "-0700": (lambda d, ns: "+0000", 5),
    "-07:00": (lambda d, ns: "+00:00", 6),
    "-07": (lambda d, ns: "+00", 3),
    "Z070000": (lambda d, ns: "Z", 1),
    "Z07:00:00": (lambda d, ns: "Z", 1),
    "Z0700": (lambda d, ns: "Z", 1),
    "Z07:00": (lambda d, ns: "Z", 1),
    "Z07": (lambda d, ns: "Z", 1),
}
_TZ_NUM = ("-070000", "-07:00:00", "-0700", "-07:00", "-07")
_TZ_ISO = ("Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07")


def _frac(sep: str, digits: int, trim: bool) -> tuple[_LayoutFmt, int]:
    def fmt(d: datetime, ns: int) -> str:
        text = f"{ns:09d}"[:digits]
        if trim:
            text = text.rstrip("0")
            if not text:
                return ""
        return sep + text

    return fmt, digits + 1


def _std_chunk(layout: str, i: int) -> tuple[str, tuple[_LayoutFmt, int]] | None:
    """The Go layout token starting at ``layout[i]``, if any (mirrors Go's nextStdChunk)."""
    c = layout[i]
    rest = layout[i:]

    def lower_follows(k: int) -> bool:
        return i + k < len(layout) and "a" <= layout[i + k] <= "z"

    tok: str | None = None
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            tok = "January"
        elif not lower_follows(3):
            tok = "Jan"
    elif c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                tok = "Monday"
            elif not lower_follows(3):
                tok = "Mon"
        elif rest.startswith("MST"):
            tok = "MST"
    elif c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            tok = rest[:2]
        elif rest.startswith("002"):
            tok = "002"
    elif c == "1":
        tok = "15" if rest.startswith("15") else "1"
    elif c == "2":
        tok = "2006" if rest.startswith("2006") else "2"
    elif c == "_":
        if rest.startswith("_2") and not rest.startswith("_2006"):
            tok = "_2"
        elif rest.startswith("__2"):
            tok = "__2"
    elif c in "345":
        tok = c
    elif c == "P" and rest.startswith("PM"):
        tok = "PM"
    elif c == "p" and rest.startswith("pm"):
        tok = "pm"
    elif c == "-":
        tok = next((t for t in _TZ_NUM if rest.startswith(t)), None)
    elif c == "Z":
        tok = next((t for t in _TZ_ISO if rest.startswith(t)), None)
    elif c in ".," and len(rest) >= 2 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        if not (j < len(rest) and rest[j].isdigit()):
            return rest[:j], _frac(c, j - 1, rest[1] == "9")
    if tok is None:
        return None
    return tok, _STD[tok]


@lru_cache(maxsize=256)
def _parse_layout(layout: str) -> tuple[tuple[str | _LayoutFmt, ...], int]:
    """Split a Go layout into literal strings and formatters; also return the maximum output length."""
    parts: list[str | _LayoutFmt] = []
    bound = 0
    lit: list[str] = []
    i = 0
    while i < len(layout):
        chunk = _std_chunk(layout, i)
        if chunk is None:
            lit.append(layout[i])
            i += 1
            continue
        token, (fmt, width) = chunk
        if lit:
            parts.append("".join(lit))
            bound += len(parts[-1])  # type: ignore[arg-type]
            lit = []
        parts.append(fmt)
        bound += width
        i += len(token)
    if lit:
        parts.append("".join(lit))
        bound += len(parts[-1])  # type: ignore[arg-type]
    return tuple(parts), bound


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_NOW = 0  # the bounds max_length assumes: 1970 ..
_MAX_NOW = 99_999_999_999  # .. the year 5138 (unix_time has at most 11 digits)


def _timestamp(now_us: int, layout: str) -> str:
    parts, _bound = _parse_layout(layout)
    d = _EPOCH + timedelta(microseconds=now_us)
    ns = d.microsecond * 1000
    return "".join(p if type(p) is str else p(d, ns) for p in parts)  # type: ignore[operator]


def _unix_time(now_us: int) -> str:
    return str(now_us // 1_000_000)


def _unix_time_millis(now_us: int) -> str:
    return str(now_us // 1000)


# ---------------------------------------------------------------------------
# printf
# ---------------------------------------------------------------------------


class _Verb:
    __slots__ = ("flags", "width", "prec", "verb")

    def __init__(self, flags: str, width: int | None, prec: int | None, verb: str) -> None:
        self.flags = flags
        self.width = width
        self.prec = prec
        self.verb = verb


_VERB_RE = re.compile(r"%([-+ 0#]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)


@lru_cache(maxsize=256)
def _parse_format(fmt: str) -> tuple[tuple[str | _Verb, ...], int]:
    """Parse a printf format into literal strings and verbs; also return the verb count."""
    pieces: list[str | _Verb] = []
    lit: list[str] = []
    count = 0
    i = 0
    while True:
        j = fmt.find("%", i)
        if j < 0:
            lit.append(fmt[i:])
            break
        lit.append(fmt[i:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        flags, width, prec, verb = m.groups()
        i = m.end()
        if verb == "%":
            lit.append("%")
            continue
        if verb == "":
            raise _EvalError("format ends with a lone '%'")
        if verb in "[*":
            raise _EvalError("explicit argument indexes and '*' widths are not supported")
        if verb not in "sdv":
            raise _EvalError(f"unsupported verb %{verb} (supported: %s %v %d %%)")
        if "#" in flags:
            raise _EvalError("the '#' flag is not supported")
        w = int(width) if width else None
        p = (int(prec) if prec else 0) if prec is not None else None
        if (w or 0) > MAX_FORMAT_WIDTH or (p or 0) > MAX_FORMAT_WIDTH:
            raise _EvalError(f"width and precision must be <= {MAX_FORMAT_WIDTH}")
        if lit:
            pieces.append("".join(lit))
            lit = []
        pieces.append(_Verb(flags, w, p, verb))
        count += 1
    text = "".join(lit)
    if text:
        pieces.append(text)
    return tuple(pieces), count


def _pad(text: str, v: _Verb) -> str:
    if v.width is not None and len(text) < v.width:
        return text.ljust(v.width) if "-" in v.flags else text.rjust(v.width)
    return text


def _format_int(n: int, v: _Verb) -> str:
    digits = str(abs(n))
    if v.prec is not None:
        digits = "" if (v.prec == 0 and n == 0) else digits.zfill(v.prec)
    sign = "-" if n < 0 else "+" if "+" in v.flags else " " if " " in v.flags else ""
    if v.width is not None and v.prec is None and "0" in v.flags and "-" not in v.flags:
        digits = digits.zfill(v.width - len(sign))
    return _pad(sign + digits, v)


def _apply_verb(v: _Verb, arg: object) -> str:
    t = type(arg)
    if t is int:
        return _format_int(arg, v)  # type: ignore[arg-type]
    if v.verb == "d":
        raise _EvalError(f"%d needs an integer argument, got {_kind(arg)} {_to_text(arg)!r}")
    text = _to_text(arg)
    if v.prec is not None:
        text = text[: v.prec]
    return _pad(text, v)


def _printf(fmt: str, *args: object) -> str:
    pieces, count = _parse_format(fmt)
    if count != len(args):
        raise _EvalError(f"format {fmt!r} has {count} verb(s) but {len(args)} argument(s) were given")
    out = []
    it = iter(args)
    for piece in pieces:
        out.append(piece if type(piece) is str else _apply_verb(piece, next(it)))  # type: ignore[arg-type]
    result = "".join(out)
    if len(result) > MAX_VALUE_LENGTH:
        _check_grow(result, len(fmt) + sum(len(_to_text(a)) for a in args))
    return result


# ---------------------------------------------------------------------------
# Go built-ins: comparison and logic
# ---------------------------------------------------------------------------


def _same_kind(a: object, b: object) -> None:
    if _kind(a) != _kind(b):
        raise _EvalError(f"incompatible types for comparison: {_kind(a)} and {_kind(b)}")


def _eq(a: object, *others: object) -> bool:
    for b in others:
        _same_kind(a, b)
        if a == b:
            return True
    return False


def _ne(a: object, b: object) -> bool:
    _same_kind(a, b)
    return a != b


def _ordered(a: object, b: object) -> None:
    _same_kind(a, b)
    if type(a) is bool:
        raise _EvalError("invalid type for comparison: bool")


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a < b


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a <= b


def _gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a > b


def _ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a >= b


def _not(a: object) -> bool:
    return not a


# ---------------------------------------------------------------------------
# Function table
# ---------------------------------------------------------------------------


class _AV:
    """Abstract value used by max_length: an upper bound on the printed length, and the value if constant."""

    __slots__ = ("bound", "const", "type")

    def __init__(self, bound: int | None, const: object = None, typ: str = STR, known: bool = False) -> None:
        self.bound = bound
        self.const = const if known else _UNKNOWN
        self.type = typ

    @property
    def known(self) -> bool:
        return self.const is not _UNKNOWN


_UNKNOWN = object()


def _const_int(av: _AV) -> int | None:
    return av.const if av.known and type(av.const) is int else None  # type: ignore[return-value]


def _b_random(a: list[_AV]) -> int | None:
    n = _const_int(a[0])
    return None if n is None else max(0, min(n, MAX_RANDOM_LENGTH))


def _b_truncate(a: list[_AV], floor: int = 0) -> int | None:
    n, b = _const_int(a[0]), a[1].bound
    if n is None:
        return b
    if n <= floor:
        return 0  # always an error: produces nothing
    return n if b is None else min(n, b)


def _b_replace(a: list[_AV]) -> int | None:
    old, new, s = a
    b = s.bound
    if old.known and new.known:
        lo, ln = len(old.const), len(new.const)  # type: ignore[arg-type]
        if lo == 0:
            return b if (b is None or ln == 0) else b + (b + 1) * ln
        if ln <= lo:
            return b
        return None if b is None else b + (b // lo) * (ln - lo)
    if b is None or new.bound is None:
        return None
    return b + (b + 1) * new.bound


def _b_base64(a: list[_AV]) -> int | None:
    b = a[0].bound
    return None if b is None else 4 * ((4 * b + 2) // 3)  # a character is at most 4 UTF-8 bytes


def _b_timestamp(a: list[_AV]) -> int | None:
    if a[0].known:
        try:
            return _parse_layout(a[0].const)[1]  # type: ignore[arg-type]
        except _EvalError:
            return 0
    return None


def _b_verb(v: _Verb, av: _AV) -> int | None:
    if av.known:
        try:
            return len(_apply_verb(v, av.const))
        except _EvalError:
            return 0
    b = av.bound
    if av.type == STR and v.verb != "d":
        if v.prec is not None:
            b = v.prec if b is None else min(b, v.prec)
    elif b is not None:
        b = max(b, v.prec or 0) + 1  # integer precision is a minimum digit count; +1 for a sign
    if b is None:
        return None
    return max(b, v.width or 0)


def _b_printf(a: list[_AV]) -> int | None:
    if not a[0].known:
        return None
    try:
        pieces, count = _parse_format(a[0].const)  # type: ignore[arg-type]
    except _EvalError:
        return 0
    if count != len(a) - 1:
        return 0
    total = 0
    args = iter(a[1:])
    for piece in pieces:
        n = len(piece) if type(piece) is str else _b_verb(piece, next(args))  # type: ignore[arg-type]
        if n is None:
            return None
        total += n
    return total


class _Func:
    __slots__ = ("name", "params", "variadic", "returns", "impl", "bound", "deterministic", "needs_time", "check")

    def __init__(
        self,
        name: str,
        params: tuple[str, ...],
        returns: str,
        impl: Callable[..., Any],
        bound: Callable[[list[_AV]], int | None],
        *,
        variadic: str | None = None,
        deterministic: bool = True,
        needs_time: bool = False,
        check: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.params = params
        self.variadic = variadic
        self.returns = returns
        self.impl = impl
        self.bound = bound
        self.deterministic = deterministic
        self.needs_time = needs_time
        self.check = check  # validates a constant first (integer) argument at compile time

    def arity_text(self) -> str:
        n = len(self.params)
        if self.variadic is not None:
            return f"at least {n} argument{'s' if n != 1 else ''}"
        return f"{n} argument{'s' if n != 1 else ''}"

    def param_type(self, i: int) -> str:
        return self.params[i] if i < len(self.params) else self.variadic  # type: ignore[return-value]


def _const_bound(n: int) -> Callable[[list[_AV]], int | None]:
    return lambda a: n


def _same_bound(a: list[_AV]) -> int | None:
    return a[-1].bound


_FUNCS: dict[str, _Func] = {
    f.name: f
    for f in (
        _Func("random", (INT,), STR, _random, _b_random, deterministic=False, check=_check_random_length),
        _Func("truncate", (INT, STR), STR, _truncate, _b_truncate, check=_check_truncate),
        _Func(
            "truncate_sha256",
            (INT, STR),
            STR,
            _truncate_sha256,
            lambda a: _b_truncate(a, 8),
            check=_check_truncate_sha256,
        ),
        _Func("uppercase", (STR,), STR, _uppercase, _same_bound),
        _Func("lowercase", (STR,), STR, _lowercase, _same_bound),
        _Func("replace", (STR, STR, STR), STR, _replace, _b_replace),
        _Func("sha256", (STR,), STR, _sha256, _const_bound(64)),
        _Func("base64", (STR,), STR, _base64, _b_base64),
        _Func("uuid", (), STR, _uuid, _const_bound(36), deterministic=False),
        _Func(
            "unix_time", (), STR, _unix_time, _const_bound(UNIX_TIME_MAX_DIGITS), deterministic=False, needs_time=True
        ),
        _Func(
            "unix_time_millis",
            (),
            STR,
            _unix_time_millis,
            _const_bound(UNIX_TIME_MILLIS_MAX_DIGITS),
            deterministic=False,
            needs_time=True,
        ),
        _Func("timestamp", (STR,), STR, _timestamp, _b_timestamp, deterministic=False, needs_time=True),
        _Func("printf", (STR,), STR, _printf, _b_printf, variadic=ANY),
        _Func("eq", (ANY, ANY), BOOL, _eq, _const_bound(5), variadic=ANY),
        _Func("ne", (ANY, ANY), BOOL, _ne, _const_bound(5)),
        _Func("lt", (ANY, ANY), BOOL, _lt, _const_bound(5)),
        _Func("le", (ANY, ANY), BOOL, _le, _const_bound(5)),
        _Func("gt", (ANY, ANY), BOOL, _gt, _const_bound(5)),
        _Func("ge", (ANY, ANY), BOOL, _ge, _const_bound(5)),
        _Func("not", (ANY,), BOOL, _not, _const_bound(5)),
        # and/or are evaluated lazily (short-circuit) by the compiler; impl unused.
        _Func("and", (ANY,), ANY, None, _same_bound, variadic=ANY),  # type: ignore[arg-type]
        _Func("or", (ANY,), ANY, None, _same_bound, variadic=ANY),  # type: ignore[arg-type]
    )
}

_KEYWORDS = {"if", "else", "end", "true", "false", "nil"}
_UNSUPPORTED_KEYWORDS = {"range", "with", "define", "template", "block", "break", "continue"}
_GO_BUILTINS = {"call", "html", "index", "slice", "js", "len", "print", "println", "urlquery"}

# ---------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------

_WS = " \t\r\n"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_NUMBER_TAIL_RE = re.compile(r"[A-Za-z0-9_.]")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_INT64_MAX = (1 << 63) - 1

T_STRING, T_INT, T_BOOL, T_FIELD, T_IDENT, T_LPAREN, T_RPAREN, T_PIPE = range(8)


class _Tok:
    __slots__ = ("kind", "value", "pos", "space_before")

    def __init__(self, kind: int, value: Any, pos: int, space_before: bool) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos
        self.space_before = space_before


def _describe(tok: _Tok, src: str) -> str:
    if tok.kind == T_STRING:
        return f"string {tok.value!r}"
    if tok.kind == T_INT:
        return f"number {tok.value}"
    if tok.kind == T_FIELD:
        return f"field .{tok.value}"
    if tok.kind == T_IDENT:
        return repr(tok.value)
    return repr(src[tok.pos])


class _Action:
    __slots__ = ("tokens", "pos", "end")

    def __init__(self, tokens: list[_Tok], pos: int, end: int) -> None:
        self.tokens = tokens
        self.pos = pos
        self.end = end


def _lex_string(src: str, p: int) -> tuple[str, int]:
    """Lex a Go interpreted string literal starting at the opening quote; return (value, end)."""
    buf: list[str] = []
    q = p + 1
    n = len(src)
    while True:
        if q >= n or src[q] == "\n":
            raise TemplateError("unterminated string literal: expected closing '\"'", src, p)
        ch = src[q]
        if ch == '"':
            return "".join(buf), q + 1
        if ch != "\\":
            buf.append(ch)
            q += 1
            continue
        e = src[q + 1] if q + 1 < n else ""
        if e in _SIMPLE_ESCAPES:
            buf.append(_SIMPLE_ESCAPES[e])
            q += 2
            continue
        digits = {"x": 2, "u": 4, "U": 8}.get(e)
        if digits is not None:
            hexpart = src[q + 2 : q + 2 + digits]
            if len(hexpart) != digits or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
                raise TemplateError(f"invalid escape \\{e}: expected {digits} hex digits", src, q)
            code = int(hexpart, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise TemplateError(f"escape \\{e}{hexpart} is not a valid Unicode code point", src, q)
            buf.append(chr(code))
            q += 2 + digits
            continue
        if e and e in "01234567":
            octal = src[q + 1 : q + 4]
            if len(octal) != 3 or any(c not in "01234567" for c in octal) or int(octal, 8) > 255:
                raise TemplateError("invalid octal escape: expected 3 octal digits (\\000-\\377)", src, q)
            buf.append(chr(int(octal, 8)))
            q += 4
            continue
        shown = e if e and e != "\n" else "end of line"
        raise TemplateError(f"unknown escape sequence \\{shown} in string literal", src, q)


def _lex_action(src: str, start: int, p: int) -> tuple[list[_Tok], int, bool]:
    """Lex the inside of an action from ``p``; return (tokens, position after '}}', right-trim)."""
    n = len(src)
    toks: list[_Tok] = []
    space = True
    while True:
        if p >= n:
            raise TemplateError("unclosed action: expected '}}' before end of template", src, start)
        c = src[p]
        if c == "}" and src.startswith("}}", p):
            return toks, p + 2, False
        if c in _WS:
            if src.startswith("-}}", p + 1):
                return toks, p + 4, True
            p += 1
            space = True
            continue
        if c == '"':
            value, q = _lex_string(src, p)
            toks.append(_Tok(T_STRING, value, p, space))
        elif c == "`":
            q = src.find("`", p + 1)
            if q < 0:
                raise TemplateError("unterminated raw string: expected closing '`'", src, p)
            toks.append(_Tok(T_STRING, src[p + 1 : q].replace("\r", ""), p, space))
            q += 1
        elif c in "()|":
            toks.append(_Tok({"(": T_LPAREN, ")": T_RPAREN, "|": T_PIPE}[c], c, p, space))
            q = p + 1
        elif c == ".":
            m = _IDENT_RE.match(src, p + 1)
            if m is None:
                raise TemplateError("bare '.' is not supported: expected a field name such as .DisplayName", src, p)
            q = m.end()
            if q < n and src[q] == ".":
                raise TemplateError(f"chained field access .{m.group()}.… is not supported", src, p)
            toks.append(_Tok(T_FIELD, m.group(), p, space))
        elif c.isdigit() or (c in "+-" and p + 1 < n and src[p + 1].isdigit()):
            m = _NUMBER_RE.match(src, p)
            assert m is not None
            q = m.end()
            if q < n and _NUMBER_TAIL_RE.match(src, q):
                raise TemplateError(
                    f"bad number syntax {src[p : q + 1]!r}: only integer constants are supported", src, p
                )
            literal = m.group()
            digits = literal.lstrip("+-")
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                raise TemplateError(f"bad number syntax {literal!r}: leading zeros are not allowed", src, p)
            number = int(literal, 0)
            if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
                raise TemplateError(f"integer constant {literal} overflows int64", src, p)
            toks.append(_Tok(T_INT, number, p, space))
        elif c.isalpha() or c == "_":
            m = _IDENT_RE.match(src, p)
            assert m is not None
            q = m.end()
            if q < n and src[q] == ".":
                raise TemplateError(f"field access on {m.group()!r} is not supported", src, p)
            word = m.group()
            if word in ("true", "false"):
                toks.append(_Tok(T_BOOL, word == "true", p, space))
            else:
                toks.append(_Tok(T_IDENT, word, p, space))
        elif c == "$":
            raise TemplateError("variables ($name) are not supported", src, p)
        elif c == "'":
            raise TemplateError("character constants are not supported: use a double-quoted string", src, p)
        elif c == "-":
            raise TemplateError("unexpected '-': a trim marker must be written ' -}}' (space before the dash)", src, p)
        else:
            raise TemplateError(f"unexpected character {c!r} in action", src, p)
        p = q
        space = False


def _scan(src: str) -> list[str | _Action]:
    """Split the template into literal text and lexed actions, applying trim markers and dropping comments."""
    items: list[str | _Action] = []
    n = len(src)
    i = 0
    trim_next = False
    while True:
        j = src.find("{{", i)
        text = src[i:] if j < 0 else src[i:j]
        if trim_next:
            text = text.lstrip(_WS)
        if j < 0:
            if text:
                items.append(text)
            return items
        k = j + 2
        if src.startswith("-", k) and k + 1 < n and src[k + 1] in _WS:
            text = text.rstrip(_WS)
            k += 2
        if text:
            items.append(text)
        if src.startswith("/*", k):
            end = src.find("*/", k + 2)
            if end < 0:
                raise TemplateError("unclosed comment: expected '*/'", src, j)
            p = end + 2
            if src.startswith("}}", p):
                i, trim_next = p + 2, False
            elif p < n and src[p] in _WS and src.startswith("-}}", p + 1):
                i, trim_next = p + 4, True
            else:
                raise TemplateError("comment must be followed immediately by '}}'", src, p)
            continue
        toks, i, trim_next = _lex_action(src, j, k)
        items.append(_Action(toks, j, i))


# ---------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------


class _Const:
    __slots__ = ("value", "pos")

    def __init__(self, value: object, pos: int) -> None:
        self.value = value
        self.pos = pos


class _Field:
    __slots__ = ("name", "pos")

    def __init__(self, name: str, pos: int) -> None:
        self.name = name
        self.pos = pos


class _Call:
    """A function call; ``args`` include the piped value (last) when ``piped`` is set."""

    __slots__ = ("func", "args", "pos", "piped")

    def __init__(self, func: _Func, args: list[Any], pos: int, piped: bool = False) -> None:
        self.func = func
        self.args = args
        self.pos = pos
        self.piped = piped


class _Pipe:
    """``cmds[0] | cmds[1] | ...``; every command after the first is a _Call whose last arg is the previous value."""

    __slots__ = ("cmds", "pos")

    def __init__(self, cmds: list[Any], pos: int) -> None:
        self.cmds = cmds
        self.pos = pos


class _Ident:
    __slots__ = ("func", "pos")

    def __init__(self, func: _Func, pos: int) -> None:
        self.func = func
        self.pos = pos


class _Output:
    __slots__ = ("pipe",)

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe


class _If:
    __slots__ = ("branches", "else_body", "pos")

    def __init__(self, pos: int) -> None:
        self.branches: list[tuple[_Pipe, list[Any]]] = []
        self.else_body: list[Any] | None = None
        self.pos = pos


_PIPED = object()  # placeholder for the piped value in a _Call's argument list


class _Parser:
    def __init__(self, src: str, toks: list[_Tok], start: int, end: int) -> None:
        self.src = src
        self.toks = toks
        self.i = 0
        self.start = start
        self.end = end

    def error(self, message: str, pos: int | None = None) -> TemplateError:
        return TemplateError(message, self.src, self.start if pos is None else pos)

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse_all(self, what: str) -> _Pipe:
        if not self.toks:
            raise self.error(f"missing {what}: expected a value or function call")
        pipe = self.parse_pipeline(1)
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {_describe(tok, self.src)}: expected '|' or '}}}}'", tok.pos)
        return pipe

    def parse_pipeline(self, depth: int, open_tok: _Tok | None = None) -> _Pipe:
        first_pos = self.toks[self.i].pos if self.i < len(self.toks) else self.end
        cmds: list[Any] = []
        while True:
            cmd = self.parse_command(depth, stage=len(cmds))
            cmds.append(cmd)
            tok = self.peek()
            if tok is None:
                if open_tok is not None:
                    raise self.error("unclosed '(': expected ')'", open_tok.pos)
                break
            if tok.kind == T_PIPE:
                self.i += 1
                continue
            if tok.kind == T_RPAREN:
                if open_tok is None:
                    raise self.error("unexpected ')' without matching '('", tok.pos)
                break
            raise self.error(f"unexpected {_describe(tok, self.src)}", tok.pos)  # pragma: no cover
        return _Pipe(cmds, first_pos)

    def parse_command(self, depth: int, stage: int) -> Any:
        operands: list[Any] = []
        start_tok = self.peek()
        while True:
            tok = self.peek()
            if tok is None or tok.kind in (T_PIPE, T_RPAREN):
                break
            if operands and not tok.space_before:
                raise self.error(f"unexpected {_describe(tok, self.src)}: expected a space between arguments", tok.pos)
            operands.append(self.parse_operand(depth))
        if not operands:
            where = self.peek().pos if self.peek() is not None else self.end - 2  # type: ignore[union-attr]
            if stage == 0:
                raise self.error("missing value: expected a value or function call", where)
            raise self.error("missing function after '|'", where)
        first = operands[0]
        pos = start_tok.pos  # type: ignore[union-attr]
        if isinstance(first, _Ident):
            return _Call(first.func, [*operands[1:]] + ([_PIPED] if stage else []), pos, piped=bool(stage))
        if stage:
            raise self.error(f"cannot pipe into {self._what(first)}: only a function can follow '|'", pos)
        if len(operands) > 1:
            raise self.error(f"cannot give arguments to {self._what(first)}: it is not a function", pos)
        return first

    @staticmethod
    def _what(node: Any) -> str:
        if isinstance(node, _Field):
            return f"field .{node.name}"
        if isinstance(node, _Const):
            return f"constant {_to_text(node.value)!r}"
        return "a parenthesised pipeline"

    def parse_operand(self, depth: int) -> Any:
        tok = self.toks[self.i]
        self.i += 1
        kind = tok.kind
        if kind in (T_STRING, T_INT, T_BOOL):
            return _Const(tok.value, tok.pos)
        if kind == T_FIELD:
            return _Field(tok.value, tok.pos)
        if kind == T_LPAREN:
            if depth >= MAX_NESTING_DEPTH:
                raise self.error(f"parentheses nested deeper than {MAX_NESTING_DEPTH} levels", tok.pos)
            nxt = self.peek()
            if nxt is not None and nxt.kind == T_RPAREN:
                raise self.error("empty parentheses: expected a pipeline inside '( )'", tok.pos)
            pipe = self.parse_pipeline(depth + 1, tok)
            self.i += 1  # the ')'
            return pipe
        if kind == T_IDENT:
            name = tok.value
            if name == "nil":
                raise self.error("nil is not supported", tok.pos)
            if name in _KEYWORDS:
                raise self.error(f"unexpected keyword {name!r}: '{name}' must start an action", tok.pos)
            func = _FUNCS.get(name)
            if func is None:
                if name in _UNSUPPORTED_KEYWORDS:
                    raise self.error(f"{{{{{name}}}}} is not supported", tok.pos)
                extra = " (Go built-in not supported here)" if name in _GO_BUILTINS else ""
                raise self.error(f"unknown function {name!r}{extra}; available: {', '.join(sorted(_FUNCS))}", tok.pos)
            return _Ident(func, tok.pos)
        raise self.error(f"unexpected {_describe(tok, self.src)}: expected a value", tok.pos)


def _parse(src: str) -> list[Any]:
    root: list[Any] = []
    body = root
    # frames: (if node, parent body, saw plain else)
    stack: list[tuple[_If, list[Any], bool]] = []
    for item in _scan(src):
        if isinstance(item, str):
            body.append(item)
            continue
        toks = item.tokens
        head = toks[0].value if toks and toks[0].kind == T_IDENT else None
        if head == "if":
            if len(stack) >= MAX_NESTING_DEPTH:
                raise TemplateError(f"{{{{if}}}} nested deeper than {MAX_NESTING_DEPTH} levels", src, item.pos)
            node = _If(item.pos)
            node.branches.append((_Parser(src, toks[1:], item.pos, item.end).parse_all("condition for {{if}}"), []))
            body.append(node)
            stack.append((node, body, False))
            body = node.branches[-1][1]
        elif head == "else":
            if not stack:
                raise TemplateError("unexpected {{else}} outside of {{if}}", src, item.pos)
            node, parent, saw_else = stack[-1]
            if saw_else:
                raise TemplateError("unexpected {{else}} after {{else}}: expected {{end}}", src, item.pos)
            if len(toks) == 1:
                node.else_body = []
                stack[-1] = (node, parent, True)
                body = node.else_body
            elif toks[1].kind == T_IDENT and toks[1].value == "if":
                cond = _Parser(src, toks[2:], item.pos, item.end).parse_all("condition for {{else if}}")
                node.branches.append((cond, []))
                body = node.branches[-1][1]
            else:
                raise TemplateError("expected '}}' or 'if' after 'else'", src, toks[1].pos)
        elif head == "end":
            if len(toks) > 1:
                raise TemplateError("unexpected tokens after 'end': expected '}}'", src, toks[1].pos)
            if not stack:
                raise TemplateError("unexpected {{end}} without a matching {{if}}", src, item.pos)
            _node, body, _saw = stack.pop()
        elif head in _UNSUPPORTED_KEYWORDS:
            raise TemplateError(f"{{{{{head}}}}} is not supported (only if/else/end)", src, item.pos)
        else:
            body.append(_Output(_Parser(src, toks, item.pos, item.end).parse_all("pipeline")))
    if stack:
        raise TemplateError("unterminated {{if}}: expected {{end}}", src, stack[-1][0].pos)
    return root


# ---------------------------------------------------------------------------
# Type checking and compilation to closures
# ---------------------------------------------------------------------------

_Fn = Callable[[Mapping[str, str], int], Any]


class _Compiler:
    def __init__(self, src: str) -> None:
        self.src = src
        self.fields: set[str] = set()

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, self.src, pos)

    # -- expressions: return (closure, static type) --

    def expr(self, node: Any, piped: tuple[_Fn, str] | None = None) -> tuple[_Fn, str]:
        if isinstance(node, _Const):
            value = node.value
            return (lambda c, t: value), _kind(value)
        if isinstance(node, _Field):
            return self.field(node), STR
        if isinstance(node, _Ident):
            return self.call(_Call(node.func, [], node.pos))
        if isinstance(node, _Pipe):
            return self.pipe(node)
        assert isinstance(node, _Call)
        return self.call(node, piped)

    def field(self, node: _Field) -> _Fn:
        name = node.name
        self.fields.add(name)
        src, pos = self.src, node.pos

        def get(c: Mapping[str, str], t: int) -> str:
            try:
                value = c[name]
            except KeyError:
                raise TemplateError(f"missing field .{name}: not provided in the template data", src, pos) from None
            if type(value) is not str:
                raise TemplateError(f"field .{name} must be a string, got {type(value).__name__}", src, pos)
            return value

        return get

    def pipe(self, node: _Pipe) -> tuple[_Fn, str]:
        fn, typ = self.expr(node.cmds[0])
        for cmd in node.cmds[1:]:
            fn, typ = self.call(cmd, (fn, typ))
        return fn, typ

    def call(self, node: _Call, piped: tuple[_Fn, str] | None = None) -> tuple[_Fn, str]:
        func = node.func
        name = func.name
        compiled: list[tuple[_Fn, str]] = []
        for arg in node.args:
            if arg is _PIPED:
                assert piped is not None
                compiled.append(piped)
            else:
                compiled.append(self.expr(arg))
        n, need = len(compiled), len(func.params)
        if n < need or (func.variadic is None and n > need):
            how = " (including the piped value)" if node.piped else ""
            raise self.error(
                f"wrong number of arguments for {name}: expected {func.arity_text()}, got {n}{how}", node.pos
            )
        # Static type checks, and runtime checks where the static type is unknown.
        fns: list[_Fn] = []
        for i, (fn, typ) in enumerate(compiled):
            want = func.param_type(i)
            arg_pos = node.pos if node.args[i] is _PIPED else node.args[i].pos
            if want != ANY and typ != ANY and typ != want:
                raise self.error(f"wrong type for argument {i + 1} of {name}: expected {want}, got {typ}", arg_pos)
            if want != ANY and typ == ANY:
                fn = self.checked(fn, want, name, i, arg_pos)
            fns.append(fn)
        self.static_checks(node, compiled)
        src, pos = self.src, node.pos

        if name in ("and", "or"):
            want_truth = name == "or"

            def logic(c: Mapping[str, str], t: int) -> Any:
                value: Any = None
                for f in fns:
                    value = f(c, t)
                    if bool(value) is want_truth:
                        return value
                return value

            types = {typ for _, typ in compiled}
            return logic, types.pop() if len(types) == 1 else ANY

        impl = func.impl
        needs_time = func.needs_time

        def fail(exc: _EvalError) -> TemplateError:
            return TemplateError(f"{name}: {exc}", src, pos)

        run: _Fn
        if needs_time:

            def run(c: Mapping[str, str], t: int) -> Any:
                try:
                    return impl(t, *[f(c, t) for f in fns])
                except _EvalError as exc:
                    raise fail(exc) from None

        elif len(fns) == 1:
            (a0,) = fns

            def run(c: Mapping[str, str], t: int) -> Any:
                try:
                    return impl(a0(c, t))
                except _EvalError as exc:
                    raise fail(exc) from None

        elif len(fns) == 2:
            a0, a1 = fns

            def run(c: Mapping[str, str], t: int) -> Any:
                try:
                    return impl(a0(c, t), a1(c, t))
                except _EvalError as exc:
                    raise fail(exc) from None

        else:

            def run(c: Mapping[str, str], t: int) -> Any:
                try:
                    return impl(*[f(c, t) for f in fns])
                except _EvalError as exc:
                    raise fail(exc) from None

        return run, func.returns

    def checked(self, fn: _Fn, want: str, name: str, i: int, pos: int) -> _Fn:
        src = self.src

        def check(c: Mapping[str, str], t: int) -> Any:
            value = fn(c, t)
            if _kind(value) != want:
                raise TemplateError(
                    f"wrong type for argument {i + 1} of {name}: expected {want}, got {_kind(value)}", src, pos
                )
            return value

        return check

    def static_checks(self, node: _Call, compiled: list[tuple[_Fn, str]]) -> None:
        """Reject calls that would always fail, using the constant arguments."""
        func = node.func
        consts = [a.value if isinstance(a, _Const) else _UNKNOWN for a in node.args]
        try:
            if func.check is not None and type(consts[0]) is int:
                func.check(consts[0])  # type: ignore[arg-type]
            if func.name == "printf" and type(consts[0]) is str:
                pieces, count = _parse_format(consts[0])  # type: ignore[arg-type]
                if count != len(compiled) - 1:
                    how = " (including the piped value)" if node.piped else ""
                    raise _EvalError(
                        f"format {consts[0]!r} has {count} verb(s) but {len(compiled) - 1} argument(s) were given{how}"
                    )
                verbs = [p for p in pieces if isinstance(p, _Verb)]
                for k, (verb, (_fn, typ)) in enumerate(zip(verbs, compiled[1:], strict=True)):
                    if verb.verb == "d" and typ not in (INT, ANY):
                        raise _EvalError(f"%d needs an integer argument, but argument {k + 2} is a {typ}")
            if func.name in ("eq", "ne", "lt", "le", "gt", "ge"):
                types = [typ for _fn, typ in compiled]
                if ANY not in types and len(set(types)) > 1:
                    raise _EvalError(f"incompatible types for comparison: {', '.join(types)}")
                if func.name not in ("eq", "ne") and BOOL in types:
                    raise _EvalError("invalid type for comparison: bool")
        except _EvalError as exc:
            raise self.error(f"{func.name}: {exc}", node.pos) from None

    # -- bodies --

    @staticmethod
    def text(text: str) -> _Fn:
        return lambda c, t: text

    def body(self, nodes: list[Any]) -> _Fn:
        parts: list[_Fn] = []
        for node in nodes:
            if isinstance(node, str):
                parts.append(self.text(node))
            elif isinstance(node, _Output):
                fn, typ = self.pipe(node.pipe)
                if typ != STR:
                    fn = (lambda f: lambda c, t: _to_text(f(c, t)))(fn)
                parts.append(fn)
            else:
                parts.append(self.if_node(node))
        if not parts:
            return lambda c, t: ""
        if len(parts) == 1:
            return parts[0]
        return lambda c, t: "".join([p(c, t) for p in parts])

    def if_node(self, node: _If) -> _Fn:
        branches = [(self.pipe(cond)[0], self.body(body)) for cond, body in node.branches]
        otherwise = self.body(node.else_body) if node.else_body is not None else None

        def run_if(c: Mapping[str, str], t: int) -> str:
            for cond, then in branches:
                if cond(c, t):
                    return then(c, t)
            return otherwise(c, t) if otherwise is not None else ""

        return run_if


# ---------------------------------------------------------------------------
# Length analysis
# ---------------------------------------------------------------------------


class _Analyzer:
    def __init__(self, field_bounds: Mapping[str, int | None], fixed: Mapping[str, str]) -> None:
        self.bounds = field_bounds
        self.fixed = fixed

    def expr(self, node: Any, piped: _AV | None = None) -> _AV:
        if isinstance(node, _Const):
            return _AV(len(_to_text(node.value)), node.value, _kind(node.value), known=True)
        if isinstance(node, _Field):
            if node.name in self.fixed:
                value = self.fixed[node.name]
                return _AV(len(value), value, STR, known=True)
            bound = self.bounds.get(node.name)
            return _AV(None if bound is None else max(0, bound))
        if isinstance(node, _Ident):
            return self.call(_Call(node.func, [], node.pos))
        if isinstance(node, _Pipe):
            av = self.expr(node.cmds[0])
            for cmd in node.cmds[1:]:
                av = self.call(cmd, av)
            return av
        return self.call(node, piped)

    def call(self, node: _Call, piped: _AV | None = None) -> _AV:
        func = node.func
        args: list[_AV] = []
        for a in node.args:
            if a is _PIPED:
                assert piped is not None
                args.append(piped)
            else:
                args.append(self.expr(a))
        if func.name in ("and", "or"):
            want_truth = func.name == "or"
            candidates: list[_AV] = []
            for av in args:
                candidates.append(av)
                if av.known and bool(av.const) is want_truth:
                    break
            if len(candidates) == 1 or all(av.known for av in candidates):
                return candidates[-1]
            bounds = [av.bound for av in candidates]
            types = {av.type for av in candidates}
            return _AV(
                None if None in bounds else max(bounds),  # type: ignore[type-var]
                typ=types.pop() if len(types) == 1 else ANY,
            )
        if func.deterministic and all(av.known for av in args):
            try:
                value = func.impl(*[av.const for av in args])
            except _EvalError:
                return _AV(0, typ=func.returns)  # always fails: contributes no output
            return _AV(len(_to_text(value)), value, _kind(value), known=True)
        return _AV(func.bound(args), typ=func.returns)

    def body(self, nodes: list[Any]) -> int | None:
        total = 0
        for node in nodes:
            if isinstance(node, str):
                n: int | None = len(node)
            elif isinstance(node, _Output):
                n = self.expr(node.pipe).bound
            else:
                n = self.if_node(node)
            if n is None:
                return None
            total += n
        return total

    def if_node(self, node: _If) -> int | None:
        best = 0
        for cond, body in node.branches:
            av = self.expr(cond)
            if av.known and not av.const:
                continue  # never taken
            n = self.body(body)
            if n is None:
                return None
            best = max(best, n)
            if av.known:
                return best  # always taken: later branches are unreachable
        if node.else_body is not None:
            n = self.body(node.else_body)
            if n is None:
                return None
            best = max(best, n)
        return best


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


class Template:
    """A compiled template.  Create with :func:`compile_template`; immutable and thread-safe."""

    __slots__ = ("source", "fields", "_nodes", "_fn")

    source: str
    fields: frozenset[str]  # names of the fields the template references (``.Name`` -> ``"Name"``)

    def __init__(self, source: str, nodes: list[Any], fn: _Fn, fields: frozenset[str]) -> None:
        self.source = source
        self.fields = fields
        self._nodes = nodes
        self._fn = fn

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: Mapping[str, str], now: float | None = None) -> str:
        """Render with ``context`` supplying the ``.Field`` values (strings).

        ``now`` (seconds since the epoch) fixes the clock for ``unix_time``,
        ``unix_time_millis`` and ``timestamp``; by default the current time is
        read once per call.  Raises :class:`TemplateError` when a field is
        missing or a function fails.
        """
        if now is None:
            t = time.time_ns() // 1000
        else:
            if not _MIN_NOW <= now <= _MAX_NOW:  # also rejects NaN
                raise TemplateError(f"now must be between {_MIN_NOW} and {_MAX_NOW} seconds, got {now!r}")
            t = round(now * 1_000_000)
        return self._fn(context, t)

    def max_length(
        self, field_bounds: Mapping[str, int | None] | None = None, *, fixed: Mapping[str, str] | None = None
    ) -> int | None:
        """An upper bound on the length of any successful :meth:`render`, or None if unbounded.

        ``field_bounds`` maps field names to the maximum length of their values
        (None, or a missing entry, means unbounded).  ``fixed`` maps field names
        to values known in advance: they are treated as constants, so
        conditions such as ``eq .Type "STS"`` are decided and only reachable
        branches are counted.  Lengths are in characters; the clock functions
        are assumed to render the current era (``unix_time`` <= 11 digits).
        """
        analyzer = _Analyzer(field_bounds or {}, fixed or {})
        return analyzer.body(self._nodes)

    def max_length_when(self, field_bounds: Mapping[str, int | None] | None, fixed: Mapping[str, str]) -> int | None:
        """Shorthand for ``max_length(field_bounds, fixed=fixed)``."""
        return self.max_length(field_bounds, fixed=fixed)


def compile_template(text: str) -> Template:
    """Parse and type-check ``text``; raise :class:`TemplateError` with a position on any problem."""
    if not isinstance(text, str):
        raise TemplateError(f"template must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template is too long: {len(text)} characters (maximum {MAX_TEMPLATE_LENGTH})")
    nodes = _parse(text)
    compiler = _Compiler(text)
    fn = compiler.body(nodes)
    return Template(text, nodes, fn, frozenset(compiler.fields))
