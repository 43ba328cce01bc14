"""More of the web UI in headless Chromium: mounts and audit devices enabled and disabled through their forms, KV on
a version 2 mount, AppRole sign-in, and renewing and revoking single leases from the Leases page.

Each test uses one real server; what the page shows is checked against the server's own HTTP answers.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from aws_support import STS_ROOT_POLICY
from browser.conftest import shot
from browser.test_ui import sign_in, start, start_with_aws
from conftest import init_and_unseal, remember_secret


def nav_titles(page) -> list[str]:
    return [t.strip() for t in page.locator("nav a").all_inner_texts()]


def seconds(text: str) -> int:
    """The number of seconds in the UI's durations ("1m 05s", "59s", "1h 00m 00s")."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([dhms])", text)
    assert parts, f"not a duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def test_mounts_audit_kv2_and_approle_sign_in(page, tmp_path, tmp_path_factory):
    server = start(tmp_path)
    try:
        _, root = init_and_unseal(server)
        sign_in(page, server, root)

        # A kv version 2 mount through the Mounts form; the server has it with version 2.
        page.click("nav a[data-page=mounts]")
        page.fill("#mount-path", "stash")
        page.select_option("#mount-type", "kv")
        page.select_option("#mount-version", "2")
        page.fill("#mount-description", "team secrets")
        page.click("form:has(#mount-path) button[type=submit]")
        expect(page.locator("#mounts-table tr", has_text="stash/")).to_contain_text("kv v2")
        # The section list now offers KV, and the page still says what was done.
        expect(page.locator("nav a[data-page=kv]")).to_be_visible()
        expect(page.locator(".messages .notice.ok")).to_contain_text("Enabled kv at stash/")
        mounts = server.request("GET", "sys/mounts", token=root).json()["data"]
        assert mounts["stash/"]["type"] == "kv" and mounts["stash/"]["options"]["version"] == "2"
        assert mounts["stash/"]["description"] == "team secrets"

        # Another one enabled, then disabled from its row: gone from the table and from the server.
        page.fill("#mount-path", "scratch")
        page.select_option("#mount-version", "1")
        page.click("form:has(#mount-path) button[type=submit]")
        expect(page.locator("#mounts-table")).to_contain_text("scratch/")
        assert "scratch/" in server.request("GET", "sys/mounts", token=root).json()["data"]
        # After a change the UI learns the mounts again; a section opened meanwhile waits for that (with a slow
        # sys/mounts the KV section still offered the disabled mount, and stayed so).
        page.route("**/v1/sys/mounts", lambda route: (time.sleep(1.0), route.continue_()))
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#mounts-table tr:has-text('scratch/') button:has-text('Disable')")
        expect(page.locator(".messages .notice.ok")).to_contain_text("Disabled scratch/")
        expect(page.locator("#mounts-table")).not_to_contain_text("scratch/")
        assert "scratch/" not in server.request("GET", "sys/mounts", token=root).json()["data"]
        # The KV section offers only what is still mounted: the one left is opened directly.
        page.click("nav a[data-page=kv]")
        expect(page.locator("h1")).to_have_text("KV stash/ version 2")
        page.unroute("**/v1/sys/mounts")

        # A file audit device through its form: the server lists it and it records requests; then disabled.
        audit_log = tmp_path_factory.mktemp("ui-audit") / "audit.log"  # not beside the storage: refused there
        page.click("nav a[data-page=audit]")
        page.fill("#audit-path", "ui-file")
        page.fill("#audit-file", str(audit_log))
        page.fill("#audit-description", "from the UI")
        page.click("form:has(#audit-path) button[type=submit]")
        expect(page.locator("#audit-list tr", has_text="ui-file/")).to_contain_text(str(audit_log))
        shot(page, "audit")
        device = server.request("GET", "sys/audit", token=root).json()["data"]["ui-file/"]
        assert device["type"] == "file" and device["options"]["file_path"] == str(audit_log)
        assert device["description"] == "from the UI"
        assert audit_log.exists() and audit_log.read_text().strip()  # at least the listing the page made
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#audit-list tr:has-text('ui-file/') button:has-text('Disable')")
        expect(page.locator("#audit-list")).to_contain_text("No audit device")
        assert server.request("GET", "sys/audit", token=root).json()["data"] == {}

        # KV version 2: write, read back hidden until shown, write again and see version 2.
        page.click("nav a[data-page=kv]")
        page.fill("#kv-new-path", "team/db")
        page.click("#kv-new button[type=submit]")
        first = f"pw-{uuid.uuid4().hex}"
        second = f"pw-{uuid.uuid4().hex}"
        remember_secret(first, second)
        page.fill("#kv-editor", json.dumps({"user": "app", "password": first}))
        page.click("#kv-save")
        secret_card = page.locator("#kv-secret")
        expect(secret_card).to_contain_text("version 1")
        expect(secret_card).to_contain_text("password")
        assert first not in page.locator("#main").inner_text()
        secret_card.locator("tr:has-text('password') button:has-text('Show')").click()
        expect(secret_card).to_contain_text(first)
        page.click("#kv-edit")
        page.fill("#kv-editor", json.dumps({"user": "app", "password": second}))
        page.click("#kv-save")
        expect(secret_card).to_contain_text("version 2")
        assert second not in page.locator("#main").inner_text()
        shot(page, "kv-v2")
        meta = server.request("GET", "stash/metadata/team/db", token=root).json()["data"]
        assert meta["current_version"] == 2 and sorted(meta["versions"]) == ["1", "2"]
        assert server.request("GET", "stash/data/team/db", token=root, params={"version": 1}).json()["data"][
            "data"] == {"user": "app", "password": first}
        assert server.request("GET", "stash/data/team/db", token=root).json()["data"]["data"] == {
            "user": "app", "password": second}

        # AppRole: a role whose tokens may read the team's secrets and list leases, nothing else.
        server.request("PUT", "sys/policies/acl/stash-reader", token=root, json={
            "policy": 'path "stash/data/team/*" {\n  capabilities = ["read"]\n}\n'
                      'path "stash/metadata/*" {\n  capabilities = ["list"]\n}\n'
                      # Listing the top of sys/leases/lookup/ needs a rule of its own: the default policy's exact
                      # rule on sys/leases/lookup decides for it otherwise (as in Vault).
                      'path "sys/leases/lookup/" {\n  capabilities = ["list", "sudo"]\n}\n'
                      'path "sys/leases/lookup/*" {\n  capabilities = ["list", "sudo"]\n}\n'}).raise_for_status()
        server.request("POST", "sys/auth/approle", token=root, json={"type": "approle"}).raise_for_status()
        server.request("POST", "auth/approle/role/ui-app", token=root, json={
            "token_policies": ["stash-reader"]}).raise_for_status()
        role_id = server.request("GET", "auth/approle/role/ui-app/role-id", token=root).json()["data"]["role_id"]
        secret_id = server.request("POST", "auth/approle/role/ui-app/secret-id", token=root).json()["data"][
            "secret_id"]
        remember_secret(secret_id)
        page.click("#sign-out")
        expect(page.locator("#login-form")).to_be_visible()
        page.click("#login-tab-approle")
        page.fill("#login-role-id", role_id)
        page.fill("#login-secret-id", str(uuid.uuid4()))
        page.click("#login-submit")
        expect(page.locator(".notice.error")).to_contain_text("Sign-in refused")
        page.fill("#login-secret-id", secret_id)
        page.click("#login-submit")
        expect(page.locator("#seal-state")).to_have_text("Unsealed")
        expect(page.locator(".who")).to_contain_text("stash-reader")
        assert nav_titles(page) == ["Seal status", "Leases", "KV"]
        page.click("nav a[data-page=leases]")
        expect(page.locator("#main")).to_contain_text("No lease.")
        page.click("nav a[data-page=kv]")
        page.click("#kv-table a.folder:has-text('team/')")
        page.click(".secret-link:has-text('db')")
        expect(page.locator("#kv-secret")).to_contain_text("version 2")
        page.locator("#kv-secret tr:has-text('password') button:has-text('Show')").click()
        expect(page.locator("#kv-secret")).to_contain_text(second)
        page.goto(f"{server.addr}/ui/#/mounts")
        expect(page.locator(".notice.error")).to_have_text(
            "Permission denied: your token's policies do not allow you to read sys/mounts.")
    finally:
        server.stop()


ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}


