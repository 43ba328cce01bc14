"""The AWS harness itself: moto enforces IAM auth, the fault proxy is transparent
until told otherwise. If these fail, AWS engine test failures mean nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from aws_support import MINIMAL_ROOT_POLICY, FaultProxy, MotoServer, error_code

# botocore's "max_attempts" counts retries; "total_max_attempts" counts tries.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def only(action: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}


def code_of(call) -> str | None:
    with pytest.raises(ClientError) as info:
        call()
    return error_code(info.value)


# --------------------------------------------------------------------------- moto

def test_made_up_key_is_rejected(moto: MotoServer) -> None:
    fake = ("AKIA" + uuid.uuid4().hex[:16].upper(), "x" * 40)
    assert code_of(lambda: moto.iam(*fake, config=NO_RETRY).list_users()) == "InvalidClientTokenId"
    assert code_of(lambda: moto.sts(*fake, config=NO_RETRY).get_caller_identity()) == "InvalidClientTokenId"


def test_known_key_with_wrong_secret_is_rejected(moto: MotoServer) -> None:
    key = moto.make_user(name(), only("iam:GetUser"))
    client = moto.iam(key.access_key_id, "y" * 40, config=NO_RETRY)
    assert code_of(lambda: client.get_user()) == "SignatureDoesNotMatch"


def test_minimal_root_policy_allows_exactly_its_actions(moto: MotoServer) -> None:
    root = moto.iam(*moto.make_user(name("root"), MINIMAL_ROOT_POLICY), config=NO_RETRY)
    created = name("dyn")
    root.create_user(UserName=created)
    assert moto.user_exists(created)
    root.put_user_policy(UserName=created, PolicyName="p", PolicyDocument='{"Version": "2012-10-17", '
                         '"Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}')
    key = root.create_access_key(UserName=created)["AccessKey"]
    assert root.list_user_policies(UserName=created)["PolicyNames"] == ["p"]

    with pytest.raises(ClientError) as info:
        root.list_attached_user_policies(UserName=created)
    assert error_code(info.value) == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "iam:ListAttachedUserPolicies" in info.value.response["Error"]["Message"]
    assert code_of(lambda: root.create_login_profile(UserName=created, Password="Pw-123456!x")) == "AccessDenied"

    # ...and can tear down what it made.
    root.delete_access_key(UserName=created, AccessKeyId=key["AccessKeyId"])
    root.delete_user_policy(UserName=created, PolicyName="p")
    root.delete_user(UserName=created)
    assert not moto.user_exists(created)


def test_inline_policy_is_enforced(moto: MotoServer) -> None:
    user = name()
    key = moto.make_user(user, only("iam:GetUser"))
    client = moto.iam(*key, config=NO_RETRY)
    assert client.get_user()["User"]["UserName"] == user
    assert code_of(lambda: client.list_users()) == "AccessDenied"
    # GetCallerIdentity needs no permission (as on AWS) and names the key's owner.
    assert moto.caller_arn(*key).endswith(":user/" + user)


def test_deleted_key_is_rejected(moto: MotoServer) -> None:
    user = name()
    key = moto.make_user(user, only("iam:GetUser"))
    client = moto.iam(*key, config=NO_RETRY)
    client.get_user()
    moto.admin_iam().delete_access_key(UserName=user, AccessKeyId=key.access_key_id)
    assert code_of(lambda: client.get_user()) == "InvalidClientTokenId"


def test_moto_checks_the_signed_host_header(moto: MotoServer) -> None:
    """Why the proxy forwards Host unchanged: the signature covers it."""
    key = moto.make_user(name(), only("iam:GetUser"))
    body = "Action=GetUser&Version=2010-05-08"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def signed_for(url: str) -> dict[str, str]:
        req = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(Credentials(*key), "iam", "us-east-1").add_auth(req)
        return dict(req.headers)

    ok = requests.post(moto.endpoint + "/", data=body, headers=signed_for(moto.endpoint + "/"), timeout=10)
    assert ok.status_code == 200, ok.text
    elsewhere = signed_for("http://127.0.0.1:1/")  # signed for another host:port, sent to moto
    elsewhere.pop("Host", None)
    bad = requests.post(moto.endpoint + "/", data=body, headers=elsewhere, timeout=10)
    assert bad.status_code == 403 and "SignatureDoesNotMatch" in bad.text


def test_reset_rearms_the_budget_and_makes_a_new_admin(tmp_path) -> None:
    with MotoServer(log_dir=tmp_path).start() as server:
        old_admin = server.admin
        kept = server.make_user(name(), only("iam:GetUser"))
        new_admin = server.reset()
        assert new_admin.access_key_id != old_admin.access_key_id
        assert code_of(lambda: server.iam(*kept, config=NO_RETRY).get_user()) == "InvalidClientTokenId"
        assert code_of(lambda: old_admin.iam(config=NO_RETRY).list_users()) == "InvalidClientTokenId"
        assert [u for u in server.user_names() if u != new_admin.user_name] == []
        proc = server.proc
    assert proc is not None and proc.poll() is not None  # stopped


# --------------------------------------------------------------------------- fault proxy

def test_proxy_forwards_signed_requests_unchanged(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    key = moto.make_user(name(), only("iam:GetUser"))
    client = moto.iam(*key, endpoint=fault_proxy.endpoint, config=NO_RETRY)
    user = client.get_user()["User"]["UserName"]
    assert user == key_owner(moto, key)
    assert code_of(lambda: client.list_users()) == "AccessDenied"
    fake = moto.iam("AKIA" + "Z" * 16, "x" * 40, endpoint=fault_proxy.endpoint, config=NO_RETRY)
    assert code_of(lambda: fake.get_user()) == "InvalidClientTokenId"
    sts = moto.sts(*key, endpoint=fault_proxy.endpoint, config=NO_RETRY)
    assert sts.get_caller_identity()["Arn"].endswith(":user/" + user)
    assert fault_proxy.calls == [("GetUser", 200), ("ListUsers", 403), ("GetUser", 403), ("GetCallerIdentity", 200)]


# Sends on a connection the proxy has set up already, then, 0.3 s later, once more; prints the second's time.
_LATE_SENDER = """
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
conn.request("GET", "/?Action=GetUser")
conn.getresponse().read()
print("warm", flush=True)
time.sleep(0.3)
conn.request("GET", "/?Action=GetCallerIdentity")
sent = time.monotonic()
conn.getresponse().read()
print(sent, flush=True)
"""


def test_arrivals_are_stamped_when_the_bytes_came_not_when_the_proxy_read_them(fault_proxy: FaultProxy) -> None:
    """The budget tests count requests per second by these stamps. A proxy thread that is slow to run (the
    suite's process is busy) must not bunch them: here the proxy's thread is kept off the GIL for a second
    while another process sends to it."""
    sender = subprocess.Popen([sys.executable, "-c", _LATE_SENDER, str(fault_proxy.port)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert sender.stdout is not None and sender.stdout.readline() == "warm\n"
        switch = sys.getswitchinterval()
        sys.setswitchinterval(5.0)  # this thread keeps the GIL while it does not block
        try:
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                pass
        finally:
            sys.setswitchinterval(switch)
        sent = float(sender.stdout.readline())  # time.monotonic() is the same clock in every process
    finally:
        sender.kill()
        sender.wait()
    arrived = [t for t, action in fault_proxy.arrivals if action == "GetCallerIdentity"]
    assert len(arrived) == 1 and sent - 0.1 < arrived[0] < sent + 0.1, (arrived, sent)


def key_owner(moto: MotoServer, key) -> str:
    return moto.caller_arn(*key).rsplit("/", 1)[-1]


def test_throttle_and_500_surface_as_client_errors(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    admin = moto.admin.iam(endpoint=fault_proxy.endpoint, config=NO_RETRY)
    user = name()
    fault_proxy.fail("CreateUser", "throttle")
    with pytest.raises(ClientError) as info:
        admin.create_user(UserName=user)
    assert error_code(info.value) == "Throttling"
    assert info.value.response["Error"]["Message"] == "Rate exceeded"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not moto.user_exists(user)  # not forwarded

    fault_proxy.fail("CreateUser", "error500")
    with pytest.raises(ClientError) as info:
        admin.create_user(UserName=user)
    assert error_code(info.value) == "ServiceFailure"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    admin.create_user(UserName=user)  # faults used up: through to moto
    assert moto.user_exists(user)
    assert fault_proxy.calls == [("CreateUser", 400), ("CreateUser", 500), ("CreateUser", 200)]


def test_botocore_retries_consume_fault_counts(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    admin = moto.admin.iam(endpoint=fault_proxy.endpoint,
                           config=Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    fault_proxy.fail("GetUser", "error500", times=2)
    admin.get_user(UserName=moto.admin.user_name)
    assert [s for _, s in fault_proxy.calls] == [500, 500, 200]


def test_timeout_raises_read_timeout(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    admin = moto.admin.iam(endpoint=fault_proxy.endpoint,
                           config=Config(read_timeout=0.3, connect_timeout=2, retries={"total_max_attempts": 1}))
    user = name()
    fault_proxy.fail("CreateUser", "timeout", hold=5)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        admin.create_user(UserName=user)
    assert time.monotonic() - started < 3
    assert not moto.user_exists(user)
    assert fault_proxy.calls == [("CreateUser", None)]
    fault_proxy.clear()  # releases the held connection at once


def test_drop_and_drop_after(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    admin = moto.admin.iam(endpoint=fault_proxy.endpoint, config=NO_RETRY)
    user = name()
    fault_proxy.fail("CreateUser", "drop")
    with pytest.raises(ConnectionClosedError):
        admin.create_user(UserName=user)
    assert not moto.user_exists(user)
    fault_proxy.fail("CreateUser", "drop_after")
    with pytest.raises(ConnectionClosedError):
        admin.create_user(UserName=user)
    assert moto.user_exists(user)  # done in AWS, never confirmed to the client
    assert fault_proxy.calls == [("CreateUser", None), ("CreateUser", 200)]


def test_after_runs_once_between_moto_and_client(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    admin = moto.admin.iam(endpoint=fault_proxy.endpoint, config=NO_RETRY)
    first, second = name(), name()
    seen: list[bool] = []
    answered = threading.Event()

    def callback() -> None:
        # moto has done it, the client does not know yet
        seen.append(moto.user_exists(first) and not answered.is_set())

    fault_proxy.after("CreateUser", callback)
    admin.create_user(UserName=first)
    answered.set()
    admin.create_user(UserName=second)
    assert seen == [True]
    assert fault_proxy.errors == []
    assert fault_proxy.count("CreateUser") == 2


def test_stopped_proxy_refuses_connections(moto: MotoServer) -> None:
    proxy = FaultProxy(moto.endpoint).start()
    client = moto.admin.iam(endpoint=proxy.endpoint, config=NO_RETRY)
    client.get_user(UserName=moto.admin.user_name)
    proxy.stop()
    with pytest.raises(Exception):  # noqa: B017 - connection refused or closed, either is fine
        moto.admin.iam(endpoint=proxy.endpoint, config=Config(connect_timeout=1, retries={"total_max_attempts": 1})
                       ).get_user(UserName=moto.admin.user_name)


def test_proxy_handles_concurrent_clients(moto: MotoServer, fault_proxy: FaultProxy) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = moto.admin.iam(endpoint=fault_proxy.endpoint, config=Config(max_pool_connections=16))
    with ThreadPoolExecutor(16) as pool:
        names = list(pool.map(lambda _: client.get_user(UserName=moto.admin.user_name)["User"]["UserName"],
                              range(48)))
    assert names == [moto.admin.user_name] * 48
    assert fault_proxy.count("GetUser", 200) == 48
