"""Type-checking the syntax tree and compiling it into closures that render it.

Every expression becomes an evaluator ``(context, now) -> value`` with a static
type; calls that would always fail (a wrong literal type, ``truncate 0``, a
constant printf format whose verbs do not match its arguments) are refused here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .errors import EvalError, TemplateError
from .nodes import Call, Const, Expr, Field, Ident, If, Output, Pipe, Stmt
from .printf import Verb, parse_format
from .values import ANY, BOOL, INT, STR, Value, kind, to_text

# (context, the render's clock in microseconds since the epoch) -> value
Evaluator = Callable[[Mapping[str, str], int], Value]
TextEvaluator = Callable[[Mapping[str, str], int], str]
Typed = tuple[Evaluator, str]  # an evaluator and its static type

_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")


class Compiler:
    def __init__(self, src: str) -> None:
        self.src = src
        self.fields: set[str] = set()  # the names of the fields the template references

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, self.src, pos)

    # -- expressions --

    def expr(self, node: Expr) -> Typed:
        if isinstance(node, Const):
            value = node.value
            return (lambda c, t: value), kind(value)
        if isinstance(node, Field):
            return self.field(node), STR
        if isinstance(node, Ident):
            return self.call(Call(node.func, [], node.pos))
        if isinstance(node, Pipe):
            return self.pipe(node)
        return self.call(node)

    def field(self, node: Field) -> Evaluator:
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

    def pipe(self, node: Pipe) -> Typed:
        typed = self.expr(node.head)
        for call in node.tail:
            typed = self.call(call, typed)
        return typed

    def call(self, node: Call, piped: Typed | None = None) -> Typed:
        func = node.func
        name = func.name
        compiled = [self.expr(arg) for arg in node.args]
        if node.piped:
            assert piped is not None
            compiled.append(piped)
        n, need = len(compiled), len(func.params)
        if n < need or (func.variadic is None and n > need):
            how = " (including the piped value)" if node.piped else ""
            raise self.error(
                f"wrong number of arguments for {name}: expected {func.arity_text()}, got {n}{how}", node.pos
            )
        # Static type checks, and runtime checks where the static type is unknown.
        fns: list[Evaluator] = []
        for i, (fn, typ) in enumerate(compiled):
            want = func.param_type(i)
            arg_pos = node.args[i].pos if i < len(node.args) else node.pos
            if want != ANY and typ != ANY and typ != want:
                raise self.error(f"wrong type for argument {i + 1} of {name}: expected {want}, got {typ}", arg_pos)
            if want != ANY and typ == ANY:
                fn = self.checked(fn, want, name, i, arg_pos)
            fns.append(fn)
        self.static_checks(node, compiled)

        if name in ("and", "or"):
            return self.logic(name == "or", fns), self.common_type(compiled)

        impl = func.impl
        assert impl is not None  # only and/or have none
        needs_time = func.needs_time
        src, pos = self.src, node.pos

        def run(c: Mapping[str, str], t: int) -> Value:
            try:
                args = [f(c, t) for f in fns]
                return impl(t, *args) if needs_time else impl(*args)
            except EvalError as exc:
                raise TemplateError(f"{name}: {exc}", src, pos) from None

        return run, func.returns

    @staticmethod
    def logic(want_truth: bool, fns: list[Evaluator]) -> Evaluator:
        """Go's and (``want_truth`` False) and or: the first operand that decides, else the last."""
        *deciders, last = fns

        def run(c: Mapping[str, str], t: int) -> Value:
            for f in deciders:
                value = f(c, t)
                if bool(value) is want_truth:
                    return value
            return last(c, t)

        return run

    @staticmethod
    def common_type(compiled: list[Typed]) -> str:
        types = {typ for _fn, typ in compiled}
        return types.pop() if len(types) == 1 else ANY

    def checked(self, fn: Evaluator, want: str, name: str, i: int, pos: int) -> Evaluator:
        src = self.src

        def check(c: Mapping[str, str], t: int) -> Value:
            value = fn(c, t)
            if kind(value) != want:
                raise TemplateError(
                    f"wrong type for argument {i + 1} of {name}: expected {want}, got {kind(value)}", src, pos
                )
            return value

        return check

    def static_checks(self, node: Call, compiled: list[Typed]) -> None:
        """Reject calls that would always fail, using the constant arguments."""
        func = node.func
        first = node.args[0] if node.args else None
        const = first.value if isinstance(first, Const) else None
        try:
            if func.check is not None and type(const) is int:
                func.check(const)
            if func.name == "printf" and type(const) is str:
                pieces, count = parse_format(const)
                if count != len(compiled) - 1:
                    how = " (including the piped value)" if node.piped else ""
                    raise EvalError(
                        f"format {const!r} has {count} verb(s) but {len(compiled) - 1} argument(s) were given{how}"
                    )
                verbs = [p for p in pieces if isinstance(p, Verb)]
                for k, (verb, (_fn, typ)) in enumerate(zip(verbs, compiled[1:], strict=True)):
                    if verb.verb == "d" and typ not in (INT, ANY):
                        raise EvalError(f"%d needs an integer argument, but argument {k + 2} is a {typ}")
            if func.name in _COMPARISONS:
                types = [typ for _fn, typ in compiled]
                if ANY not in types and len(set(types)) > 1:
                    raise EvalError(f"incompatible types for comparison: {', '.join(types)}")
                if func.name not in ("eq", "ne") and BOOL in types:
                    raise EvalError("invalid type for comparison: bool")
        except EvalError as exc:
            raise self.error(f"{func.name}: {exc}", node.pos) from None

    # -- bodies --

    def body(self, nodes: list[Stmt]) -> TextEvaluator:
        parts: list[TextEvaluator] = []
        for node in nodes:
            if isinstance(node, str):
                parts.append(self.text(node))
            elif isinstance(node, Output):
                parts.append(self.output(node))
            else:
                parts.append(self.if_node(node))
        if not parts:
            return self.text("")
        if len(parts) == 1:
            return parts[0]
        return lambda c, t: "".join([p(c, t) for p in parts])

    @staticmethod
    def text(text: str) -> TextEvaluator:
        return lambda c, t: text

    def output(self, node: Output) -> TextEvaluator:
        fn, _typ = self.pipe(node.pipe)
        return lambda c, t: to_text(fn(c, t))

    def if_node(self, node: If) -> TextEvaluator:
        branches = [(self.pipe(cond)[0], self.body(body)) for cond, body in node.branches]
        otherwise = self.body(node.else_body) if node.else_body is not None else None

        def run_if(c: Mapping[str, str], t: int) -> str:
            for cond, then in branches:
                if cond(c, t):
                    return then(c, t)
            return otherwise(c, t) if otherwise is not None else ""

        return run_if
