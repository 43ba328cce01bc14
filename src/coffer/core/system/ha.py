"""``sys/step-down`` and ``sys/ha-status``: high availability (core/ha.py).

Both are served by the active node (a standby forwards them there).
"""

from __future__ import annotations

from typing import Protocol

from coffer.core.ha import HighAvailability
from coffer.errors import InvalidRequest
from coffer.framework.backend import Path
from coffer.framework.fields import FieldData
from coffer.framework.request import Request, Response

SUDO = ("step-down",)


class HAServer(Protocol):
    ha: HighAvailability | None


def _ha(server: HAServer) -> HighAvailability:
    if server.ha is None:
        raise InvalidRequest("high availability is not enabled on this server: set ha_enabled = \"true\" in its "
                             'storage "postgresql" block')
    return server.ha


def paths(server: HAServer) -> list[Path]:
    async def step_down(req: Request, d: FieldData) -> None:
        ha = _ha(server)
        try:
            ha.request_step_down()
        except RuntimeError as exc:
            raise InvalidRequest(str(exc)) from None

    async def ha_status(req: Request, d: FieldData) -> Response:
        return Response(data={"nodes": await _ha(server).members()}, data_at_top_level=True)

    return [
        Path("step-down", {"write": step_down}, synopsis="The active node gives the HA lock up (needs sudo)."),
        Path("ha-status", {"read": ha_status}, synopsis="The nodes of the HA cluster heard from in the last 30s."),
    ]
