from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid

import pytest

from coffer.framework.template import (
    MAX_NESTING_DEPTH,
    MAX_TEMPLATE_LENGTH,
    Template,
    TemplateError,
    compile_template,
)

NOW = 1700000000.123456  # 2023-11-14T22:13:20.123456Z, a Tuesday
CTX = {
    "DisplayName": "token-alice",
    "PolicyName": "default",
    "RoleName": "Admin-Role",
    "Type": "IAM",
    "Empty": "",
}

AWS_DEFAULT = (
    '{{ if (eq .Type "STS") }}'
    '{{ printf "vault-%s-%s"  (unix_time) (random 20) | truncate 32 }}'
    "{{ else }}"
    '{{ printf "vault-%s-%s-%s" (printf "%s-%s" (.DisplayName) (.PolicyName) | truncate 42) '
    "(unix_time) (random 20) | truncate 64 }}"
    "{{ end }}"
)


def render(text: str, ctx: dict[str, str] | None = None, now: float | None = NOW) -> str:
    return compile_template(text).render(CTX if ctx is None else ctx, now=now)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Deterministic rendering
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literal text and fields
        ("", ""),
        ("plain text", "plain text"),
        ("{{ .DisplayName }}", "token-alice"),
        ("{{.DisplayName}}-{{.PolicyName}}", "token-alice-default"),
        ("vault-{{ .Empty }}-x", "vault--x"),
        # string literals
        ('{{ "a\\"b\\\\c" }}', 'a"b\\c'),
        ('{{ "tab\\there" }}', "tab\there"),
        ('{{ "line\\nbreak" }}', "line\nbreak"),
        ('{{ "\\x41\\u00e9\\101" }}', "A\u00e9A"),
        ('{{ `raw \\n "string"` }}', 'raw \\n "string"'),
        ("{{ `multi\nline` }}", "multi\nline"),
        ('{{ "}}" }}', "}}"),
        # integer and boolean literals print like Go
        ("{{ 42 }}", "42"),
        ("{{ -7 }}", "-7"),
        ("{{ 0x1f }}", "31"),
        ("{{ true }}/{{ false }}", "true/false"),
        # Vault's string functions
        ("{{ .DisplayName | truncate 5 }}", "token"),
        ("{{ truncate 5 .DisplayName }}", "token"),
        ("{{ .DisplayName | truncate 100 }}", "token-alice"),
        ("{{ .DisplayName | uppercase }}", "TOKEN-ALICE"),
        ("{{ .RoleName | lowercase }}", "admin-role"),
        ('{{ .DisplayName | replace "-" "_" }}', "token_alice"),
        ('{{ replace "-" "_" .DisplayName }}', "token_alice"),
        ('{{ "aaa" | replace "a" "bb" }}', "bbbbbb"),
        ('{{ "ab" | replace "" "-" }}', "-a-b-"),
        ("{{ .DisplayName | sha256 }}", sha("token-alice")),
        ("{{ .DisplayName | base64 }}", base64.b64encode(b"token-alice").decode()),
        ('{{ "" | base64 }}', ""),
        # truncate_sha256: Vault's documented example
        ('{{ "abcdefghijklmnopqrstuvwxyz" | truncate_sha256 20 }}', "abcdefghijkl872808ff"),
        ('{{ "abcdefghijklmnopqrstuvwxyz" | truncate_sha256 20 }}', "abcdefghijkl" + sha("mnopqrstuvwxyz")[:8]),
        ('{{ "short" | truncate_sha256 20 }}', "short"),
        ('{{ "exactly-nine" | truncate_sha256 12 }}', "exactly-nine"),
        # printf
        ('{{ printf "%s-%s" .DisplayName .PolicyName }}', "token-alice-default"),
        ('{{ printf "%v/%v/%v" "s" 5 true }}', "s/5/true"),
        ('{{ printf "%d" 42 }}', "42"),
        ('{{ printf "100%%" }}', "100%"),
        ('{{ printf "%.5s" .DisplayName }}', "token"),
        ('{{ printf "[%8s]" "abc" }}', "[     abc]"),
        ('{{ printf "[%-8s]" "abc" }}', "[abc     ]"),
        ('{{ printf "[%05d]" 42 }}', "[00042]"),
        ('{{ printf "[%05d]" -42 }}', "[-0042]"),
        ('{{ printf "[%+d]" 42 }}', "[+42]"),
        ('{{ printf "[%.3d]" 7 }}', "[007]"),
        ('{{ printf "[%6.2s]" "abcdef" }}', "[    ab]"),
        ('{{ printf "%s" 42 }}', "42"),
        # pipes pass the previous value as the LAST argument
        ('{{ "x" | printf "%s-%s" "a" }}', "a-x"),
        ('{{ .DisplayName | printf "%s@%s" .PolicyName }}', "default@token-alice"),
        ('{{ .DisplayName | replace "token" "T" | uppercase | truncate 4 }}', "T-AL"),
        ('{{ "ab" | eq "ab" }}', "true"),
        # parenthesised sub-pipelines, nested
        ('{{ printf "%s" (.DisplayName | truncate 5) }}', "token"),
        ('{{ printf "%s|%s" (uppercase (truncate 3 (.DisplayName))) ((.PolicyName)) }}', "TOK|default"),
        ('{{ (("deep")) | uppercase }}', "DEEP"),
        ("{{ (printf `%s` (lowercase (printf `%s` (uppercase .RoleName)))) }}", "admin-role"),
        # comparisons and logic
        ('{{ eq .Type "IAM" }}', "true"),
        ('{{ eq .Type "STS" }}', "false"),
        ('{{ eq .Type "STS" "IAM" }}', "true"),
        ('{{ ne .Type "STS" }}', "true"),
        ("{{ eq 1 1 }}{{ ne 1 2 }}{{ lt 1 2 }}{{ le 2 2 }}{{ gt 1 2 }}{{ ge 1 2 }}", "truetruetruetruefalsefalse"),
        ('{{ lt "a" "b" }}', "true"),
        ('{{ and "x" "y" }}|{{ and "" "y" }}|{{ or "" "y" }}|{{ or "x" "y" }}', "y||y|x"),
        ('{{ not "" }}{{ not .Type }}', "truefalse"),
        ("{{ or .Empty .PolicyName }}", "default"),
        # comments
        ("a{{/* a comment */}}b", "ab"),
        ("a {{- /* trimmed comment */ -}} b", "ab"),
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a  {{- .Type }}", "aIAM"),
        ("{{ .Type -}}  \n\t b", "IAMb"),
        ("a \n {{- .Type -}} \n b", "aIAMb"),
        ("a {{ .Type }} b", "a IAM b"),
        ("{{ if true -}}\n  yes\n{{- end }}", "yes"),
        ("x\n{{- if true }}\n{{- .Type }}\n{{- end }}\n", "xIAM\n"),
        ("{{ -3 }}", "-3"),  # '-' directly followed by a digit is a number, not a trim marker
    ],
)
def test_trim_markers(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("ctx_type", "expected"),
    [("IAM", "iam"), ("STS", "sts"), ("FED", "fed"), ("X", "other"), ("", "other")],
)
def test_if_else_if_else(ctx_type: str, expected: str) -> None:
    tpl = compile_template(
        '{{ if eq .Type "IAM" }}iam{{ else if eq .Type "STS" }}sts'
        '{{ else if (eq .Type "FED") }}fed{{ else }}other{{ end }}'
    )
    assert tpl.render({"Type": ctx_type}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ if .Type }}set{{ end }}", "set"),
        ("{{ if .Empty }}set{{ end }}", ""),
        ("{{ if .Empty }}set{{ else }}unset{{ end }}", "unset"),
        ("{{ if 0 }}a{{ else }}b{{ end }}", "b"),
        ("{{ if 1 }}a{{ end }}", "a"),
        ("{{ if false }}a{{ else if true }}b{{ else }}c{{ end }}", "b"),
        ('{{ if eq .Type "IAM" }}{{ if ne .PolicyName "x" }}nested{{ end }}{{ end }}', "nested"),
        ('{{ if and .Type (eq .PolicyName "default") }}both{{ end }}', "both"),
        ("{{ if or .Empty .Type }}either{{ end }}", "either"),
        ("{{ if not .Empty }}negated{{ end }}", "negated"),
    ],
)
def test_conditions(text: str, expected: str) -> None:
    assert render(text) == expected


