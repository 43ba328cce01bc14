"""JWT auth through hvac: a local JWKS server signs GitHub-Actions-shaped tokens."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER_PATH = "/gha"
AUDIENCE = "https://github.com/acme"


class Issuer:
    """An OIDC issuer on 127.0.0.1: /gha/.well-known/openid-configuration and /gha/jwks, keys rotatable."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path == f"{ISSUER_PATH}/jwks":
                    issuer.fetches += 1
                    body = issuer.jwks()
                elif self.path == f"{ISSUER_PATH}/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{ISSUER_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_key(self) -> str:
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def public_pem(self, kid: str) -> str:
        return self.keys[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.url, "aud": AUDIENCE, "sub": "repo:acme/api:ref:refs/heads/main",
                  "repository": "acme/api", "repository_owner": "acme", "ref": "refs/heads/main",
                  "workflow": "deploy", "actor": "octocat", "iat": now, "nbf": now - 5, "exp": now + 300}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, kid: str | None = None, **overrides) -> str:
        kid = kid or next(iter(self.keys))
        return jwt.encode(self.claims(**overrides), self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def issuer():
    server = Issuer()
    server.add_key()
    yield server
    server.stop()


@pytest.fixture
def jwt_mount(dev_server, issuer):
    client = dev_server.client()
    mount = f"jwt-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("jwt", path=mount)
    client.write(f"auth/{mount}/config", jwks_url=f"{issuer.url}/jwks", bound_issuer=issuer.url)
    client.write(f"auth/{mount}/role/deploy", role_type="jwt", user_claim="actor", bound_audiences=[AUDIENCE],
                 bound_claims_type="glob", bound_claims={"repository": "acme/*", "ref": "refs/heads/*"},
                 claim_mappings={"repository": "repo", "workflow": "workflow"}, token_policies=["deployer"],
                 token_ttl="15m")
    yield client, mount
    client.sys.disable_auth_method(mount)


def login(dev_server, mount, token, role="deploy"):
    return dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role": role, "jwt": token})


def test_github_actions_token_logs_in(jwt_mount, dev_server, issuer):
    client, mount = jwt_mount
    app = hvac.Client(url=dev_server.addr)
    auth = app.auth.jwt.jwt_login("deploy", issuer.sign(), path=mount)["auth"]
    assert auth["policies"] == ["default", "deployer"] and auth["lease_duration"] == 900
    assert auth["metadata"] == {"repo": "acme/api", "workflow": "deploy", "role": "deploy"}
    me = app.auth.token.lookup_self()["data"]
    assert me["display_name"] == f"{mount}-octocat" and me["path"] == f"auth/{mount}/login"
    # A list audience containing ours is fine too.
    assert login(dev_server, mount, issuer.sign(aud=["other", AUDIENCE])).status_code == 200


@pytest.mark.parametrize("case, overrides, message", [
    ("wrong audience", {"aud": "https://github.com/evil"}, "invalid audience"),
    ("no audience", {"aud": None}, "invalid audience"),
    ("expired", {"exp": int(time.time()) - 3600}, "token is expired"),
    ("not yet valid", {"nbf": int(time.time()) + 3600}, "token not yet valid"),
    ("wrong issuer", {"iss": "https://evil.example"}, "invalid issuer"),
    ("other repository", {"repository": "evil/api"}, 'claim "repository" does not match'),
    ("tag, not a branch", {"ref": "refs/tags/v1"}, 'claim "ref" does not match'),
    ("no user claim", {"actor": None}, 'claim "actor" not found in token'),
])
def test_refused_claims(jwt_mount, dev_server, issuer, case, overrides, message):
    _, mount = jwt_mount
    r = login(dev_server, mount, issuer.sign(**overrides))
    assert r.status_code == 400 and message in r.json()["errors"][0], (case, r.text)


def test_forged_tokens_are_refused(jwt_mount, dev_server, issuer):
    _, mount = jwt_mount
    kid = next(iter(issuer.keys))
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    unsigned = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(issuer.claims()).encode())}."
    r = login(dev_server, mount, unsigned)
    assert r.status_code == 400 and 'algorithm "none" is not accepted' in r.json()["errors"][0]

    # HS256 "signed" with the issuer's public key (the classic algorithm confusion).
    pem = issuer.public_pem(kid).encode()
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}." \
                    f"{_b64(json.dumps(issuer.claims()).encode())}"
    import hashlib
    import hmac
    forged = f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    r = login(dev_server, mount, forged)
    assert r.status_code == 400 and 'algorithm "HS256" is not accepted' in r.json()["errors"][0]

    # Signed by a key the issuer does not publish (unknown kid) ...
    stranger = Issuer()
    try:
        stray = stranger.add_key()
        token = jwt.encode(issuer.claims(), stranger.keys[stray], algorithm="RS256", headers={"kid": stray})
        r = login(dev_server, mount, token)
        assert r.status_code == 400 and "no known key" in r.json()["errors"][0]
        # ... or claiming a published kid while signed with another key.
        token = jwt.encode(issuer.claims(), stranger.keys[stray], algorithm="RS256", headers={"kid": kid})
        r = login(dev_server, mount, token)
        assert r.status_code == 400 and "no known key" in r.json()["errors"][0]
    finally:
        stranger.stop()
    r = login(dev_server, mount, "not.a.jwt")
    assert r.status_code == 400 and "error validating token" in r.json()["errors"][0]


