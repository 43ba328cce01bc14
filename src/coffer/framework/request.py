"""The values that travel between core and an engine: requests, responses, and what they carry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, BinaryIO

from coffer.framework.storage import UNROUTED, StorageView
from coffer.storage.base import Op


class Operation(StrEnum):
    """What a request asks of an engine.

    HTTP verbs map onto the first six and patch in http/ ("create" or "update" is
    decided by the path's existence check; PATCH is patch, a JSON merge patch);
    core sends the others on its own: renew and revoke for a lease, rollback for
    write-ahead entries, periodic on a timer.
    """

    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"
    HELP = "help"
    PATCH = "patch"
    RENEW = "renew"
    REVOKE = "revoke"
    ROLLBACK = "rollback"
    PERIODIC = "periodic"


READ, CREATE, UPDATE, DELETE, LIST, HELP = (Operation.READ, Operation.CREATE, Operation.UPDATE, Operation.DELETE,
                                            Operation.LIST, Operation.HELP)
PATCH = Operation.PATCH
RENEW, REVOKE, ROLLBACK, PERIODIC = Operation.RENEW, Operation.REVOKE, Operation.ROLLBACK, Operation.PERIODIC


@dataclass(frozen=True, slots=True)
class MountInfo:
    """What an engine knows of the mount it serves."""

    path: str  # the full route prefix, e.g. "aws/" or "auth/approle/"
    type: str
    uuid: str = ""
    accessor: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    #: The lease TTLs in effect here (the mount's tuned values, else the server's).
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0
    #: default_lease_ttl as tuned on this mount (0: not tuned).
    tuned_default_lease_ttl: int = 0


#: The mount of a request that was not routed yet.
NO_MOUNT = MountInfo(path="", type="")


@dataclass(slots=True, kw_only=True)
class TokenInfo:
    """The caller's token, as engines see it (core's token entry extends this)."""

    accessor: str
    policies: list[str]
    meta: dict[str, str] = field(default_factory=dict)
    display_name: str = "token"
    num_uses: int = 0
    creation_time: float = 0.0
    ttl: int = 0  # the TTL it was created (or last renewed) with
    explicit_max_ttl: int = 0
    period: int = 0
    renewable: bool = True
    expire_time: float = 0.0  # 0: never
    path: str = "auth/token/create"
    orphan: bool = False

    @property
    def is_root(self) -> bool:
        return "root" in self.policies


@dataclass(slots=True)
class Secret:
    """A response that must be taken back later carries one of these; renew and revoke requests carry it back."""

    type: str
    internal: dict[str, Any] = field(default_factory=dict)
    ttl: int = 0
    max_ttl: int = 0
    renewable: bool = True
    #: A write-ahead entry (framework.wal) removed atomically with the lease's creation.
    wal_id: str = ""
    #: The lease id, when the engine needed it before answering (e.g. to tag what it made).
    lease_id: str = ""
    #: Storage ops (absolute keys) that core applies in the same batch that records the lease.
    commit_ops: list[Op] = field(default_factory=list)
    #: The role (or other bounded name) the lease is counted under in the metrics, e.g. the AWS role; never a
    #: secret, a user name or anything unique per lease ("" counts it under the mount alone).
    metric_role: str = ""


@dataclass(slots=True, kw_only=True)
class Auth:
    """What a login asks core to mint, and what core hands an auth method back when that token is renewed.

    An auth method's login answers ``Response(auth=Auth(...))``; core makes the
    token from it (an orphan, with the mount's TTLs applying) and answers
    Vault's ``auth`` block. On renewal core sends the method a ``renew``
    request whose ``req.auth`` holds the token's current settings (with
    ``internal`` as the login left it); the method may refuse, or answer
    new ``ttl``/``max_ttl``/``period`` values.
    """

    policies: list[str] = field(default_factory=list)
    #: Shown in the token's lookup and the login's auth block (string values).
    metadata: dict[str, str] = field(default_factory=dict)
    #: Appended to the mount's name: "userpass-alice".
    display_name: str = ""
    #: 0: the mount's default lease TTL.
    ttl: int = 0
    #: A cap below the mount's max lease TTL (0: the mount's).
    max_ttl: int = 0
    period: int = 0
    explicit_max_ttl: int = 0
    num_uses: int = 0
    renewable: bool = True
    #: The token works only from these addresses (CIDR blocks or single IPs).
    bound_cidrs: list[str] = field(default_factory=list)
    no_default_policy: bool = False
    #: Kept with the token, never shown: handed back to the method on renewal.
    internal: dict[str, Any] = field(default_factory=dict)
    #: The name the caller has at this method (user name, role id...), for the audit trail.
    alias: str = ""


@dataclass(slots=True)
class Request:
    operation: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    client_token: str | None = None
    remote_addr: str = ""
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Filled in by core while routing.
    mount: MountInfo = NO_MOUNT
    relative_path: str = ""
    storage: StorageView = UNROUTED
    token: TokenInfo | None = None
    #: The token store's generation when core checked ``token`` before the body was read (-1: not checked);
    #: core reuses that check while no token has changed since.
    token_checked_at: int = -1
    #: The lease's secret, on renew and revoke.
    secret: Secret | None = None
    #: The token being renewed, on a renew request core sends an auth method.
    auth: Auth | None = None
    #: Seconds from X-Vault-Wrap-TTL: answer with a wrapping token instead (0: do not wrap).
    wrap_ttl: int = 0
    #: A LIST's page: only keys sorted after ``list_after``, at most ``list_limit`` of them (0: all). http/ applies
    #: them to any answer; an engine that can page in storage reads them to fetch only that page.
    list_after: str = ""
    list_limit: int = 0
    #: A body that is not JSON (a snapshot to restore), spooled by http/ into a private temporary file.
    upload: BinaryIO | None = None

    @property
    def mount_point(self) -> str:
        return self.mount.path

    @property
    def mount_type(self) -> str:
        return self.mount.type

    @property
    def mount_accessor(self) -> str:
        return self.mount.accessor


@dataclass(slots=True)
class Response:
    data: dict[str, Any] | None = None
    secret: Secret | None = None
    #: An auth method's login answers an ``Auth`` (core mints the token from it); what the client gets is
    #: Vault's rendered ``auth`` block (a dict), which the token backend answers directly.
    auth: Auth | dict[str, Any] | None = None
    #: Set when the response was wrapped: the wrapping token and its properties.
    wrap_info: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    # Lifecycle endpoints (sys/init, sys/health...) answer plain JSON.
    raw: bool = False
    #: A raw answer that is not JSON (sys/metrics in Prometheus' text format): its bytes and content type.
    body: bytes | None = None
    #: A raw answer too large to hold at once (a snapshot): its chunks, sent as they come (with content_type).
    stream: AsyncIterator[bytes] | None = None
    content_type: str = ""
    status: int | None = None
    # sys/mounts* and friends also copy data's keys to the top level.
    data_at_top_level: bool = False
    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False
