"""botocore clients for one mount, built from its ``config/root`` (and rebuilt when it changes).

Clients are made on the mount's worker threads (building one loads service models) and cached by a
fingerprint of what they depend on. Every client goes through the mount's runtime (pacing, breaker,
abandoned calls) and uses botocore's adaptive retry mode with bounded connect and read timeouts.

Whose credentials sign:
* ``access_key``/``secret_key`` when given, else the standard AWS credential chain (environment, shared
  files, instance or task role);
* with ``role_arn`` on config/root, every engine call signs with that role's temporary credentials,
  assumed (and refreshed before they expire) with the credentials above;
* STS calls try ``sts_endpoint`` first, then each of ``sts_fallback_endpoints`` in order when an endpoint
  does not answer or fails on its side (5xx).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.session
import orjson
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from coffer.engines.aws.runtime import CONNECT_TIMEOUT, NO_ANSWER, READ_TIMEOUT, WORKERS, EndpointDown, Runtime
from coffer.framework import metrics

THROTTLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                  "SlowDown", "RequestThrottled", "RequestThrottledException"}
STS_ACTIONS = {"AssumeRole", "GetFederationToken", "GetSessionToken", "GetCallerIdentity"}

_shared_lock = threading.Lock()
_shared: botocore.session.Session | None = None


def _shared_session() -> botocore.session.Session:
    """One botocore session for every client signed with explicit keys: service models load once."""
    global _shared
    if _shared is None:
        _shared = botocore.session.get_session()
    return _shared


def region_of(config: dict[str, Any]) -> str:
    return (config.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1")


def botocore_config(config: dict[str, Any], region: str, *, retries: int | None = None) -> Config:
    wanted = config.get("max_retries", -1) if retries is None else retries
    return Config(
        region_name=region,
        retries={"mode": "adaptive", **({"total_max_attempts": wanted + 1} if wanted >= 0 else {})},
        max_pool_connections=max(WORKERS.values()),
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )


class _Fixed(CredentialProvider):
    METHOD = "coffer-assumed-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


# -- metrics: every AWS call (with the SDK's retries) by service, action and outcome, and its latency

def _call_started(model: Any, context: dict[str, Any], **_: Any) -> None:
    context["coffer_call"] = (model.service_model.service_name, model.name, time.monotonic())


def _call_answered(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    service, action, started = context.pop("coffer_call", ("", "", 0.0))
    if not action:
        return
    outcome = metrics.OK
    if http_response.status_code >= 300:
        code = str((parsed or {}).get("Error", {}).get("Code", ""))
        outcome = metrics.THROTTLED if code in THROTTLE_CODES else metrics.ERROR
    metrics.aws_call(service, action, outcome, time.monotonic() - started)


def _call_failed(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    service, action, started = context.pop("coffer_call", ("", "", 0.0))
    if action:
        metrics.aws_call(service, action, metrics.ERROR, time.monotonic() - started)


def instrument(client: Any) -> Any:
    """Make ``client`` record each of its calls in coffer's metrics (framework.metrics.aws_call)."""
    events = client.meta.events
    events.register("before-call.*.*", _call_started)
    events.register("after-call.*.*", _call_answered)
    events.register("after-call-error.*.*", _call_failed)
    return client