def test_keys_are_cached_and_refreshed_on_an_unknown_kid(jwt_mount, dev_server, issuer):
    _, mount = jwt_mount
    assert login(dev_server, mount, issuer.sign()).status_code == 200
    fetched = issuer.fetches
    assert login(dev_server, mount, issuer.sign()).status_code == 200
    assert issuer.fetches == fetched  # served from the cache
    new_kid = issuer.add_key()  # the issuer rotates
    deadline = time.monotonic() + 10
    while True:  # a refresh happens at most once a second
        r = login(dev_server, mount, issuer.sign(kid=new_kid))
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200, r.text
    assert issuer.fetches > fetched


def test_discovery_and_static_keys(dev_server, issuer):
    client = dev_server.client()
    mount = f"jwt-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("jwt", path=mount)
    try:
        client.write(f"auth/{mount}/config", oidc_discovery_url=issuer.url, bound_issuer=issuer.url,
                     default_role="ci")
        client.write(f"auth/{mount}/role/ci", role_type="jwt", user_claim="sub", bound_subject=issuer.claims()["sub"],
                     bound_audiences=AUDIENCE)
        r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"jwt": issuer.sign()})
        assert r.status_code == 200, r.text
        assert dev_server.request("GET", f"auth/{mount}/config").json()["data"]["default_role"] == "ci"
        kid = next(iter(issuer.keys))
        client.write(f"auth/{mount}/config", jwt_validation_pubkeys=[issuer.public_pem(kid)], bound_issuer=issuer.url)
        assert login(dev_server, mount, issuer.sign(), role="ci").status_code == 200
        r = login(dev_server, mount, issuer.sign(sub="repo:acme/other:ref:refs/heads/main"), role="ci")
        assert r.status_code == 400 and "invalid subject" in r.json()["errors"][0]
    finally:
        client.sys.disable_auth_method(mount)


def test_bad_input(dev_server, issuer):
    client = dev_server.client()
    mount = f"jwt-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("jwt", path=mount)
    try:
        r = dev_server.request("POST", f"auth/{mount}/login", token=None, json={"role": "x", "jwt": "a.b.c"})
        assert r.status_code == 400 and "not configured" in r.json()["errors"][0]
        cases = [
            ("config", {}, "exactly one of"),
            ("config", {"jwks_url": f"{issuer.url}/jwks", "jwt_validation_pubkeys": ["x"]}, "exactly one of"),
            ("config", {"jwt_validation_pubkeys": ["not a key"]}, "not a PEM public key"),
            ("config", {"jwks_url": f"{issuer.url}/nothing-here"}, "error checking jwks_url"),
            ("config", {"jwks_url": f"{issuer.url}/jwks", "jwt_supported_algs": ["HS256"]}, "only asymmetric"),
            ("config", {"oidc_discovery_url": "http://127.0.0.1:1/nowhere"}, "error checking oidc_discovery_url"),
            ("role/r", {"role_type": "jwt", "bound_audiences": ["a"]}, "a user claim must be defined"),
            ("role/r", {"role_type": "jwt", "user_claim": "sub"}, "at least one bound constraint"),
            ("role/r", {"role_type": "oidc", "user_claim": "sub", "bound_audiences": ["a"]}, "not supported"),
            ("role/r", {"user_claim": "sub", "bound_audiences": "a", "bound_claims_type": "regex"},
             "invalid bound_claims_type"),
            ("role/r", {"user_claim": "sub", "bound_claims": {"a": {"b": 1}}}, "must be a string"),
        ]
        for path, body, message in cases:
            r = dev_server.request("POST", f"auth/{mount}/{path}", json=body)
            assert r.status_code == 400 and message in r.json()["errors"][0], (path, body, r.text)
        assert dev_server.request("GET", f"auth/{mount}/config").status_code == 404
        assert dev_server.request("GET", f"auth/{mount}/role/r").status_code == 404
        client.write(f"auth/{mount}/config", jwks_url=f"{issuer.url}/jwks")
        for body, message in (({"jwt": "x"}, "missing role"), ({"role": "r"}, "missing token"),
                              ({"role": "nosuch", "jwt": "x"}, 'role "nosuch" could not be found')):
            r = dev_server.request("POST", f"auth/{mount}/login", token=None, json=body)
            assert r.status_code == 400 and message in r.json()["errors"][0], r.text
    finally:
        client.sys.disable_auth_method(mount)


