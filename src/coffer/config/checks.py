"""What every stanza's checks share: reporting errors and warnings with the file and line, finding
``key "label" { ... }`` blocks, and reading single values (strings, booleans, durations)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from coffer import hcl
from coffer.config.model import ConfigError, where_prefix
from coffer.durations import parse_duration
from coffer.truth import parse_bool


def show(value: Any) -> str:
    if isinstance(value, hcl.Repeated):
        return "several values (it is set more than once)"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a block"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def did_you_mean(key: str, choices: frozenset[str] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.75)
    return f'; did you mean "{close[0]}"?' if close else ""


def lines_of(obj: Any, key: str) -> str:
    """`` (lines 3, 7)`` when ``key`` was written on several known lines of ``obj``."""
    lines = obj.lines.get(key, []) if isinstance(obj, hcl.Object) else []
    return f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""


class Checks:
    """The state of one file's check (its name, its parsed settings, the warnings so far) and the helpers
    the stanzas' checks use."""

    def __init__(self, source: str, data: hcl.Object) -> None:
        self.source = source
        self.data = data
        self.warnings: list[str] = []

    # -- reporting

    def line_of(self, key: str) -> int | None:
        return self.data.line_of(key)

    def error(self, reason: str, line: int | None = None) -> ConfigError:
        return ConfigError(reason, source=self.source, line=line)

    def warn(self, message: str, line: int | None = None) -> None:
        self.warnings.append(where_prefix(self.source, line) + message)

    def single(self, what: str, body: dict[str, Any], key: str, line: int | None) -> Any:
        """``body[key]``, refusing a key written more than once."""
        value = body[key]
        if isinstance(value, hcl.Repeated):
            raise self.error(f"{what} is set more than once{lines_of(body, key)}", line)
        return value

    # -- blocks

    def blocks(self, key: str, value: Any, example: str) -> list[tuple[str, dict[str, Any]]]:
        """``key "label" { body }`` in any of the shapes HCL and JSON give it."""
        line = self.line_of(key)
        if isinstance(value, list):
            found = []
            for item in value:
                found.extend(self.blocks(key, item, example))
            return found
        if not isinstance(value, dict):
            raise self.error(f'"{key}" must be a block such as {example}, not {show(value)}', line)
        found = []
        for label, body in value.items():
            bodies = body if isinstance(body, list) else [body]
            if not bodies or not all(isinstance(b, dict) for b in bodies):
                raise self.error(f'the "{key}" block needs a type label, as in {example}', line)
            found.extend((str(label), b) for b in bodies)
        if not found:
            raise self.error(f'the "{key}" block needs a type label, as in {example}', line)
        return found

    # -- single values

    def duration(self, data: dict[str, Any], key: str) -> int | None:
        if key not in data:
            return None
        value = data[key]
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(f"{key}: {exc}", self.line_of(key)) from None

    def positive_duration(self, data: dict[str, Any], key: str, default: int, *, what: str = "",
                          line: int | None = None) -> int:
        if key not in data:
            return default
        value = data[key]
        line = line or self.line_of(key)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(f"{what or key}: {exc}", line) from None
        if seconds < 1:
            raise self.error(f"{what or key} must be at least one second, not {show(value)}", line)
        return seconds

    def optional_str(self, data: dict[str, Any], key: str) -> str | None:
        if key not in data:
            return None
        return self.as_str(key, data[key], self.line_of(key)) or None

    def bool_setting(self, data: dict[str, Any], key: str, default: bool) -> bool:
        if key not in data:
            return default
        return self.as_bool(key, data[key], self.line_of(key))

    def as_str(self, what: str, value: Any, line: int | None) -> str:
        if isinstance(value, str):
            return value
        raise self.error(f"{what} must be a string, not {show(value)}", line)

    def as_bool(self, what: str, value: Any, line: int | None) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            try:
                return parse_bool(value, strict=True)  # Vault reads its configuration with Go's ParseBool
            except ValueError:
                pass
        raise self.error(f"{what} must be true or false, not {show(value)}", line)
