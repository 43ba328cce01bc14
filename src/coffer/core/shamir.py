"""Shamir's secret sharing over GF(2^8), in HashiCorp Vault's share format.

Every byte of the secret is shared independently: it becomes the constant
term of a random polynomial of degree ``threshold - 1`` whose remaining
coefficients are drawn from :mod:`secrets`.  A share holds that polynomial
evaluated at the share's x coordinate, one byte per secret byte, followed by
a single trailing byte holding the x coordinate itself::

    share = f_0(x) || f_1(x) || ... || f_{n-1}(x) || x

The field is GF(2^8) reduced by the AES polynomial x^8 + x^4 + x^3 + x + 1
(0x11b), the same field Vault uses, so shares are interchangeable with
Vault's.  x coordinates are distinct random values in 1..255.

Splitting with ``threshold == 1`` is not supported here: a caller that wants
a single key share simply does not split.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

__all__ = ["MAX_PARTS", "MIN_PARTS", "combine", "split"]

MIN_PARTS = 2
MAX_PARTS = 255

_FIELD_POLY = 0x11B
_GENERATOR = 3

_SYSTEM_RANDOM = secrets.SystemRandom()


def _build_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return ``(exp, log)`` tables for GF(2^8) with generator 3.

    ``exp`` has 510 entries (two periods of the multiplicative group) so
    ``exp[log[a] + log[b]]`` needs no reduction modulo 255.  ``log[0]`` is
    meaningless and must never be used.
    """
    exp = [0] * 510
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        # value *= 3, i.e. value ^ (value * 2), reducing by the field polynomial.
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= _FIELD_POLY
        value = doubled ^ value
    for power in range(255, 510):
        exp[power] = exp[power - 255]
    return tuple(exp), tuple(log)


_EXP, _LOG = _build_tables()


def gf_add(a: int, b: int) -> int:
    """Add (equivalently, subtract) two field elements."""
    return a ^ b


def gf_mul(a: int, b: int) -> int:
    """Multiply two field elements."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_div(a: int, b: int) -> int:
    """Divide ``a`` by the non-zero field element ``b``."""
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] + 255 - _LOG[b]]


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    """Evaluate the polynomial with ``coefficients`` (constant term first) at ``x``."""
    result = 0
    for coefficient in reversed(coefficients):
        result = gf_mul(result, x) ^ coefficient
    return result


def split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """Split ``secret`` into ``parts`` shares, any ``threshold`` of which recover it.

    Each returned share is ``len(secret) + 1`` bytes long; the last byte is
    the share's x coordinate.
    """
    if not MIN_PARTS <= parts <= MAX_PARTS:
        raise ValueError(
            f"parts must be between {MIN_PARTS} and {MAX_PARTS}, got {parts}"
        )
    if not MIN_PARTS <= threshold <= parts:
        raise ValueError(
            f"threshold must be between {MIN_PARTS} and parts ({parts}), got {threshold}"
        )
    if len(secret) == 0:
        raise ValueError("cannot split an empty secret")

    x_coordinates = _SYSTEM_RANDOM.sample(range(1, 256), parts)

    degree = threshold - 1
    randomness = secrets.token_bytes(len(secret) * degree)

    outputs = [bytearray(len(secret) + 1) for _ in range(parts)]
    for share, x in zip(outputs, x_coordinates, strict=True):
        share[-1] = x

    for index, secret_byte in enumerate(secret):
        coefficients = (secret_byte, *randomness[index * degree : (index + 1) * degree])
        for share, x in zip(outputs, x_coordinates, strict=True):
            share[index] = _evaluate(coefficients, x)

    return [bytes(share) for share in outputs]


def combine(shares: Sequence[bytes]) -> bytes:
    """Recover the secret from shares produced by :func:`split`.

    At least ``threshold`` shares are needed to get the right answer; fewer
    shares yield an unrelated value rather than an error, since a share does
    not record the threshold.
    """
    if len(shares) < 2:
        raise ValueError(f"at least 2 shares are required to combine, got {len(shares)}")

    share_length = len(shares[0])
    if share_length < 2:
        raise ValueError("shares must be at least 2 bytes long")
    if any(len(share) != share_length for share in shares):
        raise ValueError("all shares must have the same length")

    x_coordinates = [share[-1] for share in shares]
    if len(set(x_coordinates)) != len(x_coordinates):
        raise ValueError("shares have duplicate x coordinates")

    # Lagrange basis polynomials evaluated at x = 0.  They depend only on the
    # x coordinates, so compute them once and reuse them for every byte:
    #   weight_i = prod_{j != i} x_j / (x_j - x_i)
    # Subtraction is XOR in GF(2^8), and distinct x's keep every divisor non-zero.
    weights: list[int] = []
    for i, x_i in enumerate(x_coordinates):
        numerator = 1
        denominator = 1
        for j, x_j in enumerate(x_coordinates):
            if j != i:
                numerator = gf_mul(numerator, x_j)
                denominator = gf_mul(denominator, x_j ^ x_i)
        weights.append(gf_div(numerator, denominator))

    secret = bytearray(share_length - 1)
    for index in range(share_length - 1):
        value = 0
        for share, weight in zip(shares, weights, strict=True):
            value ^= gf_mul(share[index], weight)
        secret[index] = value
    return bytes(secret)
