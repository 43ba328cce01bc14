"""AWS for the test suite: moto's HTTP server with IAM authentication enforced,
and a fault-injecting reverse proxy to put in front of it.

Nothing here patches boto3 or coffer. coffer (or a test) talks real, signed
HTTP to ``MotoServer.endpoint`` (or to ``FaultProxy.endpoint``), exactly as it
would talk to ``https://iam.amazonaws.com``.

How moto's access control works (moto 5.x, read from its source):

* ``INITIAL_NO_AUTH_ACTION_COUNT=n`` lets the first ``n`` service actions
  through without any check (every IAM/STS/... action counts, whatever the
  credentials; ``/moto-api/*`` calls do not). From action ``n+1`` on, every
  request must carry a valid SigV4 signature of a known access key, and the
  key's principal needs an ``Allow`` for ``service:Action``.
* ``POST /moto-api/reset`` wipes every backend (so also the admin user and
  its key) but does NOT touch the counter: authentication stays enforced and
  nobody is left who can sign. ``POST /moto-api/reset-auth`` (body: the new
  budget as a number) sets the budget and zeroes the counter.
  ``MotoServer.reset()`` therefore does reset, then reset-auth with the
  bootstrap budget, then bootstraps a new admin.
* Only ``Resource: "*"`` grants IAM user/key actions: moto checks them
  against the resource ``"*"``, so a statement naming a user ARN never
  matches. Actions that carry ``RoleName`` (and ``sts:AssumeRole``) are
  checked against the role's ARN instead.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"

#: Unauthenticated actions moto grants at start (and after ``reset()``):
#: exactly the three calls ``bootstrap_admin`` makes.
BOOTSTRAP_ACTIONS = 3

ADMIN_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}

#: The minimal root policy of the Vault AWS engine documentation (2015).
MINIMAL_ROOT_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "iam:CreateAccessKey",
                "iam:CreateUser",
                "iam:PutUserPolicy",
                "iam:ListGroupsForUser",
                "iam:ListUserPolicies",
                "iam:ListAccessKeys",
                "iam:DeleteAccessKey",
                "iam:DeleteUserPolicy",
                "iam:RemoveUserFromGroup",
                "iam:DeleteUser",
            ],
            "Resource": "*",
        }
    ],
}


#: A role policy for STS tests: moto lets its credentials list users, nothing else.
LIST_USERS: dict[str, Any] = {
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}

#: Root credentials that may make the three kinds of STS credentials (and read what they need for it).
STS_ROOT_POLICY: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
    "sts:AssumeRole", "sts:GetFederationToken", "sts:GetSessionToken", "iam:GetRole", "iam:ListGroupPolicies",
    "iam:GetGroupPolicy", "iam:ListAttachedGroupPolicies"], "Resource": "*"}]}


def trust(*principals: str, external_id: str = "") -> str:
    """A role's trust policy letting ``principals`` (ARNs, or "*") assume it, with an external id if given."""
    who = principals[0] if len(principals) == 1 else list(principals)
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": who}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (else None)."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


# --------------------------------------------------------------------------- clients

_session_lock = threading.Lock()
_boto_session: boto3.session.Session | None = None


def make_client(service: str, endpoint: str, access_key: str, secret_key: str,
                session_token: str | None = None, config: Config | None = None) -> Any:
    """A boto3 client for ``service`` at ``endpoint`` (region us-east-1).

    Default config: 5 s connect / 15 s read timeout, standard retry mode with
    at most 3 attempts in total. Pass ``config=Config(...)`` to override (it
    is merged over the default; a ``retries`` dict replaces the default one
    whole). Note botocore's ``retries={"max_attempts": n}`` counts RETRIES
    (n + 1 attempts); ``{"total_max_attempts": 1}`` means exactly one try.
    """
    global _boto_session
    base = Config(region_name=REGION, connect_timeout=5, read_timeout=15,
                  retries={"total_max_attempts": 3, "mode": "standard"})
    if config is not None:
        base = base.merge(config)
    # One shared boto3 session: service models are loaded once, which makes
    # creating a client ~10x cheaper. Client creation is not thread-safe.
    with _session_lock:
        if _boto_session is None:
            _boto_session = boto3.session.Session(region_name=REGION)
        return _boto_session.client(
            service, endpoint_url=endpoint, region_name=REGION, config=base,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )


