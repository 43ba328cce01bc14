"""framework/ (fields, paths, routing, help, OpenAPI) and the mount table, without a server."""

from __future__ import annotations

import asyncio

import pytest

from coffer.errors import InvalidRequest, NotFound, UnsupportedOperation
from coffer.framework.backend import Backend, Path, match_name, openapi_template
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import CREATE, DELETE, HELP, LIST, READ, UPDATE, MountInfo, Request, Response

T = FieldType


def data(fields: dict[str, Field], raw: dict, **kw) -> FieldData:
    return FieldData(fields, raw, **kw)


# -- FieldData conversions -------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("abc", "abc"), (42, "42"), (True, "true"), (1.5, "1.5")])
def test_string(value, expected):
    assert data({"s": Field(T.STRING)}, {"s": value})["s"] == expected


@pytest.mark.parametrize(("value", "expected"), [(42, 42), ("42", 42), (" 7 ", 7), (3.0, 3)])
def test_int(value, expected):
    assert data({"n": Field(T.INT)}, {"n": value})["n"] == expected


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("1", True), ("0", False),
    ("yes", True), ("no", False), (1, True), (0, False), ("TRUE", True),
])
def test_bool(value, expected):
    assert data({"b": Field(T.BOOL)}, {"b": value})["b"] is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("1h", 3600), ("30m", 1800), ("3600s", 3600), ("3600", 3600), (3600, 3600), ("1h30m", 5400), ("2d", 172800),
])
def test_duration(value, expected):
    assert data({"ttl": Field(T.DURATION)}, {"ttl": value})["ttl"] == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("a,b", ["a", "b"]), (" a , b ,", ["a", "b"]), (["a", "b"], ["a", "b"]), ("", []), ("one", ["one"]),
])
def test_comma_list(value, expected):
    assert data({"l": Field(T.COMMA_LIST)}, {"l": value})["l"] == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("a=b,c=d", {"a": "b", "c": "d"}),
    ({"a": "b", "c": "d"}, {"a": "b", "c": "d"}),
    (["a=b", "c=d"], {"a": "b", "c": "d"}),
    ({"n": 1, "t": True}, {"n": "1", "t": "true"}),
    ("k=v=w", {"k": "v=w"}),
])
def test_kv_map(value, expected):
    assert data({"m": Field(T.KV_MAP)}, {"m": value})["m"] == expected


@pytest.mark.parametrize(("value", "expected"), [
    ('{"a": 1, "b": {"c": [1, 2]}}', {"a": 1, "b": {"c": [1, 2]}}),
    ({"a": 1}, {"a": 1}),
    ("", {}),
])
def test_map(value, expected):
    assert data({"m": Field(T.MAP)}, {"m": value})["m"] == expected


def test_raw_untouched():
    value = {"any": ["thing", 1, None]}
    assert data({"r": Field(T.RAW)}, {"r": value})["r"] is value


@pytest.mark.parametrize(("ftype", "value"), [
    (T.INT, "many"), (T.INT, True), (T.INT, 1.5), (T.INT, [1]),
    (T.BOOL, "maybe"), (T.BOOL, [True]),
    (T.DURATION, "soon"), (T.DURATION, "-1h"), (T.DURATION, True),
    (T.STRING, {"a": 1}), (T.STRING, [1]),
    (T.COMMA_LIST, 5), (T.COMMA_LIST, {"a": 1}),
    (T.KV_MAP, "novalue"), (T.KV_MAP, "=v"), (T.KV_MAP, 5),
    (T.MAP, "not json"), (T.MAP, "[1, 2]"), (T.MAP, 5),
])
def test_wrong_type_names_the_field(ftype, value):
    with pytest.raises(InvalidRequest) as info:
        data({"the_field": Field(ftype)}, {"the_field": value})
    assert '"the_field"' in str(info.value)
    assert info.value.status == 400


def test_unknown_field_is_named():
    with pytest.raises(InvalidRequest) as info:
        data({"known": Field(T.STRING)}, {"known": "x", "mystery": 1})
    message = str(info.value)
    assert '"mystery"' in message
    assert "known" in message  # says what is accepted


