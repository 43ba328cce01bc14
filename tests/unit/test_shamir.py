from __future__ import annotations

import random
import secrets

import pytest

from coffer.core import shamir
from coffer.core.shamir import combine, gf_div, gf_mul, split

SECRET = bytes(range(1, 33))  # 32 bytes, like a Vault root key


def _slow_mul(a: int, b: int) -> int:
    """Shift-and-add multiply in GF(2^8) mod 0x11b, independent of the tables."""
    result = 0
    while b:
        if b & 1:
            result ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return result


# --- field arithmetic ------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "product"),
    [
        (0x53, 0xCA, 0x01),  # FIPS-197: 0x53 and 0xCA are inverses
        (0x57, 0x83, 0xC1),  # FIPS-197 section 4.2
        (0x57, 0x13, 0xFE),  # FIPS-197 section 4.2.1
        (0x57, 0x02, 0xAE),
        (0x57, 0x04, 0x47),
        (0x57, 0x08, 0x8E),
        (0x57, 0x10, 0x07),
        (0x03, 0x03, 0x05),  # (x+1)^2 = x^2 + 1
        (0x80, 0x02, 0x1B),  # x^8 reduces to x^4 + x^3 + x + 1
        (0x00, 0xAB, 0x00),
        (0x01, 0xAB, 0xAB),
    ],
)
def test_gf_mul_known_products(a: int, b: int, product: int) -> None:
    assert gf_mul(a, b) == product
    assert gf_mul(b, a) == product


def test_gf_mul_matches_shift_and_add_everywhere() -> None:
    for a in range(256):
        for b in range(256):
            assert gf_mul(a, b) == _slow_mul(a, b)


def test_gf_div_inverts_mul() -> None:
    for a in range(256):
        for b in range(1, 256):
            assert gf_div(gf_mul(a, b), b) == a
    with pytest.raises(ZeroDivisionError):
        gf_div(1, 0)


# --- hand-computed known answers ---------------------------------------------
#
# Secret byte 0x42, threshold 2, random coefficient 0x03, so f(x) = 0x42 + 3x:
#   f(1) = 0x42 ^ 0x03               = 0x41
#   f(2) = 0x42 ^ (3*2 = 0x06)       = 0x44
# Recombining at x=0: weights are 2/(2^1) = 2/3 and 1/(1^2) = 1/3, so
#   secret = (0x41*2 ^ 0x44) / 3 = (0x82 ^ 0x44) / 3 = 0xC6 / 3,
# and 0x42*3 = 0x84 ^ 0x42 = 0xC6, so the answer is 0x42.
KAT_SHARES = [b"\x41\x01", b"\x44\x02"]


def test_combine_known_answer() -> None:
    assert combine(KAT_SHARES) == b"\x42"
    assert combine(list(reversed(KAT_SHARES))) == b"\x42"


def test_split_known_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shamir._SYSTEM_RANDOM, "sample", lambda population, k: [1, 2])
    monkeypatch.setattr(shamir.secrets, "token_bytes", lambda n: b"\x03" * n)
    assert split(b"\x42", 2, 2) == KAT_SHARES


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "threshold"),
    [(2, 2), (3, 2), (5, 3), (5, 5), (10, 7), (255, 2), (255, 128), (255, 255)],
)
def test_round_trip_with_threshold_subsets(parts: int, threshold: int) -> None:
    secret = secrets.token_bytes(32)
    shares = split(secret, parts, threshold)
    assert len(shares) == parts
    assert all(len(share) == len(secret) + 1 for share in shares)

    rng = random.Random(parts * 1000 + threshold)
    for _ in range(5):
        subset = rng.sample(shares, threshold)
        assert combine(subset) == secret
    # More than the threshold also works.
    assert combine(shares) == secret


@pytest.mark.parametrize("length", [1, 2, 16, 33, 64])
def test_round_trip_various_lengths(length: int) -> None:
    secret = secrets.token_bytes(length)
    shares = split(secret, 5, 3)
    assert combine(shares[1:4]) == secret


def test_x_coordinates_are_distinct_and_trailing() -> None:
    for parts in (2, 5, 255):
        shares = split(SECRET, parts, 2)
        xs = [share[-1] for share in shares]
        assert len(set(xs)) == parts
        assert all(1 <= x <= 255 for x in xs)
    # With 255 parts every non-zero x must appear exactly once.
    assert sorted(share[-1] for share in split(SECRET, 255, 2)) == list(range(1, 256))


def test_shares_do_not_contain_secret() -> None:
    shares = split(SECRET, 5, 3)
    assert all(share[:-1] != SECRET for share in shares)


def test_fewer_than_threshold_shares_do_not_recover_secret() -> None:
    for parts, threshold in [(5, 3), (10, 7), (255, 255)]:
        shares = split(SECRET, parts, threshold)
        rng = random.Random(threshold)
        for _ in range(5):
            subset = rng.sample(shares, threshold - 1)
            recovered = combine(subset)
            assert len(recovered) == len(SECRET)
            assert recovered != SECRET


def test_splits_are_randomised() -> None:
    assert split(SECRET, 3, 2) != split(SECRET, 3, 2)


# --- parameter validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "threshold", "match"),
    [
        (1, 1, "parts"),
        (0, 2, "parts"),
        (256, 2, "parts"),
        (5, 1, "threshold"),
        (5, 0, "threshold"),
        (5, 6, "threshold"),
        (2, 3, "threshold"),
    ],
)
def test_split_rejects_bad_parameters(parts: int, threshold: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split(SECRET, parts, threshold)


def test_split_rejects_empty_secret() -> None:
    with pytest.raises(ValueError, match="empty"):
        split(b"", 5, 3)


def test_combine_rejects_too_few_shares() -> None:
    shares = split(SECRET, 3, 2)
    with pytest.raises(ValueError, match="at least 2 shares"):
        combine(shares[:1])
    with pytest.raises(ValueError, match="at least 2 shares"):
        combine([])


def test_combine_rejects_mismatched_lengths() -> None:
    shares = split(SECRET, 3, 2)
    with pytest.raises(ValueError, match="same length"):
        combine([shares[0], shares[1][1:]])


def test_combine_rejects_short_shares() -> None:
    with pytest.raises(ValueError, match="at least 2 bytes"):
        combine([b"\x01", b"\x02"])
    with pytest.raises(ValueError, match="at least 2 bytes"):
        combine([b"", b""])


def test_combine_rejects_duplicate_x_coordinates() -> None:
    shares = split(SECRET, 3, 2)
    with pytest.raises(ValueError, match="duplicate"):
        combine([shares[0], shares[1], shares[0]])
    forged = shares[1][:-1] + shares[0][-1:]
    with pytest.raises(ValueError, match="duplicate"):
        combine([shares[0], forged])