class AccessKey(NamedTuple):
    """An IAM access key; unpacks as ``(access_key_id, secret_access_key)``."""

    access_key_id: str
    secret_access_key: str


class AwsIdentity:
    """Credentials plus an endpoint: a small boto3 client factory."""

    def __init__(self, endpoint: str, access_key_id: str, secret_access_key: str,
                 session_token: str | None = None, user_name: str | None = None) -> None:
        self.endpoint = endpoint
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.user_name = user_name

    def client(self, service: str, *, endpoint: str | None = None, config: Config | None = None) -> Any:
        return make_client(service, endpoint or self.endpoint, self.access_key_id, self.secret_access_key,
                           self.session_token, config)

    def iam(self, **kwargs: Any) -> Any:
        return self.client("iam", **kwargs)

    def sts(self, **kwargs: Any) -> Any:
        return self.client("sts", **kwargs)

    def boto3_session(self) -> boto3.session.Session:
        return boto3.session.Session(aws_access_key_id=self.access_key_id,
                                     aws_secret_access_key=self.secret_access_key,
                                     aws_session_token=self.session_token, region_name=REGION)

    def __repr__(self) -> str:
        return f"AwsIdentity({self.user_name or '?'}, {self.access_key_id}, {self.endpoint})"


# --------------------------------------------------------------------------- moto server

