"""JWT auth for CI jobs and workloads (GitHub Actions, GitLab, any OIDC issuer).

A job presents a JWT its platform signed; coffer checks the signature with
the issuer's keys (a JWKS URL, an OIDC discovery URL, or PEM keys in the
config), then the role's bindings: issuer, audiences, subject, claims
(exact or ``*`` globs), and the token's times with leeways as Vault's JWT
plugin applies them (``clock_skew_leeway`` widens exp, nbf and iat;
``expiration_leeway`` and ``not_before_leeway`` only stand in for a missing
exp or nbf; 0 means the default, a negative number none). PyJWT checks
signatures; only asymmetric algorithms are ever accepted, so neither
``alg: none`` nor an HMAC "signed" with the public key can pass.

Keys fetched from a JWKS URL are cached and fetched again when a token names
a key id the cache does not know (at most once a second), so key rotation
needs no restart. The browser login flow (``role_type=oidc``) is not here.

Storage (the mount's view): ``config``, ``role/<name>``.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import InvalidTokenError, PyJWKError, PyJWKSetError

from coffer.durations import parse_duration
from coffer.errors import InvalidRequest, UpstreamError
from coffer.framework.backend import Backend, Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import MountInfo, Request, Response
from coffer.framework.tokenutil import TOKEN_FIELDS, TokenParams, glob_match

S, I, B, D, L, M, R = (FieldType.STRING, FieldType.INT, FieldType.BOOL, FieldType.DURATION, FieldType.COMMA_LIST,
                       FieldType.MAP, FieldType.RAW)

HELP = """JWT auth: log in with a JWT signed by a trusted issuer (CI jobs, workloads).

