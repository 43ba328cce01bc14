"""coffer.hcl: pyhcl behind one door, keeping repeated keys and telling where errors are."""

from __future__ import annotations

import json
import threading

import pytest

from coffer import hcl
from coffer.hcl import HclError, Object, Repeated


def error(text: str) -> HclError:
    with pytest.raises(HclError) as info:
        hcl.loads(text)
    assert isinstance(info.value, ValueError)
    return info.value


# --------------------------------------------------------------------------
# Values


def test_blocks_and_values() -> None:
    doc = hcl.loads('storage "sqlite" {\n  path = "/x"\n  n = 3\n}\nui = true\nlist = ["a", "b"]\n')
    assert doc == {"storage": {"sqlite": {"path": "/x", "n": 3}}, "ui": True, "list": ["a", "b"]}
    assert isinstance(doc, Object) and isinstance(doc["storage"], Object) and isinstance(doc["storage"]["sqlite"], Object)
    # Plain built-in strings all the way down, keys too.
    assert type(doc["storage"]["sqlite"]["path"]) is str
    assert all(type(k) is str for k in (*doc, *doc["storage"], *doc["storage"]["sqlite"]))


def test_heredoc_and_comments() -> None:
    doc = hcl.loads('# c\n// c\n/* c\n c */\nx = <<EOF\nhello\nworld\nEOF\ny = "q"\n')
    assert doc == {"x": "hello\nworld", "y": "q"}
    assert doc.lines == {"x": [5], "y": [9]}


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n", "\ufeff"])
def test_empty_documents(text: str) -> None:
    doc = hcl.loads(text)
    assert doc == {} and isinstance(doc, Object)


def test_byte_order_mark_is_ignored() -> None:
    assert hcl.loads('\ufeffui = true\n') == {"ui": True}
    assert hcl.loads('\ufeff{"ui": true}') == {"ui": True}


# --------------------------------------------------------------------------
# Repeated keys stay visible


def test_repeated_blocks_are_all_kept() -> None:
    # pyhcl alone merges these key by key, so the "deny" of the second would replace the first's "read".
    doc = hcl.loads('path "a" {\n  capabilities = ["read"]\n}\npath "a" {\n  capabilities = ["deny"]\n}\n')
    assert isinstance(doc["path"], Repeated)
    assert doc["path"] == [{"a": {"capabilities": ["read"]}}, {"a": {"capabilities": ["deny"]}}]
    assert doc.lines["path"] == [1, 4]


def test_repeated_value_inside_a_block() -> None:
    doc = hcl.loads('listener "tcp" {\n  tls_disable = true\n  tls_disable = false\n}\n')
    body = doc["listener"]["tcp"]
    assert isinstance(body["tls_disable"], Repeated) and body["tls_disable"] == [True, False]
    assert body.lines["tls_disable"] == [2, 3]


def test_repeated_top_level_value() -> None:
    doc = hcl.loads("ui = true\nui = false\nui = true\n")
    assert doc["ui"] == [True, False, True] and isinstance(doc["ui"], Repeated)
    assert doc.lines["ui"] == [1, 2, 3] and doc.line_of("ui") == 1


def test_a_value_and_a_block_of_one_name() -> None:
    # pyhcl alone fails on this with an internal error (or silently keeps the last, in the other order).
    for text, expected in [("t = 1\nt {\n  x = 1\n}\n", [1, {"x": 1}]), ("t {\n  x = 1\n}\nt = 1\n", [{"x": 1}, 1])]:
        doc = hcl.loads(text)
        assert isinstance(doc["t"], Repeated) and doc["t"] == expected


def test_a_list_is_not_a_repeat() -> None:
    doc = hcl.loads('a = ["x", "y"]\n')
    assert type(doc["a"]) is list


def test_lines_of_keys_and_labels() -> None:
    text = 'storage "inmem" {}\n\nlistener "tcp" {\n  address = "x"\n\n  "tls_disable" = true\n}\n'
    doc = hcl.loads(text)
    assert doc.lines == {"storage": [1], "listener": [3]}
    assert doc["listener"].lines == {"tcp": [3]}
    assert doc["listener"]["tcp"].lines == {"address": [4], "tls_disable": [6]}
    assert doc.line_of("nothing") is None


def test_lines_after_a_multi_line_string() -> None:
    doc = hcl.loads('a = "one\ntwo"\nb = 1\n')
    assert doc == {"a": "one\ntwo", "b": 1}
    assert doc.lines == {"a": [1], "b": [3]}


# --------------------------------------------------------------------------
# JSON


def test_json_is_read_with_repeated_keys_kept() -> None:
    doc = hcl.loads('{"path": {"a": {"capabilities": ["read"], "capabilities": ["deny"]}}, "n": 1}')
    caps = doc["path"]["a"]["capabilities"]
    assert isinstance(caps, Repeated) and caps == [["read"], ["deny"]]
    assert isinstance(doc, Object) and doc.lines == {}  # JSON has no lines
    assert doc.line_of("n") is None


