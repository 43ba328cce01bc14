from __future__ import annotations

import pytest

from coffer.durations import format_duration, parse_duration

HOUR = 3600


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0),
        (3600, 3600),
        (1.9, 1),
        ("0", 0),
        ("3600", 3600),
        (" 60 ", 60),
        ("3600s", 3600),
        ("30m", 1800),
        ("1h", HOUR),
        ("1h30m", HOUR + 1800),
        ("1h0m0s", HOUR),
        ("768h", 768 * HOUR),
        ("1.5h", HOUR + 1800),
        (".5m", 30),
        ("2d", 2 * 86400),
        ("1d12h", 36 * HOUR),
        ("500ms", 0),
        ("1s500ms", 1),
        ("2500ms", 2),
        ("90000us", 0),
        ("1500000000ns", 1),
        ("0s", 0),
        ("-0", 0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        "",
        "   ",
        "abc",
        "h",
        "1x",
        "1h 30m",
        "1 h",
        "1H",
        "-1h",
        "-30",
        "1h-30m",
        "3600ss",
        "1e3",
        "9" * 100,
        [3600],
        {"ttl": 1},
        b"3600",
    ],
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_parse_duration_message_names_value_and_forms() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("abc")
    message = str(info.value)
    assert '"abc"' in message
    assert "3600" in message and "30m" in message and "1h30m" in message


def test_parse_duration_message_for_negative_values() -> None:
    with pytest.raises(ValueError, match="negative") as info:
        parse_duration("-5m")
    assert '"-5m"' in str(info.value)


def test_parse_duration_refuses_bool_even_though_it_is_an_int() -> None:
    with pytest.raises(ValueError, match="True"):
        parse_duration(True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (30, "30s"),
        (59, "59s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (3661, "1h1m1s"),
        (5400, "1h30m0s"),
        (768 * HOUR, "768h0m0s"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 61, 3599, 3600, 86399, 768 * HOUR, 10**9])
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("value", [1.5, "60", True, None])
def test_format_duration_needs_an_int(value: object) -> None:
    with pytest.raises(TypeError):
        format_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    "0", "7", "3600", "007", "0s", "90s", "1m", "1h", "768h", "2d", "1h30m", "1d2h3m4s", "1s1s", "10m0s",
    "1.5h", "1h0.5m", "500ms", "1s500ms", "1m5ms", "1ms", ".5h", "1.", "\u0665", "\u0665h", "1\u00b5s",
])
def test_whole_number_spellings_read_as_the_exact_path_reads_them(text: str) -> None:
    """The int fast path for "1h", "3600", ... answers what the exact (fraction) path does, with and without a
    sign, and anything it does not take goes on to that path."""
    from coffer.durations import _exact

    assert parse_duration(text) == int(_exact(text, text)) == parse_duration(f" {text} ")
    if _exact(text, text) == 0:  # "-0s" is zero; "-500ms" is negative, though it rounds to 0
        assert parse_duration("-" + text) == 0
    else:
        with pytest.raises(ValueError, match="cannot be negative"):
            parse_duration("-" + text)
