"""An upper bound on the length of what a template renders (``Template.max_length``).

The analysis walks the syntax tree with an :class:`Estimate` per expression.
Constant arguments are folded through deterministic functions, fields given in
``fixed`` are constants too, so conditions on them are decided and only the
branches that can run are counted.  A call that always fails counts as 0,
since it never contributes to a successful render; so does one given a constant
of the wrong type (possible through ``and``/``or``, whose static type is ``any``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import EvalError
from .functions import FUNCS
from .limits import MAX_RANDOM_LENGTH, UNIX_TIME_MAX_DIGITS, UNIX_TIME_MILLIS_MAX_DIGITS
from .nodes import Call, Const, Expr, Field, Ident, If, Output, Pipe, Stmt
from .printf import Verb, apply_verb, parse_format
from .timelayout import parse_layout
from .values import ANY, STR, Value, kind, to_text


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the analysis knows about an expression's value."""

    length: int | None  # an upper bound on its printed length; None: unbounded
    kind: str = STR  # its static type
    const: Value | None = None  # its value, when it is constant

    @property
    def known(self) -> bool:
        return self.const is not None

    @classmethod
    def constant(cls, value: Value) -> Estimate:
        return cls(len(to_text(value)), kind(value), value)


# ---------------------------------------------------------------------------
# The bound of each function's result, given estimates of its arguments
# ---------------------------------------------------------------------------

_BoundFn = Callable[[list[Estimate]], int | None]


def _const_int(e: Estimate) -> int | None:
    return e.const if type(e.const) is int else None


def _fixed(n: int) -> _BoundFn:
    return lambda a: n


def _same_as_last(a: list[Estimate]) -> int | None:
    return a[-1].length


def _b_random(a: list[Estimate]) -> int | None:
    n = _const_int(a[0])
    return None if n is None else max(0, min(n, MAX_RANDOM_LENGTH))


def _b_truncate(floor: int) -> _BoundFn:
    """truncate (floor 0) and truncate_sha256 (floor 8): a constant length at or below the floor always fails."""

    def bound(a: list[Estimate]) -> int | None:
        n, b = _const_int(a[0]), a[1].length
        if n is None:
            return b
        if n <= floor:
            return 0
        return n if b is None else min(n, b)

    return bound


