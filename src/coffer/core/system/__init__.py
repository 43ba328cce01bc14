"""The system backend (``sys/``): coffer's own configuration and lifecycle, a built-in mount.

Each module serves one topic and is handed only the services it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coffer.core.system import (
    audit,
    capabilities,
    ha,
    keys,
    leases,
    lifecycle,
    metrics,
    mounts,
    policies,
    rootkeys,
    snapshot,
    ui_mounts,
    wrapping,
)
from coffer.framework.backend import Backend

if TYPE_CHECKING:
    from coffer.core.core import Core

HELP = """The system backend: coffer's own configuration and lifecycle.

It initializes, unseals and seals the server, mounts secrets engines and
auth methods, manages ACL policies, leases and audit devices, and rotates
the encryption key."""


def system_backend(core: Core) -> Backend:
    return Backend(
        [
            *lifecycle.paths(core),
            *rootkeys.paths(core),
            *mounts.paths(core.router, core.expiration, core.tokens),
            *policies.paths(core.policies),
            *capabilities.paths(core.tokens, core.policies),
            *audit.paths(core.audit),
            *keys.paths(core.barrier, core.router),
            *leases.paths(core.expiration),
            *wrapping.paths(core.wrapping),
            *ui_mounts.paths(core.router, core.tokens, core.policies),
            *metrics.paths(core.metrics),
            *ha.paths(core),
            *snapshot.paths(core),
        ],
        help=HELP,
        unauthenticated=(*lifecycle.UNAUTHENTICATED, *rootkeys.UNAUTHENTICATED, *wrapping.UNAUTHENTICATED,
                         *ui_mounts.UNAUTHENTICATED),
        sudo_paths=(*lifecycle.SUDO, *rootkeys.SUDO, *mounts.SUDO, *audit.SUDO, *keys.SUDO, *leases.SUDO,
                    *ha.SUDO, *snapshot.SUDO),
    )