def test_unknown_fields_allowed_when_open():
    d = data({"known": Field(T.INT)}, {"known": "1", "extra": {"x": 1}}, open_fields=True)
    assert d["known"] == 1 and d["extra"] == {"x": 1}


def test_allowed_values():
    f = {"mode": Field(T.STRING, allowed=("a", "b"))}
    assert data(f, {"mode": "a"})["mode"] == "a"
    with pytest.raises(InvalidRequest, match='"mode"'):
        data(f, {"mode": "c"})


def test_defaults_contains_get_given_require():
    fields = {
        "a": Field(T.INT, default=5),
        "b": Field(T.COMMA_LIST, default=["x"]),
        "c": Field(T.STRING),
    }
    d = data(fields, {"c": "given"})
    assert d["a"] == 5 and "a" not in d
    assert d["b"] == ["x"]
    d["b"].append("mutated")
    assert d["b"] == ["x"], "a list default must not be shared between requests"
    assert "c" in d and d.given() == {"c": "given"}
    assert d["undeclared"] is None
    assert d.get("c") == "given" and data(fields, {}).get("c", "fallback") == "fallback"
    d.require("c")
    with pytest.raises(InvalidRequest, match='"a"'):
        d.require("a")
    with pytest.raises(InvalidRequest, match='"c"'):
        data(fields, {"c": ""}).require("c")


# -- Path and OpenAPI templates ----------------------------------------------------


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"creds/(?P<name>\w(?:[\w.-]*\w)?)", "creds/{name}"),
    ("roles/" + match_name(), "roles/{name}"),
    (r"mounts/(?P<path>.+?)/tune", "mounts/{path}/tune"),
    (r"mounts/(?P<path>.+)", "mounts/{path}"),
    ("accessors/?", "accessors"),
    (r"^config/root$", "config/root"),
    (r"(?P<path>.*)", "{path}"),
    (r"config\.json", "config.json"),
    (r"a/(?P<x>[^/]+)/b/(?P<y>\d+)", "a/{x}/b/{y}"),
    (r"a/(?P<x>[^)]+)", "a/{x}"),
    (r"a/(?P<x>[]()]+)/b", "a/{x}/b"),
    (r"a/(?P<x>[^]()]+)/b", "a/{x}/b"),
    (r"revoke(?:/(?P<url_lease_id>.+))?", "revoke/{url_lease_id}"),
])
def test_openapi_template(pattern, expected):
    assert openapi_template(pattern) == expected


def test_path_captures_become_required_string_fields_and_write_maps_to_both():
    async def handler(req, d):
        return None

    p = Path(r"roles/" + match_name(), {"write": handler, "read": handler},
             {"ttl": Field(T.DURATION, "Lease TTL.")}, synopsis="Manage roles.")
    assert p.fields["name"].type is T.STRING and p.fields["name"].required
    assert set(p.operations) == {CREATE, UPDATE, READ}
    text = p.help_text()
    assert "Manage roles." in text and "ttl (duration)" in text and "Lease TTL." in text


def _backend(**kw) -> Backend:
    calls: list[tuple[str, dict]] = []

    async def read(req: Request, d: FieldData) -> Response:
        calls.append(("read", d.given()))
        return Response(data={"name": d["name"]})

    async def update(req: Request, d: FieldData) -> None:
        calls.append(("update", d.given()))

    async def exists(req: Request, captures: dict[str, str]) -> bool:
        return captures.get("name") == "there"

    b = Backend([
        Path("roles/?", {"list": read}, synopsis="List roles."),
        Path("roles/" + match_name(), {"read": read, "update": update},
             {"ttl": Field(T.DURATION, "TTL.", default=60)}, exists=exists, synopsis="One role."),
        Path("config", {"write": update}, {"region": Field(T.STRING, "Region.", required=True)},
             synopsis="Config."),
    ], help="Test backend.\nMore.", **kw)
    b.calls = calls  # type: ignore[attr-defined]
    return b


def test_route_matches_whole_path_and_captures():
    b = _backend()
    path, captures = b.route("roles/web-1")
    assert path.pattern.startswith("roles/") and captures == {"name": "web-1"}
    assert b.route("roles")[0] is b.route("roles/")[0]


