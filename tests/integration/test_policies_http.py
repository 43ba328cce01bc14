"""ACL policies over real HTTP: sys/policy*, sys/policies/acl*, enforcement, capabilities."""

from __future__ import annotations

import uuid

import hvac
import pytest

DENIED = {"errors": ["permission denied"]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put_policy(server, name: str, text: str) -> None:
    r = server.request("PUT", f"sys/policy/{name}", json={"policy": text})
    assert r.status_code == 204, r.text


def token_with(server, *policies: str) -> str:
    r = server.request("POST", "auth/token/create", json={"policies": list(policies), "ttl": "1h"})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


@pytest.fixture
def kv(dev_server) -> str:
    """A fresh kv mount; answers its path (no trailing slash)."""
    path = unique("pol")
    r = dev_server.request("POST", f"sys/mounts/{path}", json={"type": "kv"})
    assert r.status_code == 204, r.text
    return path


# -- CRUD ----------------------------------------------------------------------


def test_list_includes_root_and_default(dev_server):
    body = dev_server.request("GET", "sys/policy").json()
    assert {"root", "default"} <= set(body["policies"])
    assert {"root", "default"} <= set(body["data"]["policies"])
    assert set(dev_server.client().sys.list_policies()["data"]["policies"]) >= {"root", "default"}


def test_put_get_delete(dev_server):
    name = unique("crud")
    text = 'path "secret/*" {\n  capabilities = ["read"]\n}\n'
    put_policy(dev_server, name, text)
    assert name in dev_server.request("GET", "sys/policy").json()["policies"]
    r = dev_server.request("GET", f"sys/policy/{name}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["name"] == name and body["data"]["rules"] == text
    assert body["name"] == name and body["rules"] == text  # top-level copy, as Vault
    assert dev_server.request("DELETE", f"sys/policy/{name}").status_code == 204
    assert dev_server.request("GET", f"sys/policy/{name}").status_code == 404
    assert name not in dev_server.request("GET", "sys/policy").json()["policies"]


def test_hvac_policy_calls(dev_server):
    client = dev_server.client()
    name = unique("hvac")
    client.sys.create_or_update_policy(name, 'path "a/*" { capabilities = ["list"] }')
    assert client.sys.read_policy(name)["data"]["rules"] == 'path "a/*" { capabilities = ["list"] }'
    client.sys.create_or_update_acl_policy(name, 'path "b/*" { capabilities = ["read"] }')
    assert client.sys.read_acl_policy(name)["data"]["policy"] == 'path "b/*" { capabilities = ["read"] }'
    assert name in client.sys.list_acl_policies()["data"]["keys"]
    client.sys.delete_acl_policy(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.sys.read_acl_policy(name)


def test_policies_acl_endpoints(dev_server):
    name = unique("acl")
    text = 'path "x/y" { capabilities = ["read"] }'
    r = dev_server.request("PUT", f"sys/policies/acl/{name}", json={"policy": text})
    assert r.status_code == 204, r.text
    r = dev_server.request("LIST", "sys/policies/acl")
    assert r.status_code == 200, r.text
    keys = r.json()["data"]["keys"]
    assert name in keys and "default" in keys
    assert dev_server.request("GET", "sys/policies/acl?list=true").json()["data"]["keys"] == keys
    data = dev_server.request("GET", f"sys/policies/acl/{name}").json()["data"]
    assert data == {"name": name, "policy": text}
    assert dev_server.request("DELETE", f"sys/policies/acl/{name}").status_code == 204
    assert dev_server.request("GET", f"sys/policies/acl/{name}").status_code == 404


def test_names_are_lower_cased(dev_server):
    upper = "MiXeD-" + uuid.uuid4().hex[:8].upper()
    put_policy(dev_server, upper, 'path "m/*" { capabilities = ["read"] }')
    listed = dev_server.request("GET", "sys/policy").json()["policies"]
    assert upper.lower() in listed and upper not in listed
    assert dev_server.request("GET", f"sys/policy/{upper}").json()["data"]["name"] == upper.lower()
    assert dev_server.request("GET", f"sys/policy/{upper.lower()}").status_code == 200
    # Tokens naming it in any case get the same policy.
    token = token_with(dev_server, upper)
    r = dev_server.request("GET", "auth/token/lookup-self", token=token)
    assert upper.lower() in r.json()["data"]["policies"]
    assert dev_server.request("DELETE", f"sys/policy/{upper}").status_code == 204
    assert dev_server.request("GET", f"sys/policy/{upper.lower()}").status_code == 404


def test_root_and_default_cannot_be_deleted(dev_server):
    for name in ("root", "default", "ROOT"):
        r = dev_server.request("DELETE", f"sys/policy/{name}")
        assert r.status_code == 400, (name, r.text)
        r = dev_server.request("DELETE", f"sys/policies/acl/{name}")
        assert r.status_code == 400, (name, r.text)
    assert {"root", "default"} <= set(dev_server.request("GET", "sys/policy").json()["policies"])
    # root cannot be rewritten either; default can (Vault allows it).
    r = dev_server.request("PUT", "sys/policy/root", json={"policy": 'path "*" { capabilities = ["read"] }'})
    assert r.status_code == 400, r.text


def test_read_root_and_default(dev_server):
    r = dev_server.request("GET", "sys/policy/default")
    assert r.status_code == 200 and 'auth/token/lookup-self' in r.json()["data"]["rules"]
    r = dev_server.request("GET", "sys/policy/root")
    assert r.status_code == 200 and r.json()["data"]["name"] == "root"


def test_hcl_syntax_error_mentions_line(dev_server):
    name = unique("broken")
    text = 'path "ok/*" {\n  capabilities = ["read"]\n}\n\npath "bad/*" {\n  capabilities = ["read"\n}\n'
    r = dev_server.request("PUT", f"sys/policy/{name}", json={"policy": text})
    assert r.status_code == 400, r.text
    message = r.json()["errors"][0]
    assert "line" in message.lower(), message
    assert message.lower().count("failed to parse policy") <= 1, message
    assert dev_server.request("GET", f"sys/policy/{name}").status_code == 404


@pytest.mark.parametrize("text", [
    'path "a/*" { capabilities = ["fly"] }',
    'path "a/*" { }',
    'path "a/*/b" { capabilities = ["read"] }',
    'bogus = 1',
])
def test_invalid_policy_refused(dev_server, text):
    r = dev_server.request("PUT", f"sys/policy/{unique('invalid')}", json={"policy": text})
    assert r.status_code == 400, r.text


def test_missing_policy_text(dev_server):
    r = dev_server.request("PUT", f"sys/policy/{unique('empty')}", json={})
    assert r.status_code == 400, r.text
    assert "policy" in r.json()["errors"][0]


def test_rules_is_accepted_as_old_name(dev_server):
    name = unique("rules")
    r = dev_server.request("PUT", f"sys/policy/{name}", json={"rules": 'path "r/*" { capabilities = ["read"] }'})
    assert r.status_code == 204, r.text
    assert "r/*" in dev_server.request("GET", f"sys/policy/{name}").json()["data"]["rules"]


# -- enforcement --------------------------------------------------------------------


def test_read_glob_grants_read_only(dev_server, kv):
    dev_server.request("PUT", f"{kv}/app/x", json={"v": "1"})
    dev_server.request("PUT", f"{kv}/other", json={"v": "2"})
    name = unique("reader")
    put_policy(dev_server, name, f'path "{kv}/app/*" {{ capabilities = ["read"] }}')
    token = token_with(dev_server, name)

    r = dev_server.request("GET", f"{kv}/app/x", token=token)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"v": "1"}

    r = dev_server.request("GET", f"{kv}/other", token=token)
    assert r.status_code == 403 and r.json() == DENIED

    r = dev_server.request("PUT", f"{kv}/app/x", token=token, json={"v": "hacked"})
    assert r.status_code == 403 and r.json() == DENIED
    r = dev_server.request("PUT", f"{kv}/app/new", token=token, json={"v": "new"})
    assert r.status_code == 403 and r.json() == DENIED
    r = dev_server.request("DELETE", f"{kv}/app/x", token=token)
    assert r.status_code == 403 and r.json() == DENIED
    r = dev_server.request("LIST", f"{kv}/app/", token=token)
    assert r.status_code == 403 and r.json() == DENIED

    # Nothing changed.
    assert dev_server.request("GET", f"{kv}/app/x").json()["data"] == {"v": "1"}
    assert dev_server.request("GET", f"{kv}/app/new").status_code == 404


def test_denied_sys_calls_change_nothing(dev_server, kv):
    token = token_with(dev_server, "default")
    target = unique("victim")
    r = dev_server.request("PUT", f"sys/policy/{target}", token=token, json={"policy": 'path "*" { capabilities = ["sudo"] }'})
    assert r.status_code == 403 and r.json() == DENIED
    assert dev_server.request("GET", f"sys/policy/{target}").status_code == 404
    r = dev_server.request("DELETE", f"sys/mounts/{kv}", token=token)
    assert r.status_code == 403 and r.json() == DENIED
    assert f"{kv}/" in dev_server.request("GET", "sys/mounts").json()["data"]
    r = dev_server.request("POST", f"sys/mounts/{unique('sneaky')}", token=token, json={"type": "kv"})
    assert r.status_code == 403 and r.json() == DENIED


def test_deny_beats_allow_same_pattern(dev_server, kv):
    dev_server.request("PUT", f"{kv}/shared/s", json={"v": "1"})
    allow, deny = unique("allow"), unique("deny")
    put_policy(dev_server, allow, f'path "{kv}/shared/*" {{ capabilities = ["read", "update", "create"] }}')
    put_policy(dev_server, deny, f'path "{kv}/shared/*" {{ capabilities = ["deny"] }}')
    assert dev_server.request("GET", f"{kv}/shared/s", token=token_with(dev_server, allow)).status_code == 200
    token = token_with(dev_server, allow, deny)
    r = dev_server.request("GET", f"{kv}/shared/s", token=token)
    assert r.status_code == 403 and r.json() == DENIED


def test_exact_deny_beats_glob_allow(dev_server, kv):
    dev_server.request("PUT", f"{kv}/team/open", json={"v": "1"})
    dev_server.request("PUT", f"{kv}/team/closed", json={"v": "2"})
    name = unique("mixed")
    put_policy(dev_server, name, f'path "{kv}/team/*" {{ capabilities = ["read"] }}\n'
                                 f'path "{kv}/team/closed" {{ capabilities = ["deny"] }}\n')
    token = token_with(dev_server, name)
    assert dev_server.request("GET", f"{kv}/team/open", token=token).status_code == 200
    assert dev_server.request("GET", f"{kv}/team/closed", token=token).status_code == 403


def test_plus_glob_matches_one_segment(dev_server, kv):
    for p in ("svc/a/config", "svc/b/config", "svc/a/b/config", "svc/a/other"):
        dev_server.request("PUT", f"{kv}/{p}", json={"v": p})
    name = unique("plus")
    put_policy(dev_server, name, f'path "{kv}/svc/+/config" {{ capabilities = ["read"] }}')
    token = token_with(dev_server, name)
    assert dev_server.request("GET", f"{kv}/svc/a/config", token=token).status_code == 200
    assert dev_server.request("GET", f"{kv}/svc/b/config", token=token).status_code == 200
    assert dev_server.request("GET", f"{kv}/svc/a/b/config", token=token).status_code == 403
    assert dev_server.request("GET", f"{kv}/svc/a/other", token=token).status_code == 403


def test_update_without_create(dev_server, kv):
    dev_server.request("PUT", f"{kv}/cfg/existing", json={"v": "old"})
    name = unique("updater")
    put_policy(dev_server, name, f'path "{kv}/cfg/*" {{ capabilities = ["update", "read"] }}')
    token = token_with(dev_server, name)
    # The key exists: the write is an update.
    r = dev_server.request("PUT", f"{kv}/cfg/existing", token=token, json={"v": "new"})
    assert r.status_code == 204, r.text
    assert dev_server.request("GET", f"{kv}/cfg/existing").json()["data"] == {"v": "new"}
    # A new key: the write is a create, which the policy does not grant.
    r = dev_server.request("PUT", f"{kv}/cfg/brand-new", token=token, json={"v": "x"})
    assert r.status_code == 403 and r.json() == DENIED
    assert dev_server.request("GET", f"{kv}/cfg/brand-new").status_code == 404


def test_create_without_update(dev_server, kv):
    dev_server.request("PUT", f"{kv}/inbox/existing", json={"v": "old"})
    name = unique("creator")
    put_policy(dev_server, name, f'path "{kv}/inbox/*" {{ capabilities = ["create"] }}')
    token = token_with(dev_server, name)
    assert dev_server.request("PUT", f"{kv}/inbox/new", token=token, json={"v": "1"}).status_code == 204
    r = dev_server.request("PUT", f"{kv}/inbox/existing", token=token, json={"v": "overwritten"})
    assert r.status_code == 403
    assert dev_server.request("GET", f"{kv}/inbox/existing").json()["data"] == {"v": "old"}


def test_list_capability(dev_server, kv):
    dev_server.request("PUT", f"{kv}/dir/a", json={"v": "1"})
    name = unique("lister")
    put_policy(dev_server, name, f'path "{kv}/dir/*" {{ capabilities = ["list"] }}')
    token = token_with(dev_server, name)
    r = dev_server.request("LIST", f"{kv}/dir/", token=token)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["keys"] == ["a"]
    assert dev_server.request("GET", f"{kv}/dir/a", token=token).status_code == 403


def test_policy_change_applies_to_existing_tokens(dev_server, kv):
    dev_server.request("PUT", f"{kv}/live/s", json={"v": "1"})
    name = unique("live")
    put_policy(dev_server, name, f'path "{kv}/live/*" {{ capabilities = ["read"] }}')
    token = token_with(dev_server, name)
    assert dev_server.request("GET", f"{kv}/live/s", token=token).status_code == 200
    put_policy(dev_server, name, f'path "{kv}/elsewhere/*" {{ capabilities = ["read"] }}')
    assert dev_server.request("GET", f"{kv}/live/s", token=token).status_code == 403
    put_policy(dev_server, name, f'path "{kv}/live/*" {{ capabilities = ["read"] }}')
    assert dev_server.request("GET", f"{kv}/live/s", token=token).status_code == 200
    dev_server.request("DELETE", f"sys/policy/{name}")
    assert dev_server.request("GET", f"{kv}/live/s", token=token).status_code == 403


# -- capabilities ------------------------------------------------------------------


def test_capabilities_self(dev_server, kv):
    name = unique("caps")
    put_policy(dev_server, name, f'path "{kv}/app/*" {{ capabilities = ["read", "list"] }}\n'
                                 f'path "{kv}/app/secret" {{ capabilities = ["deny"] }}\n')
    token = token_with(dev_server, name)
    r = dev_server.request("POST", "sys/capabilities-self", token=token,
                           json={"paths": [f"{kv}/app/x", f"{kv}/app/secret", f"{kv}/nothing"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"][f"{kv}/app/x"] == ["list", "read"]
    assert body[f"{kv}/app/x"] == ["list", "read"]
    assert body["data"][f"{kv}/app/secret"] == ["deny"]
    assert body["data"][f"{kv}/nothing"] == ["deny"]
    # One path: also under "capabilities" (the older single-path form).
    r = dev_server.request("POST", "sys/capabilities-self", token=token, json={"path": f"{kv}/app/x"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["capabilities"] == ["list", "read"]
    # hvac.
    caps = dev_server.client(token).sys.get_capabilities([f"{kv}/app/x"])
    assert caps["data"][f"{kv}/app/x"] == ["list", "read"]


def test_capabilities_of_another_token(dev_server, kv):
    name = unique("caps2")
    put_policy(dev_server, name, f'path "{kv}/w/*" {{ capabilities = ["create", "update"] }}')
    token = token_with(dev_server, name)
    r = dev_server.request("POST", "sys/capabilities", json={"token": token, "paths": [f"{kv}/w/a"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["capabilities"] == ["create", "update"]
    assert r.json()["capabilities"] == ["create", "update"]
    # Root has "root".
    r = dev_server.request("POST", "sys/capabilities-self", json={"paths": [f"{kv}/w/a"]})
    assert r.json()["data"][f"{kv}/w/a"] == ["root"]
    # A default token may not ask about other tokens.
    r = dev_server.request("POST", "sys/capabilities", token=token_with(dev_server, "default"),
                           json={"token": token, "paths": [f"{kv}/w/a"]})
    assert r.status_code == 403
    # By accessor.
    accessor = dev_server.request("POST", "auth/token/lookup", json={"token": token}).json()["data"]["accessor"]
    r = dev_server.request("POST", "sys/capabilities-accessor", json={"accessor": accessor, "paths": [f"{kv}/w/a"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["capabilities"] == ["create", "update"]


def test_capabilities_needs_paths(dev_server):
    r = dev_server.request("POST", "sys/capabilities-self", json={})
    assert r.status_code == 400, r.text


def test_list_without_trailing_slash_is_checked_as_folder(dev_server, kv):
    # Vault adds the trailing "/" to every list request before routing and ACL,
    # so hvac's list_secrets("dir") (LIST /v1/<mount>/dir) is allowed by "<mount>/dir/*".
    dev_server.request("PUT", f"{kv}/dir2/a", json={"v": "1"})
    name = unique("lister2")
    put_policy(dev_server, name, f'path "{kv}/dir2/*" {{ capabilities = ["list"] }}')
    token = token_with(dev_server, name)
    r = dev_server.request("LIST", f"{kv}/dir2", token=token)
    assert r.status_code == 200, (
        "LIST without a trailing slash must be authorized like Vault does (path + '/'); "
        f"server answered {r.status_code} {r.text} -- bug in core.handle/http app (not owned here)")
    assert dev_server.client(token).secrets.kv.v1.list_secrets("dir2", mount_point=kv)["data"]["keys"] == ["a"]
