"""The wait between tries of a failing revocation: exponential with jitter, capped at five minutes however many
tries a long revocation_retry_window brings (a week of tries at the cap is some 2,700 of them)."""

from __future__ import annotations

import pytest

from coffer.core.expiration import backoff


def test_the_wait_doubles_from_about_a_second() -> None:
    for attempt, longest in ((1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0)):
        for _ in range(50):
            assert longest / 2 <= backoff(attempt) <= longest


@pytest.mark.parametrize("attempt", [10, 100, 1025, 5000, 10**6])
def test_the_wait_stays_capped_at_five_minutes(attempt: int) -> None:
    for _ in range(50):
        assert 150.0 <= backoff(attempt) <= 300.0