def test_untaken_branch_needs_no_fields() -> None:
    tpl = compile_template('{{ if eq .Type "STS" }}{{ .Missing }}{{ else }}ok{{ end }}')
    assert tpl.render({"Type": "IAM"}) == "ok"
    with pytest.raises(TemplateError, match=r"\.Missing"):
        tpl.render({"Type": "STS"})


def test_and_or_short_circuit() -> None:
    # The second argument would fail (missing field) if it were evaluated.
    assert render("{{ and .Empty .Missing }}") == ""
    assert render("{{ or .Type .Missing }}") == "IAM"


# ---------------------------------------------------------------------------
# Generated values and the clock
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 20, 64, 500])
def test_random(n: int) -> None:
    value = render(f"{{{{ random {n} }}}}")
    assert re.fullmatch(f"[A-Za-z0-9]{{{n}}}", value)


def test_random_is_random() -> None:
    tpl = compile_template("{{ random 20 }}")
    assert len({tpl.render({}) for _ in range(20)}) == 20


def test_uuid() -> None:
    value = render("{{ uuid }}")
    assert str(uuid.UUID(value)) == value
    assert render("{{ uuid }}") != value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ unix_time }}", "1700000000"),
        ("{{ unix_time_millis }}", "1700000000123"),
        ('{{ timestamp "2006-01-02T15:04:05Z07:00" }}', "2023-11-14T22:13:20Z"),
        ('{{ timestamp "2006-01-02T15:04:05.000Z" }}', "2023-11-14T22:13:20.123Z"),
        ('{{ timestamp "2006-01-02 15:04:05.000000 -0700 MST" }}', "2023-11-14 22:13:20.123456 +0000 UTC"),
        ('{{ timestamp "Mon Jan 2 3:04PM" }}', "Tue Nov 14 10:13PM"),
        ('{{ timestamp "Monday, January 02, 06" }}', "Tuesday, November 14, 23"),
        ('{{ timestamp "20060102150405" }}', "20231114221320"),
        ('{{ timestamp "002 .999 pm" }}', "318 .123 pm"),
        ('{{ timestamp "05.999999999" }}', "20.123456"),  # trailing zeros trimmed
        ('{{ timestamp "05.000000000" }}', "20.123456000"),
        ('{{ timestamp "not a token" }}', "not a token"),
        ('{{ printf "%s-%s" unix_time (timestamp "2006") }}', "1700000000-2023"),
    ],
)
def test_time_functions(text: str, expected: str) -> None:
    assert render(text) == expected


