"""framework.tokenutil: globs, CIDR blocks and the token_* settings of roles."""

from __future__ import annotations

import pytest

from coffer.errors import InvalidRequest
from coffer.framework.fields import FieldData
from coffer.framework.tokenutil import (
    TOKEN_FIELDS,
    TokenParams,
    addr_allowed,
    check_token_type,
    cidrs_within,
    glob_match,
    parse_cidrs,
)


@pytest.mark.parametrize("pattern, value, expected", [
    ("acme/*", "acme/api", True), ("acme/*", "acme/", True), ("acme/*", "evil/acme/api", False),
    ("*", "", True), ("a*b*c", "aXXbYYc", True), ("a*b*c", "abcx", False), ("exact", "exact", True),
    ("exact", "exactly", False), ("arn:aws:iam::*:role/app-*", "arn:aws:iam::123456789012:role/app-web", True),
    ("*-prod", "api-prod", True), ("*-prod", "api-prod-2", False), ("ab*ba", "aba", False),
])
def test_glob(pattern, value, expected):
    assert glob_match(pattern, value) is expected


def test_cidrs():
    assert parse_cidrs(["10.0.0.0/8", " 127.0.0.1 ", "192.168.1.7/24", "127.0.0.1/32", ""], "x") == [
        "10.0.0.0/8", "127.0.0.1", "192.168.1.0/24", "127.0.0.1/32"]
    with pytest.raises(InvalidRequest, match='invalid token_bound_cidrs entry "300.1.1.1/8"'):
        parse_cidrs(["300.1.1.1/8"], "token_bound_cidrs")
    assert addr_allowed("10.1.2.3", ["10.0.0.0/8"]) and not addr_allowed("11.1.2.3", ["10.0.0.0/8"])
    assert addr_allowed("anything", []) and not addr_allowed("not-an-ip", ["10.0.0.0/8"])
    assert addr_allowed("::1", ["::1/128"]) and not addr_allowed("127.0.0.1", ["::1/128"])
    assert cidrs_within(["10.1.0.0/16"], ["10.0.0.0/8"]) and not cidrs_within(["192.168.0.0/16"], ["10.0.0.0/8"])
    assert cidrs_within(["1.2.3.4"], [])


def test_token_params():
    params = TokenParams()
    params.update(FieldData(TOKEN_FIELDS, {"policies": "B, a", "period": "1h", "token_ttl": "10m"}))
    assert params.token_policies == ["a", "b"] and params.token_period == 3600 and params.token_ttl == 600
    auth = params.auth(metadata={"k": "v"})
    assert auth.policies == ["a", "b"] and auth.period == 3600 and auth.metadata == {"k": "v"}
    for raw, message in (({"token_ttl": "2h", "token_max_ttl": "1h"}, "cannot be greater"),
                         ({"token_policies": "root"}, "cannot contain root"),
                         ({"token_num_uses": -1}, "cannot be negative"),
                         ({"token_type": "batch"}, "not supported")):
        with pytest.raises(InvalidRequest, match=message):
            TokenParams().update(FieldData(TOKEN_FIELDS, raw))
    assert check_token_type("SERVICE") == "service"
    with pytest.raises(InvalidRequest, match="invalid token_type"):
        check_token_type("weird")