def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (even by SIGKILL).

    Linux ties this to the THREAD that started the child: start MotoServer
    from the main thread (pytest fixtures do), not from a short-lived one.
    """
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MotoServer:
    """``python -m moto.server`` in a subprocess on 127.0.0.1, auth enforced.

    ``MotoServer().start()`` starts it with the bootstrap budget and creates
    an admin (``.admin``, an ``AwsIdentity``); from then on every request
    must be signed by a known key and allowed by that key's policies.
    """

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        self.port = port
        self.endpoint = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin: AwsIdentity | None = None
        self._admin_iam: Any = None
        self._log_dir = log_dir
        self.log_path: Path | None = None
        self._budget_fresh = False
        self._lock = threading.Lock()

    # -- lifecycle

    def start(self, timeout: float = 30.0, bootstrap: bool = True) -> MotoServer:
        fixed_port = self.port
        last_error = ""
        for _ in range(1 if fixed_port else 3):  # a free port can be taken in between: retry
            port = fixed_port or free_port()
            try:
                self._spawn(port, timeout)
                break
            except RuntimeError as exc:
                last_error = str(exc)
                self._terminate()
        else:
            raise RuntimeError(f"moto server did not start: {last_error}")
        atexit.register(self.stop)
        if bootstrap:
            self.bootstrap_admin()
        return self

    def _spawn(self, port: int, timeout: float) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        env.update({
            "INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_ACTIONS),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "PYTHONUNBUFFERED": "1",
        })
        log_dir = self._log_dir or Path(tempfile.gettempdir())
        self.log_path = Path(log_dir) / f"moto-{port}-{uuid.uuid4().hex[:6]}.log"
        # The werkzeug server logs every request: never let that fill a pipe.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._budget_fresh = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                # The dashboard is served by moto-api: it does not use up the
                # unauthenticated budget (an AWS call, even GET /, would).
                if requests.get(f"{self.endpoint}/moto-api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"moto did not answer within {timeout}s:\n{self.log()}")

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        with self._lock:
            self._terminate()
            self.admin = None
            self._admin_iam = None
            if self._log_dir is None and self.log_path is not None:  # our own temp file
                self.log_path.unlink(missing_ok=True)

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def __enter__(self) -> MotoServer:
        return self if self.proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state

    def _moto_api(self, path: str, data: bytes | None = None) -> requests.Response:
        r = requests.post(f"{self.endpoint}/moto-api/{path}", data=data, timeout=10)
        r.raise_for_status()
        return r

    def reset(self) -> AwsIdentity:
        """Wipe all of moto's state, then bootstrap a new admin (new keys!).

        ``/moto-api/reset`` leaves the no-auth counter spent, so the budget is
        re-armed with ``/moto-api/reset-auth`` first. Anything else calling
        moto during ``reset()`` would eat that budget: reset while no coffer
        server is talking to this moto.
        """
        with self._lock:
            self.admin = None
            self._admin_iam = None
            self._moto_api("reset")
            self._moto_api("reset-auth", str(BOOTSTRAP_ACTIONS).encode())
            self._budget_fresh = True
        return self.bootstrap_admin()

    def bootstrap_admin(self, name: str = "coffer-test-admin") -> AwsIdentity:
        """Spend the unauthenticated budget on an admin user and its key.

        Idempotent: returns the existing admin if there is one. Afterwards it
        checks that moto really refuses an unknown key (else it raises).
        """
        with self._lock:
            if self.admin is not None:
                return self.admin
            if not self._budget_fresh:
                self._moto_api("reset-auth", str(BOOTSTRAP_ACTIONS).encode())
            self._budget_fresh = False
            anon = make_client("iam", self.endpoint, "AKIANOBODYBOOTSTRAP0", "not-checked-yet",
                               config=Config(retries={"total_max_attempts": 1}))
            # Exactly BOOTSTRAP_ACTIONS calls, no retries:
            anon.create_user(UserName=name)
            anon.put_user_policy(UserName=name, PolicyName="AdministratorAccess",
                                 PolicyDocument=json.dumps(ADMIN_POLICY))
            key = anon.create_access_key(UserName=name)["AccessKey"]
            admin = AwsIdentity(self.endpoint, key["AccessKeyId"], key["SecretAccessKey"], user_name=name)
            try:
                anon.get_user(UserName=name)
            except ClientError as exc:
                if error_code(exc) != "InvalidClientTokenId":
                    raise
            else:
                raise RuntimeError("moto accepted an unknown access key after bootstrap: "
                                   "authentication is not enforced (did something else use the budget?)")
            self._admin_iam = admin.iam()
            self._admin_iam.get_user(UserName=name)  # signed and authorized
            self.admin = admin
            return admin

    # -- helpers (all through the admin, with real signatures)

    def admin_iam(self) -> Any:
        """The admin's IAM client (shared; boto3 clients are thread-safe)."""
        if self._admin_iam is None:
            self.bootstrap_admin()
        return self._admin_iam

    def admin_client(self, service: str, **kwargs: Any) -> Any:
        if self.admin is None:
            self.bootstrap_admin()
        assert self.admin is not None
        return self.admin.client(service, **kwargs)

    def client(self, service: str, access_key: str, secret_key: str, session_token: str | None = None, *,
               endpoint: str | None = None, config: Config | None = None) -> Any:
        return make_client(service, endpoint or self.endpoint, access_key, secret_key, session_token, config)

    def iam(self, access_key: str, secret_key: str, session_token: str | None = None, **kwargs: Any) -> Any:
        return self.client("iam", access_key, secret_key, session_token, **kwargs)

    def sts(self, access_key: str, secret_key: str, session_token: str | None = None, **kwargs: Any) -> Any:
        return self.client("sts", access_key, secret_key, session_token, **kwargs)

    def make_user(self, name: str, policy_document: dict[str, Any] | str | None, *,
                  policy_name: str = "inline", path: str = "/",
                  tags: dict[str, str] | None = None) -> AccessKey:
        """Create IAM user ``name`` with one inline policy and an access key."""
        iam = self.admin_iam()
        kwargs: dict[str, Any] = {"UserName": name, "Path": path}
        if tags:
            kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        iam.create_user(**kwargs)
        if policy_document is not None:
            doc = policy_document if isinstance(policy_document, str) else json.dumps(policy_document)
            iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=doc)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(key["AccessKeyId"], key["SecretAccessKey"])

    def make_role(self, trusted: str, policy: dict[str, Any] = LIST_USERS, *, max_session: int = 3600,
                  external_id: str = "") -> str:
        """Create an IAM role ``trusted`` may assume, with ``policy`` inline; answers its ARN."""
        iam = self.admin_iam()
        name = f"app-{uuid.uuid4().hex[:8]}"
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(trusted, external_id=external_id),
                              MaxSessionDuration=max_session)["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        return arn

    def identity(self, key: AccessKey | tuple[str, str], *, endpoint: str | None = None) -> AwsIdentity:
        return AwsIdentity(endpoint or self.endpoint, key[0], key[1])

    def user_exists(self, name: str) -> bool:
        try:
            self.admin_iam().get_user(UserName=name)
            return True
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise

    def user_names(self, path_prefix: str = "/") -> list[str]:
        """All IAM user names (moto never paginates ListUsers)."""
        users = self.admin_iam().list_users(PathPrefix=path_prefix)["Users"]
        return [u["UserName"] for u in users]

    def user_of(self, access_key: str) -> str | None:
        """The IAM user that owns ``access_key`` (None if no user has it)."""
        # One call: listing every user's keys took seconds once a session had made hundreds of users, long
        # enough for a 3-second lease to be revoked meanwhile.
        try:
            return self.admin_iam().get_access_key_last_used(AccessKeyId=access_key)["UserName"]
        except ClientError:
            return None

    def caller_arn(self, access_key: str, secret_key: str, session_token: str | None = None) -> str:
        """``sts:GetCallerIdentity`` ARN; raises ClientError for an unknown key."""
        return self.sts(access_key, secret_key, session_token).get_caller_identity()["Arn"]

    def add_user_extras(self, name: str) -> dict[str, Any]:
        """Attach what blocks DeleteUser on real AWS: login profile, MFA device,
        SSH key, signing certificate, group membership, a managed policy.
        Returns the ids/names created (moto itself does not refuse DeleteUser
        for any of these but policies, see the report)."""
        iam = self.admin_iam()
        suffix = uuid.uuid4().hex[:8]
        iam.create_login_profile(UserName=name, Password="Coffer-test-pw-1!")
        serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-mfa")["VirtualMFADevice"]["SerialNumber"]
        iam.enable_mfa_device(UserName=name, SerialNumber=serial,
                              AuthenticationCode1="123456", AuthenticationCode2="654321")
        ssh_id = iam.upload_ssh_public_key(
            UserName=name, SSHPublicKeyBody=f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{suffix} test")[
            "SSHPublicKey"]["SSHPublicKeyId"]
        cert_id = iam.upload_signing_certificate(UserName=name, CertificateBody=_self_signed_pem(name))[
            "Certificate"]["CertificateId"]
        group = f"coffer-extra-{suffix}"
        iam.create_group(GroupName=group)
        iam.add_user_to_group(GroupName=group, UserName=name)
        policy_arn = iam.create_policy(PolicyName=f"coffer-extra-{suffix}",
                                       PolicyDocument=json.dumps(ADMIN_POLICY))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
        return {"mfa_serial": serial, "ssh_key_id": ssh_id, "certificate_id": cert_id,
                "group": group, "policy_arn": policy_arn}


def _self_signed_pem(common_name: str) -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --------------------------------------------------------------------------- fault proxy

FAULT_KINDS = ("throttle", "error500", "invalid_token", "timeout", "drop", "drop_after", "timeout_after")

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
               "te", "trailer", "trailers", "transfer-encoding", "upgrade"}