def test_clock_defaults_to_now() -> None:
    before = int(time.time())
    value = int(render("{{ unix_time }}", now=None))
    assert before <= value <= int(time.time())
    millis = int(render("{{ unix_time_millis }}", now=None))
    assert abs(millis - time.time() * 1000) < 5000


def test_timestamp_single_digit_fields() -> None:
    # 2024-01-05T03:04:05Z: unpadded and padded forms differ
    assert render('{{ timestamp "1/2 3:4:5 _2|01|02|03|04|05" }}', now=1704423845) == "1/5 3:4:5  5|01|05|03|04|05"


# ---------------------------------------------------------------------------
# Vault's default AWS template
# ---------------------------------------------------------------------------


def test_aws_default_template_iam() -> None:
    tpl = compile_template(AWS_DEFAULT)
    value = tpl.render({"Type": "IAM", "DisplayName": "token-alice", "PolicyName": "default"}, now=NOW)
    assert re.fullmatch(r"vault-token-alice-default-1700000000-[A-Za-z0-9]{20}", value)


def test_aws_default_template_iam_truncates_to_64() -> None:
    tpl = compile_template(AWS_DEFAULT)
    ctx = {"Type": "IAM", "DisplayName": "d" * 50, "PolicyName": "p" * 50}
    value = tpl.render(ctx, now=NOW)
    assert len(value) == 64
    # display-policy is cut to 42 characters first
    assert value.startswith("vault-" + "d" * 42 + "-1700000000-")


def test_aws_default_template_sts() -> None:
    tpl = compile_template(AWS_DEFAULT)
    value = tpl.render({"Type": "STS", "DisplayName": "token-alice", "PolicyName": "default"}, now=NOW)
    assert len(value) <= 32
    assert re.fullmatch(r"vault-1700000000-[A-Za-z0-9]{15}", value)


