"""``sys/policy*`` and ``sys/policies/acl*``: the ACL policies."""

from __future__ import annotations

from coffer.core.policy import ROOT_POLICY_NAME
from coffer.core.policystore import PolicyStore
from coffer.errors import InvalidRequest, NotFound
from coffer.framework.backend import Path
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import Request, Response

S = FieldType.STRING
NAME = r"(?P<name>[^/]+)"


def paths(policies: PolicyStore) -> list[Path]:
    async def list_policies(req: Request, d: FieldData) -> Response:
        names = await policies.names()
        return Response(data={"policies": names, "keys": names}, data_at_top_level=True)

    async def read_policy(req: Request, d: FieldData) -> Response:
        name = d["name"].lower()
        text = "" if name == ROOT_POLICY_NAME else await policies.text(name)
        if text is None:
            raise NotFound(f'no policy named "{name}"')
        return Response(data={"name": name, "rules": text, "policy": text}, data_at_top_level=True)

    async def read_acl_policy(req: Request, d: FieldData) -> Response:
        resp = await read_policy(req, d)
        if resp.data is not None:
            resp.data.pop("rules")
        return resp

    async def write_policy(req: Request, d: FieldData) -> None:
        text = d["policy"] if "policy" in d else d["rules"]
        if not text:
            raise InvalidRequest('missing required field "policy" (the policy text in HCL or JSON)')
        await policies.put(d["name"], text)

    async def delete_policy(req: Request, d: FieldData) -> None:
        await policies.delete(d["name"])

    async def list_acl(req: Request, d: FieldData) -> Response:
        return Response(data={"keys": await policies.names()})

    fields = {
        "name": Field(S, "The policy's name (lower-cased)."),
        "policy": Field(S, "The policy document, HCL or JSON."),
        "rules": Field(S, "Older name of policy."),
    }
    return [
        Path("policy/?", {"read": list_policies, "list": list_acl}, synopsis="List the ACL policies."),
        Path(rf"policy/{NAME}", {"read": read_policy, "write": write_policy, "delete": delete_policy},
             fields, synopsis="Read, write or delete an ACL policy."),
        Path(r"policies/acl/?", {"list": list_acl}, synopsis="List the ACL policies."),
        Path(rf"policies/acl/{NAME}", {"read": read_acl_policy, "write": write_policy, "delete": delete_policy},
             fields, synopsis="Read, write or delete an ACL policy."),
    ]
