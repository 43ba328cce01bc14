"""A test-only secrets engine whose secrets are leased and whose revoke can
be told to fail. Loaded by test servers through ``plugin_directory``.

  write  config  fail_times=N | fail_always=true | fail_prefix=...   how revokes behave
  read   creds/<name>  ttl=...  renewable=...                        issue a leased secret
  read   revocations/<name>                                          {issued value: times revoked}
  LIST   revocations/                                                names revoked at least once
"""

from __future__ import annotations

import uuid

from coffer.framework.backend import Backend, Path, SecretType
from coffer.framework.fields import Field, FieldType
from coffer.framework.request import Request, Response, Secret


async def _config(req, d):
    await req.storage.put_json("config", {k: v for k, v in d.given().items()})


async def _issue(req, d):
    name = d["name"]
    issued = f"{name}-{uuid.uuid4().hex[:8]}"
    return Response(
        data={"value": issued},
        secret=Secret(type="thing", internal={"name": name, "issued": issued}, ttl=d["ttl"],
                      max_ttl=d["max_ttl"], renewable=d["renewable"]),
    )


async def _revoke(req: Request, internal: dict) -> None:
    config = await req.storage.get_json("config") or {}
    name = internal["name"]
    failures = await req.storage.get_json(f"failures/{internal['issued']}") or 0
    if config.get("fail_always") or failures < config.get("fail_times", 0) or (
            config.get("fail_prefix") and name.startswith(config["fail_prefix"])):
        await req.storage.put_json(f"failures/{internal['issued']}", failures + 1)
        raise RuntimeError(f"the thing {internal['issued']} refused to go (failure {failures + 1})")
    key = f"revocations/{name}/{internal['issued']}"
    await req.storage.put_json(key, (await req.storage.get_json(key) or 0) + 1)


async def _renew(req: Request, internal: dict) -> Response | None:
    return None


async def _revocations(req, d):
    """How often each secret issued under a name was revoked: {issued: times}."""
    issued = await req.storage.list(f"revocations/{d['name']}/")
    return Response(data={i: await req.storage.get_json(f"revocations/{d['name']}/{i}") for i in issued})


async def _list_revocations(req, d):
    return Response(data={"keys": [k.rstrip("/") for k in await req.storage.list("revocations/")]})


def factory(entry):
    return Backend(
        [
            Path("config", {"write": _config}, {
                "fail_times": Field(FieldType.INT, default=0),
                "fail_always": Field(FieldType.BOOL, default=False),
                "fail_prefix": Field(FieldType.STRING, default=""),
            }, synopsis="How revocations behave."),
            Path(r"creds/(?P<name>[\w-]+)", {"read": _issue, "write": _issue}, {
                "ttl": Field(FieldType.DURATION, default=0),
                "max_ttl": Field(FieldType.DURATION, default=0),
                "renewable": Field(FieldType.BOOL, default=True),
            }, synopsis="Issue a leased secret."),
            Path(r"revocations/(?P<name>[\w-]+)", {"read": _revocations}, synopsis="Revocations of a name."),
            Path("revocations/?", {"list": _list_revocations}, synopsis="Names revoked at least once."),
        ],
        secrets=[SecretType("thing", revoke=_revoke, renew=_renew)],
        help="A test engine with leased secrets.",
    )