def test_aws_default_template_bounds() -> None:
    tpl = compile_template(AWS_DEFAULT)
    unbounded = {"DisplayName": None, "PolicyName": None, "Type": None}
    assert tpl.max_length(unbounded) == 64
    assert tpl.max_length({}) == 64
    assert tpl.max_length_when(unbounded, {"Type": "IAM"}) == 64
    assert tpl.max_length(unbounded, fixed={"Type": "IAM"}) == 64
    assert tpl.max_length_when(unbounded, {"Type": "STS"}) == 32
    # Short fields: 6 + len("ab-c") + 1 + 11 + 1 + 20
    assert tpl.max_length_when({"DisplayName": 2, "PolicyName": 1}, {"Type": "IAM"}) == 43


# ---------------------------------------------------------------------------
# max_length
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bounds", "expected"),
    [
        ("plain", {}, 5),
        ("{{ .DisplayName }}", {"DisplayName": 10}, 10),
        ("{{ .DisplayName }}", {"DisplayName": None}, None),
        ("{{ .DisplayName }}", {}, None),  # fields without a bound are unbounded
        ('{{ printf "vault-%s" .DisplayName }}', {"DisplayName": None}, None),
        ('{{ printf "vault-%s" .DisplayName }}', {"DisplayName": 10}, 16),
        ('{{ printf "vault-%s" .DisplayName | truncate 20 }}', {"DisplayName": None}, 20),
        ('{{ printf "vault-%.4s" .DisplayName }}', {"DisplayName": None}, 10),
        ('{{ printf "%8s" .DisplayName }}', {"DisplayName": 3}, 8),
        ('{{ printf "%d" 12345 }}', {}, 5),
        ("{{ .DisplayName | truncate 5 }}", {"DisplayName": 3}, 3),
        ("{{ .DisplayName | truncate_sha256 20 }}", {"DisplayName": None}, 20),
        ("{{ .DisplayName | truncate_sha256 20 }}", {"DisplayName": 12}, 12),
        ("{{ .DisplayName | uppercase | lowercase }}", {"DisplayName": 7}, 7),
        # replace: shorter replacement keeps the bound, longer makes it grow
        ('{{ .DisplayName | replace "-" "_" }}', {"DisplayName": None}, None),
        ('{{ .DisplayName | replace "-" "_" }}', {"DisplayName": 10}, 10),
        ('{{ .DisplayName | replace "--" "" }}', {"DisplayName": 10}, 10),
        ('{{ .DisplayName | replace "-" "__" }}', {"DisplayName": 10}, 20),
        ('{{ .DisplayName | replace "-" "__" }}', {"DisplayName": None}, None),
        ('{{ .DisplayName | replace "-" "__" | truncate 30 }}', {"DisplayName": None}, 30),
        ('{{ .DisplayName | replace "" "x" }}', {"DisplayName": 3}, 7),
        ('{{ .DisplayName | replace .PolicyName "xx" }}', {"DisplayName": 3}, 11),  # pattern may be empty
        # fixed-length functions
        ("{{ .DisplayName | sha256 }}", {"DisplayName": None}, 64),
        ("{{ uuid }}", {}, 36),
        ("{{ random 20 }}", {}, 20),
        ("{{ unix_time }}-{{ unix_time_millis }}", {}, 26),
        ('{{ timestamp "2006-01-02T15:04:05Z07:00" }}', {}, 20),
        ('{{ timestamp "Monday January" }}', {}, 19),
        ("{{ .DisplayName | base64 }}", {"DisplayName": 3}, 16),  # up to 12 UTF-8 bytes
        ("{{ .DisplayName | base64 }}", {"DisplayName": None}, None),
        # constants are folded exactly
        ('{{ "abc" | uppercase | replace "B" "bbbb" }}', {}, 6),
        ('{{ eq "a" "b" }}', {}, 5),
        # branches: the longest counts; decided conditions prune
        ('{{ if eq .Type "x" }}{{ random 10 }}{{ else }}{{ random 30 }}{{ end }}', {}, 30),
        ('{{ if eq .Type "x" }}{{ .DisplayName }}{{ else }}short{{ end }}', {"DisplayName": None}, None),
        ("{{ if true }}abc{{ else }}{{ .DisplayName }}{{ end }}", {"DisplayName": None}, 3),
        ("{{ if false }}{{ .DisplayName }}{{ end }}", {"DisplayName": None}, 0),
        ("{{ if .X }}{{ random 5 }}{{ else if true }}{{ random 7 }}{{ else }}{{ .Y }}{{ end }}", {}, 7),
        ("{{ or .DisplayName .PolicyName }}", {"DisplayName": 4, "PolicyName": 9}, 9),
    ],
)
def test_max_length(text: str, bounds: dict[str, int | None], expected: int | None) -> None:
    assert compile_template(text).max_length(bounds) == expected


