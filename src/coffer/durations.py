"""Durations the way Vault spells them, counted in whole seconds.

Vault takes a TTL either as a number of seconds (``3600`` or ``"3600"``) or as
a Go duration string (``"30m"``, ``"1h30m"``, ``"1.5h"``), plus a ``d`` unit
for days that Go itself does not have. Everything here rounds *down* to a
whole second, so ``"500ms"`` is ``0``.

This module is imported from the HTTP field layer, the config loader and the
engines alike, so it must not import anything from coffer (or outside the
standard library).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["DEFAULT_LEASE_TTL", "parse_duration", "format_duration"]

#: Lease and token TTL (and their maximum) when the configuration sets none: Vault's 32 days.
DEFAULT_LEASE_TTL = 768 * 3600

_HINT = "use seconds (3600) or a duration such as 30m, 1h, 1h30m or 2d"

# Seconds per unit. Sub-second units only matter when combined ("1s500ms");
# on their own they round down to zero.
_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "\u00b5s": Fraction(1, 1_000_000),  # micro sign
    "\u03bcs": Fraction(1, 1_000_000),  # greek mu, which Go also accepts
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# Longer units first so "ms" is not read as "m" followed by a stray "s".
_UNIT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:{_UNIT}))+")
_PLAIN = re.compile(_NUMBER)
# The common spellings ("3600", "1h", "1h30m", "768h"): whole numbers of s, m, h or d, summed as ints; every
# other spelling (fractions, sub-second units, digits beyond ASCII) takes the exact path below.
_WHOLE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WHOLE_PART = re.compile(r"([0-9]+)([smhd])")
_WHOLE_ONLY = re.compile(r"(?:[0-9]+[smhd])+")
# Longer input is never a sensible TTL, and huge digit strings are slow to convert.
_MAX_LENGTH = 64


def _show(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _invalid(value: object, why: str = "") -> ValueError:
    reason = f"{why}; " if why else ""
    return ValueError(f"invalid duration {_show(value)}: {reason}{_HINT}")


def _from_string(original: str) -> int:
    text = original.strip()
    if len(text) > _MAX_LENGTH:
        raise _invalid(original[:_MAX_LENGTH] + "...", "too long")
    negative = text.startswith("-")
    body = text[1:] if negative else text
    if body.isascii() and body.isdigit():
        total: int | Fraction = int(body)
    elif _WHOLE_ONLY.fullmatch(body):
        total = sum(int(num) * _WHOLE_UNITS[unit] for num, unit in _WHOLE_PART.findall(body))
    else:
        total = _exact(original, body)
    if negative and total != 0:
        raise _invalid(original, "a duration cannot be negative")
    return math.floor(total)


def _exact(original: str, body: str) -> Fraction:
    """``body`` (no sign) in seconds, as an exact fraction: any number and unit Go's durations take."""
    if _PLAIN.fullmatch(body):
        return Fraction(body)
    if _WHOLE.fullmatch(body):
        return sum((Fraction(num) * _UNITS[unit] for num, unit in _PART.findall(body)), Fraction(0))
    raise _invalid(original)


def parse_duration(value: object) -> int:
    """Whole seconds in ``value``; ``ValueError`` naming the value otherwise.

    Accepts a non-negative int (or finite float) of seconds, a numeric
    string (``"3600"``), or a duration string made of number+unit pieces
    with units ``ns``, ``us``, ``ms``, ``s``, ``m``, ``h`` and ``d``
    (``"90s"``, ``"1h30m"``, ``"1.5h"``, ``"2d"``). Booleans, ``None``,
    empty strings, negative values and anything else are refused.
    """
    if isinstance(value, bool):
        raise _invalid(value)
    if isinstance(value, int):
        if value < 0:
            raise _invalid(value, "a duration cannot be negative")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(value)
        if value < 0:
            raise _invalid(value, "a duration cannot be negative")
        return math.floor(value)
    if isinstance(value, str):
        return _from_string(value)
    raise _invalid(value)


def format_duration(seconds: int) -> str:
    """Go's ``time.Duration`` spelling of whole seconds: ``"1h0m0s"``, ``"90s"`` -> ``"1m30s"``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(f"format_duration needs an int number of seconds, got {seconds!r}")
    sign = "-" if seconds < 0 else ""
    rest = abs(seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"