@pytest.fixture
def leases_server(tmp_path, moto):
    """A server with the AWS engine on moto (role ``web``) and the test engine at ``things/``."""
    server = start_with_aws(tmp_path, moto)
    root = server.root_token
    server.request("PUT", "aws/roles/web", token=root, json={
        "credential_type": "iam_user", "policy_document": json.dumps(ROLE_POLICY)}).raise_for_status()
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    yield server
    server.stop()


def test_renew_and_revoke_single_leases_from_the_leases_page(page, leases_server, moto):
    server, root = leases_server, leases_server.root_token
    renewed = server.request("GET", "things/creds/renewme", token=root, params={"ttl": "60s"}).json()["lease_id"]
    issued = [server.request("GET", "aws/creds/web", token=root).json() for _ in range(2)]
    for creds in issued:
        remember_secret(creds["data"]["secret_key"])
    users = [moto.user_of(c["data"]["access_key"]) for c in issued]
    assert all(users) and all(moto.user_exists(u) for u in users)
    sign_in(page, server, root)

    # Renew: once the TTL shown has gone down, Renew brings it back up and the expiry moves later.
    page.goto(f"{server.addr}/ui/#/leases?prefix=things/creds/renewme/")
    ttl = page.locator(f"#leases-table [data-lease='{renewed}']")
    row = page.locator("#leases-table tbody tr", has=page.locator(f"[data-lease='{renewed}']"))
    expires = row.locator("td").nth(2)
    expect(ttl).to_have_text(re.compile(r"^\d"))
    deadline = time.monotonic() + 10
    while seconds(ttl.inner_text()) > 57 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = seconds(ttl.inner_text())
    assert before <= 57
    expiry_shown = expires.inner_text()
    expiry = server.request("PUT", "sys/leases/lookup", token=root, json={"lease_id": renewed}).json()["data"][
        "expire_time"]
    row.locator("button:has-text('Renew')").click()
    expect(page.locator("#leases-message .notice.ok")).to_contain_text(f"Renewed {renewed}")
    assert seconds(ttl.inner_text()) > before
    expect(expires).not_to_have_text(expiry_shown)
    looked_up = server.request("PUT", "sys/leases/lookup", token=root, json={"lease_id": renewed}).json()["data"]
    assert looked_up["expire_time"] > expiry and looked_up["ttl"] > before
    shot(page, "lease-renewed")

    # Revoke one AWS lease from its row: that IAM user is deleted, the other stays, and the lease is no longer
    # listed.
    page.goto(f"{server.addr}/ui/#/leases?prefix=aws/creds/web/")
    expect(page.locator("#leases-table tbody tr")).to_have_count(2)
    gone, kept = issued[0]["lease_id"], issued[1]["lease_id"]
    page.click(f"[data-revoke='{gone}']")
    expect(page.locator("#leases-message .notice.ok")).to_have_text(f"Revoked {gone}.")
    expect(page.locator(f"#leases-table [data-lease='{gone}']")).to_have_text("revoked")
    assert not moto.user_exists(users[0])
    assert moto.user_exists(users[1])
    assert server.request("PUT", "sys/leases/lookup", token=root, json={"lease_id": gone}).status_code == 400
    page.reload()
    expect(page.locator("#leases-table tbody tr")).to_have_count(1)
    expect(page.locator("#leases-table")).to_contain_text(kept.rsplit("/", 1)[1])
    expect(page.locator("#leases-table")).not_to_contain_text(gone.rsplit("/", 1)[1])
    server.request("PUT", "sys/leases/revoke", token=root, json={"lease_id": kept, "sync": True}).raise_for_status()
    assert not moto.user_exists(users[1])