def test_string_bound_claims_match_literally(jwt_mount, dev_server, issuer):
    client, mount = jwt_mount
    client.write(f"auth/{mount}/role/literal", role_type="jwt", user_claim="actor", bound_audiences=[AUDIENCE],
                 bound_claims_type="string", bound_claims={"ref": "refs/heads/*", "repository": ["acme/api", "acme/web"]})
    assert client.read(f"auth/{mount}/role/literal")["data"]["bound_claims_type"] == "string"
    # With type string a "*" is an ordinary character: refs/heads/main is not refs/heads/* ...
    r = login(dev_server, mount, issuer.sign(), role="literal")
    assert r.status_code == 400 and 'claim "ref" does not match' in r.json()["errors"][0], r.text
    # ... only the very same text is.
    assert login(dev_server, mount, issuer.sign(ref="refs/heads/*"), role="literal").status_code == 200
    # A list of values: any one of them, exactly.
    assert login(dev_server, mount, issuer.sign(ref="refs/heads/*", repository="acme/web"), role="literal") \
        .status_code == 200
    for repository in ("acme/api-fork", "acme/*", "ACME/api"):
        r = login(dev_server, mount, issuer.sign(ref="refs/heads/*", repository=repository), role="literal")
        assert r.status_code == 400 and 'claim "repository" does not match' in r.json()["errors"][0], repository
    # string is what a role gets when it names no type.
    client.write(f"auth/{mount}/role/untyped", role_type="jwt", user_claim="actor", bound_audiences=[AUDIENCE],
                 bound_claims={"ref": "refs/heads/*"})
    assert client.read(f"auth/{mount}/role/untyped")["data"]["bound_claims_type"] == "string"
    assert login(dev_server, mount, issuer.sign(), role="untyped").status_code == 400


def test_leeways(jwt_mount, dev_server, issuer):
    """Vault's time checks: clock_skew_leeway widens exp, nbf and iat; expiration_leeway and not_before_leeway
    only stand in for a missing exp or nbf; 0 means the default, -1 none. Every token here is minutes away from
    any edge, so the outcome cannot depend on how long a request takes."""
    client, mount = jwt_mount

    def role(name: str, **leeways) -> str:
        client.write(f"auth/{mount}/role/{name}", role_type="jwt", user_claim="actor", bound_audiences=[AUDIENCE],
                     **leeways)
        return name

    now = int(time.time())
    expired_5m = issuer.sign(iat=now - 900, nbf=now - 900, exp=now - 300)
    expired_30s = issuer.sign(iat=now - 600, nbf=now - 600, exp=now - 30)
    default, wide, none = role("default"), role("wide", clock_skew_leeway=600), role("none", clock_skew_leeway=-1)
    zero = role("zero", clock_skew_leeway=0)
    assert client.read(f"auth/{mount}/role/{default}")["data"]["clock_skew_leeway"] == 60
    assert client.read(f"auth/{mount}/role/{none}")["data"]["clock_skew_leeway"] == -1
    expired = "invalid expiration time (exp) claim: token is expired"
    for name, token, accepted in [
        (default, expired_5m, False), (wide, expired_5m, True),   # 5 minutes late: only a 10-minute leeway lets in
        (default, expired_30s, True), (zero, expired_30s, True),  # 30 s late: within the default 60 s (0: default)
        (none, expired_30s, False),                               # ... unless the leeway is off
    ]:
        r = login(dev_server, mount, token, role=name)
        assert (r.status_code == 200) is accepted, (name, r.text)
        if not accepted:
            assert r.status_code == 400 and expired in r.json()["errors"][0], (name, r.text)
    # Issued and valid only from 5 minutes on: refused, unless the clock skew allowed is wider.
    future = issuer.sign(iat=now + 300, nbf=now + 300, exp=now + 900)
    r = login(dev_server, mount, future, role=default)
    assert r.status_code == 400 and "token not yet valid" in r.json()["errors"][0], r.text
    assert login(dev_server, mount, future, role=wide).status_code == 200

    # expiration_leeway does not stretch an exp the token has ...
    late = role("late", expiration_leeway="10m")
    assert login(dev_server, mount, expired_5m, role=late).status_code == 400
    # ... it makes one for a token without: issued 5 minutes ago, it expired 150 s after (default) or 10 minutes.
    no_exp = issuer.sign(iat=now - 300, nbf=now - 300, exp=None)
    r = login(dev_server, mount, no_exp, role=default)
    assert r.status_code == 400 and expired in r.json()["errors"][0], r.text
    assert login(dev_server, mount, no_exp, role=late).status_code == 200
    # A token with no time claims at all never expires: refused.
    r = login(dev_server, mount, issuer.sign(iat=None, nbf=None, exp=None), role=late)
    assert r.status_code == 400 and "no issue time, notbefore, or expiration time" in r.json()["errors"][0], r.text

    for bad in ("soon", "-1h", True):
        r = dev_server.request("POST", f"auth/{mount}/role/bad", json={
            "role_type": "jwt", "user_claim": "actor", "bound_audiences": AUDIENCE, "clock_skew_leeway": bad})
        assert r.status_code == 400 and 'invalid value for field "clock_skew_leeway"' in r.json()["errors"][0], bad
    assert dev_server.request("GET", f"auth/{mount}/role/bad").status_code == 404
