"""The request and response values that travel between the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coffer.core.tokens import TokenEntry
    from coffer.framework.storage import StorageView

# Logical operations. HTTP verbs map onto these in http/; "create" vs
# "update" is decided by core through the path's existence check.
READ = "read"
CREATE = "create"
UPDATE = "update"
DELETE = "delete"
LIST = "list"
HELP = "help"
OPERATIONS = (READ, CREATE, UPDATE, DELETE, LIST, HELP)


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
    mount_point: str = ""
    mount_type: str = ""
    mount_accessor: str = ""
    relative_path: str = ""
    storage: StorageView | None = None
    token: TokenEntry | None = None
    #: default_lease_ttl / max_lease_ttl in effect, and mount_default_lease_ttl as tuned (0: not tuned).
    mount_config: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Secret:
    """A response that must be taken back later carries one of these."""

    type: str
    internal: dict[str, Any] = field(default_factory=dict)
    ttl: int = 0
    max_ttl: int = 0
    renewable: bool = True
    #: A write-ahead entry (framework.wal) removed atomically with the lease's creation.
    wal_id: str = ""
    #: The lease id, when the engine needed it before answering (e.g. to tag what it made).
    lease_id: str = ""


@dataclass(slots=True)
class Response:
    data: dict[str, Any] | None = None
    secret: Secret | None = None
    auth: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    # Lifecycle endpoints (sys/init, sys/health...) answer plain JSON.
    raw: bool = False
    status: int | None = None
    # sys/mounts* and friends also copy data's keys to the top level.
    data_at_top_level: bool = False
    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False
