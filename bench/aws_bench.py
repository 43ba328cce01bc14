"""Benchmark 2: AWS issue/revoke through coffer vs the same IAM calls made directly with boto3.

One moto server (tests/aws_support.MotoServer, IAM authentication enforced)
serves both sides. Between moto and BOTH sides sits bench/latency_proxy.py,
which holds every AWS answer for DELAY_MS (real IAM answers in ~50-150 ms,
mostly network wait; moto in a few ms of CPU, which on 2 cores would hide any
concurrency). The latency ratio is also measured without the proxy.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import PYTHON, REPO, Coffer, Http, Row, fmt3, log, spawn, stop

sys.path.insert(0, str(REPO / "tests"))

DELAY_MS = 50
ROLE_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}'
ROOT_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:*", "sts:*"],
                                                      "Resource": "*"}]}


def start_proxy(target: str, delay_ms: float, workdir: Path, action_log: Path | None = None):
    out = workdir / f"proxy-{int(delay_ms)}ms.log"
    args = [PYTHON, str(Path(__file__).parent / "latency_proxy.py"), "--target", target, "--delay-ms", str(delay_ms)]
    if action_log:
        args += ["--log", str(action_log)]
    proc = spawn(args, out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"latency proxy exited: {out.read_text()[-2000:]}")
        for line in out.read_text().splitlines() if out.exists() else []:
            if line.startswith("PORT "):
                return proc, f"http://127.0.0.1:{int(line.split()[1])}"
        time.sleep(0.05)
    raise RuntimeError("latency proxy did not start")


def boto_iam(endpoint: str, key: tuple[str, str]) -> Any:
    """A boto3 IAM client configured as coffer configures its own (engines/aws/clients.py)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name="us-east-1")
    return session.client("iam", endpoint_url=endpoint, config=Config(
        retries={"mode": "adaptive"}, max_pool_connections=32, connect_timeout=3, read_timeout=10))


def boto_sts(endpoint: str, key: tuple[str, str]) -> Any:
    """A boto3 STS client configured as coffer configures its own (engines/aws/clients.py)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name="us-east-1")
    return session.client("sts", endpoint_url=endpoint, config=Config(
        retries={"mode": "adaptive"}, max_pool_connections=32, connect_timeout=3, read_timeout=10))


def direct_assume(sts: Any, role_arn: str) -> None:
    """What coffer's assumed_role issue does at AWS: one AssumeRole."""
    sts.assume_role(RoleArn=role_arn, RoleSessionName=f"vault-{int(time.time())}-{uuid.uuid4().hex[:20]}"[:32],
                    DurationSeconds=3600)


def direct_issue(iam: Any, user_path: str = "/") -> str:
    """What coffer's issue does at AWS: CreateUser, PutUserPolicy, CreateAccessKey."""
    name = f"vault-direct-bench-{int(time.time())}-{uuid.uuid4().hex[:20]}"
    iam.create_user(UserName=name, Path=user_path)
    iam.put_user_policy(UserName=name, PolicyName="bench", PolicyDocument=ROLE_POLICY)
    iam.create_access_key(UserName=name)
    return name


UNSUPPORTED: set[str] = set()