def _b_replace(a: list[Estimate]) -> int | None:
    old, new, s = a
    b = s.length
    if isinstance(old.const, str) and isinstance(new.const, str):
        lo, ln = len(old.const), len(new.const)
        if lo == 0:
            return b if (b is None or ln == 0) else b + (b + 1) * ln
        if ln <= lo:
            return b
        return None if b is None else b + (b // lo) * (ln - lo)
    if b is None or new.length is None:
        return None
    return b + (b + 1) * new.length


def _b_base64(a: list[Estimate]) -> int | None:
    b = a[0].length
    return None if b is None else 4 * ((4 * b + 2) // 3)  # a character is at most 4 UTF-8 bytes


def _b_timestamp(a: list[Estimate]) -> int | None:
    layout = a[0].const
    return parse_layout(layout)[1] if isinstance(layout, str) else None


def _b_verb(v: Verb, e: Estimate) -> int | None:
    if e.const is not None:
        try:
            return len(apply_verb(v, e.const))
        except EvalError:
            return 0
    b = e.length
    if e.kind == STR and v.verb != "d":
        if v.prec is not None:
            b = v.prec if b is None else min(b, v.prec)
    elif b is not None:
        b = max(b, v.prec or 0) + 1  # integer precision is a minimum digit count; +1 for a sign
    if b is None:
        return None
    return max(b, v.width or 0)


def _b_printf(a: list[Estimate]) -> int | None:
    fmt = a[0].const
    if not isinstance(fmt, str):
        return None
    try:
        pieces, count = parse_format(fmt)
    except EvalError:
        return 0
    if count != len(a) - 1:
        return 0
    total = 0
    args = iter(a[1:])
    for piece in pieces:
        n = len(piece) if isinstance(piece, str) else _b_verb(piece, next(args))
        if n is None:
            return None
        total += n
    return total


_BOOL_LENGTH = len("false")

# and/or are missing: the analyzer follows their operands itself.
_BOUNDS: dict[str, _BoundFn] = {
    "random": _b_random,
    "truncate": _b_truncate(0),
    "truncate_sha256": _b_truncate(8),
    "uppercase": _same_as_last,
    "lowercase": _same_as_last,
    "replace": _b_replace,
    "sha256": _fixed(64),
    "base64": _b_base64,
    "uuid": _fixed(36),
    "unix_time": _fixed(UNIX_TIME_MAX_DIGITS),
    "unix_time_millis": _fixed(UNIX_TIME_MILLIS_MAX_DIGITS),
    "timestamp": _b_timestamp,
    "printf": _b_printf,
    "eq": _fixed(_BOOL_LENGTH),
    "ne": _fixed(_BOOL_LENGTH),
    "lt": _fixed(_BOOL_LENGTH),
    "le": _fixed(_BOOL_LENGTH),
    "gt": _fixed(_BOOL_LENGTH),
    "ge": _fixed(_BOOL_LENGTH),
    "not": _fixed(_BOOL_LENGTH),
}
assert _BOUNDS.keys() == FUNCS.keys() - {"and", "or"}, "every function needs a bound"


# ---------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------


class _Analyzer:
    def __init__(self, field_bounds: Mapping[str, int | None], fixed: Mapping[str, str]) -> None:
        self.bounds = field_bounds
        self.fixed = fixed

    def expr(self, node: Expr) -> Estimate:
        if isinstance(node, Const):
            return Estimate.constant(node.value)
        if isinstance(node, Field):
            if node.name in self.fixed:
                value = self.fixed[node.name]
                return Estimate(len(value), STR, value)
            bound = self.bounds.get(node.name)
            return Estimate(None if bound is None else max(0, bound))
        if isinstance(node, Ident):
            return self.call(Call(node.func, [], node.pos))
        if isinstance(node, Pipe):
            e = self.expr(node.head)
            for call in node.tail:
                e = self.call(call, e)
            return e
        return self.call(node)

    def call(self, node: Call, piped: Estimate | None = None) -> Estimate:
        func = node.func
        args = [self.expr(a) for a in node.args]
        if node.piped:
            assert piped is not None
            args.append(piped)
        if func.name in ("and", "or"):
            return self.logic(func.name == "or", args)
        for i, e in enumerate(args):
            if e.known and func.param_type(i) not in (ANY, e.kind):
                return Estimate(0, func.returns)  # the render's type check always fails
        if func.deterministic and all(e.const is not None for e in args):
            assert func.impl is not None  # only and/or have none
            try:
                value = func.impl(*[e.const for e in args])
            except EvalError:
                return Estimate(0, func.returns)  # always fails: contributes no output
            return Estimate.constant(value)
        return Estimate(_BOUNDS[func.name](args), func.returns)

    @staticmethod
    def logic(want_truth: bool, args: list[Estimate]) -> Estimate:
        """and/or: the operands up to the first whose constant value decides are the candidates."""
        candidates: list[Estimate] = []
        for e in args:
            candidates.append(e)
            if e.known and bool(e.const) is want_truth:
                break
        if len(candidates) == 1 or all(e.known for e in candidates):
            return candidates[-1]
        lengths = [e.length for e in candidates if e.length is not None]
        kinds = {e.kind for e in candidates}
        return Estimate(
            max(lengths) if len(lengths) == len(candidates) else None,
            kinds.pop() if len(kinds) == 1 else ANY,
        )

    def body(self, nodes: list[Stmt]) -> int | None:
        total = 0
        for node in nodes:
            if isinstance(node, str):
                n: int | None = len(node)
            elif isinstance(node, Output):
                n = self.expr(node.pipe).length
            else:
                n = self.if_node(node)
            if n is None:
                return None
            total += n
        return total

    def if_node(self, node: If) -> int | None:
        best = 0
        for cond, body in node.branches:
            e = self.expr(cond)
            if e.known and not e.const:
                continue  # never taken
            n = self.body(body)
            if n is None:
                return None
            best = max(best, n)
            if e.known:
                return best  # always taken: later branches are unreachable
        if node.else_body is not None:
            n = self.body(node.else_body)
            if n is None:
                return None
            best = max(best, n)
        return best


def max_length(nodes: list[Stmt], field_bounds: Mapping[str, int | None], fixed: Mapping[str, str]) -> int | None:
    """An upper bound on the rendered length of ``nodes``; None if unbounded."""
    return _Analyzer(field_bounds, fixed).body(nodes)
