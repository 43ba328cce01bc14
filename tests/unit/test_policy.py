from __future__ import annotations

import pytest

from coffer.core.acl import ACL, ALL_CAPABILITIES, ACLResult
from coffer.core.policy import (
    DEFAULT_POLICY_TEXT,
    ROOT_POLICY,
    ROOT_POLICY_NAME,
    PathRule,
    Policy,
    PolicyError,
    parse_policy,
)


def acl(*texts: str) -> ACL:
    return ACL([parse_policy(f"p{i}", t) for i, t in enumerate(texts)])


def block(pattern: str, *caps: str, extra: str = "") -> str:
    caps_list = ", ".join(f'"{c}"' for c in caps)
    return f'path "{pattern}" {{\n  capabilities = [{caps_list}]\n{extra}}}\n'


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def test_parse_hcl_basic():
    text = block("secret/*", "read", "list")
    p = parse_policy("dev", text)
    assert isinstance(p, Policy)
    assert p.name == "dev"
    assert p.raw == text
    assert p.rules == [PathRule("secret/*", frozenset({"read", "list"}))]


def test_parse_json():
    text = '{"path": {"secret/foo": {"capabilities": ["read", "update"]}}}'
    p = parse_policy("j", text)
    assert p.rules == [PathRule("secret/foo", frozenset({"read", "update"}))]


def test_parse_json_list_form():
    text = '{"path": [{"a": {"capabilities": ["read"]}}, {"b": {"capabilities": ["list"]}}]}'
    p = parse_policy("j", text)
    assert {r.pattern: r.capabilities for r in p.rules} == {
        "a": frozenset({"read"}),
        "b": frozenset({"list"}),
    }


def test_parse_name_key_allowed_and_empty_policy():
    assert parse_policy("x", 'name = "x"\n' + block("a", "read")).rules[0].pattern == "a"
    assert parse_policy("x", "").rules == []
    assert parse_policy("x", "# just a comment\n").rules == []


def test_parse_comments_and_leading_slash():
    p = parse_policy("x", '# comment\n// other\n/* multi */\npath "/secret/x" { capabilities = ["read"] }')
    assert p.rules[0].pattern == "secret/x"


@pytest.mark.parametrize(
    "legacy, expected",
    [
        ("read", {"read", "list"}),
        ("write", {"create", "read", "update", "delete", "list"}),
        ("sudo", {"create", "read", "update", "delete", "list", "sudo"}),
        ("deny", {"deny"}),
    ],
)
def test_legacy_policy_forms(legacy, expected):
    p = parse_policy("legacy", f'path "secret/x" {{ policy = "{legacy}" }}')
    assert p.rules[0].capabilities == frozenset(expected)
    assert acl(f'path "secret/x" {{ policy = "{legacy}" }}').capabilities("secret/x") == expected


def test_legacy_policy_combined_with_capabilities():
    p = parse_policy("x", 'path "secret/foo" {\n policy = "read"\n capabilities = ["create", "sudo"]\n}')
    assert p.rules[0].capabilities == {"read", "list", "create", "sudo"}


def test_deny_in_capabilities_collapses():
    p = parse_policy("x", block("a", "read", "deny", "sudo"))
    assert p.rules[0].capabilities == {"deny"}


def test_duplicate_path_blocks_in_one_policy_merge():
    text = block("secret/x", "deny") + block("secret/x", "read")
    a = ACL([parse_policy("x", text)])
    assert a.capabilities("secret/x") == {"deny"}
    text = block("secret/x", "read") + block("secret/x", "list")
    assert ACL([parse_policy("x", text)]).capabilities("secret/x") == {"read", "list"}