_ERRORS = {
    "throttle": (400, "Sender", "Throttling", "Rate exceeded"),
    # What AWS answers for a key it does not know yet (for a few seconds after CreateAccessKey).
    "invalid_token": (403, "Sender", "InvalidClientTokenId", "The security token included in the request is invalid."),
    "error500": (500, "Receiver", "ServiceFailure",
                 "The request processing has failed because of an unknown error, exception or failure."),
}


def _error_xml(kind_type: str, code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind_type}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def request_action(path: str, headers: Any, body: bytes) -> str:
    """The AWS action of a query-protocol (form body or query string) or JSON request."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(urlsplit(path).query)
    if "Action" in query:
        return query["Action"][0]
    if body and "x-www-form-urlencoded" in (headers.get("Content-Type") or "x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    return ""


class _Fault:
    __slots__ = ("action", "kind", "remaining", "hold")

    def __init__(self, action: str, kind: str, remaining: int | None, hold: float) -> None:
        self.action, self.kind, self.remaining, self.hold = action, kind, remaining, hold


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    proxy: FaultProxy


# Linux's SO_TIMESTAMPNS (Python does not name it): the kernel stamps each received segment with the time it
# arrived, as a struct timespec of CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35


def _first_byte_arrival(conn: socket.socket) -> float | None:
    """When the next request's first bytes reached this host, on time.monotonic()'s clock; None once the
    connection is closed or idle past its timeout.

    Waits for those bytes without taking them (MSG_PEEK). The kernel's stamp does not move when this process
    is slow to read, as under a loaded suite it is (GIL, garbage collection, a descheduled VM): a stamp taken
    here in Python would bunch requests that AWS would have seen apart.
    """
    try:
        data, ancillary, _, _ = conn.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except OSError:
        return None
    if not data:
        return None
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanoseconds = struct.unpack("qq", value[:16])
            return seconds + nanoseconds / 1e9 - time.time() + time.monotonic()
    return time.monotonic()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after this
    # Headers and body are written separately: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.server.proxy._track(self.connection, True)

    def handle_one_request(self) -> None:
        # The clients here never pipeline, so nothing of the next request is buffered in rfile yet.
        arrived = _first_byte_arrival(self.connection)
        if arrived is None:
            self.close_connection = True
            return
        self.arrived = arrived
        super().handle_one_request()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        action = request_action(self.path, self.headers, body)
        proxy._arrived(self.arrived, action, self.path, self.headers, body)
        fault = proxy._take_fault(action)
        if fault is not None and fault.kind in _ERRORS:
            status, kind_type, code, message = _ERRORS[fault.kind]
            proxy._record(action, status)
            self._reply(status, [("Content-Type", "text/xml")], _error_xml(kind_type, code, message))
            return
        if fault is not None and fault.kind in ("timeout", "drop"):
            proxy._record(action, None)
            self._no_answer(fault)
            return
        status, headers, data = self._forward(proxy, body)
        proxy._record(action, status)
        if fault is not None:  # drop_after / timeout_after: moto did it, the client never hears
            proxy._run_after(action)
            self._no_answer(fault)
            return
        proxy._run_after(action)
        self._reply(status, headers, data)

    def _forward(self, proxy: FaultProxy, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(proxy.target_host, proxy.target_port, timeout=proxy.upstream_timeout)
        try:
            # Headers go on unchanged and in order, Host included: moto checks
            # the SigV4 signature over the Host header the client signed.
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            for key, value in self.headers.items():
                if key.lower() in _HOP_BY_HOP:
                    continue
                conn.putheader(key, value)
            if chunked:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
            return resp.status, headers, data
        except OSError as exc:
            return 502, [("Content-Type", "text/xml")], _error_xml(
                "Receiver", "ServiceUnavailable", f"fault proxy: upstream failed: {exc}")
        finally:
            conn.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        try:
            self.send_response_only(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client went away (or was killed by an after() callback)
            self.close_connection = True

    def _no_answer(self, fault: _Fault) -> None:
        self.close_connection = True
        if fault.kind.startswith("timeout"):
            self.server.proxy._release.wait(fault.hold)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FaultProxy:
    """A threaded HTTP reverse proxy on 127.0.0.1 that forwards to ``target``
    unchanged and injects faults keyed by the AWS ``Action``.

    * ``fail(action, kind, times=1, hold=None)``: the next ``times`` requests
      for ``action`` (``"*"``: any action; ``times=None``: until ``clear()``)
      get, instead of moto's answer:

      - ``"throttle"``  400 ``Throttling`` "Rate exceeded" (not forwarded)
      - ``"error500"``  500 ``ServiceFailure`` (not forwarded)
      - ``"timeout"``   no answer for ``hold`` s (default ``timeout_hold``),
                        then the connection is closed (not forwarded)
      - ``"drop"``      the connection is closed at once (not forwarded)
      - ``"drop_after"`` / ``"timeout_after"``: like drop / timeout, but the
                        request IS forwarded and executed by moto first
                        (the "it happened but the client never heard" case).

      botocore retries throttles, 500s, timeouts and dropped connections; each
      attempt uses up one of ``times``.
    * ``after(action, callback, times=1)``: ``callback()`` runs right after
      moto answered ``action`` and before the answer goes back to the client.
      Exceptions are collected in ``errors``.
    * ``calls``: ``(action, status)`` for every request, in order; status is
      ``None`` when the client got no answer.
    * ``arrivals``: ``(monotonic time, action)`` of every request as it came in (the time the kernel
      received its first bytes, so a busy test process does not bunch them);
      ``params``: ``(action, form parameters)`` of every query-protocol request
      (IAM, STS), so a test can check what was asked.
    """

    def __init__(self, target: str, *, timeout_hold: float = 10.0, upstream_timeout: float = 60.0) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"target must be http://host:port, not {target!r}")
        self.target = target
        self.target_host, self.target_port = parts.hostname, parts.port
        self.timeout_hold = timeout_hold
        self.upstream_timeout = upstream_timeout
        self.calls: list[tuple[str, int | None]] = []
        # Bounded: a long benchmark run through a proxy makes hundreds of thousands of requests.
        self.arrivals: deque[tuple[float, str]] = deque(maxlen=50_000)
        self.params: deque[tuple[str, dict[str, str]]] = deque(maxlen=50_000)
        self.errors: list[BaseException] = []
        self._faults: list[_Fault] = []
        self._after: list[list[Any]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.port = 0

    def start(self) -> FaultProxy:
        server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        server.proxy = self
        self._server = server
        self.port = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._release.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # also end keep-alive connections still open
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control

    def fail(self, action: str, kind: str, times: int | None = 1, hold: float | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for always)")
        with self._lock:
            self._faults.append(_Fault(action, kind, times, self.timeout_hold if hold is None else hold))

    def after(self, action: str, callback: Callable[[], object], times: int | None = 1) -> None:
        with self._lock:
            self._after.append([action, callback, times])

    def clear(self) -> None:
        """Forget faults, callbacks, calls and errors; release held connections."""
        with self._lock:
            self._faults.clear()
            self._after.clear()
            self.calls.clear()
            self.arrivals.clear()
            self.params.clear()
            self.errors.clear()
            old, self._release = self._release, threading.Event()
        old.set()

    def count(self, action: str, status: int | None | str = "any") -> int:
        """How many requests for ``action`` were seen (optionally with ``status``)."""
        with self._lock:
            return sum(1 for a, s in self.calls if a == action and (status == "any" or s == status))

    def actions(self) -> list[str]:
        with self._lock:
            return [a for a, _ in self.calls]

    # -- used by the handler

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _take_fault(self, action: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.action in (action, "*"):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _arrived(self, when: float, action: str, path: str, headers: Any, body: bytes) -> None:
        form: dict[str, str] = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        if body and "x-www-form-urlencoded" in (headers.get("Content-Type") or "x-www-form-urlencoded"):
            form.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        with self._lock:
            self.arrivals.append((when, action))
            self.params.append((action, form))

    def requests_for(self, action: str) -> list[dict[str, str]]:
        """The form parameters of every request for ``action`` seen so far."""
        with self._lock:
            return [form for a, form in self.params if a == action]

    def _record(self, action: str, status: int | None) -> None:
        with self._lock:
            self.calls.append((action, status))

    def _run_after(self, action: str) -> None:
        due = []
        with self._lock:
            for entry in list(self._after):
                if entry[0] in (action, "*"):
                    due.append(entry[1])
                    if entry[2] is not None:
                        entry[2] -= 1
                        if entry[2] == 0:
                            self._after.remove(entry)
        for callback in due:
            try:
                callback()
            except BaseException as exc:  # noqa: BLE001 - reported through .errors
                with self._lock:
                    self.errors.append(exc)
