"""Go's ``printf`` for the verbs templates support: ``%s %v %d %%``.

Flags ``- + space 0``, width and precision work as in Go.  Where Go would print
``%!d(...)``, ``%!s(MISSING)`` or ``%!(EXTRA ...)`` this raises instead, and
``%s``/``%v`` also accept integers and booleans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import EvalError
from .limits import MAX_FORMAT_WIDTH, MAX_VALUE_LENGTH
from .values import Value, check_grow, kind, to_text


@dataclass(frozen=True, slots=True)
class Verb:
    """One ``%...`` directive of a format."""

    flags: str
    width: int | None
    prec: int | None
    verb: str  # "s", "v" or "d"


_VERB_RE = re.compile(r"%([-+ 0#]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)


@lru_cache(maxsize=256)
def parse_format(fmt: str) -> tuple[tuple[str | Verb, ...], int]:
    """Parse a format into literal strings and verbs; also return the verb count."""
    pieces: list[str | Verb] = []
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
        assert m is not None  # the pattern matches any "%"
        flags, width, prec, verb = m.groups()
        i = m.end()
        if verb == "%":
            lit.append("%")
            continue
        if verb == "":
            raise EvalError("format ends with a lone '%'")
        if verb in "[*":
            raise EvalError("explicit argument indexes and '*' widths are not supported")
        if verb not in "sdv":
            raise EvalError(f"unsupported verb %{verb} (supported: %s %v %d %%)")
        if "#" in flags:
            raise EvalError("the '#' flag is not supported")
        w = int(width) if width else None
        p = (int(prec) if prec else 0) if prec is not None else None
        if (w or 0) > MAX_FORMAT_WIDTH or (p or 0) > MAX_FORMAT_WIDTH:
            raise EvalError(f"width and precision must be <= {MAX_FORMAT_WIDTH}")
        if lit:
            pieces.append("".join(lit))
            lit = []
        pieces.append(Verb(flags, w, p, verb))
        count += 1
    text = "".join(lit)
    if text:
        pieces.append(text)
    return tuple(pieces), count


def _pad(text: str, v: Verb) -> str:
    if v.width is not None and len(text) < v.width:
        return text.ljust(v.width) if "-" in v.flags else text.rjust(v.width)
    return text


def _format_int(n: int, v: Verb) -> str:
    digits = str(abs(n))
    if v.prec is not None:
        digits = "" if (v.prec == 0 and n == 0) else digits.zfill(v.prec)
    sign = "-" if n < 0 else "+" if "+" in v.flags else " " if " " in v.flags else ""
    if v.width is not None and v.prec is None and "0" in v.flags and "-" not in v.flags:
        digits = digits.zfill(v.width - len(sign))
    return _pad(sign + digits, v)


def apply_verb(v: Verb, arg: Value) -> str:
    """Format one argument with one verb."""
    if type(arg) is int:
        return _format_int(arg, v)
    if v.verb == "d":
        raise EvalError(f"%d needs an integer argument, got {kind(arg)} {to_text(arg)!r}")
    text = to_text(arg)
    if v.prec is not None:
        text = text[: v.prec]
    return _pad(text, v)


def printf(fmt: str, *args: Value) -> str:
    pieces, count = parse_format(fmt)
    if count != len(args):
        raise EvalError(f"format {fmt!r} has {count} verb(s) but {len(args)} argument(s) were given")
    out = []
    it = iter(args)
    for piece in pieces:
        out.append(piece if isinstance(piece, str) else apply_verb(piece, next(it)))
    result = "".join(out)
    if len(result) > MAX_VALUE_LENGTH:
        check_grow(result, len(fmt) + sum(len(to_text(a)) for a in args))
    return result