def test_an_assumed_role_role_made_and_used_from_the_ui(page, tmp_path, moto):
    """The role form offers every credential type with the fields each takes; an assumed_role role made there
    issues STS credentials (session token shown, the lease counting down) that moto knows as the role's."""
    server = start(tmp_path)
    try:
        _, root = init_and_unseal(server)
        server.request("POST", "sys/mounts/aws", token=root, json={"type": "aws"}).raise_for_status()
        name = f"ui-sts-root-{uuid.uuid4().hex[:8]}"
        key = moto.make_user(name, STS_ROOT_POLICY)
        server.request("POST", "aws/config/root", token=root, json={
            "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
            "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}).raise_for_status()
        trusted = moto.admin_iam().get_user(UserName=name)["User"]["Arn"]
        other_arn, role_arn = moto.make_role(trusted), moto.make_role(trusted)
        role_name = role_arn.rsplit("/", 1)[1]
        sign_in(page, server, root)

        page.click("nav a[data-page=aws]")
        page.click("#new-role")
        page.fill("#role-name", "ci")
        expect(page.locator("#role-user-path")).to_be_visible()
        expect(page.locator("#role-role-arns")).to_be_hidden()
        page.select_option("#role-type", "session_token")  # no policy at all for this type
        expect(page.locator("#role-policy-document")).to_be_hidden()
        expect(page.locator("#role-default-sts-ttl")).to_be_visible()
        page.select_option("#role-type", "assumed_role")
        expect(page.locator("#role-user-path")).to_be_hidden()
        page.fill("#role-role-arns", f"{other_arn}, {role_arn}")
        page.fill("#role-default-sts-ttl", "20m")
        page.click("#role-save")
        expect(page.locator("h1")).to_have_text("Role ci")
        expect(page.locator("#role-table")).to_contain_text(role_arn)
        expect(page.locator("#role-table")).to_contain_text("20m")
        role = server.request("GET", "aws/roles/ci", token=root).json()["data"]
        assert role["credential_type"] == "assumed_role" and role["role_arns"] == [other_arn, role_arn]
        assert role["default_sts_ttl"] == 1200 and role["user_path"] == ""

        # Two role ARNs: the page asks which to assume; a TTL may be asked for.
        page.click("#issue-link")
        page.select_option("#issue-role-arn", role_arn)
        page.fill("#issue-ttl", "15m")
        page.click("#issue-button")
        access_key = page.locator("#access-key").inner_text()
        secret = page.locator("#secret-key").get_attribute("data-value")
        session = page.locator("#session-token").get_attribute("data-value")
        for value in (secret, session):
            remember_secret(value)
        assert session and session not in page.locator("#creds").inner_text()
        assert moto.caller_arn(access_key, secret, session).startswith(
            f"arn:aws:sts::{role_arn.split(':')[4]}:assumed-role/{role_name}/")
        assert 890 <= int(page.locator("#lease-countdown").get_attribute("data-remaining")) <= 900
        expect(page.locator("#renew-button")).to_be_disabled()  # STS leases are not renewable
        page.click("#revoke-button")
        expect(page.locator("#lease-state")).to_contain_text("the lease is forgotten")
        leases = server.request("LIST", "sys/leases/lookup/aws/creds/ci/", token=root)
        assert leases.status_code == 404, leases.text
    finally:
        server.stop()
