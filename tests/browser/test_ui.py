"""The web UI in a real (headless) Chromium against real servers: every click goes through coffer's HTTP API.

Screenshots of the main pages are saved by ``shot`` (conftest: a temporary directory, or COFFER_SCREENSHOTS).
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from aws_support import MINIMAL_ROOT_POLICY
from browser.conftest import shot
from conftest import PLUGIN_DIR, CofferProcess, free_port, init_and_unseal, remember_secret, write_config


def start(tmp_path, extra: str = "") -> CofferProcess:
    port = free_port()
    config = write_config(tmp_path, port, extra=f'ui = true\nplugin_directory = "{PLUGIN_DIR}"\n{extra}')
    return CofferProcess(["-config", str(config)], port, tmp_path).start()


def sign_in(page, server: CofferProcess, token: str) -> None:
    page.goto(f"{server.addr}/ui/")
    page.fill("#login-token", token)
    page.click("#login-submit")
    expect(page.locator("#seal-state")).to_have_text("Unsealed")


def start_with_aws(tmp_path, moto, extra: str = "") -> CofferProcess:
    """An initialized, unsealed server (root token in ``root_token``) with the AWS engine at aws/ on moto."""
    server = start(tmp_path, extra)
    _, root = init_and_unseal(server)
    server.root_token = root
    server.request("POST", "sys/mounts/aws", token=root, json={"type": "aws"}).raise_for_status()
    key = moto.make_user(f"ui-root-{uuid.uuid4().hex[:8]}", MINIMAL_ROOT_POLICY)
    server.request("POST", "aws/config/root", token=root, json={
        "access_key": key.access_key_id, "secret_key": key.secret_access_key, "region": "us-east-1",
        "iam_endpoint": moto.endpoint, "sts_endpoint": moto.endpoint}).raise_for_status()
    return server


@pytest.fixture
def aws_server(tmp_path, moto):
    server = start_with_aws(tmp_path, moto, 'revocation_retry_window = "1s"\n')
    root = server.root_token
    server.request("POST", "aws/config/lease", token=root, json={"lease": "90s", "lease_max": "10m"}
                   ).raise_for_status()
    yield server
    server.stop()


def test_login_role_credentials_countdown_revoke(page, aws_server, moto):
    server, root = aws_server, aws_server.root_token
    page.goto(f"{server.addr}/ui/")
    expect(page.locator("#login-form")).to_be_visible()
    shot(page, "login")
    page.fill("#login-token", "s.not-a-real-token")
    page.click("#login-submit")
    expect(page.locator(".notice.error")).to_contain_text("not valid")
    page.fill("#login-token", root)
    page.click("#login-submit")
    expect(page.locator("#seal-state")).to_have_text("Unsealed")
    shot(page, "status")

    # A new role: the policy document is checked as it is typed.
    page.click("nav a[data-page=aws]")
    page.click("#new-role")
    page.fill("#role-name", "web")
    page.fill("#role-policy-document", '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",\n'
                                       '  "Action": "iam:GetUser" "Resource": "*"}]}')
    expect(page.locator("#role-policy-document-message")).to_contain_text("not valid JSON")
    expect(page.locator(".gutter .line.error")).to_have_text("2")
    expect(page.locator("#role-save")).to_be_disabled()
    page.fill("#role-policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Permit", "Action": "iam:GetUser", "Resource": "*"}]}, indent=2))
    expect(page.locator("#role-policy-document-message")).to_contain_text('Effect must be "Allow" or "Deny"')
    shot(page, "aws-role-editor")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:GetUser", "iam:ListUsers"],
                                                      "Resource": "*"}]}
    page.fill("#role-policy-document", json.dumps(policy, indent=2))
    expect(page.locator("#role-policy-document-message")).to_have_text("The policy document looks valid.")
    page.click("#role-save")
    expect(page.locator("h1")).to_have_text("Role web")
    assert json.loads(server.request("GET", "aws/roles/web", token=root).json()["data"]["policy_document"]) == policy

    # Issue credentials: copy buttons, the secret hidden until asked, the lease counting down.
    page.click("#issue-link")
    page.click("#issue-button")
    access_key = page.locator("#access-key").inner_text()
    secret = page.locator("#secret-key").get_attribute("data-value")
    remember_secret(secret)
    assert access_key.startswith("AKIA") and secret and secret not in page.locator("#creds").inner_text()
    lease_id = page.locator("#lease-id").inner_text()
    assert lease_id.startswith("aws/creds/web/")
    user = moto.user_of(access_key)
    assert user and moto.user_exists(user)
    assert moto.iam(access_key, secret).get_user(UserName=user)  # the key works
    countdown = page.locator("#lease-countdown")
    first = int(countdown.get_attribute("data-remaining"))
    assert 80 <= first <= 90
    expect(countdown).not_to_have_attribute("data-remaining", str(first), timeout=5000)
    assert int(countdown.get_attribute("data-remaining")) < first
    expect(countdown).to_contain_text(re.compile(r"expires in 1m \d\ds"))
    shot(page, "aws-credentials")

    # The lease is listed under its prefix; revoking it deletes the IAM user.
    page.goto(f"{server.addr}/ui/#/leases?prefix=aws/creds/web/")
    expect(page.locator("#leases-table")).to_contain_text(lease_id.rsplit("/", 1)[1])
    shot(page, "leases")
    page.go_back()
    page.click("#issue-button")
    second_lease = page.locator("#lease-id").inner_text()
    remember_secret(page.locator("#secret-key").get_attribute("data-value"))
    second_user = moto.user_of(page.locator("#access-key").inner_text())
    assert second_lease != lease_id
    page.click("#revoke-button")
    expect(page.locator("#lease-state")).to_contain_text("Revoked")
    expect(countdown).to_have_text("revoked")
    assert not moto.user_exists(second_user)
    assert moto.user_exists(user)

    # Revoke the rest by prefix, with progress.
    for _ in range(3):
        server.request("GET", "aws/creds/web", token=root).raise_for_status()
    page.goto(f"{server.addr}/ui/#/leases?prefix=aws/creds/web/")
    expect(page.locator("#leases-table tbody tr")).to_have_count(4)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revoke-prefix")
    expect(page.locator("#revoke-progress-text")).to_have_text("All 4 revoked.", timeout=30_000)
    assert not moto.user_exists(user)
    assert server.request("GET", "sys/leases/count", token=root, params={"prefix": "aws/"}).json()["data"][
        "lease_count"] == 0


def test_irrevocable_leases_policies_kv_and_mounts(page, aws_server):
    server, root = aws_server, aws_server.root_token
    server.request("POST", "sys/mounts/things", token=root, json={"type": "leasetest"}).raise_for_status()
    server.request("PUT", "things/config", token=root, json={"fail_always": True}).raise_for_status()
    lease = server.request("GET", "things/creds/stuck", token=root, params={"ttl": "1s"}).json()["lease_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = server.request("GET", "sys/leases", token=root, params={"type": "irrevocable"}).json()["data"]
        if listed["lease_count"]:
            break
        time.sleep(0.3)
    assert listed["lease_count"] == 1
    sign_in(page, server, root)
    page.click("nav a[data-page=irrevocable]")
    row = page.locator("#irrevocable-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("refused to go")
    shot(page, "irrevocable")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"[data-force='{lease}']")
    expect(page.locator(".messages .notice.ok")).to_contain_text("Forgot")
    expect(page.locator("#irrevocable-list")).to_contain_text("No irrevocable lease")

    # A policy with a mistake: the server's message is shown at its line.
    page.goto(f"{server.addr}/ui/#/policies/?new=1")
    page.fill("#policy-name", "readers")
    page.fill("#policy-editor", 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\n\npath "aws/creds/*" {\n'
                                '  capabilities = ["read", "fly"]\n}\n')
    page.click("#policy-save")
    expect(page.locator("#policy-editor-message")).to_contain_text("invalid capability 'fly'")
    expect(page.locator(".gutter .line.error")).to_have_text("6")
    shot(page, "policy-error")
    page.fill("#policy-editor", 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\n')
    page.click("#policy-save")
    expect(page.locator("#policy-editor-message")).to_have_text("Saved.")
    assert "secret/*" in server.request("GET", "sys/policies/acl/readers", token=root).json()["data"]["policy"]

    # KV: write through the form, read back with the value hidden until shown.
    server.request("POST", "sys/mounts/secret", token=root, json={"type": "kv"}).raise_for_status()
    page.goto(f"{server.addr}/ui/#/status")
    page.click("#sign-out")
    sign_in(page, server, root)  # sees the new mount
    page.click("nav a[data-page=kv]")
    page.fill("#kv-new-path", "team/db")
    page.click("#kv-new button[type=submit]")
    value = f"pw-{uuid.uuid4().hex}"
    remember_secret(value)
    page.fill("#kv-editor", json.dumps({"user": "app", "password": value}))
    page.click("#kv-save")
    expect(page.locator("#kv-secret")).to_contain_text("password")
    assert value not in page.locator("#main").inner_text()
    assert server.request("GET", "secret/team/db", token=root).json()["data"] == {"user": "app", "password": value}
    shot(page, "kv")
    page.click("nav a[data-page=mounts]")
    expect(page.locator("#mounts-table")).to_contain_text("aws/")
    shot(page, "mounts")
    page.click("nav a[data-page=audit]")
    expect(page.locator("#audit-list")).to_contain_text("No audit device")


def test_unseal_through_the_form(page, tmp_path):
    server = start(tmp_path)
    try:
        keys, root = init_and_unseal(server, shares=3, threshold=2)
        server.request("PUT", "sys/seal", token=root).raise_for_status()
        page.goto(f"{server.addr}/ui/")
        expect(page.locator("#seal-state")).to_have_text("Sealed")
        page.fill("#unseal-key", "not-a-key")
        page.click("#unseal-submit")
        expect(page.locator(".notice.error")).to_be_visible()
        page.fill("#unseal-key", keys[0])
        page.click("#unseal-submit")
        expect(page.locator(".notice.info")).to_contain_text("1 of 2")
        shot(page, "unseal")
        page.fill("#unseal-key", keys[1])
        page.click("#unseal-submit")
        expect(page.locator("#login-form")).to_be_visible()
        assert server.request("GET", "sys/seal-status", token=None).json()["sealed"] is False
        sign_in(page, server, root)
    finally:
        server.stop()


def test_a_token_sees_only_what_its_policy_allows(page, tmp_path):
    server = start(tmp_path)
    try:
        _, root = init_and_unseal(server)
        server.request("POST", "sys/mounts/secret", token=root, json={"type": "kv"}).raise_for_status()
        server.request("PUT", "secret/app/config", token=root, json={"color": "blue"}).raise_for_status()
        server.request("PUT", "sys/policies/acl/app-reader", token=root, json={
            "policy": 'path "secret/app/*" {\n  capabilities = ["read", "list"]\n}\n'
                      'path "secret/" {\n  capabilities = ["list"]\n}\n'}).raise_for_status()
        server.request("POST", "sys/auth/userpass", token=root, json={"type": "userpass"}).raise_for_status()
        password = f"pw-{uuid.uuid4().hex}"
        server.request("POST", "auth/userpass/users/carol", token=root, json={
            "password": password, "token_policies": ["app-reader"]}).raise_for_status()

        # Signs in through the userpass method.
        page.goto(f"{server.addr}/ui/")
        page.click("#login-tab-userpass")
        page.fill("#login-username", "carol")
        page.fill("#login-password", "wrong password")
        page.click("#login-submit")
        expect(page.locator(".notice.error")).to_contain_text("Sign-in refused")
        page.fill("#login-password", password)
        page.click("#login-submit")
        expect(page.locator("#seal-state")).to_have_text("Unsealed")
        expect(page.locator(".who")).to_contain_text("app-reader")
        # Only what the policy reaches is offered.
        nav = [t.strip() for t in page.locator("nav a").all_inner_texts()]
        assert nav == ["Seal status", "KV"]  # no Mounts, Leases, Policies, Audit, AWS: the policy denies them
        expect(page.locator("#seal-button")).to_have_count(0)
        # A page it may not use says so, readably.
        page.goto(f"{server.addr}/ui/#/mounts")
        expect(page.locator(".notice.error")).to_have_text(
            "Permission denied: your token's policies do not allow you to read sys/mounts.")
        shot(page, "permission-denied")
        page.goto(f"{server.addr}/ui/#/policies")
        expect(page.locator(".notice.error")).to_contain_text("Permission denied")
        # What it may read, it reads; what it may not write is refused in the page.
        page.goto(f"{server.addr}/ui/#/kv/secret/app/")
        expect(page.locator("#kv-table")).to_contain_text("config")
        page.click(".secret-link")
        page.click("#kv-secret button:has-text('Show')")
        expect(page.locator("#kv-secret")).to_contain_text("blue")
        page.click("#kv-edit")
        page.fill("#kv-editor", '{"color": "red"}')
        page.click("#kv-save")
        expect(page.locator(".notice.error")).to_have_text(
            "Permission denied: your token's policies do not allow you to write secret/app/config.")
        assert server.request("GET", "secret/app/config", token=root).json()["data"] == {"color": "blue"}
    finally:
        server.stop()
