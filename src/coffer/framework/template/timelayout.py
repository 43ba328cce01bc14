"""Go reference-time layouts (``2006-01-02T15:04:05Z07:00``), as ``timestamp`` uses them.

A layout is split into literal text and tokens the way Go's ``nextStdChunk``
does it; the clock is always UTC, so zone tokens print ``UTC``, ``+00...`` or ``Z``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Formats one token of the layout: (datetime, nanoseconds) -> text.
LayoutFormatter = Callable[[datetime, int], str]


def _hour12(d: datetime) -> int:
    return d.hour % 12 or 12


# token -> (formatter, maximum length of its output)
_STD: dict[str, tuple[LayoutFormatter, int]] = {
    "January": (lambda d, ns: _MONTHS[d.month - 1], 9),
    "Jan": (lambda d, ns: _MONTHS[d.month - 1][:3], 3),
    "1": (lambda d, ns: str(d.month), 2),
    "01": (lambda d, ns: f"{d.month:02d}", 2),
    "Monday": (lambda d, ns: _DAYS[d.weekday()], 9),
    "Mon": (lambda d, ns: _DAYS[d.weekday()][:3], 3),
    "2": (lambda d, ns: str(d.day), 2),
    "_2": (lambda d, ns: f"{d.day:2d}", 2),
    "02": (lambda d, ns: f"{d.day:02d}", 2),
    "__2": (lambda d, ns: f"{d.timetuple().tm_yday:3d}", 3),
    "002": (lambda d, ns: f"{d.timetuple().tm_yday:03d}", 3),
    "15": (lambda d, ns: f"{d.hour:02d}", 2),
    "3": (lambda d, ns: str(_hour12(d)), 2),
    "03": (lambda d, ns: f"{_hour12(d):02d}", 2),
    "4": (lambda d, ns: str(d.minute), 2),
    "04": (lambda d, ns: f"{d.minute:02d}", 2),
    "5": (lambda d, ns: str(d.second), 2),
    "05": (lambda d, ns: f"{d.second:02d}", 2),
    "2006": (lambda d, ns: f"{d.year:04d}", 4),
    "06": (lambda d, ns: f"{d.year % 100:02d}", 2),
    "PM": (lambda d, ns: "PM" if d.hour >= 12 else "AM", 2),
    "pm": (lambda d, ns: "pm" if d.hour >= 12 else "am", 2),
    "MST": (lambda d, ns: "UTC", 3),
    # Always UTC: numeric zones are +00..., ISO 8601 zones are "Z".
    "-070000": (lambda d, ns: "+000000", 7),
    "-07:00:00": (lambda d, ns: "+00:00:00", 9),
    "-0700": (lambda d, ns: "+0000", 5),
    "-07:00": (lambda d, ns: "+00:00", 6),
    "-07": (lambda d, ns: "+00", 3),
    "Z070000": (lambda d, ns: "Z", 1),
    "Z07:00:00": (lambda d, ns: "Z", 1),
    "Z0700": (lambda d, ns: "Z", 1),
    "Z07:00": (lambda d, ns: "Z", 1),
    "Z07": (lambda d, ns: "Z", 1),
}
# Longest first, so that the first prefix that matches is the right token.
_TZ_NUM = ("-070000", "-07:00:00", "-0700", "-07:00", "-07")
_TZ_ISO = ("Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07")


def _frac(sep: str, digits: int, trim: bool) -> tuple[LayoutFormatter, int]:
    """Fractional seconds: ``.000`` (fixed digits) or ``.999`` (trailing zeros dropped)."""

    def fmt(d: datetime, ns: int) -> str:
        text = f"{ns:09d}"[:digits]
        if trim:
            text = text.rstrip("0")
            if not text:
                return ""
        return sep + text

    return fmt, digits + 1


def _std_chunk(layout: str, i: int) -> tuple[str, tuple[LayoutFormatter, int]] | None:
    """The layout token starting at ``layout[i]``, if any."""
    c = layout[i]
    rest = layout[i:]

    def lower_follows(k: int) -> bool:
        return i + k < len(layout) and "a" <= layout[i + k] <= "z"

    tok: str | None = None
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            tok = "January"
        elif not lower_follows(3):
            tok = "Jan"
    elif c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                tok = "Monday"
            elif not lower_follows(3):
                tok = "Mon"
        elif rest.startswith("MST"):
            tok = "MST"
    elif c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            tok = rest[:2]
        elif rest.startswith("002"):
            tok = "002"
    elif c == "1":
        tok = "15" if rest.startswith("15") else "1"
    elif c == "2":
        tok = "2006" if rest.startswith("2006") else "2"
    elif c == "_":
        if rest.startswith("_2") and not rest.startswith("_2006"):
            tok = "_2"
        elif rest.startswith("__2"):
            tok = "__2"
    elif c in "345":
        tok = c
    elif c == "P" and rest.startswith("PM"):
        tok = "PM"
    elif c == "p" and rest.startswith("pm"):
        tok = "pm"
    elif c == "-":
        tok = next((t for t in _TZ_NUM if rest.startswith(t)), None)
    elif c == "Z":
        tok = next((t for t in _TZ_ISO if rest.startswith(t)), None)
    elif c in ".," and len(rest) >= 2 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        if not (j < len(rest) and rest[j].isdigit()):
            return rest[:j], _frac(c, j - 1, rest[1] == "9")
    if tok is None:
        return None
    return tok, _STD[tok]


@lru_cache(maxsize=256)
def parse_layout(layout: str) -> tuple[tuple[str | LayoutFormatter, ...], int]:
    """Split a layout into literal strings and formatters; also return the maximum output length."""
    parts: list[str | LayoutFormatter] = []
    bound = 0
    lit: list[str] = []

    def flush_literal() -> None:
        nonlocal bound
        if lit:
            text = "".join(lit)
            parts.append(text)
            bound += len(text)
            lit.clear()

    i = 0
    while i < len(layout):
        chunk = _std_chunk(layout, i)
        if chunk is None:
            lit.append(layout[i])
            i += 1
            continue
        token, (fmt, width) = chunk
        flush_literal()
        parts.append(fmt)
        bound += width
        i += len(token)
    flush_literal()
    return tuple(parts), bound


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(now_us: int, layout: str) -> str:
    """The instant ``now_us`` (microseconds since the epoch) in UTC, formatted with a Go layout."""
    parts, _bound = parse_layout(layout)
    d = _EPOCH + timedelta(microseconds=now_us)
    ns = d.microsecond * 1000
    return "".join(p if isinstance(p, str) else p(d, ns) for p in parts)
