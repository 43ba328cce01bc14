"""The template package's exceptions."""

from __future__ import annotations


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


class EvalError(Exception):
    """Raised by function implementations; the caller turns it into a TemplateError with a position."""
