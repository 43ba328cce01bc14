"""The syntax tree the parser builds and the compiler and the length analysis walk."""

from __future__ import annotations

from dataclasses import dataclass, field

from .functions import Func
from .values import Value


@dataclass(slots=True)
class Const:
    value: Value
    pos: int


@dataclass(slots=True)
class Field:
    """``.Name``: a value from the render's context."""

    name: str
    pos: int


@dataclass(slots=True)
class Ident:
    """A function name used as an argument: the function is called without arguments."""

    func: Func
    pos: int


@dataclass(slots=True)
class Call:
    """A function call.  When ``piped`` is set, the previous pipeline stage's value follows ``args``."""

    func: Func
    args: list[Expr]
    pos: int
    piped: bool = False


@dataclass(slots=True)
class Pipe:
    """``head | tail[0] | tail[1] ...``; each stage's value becomes the last argument of the next call."""

    head: Expr
    tail: list[Call]
    pos: int


Expr = Const | Field | Ident | Call | Pipe


@dataclass(slots=True)
class Output:
    """``{{ pipeline }}``: print the pipeline's value."""

    pipe: Pipe


@dataclass(slots=True)
class If:
    """``{{if c1}} ... {{else if c2}} ... {{else}} ... {{end}}``."""

    pos: int
    branches: list[tuple[Pipe, list[Stmt]]] = field(default_factory=list)
    else_body: list[Stmt] | None = None


Stmt = str | Output | If  # a body is a list of these; a str is literal text