class Clients:
    """The clients of one mount (call only from its worker threads)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.RLock()  # a client's credentials may be built while the client is
        self._cache: dict[str, Any] = {}

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        found = self._cache.get(key)
        if found is None:
            with self._lock:
                found = self._cache.get(key)
                if found is None:
                    if len(self._cache) > 64:  # old configs' clients
                        self._cache.clear()
                    found = self._cache[key] = build()
        return found

    # -- building --------------------------------------------------------------

    def _make(self, service: str, endpoint: str | None, cfg: Config, keys: dict[str, str | None] | None,
              credentials: Any = None) -> Any:
        if credentials is not None:
            session = botocore.session.get_session()
            session.register_component("credential_provider", CredentialResolver(providers=[_Fixed(credentials)]))
            client = session.create_client(service, endpoint_url=endpoint or None, config=cfg)
        else:
            with _shared_lock:
                client = _shared_session().create_client(service, endpoint_url=endpoint or None, config=cfg,
                                                         **(keys or {}))
        return self.runtime.attach(instrument(client))

    @staticmethod
    def _base_keys(config: dict[str, Any]) -> dict[str, str | None]:
        if config.get("access_key") and config.get("secret_key"):
            return {"aws_access_key_id": config["access_key"], "aws_secret_access_key": config["secret_key"]}
        return {}

    def _sts_targets(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        region = config.get("sts_region") or region_of(config)
        targets = [(config.get("sts_endpoint") or "", region)]
        for endpoint, fallback_region in zip(config.get("sts_fallback_endpoints") or [],
                                             config.get("sts_fallback_regions") or [], strict=False):
            targets.append((endpoint, fallback_region or region))
        return targets

    def base_sts(self, config: dict[str, Any], endpoint: str = "", region: str = "") -> Any:
        """STS signed with the base credentials (access_key/secret_key or the chain), never role_arn's."""
        region = region or config.get("sts_region") or region_of(config)
        endpoint = endpoint or config.get("sts_endpoint") or ""
        key = _fingerprint("base-sts", config, endpoint, region)
        return self._cached(key, lambda: self._make("sts", endpoint, botocore_config(config, region),
                                                    self._base_keys(config)))

    def base_iam(self, config: dict[str, Any]) -> Any:
        key = _fingerprint("base-iam", config)
        return self._cached(key, lambda: self._make("iam", config.get("iam_endpoint"),
                                                    botocore_config(config, region_of(config)),
                                                    self._base_keys(config)))

    def _assumed(self, config: dict[str, Any], role_arn: str, session_name: str, external_id: str) -> Any:
        """Credentials of ``role_arn``, assumed with the base credentials and refreshed before they expire."""

        def fetch() -> dict[str, str]:
            params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
            if external_id:
                params["ExternalId"] = external_id
            creds = self.sts_call(config, "assume_role", base=True, **params)["Credentials"]
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

        return DeferredRefreshableCredentials(refresh_using=fetch, method="assume-role")

    def _engine_credentials(self, config: dict[str, Any]) -> Any:
        role_arn = config.get("role_arn")
        if not role_arn:
            return None
        key = _fingerprint("engine-creds", config)
        return self._cached(key, lambda: self._assumed(config, role_arn, f"coffer-{int(time.time())}", ""))

    def iam(self, config: dict[str, Any]) -> Any:
        """IAM as the engine acts (through role_arn when configured)."""
        if not config.get("role_arn"):
            return self.base_iam(config)
        key = _fingerprint("iam", config)
        return self._cached(key, lambda: self._make("iam", config.get("iam_endpoint"),
                                                    botocore_config(config, region_of(config)), None,
                                                    credentials=self._engine_credentials(config)))

    def _sts(self, config: dict[str, Any], endpoint: str, region: str) -> Any:
        if not config.get("role_arn"):
            return self.base_sts(config, endpoint, region)
        key = _fingerprint("sts", config, endpoint, region)
        return self._cached(key, lambda: self._make("sts", endpoint, botocore_config(config, region), None,
                                                    credentials=self._engine_credentials(config)))

    def static_iam(self, config: dict[str, Any], role_arn: str, session_name: str, external_id: str) -> Any:
        """IAM in another account, through ``role_arn`` assumed with the engine's credentials."""
        key = _fingerprint("static-iam", config, role_arn, session_name, external_id)

        def build() -> Any:
            def fetch() -> dict[str, str]:
                params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
                if external_id:
                    params["ExternalId"] = external_id
                creds = self.sts_call(config, "assume_role", **params)["Credentials"]
                return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                        "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

            credentials = DeferredRefreshableCredentials(refresh_using=fetch, method="assume-role")
            return self._make("iam", config.get("iam_endpoint"), botocore_config(config, region_of(config)), None,
                              credentials=credentials)

        return self._cached(key, build)

    def with_keys(self, service: str, config: dict[str, Any], access_key: str, secret_key: str,
                  session_token: str | None = None) -> Any:
        """A client signing with credentials coffer just made (one attempt per call; not cached)."""
        endpoint = config.get("sts_endpoint") if service == "sts" else config.get("iam_endpoint")
        region = (config.get("sts_region") if service == "sts" else None) or region_of(config)
        return self._make(service, endpoint, botocore_config(config, region, retries=0),
                          {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key,
                           "aws_session_token": session_token})

    # -- STS with fallback endpoints -------------------------------------------------

    def sts_call(self, config: dict[str, Any], operation: str, *, base: bool = False, **params: Any) -> Any:
        """``operation`` on the first STS endpoint that answers (primary, then the fallbacks in order)."""
        failures: list[str] = []
        targets = self._sts_targets(config)
        for n, (endpoint, region) in enumerate(targets):
            client = self.base_sts(config, endpoint, region) if base else self._sts(config, endpoint, region)
            try:
                return getattr(client, operation)(**params)
            except Exception as exc:
                if n == len(targets) - 1 or not should_fail_over(exc):
                    if failures:
                        exc.add_note("earlier STS endpoints failed: " + "; ".join(failures))
                    raise
                failures.append(f"{endpoint or 'the default endpoint'}: {error_message(exc)}")
        raise AssertionError("unreachable")

    def root_is_temporary(self, config: dict[str, Any]) -> str:
        """Why the engine's credentials are temporary ('' when they are an IAM user's long-term keys)."""
        if config.get("role_arn"):
            return f"config/root sets role_arn ({config['role_arn']}), so coffer signs with that role's session"
        access_key = config.get("access_key") or ""
        if access_key.startswith("ASIA"):
            return f"the access key {access_key} in config/root is a temporary (session) key"
        if not access_key:
            found = _shared_session().get_credentials()
            if found is not None and found.get_frozen_credentials().token:
                return f"the credentials found by the AWS credential chain ({found.method}) are temporary"
        return ""


def should_fail_over(exc: BaseException) -> bool:
    if isinstance(exc, (*NO_ANSWER, EndpointDown)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500
    return False


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """AWS's own words for a failure, without the SDK's wrapping."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Message") or err.get("Code") or exc)
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)


def is_throttle(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLE_CODES


def action_of(exc: BaseException) -> str:
    """``iam:CreateUser`` for a ClientError of that operation ('' if unknown)."""
    operation = getattr(exc, "operation_name", "") or ""
    if not operation:
        return ""
    return f"{'sts' if operation in STS_ACTIONS else 'iam'}:{operation}"
