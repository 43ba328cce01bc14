"""The limits that bound the work a template can ask for."""

from __future__ import annotations

MAX_TEMPLATE_LENGTH = 4096  # characters of template text
MAX_NESTING_DEPTH = 32  # levels of {{if}} and of parentheses
MAX_VALUE_LENGTH = 65536  # characters a function that grows its input may produce
MAX_RANDOM_LENGTH = 4096  # the largest ``random n``
MAX_FORMAT_WIDTH = 4096  # the largest printf width or precision

# The clock functions render instants from 1970 up to the year 5138, when the
# seconds since the epoch stay at or below 11 digits; max_length relies on it.
UNIX_TIME_MAX_DIGITS = 11
UNIX_TIME_MILLIS_MAX_DIGITS = UNIX_TIME_MAX_DIGITS + 3
MIN_NOW = 0
MAX_NOW = 10**UNIX_TIME_MAX_DIGITS - 1
