"""HCL (or JSON) text read into Python values, for configuration files and policies alike.

:func:`loads` is the one door to pyhcl. What it adds to ``hcl.loads``:

* **Nothing is merged away.** pyhcl folds a key written twice into one value
  (the last one, or a key-by-key blend of two blocks), so a repeated
  ``path "x" { }`` could silently lose its ``deny``. Here a key given more than
  once in one object maps to a :class:`Repeated` list of every value, in the
  order written; JSON input is read the same way.
* **Lines of keys.** Every object comes back as an :class:`Object` (a dict)
  whose ``lines`` say on which line each key was written, so callers can say
  where a setting is wrong. JSON input has no such lines.
* **One error type.** Whatever pyhcl trips over becomes an :class:`HclError`
  with a 1-based line and column and a reason in words; text that ends inside
  a string, comment or bracket also says where that was opened.

This module is a leaf: it imports only the standard library and pyhcl, so the
core, the configuration loader and the framework may all use it.
"""

from __future__ import annotations

import bisect
import json
import threading
from typing import Any

from hcl.lexer import Lexer as _PyhclLexer
from hcl.parser import HclParser as _PyhclParser

__all__ = ["HclError", "Object", "Repeated", "loads"]


class HclError(ValueError):
    """Text that is not valid HCL or JSON.

    ``str(err)`` reads ``line 3, column 9: unexpected EQUAL "="; ...`` (the
    column is left out when unknown). ``line`` and ``column`` are 1-based, or
    None when unknown; ``reason`` is the message without the position.

    When the text ends inside something never closed (a string, comment,
    heredoc or bracket), the error is placed at the end of the text and
    ``opening`` holds the same problem told from where that thing was opened,
    for callers that would rather point there.
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        column: int | None = None,
        *,
        opening: HclError | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.opening = opening
        where = ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        super().__init__(where + reason)


class Repeated(list[Any]):
    """Every value of a key that one object gives more than once, in the order written."""


class Object(dict[Any, Any]):
    """A parsed object or block body.

    ``lines[key]`` lists the 1-based line of each time ``key`` was written, in
    order (so it lines up with a :class:`Repeated` value). It is empty for JSON.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[str, list[int]] = {}

    def line_of(self, key: str) -> int | None:
        """The first line ``key`` was written on, or None when unknown."""
        lines = self.lines.get(key)
        return min(lines) if lines else None


def loads(text: str) -> Any:
    """Parse ``text``: JSON when it starts with ``{``, HCL otherwise.

    Returns what the document holds (an :class:`Object` for any object),
    raises :class:`HclError` for anything that cannot be read.
    """
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("{"):
        return _loads_json(text)
    if not text.strip():
        return Object()
    return _loads_hcl(text)


# --------------------------------------------------------------------------
# Positions


class _Lines:
    """Turns character offsets of one text into 1-based (line, column)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        at = text.find("\n")
        while at != -1:
            self.starts.append(at + 1)
            at = text.find("\n", at + 1)

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, max(0, offset))

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = self.line(offset)
        return line, offset - self.starts[line - 1] + 1

    def end_line(self) -> int:
        """The line the text's last visible character is on."""
        body = self.text.rstrip()
        return self.line(len(body) - 1) if body else 1


def _never_closed(lines: _Lines, offset: int, what: str) -> HclError:
    line, column = lines.position(offset)
    opening = HclError(f"unexpected end of file: this {what} is never closed", line, column)
    return HclError(
        f"unexpected end of file: the {what} at line {line}, column {column} is never closed",
        lines.end_line(),
        opening=opening,
    )


# --------------------------------------------------------------------------
# JSON


def _json_object(pairs: list[tuple[str, Any]]) -> Object:
    obj = Object()
    for key, value in pairs:
        _add(obj, key, value)
    return obj


def _add(obj: Object, key: Any, value: Any, line: int | None = None) -> None:
    if key in obj:
        previous = obj[key]
        if isinstance(previous, Repeated):
            previous.append(value)
        else:
            obj[key] = Repeated([previous, value])
    else:
        obj[key] = value
    if line is not None:
        obj.lines.setdefault(key, []).append(line)


def _loads_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise HclError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise HclError("the JSON is nested too deeply") from None


# --------------------------------------------------------------------------
# HCL: pyhcl's grammar, with a lexer that remembers where things are


class _Text(str):
    """A name or string the lexer read, knowing the offset it starts at."""

    offset: int


_OPENERS = {"LEFTBRACE": '"{"', "LEFTBRACKET": '"["', "LEFTPAREN": '"("'}
_CLOSERS = frozenset({"RIGHTBRACE", "RIGHTBRACKET", "RIGHTPAREN"})