@pytest.mark.parametrize(
    "text, fragment",
    [
        (block("a", "read", "frobnicate"), "frobnicate"),
        (block("a", "READ"), "READ"),
        ('path "a" { policy = "admin" }', "admin"),
        ('path "a" { }', "missing capabilities"),
        ('path "a" { allowed_parameters = { "x" = [] } }', "missing capabilities"),
        ('path "a" { capabilities = ["read"]\n bogus = 1 }', "bogus"),
        ('path "a" { capabilities = ["read"]\n control_group = {} }', "not supported"),
        ('paths "a" { capabilities = ["read"] }', "paths"),
        ('key = "value"', "key"),
        ('path "a/*/b" { capabilities = ["read"] }', "'*'"),
        ('path = 3', "path"),
        ('path "a" { capabilities = "read" \n capabilities = ["list"] }', "more than once"),
        ('path "a" { capabilities = ["read"]\n allowed_parameters = ["x"] }', "allowed_parameters"),
        ('path "a" { capabilities = ["read"]\n required_parameters = 5 }', "required_parameters"),
        ('["not", "an", "object"]', "failed to parse"),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(PolicyError) as exc:
        parse_policy("bad", text)
    assert fragment in str(exc.value)
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    "text, line",
    [
        ('path "a" {\n  capabilities = ["read"\n}\n', 3),
        ('\n\n\npath "a" {\n  capabilities = ["read"] !\n}\n', 5),
        ('path "a" {\n  capabilities = ["read"]\n}\npath "b" {\n  capabilities = ["re', 5),
        ('{\n  "path": {\n    "a": {"capabilities": ["read",]}\n  }\n}', 3),
    ],
)
def test_parse_errors_report_line(text, line):
    with pytest.raises(PolicyError) as exc:
        parse_policy("bad", text)
    msg = str(exc.value)
    assert "failed to parse policy" in msg
    assert f"line {line}" in msg


def test_parse_error_unexpected_eof():
    with pytest.raises(PolicyError, match="failed to parse policy: line 2: unexpected end of file"):
        parse_policy("bad", 'path "a" {\n  capabilities = ["read"]\n')


# --------------------------------------------------------------------------
# Capabilities and matching
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cap", ["create", "read", "update", "delete", "list", "patch"])
def test_each_capability_allows_only_its_operation(cap):
    a = acl(block("secret/x", cap))
    for op in ["create", "read", "update", "delete", "list", "patch"]:
        res = a.allows("secret/x", op)
        assert res.allowed is (op == cap), (cap, op)
        assert res.sudo is False
        assert res.is_root is False
    assert a.capabilities("secret/x") == {cap}


def test_sudo_capability():
    a = acl(block("sys/raw/*", "read", "sudo"))
    res = a.allows("sys/raw/foo", "read")
    assert res.allowed and res.sudo
    assert res.capabilities == {"read", "sudo"}
    res = a.allows("sys/raw/foo", "update")
    assert not res.allowed and res.sudo


def test_deny_capability():
    a = acl(block("secret/x", "deny"))
    for op in ["create", "read", "update", "delete", "list", "patch"]:
        assert a.allows("secret/x", op).allowed is False
    assert a.capabilities("secret/x") == {"deny"}


def test_no_match_is_empty():
    a = acl(block("secret/x", "read"))
    assert a.capabilities("other/x") == set()
    res = a.allows("other/x", "read")
    assert res == ACLResult(allowed=False)


def test_unknown_operation_rejected():
    with pytest.raises(ValueError):
        acl(block("a", "read")).allows("a", "sudo")


MATCH_CASES = [
    # (patterns, path, expected capabilities)
    # prefix glob
    ([("secret/*", "read")], "secret/foo", {"read"}),
    ([("secret/*", "read")], "secret/foo/bar/baz", {"read"}),
    ([("secret/*", "read")], "secret/", {"read"}),
    ([("secret/*", "read")], "secret", set()),
    ([("secret/*", "read")], "secretx/foo", set()),
    ([("secret*", "read")], "secretx/foo", {"read"}),
    ([("secret/fo*", "read")], "secret/foo", {"read"}),
    ([("*", "read")], "anything/at/all", {"read"}),
    # exact
    ([("secret/foo", "read")], "secret/foo", {"read"}),
    ([("secret/foo", "read")], "secret/foo/", set()),
    ([("secret/foo", "read")], "secret/foobar", set()),
    # + segment
    ([("secret/+/teamb", "read")], "secret/foo/teamb", {"read"}),
    ([("secret/+/teamb", "read")], "secret/bar/teamb", {"read"}),
    ([("secret/+/teamb", "read")], "secret/foo/bar/teamb", set()),
    ([("secret/+/teamb", "read")], "secret/foo/teamb/x", set()),
    ([("secret/+/teamb", "read")], "secret/foo/teambx", set()),
    ([("secret/+", "read")], "secret/foo", {"read"}),
    ([("secret/+", "read")], "secret/foo/bar", set()),
    ([("+/config", "read")], "kv/config", {"read"}),
    ([("+/+/x", "read")], "a/b/x", {"read"}),
    ([("+/+/x", "read")], "a/x", set()),
    # + combined with trailing *
    ([("secret/+/*", "read")], "secret/foo/bar", {"read"}),
    ([("secret/+/*", "read")], "secret/foo/bar/baz", {"read"}),
    ([("secret/+/*", "read")], "secret/foo/", {"read"}),
    ([("secret/+/*", "read")], "secret/foo", set()),
    ([("secret/+/team*", "read")], "secret/foo/teamb/x", {"read"}),
    ([("secret/+/team*", "read")], "secret/foo/other", set()),
    ([("secret/+*", "read")], "secret/foo/bar", {"read"}),
    # regex metacharacters in patterns are literal
    ([("secret/a.b/+", "read")], "secret/axb/c", set()),
    ([("secret/a.b/+", "read")], "secret/a.b/c", {"read"}),
    # most specific wins
    ([("secret/*", "read"), ("secret/super-secret", "deny")], "secret/super-secret", {"deny"}),
    ([("secret/*", "read"), ("secret/super-secret", "deny")], "secret/other", {"read"}),
    ([("secret/foo*", "read"), ("secret/foo/bar*", "update")], "secret/foo/bar/baz", {"update"}),
    ([("secret/foo*", "read"), ("secret/foo/bar*", "update")], "secret/foo/baz", {"read"}),
    ([("secret/foo*", "read"), ("secret/foo/bar*", "update")], "secret/foobar", {"read"}),
    ([("secret/*", "read"), ("secret/foo/*", "deny")], "secret/foo/x", {"deny"}),
    # capabilities of different patterns never combine
    ([("secret/*", "read"), ("secret/foo/*", "update")], "secret/foo/x", {"update"}),
    # exact beats any glob
    ([("secret/foo*", "deny"), ("secret/foo", "read")], "secret/foo", {"read"}),
    ([("secret/foo", "deny"), ("secret/+", "read"), ("secret/*", "read")], "secret/foo", {"deny"}),
    # rule 1: first wildcard later wins
    ([("secret/+/teamb", "read"), ("secret/foo/+", "update")], "secret/foo/teamb", {"update"}),
    ([("+/foo/bar", "read"), ("secret/*", "update")], "secret/foo/bar", {"update"}),
    # rule 2: ending in * loses (same first-wildcard position)
    ([("secret/*", "read"), ("secret/+/teamb", "update")], "secret/foo/teamb", {"update"}),
    ([("secret/+/*", "read"), ("secret/+/teamb", "update")], "secret/foo/teamb", {"update"}),
    ([("secret/+*", "read"), ("secret/+", "update")], "secret/foo", {"update"}),
    # rule 3: more + segments loses
    ([("secret/+/+/c", "read"), ("secret/+/b/c", "update")], "secret/a/b/c", {"update"}),
    ([("secret/+/+/*", "read"), ("secret/+/b/*", "update")], "secret/a/b/c", {"update"}),
    # rule 4: shorter loses
    ([("+/ab*", "read"), ("+/a*", "update")], "x/abc", {"read"}),
    ([("secret/+/b*", "read"), ("secret/+/bc*", "update")], "secret/a/bcd", {"update"}),
    # rule 5: lexicographically smaller loses
    ([("+/b/+", "read"), ("+/+/c", "update")], "a/b/c", {"read"}),
    ([("a/+/x/+", "read"), ("a/+/+/y", "update")], "a/1/x/y", {"read"}),
    # a "+" inside a segment is a literal character
    ([("secret/a+b", "read")], "secret/a+b", {"read"}),
    ([("secret/a+b", "read")], "secret/axb", set()),
]


@pytest.mark.parametrize("rules, path, expected", MATCH_CASES)
def test_matching(rules, path, expected):
    text = "".join(block(p, c) for p, c in rules)
    assert acl(text).capabilities(path) == expected
    # The answer does not depend on the order rules were written in, nor on
    # whether they live in one policy or several.
    assert acl(*[block(p, c) for p, c in reversed(rules)]).capabilities(path) == expected


def test_same_pattern_union_across_policies():
    a = acl(block("secret/*", "read"), block("secret/*", "list", "update"))
    assert a.capabilities("secret/x") == {"read", "list", "update"}
    assert a.allows("secret/x", "update").allowed


def test_same_pattern_deny_beats_allow_across_policies():
    for order in [(0, 1), (1, 0)]:
        texts = [block("secret/x", "read", "sudo"), block("secret/x", "deny")]
        a = acl(*[texts[i] for i in order])
        assert a.capabilities("secret/x") == {"deny"}
        res = a.allows("secret/x", "read")
        assert not res.allowed and not res.sudo
    a = acl(block("secret/*", "read", "sudo"), block("secret/*", "deny"))
    assert a.capabilities("secret/anything") == {"deny"}


def test_deny_on_more_specific_glob_beats_sudo():
    a = acl(block("secret/*", "read", "sudo"), block("secret/private/*", "deny"))
    res = a.allows("secret/private/x", "read")
    assert res == ACLResult(allowed=False, capabilities=frozenset({"deny"}), pattern="secret/private/*")
    assert a.allows("secret/public", "read").sudo


def test_list_with_trailing_slash_matches_rule_without_it():
    a = acl(block("secret/metadata/foo", "list"), block("kv/+/dir", "list"))
    assert a.allows("secret/metadata/foo/", "list").allowed
    assert a.allows("kv/x/dir/", "list").allowed
    # but only for list
    assert not acl(block("secret/foo", "read")).allows("secret/foo/", "read").allowed


def test_many_rules_and_cache():
    text = "".join(block(f"secret/team{i}/*", "read") for i in range(300))
    text += block("secret/team7/private/*", "deny") + block("secret/+/shared", "list")
    a = acl(text)
    for _ in range(3):
        assert a.capabilities("secret/team7/x") == {"read"}
        assert a.capabilities("secret/team7/private/x") == {"deny"}
        assert a.capabilities("secret/team299/y/z") == {"read"}
        assert a.capabilities("secret/team1000/y") == set()
        assert a.capabilities("secret/nobody/shared") == {"list"}
    # capabilities() returns a fresh set each time
    a.capabilities("secret/team7/x").add("sudo")
    assert a.capabilities("secret/team7/x") == {"read"}


# --------------------------------------------------------------------------
# Parameter constraints
# --------------------------------------------------------------------------

PARAM_CASES = [
    # (extra HCL, data, allowed?)
    ('allowed_parameters = { "foo" = [] }', {"foo": "anything"}, True),
    ('allowed_parameters = { "foo" = [] }', {"foo": "x", "bar": "y"}, False),
    ('allowed_parameters = { "foo" = [] }', {}, True),
    ('allowed_parameters = { "foo" = ["a", "b"] }', {"foo": "a"}, True),
    ('allowed_parameters = { "foo" = ["a", "b"] }', {"foo": "c"}, False),
    ('allowed_parameters = { "foo" = ["a", "b"] }', {"foo": ["a", "b"]}, True),
    ('allowed_parameters = { "foo" = ["a", "b"] }', {"foo": ["a", "c"]}, False),
    ('allowed_parameters = { "ttl" = [1, "2"] }', {"ttl": "1"}, True),
    ('allowed_parameters = { "ttl" = [1, "2"] }', {"ttl": 2}, True),
    ('allowed_parameters = { "ttl" = [1, "2"] }', {"ttl": 3}, False),
    ('allowed_parameters = { "flag" = ["true"] }', {"flag": True}, True),
    ('allowed_parameters = { "flag" = ["true"] }', {"flag": False}, False),
    ('allowed_parameters = { "*" = [] }', {"anything": 1, "else": "x"}, True),
    ('allowed_parameters = { "*" = [] \n "foo" = ["bar"] }', {"foo": "baz"}, False),
    ('allowed_parameters = { "*" = [] \n "foo" = ["bar"] }', {"foo": "bar", "x": 1}, True),
    ('allowed_parameters = { "*" = ["x"] }', {"a": "x", "b": "x"}, True),
    ('allowed_parameters = { "*" = ["x"] }', {"a": "y"}, False),
    ('allowed_parameters = { "Foo" = [] }', {"FOO": 1}, True),
    # value globs (Vault: leading/trailing *)
    ('allowed_parameters = { "name" = ["team-*"] }', {"name": "team-a"}, True),
    ('allowed_parameters = { "name" = ["team-*"] }', {"name": "other"}, False),
    ('allowed_parameters = { "name" = ["*-prod"] }', {"name": "db-prod"}, True),
    # denied
    ('denied_parameters = { "admin" = [] }', {"admin": "x"}, False),
    ('denied_parameters = { "admin" = [] }', {"user": "x"}, True),
    ('denied_parameters = { "role" = ["root"] }', {"role": "root"}, False),
    ('denied_parameters = { "role" = ["root"] }', {"role": "dev"}, True),
    ('denied_parameters = { "role" = ["root"] }', {"role": ["dev", "root"]}, False),
    ('denied_parameters = { "*" = [] }', {"x": 1}, False),
    ('denied_parameters = { "*" = [] }', {}, True),
    ('denied_parameters = { "*" = ["bad"] }', {"x": "bad"}, False),
    ('denied_parameters = { "*" = ["bad"] }', {"x": "good"}, True),
    # denied beats allowed
    ('allowed_parameters = { "*" = [] }\n denied_parameters = { "admin" = [] }', {"admin": 1}, False),
    ('allowed_parameters = { "*" = [] }\n denied_parameters = { "admin" = [] }', {"a": 1}, True),
    ('allowed_parameters = { "role" = ["root", "dev"] }\n denied_parameters = { "role" = ["root"] }', {"role": "root"}, False),
    ('allowed_parameters = { "role" = ["root", "dev"] }\n denied_parameters = { "role" = ["root"] }', {"role": "dev"}, True),
    # required
    ('required_parameters = ["owner", "team"]', {"owner": "a", "team": "b", "x": 1}, True),
    ('required_parameters = ["owner", "team"]', {"owner": "a"}, False),
    ('required_parameters = ["owner"]', {}, False),
    ('required_parameters = ["owner"]\n allowed_parameters = { "owner" = ["me"] }', {"owner": "me"}, True),
    ('required_parameters = ["owner"]\n allowed_parameters = { "owner" = ["me"] }', {"owner": "you"}, False),
]


@pytest.mark.parametrize("extra, data, allowed", PARAM_CASES)
@pytest.mark.parametrize("op", ["create", "update"])
def test_parameter_constraints(extra, data, allowed, op):
    a = acl(block("secret/*", "create", "update", "read", extra=extra + "\n"))
    assert a.allows("secret/x", op, data).allowed is allowed


def test_parameter_constraints_only_for_writes_and_when_data_given():
    a = acl(block("secret/*", "create", "read", extra='required_parameters = ["owner"]\n'))
    assert a.allows("secret/x", "read", {}).allowed
    assert a.allows("secret/x", "create").allowed  # no data: not checked
    assert not a.allows("secret/x", "create", {}).allowed


def test_parameter_constraints_merge_for_same_pattern():
    a = acl(
        block("secret/*", "update", extra='allowed_parameters = { "a" = ["1"] }\n'),
        block("secret/*", "update", extra='allowed_parameters = { "a" = ["2"] \n "b" = [] }\n'),
    )
    assert a.allows("secret/x", "update", {"a": "1"}).allowed
    assert a.allows("secret/x", "update", {"a": "2", "b": "anything"}).allowed
    assert not a.allows("secret/x", "update", {"a": "3"}).allowed
    a = acl(
        block("secret/*", "update", extra='allowed_parameters = { "a" = ["1"] }\n'),
        block("secret/*", "update", extra='allowed_parameters = { "a" = [] }\n'),
    )
    assert a.allows("secret/x", "update", {"a": "3"}).allowed


def test_parameter_constraints_json():
    text = (
        '{"path": {"secret/*": {"capabilities": ["create"],'
        ' "allowed_parameters": {"foo": ["bar"]}, "required_parameters": ["foo"]}}}'
    )
    rule = parse_policy("j", text).rules[0]
    assert rule.allowed_parameters == {"foo": ("bar",)}
    assert rule.required_parameters == ("foo",)
    a = ACL([parse_policy("j", text)])
    assert a.allows("secret/x", "create", {"foo": "bar"}).allowed
    assert not a.allows("secret/x", "create", {"foo": "baz"}).allowed


# --------------------------------------------------------------------------
# Root and default policies
# --------------------------------------------------------------------------


def test_root_acl():
    assert ROOT_POLICY_NAME == "root"
    a = ACL([ROOT_POLICY])
    assert a.root
    assert a.capabilities("anything/at/all") == set(ALL_CAPABILITIES)
    assert a.capabilities("sys/raw") == {"create", "read", "update", "delete", "list", "sudo", "patch"}
    for op in ["create", "read", "update", "delete", "list", "patch"]:
        res = a.allows("sys/seal", op, {"anything": 1})
        assert res.allowed and res.is_root and res.sudo


def test_root_wins_over_other_policies_deny():
    a = ACL([parse_policy("deny-all", block("*", "deny")), Policy("root", "", [])])
    assert a.root
    assert a.allows("secret/x", "read").allowed


def test_non_root_acl():
    a = acl(block("*", "read"))
    assert not a.root
    assert not a.allows("x", "read").is_root


def test_default_policy():
    p = parse_policy("default", DEFAULT_POLICY_TEXT)
    patterns = {r.pattern for r in p.rules}
    assert "auth/token/lookup-self" in patterns
    a = ACL([p])
    # as in Vault: every token may use its own cubbyhole and the wrapping tools
    assert a.allows("cubbyhole/note", "create").allowed and a.allows("cubbyhole/", "list").allowed
    assert a.allows("sys/wrapping/unwrap", "update").allowed
    assert a.allows("auth/token/lookup-self", "read").allowed
    assert not a.allows("auth/token/lookup-self", "update").allowed
    assert a.allows("auth/token/renew-self", "update").allowed
    assert a.allows("auth/token/revoke-self", "update").allowed
    assert a.allows("sys/capabilities-self", "update").allowed
    assert a.allows("sys/leases/renew", "update").allowed
    assert a.allows("sys/leases/lookup", "update").allowed
    assert a.allows("sys/renew", "update").allowed
    assert a.allows("sys/internal/ui/resultant-acl", "read").allowed
    assert a.allows("sys/tools/hash", "update").allowed
    assert a.allows("sys/tools/hash/sha2-512", "update").allowed
    assert not a.allows("secret/x", "read").allowed
    assert not a.allows("auth/token/create", "update").allowed
    assert not a.allows("sys/policies/acl/default", "update").allowed
    assert a.capabilities("secret/x") == set()
    assert not any(a.allows(path, "read").sudo for path in patterns)


def test_wrapping_ttl_bounds_parse_and_merge():
    a = parse_policy("a", 'path "x/*" { capabilities = ["read"]\n min_wrapping_ttl = "1m"\n max_wrapping_ttl = 300 }')
    b = parse_policy("b", 'path "x/*" { capabilities = ["read"]\n min_wrapping_ttl = "30s"\n max_wrapping_ttl = "1h" }')
    result = ACL([a]).allows("x/y", "read")
    assert (result.min_wrapping_ttl, result.max_wrapping_ttl) == (60, 300)
    merged = ACL([a, b]).allows("x/y", "read")  # the lowest minimum, the highest maximum
    assert (merged.min_wrapping_ttl, merged.max_wrapping_ttl) == (30, 3600)
    with pytest.raises(PolicyError, match="max_wrapping_ttl cannot be less than min_wrapping_ttl"):
        parse_policy("c", 'path "x" { capabilities = ["read"]\n min_wrapping_ttl = "1h"\n max_wrapping_ttl = "1m" }')