def direct_teardown(iam: Any, name: str) -> None:
    """The same List/Delete calls coffer's revoke makes (engines/aws/iam_user.delete_user_sync)."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    def paged(method: str, key: str) -> list[Any]:
        if method in UNSUPPORTED:
            return []
        try:
            if iam.can_paginate(method):
                return [i for page in iam.get_paginator(method).paginate(UserName=name) for i in page[key]]
            return list(getattr(iam, method)(UserName=name)[key])
        except ResponseParserError:  # moto lacks service-specific credentials: like coffer, stop asking
            UNSUPPORTED.add(method)
            return []

    for k in paged("list_access_keys", "AccessKeyMetadata"):
        iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
    for p in paged("list_user_policies", "PolicyNames"):
        iam.delete_user_policy(UserName=name, PolicyName=p)
    for p in paged("list_attached_user_policies", "AttachedPolicies"):
        iam.detach_user_policy(UserName=name, PolicyArn=p["PolicyArn"])
    for g in paged("list_groups_for_user", "Groups"):
        iam.remove_user_from_group(UserName=name, GroupName=g["GroupName"])
    for d in paged("list_mfa_devices", "MFADevices"):
        iam.deactivate_mfa_device(UserName=name, SerialNumber=d["SerialNumber"])
    for s in paged("list_ssh_public_keys", "SSHPublicKeys"):
        iam.delete_ssh_public_key(UserName=name, SSHPublicKeyId=s["SSHPublicKeyId"])
    for c in paged("list_signing_certificates", "Certificates"):
        iam.delete_signing_certificate(UserName=name, CertificateId=c["CertificateId"])
    for c in paged("list_service_specific_credentials", "ServiceSpecificCredentials"):
        iam.delete_service_specific_credential(UserName=name,
                                               ServiceSpecificCredentialId=c["ServiceSpecificCredentialId"])
    try:
        iam.delete_login_profile(UserName=name)
    except ClientError:
        pass
    iam.delete_user(UserName=name)


def timed(fn, *args) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def throughput(fn, clients: int, seconds: float) -> float:
    """Calls of ``fn`` per second with ``clients`` threads calling it back to back for ``seconds``."""
    count = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        state: dict[str, Any] = {}
        while time.monotonic() < deadline and not errors:
            try:
                fn(state)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            with lock:
                count[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    if errors:
        raise RuntimeError(f"throughput run failed: {errors[0]!r}")
    return count[0] / (time.monotonic() - t0)


def run(workdir: Path, *, quick: bool, reps: int = 3, bulk: int | None = None) -> tuple[list[Row], dict[str, Any]]:
    from aws_support import MotoServer

    workdir = workdir / "aws"
    workdir.mkdir(parents=True, exist_ok=True)
    samples = 5 if quick else 20  # sequential latency samples per side and repetition
    tput_seconds = 2.5 if quick else 8
    bulk = bulk or (1000 if quick else 10_000)
    moto = proxy = None
    coffer = Coffer(workdir)
    raw: dict[str, Any] = {"delay_ms": DELAY_MS, "samples_per_rep": samples, "throughput_seconds": tput_seconds}
    try:
        moto = MotoServer(log_dir=workdir).start()
        key = moto.make_user("coffer-bench-root", ROOT_POLICY, policy_name="root")
        action_log = workdir / "proxy-actions.log"
        proxy, proxy_endpoint = start_proxy(moto.endpoint, DELAY_MS, workdir, action_log)
        log(f"aws: moto at {moto.endpoint} (auth enforced), latency proxy (+{DELAY_MS} ms per call) at {proxy_endpoint}")
        coffer.start()
        coffer.init_unseal()
        c = coffer.http()
        root_arn = moto.admin_iam().get_user(UserName="coffer-bench-root")["User"]["Arn"]
        role_arn = moto.admin_iam().create_role(RoleName="coffer-bench-sts", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": root_arn},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        for mount, endpoint in (("aws", proxy_endpoint), ("aws-direct", moto.endpoint)):
            c.put(f"sys/mounts/{mount}", {"type": "aws"})
            c.put(f"{mount}/config/root", {"access_key": key[0], "secret_key": key[1], "region": "us-east-1",
                                           "iam_endpoint": endpoint, "sts_endpoint": endpoint})
            c.put(f"{mount}/roles/bench", {"credential_type": "iam_user", "policy_document": ROLE_POLICY})
            c.put(f"{mount}/roles/bulk", {"credential_type": "iam_user", "policy_document": ROLE_POLICY,
                                          "user_path": "/bulk/"})
            c.put(f"{mount}/roles/sts", {"credential_type": "assumed_role", "role_arns": [role_arn]})
        c.close()
        iam_delay = boto_iam(proxy_endpoint, key)
        iam_nodelay = boto_iam(moto.endpoint, key)
        local = threading.local()

        def client() -> Http:
            if not hasattr(local, "http"):
                local.http = coffer.http()
            return local.http

        def coffer_issue(mount: str = "aws", role: str = "bench") -> str:
            return client().get(f"{mount}/creds/{role}")["lease_id"]

        def coffer_revoke(lease_id: str) -> None:
            client().put("sys/leases/revoke", {"lease_id": lease_id})

        # warm-up: clients, connection pools, both paths
        for _ in range(2):
            coffer_revoke(coffer_issue())
            coffer_revoke(coffer_issue("aws-direct"))
            direct_teardown(iam_delay, direct_issue(iam_delay))
            direct_teardown(iam_nodelay, direct_issue(iam_nodelay))

        # the direct teardown makes exactly the calls coffer's revoke made
        mark = action_log.stat().st_size
        coffer_revoke(coffer_issue())
        coffer_calls = [line.split()[0] for line in action_log.read_text()[mark:].splitlines()]
        mark = action_log.stat().st_size
        direct_teardown(iam_delay, direct_issue(iam_delay))
        direct_calls = [line.split()[0] for line in action_log.read_text()[mark:].splitlines()]
        raw["coffer_calls_issue_revoke"] = coffer_calls
        raw["direct_calls_issue_teardown"] = direct_calls
        if coffer_calls != direct_calls:
            log(f"WARNING: call sequences differ:\n coffer {coffer_calls}\n direct {direct_calls}")
        log(f"aws: one issue+revoke = {len(coffer_calls)} AWS calls: {' '.join(coffer_calls)}")

        # 1. revoke-prefix of `bulk` leases (through the delay), first: moto's IAM gets slower with every
        # user it holds (its auth looks keys up one by one), so this runs while it holds none
        t0 = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda _: coffer_issue("aws", "bulk"), range(bulk)))
        issue_s = time.perf_counter() - t0
        count = client().get("sys/leases/count?prefix=aws/creds/bulk/")["data"]["lease_count"]
        users = len(moto.admin_iam().list_users(PathPrefix="/bulk/")["Users"])
        log(f"aws: issued {count} bulk leases ({users} IAM users) in {issue_s:.1f}s with 32 clients; revoke-prefix ...")
        # asynchronous (202), then poll the count: 10,000 revocations take longer than any HTTP timeout
        t0 = time.perf_counter()
        status, body = client().request("PUT", "sys/leases/revoke-prefix/aws/creds/bulk", {"sync": False},
                                        ok=(202,))
        deadline = t0 + (900 if quick else 1800)
        left, shown = count, t0
        while time.perf_counter() < deadline:
            left = client().get("sys/leases/count?prefix=aws/creds/bulk/")["data"]["lease_count"]
            if left == 0:
                break
            if time.perf_counter() - shown > 60:
                shown = time.perf_counter()
                log(f"aws: revoke-prefix: {count - left} of {count} revoked after {shown - t0:.0f}s")
            time.sleep(0.5)
        revoke_s = time.perf_counter() - t0
        users_left = len(moto.admin_iam().list_users(PathPrefix="/bulk/")["Users"])
        raw["bulk"] = {"leases": count, "issue_s": issue_s, "revoke_s": revoke_s, "status": status,
                       "answer": body, "leases_left": left, "iam_users_left": users_left}
        log(f"aws: revoke-prefix of {count} leases took {revoke_s:.1f}s ({count / revoke_s:.0f}/s); "
            f"{left} leases and {users_left} IAM users left")

        # 2. latency: sequential, interleaved, with and without the delay
        lat: dict[str, list[float]] = {}
        for label, mount, iam in (("delay", "aws", iam_delay), ("nodelay", "aws-direct", iam_nodelay)):
            for rep in range(reps):
                ci, di, cr, dr = [], [], [], []
                for _ in range(samples):
                    t, lease = timed(coffer_issue, mount)
                    ci.append(t)
                    t, name = timed(direct_issue, iam)
                    di.append(t)
                    cr.append(timed(coffer_revoke, lease)[0])
                    dr.append(timed(direct_teardown, iam, name)[0])
                for k, v in (("coffer_issue", ci), ("direct_issue", di), ("coffer_revoke", cr),
                             ("direct_revoke", dr)):
                    lat.setdefault(f"{label}_{k}", []).append(statistics.median(v) * 1000)
                log(f"aws latency {label} rep {rep + 1}: issue {statistics.median(ci) * 1000:.1f} vs "
                    f"{statistics.median(di) * 1000:.1f} ms, revoke {statistics.median(cr) * 1000:.1f} vs "
                    f"{statistics.median(dr) * 1000:.1f} ms")
        raw["latency_medians_ms"] = lat

        # 2b. STS assumed_role: one AssumeRole each, through the same delay (leases are not revoked:
        # revoking STS credentials only forgets them)
        sts_delay, sts_nodelay = boto_sts(proxy_endpoint, key), boto_sts(moto.endpoint, key)
        for label, mount, sts in (("delay", "aws", sts_delay), ("nodelay", "aws-direct", sts_nodelay)):
            for _ in range(2):  # warm-up
                client().get(f"{mount}/creds/sts")
                direct_assume(sts, role_arn)
            for rep in range(reps):
                cs, ds = [], []
                for _ in range(samples * 2):
                    cs.append(timed(lambda m=mount: client().get(f"{m}/creds/sts"))[0])
                    ds.append(timed(direct_assume, sts, role_arn)[0])
                lat.setdefault(f"{label}_coffer_sts", []).append(statistics.median(cs) * 1000)
                lat.setdefault(f"{label}_direct_sts", []).append(statistics.median(ds) * 1000)
                log(f"aws sts latency {label} rep {rep + 1}: coffer {statistics.median(cs) * 1000:.1f} vs "
                    f"direct AssumeRole {statistics.median(ds) * 1000:.1f} ms")

        # 3. concurrency: issue throughput with 1 and 16 clients (through the delay)
        issued: list[str] = []
        issued_lock = threading.Lock()

        def one_issue(state: dict[str, Any]) -> None:
            lease = coffer_issue()
            with issued_lock:
                issued.append(lease)

        def one_direct(state: dict[str, Any]) -> None:
            # one shared client (thread-safe, 32 pooled connections), as coffer shares one per mount
            direct_issue(iam_delay, "/tput/")

        tp: dict[str, list[float]] = {"coffer_1": [], "coffer_16": [], "direct_1": [], "direct_16": []}
        for rep in range(reps):
            tp["coffer_1"].append(throughput(one_issue, 1, tput_seconds))
            tp["coffer_16"].append(throughput(one_issue, 16, tput_seconds))
            tp["direct_1"].append(throughput(one_direct, 1, tput_seconds))
            tp["direct_16"].append(throughput(one_direct, 16, tput_seconds))
            log(f"aws throughput rep {rep + 1}: coffer 1 client {tp['coffer_1'][-1]:.1f}/s, 16 clients "
                f"{tp['coffer_16'][-1]:.1f}/s; direct {tp['direct_1'][-1]:.1f}/s, {tp['direct_16'][-1]:.1f}/s")
        raw["throughput_per_s"] = tp
        # The throughput runs' leases and users are left in place (moto and coffer are thrown
        # away at the end): the revoke-prefix below runs with them around, under another prefix.

        moto_calls = sum(1 for _ in action_log.open())
        raw["aws_calls_through_proxy"] = moto_calls
    finally:
        if "local" in locals() and hasattr(local, "http"):
            local.http.close()
        coffer.stop()
        stop(proxy)
        if moto is not None:
            moto.stop()

    rows = []
    for label, desc in (("delay", f"+{DELAY_MS} ms/call"), ("nodelay", "no delay")):
        c, d = lat[f"{label}_coffer_issue"], lat[f"{label}_direct_issue"]
        ratios = [x / y for x, y in zip(c, d, strict=True)]
        r = statistics.median(ratios)
        rows.append(Row(f"AWS issue median latency ({desc})", fmt3(c, 1, " ms"), fmt3(d, 1, " ms") + " direct boto3",
                        f"{r:.2f}x", "<= 1.25x" if label == "delay" else "report (<= 1.25x)",
                        (r <= 1.25) if label == "delay" else None))
        c, d = lat[f"{label}_coffer_revoke"], lat[f"{label}_direct_revoke"]
        ratios = [x / y for x, y in zip(c, d, strict=True)]
        rows.append(Row(f"AWS revoke median latency ({desc})", fmt3(c, 1, " ms"),
                        fmt3(d, 1, " ms") + " direct teardown", f"{statistics.median(ratios):.2f}x", "report", None))
    for label, desc in (("delay", f"+{DELAY_MS} ms/call"), ("nodelay", "no delay")):
        c, d = lat[f"{label}_coffer_sts"], lat[f"{label}_direct_sts"]
        r = statistics.median([x / y for x, y in zip(c, d, strict=True)])
        rows.append(Row(f"AWS STS assumed_role issue median latency ({desc})", fmt3(c, 1, " ms"),
                        fmt3(d, 1, " ms") + " direct boto3 AssumeRole", f"{r:.2f}x",
                        "<= 1.1x" if label == "delay" else "report", (r <= 1.1) if label == "delay" else None))
    ratios = [x / y for x, y in zip(tp["coffer_16"], tp["coffer_1"], strict=True)]
    r = statistics.median(ratios)
    rows.append(Row(f"AWS issue throughput, 16 clients vs 1 (+{DELAY_MS} ms/call)", fmt3(tp["coffer_16"], 1, "/s"),
                    fmt3(tp["coffer_1"], 1, "/s") + " coffer, 1 client", f"{r:.1f}x", ">= 4x", r >= 4))
    rows.append(Row("AWS issue throughput, 16 clients: coffer vs direct", fmt3(tp["coffer_16"], 1, "/s"),
                    fmt3(tp["direct_16"], 1, "/s") + " direct, 16 threads",
                    f"{statistics.median(tp['coffer_16']) / statistics.median(tp['direct_16']):.2f}x", "report", None))
    b = raw["bulk"]
    rows.append(Row(f"AWS revoke-prefix of {b['leases']:,} leases (+{DELAY_MS} ms/call), 1 run",
                    f"{b['leases'] / b['revoke_s']:.1f} leases/s ({b['revoke_s']:.1f} s)",
                    f"{b['leases_left']} leases, {b['iam_users_left']} IAM users left", "-",
                    f"completes, none left (of {bulk:,})",
                    b["leases"] == bulk and b["leases_left"] == 0 and b["iam_users_left"] == 0))
    return rows, raw