class _Lexer:
    """pyhcl's lexer (``lex``, a fresh clone of ply's lexer), plus: where each token
    starts and ends, the brackets still open, and errors told from the lexer's
    state rather than from its messages."""

    def __init__(self, lex: Any, lines: _Lines) -> None:
        self.lex = lex
        self.lines = lines
        self.open: list[Any] = []
        self.last: Any = None

    def input(self, text: str) -> None:
        self.lex.input(text)

    def token(self) -> Any:
        lex = self.lex
        try:
            tok = lex.token()
        except Exception:  # pyhcl's lexer raises ValueError (and IndexError on a lone "/")
            raise self._error() from None
        if tok is None:
            return None
        tok.start, tok.end = tok.lexpos, lex.lexpos
        if tok.type == "STRING":
            # A quoted string's lexpos is its closing quote; a heredoc's, its last line.
            # The later of the last quote and the last heredoc opened is where this one starts.
            quoted = getattr(lex, "abs_start", 0) - 1
            heredoc = self.lines.text.rfind("<<", 0, lex.here_start) if hasattr(lex, "here_start") else -1
            tok.start = max([s for s in (quoted, heredoc) if 0 <= s <= tok.lexpos], default=tok.lexpos)
        if tok.type in ("STRING", "IDENTIFIER"):
            value = _Text(tok.value)
            value.offset = tok.start
            tok.value = value
        if tok.type in _OPENERS:
            self.open.append(tok)
        elif tok.type in _CLOSERS and self.open:
            self.open.pop()
        self.last = tok
        return tok

    def _error(self) -> HclError:
        lex, lines = self.lex, self.lines
        text, pos = lines.text, lex.lexpos
        if lex.lexstate in ("string", "stringdollar"):
            return _never_closed(lines, lex.abs_start - 1, "string")
        if lex.lexstate in ("heredoc", "tabbedheredoc"):
            return _never_closed(lines, text.rfind("<<", 0, lex.here_start), f"heredoc <<{lex.here_identifier}")
        # ("/" and "*" are tokens, so a stray "/*" or "*/" reaches the parser, see _Parser.p_error.)
        if text.startswith("<<", pos):
            reason = 'a heredoc needs a marker right after "<<", as in <<EOF'
        elif pos < len(text):
            reason = f"Illegal character {text[pos]!r}"
        else:
            reason = "unexpected end of file"
        return HclError(reason, *lines.position(pos))


_EXPECTED_NAMES = {"$end": "end of file"}


class _Parser(_PyhclParser):
    """pyhcl's grammar; repeated keys kept (see :class:`Repeated`), keys' lines
    noted, and syntax errors raised as :class:`HclError`."""

    lexer: _Lexer | None = None

    def objectlist_flat(self, lt: list[tuple[Any, Any]], replace: bool) -> Object:  # noqa: ARG002 - pyhcl's signature
        obj = Object()
        assert self.lexer is not None
        for key, value in lt:
            line = self.lexer.lines.line(key.offset) if isinstance(key, _Text) else None
            _add(obj, str(key) if isinstance(key, str) else key, value, line)
        return obj

    def p_error(self, p: Any) -> None:
        lexer = self.lexer
        assert lexer is not None
        try:
            table = self.yacc.action[self.yacc.state]
            names = sorted(_EXPECTED_NAMES.get(name, name) for name in table)
        except (AttributeError, KeyError, TypeError):
            names = []
        expected = f"; expected {', '.join(names)}" if names else ""
        if p is None:
            if lexer.open:
                opener = lexer.open[-1]
                raise _never_closed(lexer.lines, opener.start, _OPENERS[opener.type])
            raise HclError("unexpected end of file" + expected, lexer.lines.end_line())
        start = getattr(p, "start", p.lexpos)
        text = lexer.lines.text
        # An unclosed "/*" is no comment to pyhcl's lexer but a "/" and a "*".
        for comment in (start - 1, start):
            if comment >= 0 and text.startswith("/*", comment) and "*/" not in text[comment + 2 :]:
                raise _never_closed(lexer.lines, comment, "comment")
        raw = text[start : getattr(p, "end", start)]
        raw = raw if len(raw) <= 40 else raw[:37] + "..."
        shown = raw if raw.startswith(('"', "<<")) else json.dumps(raw)
        raise HclError(f"unexpected {p.type} {shown}{expected}", *lexer.lines.position(start))


_lock = threading.Lock()
_shared: tuple[_Parser, Any] | None = None


def _parser() -> tuple[_Parser, Any]:
    """One shared parser and lexer: building pyhcl's tables takes tens of
    milliseconds, its lexer one. The parser keeps state while parsing, so
    callers hold ``_lock``; the lexer is a template, cloned for each text."""
    global _shared
    if _shared is None:
        _shared = _Parser(), _PyhclLexer().lex
    return _shared


def _loads_hcl(text: str) -> Any:
    lines = _Lines(text)
    with _lock:
        parser, template = _parser()
        lexer = parser.lexer = _Lexer(template.clone(), lines)
        try:
            result = parser.yacc.parse(text, lexer=lexer)
        except HclError:
            raise
        except RecursionError:
            raise HclError("the HCL is nested too deeply") from None
        except Exception as exc:  # pyhcl's grammar actions fail on some odd input (1/0, ...)
            line = lines.line(lexer.last.start) if lexer.last is not None else None
            raise HclError(f"could not parse the HCL ({type(exc).__name__}: {exc})", line) from None
        finally:
            parser.lexer = None
    try:
        return _finish(result, lines)
    except RecursionError:
        raise HclError("the HCL is nested too deeply") from None


def _finish(value: Any, lines: _Lines) -> Any:
    """Plain values all the way down: strings as ``str``, every dict an :class:`Object`."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Object):
        for key in value:
            value[key] = _finish(value[key], lines)
        return value
    if isinstance(value, dict):  # a block's label level ({label: body}) or an empty {}
        obj = Object()
        for key, item in value.items():
            line = lines.line(key.offset) if isinstance(key, _Text) else None
            _add(obj, str(key) if isinstance(key, str) else key, _finish(item, lines), line)
        return obj
    if isinstance(value, list):
        return type(value)(_finish(item, lines) for item in value)
    return value
