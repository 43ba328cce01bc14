"""How an engine is written: it declares paths, and this module routes.

A ``Path`` is a regular expression (matched against the whole path inside
the mount), its fields, one handler per operation, an optional existence
check and help text. Routing, field validation, path-help and the OpenAPI
document all come from these declarations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coffer.errors import InvalidRequest, NotFound, UnsupportedOperation
from coffer.framework import wal
from coffer.framework.engine import SpecialPaths
from coffer.framework.fields import Field, FieldData, FieldType
from coffer.framework.request import (
    CREATE,
    DELETE,
    HELP,
    LIST,
    PATCH,
    PERIODIC,
    READ,
    RENEW,
    REVOKE,
    ROLLBACK,
    UPDATE,
    Operation,
    Request,
    Response,
)
from coffer.storage.base import Delete

log = logging.getLogger("coffer.framework")

Handler = Callable[[Request, FieldData], Awaitable[Response | None]]
ExistenceCheck = Callable[[Request, dict[str, str]], Awaitable[bool]]
Rollback = Callable[[Request, str, dict[str, Any]], Awaitable[None]]
Periodic = Callable[[Request], Awaitable[None]]
#: An auth method's answer to the renewal of a token it issued (``req.auth``): raise to refuse, answer
#: ``Response(auth=Auth(...))`` with the TTLs to apply now, or None to keep the token's own.
AuthRenew = Callable[[Request], Awaitable[Response | None]]

# Building blocks for patterns, named like the captures they make.
NAME = r"\w(?:[\w.-]*\w)?"


def match_name(group: str = "name") -> str:
    return rf"(?P<{group}>{NAME})"


_HTTP_FOR_OP: dict[str, str] = {READ: "get", LIST: "get", CREATE: "post", UPDATE: "post", DELETE: "delete",
                                 PATCH: "patch"}


@dataclass
class Path:
    pattern: str
    #: Handlers by operation; "write" is shorthand for both create and update.
    operations: Mapping[str, Handler]
    fields: Mapping[str, Field] = field(default_factory=dict)
    exists: ExistenceCheck | None = None
    synopsis: str = ""
    description: str = ""
    #: Accept fields that are not declared (the kv engine stores anything).
    open_fields: bool = False
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern)
        # Every named capture is also a string field of the path (declared ones keep their own text).
        fields = dict(self.fields)
        for group in self.regex.groupindex:
            fields.setdefault(group, Field(FieldType.STRING, _capture_description(self.pattern, group),
                                           required=True))
        self.fields = fields
        operations: dict[str, Handler] = {}
        for op, handler in self.operations.items():
            if op == "write":
                operations.setdefault(CREATE, handler)
                operations.setdefault(UPDATE, handler)
            else:
                operations[Operation(op)] = handler
        self.operations = operations

    def openapi_path(self) -> str:
        return openapi_template(self.pattern)

    def help_text(self, request_path: str = "") -> str:
        """Help for this path, laid out as Vault's path-help (``Request:`` and ``Matching Route:`` first)."""
        lines = [f"Request:        {request_path}", f"Matching Route: ^{self.pattern}$", "",
                 self.synopsis.strip() or "<no synopsis>", ""]
        if self.fields:
            lines += ["## PARAMETERS", ""]
            for name in sorted(self.fields):
                f = self.fields[name]
                lines += [f"    {name} ({f.type.value})", ""]
                if f.description:
                    lines += [f"        {f.description}", ""]
        if self.description:
            lines += ["## DESCRIPTION", "", self.description.strip(), ""]
        return "\n".join(lines).rstrip() + "\n"


def _capture_description(pattern: str, group: str) -> str:
    """A sentence for a path parameter no engine described: where in the path it comes from."""
    before = openapi_template(pattern[: pattern.find(f"(?P<{group}>")])
    word = group.replace("_", " ")
    if not before:
        return f"The {word}: the path itself, e.g. my-{group.replace('_', '-')}."
    return f'The {word} in the path, after "{before}" (as in {before}my-{group.replace("_", "-")}).'


