"""The words coffer reads as true or false, in one place.

Vault reads booleans given as text with Go's ``strconv.ParseBool``: ``1``,
``t``, ``true`` and ``0``, ``f``, ``false`` (in the spellings ``T``/``TRUE``/
``True`` too; coffer compares case-insensitively). coffer also takes the
yes/no, y/n and on/off that people write in forms and flags.

This module is a leaf: it imports nothing, so every layer may use it.
"""

from __future__ import annotations

__all__ = ["FALSE_WORDS", "PARSEBOOL_FALSE", "PARSEBOOL_TRUE", "TRUE_WORDS", "parse_bool"]

#: What Go's strconv.ParseBool (so Vault) reads as true / false, lower-cased.
PARSEBOOL_TRUE = frozenset({"1", "t", "true"})
PARSEBOOL_FALSE = frozenset({"0", "f", "false"})

#: Every word coffer reads as true / false (compared after strip() and lower()).
TRUE_WORDS = PARSEBOOL_TRUE | {"y", "yes", "on"}
FALSE_WORDS = PARSEBOOL_FALSE | {"n", "no", "off"}


def parse_bool(word: str, *, strict: bool = False) -> bool:
    """``word`` as a boolean; ValueError for anything that is not a boolean word.

    With ``strict``, only the words of Go's ParseBool count (Vault's server
    configuration reads booleans that way).
    """
    if not isinstance(word, str):
        raise ValueError(f"expected true or false, not {word!r}")
    key = word.strip().lower()
    if key in (PARSEBOOL_TRUE if strict else TRUE_WORDS):
        return True
    if key in (PARSEBOOL_FALSE if strict else FALSE_WORDS):
        return False
    raise ValueError(f"expected true or false, not {word!r}")