def test_max_length_fixed_values() -> None:
    tpl = compile_template('{{ if eq .Type "STS" }}{{ .DisplayName }}{{ else }}{{ random 12 }}{{ end }}')
    assert tpl.max_length({"DisplayName": None}) is None
    assert tpl.max_length_when({"DisplayName": None}, {"Type": "IAM"}) == 12
    assert tpl.max_length_when({"DisplayName": None}, {"Type": "STS"}) is None
    assert tpl.max_length_when({}, {"Type": "STS", "DisplayName": "abc"}) == 3


@pytest.mark.parametrize(
    "text",
    [
        AWS_DEFAULT,
        '{{ printf "v-%s-%.5s-%8s" (.DisplayName | truncate 9) .PolicyName (random 3) }}',
        '{{ .DisplayName | replace "a" "xyz" }}',
        "{{ .DisplayName | base64 }}",
        '{{ if eq .Type "IAM" }}{{ .PolicyName | truncate_sha256 12 }}{{ else }}{{ uuid }}{{ end }}',
        '{{ timestamp "Monday January 2 2006 .999" }}',
    ],
)
@pytest.mark.parametrize("type_", ["IAM", "STS"])
def test_max_length_is_an_upper_bound(text: str, type_: str) -> None:
    tpl = compile_template(text)
    bounds = {"DisplayName": 40, "PolicyName": 40}
    limit = tpl.max_length(bounds)
    assert limit is not None
    for display, policy in [("", ""), ("a" * 40, "b" * 40), ("ä€😀" * 13 + "a", "-a-" * 13)]:
        ctx = {"Type": type_, "DisplayName": display, "PolicyName": policy}
        assert len(tpl.render(ctx, now=NOW)) <= limit
        assert len(tpl.render(ctx, now=NOW)) <= tpl.max_length_when(bounds, {"Type": type_})  # type: ignore[operator]


