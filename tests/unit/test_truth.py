"""coffer.truth: one set of boolean words, and what each place that reads booleans makes of them."""

from __future__ import annotations

import asyncio

import pytest

from coffer.config import ConfigError, parse_config
from coffer.core.audit import AuditBroker, AuditDevice
from coffer.errors import InvalidRequest
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import LIST, READ
from coffer.http.app import _operation
from coffer.storage.inmem import InmemStorage
from coffer.truth import FALSE_WORDS, PARSEBOOL_FALSE, PARSEBOOL_TRUE, TRUE_WORDS, parse_bool

# Go's strconv.ParseBool, which Vault uses.
GO_TRUE = ["1", "t", "T", "TRUE", "true", "True"]
GO_FALSE = ["0", "f", "F", "FALSE", "false", "False"]


def test_the_word_sets() -> None:
    assert PARSEBOOL_TRUE == {w.lower() for w in GO_TRUE}
    assert PARSEBOOL_FALSE == {w.lower() for w in GO_FALSE}
    assert TRUE_WORDS == PARSEBOOL_TRUE | {"y", "yes", "on"}
    assert FALSE_WORDS == PARSEBOOL_FALSE | {"n", "no", "off"}
    assert not TRUE_WORDS & FALSE_WORDS


@pytest.mark.parametrize("word", [*GO_TRUE, "yes", "Y", "on", " true ", "tRuE"])
def test_true_words(word: str) -> None:
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", [*GO_FALSE, "no", "N", "OFF", "\tfalse\n"])
def test_false_words(word: str) -> None:
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["", " ", "maybe", "2", "-1", "yess", "truee", "nil", "none"])
def test_other_words_are_refused(word: str) -> None:
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool(word)


@pytest.mark.parametrize("value", [None, 1, True, b"true"])
def test_only_text_is_parsed(value: object) -> None:
    with pytest.raises(ValueError):
        parse_bool(value)  # type: ignore[arg-type]


def test_strict_is_go_parsebool_only() -> None:
    for word in GO_TRUE:
        assert parse_bool(word, strict=True) is True
    for word in GO_FALSE:
        assert parse_bool(word, strict=True) is False
    for word in ("yes", "no", "on", "off", "y", "n"):
        with pytest.raises(ValueError):
            parse_bool(word, strict=True)


# -- the places that read booleans -------------------------------------------------


@pytest.mark.parametrize("word", ["true", "1", "t", "yes", "on", "TRUE"])
def test_query_flags_take_every_true_word(word: str) -> None:
    assert _operation("GET", {"list": word}) == LIST


@pytest.mark.parametrize("word", ["false", "0", "", "maybe", "no"])
def test_query_flags_read_any_other_word_as_false(word: str) -> None:
    assert _operation("GET", {"list": word}) == READ


@pytest.mark.parametrize(("value", "expected"), [("on", True), ("off", False), ("y", True), ("n", False), ("", False),
                                                 ("  ", False), ("F", False), (2, True), (0, False)])
def test_bool_fields(value: object, expected: bool) -> None:
    assert FieldData({"b": Field(FieldType.BOOL)}, {"b": value})["b"] is expected


@pytest.mark.parametrize("value", ["maybe", "2", 1.5, ["true"]])
def test_bool_fields_refuse_other_values(value: object) -> None:
    with pytest.raises(InvalidRequest):
        FieldData({"b": Field(FieldType.BOOL)}, {"b": value})["b"]


@pytest.mark.parametrize(("word", "expected"), [('"T"', True), ('"False"', False), ('"on"', None), ('"y"', None)])
def test_configuration_reads_booleans_as_vault_does(word: str, expected: bool | None) -> None:
    text = f'storage "inmem" {{}}\nlistener "tcp" {{\n  tls_disable = true\n}}\nui = {word}\n'
    if expected is None:
        with pytest.raises(ConfigError, match="ui must be true or false"):
            parse_config(text)
    else:
        assert parse_config(text).ui is expected


def test_audit_options_must_be_boolean_words(tmp_path) -> None:
    broker = AuditBroker(InmemStorage())
    log = str(tmp_path / "audit.log")
    for name in ("log_raw", "hmac_accessor", "elide_list_responses"):
        with pytest.raises(InvalidRequest, match=f"{name} must be true or false"):
            asyncio.run(broker.enable("file/", "file", "", {"file_path": log, name: "maybe"}))
    asyncio.run(broker.enable("file/", "file", "", {"file_path": log, "log_raw": "yes", "hmac_accessor": "off"}))
    device = broker.devices["file/"]
    assert device.raw is True and device.hash_accessor is False
    broker.close()


def test_audit_option_from_an_older_table_keeps_the_hashing_default() -> None:
    device = AuditDevice("file/", "file", options={"file_path": "discard", "log_raw": "maybe", "hmac_accessor": "?"})
    assert device.raw is False and device.hash_accessor is True
