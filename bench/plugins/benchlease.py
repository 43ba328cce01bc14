"""A bench-only secrets engine: leased secrets that cost nothing to revoke.

Loaded through ``plugin_directory`` (bench/plugins) and mounted as
``benchlease``. Every read of ``creds/<name>`` goes through coffer's whole
pipeline (token, ACL, routing, field validation) and the lease manager
registers a lease for it, exactly as for an AWS key; only the engine's own
work is nil, so the lease benchmark measures coffer's lease store and sweep.

  read creds/<name>  ttl=<duration>      a lease of that TTL
  read creds/<name>  due_at=<unix time>  a lease falling due at that moment (to the second):
                                         many leases issued over a while all expire together
"""

from __future__ import annotations

import math
import time

from coffer.framework.backend import Backend, Path, SecretType
from coffer.framework.fields import Field, FieldType
from coffer.framework.request import Request, Response, Secret


async def _issue(req: Request, d) -> Response:
    ttl = d["ttl"]
    if d["due_at"]:
        ttl = max(1, math.ceil(d["due_at"] - time.time()))
    return Response(
        data={"value": "bench"},
        secret=Secret(type="bench", internal={"n": d["name"]}, ttl=ttl, max_ttl=0, renewable=False),
    )


async def _revoke(req: Request, internal: dict) -> None:
    return None  # nothing to take back: the benchmark measures coffer, not an engine


def factory(entry):
    return Backend(
        [
            Path(r"creds/(?P<name>[\w-]+)", {"read": _issue, "write": _issue}, {
                "ttl": Field(FieldType.DURATION, "Lease TTL.", default=0),
                "due_at": Field(FieldType.INT, "Unix time at which the lease falls due (overrides ttl).",
                                default=0),
            }, synopsis="Issue a leased secret (no-op revoke)."),
        ],
        secrets=[SecretType("bench", revoke=_revoke)],
        help="A benchmark engine: leased secrets with a no-op revoke.",
    )