def test_fields() -> None:
    assert compile_template(AWS_DEFAULT).fields == {"Type", "DisplayName", "PolicyName"}
    assert compile_template("{{ random 3 }}").fields == frozenset()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        # unclosed / malformed actions
        ("abc {{ .DisplayName ", r"unclosed action: expected '\}\}'", 1, 5),
        ("{{ .DisplayName }", r"unexpected character '\}' in action", 1, 17),
        ('{{ "abc }}', r"unterminated string literal", 1, 4),
        ("{{ `abc }}", r"unterminated raw string", 1, 4),
        ('{{ "\\q" }}', r"unknown escape sequence \\q", 1, 5),
        ("{{/* comment }}", r"unclosed comment", 1, 1),
        ("{{}}", r"missing pipeline", 1, 1),
        ('{{ printf (uppercase "x" }}', r"unclosed '\(': expected '\)'", 1, 11),
        ('{{ uppercase "x") }}', r"unexpected '\)'", 1, 17),
        ("{{ () }}", r"empty parentheses", 1, 4),
        ("{{ .DisplayName | }}", r"missing function after '\|'", 1, 19),
        ('{{ printf "%s""x" }}', r"expected a space between arguments", 1, 15),
        ("{{ 1.5 }}", r"only integer constants", 1, 4),
        ("{{ 007 }}", r"leading zeros", 1, 4),
        ("{{ $x }}", r"variables", 1, 4),
        ("{{ . }}", r"bare '\.'", 1, 4),
        ("{{ .A.B }}", r"chained field access", 1, 4),
        ("{{ 'c' }}", r"character constants", 1, 4),
        ("{{ .X-}}", r"unexpected '-'", 1, 6),
        # unknown functions and keywords
        ("{{ foo }}", r"unknown function 'foo'", 1, 4),
        ("x\n  {{ .DisplayName | bogus 3 }}", r"unknown function 'bogus'", 2, 21),
        ("{{ len .X }}", r"unknown function 'len' \(Go built-in", 1, 4),
        ("{{ range .X }}{{ end }}", r"\{\{range\}\} is not supported", 1, 1),
        ("{{ with .X }}{{ end }}", r"\{\{with\}\} is not supported", 1, 1),
        ("{{ nil }}", r"nil is not supported", 1, 4),
        ("{{ printf if }}", r"unexpected keyword 'if'", 1, 11),
        # arity and types
        ("{{ truncate 5 }}", r"wrong number of arguments for truncate: expected 2 arguments, got 1", 1, 4),
        ("{{ .X | truncate 1 2 }}", r"expected 2 arguments, got 3 \(including the piped value\)", 1, 9),
        ("{{ random }}", r"wrong number of arguments for random: expected 1 argument, got 0", 1, 4),
        ("{{ uuid 1 }}", r"wrong number of arguments for uuid: expected 0 arguments, got 1", 1, 4),
        ("{{ printf }}", r"expected at least 1 argument, got 0", 1, 4),
        ("{{ eq 1 }}", r"wrong number of arguments for eq", 1, 4),
        ('{{ truncate "5" .X }}', r"wrong type for argument 1 of truncate: expected int, got string", 1, 13),
        ("{{ 5 | uppercase }}", r"wrong type for argument 1 of uppercase: expected string, got int", 1, 8),
        ('{{ printf "%s %s" "a" }}', r"has 2 verb\(s\) but 1 argument\(s\)", 1, 4),
        ('{{ printf "%d" .X }}', r"%d needs an integer argument", 1, 4),
        ('{{ printf "%q" "x" }}', r"unsupported verb %q", 1, 4),
        ('{{ eq 1 "1" }}', r"incompatible types for comparison", 1, 4),
        ("{{ lt true false }}", r"invalid type for comparison: bool", 1, 4),
        ("{{ truncate 0 .X }}", r"truncate: max length must be > 0 but was 0", 1, 4),
        ("{{ truncate_sha256 8 .X }}", r"truncate_sha256: max length must be > 8 but was 8", 1, 4),
        ("{{ random -1 }}", r"random: length must be >= 0", 1, 4),
        ("{{ random 100000 }}", r"random: length must be <= ", 1, 4),
        # commands
        ('{{ "a" | "b" }}', r"cannot pipe into constant 'b'", 1, 10),
        ('{{ printf "%d" (or .X "y") }}', r"%d needs an integer argument, but argument 2 is a string", 1, 4),
        ("{{ .X | .Y }}", r"cannot pipe into field \.Y", 1, 9),
        ('{{ .X "a" }}', r"cannot give arguments to field \.X", 1, 4),
        # control structure
        ("{{ if .X }}abc", r"unterminated \{\{if\}\}: expected \{\{end\}\}", 1, 1),
        ("a\n{{ if .X }}{{ if .Y }}{{ end }}", r"unterminated \{\{if\}\}", 2, 1),
        ("{{ if }}x{{ end }}", r"missing condition for \{\{if\}\}", 1, 1),
        ("{{ end }}", r"unexpected \{\{end\}\} without a matching \{\{if\}\}", 1, 1),
        ("{{ else }}", r"unexpected \{\{else\}\} outside of \{\{if\}\}", 1, 1),
        ("{{ if .X }}{{ else }}{{ else }}{{ end }}", r"unexpected \{\{else\}\} after \{\{else\}\}", 1, 22),
        ("{{ if .X }}{{ else .Y }}{{ end }}", r"expected '\}\}' or 'if' after 'else'", 1, 20),
        ("{{ if .X }}{{ end .Y }}", r"unexpected tokens after 'end'", 1, 19),
    ],
)
def test_compile_errors(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        compile_template(text)
    assert isinstance(info.value, ValueError)
    assert (info.value.line, info.value.column) == (line, column)
    assert f"(line {line}, column {column})" in str(info.value)


@pytest.mark.parametrize(
    ("text", "ctx", "message"),
    [
        ("{{ .Missing }}", {}, r"missing field \.Missing"),
        ("{{ .DisplayName | uppercase }}", {}, r"missing field \.DisplayName"),
        ("{{ .Count }}", {"Count": 3}, r"field \.Count must be a string, got int"),
        ("{{ printf .Fmt 1 2 }}", {"Fmt": "%s"}, r"printf: format '%s' has 1 verb\(s\) but 2"),
        ("{{ printf .Fmt }}", {"Fmt": "%z"}, r"printf: unsupported verb %z"),
        # (or <string> <int>) has no static type, so these are checked while rendering
        ('{{ printf "%d" (or .Empty true) }}', {"Empty": ""}, r"printf: %d needs an integer argument, got bool"),
        (
            '{{ truncate (or .X 5) "abc" }}',
            {"X": "x"},
            r"wrong type for argument 1 of truncate: expected int, got string",
        ),
        ("{{ eq (or .A 2) 1 }}", {"A": "x"}, r"eq: incompatible types for comparison: string and int"),
        (
            '{{ .X | replace "" "0123456789" | replace "" "0123456789" | replace "" "0123456789" }}',
            {"X": "a" * 100},
            r"replace: result would exceed",
        ),
    ],
)
def test_render_errors(text: str, ctx: dict[str, object], message: str) -> None:
    tpl = compile_template(text)
    with pytest.raises(TemplateError, match=message):
        tpl.render(ctx)  # type: ignore[arg-type]


def test_error_is_value_error_with_message_attribute() -> None:
    with pytest.raises(ValueError) as info:
        compile_template("{{ foo }}")
    assert isinstance(info.value, TemplateError)
    assert info.value.message.startswith("unknown function 'foo'")


def test_limits() -> None:
    with pytest.raises(TemplateError, match="too long"):
        compile_template("x" * (MAX_TEMPLATE_LENGTH + 1))
    compile_template("x" * MAX_TEMPLATE_LENGTH)
    deep_ok = "(" * (MAX_NESTING_DEPTH - 1) + '"x"' + ")" * (MAX_NESTING_DEPTH - 1)
    assert render("{{ " + deep_ok + " }}") == "x"
    too_deep = "(" * MAX_NESTING_DEPTH + '"x"' + ")" * MAX_NESTING_DEPTH
    with pytest.raises(TemplateError, match="nested deeper"):
        compile_template("{{ " + too_deep + " }}")
    nested_ifs = "{{ if true }}" * MAX_NESTING_DEPTH + "x" + "{{ end }}" * MAX_NESTING_DEPTH
    assert render(nested_ifs) == "x"
    with pytest.raises(TemplateError, match="nested deeper"):
        compile_template("{{ if true }}" * (MAX_NESTING_DEPTH + 1) + "{{ end }}" * (MAX_NESTING_DEPTH + 1))
    with pytest.raises(TemplateError, match="width and precision"):
        compile_template('{{ printf "%99999s" "x" }}')


def test_now_validation() -> None:
    tpl = compile_template("{{ unix_time }}")
    assert tpl.render({}, now=0) == "0"
    for bad in (float("nan"), float("inf"), -1.0, 1e12):
        with pytest.raises(TemplateError, match="now must be"):
            tpl.render({}, now=bad)


def test_unicode_is_handled_per_character() -> None:
    assert render("{{ .X | truncate 2 }}", {"X": "äöü"}) == "äö"
    assert render("{{ .X | uppercase }}", {"X": "straße"}) == "STRAßE"  # length preserved, like Go
    assert render('{{ printf "%.2s" .X }}', {"X": "😀😀😀"}) == "😀😀"


def test_compile_once_render_many() -> None:
    tpl = compile_template('{{ printf "%s-%s" .DisplayName (random 4) }}')
    assert isinstance(tpl, Template)
    values = {tpl.render({"DisplayName": f"user{i}"}) for i in range(50)}
    assert len(values) == 50
    assert all(v.startswith("user") for v in values)
    start = time.perf_counter()
    for _ in range(2000):
        tpl.render({"DisplayName": "x"})
    assert (time.perf_counter() - start) / 2000 < 200e-6  # generous: a few µs in practice


def test_max_length_of_a_mixed_and_or_argument_does_not_crash():
    """Such a call always fails when rendered (a number is no string), so it adds nothing to the bound;
    before, max_length raised and the AWS engine's username_template check answered 500."""
    template = compile_template('{{ printf "app-%s" (uppercase (or 1 "a")) | truncate 64 }}')
    assert template.max_length({}) is not None