@pytest.mark.parametrize("unknown", ["nope", "roles/a/b", "config/extra", "", "roles/-bad"])
def test_route_unknown_is_404(unknown):
    with pytest.raises(NotFound) as info:
        _backend().route(unknown)
    assert info.value.status == 404


def test_field_data_rejects_capture_conflict():
    b = _backend()
    path, captures = b.route("roles/web")
    req = Request(operation=READ, path="x/roles/web", data={"name": "other"})
    with pytest.raises(InvalidRequest, match='"name"'):
        b.field_data(path, captures, req)
    ok = b.field_data(path, captures, Request(operation=READ, path="x/roles/web", data={"name": "web"}))
    assert ok["name"] == "web"


def test_resolve_write_uses_existence_check():
    b = _backend()
    path, captures = b.route("roles/there")
    req = Request(operation=UPDATE, path="x/roles/there")
    assert asyncio.run(b.resolve_write(path, req, captures)) == UPDATE
    path, captures = b.route("roles/absent")
    assert asyncio.run(b.resolve_write(path, req, captures)) == CREATE
    # Without an existence check: update if the path has one.
    path, captures = b.route("config")
    assert asyncio.run(b.resolve_write(path, req, captures)) == UPDATE


def test_handle_dispatch_create_falls_back_to_update_and_405():
    b = _backend()
    req = Request(operation=CREATE, path="x/roles/new", data={"ttl": "1h"}, relative_path="roles/new")
    asyncio.run(b.handle(req))
    assert b.calls[-1] == ("update", {"ttl": 3600, "name": "new"})
    req = Request(operation=DELETE, path="x/roles/new", relative_path="roles/new")
    with pytest.raises(UnsupportedOperation) as info:
        asyncio.run(b.handle(req))
    assert info.value.status == 405


def test_help_response_and_openapi():
    b = _backend()
    req = Request(operation=HELP, path="x/roles/web", mount=MountInfo(path="x/", type="test"),
                  relative_path="roles/web")
    resp = asyncio.run(b.handle(req))
    assert resp.raw and set(resp.data) >= {"help", "openapi"}
    # as Vault's path-help: the path asked for and the route that matched it, then that route's own help
    assert resp.data["help"].startswith("Request:        roles/web\nMatching Route: ^roles/")
    assert "One role." in resp.data["help"] and "Test backend." not in resp.data["help"]
    root = asyncio.run(b.handle(Request(operation=HELP, path="x/", mount=MountInfo(path="x/", type="test"))))
    assert root.data["help"].startswith("Test backend.")  # the mount root: the engine's own help
    paths = resp.data["openapi"]["paths"]
    assert set(paths) == {"/x/roles", "/x/roles/{name}", "/x/config"}
    role = paths["/x/roles/{name}"]
    assert role["parameters"] == [{"name": "name", "in": "path", "required": True,
                                   "description": 'The name in the path, after "roles/" (as in roles/my-name).',
                                   "schema": {"type": "string"}}]
    assert {"get", "post"} <= set(role)
    schema = role["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["ttl"]["format"] == "duration"
    assert schema["properties"]["ttl"]["default"] == 60
    assert "name" not in schema["properties"]
    config = paths["/x/config"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert config["required"] == ["region"]
    listing = paths["/x/roles"]["get"]
    assert listing["parameters"][0]["name"] == "list"


def test_list_operation_constant_used():
    b = _backend()
    path, _ = b.route("roles/")
    assert LIST in path.operations


@pytest.mark.parametrize(("ftype", "value"), [
    (T.INT, 2**63), (T.INT, -(2**63) - 1), (T.INT, "99999999999999999999999"),
    (T.DURATION, 1e20), (T.DURATION, 2**63), (T.DURATION, "99999999999999h"),
])
def test_out_of_range_numbers_are_refused(ftype, value):
    with pytest.raises(InvalidRequest, match='"big"'):
        data({"big": Field(ftype)}, {"big": value})


def test_largest_values_accepted():
    assert data({"n": Field(T.INT)}, {"n": 2**63 - 1})["n"] == 2**63 - 1
    assert data({"d": Field(T.DURATION)}, {"d": "2562047h"})["d"] == 2562047 * 3600
