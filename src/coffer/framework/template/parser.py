"""Parsing the scanned template into a syntax tree (see :mod:`.nodes`)."""

from __future__ import annotations

from .errors import TemplateError
from .functions import FUNCS
from .lexer import T_BOOL, T_FIELD, T_IDENT, T_INT, T_LPAREN, T_PIPE, T_RPAREN, T_STRING, Action, Tok, describe, scan
from .limits import MAX_NESTING_DEPTH
from .nodes import Call, Const, Expr, Field, Ident, If, Output, Pipe, Stmt
from .values import to_text

_KEYWORDS = {"if", "else", "end", "true", "false", "nil"}
_UNSUPPORTED_KEYWORDS = {"range", "with", "define", "template", "block", "break", "continue"}
_GO_BUILTINS = {"call", "html", "index", "slice", "js", "len", "print", "println", "urlquery"}


class _PipelineParser:
    """Parses the tokens of one action (or of an if/else-if condition) into a :class:`Pipe`."""

    def __init__(self, src: str, toks: list[Tok], start: int, end: int) -> None:
        self.src = src
        self.toks = toks
        self.i = 0
        self.start = start  # where the action starts
        self.end = end  # just after its "}}"

    def error(self, message: str, pos: int | None = None) -> TemplateError:
        return TemplateError(message, self.src, self.start if pos is None else pos)

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse_all(self, what: str) -> Pipe:
        if not self.toks:
            raise self.error(f"missing {what}: expected a value or function call")
        pipe = self.parse_pipeline(1)
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {describe(tok, self.src)}: expected '|' or '}}}}'", tok.pos)
        return pipe

    def parse_pipeline(self, depth: int, open_tok: Tok | None = None) -> Pipe:
        first_pos = self.toks[self.i].pos if self.i < len(self.toks) else self.end
        head = self.parse_command(depth, piped=False)
        tail: list[Call] = []
        while True:
            tok = self.peek()
            if tok is None:
                if open_tok is not None:
                    raise self.error("unclosed '(': expected ')'", open_tok.pos)
                break
            if tok.kind == T_PIPE:
                self.i += 1
                call = self.parse_command(depth, piped=True)
                assert isinstance(call, Call)  # parse_command refuses anything else after '|'
                tail.append(call)
                continue
            if tok.kind == T_RPAREN:
                if open_tok is None:
                    raise self.error("unexpected ')' without matching '('", tok.pos)
                break
            raise self.error(f"unexpected {describe(tok, self.src)}", tok.pos)  # pragma: no cover
        return Pipe(head, tail, first_pos)

    def parse_command(self, depth: int, piped: bool) -> Expr:
        """A function and its arguments, or (first in a pipeline only) a single value."""
        operands: list[Expr] = []
        start_tok = self.peek()
        while True:
            tok = self.peek()
            if tok is None or tok.kind in (T_PIPE, T_RPAREN):
                break
            if operands and not tok.space_before:
                raise self.error(f"unexpected {describe(tok, self.src)}: expected a space between arguments", tok.pos)
            operands.append(self.parse_operand(depth))
        if start_tok is None or not operands:
            where = start_tok.pos if start_tok is not None else self.end - 2
            if not piped:
                raise self.error("missing value: expected a value or function call", where)
            raise self.error("missing function after '|'", where)
        first = operands[0]
        pos = start_tok.pos
        if isinstance(first, Ident):
            return Call(first.func, operands[1:], pos, piped)
        if piped:
            raise self.error(f"cannot pipe into {self._what(first)}: only a function can follow '|'", pos)
        if len(operands) > 1:
            raise self.error(f"cannot give arguments to {self._what(first)}: it is not a function", pos)
        return first

    @staticmethod
    def _what(node: Expr) -> str:
        if isinstance(node, Field):
            return f"field .{node.name}"
        if isinstance(node, Const):
            return f"constant {to_text(node.value)!r}"
        return "a parenthesised pipeline"

    def parse_operand(self, depth: int) -> Expr:
        tok = self.toks[self.i]
        self.i += 1
        kind = tok.kind
        if kind in (T_STRING, T_INT, T_BOOL):
            return Const(tok.value, tok.pos)
        if kind == T_FIELD:
            return Field(tok.name, tok.pos)
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
            name = tok.name
            if name == "nil":
                raise self.error("nil is not supported", tok.pos)
            if name in _KEYWORDS:
                raise self.error(f"unexpected keyword {name!r}: '{name}' must start an action", tok.pos)
            func = FUNCS.get(name)
            if func is None:
                if name in _UNSUPPORTED_KEYWORDS:
                    raise self.error(f"{{{{{name}}}}} is not supported", tok.pos)
                extra = " (Go built-in not supported here)" if name in _GO_BUILTINS else ""
                raise self.error(f"unknown function {name!r}{extra}; available: {', '.join(sorted(FUNCS))}", tok.pos)
            return Ident(func, tok.pos)
        raise self.error(f"unexpected {describe(tok, self.src)}: expected a value", tok.pos)


def _pipeline(src: str, action: Action, first: int, what: str) -> Pipe:
    """The pipeline formed by the action's tokens from ``first`` on; ``what`` names it in errors."""
    return _PipelineParser(src, action.tokens[first:], action.pos, action.end).parse_all(what)


def parse(src: str) -> list[Stmt]:
    """The template's top-level body."""
    root: list[Stmt] = []
    body = root
    # One frame per open {{if}}: (the node, the body it belongs to, whether {{else}} was seen).
    stack: list[tuple[If, list[Stmt], bool]] = []
    for item in scan(src):
        if isinstance(item, str):
            body.append(item)
            continue
        toks = item.tokens
        head = toks[0].name if toks and toks[0].kind == T_IDENT else None
        if head == "if":
            if len(stack) >= MAX_NESTING_DEPTH:
                raise TemplateError(f"{{{{if}}}} nested deeper than {MAX_NESTING_DEPTH} levels", src, item.pos)
            node = If(item.pos)
            node.branches.append((_pipeline(src, item, 1, "condition for {{if}}"), []))
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
                node.branches.append((_pipeline(src, item, 2, "condition for {{else if}}"), []))
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
            body.append(Output(_pipeline(src, item, 0, "pipeline")))
    if stack:
        raise TemplateError("unterminated {{if}}: expected {{end}}", src, stack[-1][0].pos)
    return root