def test_json_lists_stay_lists() -> None:
    doc = hcl.loads('  {"listener": [{"tcp": {}}, {"tcp": {}}]}')
    assert type(doc["listener"]) is list and doc["listener"] == [{"tcp": {}}, {"tcp": {}}]


def test_json_error_position() -> None:
    err = error('{\n  "a": 1\n  "b": 2\n}')
    assert (err.line, err.column) == (3, 3)
    assert str(err) == "line 3, column 3: Expecting ',' delimiter" and err.reason == "Expecting ',' delimiter"


def test_json_nested_too_deeply() -> None:
    err = error('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nested too deeply" in str(err)


def test_a_document_that_is_not_an_object() -> None:
    with pytest.raises(HclError):
        hcl.loads('["a", "b"]')  # not JSON to HCL's eyes (it starts with "["), and not HCL either


# --------------------------------------------------------------------------
# Errors: line, column, reason


def test_unexpected_token() -> None:
    err = error('storage "sqlite" {\n  path = "/x"\n  foo = = 3\n}\n')
    assert (err.line, err.column) == (3, 9)
    assert err.reason.startswith('unexpected EQUAL "="; expected ')
    assert str(err).startswith("line 3, column 9: unexpected EQUAL")
    assert err.opening is None


def test_unexpected_string_points_at_its_opening_quote() -> None:
    err = error('a = 1\nb = [1 "yy"]\n')
    assert (err.line, err.column) == (2, 8)  # pyhcl's lexer itself says the closing quote, column 11
    assert err.reason.startswith('unexpected STRING "yy"; expected ')
    err = error('a = 1\nb = [1 "two\nlines"]\n')
    assert (err.line, err.column) == (2, 8)


def test_illegal_character() -> None:
    err = error('ui = true\n  @oops = 1\n')
    assert (err.line, err.column) == (2, 3)
    assert err.reason == "Illegal character '@'"


@pytest.mark.parametrize(
    ("text", "end_line", "what", "opened"),
    [
        ('a = 1\nlistener "tcp" {\n  x = 1\n', 3, '"{"', (2, 16)),
        ('a = [1,\n  2\n', 2, '"["', (1, 5)),
        ('a = 1\nb = "http://x\n\n\n', 2, "string", (2, 5)),
        ('b = "${x\n', 1, "string", (1, 5)),
        ("x = <<EOF\nabc\n", 2, "heredoc <<EOF", (1, 5)),
        ("x = 1\n/* hello\n", 2, "comment", (2, 1)),
    ],
)
def test_never_closed(text: str, end_line: int, what: str, opened: tuple[int, int]) -> None:
    err = error(text)
    assert (err.line, err.column) == (end_line, None)
    assert str(err) == (
        f"line {end_line}: unexpected end of file: the {what} at line {opened[0]}, column {opened[1]} is never closed"
    )
    assert err.opening is not None
    assert (err.opening.line, err.opening.column) == opened
    assert err.opening.reason == f"unexpected end of file: this {what} is never closed"


def test_end_of_file_with_nothing_open() -> None:
    err = error("a = 1\nfoo =\n\n")
    assert (err.line, err.column, err.opening) == (2, None, None)
    assert err.reason.startswith("unexpected end of file; expected ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("a = /\n", 'unexpected DIVIDE "/"'), ("a = 1 */ 2\n", "unexpected"), ("a = <<\n", "heredoc needs a marker")],
)
def test_other_lexer_errors(text: str, fragment: str) -> None:
    err = error(text)
    assert err.line == 1 and err.column is not None
    assert fragment in err.reason


def test_failure_inside_pyhcl_has_a_line() -> None:
    err = error("a = 1\nb = 1/0\n")  # pyhcl computes 1/0 while parsing
    assert err.line == 2
    assert err.reason == "could not parse the HCL (ZeroDivisionError: division by zero)"


def test_an_error_leaves_the_parser_usable() -> None:
    error('a = "never closed')
    error("a = {\n")
    assert hcl.loads("a = 1\n") == {"a": 1}
    assert hcl.loads("a = 1\n").lines == {"a": [1]}  # lines start over for each text


def test_threads_parse_side_by_side() -> None:
    texts = [f'path "p{i}" {{\n  capabilities = ["read"]\n}}\n' * 3 for i in range(8)]
    results: dict[int, object] = {}

    def work(i: int) -> None:
        for _ in range(20):
            results[i] = hcl.loads(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert results[i] == {"path": [{f"p{i}": {"capabilities": ["read"]}}] * 3}


def test_hcl_and_json_give_the_same_values() -> None:
    text = 'storage "sqlite" {\n  path = "/x"\n}\nlistener "tcp" {\n  tls_disable = true\n}\nmax_lease_ttl = "1h"\n'
    from_hcl = hcl.loads(text)
    assert hcl.loads(json.dumps(from_hcl)) == from_hcl
