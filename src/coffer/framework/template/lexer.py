"""Splitting template text into literal text and the tokens of each ``{{ action }}``.

Trim markers (``{{-`` and ``-}}``) are applied and comments dropped here, so
the parser sees only text and token lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import TemplateError
from .values import Value

_WS = " \t\r\n"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_NUMBER_TAIL_RE = re.compile(r"[A-Za-z0-9_.]")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_INT64_MAX = (1 << 63) - 1

# Token kinds.
T_STRING, T_INT, T_BOOL, T_FIELD, T_IDENT, T_LPAREN, T_RPAREN, T_PIPE = range(8)
_PUNCTUATION = {"(": T_LPAREN, ")": T_RPAREN, "|": T_PIPE}


@dataclass(slots=True)
class Tok:
    kind: int
    value: Value  # the constant; the name of a field or identifier; the character of punctuation
    pos: int
    space_before: bool

    @property
    def name(self) -> str:
        """The name of a field or identifier token."""
        assert type(self.value) is str
        return self.value


@dataclass(slots=True)
class Action:
    """The tokens of one ``{{ ... }}``; ``pos`` is where it starts and ``end`` just after its ``}}``."""

    tokens: list[Tok]
    pos: int
    end: int


def describe(tok: Tok, src: str) -> str:
    """A token as error messages show it."""
    if tok.kind == T_STRING:
        return f"string {tok.value!r}"
    if tok.kind == T_INT:
        return f"number {tok.value}"
    if tok.kind == T_FIELD:
        return f"field .{tok.value}"
    if tok.kind == T_IDENT:
        return repr(tok.value)
    return repr(src[tok.pos])


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
        digits = _HEX_ESCAPE_DIGITS.get(e)
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


def _lex_number(src: str, p: int) -> tuple[int, int]:
    """Lex an integer constant starting at ``p``; return (value, end)."""
    m = _NUMBER_RE.match(src, p)
    assert m is not None  # the caller saw a digit, or a sign and a digit
    q = m.end()
    if q < len(src) and _NUMBER_TAIL_RE.match(src, q):
        raise TemplateError(f"bad number syntax {src[p : q + 1]!r}: only integer constants are supported", src, p)
    literal = m.group()
    digits = literal.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        raise TemplateError(f"bad number syntax {literal!r}: leading zeros are not allowed", src, p)
    number = int(literal, 0)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise TemplateError(f"integer constant {literal} overflows int64", src, p)
    return number, q


def _lex_action(src: str, start: int, p: int) -> tuple[list[Tok], int, bool]:
    """Lex the inside of an action from ``p``; return (tokens, position after '}}', right-trim)."""
    n = len(src)
    toks: list[Tok] = []
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
            toks.append(Tok(T_STRING, value, p, space))
        elif c == "`":
            q = src.find("`", p + 1)
            if q < 0:
                raise TemplateError("unterminated raw string: expected closing '`'", src, p)
            toks.append(Tok(T_STRING, src[p + 1 : q].replace("\r", ""), p, space))
            q += 1
        elif c in _PUNCTUATION:
            toks.append(Tok(_PUNCTUATION[c], c, p, space))
            q = p + 1
        elif c == ".":
            m = _IDENT_RE.match(src, p + 1)
            if m is None:
                raise TemplateError("bare '.' is not supported: expected a field name such as .DisplayName", src, p)
            q = m.end()
            if q < n and src[q] == ".":
                raise TemplateError(f"chained field access .{m.group()}.… is not supported", src, p)
            toks.append(Tok(T_FIELD, m.group(), p, space))
        elif c.isdigit() or (c in "+-" and p + 1 < n and src[p + 1].isdigit()):
            number, q = _lex_number(src, p)
            toks.append(Tok(T_INT, number, p, space))
        elif c.isalpha() or c == "_":
            m = _IDENT_RE.match(src, p)
            assert m is not None  # the pattern matches any letter or "_"
            q = m.end()
            if q < n and src[q] == ".":
                raise TemplateError(f"field access on {m.group()!r} is not supported", src, p)
            word = m.group()
            if word in ("true", "false"):
                toks.append(Tok(T_BOOL, word == "true", p, space))
            else:
                toks.append(Tok(T_IDENT, word, p, space))
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


def scan(src: str) -> list[str | Action]:
    """Split the template into literal text and lexed actions, applying trim markers and dropping comments."""
    items: list[str | Action] = []
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
        items.append(Action(toks, j, i))