def openapi_template(pattern: str) -> str:
    """Turn ``creds/(?P<name>\\w+)`` into ``creds/{name}`` (balanced groups)."""
    out: list[str] = []
    i = 0
    p = pattern.strip("^$")
    while i < len(p):
        if p.startswith("(?P<", i):
            end = p.index(">", i)
            name = p[i + 4 : end]
            depth, j, class_start = 1, end + 1, -1  # class_start: first index inside [...], or -1
            while depth and j < len(p):
                if p[j] == "\\":
                    j += 2
                    continue
                if class_start >= 0:
                    # Parentheses inside [...] are literal; a "]" right after "[" or "[^" is too.
                    if p[j] == "]" and j > class_start:
                        class_start = -1
                elif p[j] == "[":
                    class_start = j + 2 if p.startswith("[^", j) else j + 1
                else:
                    depth += {"(": 1, ")": -1}.get(p[j], 0)
                j += 1
            out.append("{" + name + "}")
            i = j
            continue
        if p.startswith("/?", i):
            i += 2
            continue
        if p.startswith("(?:", i):  # a non-capturing group: only its contents show
            i += 3
            continue
        ch = p[i]
        if ch == "\\" and i + 1 < len(p):
            out.append(p[i + 1])
            i += 2
            continue
        if ch not in "()?$^":
            out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class SecretType:
    """What a leased secret of one kind does when renewed or revoked.

    ``revoke`` raises when the secret could not be taken back (core keeps the
    lease and retries): ``coffer.errors.RetryLater`` for a passing condition,
    ``UpstreamError`` when the outside service failed. It may answer a few
    facts for the server's log line about the revocation (``{"iam_user":
    name}``: what it deleted); never a secret.
    """

    name: str
    revoke: Callable[[Request, dict[str, Any]], Awaitable[dict[str, str] | None]]
    renew: Callable[[Request, dict[str, Any]], Awaitable[Response | None]] | None = None
    default_ttl: int = 0


