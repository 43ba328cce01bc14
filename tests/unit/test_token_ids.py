"""Token ids and accessors: 24 characters, each uniform over the 62 letters and digits, drawn from the OS's
random source in one read rather than one read per character."""

from __future__ import annotations

from collections import Counter

import pytest

from coffer.core import tokens


def test_shape() -> None:
    token, accessor = tokens.new_token(), tokens.new_accessor()
    assert token.startswith("hvs.") and len(token) == 28 and len(accessor) == 24
    assert set(token[4:] + accessor) <= set(tokens._ALPHABET)
    assert len({tokens.new_token() for _ in range(1000)}) == 1000


def test_every_character_is_equally_likely(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fed every byte value once, each character comes out exactly as often as every other: the bytes that
    would favour the first characters (248-255) are drawn again, not folded in."""
    reads: list[int] = []

    def every_byte(n: int) -> bytes:
        reads.append(n)
        return bytes(range(256))

    monkeypatch.setattr(tokens.secrets, "token_bytes", every_byte)
    counts = Counter(tokens._random_text(248))
    assert set(counts) == set(tokens._ALPHABET) and set(counts.values()) == {4}
    assert reads == [256]  # one read
