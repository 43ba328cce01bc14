"""The values templates compute with, and the names of their types."""

from __future__ import annotations

from .errors import EvalError
from .limits import MAX_VALUE_LENGTH

Value = str | int | bool  # what an expression evaluates to

# Static types of expressions; ANY is the type of an ``and``/``or`` whose operands differ.
STR, INT, BOOL, ANY = "string", "int", "bool", "any"


def kind(value: object) -> str:
    """The type name of a runtime value, as used in error messages and type checks."""
    t = type(value)
    if t is str:
        return STR
    if t is bool:
        return BOOL
    if t is int:
        return INT
    return t.__name__


def to_text(value: Value) -> str:
    """How a value is printed: Go's formatting of strings, integers and booleans."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def check_grow(result: str, given: int) -> str:
    """Refuse a result over MAX_VALUE_LENGTH characters unless the input was already that long."""
    if len(result) > MAX_VALUE_LENGTH and len(result) > given:
        raise EvalError(f"result would exceed {MAX_VALUE_LENGTH} characters")
    return result
