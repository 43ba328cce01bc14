"""One request's way through core: sealed? -> route -> token (and its bound CIDRs) -> write resolved ->
ACL (and sudo, and the wrapping TTL bounds) -> use counted -> audit the request -> the engine -> lease the
secret -> mint a login's token -> wrap the response -> audit the response."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from coffer.core import wrapping
from coffer.core.acl import ACLResult
from coffer.core.audit import AuditBroker
from coffer.core.expiration import ExpirationManager
from coffer.core.logins import Logins
from coffer.core.policystore import PolicyStore
from coffer.core.router import Mount, Router, not_found
from coffer.core.tokens import TokenEntry, TokenStore
from coffer.errors import CofferError, InvalidRequest, PermissionDenied, Sealed
from coffer.framework.engine import Engine
from coffer.framework.request import CREATE, HELP, UPDATE, Auth, MountInfo, Request, Response
from coffer.framework.tokenutil import addr_allowed

log = logging.getLogger("coffer.core")

#: Where the system backend answers while sealed (no mount table is loaded then).
SEALED_SYSTEM = MountInfo(path="sys/", type="system")


class Pipeline:
    def __init__(self, sealed: Callable[[], bool], router: Router, system: Engine, tokens: TokenStore,
                 policies: PolicyStore, audit: AuditBroker, expiration: ExpirationManager, logins: Logins,
                 wrapper: wrapping.Wrapping) -> None:
        #: Whether the server is sealed (or still unsealing): then only the system backend's unauthenticated
        #: paths are served.
        self.sealed = sealed
        self.router = router
        self.system = system
        self.tokens = tokens
        self.policies = policies
        self.audit = audit
        self.expiration = expiration
        self.logins = logins
        self.wrapping = wrapper

    async def handle(self, req: Request) -> Response | None:
        try:
            return await self._handle(req)
        except CofferError as exc:
            if self.audit.enabled and not self.sealed():
                self.audit.log_response(req, None, error="; ".join(exc.messages))
            raise

    async def admit(self, req: Request) -> None:
        """Refuse, before its body is read, a request that would be refused whatever its body: the server is
        sealed, or the path needs a token and ``req`` has no valid one. Routes nothing; audited like any refusal."""
        try:
            if self.sealed():
                self._route(req)  # raises Sealed unless the path is served while sealed
                return
            mount = self.router.match(req.path)
            if mount is None or mount.engine.special_paths.is_unauthenticated(req.path[len(mount.route):]):
                return
            token = await self.tokens.lookup(req.client_token)
            if token is None or not addr_allowed(req.remote_addr, token.bound_cidrs):
                raise PermissionDenied()
            req.token, req.token_checked_at = token, self.tokens.generation
        except CofferError as exc:
            if self.audit.enabled and not self.sealed():
                self.audit.log_response(req, None, error="; ".join(exc.messages))
            raise

    def _route(self, req: Request) -> Engine:
        """Point ``req`` at the mount that serves it; answers that mount's engine."""
        if self.sealed():
            rel = req.path[4:] if req.path.startswith("sys/") else None
            if rel is None or not self.system.special_paths.is_unauthenticated(rel):
                raise Sealed()
            req.mount, req.relative_path = SEALED_SYSTEM, rel
            return self.system
        mount: Mount | None = self.router.match(req.path)
        if mount is None:
            raise not_found(req.path)
        req.mount, req.storage = mount.info, mount.storage
        req.relative_path = req.path[len(mount.route):]
        return mount.engine

    async def _handle(self, req: Request) -> Response | None:
        req.request_id = req.request_id or str(uuid.uuid4())
        engine = self._route(req)
        token: TokenEntry | None = None
        if not engine.special_paths.is_unauthenticated(req.relative_path):
            admitted = req.token
            if isinstance(admitted, TokenEntry) and self.tokens.still_live(admitted, req.token_checked_at):
                token = admitted  # looked up before the body was read, and no token changed since
            else:
                token = await self.tokens.lookup(req.client_token)
            if token is None or not addr_allowed(req.remote_addr, token.bound_cidrs):
                raise PermissionDenied()
            req.token = token
        if req.operation in (CREATE, UPDATE):
            req.operation = await engine.resolve(req)
        if token is not None and req.operation != HELP:
            await self._authorize(req, token, engine)
        last_use = False
        if token is not None and token.num_uses:
            last_use, token = await self.tokens.use(token)
            req.token = token
        try:
            return await self._run(req, engine, token)
        finally:
            if token is not None and last_use:
                await self.tokens.revoke_tree(token)

    async def _authorize(self, req: Request, token: TokenEntry, engine: Engine) -> None:
        if token.is_root:
            return
        if wrapping.is_wrapping_token(token):
            acl = wrapping.ACL_OF_WRAPPING_TOKENS
        else:
            acl = await self.policies.acl(token.policies)
        result = acl.allows(req.path, req.operation, req.data)
        if not result.allowed:
            raise PermissionDenied()
        if not result.sudo and engine.special_paths.needs_sudo(req.relative_path):
            raise PermissionDenied()
        self._check_wrap_ttl(req, result)

    @staticmethod
    def _check_wrap_ttl(req: Request, result: ACLResult) -> None:
        """A policy's min_wrapping_ttl (wrapping is then mandatory) and max_wrapping_ttl on the path."""
        low, high = result.min_wrapping_ttl, result.max_wrapping_ttl
        if low and not req.wrap_ttl:
            raise InvalidRequest(f'a policy requires the response of "{req.path}" to be wrapped: send the '
                                 f"X-Vault-Wrap-TTL header with at least {low}s")
        if low and req.wrap_ttl < low:
            raise InvalidRequest(f"wrapping TTL {req.wrap_ttl}s is below the minimum of {low}s a policy sets for "
                                 f'"{req.path}"; ask for at least {low}s')
        if high and req.wrap_ttl > high:
            raise InvalidRequest(f"wrapping TTL {req.wrap_ttl}s is above the maximum of {high}s a policy sets for "
                                 f'"{req.path}"; ask for at most {high}s')

    async def _run(self, req: Request, engine: Engine, token: TokenEntry | None) -> Response | None:
        """The engine's part, between the request's and the response's audit."""
        if self.audit.enabled and not self.audit.log_request(req):
            raise CofferError("no audit device could record the request, so it was refused; "
                              "check the audit devices (sys/audit)")
        resp = await engine.handle(req)
        if resp is not None and resp.secret is not None:
            await self.expiration.lease(req, resp, token.hash if token else "")
        if resp is not None and isinstance(resp.auth, Auth):
            await self._login(req, resp)
        answer = resp
        if resp is not None and req.wrap_ttl and not resp.raw and resp.wrap_info is None:
            answer = await self._wrap(req, resp)
        if self.audit.enabled and not self.audit.log_response(req, answer):
            await self._withdraw(resp)
            if answer is not resp:
                await self._withdraw(answer)
            raise CofferError("no audit device could record the response, so it was withheld "
                              "(any lease or token in it was revoked); check the audit devices (sys/audit)")
        return answer

    async def _login(self, req: Request, resp: Response) -> None:
        """The auth step: the ``Auth`` an auth method's login answered becomes a token (core/logins.py)."""
        await self.logins.mint(req, resp)

    async def _wrap(self, req: Request, resp: Response) -> Response:
        """The wrapping step: ``resp`` goes into a new wrapping token's cubbyhole (core/wrapping.py)."""
        try:
            return await self.wrapping.wrap(req, resp, req.wrap_ttl)
        except BaseException:
            await self._withdraw(resp)  # what it would have handed out is not left behind unwrapped
            raise

    async def _withdraw(self, resp: Response | None) -> None:
        """Take back what an unaudited response would have handed out."""
        if resp is None:
            return
        if resp.wrap_info and resp.wrap_info.get("token"):
            wrapper = await self.tokens.lookup(resp.wrap_info["token"])
            if wrapper is not None:
                await self.tokens.revoke_tree(wrapper)
        if resp.lease_id:
            try:
                await self.expiration.revoke(resp.lease_id)
            except CofferError:
                log.error("could not revoke unaudited lease %s at once; it is queued for retries", resp.lease_id)
        if isinstance(resp.auth, dict) and resp.auth.get("client_token"):
            created = await self.tokens.lookup(resp.auth["client_token"])
            if created is not None:
                await self.tokens.revoke_tree(created)
