"""Field declarations and the validation of request data against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from coffer.durations import parse_duration
from coffer.errors import InvalidRequest
from coffer.truth import parse_bool


class FieldType(StrEnum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    DURATION = "duration"
    COMMA_LIST = "comma_string_list"  # "a,b" or ["a", "b"]
    KV_MAP = "kv_pairs"  # {"k": "v"}, "k=v,k2=v2" or ["k=v"]
    MAP = "map"  # a JSON object (or its JSON text)
    RAW = "raw"  # any JSON value, untouched


_OPENAPI_TYPES: dict[FieldType, dict[str, Any]] = {
    FieldType.STRING: {"type": "string"},
    FieldType.INT: {"type": "integer"},
    FieldType.BOOL: {"type": "boolean"},
    FieldType.DURATION: {"type": "string", "format": "duration"},
    FieldType.COMMA_LIST: {"type": "array", "items": {"type": "string"}},
    FieldType.KV_MAP: {"type": "object", "additionalProperties": {"type": "string"}},
    FieldType.MAP: {"type": "object"},
    FieldType.RAW: {},
}


@dataclass(frozen=True, slots=True)
class Field:
    type: FieldType = FieldType.STRING
    description: str = ""
    default: Any = None
    required: bool = False
    allowed: tuple[Any, ...] = ()

    def openapi_schema(self) -> dict[str, Any]:
        schema = dict(_OPENAPI_TYPES[self.type])
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        if self.allowed:
            schema["enum"] = list(self.allowed)
        return schema


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        if not value.strip():  # an empty form field, which Vault's weak decoding reads as false
            return False
        try:
            return parse_bool(value)
        except ValueError:
            pass
    raise ValueError("expected a boolean (true or false)")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("expected an integer")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ValueError("expected a string")


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out.extend(_to_list(_to_str(item)))
        return out
    raise ValueError("expected a comma-separated string or a list of strings")


def _to_kv_map(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): _to_str(v) for k, v in value.items()}
    if isinstance(value, str):
        value = [p for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        out: dict[str, str] = {}
        for pair in value:
            key, sep, val = _to_str(pair).partition("=")
            if not sep or not key.strip():
                raise ValueError(f'expected key=value pairs, got "{pair}"')
            out[key.strip()] = val.strip()
        return out
    raise ValueError("expected an object or key=value pairs")


def _to_map(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value) if value.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON object: {exc}") from None
    if isinstance(value, dict):
        return value
    raise ValueError("expected a JSON object")


_CONVERTERS = {
    FieldType.STRING: _to_str,
    FieldType.INT: _to_int,
    FieldType.BOOL: _to_bool,
    FieldType.DURATION: parse_duration,
    FieldType.COMMA_LIST: _to_list,
    FieldType.KV_MAP: _to_kv_map,
    FieldType.MAP: _to_map,
    FieldType.RAW: lambda v: v,
}


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Vault's durations are 64-bit nanosecond counts: about 292 years.
_MAX_DURATION = _INT64_MAX // 1_000_000_000


def convert(name: str, field: Field, value: Any) -> Any:
    try:
        result = _CONVERTERS[field.type](value)
    except ValueError as exc:
        raise InvalidRequest(f'invalid value for field "{name}": {exc}') from None
    if field.type is FieldType.INT and not _INT64_MIN <= result <= _INT64_MAX:
        raise InvalidRequest(f'invalid value for field "{name}": {value!r} is out of range (64-bit integer)')
    if field.type is FieldType.DURATION and result > _MAX_DURATION:
        raise InvalidRequest(f'invalid value for field "{name}": {value!r} is too long '
                             f"(at most {_MAX_DURATION} seconds)")
    if field.allowed and result not in field.allowed:
        choices = ", ".join(str(a) for a in field.allowed)
        raise InvalidRequest(f'invalid value for field "{name}": "{result}" is not one of {choices}')
    return result


class FieldData:
    """Request data checked against a path's fields.

    ``data["x"]`` answers the converted value or the field's default;
    ``"x" in data`` tells whether the caller sent it.
    """

    __slots__ = ("_fields", "_values", "raw")

    def __init__(self, fields: Mapping[str, Field], raw: dict[str, Any], *, open_fields: bool = False) -> None:
        self._fields = fields
        self.raw = raw
        values: dict[str, Any] = {}
        unknown = [k for k in raw if k not in fields]
        if unknown and not open_fields:
            known = ", ".join(sorted(fields)) or "none"
            names = ", ".join(f'"{k}"' for k in sorted(unknown))
            raise InvalidRequest(f"unknown field(s) {names}; this path accepts: {known}")
        for name, value in raw.items():
            field = fields.get(name)
            values[name] = convert(name, field, value) if field else value
        self._values = values

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        field = self._fields.get(name)
        if field is None:
            return None
        default = field.default
        return list(default) if isinstance(default, list | tuple) else default

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def require(self, *names: str) -> None:
        missing = [n for n in names if n not in self._values or self._values[n] in ("", None)]
        if missing:
            raise InvalidRequest(*(f'missing required field "{n}"' for n in missing))

    def given(self) -> dict[str, Any]:
        return dict(self._values)
