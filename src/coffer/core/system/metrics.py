"""``sys/metrics``: the server's metrics, in Vault's JSON form or Prometheus' text format (core/metrics.py).

It needs a token allowed to read ``sys/metrics``, unless the listener sets
``telemetry { unauthenticated_metrics_access = true }`` (then http/ answers it
before any token is looked at, sealed or not).
"""

from __future__ import annotations

from coffer.core.metrics import Metrics, metrics_response
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response


def paths(metrics: Metrics) -> list[Path]:
    async def read(req: Request, d: FieldData) -> Response:
        return await metrics_response(metrics, d["format"] or "")

    return [Path("metrics", {"read": read}, {
        "format": Field(FieldType.STRING, 'Empty for JSON, or "prometheus" for Prometheus\' text format.',
                        default=""),
    }, synopsis="The server's metrics (JSON, or ?format=prometheus).")]