Configure the issuer's keys at config (jwks_url, oidc_discovery_url or
jwt_validation_pubkeys) and bound_issuer; create roles that bind audiences,
subject and claims; log in at login with role and jwt."""

ROLE = r"(?P<name>\w(?:[\w.-]*\w)?)"
#: The only algorithms accepted: asymmetric ones (a JWKS or PEM key is public; HMAC with it would be forgeable).
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
#: Fetching the JWKS again for an unknown key id happens at most this often (seconds).
MIN_REFRESH = 1.0
#: Keys are fetched again after this long anyway.
CACHE_FOR = 3600.0
MAX_DOCUMENT = 1024 * 1024
FETCH_TIMEOUT = 10.0
#: Defaults of the role's leeways (seconds), as in Vault: also what a leeway of 0 means (a negative one: none).
LEEWAYS = {"clock_skew_leeway": 60, "expiration_leeway": 150, "not_before_leeway": 150}


def _parse_leeway(name: str, value: Any) -> int:
    """A leeway as sent: a duration (``90s``, ``120``) or a negative number of seconds (Vault's -1: no leeway)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"-\d+", value.strip()):
        return int(value.strip())
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(f'invalid value for field "{name}": {exc}; give a duration such as 90s, '
                             "or -1 for no leeway") from None


def _leeway(role: dict[str, Any], name: str) -> int:
    """The seconds a role's leeway allows: 0 means the default, a negative value none."""
    value = int(role.get(name, 0))
    return 0 if value < 0 else value or LEEWAYS[name]


class Refused(Exception):
    """A login that must be refused (the message goes to the caller)."""


def _fetch_json(url: str, ca_pem: str) -> Any:
    """GET ``url`` as JSON (in a worker thread); raises ValueError with a readable reason."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f'"{url[:200]}" is not an http(s) URL')
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else None
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "coffer"})
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT, context=context) as resp:  # noqa: S310 - checked
            body = resp.read(MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_DOCUMENT:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ValueError(f"{url} did not answer JSON") from None


def _pointer(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by JSON pointer ("/a/b") into nested claims; None when absent."""
    if not name.startswith("/"):
        return claims.get(name)
    value: Any = claims
    for part in name[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _claim_matches(actual: Any, expected: Any, glob: bool) -> bool:
    wanted = [str(e) for e in (expected if isinstance(expected, list) else [expected])]
    values = actual if isinstance(actual, list) else [actual]
    for value in values:
        text = _scalar(value)
        if text is None:
            continue
        if any(glob_match(w, text) if glob else w == text for w in wanted):
            return True
    return False


class Keys:
    """The verification keys of one mount: static PEM keys, or a JWKS fetched and cached."""

    def __init__(self) -> None:
        self._jwks: dict[str, pyjwt.PyJWK] = {}
        self._unnamed: list[pyjwt.PyJWK] = []
        self._fetched = 0.0
        self._source = ""
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        self._jwks, self._unnamed, self._fetched, self._source = {}, [], 0.0, ""

    async def _refresh(self, url: str, ca_pem: str) -> None:
        doc = await asyncio.to_thread(_fetch_json, url, ca_pem)
        try:
            keyset = pyjwt.PyJWKSet.from_dict(doc)
        except (PyJWKSetError, PyJWKError, TypeError, AttributeError) as exc:
            raise ValueError(f"{url} did not answer a usable JWKS: {exc}") from None
        named, unnamed = {}, []
        for key in keyset.keys:
            if key.key_id:
                named[key.key_id] = key
            else:
                unnamed.append(key)
        self._jwks, self._unnamed, self._fetched, self._source = named, unnamed, time.monotonic(), url

    async def candidates(self, config: dict[str, Any], kid: str | None) -> list[Any]:
        """The keys that may have signed a token whose header names ``kid``."""
        if config.get("jwt_validation_pubkeys"):
            return [load_pem_public_key(p.encode()) for p in config["jwt_validation_pubkeys"]]
        url = config.get("jwks_url") or config.get("_discovered_jwks_url", "")
        ca_pem = config.get("jwks_ca_pem") or config.get("oidc_discovery_ca_pem") or ""
        async with self._lock:
            stale = url != self._source or time.monotonic() - self._fetched > CACHE_FOR
            unknown = kid is not None and kid not in self._jwks
            if stale or (unknown and time.monotonic() - self._fetched >= MIN_REFRESH):
                try:
                    await self._refresh(url, ca_pem)
                except ValueError as exc:
                    if not self._jwks and not self._unnamed:
                        raise UpstreamError(f"cannot get the issuer's keys: {exc}") from None
        if kid is not None:
            key = self._jwks.get(kid)
            return [key.key] if key is not None else [k.key for k in self._unnamed]
        return [k.key for k in (*self._jwks.values(), *self._unnamed)]


class JwtAuth:
    def __init__(self, mount: MountInfo) -> None:
        self.keys = Keys()

    # -- config ---------------------------------------------------------------

    async def config(self, req: Request) -> dict[str, Any] | None:
        return await req.storage.get_json("config")

    async def write_config(self, req: Request, d: FieldData) -> None:
        sources = [n for n in ("jwks_url", "oidc_discovery_url", "jwt_validation_pubkeys") if d[n]]
        if len(sources) != 1:
            raise InvalidRequest("exactly one of jwks_url, oidc_discovery_url or jwt_validation_pubkeys must be set"
                                 + (f" (got {', '.join(sources)})" if sources else ""))
        algs = [a.strip() for a in d["jwt_supported_algs"] or [] if a.strip()]
        bad = [a for a in algs if a not in ASYMMETRIC]
        if bad:
            raise InvalidRequest(f"jwt_supported_algs {bad} refused: only asymmetric algorithms are accepted "
                                 f"({', '.join(ASYMMETRIC)}); HMAC and none would let anyone forge tokens")
        config: dict[str, Any] = {
            "jwks_url": d["jwks_url"] or "", "jwks_ca_pem": d["jwks_ca_pem"] or "",
            "oidc_discovery_url": d["oidc_discovery_url"] or "", "oidc_discovery_ca_pem": d["oidc_discovery_ca_pem"] or "",
            "jwt_validation_pubkeys": [], "bound_issuer": d["bound_issuer"] or "", "default_role": d["default_role"] or "",
            "jwt_supported_algs": algs,
        }
        for pem in ("jwks_ca_pem", "oidc_discovery_ca_pem"):
            if config[pem]:
                try:
                    ssl.create_default_context(cadata=config[pem])
                except (ssl.SSLError, ValueError):
                    raise InvalidRequest(f"{pem} is not a PEM certificate") from None
        if d["jwt_validation_pubkeys"]:
            keys = [k.strip() for k in d["jwt_validation_pubkeys"]]
            for i, pem in enumerate(keys):
                try:
                    load_pem_public_key(pem.encode())
                except (ValueError, TypeError):
                    raise InvalidRequest(f"jwt_validation_pubkeys[{i}] is not a PEM public key "
                                         "(-----BEGIN PUBLIC KEY----- ...)") from None
            config["jwt_validation_pubkeys"] = keys
        elif config["jwks_url"]:
            try:
                doc = await asyncio.to_thread(_fetch_json, config["jwks_url"], config["jwks_ca_pem"])
                pyjwt.PyJWKSet.from_dict(doc)
            except (ValueError, PyJWKSetError, PyJWKError, TypeError, AttributeError) as exc:
                raise InvalidRequest(f"error checking jwks_url: {exc}") from None
        else:
            url = config["oidc_discovery_url"].rstrip("/")
            try:
                doc = await asyncio.to_thread(_fetch_json, f"{url}/.well-known/openid-configuration",
                                              config["oidc_discovery_ca_pem"])
            except ValueError as exc:
                raise InvalidRequest(f"error checking oidc_discovery_url: {exc}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("jwks_uri"), str):
                raise InvalidRequest("error checking oidc_discovery_url: its openid-configuration has no jwks_uri")
            if str(doc.get("issuer", "")).rstrip("/") != url:
                raise InvalidRequest(f'error checking oidc_discovery_url: the issuer it names ({doc.get("issuer")!r}) '
                                     "is not the discovery URL")
            config["_discovered_jwks_url"] = doc["jwks_uri"]
        await req.storage.put_json("config", config)
        self.keys.forget()

    async def read_config(self, req: Request, d: FieldData) -> Response | None:
        config = await self.config(req)
        if config is None:
            return None
        return Response(data={k: v for k, v in sorted(config.items()) if not k.startswith("_")})

    # -- roles ------------------------------------------------------------------

    async def role(self, req: Request, name: str) -> dict[str, Any] | None:
        return await req.storage.get_json(f"role/{name.lower()}")

    async def role_exists(self, req: Request, captures: dict[str, str]) -> bool:
        return await self.role(req, captures["name"]) is not None

    async def write_role(self, req: Request, d: FieldData) -> None:
        name = d["name"].lower()
        role: dict[str, Any] = dict(await self.role(req, name) or {
            "role_type": "jwt", "user_claim": "", "bound_audiences": [], "bound_subject": "", "bound_claims": {},
            "bound_claims_type": "string", "claim_mappings": {}, "groups_claim": "", **LEEWAYS, "token": {}})
        if "role_type" in d:
            if d["role_type"] == "oidc":
                raise InvalidRequest('role_type "oidc" (the browser login flow) is not supported by coffer; use '
                                     "role_type=jwt and log in with a JWT")
            if d["role_type"] != "jwt":
                raise InvalidRequest(f'invalid role_type "{d["role_type"]}"; use jwt')
        for key in ("user_claim", "bound_subject", "groups_claim"):
            if key in d:
                role[key] = d[key].strip()
        if "bound_audiences" in d:
            role["bound_audiences"] = [a for a in d["bound_audiences"] if a]
        if "bound_claims_type" in d:
            if d["bound_claims_type"] not in ("string", "glob"):
                raise InvalidRequest(f'invalid bound_claims_type "{d["bound_claims_type"]}"; use string or glob')
            role["bound_claims_type"] = d["bound_claims_type"]
        if "bound_claims" in d:
            claims = d["bound_claims"] or {}
            for key, value in claims.items():
                values = value if isinstance(value, list) else [value]
                if not values or any(_scalar(v) is None for v in values):
                    raise InvalidRequest(f'bound_claims "{key}" must be a string or a list of strings')
            role["bound_claims"] = claims
        if "claim_mappings" in d:
            mappings = d["claim_mappings"] or {}
            if any(not isinstance(v, str) or not v for v in mappings.values()):
                raise InvalidRequest("claim_mappings must map claim names to metadata key names (strings)")
            role["claim_mappings"] = mappings
        for key in LEEWAYS:
            if key in d:
                role[key] = _parse_leeway(key, d[key])
        token = TokenParams.from_doc(role.get("token"))
        token.update(d)
        role["token"] = token.to_doc()
        if not role["user_claim"]:
            raise InvalidRequest("a user claim must be defined on the role: set user_claim (e.g. sub)")
        if not (role["bound_audiences"] or role["bound_subject"] or role["bound_claims"]
                or token.token_bound_cidrs):
            raise InvalidRequest("must have at least one bound constraint when creating/updating a role: set "
                                 "bound_audiences, bound_subject, bound_claims or token_bound_cidrs")
        await req.storage.put_json(f"role/{name}", role)

    async def read_role(self, req: Request, d: FieldData) -> Response | None:
        role = await self.role(req, d["name"])
        if role is None:
            return None
        data = {k: v for k, v in role.items() if k != "token"}
        for key in ("bound_audiences", "bound_claims", "claim_mappings"):
            data[key] = data[key] or None
        data.update(TokenParams.from_doc(role.get("token")).to_doc())
        return Response(data=dict(sorted(data.items())))

    async def delete_role(self, req: Request, d: FieldData) -> None:
        await req.storage.delete(f"role/{d['name'].lower()}")

    async def list_roles(self, req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await req.storage.list("role/")})

    # -- login ---------------------------------------------------------------------

    async def login(self, req: Request, d: FieldData) -> Response:
        config = await self.config(req)
        if config is None:
            raise InvalidRequest(f"this jwt auth method is not configured yet: write {req.mount_point}config first")
        name = (d["role"] or config.get("default_role") or "").lower()
        if not name:
            raise InvalidRequest("missing role: send role=<name> (or set default_role in the config)")
        if not d["jwt"]:
            raise InvalidRequest("missing token: send jwt=<the JWT>")
        role = await self.role(req, name)
        if role is None:
            raise InvalidRequest(f'role "{name}" could not be found')
        try:
            claims = await self.verified_claims(config, d["jwt"])
            self.check_times(role, claims)
            self.check_bindings(config, role, claims)
            user = _scalar(_pointer(claims, role["user_claim"]))
            if not user:
                raise Refused(f'claim "{role["user_claim"]}" not found in token')
            metadata = {"role": name}
            for claim, key in role["claim_mappings"].items():
                value = _pointer(claims, claim)
                if value is None:
                    continue
                text = _scalar(value)
                if text is None:
                    raise Refused(f'claim "{claim}" (mapped by claim_mappings) is not a string, number or boolean')
                metadata[key] = text
        except Refused as exc:
            raise InvalidRequest(str(exc)) from None
        token = TokenParams.from_doc(role.get("token"))
        return Response(auth=token.auth(metadata=metadata, display_name=user, internal={"role": name}, alias=user))

    async def verified_claims(self, config: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            header = pyjwt.get_unverified_header(token)
        except InvalidTokenError as exc:
            raise Refused(f"error validating token: not a JWT ({exc})") from None
        alg = header.get("alg")
        allowed = config.get("jwt_supported_algs") or list(ASYMMETRIC)
        if not isinstance(alg, str) or alg not in allowed:
            raise Refused(f'error validating token: algorithm "{alg}" is not accepted (accepted: '
                          f"{', '.join(allowed)}); tokens must be signed with the issuer's private key")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        for key in await self.keys.candidates(config, kid):
            try:
                claims = pyjwt.decode(token, key=key, algorithms=[alg],
                                      options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                               "verify_iat": False, "verify_aud": False, "verify_iss": False,
                                               "require": []})
            except (pyjwt.PyJWTError, ValueError, TypeError, AttributeError):
                continue
            if not isinstance(claims, dict):
                break
            return claims
        raise Refused("error validating token: error verifying token signature: no known key successfully "
                      "validated the token signature")

    @staticmethod
    def check_times(role: dict[str, Any], claims: dict[str, Any]) -> None:
        """Vault's checks: at least one of exp, nbf and iat; a missing exp is the latest of iat and nbf plus
        expiration_leeway, a missing nbf is iat (or exp less not_before_leeway); then now, give or take
        clock_skew_leeway, must lie between nbf and exp, and not before iat."""
        for claim in ("exp", "nbf", "iat"):
            if claim in claims and (isinstance(claims[claim], bool) or not isinstance(claims[claim], (int, float))):
                raise Refused(f"error validating token: invalid {claim} claim: not a number")
        iat, nbf, exp = (float(claims.get(claim) or 0) for claim in ("iat", "nbf", "exp"))
        if not (iat or nbf or exp):
            raise Refused("error validating token: no issue time, notbefore, or expiration time encoded in token")
        if not exp:
            exp = max(iat, nbf) + _leeway(role, "expiration_leeway")
        if not nbf:
            nbf = iat or exp - _leeway(role, "not_before_leeway")
        now = time.time()
        skew = _leeway(role, "clock_skew_leeway")
        if now + skew < nbf:
            raise Refused("error validating token: invalid not before (nbf) claim: token not yet valid")
        if now - skew > exp:
            raise Refused("error validating token: invalid expiration time (exp) claim: token is expired")
        if iat and now + skew < iat:
            raise Refused("error validating token: invalid issued at (iat) claim: token issued in the future")

    @staticmethod
    def check_bindings(config: dict[str, Any], role: dict[str, Any], claims: dict[str, Any]) -> None:
        if config.get("bound_issuer") and claims.get("iss") != config["bound_issuer"]:
            raise Refused("error validating token: invalid issuer (iss) claim")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if role["bound_audiences"]:
            if not set(audiences) & set(role["bound_audiences"]):
                raise Refused("error validating token: invalid audience (aud) claim: audience claim does not match "
                              "any expected audience")
        elif audiences:
            raise Refused("audience claim found in JWT but no audiences bound to the role")
        if role["bound_subject"] and claims.get("sub") != role["bound_subject"]:
            raise Refused("error validating token: invalid subject (sub) claim")
        glob = role["bound_claims_type"] == "glob"
        for claim, expected in role["bound_claims"].items():
            actual = _pointer(claims, claim)
            if actual is None:
                raise Refused(f'error validating claims: claim "{claim}" is missing')
            if not _claim_matches(actual, expected, glob):
                raise Refused(f'error validating claims: claim "{claim}" does not match any associated bound '
                              "claim values")

    async def renew(self, req: Request) -> Response:
        assert req.auth is not None
        name = str(req.auth.internal.get("role", ""))
        role = await self.role(req, name) if name else None
        if role is None:
            raise InvalidRequest(f'role "{name}" does not exist any more; the token cannot be renewed')
        return Response(auth=TokenParams.from_doc(role.get("token")).renewed(req.auth))


def factory(mount: MountInfo) -> Backend:
    j = JwtAuth(mount)
    config_fields = {
        "jwks_url": Field(S, "The issuer's JWKS URL."),
        "jwks_ca_pem": Field(S, "CA certificate(s) (PEM) for the JWKS URL."),
        "oidc_discovery_url": Field(S, "The issuer's URL; its /.well-known/openid-configuration names the JWKS."),
        "oidc_discovery_ca_pem": Field(S, "CA certificate(s) (PEM) for the discovery URL."),
        "jwt_validation_pubkeys": Field(L, "PEM public keys that verify tokens (instead of a JWKS)."),
        "bound_issuer": Field(S, "The iss claim every token must have."),
        "default_role": Field(S, "The role of logins that name none."),
        "jwt_supported_algs": Field(L, f"Accepted signing algorithms (default: {', '.join(ASYMMETRIC)})."),
    }
    role_fields = {
        "name": Field(S, "The role's name.", required=True),
        "role_type": Field(S, "jwt (the only type coffer serves)."),
        "user_claim": Field(S, "The claim that names the caller (e.g. sub); its value is the token's display name."),
        "bound_audiences": Field(L, "The aud claim must contain one of these."),
        "bound_subject": Field(S, "The sub claim must be this."),
        "bound_claims": Field(M, "Claims (names or JSON pointers such as /a/b) and the value(s) each must have."),
        "bound_claims_type": Field(S, "string (exact values) or glob (* matches anything)."),
        "claim_mappings": Field(M, "Claims copied to the token's metadata: claim name -> metadata key."),
        "groups_claim": Field(S, "Accepted for compatibility (there is no identity store)."),
        "clock_skew_leeway": Field(R, "Leeway for the exp, nbf and iat claims (0: the default, 60s; -1: none)."),
        "expiration_leeway": Field(R, "A token without exp expires this long after its iat or nbf (0: the "
                                      "default, 150s; -1: at once)."),
        "not_before_leeway": Field(R, "A token without nbf or iat is valid from this long before its exp (0: the "
                                      "default, 150s; -1: only at exp)."),
        **TOKEN_FIELDS,
    }
    return Backend(
        [
            Path("login", {"write": j.login}, {"role": Field(S, "The role to log in with."),
                                               "jwt": Field(S, "The signed JWT.")},
                 synopsis="Log in with a JWT."),
            Path("config", {"read": j.read_config, "write": j.write_config}, config_fields,
                 synopsis="Configure where the issuer's keys come from, and the issuer."),
            Path("role/?", {"list": j.list_roles}, synopsis="List the roles."),
            Path(f"role/{ROLE}", {"read": j.read_role, "write": j.write_role, "delete": j.delete_role}, role_fields,
                 exists=j.role_exists, synopsis="Create, read, update or delete a role."),
        ],
        help=HELP,
        unauthenticated=("login",),
        renew_auth=j.renew,
    )
