"""A standby's requests: relayed to the active node (or a 307 to it), as Vault's standbys do.

What a standby answers itself is in ``LOCAL_ON_STANDBY``; everything else goes to the active node's
``api_addr`` with the client's method, path, query, headers (its token too) and body, and the answer
comes back as it was. The client's address goes along in ``FORWARDED_FOR``, signed with the cluster key
(core/ha.py); the active node believes that header only when its signature checks.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any
from urllib.parse import quote

import httpx

from coffer.core.ha import HighAvailability
from coffer.http.body import BodyReader

log = logging.getLogger("coffer.http")
# httpx logs every request at INFO: a standby's log would hold a line per forwarded request.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: The header that carries a forwarded request's client address (``address|unix time|hmac-sha256``).
FORWARDED_FOR = "x-coffer-forwarded-for"
#: A client sending this header gets a 307 to the active node instead of a forwarded answer (Vault's).
NO_FORWARDING = "x-vault-no-request-forwarding"
#: Paths (under /v1/) a standby answers itself.
LOCAL_ON_STANDBY = frozenset({"sys/health", "sys/leader", "sys/seal-status", "sys/unseal", "sys/init"})
#: Not relayed, either way (hop-by-hop headers, and what the relay sets itself).
_REQUEST_SKIP = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                           "upgrade", "proxy-connection", "proxy-authorization", FORWARDED_FOR})
_RESPONSE_SKIP = frozenset({"content-length", "connection", "keep-alive", "transfer-encoding", "server", "date",
                            "content-encoding"})
#: How long a forwarded request may take (an AWS credential can take seconds to mint).
FORWARD_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class Relayed:
    """An answer relayed as it came: status, headers and body."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.headers = headers
        self.body = body


def _no_leader() -> tuple[int, dict[str, Any]]:
    return 503, {"errors": ["this node is a standby and no active node is known right now (a fail-over may be "
                            "under way); retry in a few seconds"]}


class Forwarder:
    def __init__(self, ha: HighAvailability, bodies: BodyReader) -> None:
        self.ha = ha
        self.bodies = bodies
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env off: a proxy meant for the clients' traffic must not sit between the nodes. TLS: the
            # system's CA store (where an operator installs a private CA), not a bundled list.
            self._client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT, follow_redirects=False, trust_env=False,
                                             verify=ssl.create_default_context())
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def forward(self, scope: dict[str, Any], receive: Any, headers: dict[str, str],
                      content_length: int | None) -> tuple[int, Any]:
        """The standby's answer to a request it does not serve itself: (status, payload)."""
        signed = headers.get(FORWARDED_FOR)
        if signed is not None and await self.ha.cluster_key() and self.ha.verify_address(signed):
            # Another node forwarded it here, taking this node for the active one: it lost the lock meanwhile.
            return 503, {"errors": ["this node is no longer the active node; retry the request"]}
        leader = self.ha.leader or await self.ha.refresh_leader()
        if leader is None or not leader.api_addr or leader.identity == self.ha.node_id:
            return _no_leader()
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        target = leader.api_addr.rstrip("/") + raw_path.decode("latin-1")
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        if NO_FORWARDING in headers:
            return 307, Relayed([(b"location", target.encode("latin-1")), (b"cache-control", b"no-store")], b"")
        body: bytes | bytearray = b""
        if content_length is not None or "transfer-encoding" in headers:
            body = await self.bodies.read(receive, content_length)
        sent = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in _REQUEST_SKIP]
        answer = await self._send(scope, leader.api_addr, scope["method"], target, sent, bytes(body))
        if isinstance(answer, tuple):
            return answer
        relayed = [(k, v) for k, v in answer.headers.raw if k.decode("latin-1").lower() not in _RESPONSE_SKIP]
        return answer.status_code, Relayed(relayed, answer.content)

    async def authorize(self, scope: dict[str, Any]) -> tuple[int, Any] | None:
        """For what a standby answers itself but only to a token that may read it (its own sys/metrics): send
        the same read to the active node, which alone holds the live tokens and policies (so the check is
        exactly its own: policies, CIDRs, uses, audit). None when it answers 200; otherwise its answer."""
        leader = self.ha.leader or await self.ha.refresh_leader()
        if leader is None or not leader.api_addr or leader.identity == self.ha.node_id:
            return _no_leader()
        sent = [(k, v) for k, v in scope["headers"]
                if k.decode("latin-1").lower() in ("x-vault-token", "authorization")]
        target = leader.api_addr.rstrip("/") + quote(scope["path"])
        answer = await self._send(scope, leader.api_addr, "GET", target, sent, b"")
        if isinstance(answer, tuple):
            return answer
        if answer.status_code == 200:
            return None
        return answer.status_code, Relayed([(b"content-type", b"application/json")], answer.content)

    async def _send(self, scope: dict[str, Any], api_addr: str, method: str, target: str,
                    headers: list[tuple[bytes, bytes]], body: bytes) -> httpx.Response | tuple[int, Any]:
        """Send a request to the active node with the client's address signed; a 503 when it cannot be reached."""
        client = scope.get("client")
        signed = await self.ha.sign_address(client[0] if client else "")
        if signed is not None:
            headers = [*headers, (FORWARDED_FOR.encode(), signed.encode())]
        try:
            return await self._http().request(method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            log.warning("could not forward %s %s to the active node at %s: %s", method, scope["path"], api_addr, exc)
            self.ha.leader = None  # read it again: a fail-over may be under way
            return 503, {"errors": [f"this node is a standby and could not reach the active node at "
                                    f"{api_addr} ({type(exc).__name__}); retry in a few seconds"]}
