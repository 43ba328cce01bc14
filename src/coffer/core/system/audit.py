"""``sys/audit*`` and ``sys/audit-hash/*``: the audit devices."""

from __future__ import annotations

from coffer.core.audit import AuditBroker
from coffer.core.router import normalize
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S, B, KV = FieldType.STRING, FieldType.BOOL, FieldType.KV_MAP

SUDO = ("audit", "audit/*")


def paths(audit: AuditBroker) -> list[Path]:
    async def list_audit(req: Request, d: FieldData) -> Response:
        return Response(data={p: dev.describe() for p, dev in sorted(audit.devices.items())}, data_at_top_level=True)

    async def enable_audit(req: Request, d: FieldData) -> None:
        d.require("type")
        options = {str(k): str(v) for k, v in (d["options"] or {}).items()}
        await audit.enable(normalize(d["path"]), d["type"], d["description"] or "", options)

    async def disable_audit(req: Request, d: FieldData) -> None:
        await audit.disable(normalize(d["path"]))

    async def audit_hash(req: Request, d: FieldData) -> Response:
        d.require("input")
        return Response(data={"hash": audit.hash(normalize(d["path"]), d["input"])}, data_at_top_level=True)

    return [
        Path("audit", {"read": list_audit}, synopsis="List the enabled audit devices (sudo)."),
        Path(r"audit/(?P<path>.+)", {"write": enable_audit, "delete": disable_audit}, {
            "path": Field(S, "Where to enable the device, e.g. file."),
            "type": Field(S, "The device type: file."),
            "description": Field(S, "A description."),
            "options": Field(KV, "file_path (a file or stdout), mode, log_raw, hmac_accessor, format (json), prefix."),
            "local": Field(B, "Ignored (no replication).", default=False),
        }, synopsis="Enable (PUT) or disable (DELETE) an audit device (sudo)."),
        Path(r"audit-hash/(?P<path>.+)", {"write": audit_hash}, {
            "path": Field(S, "The audit device."), "input": Field(S, "The value to hash.")},
             synopsis="The hash an audit device writes for a value."),
    ]
