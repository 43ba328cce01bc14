"""High availability: one active node, the others standbys; the storage's HA lock decides which.

An unsealed node of an HA storage starts as a standby: its barrier is open, but no mount table, token
store, audit device or background work is loaded. A task tries to take the lock; once it has it, the node
loads everything and serves (the active node). When the lock is lost (it expired, another node took it
over) or given up (``sys/step-down``), the node unloads back to a standby at once. Every node writes a
heartbeat row; ``sys/ha-status`` lists the nodes heard from in the last ``MEMBER_WINDOW`` seconds.

Standbys forward requests to the active node (``coffer.http.forward``); the client's address travels
with them in a header signed with the cluster key, which the first active node stores in the barrier.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from coffer import __version__
from coffer.core.barrier import Barrier
from coffer.errors import InvalidRequest
from coffer.storage.base import HALock

log = logging.getLogger("coffer.core.ha")

#: Where the cluster key (signs forwarded client addresses) lives, inside the barrier.
CLUSTER_KEY_PATH = "core/ha/cluster-key"
#: After ``sys/step-down`` this node leaves the lock to the others for this long (Vault's 10 s).
STEP_DOWN_PAUSE = 10.0
#: ``sys/ha-status`` lists the nodes whose last heartbeat is at most this old (seconds).
MEMBER_WINDOW = 30.0
#: A signed client address older than this (seconds, either way) is not believed.
SIGNATURE_MAX_AGE = 60.0

SEALED, STANDBY, ACTIVE = "sealed", "standby", "active"


@dataclass(frozen=True)
class Leader:
    """What the active node publishes in the lock row."""

    identity: str
    api_addr: str
    cluster_addr: str
    active_since: float

    @classmethod
    def parse(cls, identity: str, value: str) -> Leader:
        try:
            doc = orjson.loads(value) if value else {}
        except orjson.JSONDecodeError:
            doc = {"api_addr": value}
        if not isinstance(doc, dict):
            doc = {}
        return cls(identity, str(doc.get("api_addr") or ""), str(doc.get("cluster_addr") or ""),
                   float(doc.get("active_since") or 0.0))


def rfc3339(when: float | datetime.datetime) -> str:
    if isinstance(when, float | int):
        when = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KeysChanged(Exception):
    """The node took the lock, but the root key it holds no longer opens the keyring: it must seal."""


class HighAvailability:
    """One node's part in an HA cluster (``core.ha`` when the storage has an HA lock)."""

    def __init__(self, lock: HALock, barrier: Barrier, *, api_addr: str, cluster_addr: str,
                 activate: Callable[[], Awaitable[None]], deactivate: Callable[[], Awaitable[None]],
                 seal: Callable[[], Awaitable[None]], heartbeat_interval: float = 5.0,
                 step_down_pause: float = STEP_DOWN_PAUSE) -> None:
        self.lock = lock
        self.barrier = barrier
        self.api_addr = api_addr
        self.cluster_addr = cluster_addr
        self.node_id = lock.identity
        self.hostname = socket.gethostname()
        self.heartbeat_interval = heartbeat_interval
        self.step_down_pause = step_down_pause
        self._activate = activate
        self._deactivate = deactivate
        self._seal = seal
        self.role = SEALED
        #: The active node as last read from the lock row (this node's own entry while active).
        self.leader: Leader | None = None
        self._cluster_key: bytes | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._step_down: asyncio.Event | None = None
        self._paused_until = 0.0

    @property
    def standby(self) -> bool:
        return self.role == STANDBY

    @property
    def active(self) -> bool:
        return self.role == ACTIVE

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """The barrier is open: become a standby and start trying for the lock (and the heartbeats)."""
        if self._tasks:
            return
        self.role = STANDBY
        self._step_down = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._elect(), name="ha-election"),
                       loop.create_task(self._beat(), name="ha-heartbeat")]
        log.info("unsealed as a standby: trying for the HA lock (node %s, api_addr %s)", self.node_id, self.api_addr)

    async def stop(self) -> None:
        """Sealing: stop trying, give the lock up if held (the caller unloads)."""
        tasks, self._tasks = self._tasks, []
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await task
        if self.lock.held:
            with contextlib.suppress(Exception):
                await self.lock.release()
        self.role = SEALED
        self.leader = None
        self._cluster_key = None

    async def hold_lock(self, what: str) -> None:
        """Take the lock for ``what`` a sealed node writes (an init, a seal migration: writes are fenced);
        sealing afterwards releases it, starting as a standby keeps it (that node becomes the active one)."""
        self._advertise(time.time())
        if not await self.lock.acquire():
            raise InvalidRequest(f"another node holds the HA lock (it is the active node, or initializing the "
                                 f"store), so {what} cannot run on this node; seal or stop the other nodes, "
                                 "then try again (sys/seal-status tells what the store is now)")

    def request_step_down(self) -> None:
        """Give the lock up (soon, after the answer went out) and leave it to the others for a while."""
        if not self.active or self._step_down is None:
            raise RuntimeError("this node is not the active node")
        self._step_down.set()

    # -- the election ---------------------------------------------------------------

    async def _elect(self) -> None:
        lock = self.lock
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await self.refresh_leader()
                await asyncio.sleep(min(pause, lock.retry_interval))
                continue
            since = time.time()
            self._advertise(since)
            try:
                got = await lock.acquire()
            except Exception as exc:
                log.warning("could not try the HA lock: %s", exc)
                got = False
            if not got:
                await self.refresh_leader()
                await asyncio.sleep(lock.retry_interval)
                continue
            try:
                await self._ensure_cluster_key()
                await self._activate()
            except KeysChanged as exc:
                log.error("%s", exc)
                await self._seal()  # unloads, releases the lock and ends this loop (stop() spares its caller)
                return
            except Exception:
                log.exception("this node took the HA lock but could not become active; it gives the lock up")
                await self._deactivate()
                with contextlib.suppress(Exception):
                    await lock.release()
                await asyncio.sleep(lock.retry_interval)
                continue
            self.leader = Leader(self.node_id, self.api_addr, self.cluster_addr, since)
            self.role = ACTIVE
            log.info("this node is now the active node (node %s, api_addr %s)", self.node_id, self.api_addr)
            stepped_down = await self._wait_lost_or_step_down()
            self.role = STANDBY
            self.leader = None
            await self._deactivate()
            if stepped_down:
                self._paused_until = time.monotonic() + self.step_down_pause
                with contextlib.suppress(Exception):
                    await lock.release()
                log.info("stepped down: this node is a standby and leaves the HA lock to the others for %gs",
                         self.step_down_pause)
            else:
                log.warning("lost the HA lock (%s): this node stopped serving and is a standby again",
                            getattr(lock, "lost_reason", None) or "it was not renewed in time")

    def _advertise(self, since: float) -> None:
        """What the lock row tells the standbys once this node holds it: where to forward to."""
        self.lock.value = orjson.dumps({"api_addr": self.api_addr, "cluster_addr": self.cluster_addr,
                                        "active_since": since}).decode()

    async def _wait_lost_or_step_down(self) -> bool:
        """Wait while active; True when it ends by a step-down, False when the lock was lost."""
        assert self._step_down is not None
        self._step_down.clear()
        lost = asyncio.ensure_future(self.lock.wait_lost())
        stepped = asyncio.ensure_future(self._step_down.wait())
        try:
            await asyncio.wait([lost, stepped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            stepped.cancel()
        return self._step_down.is_set() and self.lock.held

    async def refresh_leader(self) -> Leader | None:
        """Read who holds the lock (what a standby forwards to)."""
        try:
            found = await self.lock.leader()
        except Exception as exc:
            log.debug("could not read the HA leader: %s", exc)
            return self.leader
        self.leader = None if found is None else Leader.parse(*found)
        return self.leader

    # -- heartbeats and members -------------------------------------------------------

    def _echo(self) -> str:
        return orjson.dumps({"hostname": self.hostname, "api_address": self.api_addr,
                             "cluster_address": self.cluster_addr, "version": __version__}).decode()

    async def _beat(self) -> None:
        failing = False
        while True:
            try:
                await self.lock.heartbeat(self._echo())
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("could not write this node's heartbeat: %s", exc)
                failing = True
            await asyncio.sleep(self.heartbeat_interval)

    async def members(self) -> list[dict[str, Any]]:
        """The nodes heard from in the last MEMBER_WINDOW seconds, in sys/ha-status' shape."""
        leader = await self.lock.leader()
        active_id = leader[0] if leader else None
        nodes = []
        for identity, info, last in await self.lock.members(MEMBER_WINDOW):
            try:
                doc = orjson.loads(info) if info else {}
            except orjson.JSONDecodeError:
                doc = {}
            nodes.append({
                "hostname": str(doc.get("hostname", "")),
                "api_address": str(doc.get("api_address", "")),
                "cluster_address": str(doc.get("cluster_address", "")),
                "active_node": identity == active_id,
                "last_echo": rfc3339(last),
                "version": str(doc.get("version", "")),
                "node_id": identity,
            })
        return nodes

    def leader_status(self) -> dict[str, Any]:
        """sys/leader's answer."""
        leader = self.leader if self.role != SEALED else None
        return {
            "ha_enabled": True,
            "is_self": self.active,
            "active_time": rfc3339(leader.active_since) if leader and self.active else "0001-01-01T00:00:00Z",
            "leader_address": leader.api_addr if leader else "",
            "leader_cluster_address": leader.cluster_addr if leader else "",
            "performance_standby": False,
            "performance_standby_last_remote_wal": 0,
        }

    # -- the cluster key: signed client addresses -------------------------------------

    async def _ensure_cluster_key(self) -> None:
        key = await self.barrier.get(CLUSTER_KEY_PATH)
        if key is None:
            key = os.urandom(32)
            await self.barrier.put(CLUSTER_KEY_PATH, key)
            log.info("generated the cluster key (signs the client addresses standbys forward)")
        self._cluster_key = key

    async def cluster_key(self) -> bytes | None:
        if self._cluster_key is None and not self.barrier.sealed:
            with contextlib.suppress(Exception):
                self._cluster_key = await self.barrier.get(CLUSTER_KEY_PATH)
        return self._cluster_key

    async def sign_address(self, address: str) -> str | None:
        """``address`` with a timestamp and its HMAC-SHA256 under the cluster key (None without the key)."""
        key = await self.cluster_key()
        if key is None:
            return None
        message = f"{address}|{int(time.time())}"
        return f"{message}|{hmac.new(key, message.encode(), hashlib.sha256).hexdigest()}"

    def verify_address(self, signed: str) -> str | None:
        """The address in a signed header, or None when the signature or its age does not check."""
        key = self._cluster_key
        if key is None:
            return None
        rest = signed.rsplit("|", 2)
        if len(rest) != 3:
            return None
        address, stamp, mac = rest
        want = hmac.new(key, f"{address}|{stamp}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, mac):
            return None
        try:
            age = abs(time.time() - int(stamp))
        except ValueError:
            return None
        return address if age <= SIGNATURE_MAX_AGE else None