class Backend:
    """An engine written as declared paths plus the secret types they hand out (implements ``Engine``)."""

    def __init__(
        self,
        paths: list[Path],
        *,
        help: str = "",
        secrets: list[SecretType] | None = None,
        unauthenticated: tuple[str, ...] = (),
        sudo_paths: tuple[str, ...] = (),
        rollback: Rollback | None = None,
        periodic: Periodic | None = None,
        renew_auth: AuthRenew | None = None,
    ) -> None:
        self.paths = paths
        self.help = help
        self.secrets = {s.name: s for s in secrets or []}
        self.special_paths = SpecialPaths(unauthenticated=unauthenticated, sudo=sudo_paths)
        #: Undoes what a write-ahead entry announced (see framework.wal).
        self.rollback = rollback
        #: Runs on core's periodic tick (rotations, clean-ups).
        self.periodic = periodic
        #: Checks (and may refuse) the renewal of a token this auth method issued.
        self.renew_auth = renew_auth

    # -- the Engine contract ---------------------------------------------------

    async def resolve(self, req: Request) -> str:
        path, captures = self.route(req.relative_path)
        return await self.resolve_write(path, req, captures)

    async def handle(self, req: Request) -> Response | None:
        op = req.operation
        if op == RENEW and req.auth is not None:
            return await self.renew_auth(req) if self.renew_auth is not None else None
        if op in (RENEW, REVOKE):
            return await self._secret_operation(req)
        if op == ROLLBACK:
            await self._rollback(req, float(req.data["created_before"]))
            return None
        if op == PERIODIC:
            if self.periodic is not None:
                await self.periodic(req)
            return None
        if op == HELP:
            return self._help(req)
        path, captures = self.route(req.relative_path)
        data = self.field_data(path, captures, req)
        handler = path.operations.get(op)
        if handler is None and op in (CREATE, UPDATE):
            handler = path.operations.get(UPDATE if op == CREATE else CREATE)
        if handler is None:
            raise UnsupportedOperation(f'unsupported operation "{op}" on "{req.path}"')
        resp = await handler(req, data)
        if resp is not None and resp.secret is not None and resp.secret.wal_id:
            # The write-ahead entry goes in the same batch that records the lease.
            resp.secret.commit_ops.extend(req.storage.absolute([Delete(wal.WAL_PREFIX + resp.secret.wal_id)]))
        return resp

    # -- routing and validation ------------------------------------------------

    def route(self, path: str) -> tuple[Path, dict[str, str]]:
        for p in self.paths:
            m = p.regex.fullmatch(path)
            if m:
                return p, {k: v for k, v in m.groupdict().items() if v is not None}
        raise NotFound(f'unsupported path "{path}"' if path else "unsupported path")

    def field_data(self, path: Path, captures: dict[str, str], req: Request) -> FieldData:
        raw = dict(req.data)
        for k, v in captures.items():
            if k in raw and raw[k] != v and not path.open_fields:
                raise InvalidRequest(f'field "{k}" conflicts with the value in the path')
            raw[k] = v
        return FieldData(path.fields, raw, open_fields=path.open_fields)

    async def resolve_write(self, path: Path, req: Request, captures: dict[str, str]) -> str:
        """``create`` or ``update``: which one a write is, by the existence check."""
        if path.exists is None:
            return UPDATE if UPDATE in path.operations else CREATE
        return UPDATE if await path.exists(req, captures) else CREATE

    # -- what core originates ------------------------------------------------------

    async def _secret_operation(self, req: Request) -> Response | None:
        secret = req.secret
        if secret is None:
            raise InvalidRequest(f"a {req.operation} request needs the lease's secret")
        secret_type = self.secrets.get(secret.type)
        if secret_type is None:
            raise InvalidRequest(f'the engine at {req.mount_point} has no secret type "{secret.type}"')
        if req.operation == REVOKE:
            facts = await secret_type.revoke(req, secret.internal)
            return Response(data=dict(facts)) if facts else None
        if secret_type.renew is None:
            raise InvalidRequest("lease is not renewable")
        return await secret_type.renew(req, secret.internal)

    async def _rollback(self, req: Request, created_before: float) -> None:
        """Undo what each write-ahead entry written before ``created_before`` announced."""
        if self.rollback is None:
            return
        for item in await wal.entries(req.storage, created_before=created_before):
            try:
                await self.rollback(req, item.kind, item.data)
            except Exception as exc:  # kept; the next round retries
                log.warning("rollback of %s at %s failed (will retry): %s", item.kind, req.mount_point, exc)
                continue
            await wal.delete(req.storage, item.id)
            log.info("rolled back a %s left by an unfinished request at %s (write-ahead entry %s)", item.kind,
                     req.mount_point, item.id[:8], extra={"mount": req.mount_point, "wal_kind": item.kind})

    # -- help and OpenAPI --------------------------------------------------------

    def _help(self, req: Request) -> Response:
        rel = req.relative_path
        if not rel.strip("/"):  # the mount root: the engine's own help, as Vault answers
            return self.help_response(None, req)
        path = next((p for p in self.paths if p.regex.fullmatch(rel)), None)
        if path is None:
            raise NotFound(f'no help for "{req.path}": unsupported path')
        return self.help_response(path, req)

    def help_response(self, path: Path | None, req: Request) -> Response:
        """Help for one path, or for the whole engine (its mount root) when ``path`` is None."""
        if path is None:
            listing = "\n".join(f"    {p.openapi_path():<30} {p.synopsis}" for p in self.paths)
            text = f"## PATHS\n\n{listing}\n"
            if self.help:
                text = self.help.strip() + "\n\n" + text
        else:
            text = path.help_text(req.relative_path)
        doc = self.openapi(req.mount_point)
        return Response(data={"help": text, "openapi": doc, "see_also": None}, raw=True)

    def openapi_paths(self, mount_point: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for p in self.paths:
            item: dict[str, Any] = {"description": p.synopsis}
            params = [n for n in p.regex.groupindex]
            if params:
                item["parameters"] = [
                    {"name": n, "in": "path", "required": True, "description": p.fields[n].description,
                     "schema": {"type": "string"}}
                    for n in params
                ]
            body = {n: f.openapi_schema() for n, f in p.fields.items() if n not in params}
            for op in p.operations:
                verb = _HTTP_FOR_OP.get(op)
                if verb is None or verb in item:
                    continue
                entry: dict[str, Any] = {"summary": p.synopsis, "responses": {"200": {"description": "OK"}}}
                if op == LIST:
                    entry["parameters"] = [{"name": "list", "in": "query", "required": True,
                                            "schema": {"type": "string", "enum": ["true"]}}]
                    item["get" if READ not in p.operations else "x-list"] = entry
                    continue
                if verb in ("post", "patch") and body:
                    media = "application/merge-patch+json" if verb == "patch" else "application/json"
                    entry["requestBody"] = {"content": {media: {"schema": {
                        "type": "object", "properties": body,
                        "required": sorted(n for n, f in p.fields.items() if f.required and n not in params),
                    }}}}
                item[verb] = entry
            paths["/" + mount_point + p.openapi_path()] = item
        return paths

    def openapi(self, mount_point: str) -> dict[str, Any]:
        return {
            "openapi": "3.0.2",
            "info": {"title": "coffer", "version": "1", "description": self.help.strip().split("\n")[0]},
            "paths": self.openapi_paths(mount_point),
        }
