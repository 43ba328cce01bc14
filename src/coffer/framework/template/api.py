"""The public entry points: :func:`compile_template` and the :class:`Template` it returns."""

from __future__ import annotations

import time
from collections.abc import Mapping

from .compiler import Compiler, TextEvaluator
from .errors import TemplateError
from .length import max_length
from .limits import MAX_NOW, MAX_TEMPLATE_LENGTH, MIN_NOW
from .nodes import Stmt
from .parser import parse


class Template:
    """A compiled template.  Create with :func:`compile_template`; immutable and thread-safe."""

    __slots__ = ("source", "fields", "_nodes", "_fn")

    source: str
    fields: frozenset[str]  # names of the fields the template references (``.Name`` -> ``"Name"``)

    def __init__(self, source: str, nodes: list[Stmt], fn: TextEvaluator, fields: frozenset[str]) -> None:
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
            if not MIN_NOW <= now <= MAX_NOW:  # also rejects NaN
                raise TemplateError(f"now must be between {MIN_NOW} and {MAX_NOW} seconds, got {now!r}")
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
        return max_length(self._nodes, field_bounds or {}, fixed or {})

    def max_length_when(self, field_bounds: Mapping[str, int | None] | None, fixed: Mapping[str, str]) -> int | None:
        """Shorthand for ``max_length(field_bounds, fixed=fixed)``."""
        return self.max_length(field_bounds, fixed=fixed)


def compile_template(text: str) -> Template:
    """Parse and type-check ``text``; raise :class:`TemplateError` with a position on any problem."""
    if not isinstance(text, str):
        raise TemplateError(f"template must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"template is too long: {len(text)} characters (maximum {MAX_TEMPLATE_LENGTH})")
    nodes = parse(text)
    compiler = Compiler(text)
    fn = compiler.body(nodes)
    return Template(text, nodes, fn, frozenset(compiler.fields))
