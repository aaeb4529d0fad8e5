"""What every coordination backend does: elect one leader per scope, share the cache, fan out
changes. The backends (Redis, PostgreSQL) provide the primitives; the election loop, the
messages and the hand-over to the runtime live here.

* Election: followers try to take the lease every ``lease_ttl / 10`` seconds; the leader
  renews it every ``lease_ttl / 3``. Each taking of the lease draws a new, larger fencing
  token. A leader that cannot renew for ``0.8 * lease_ttl`` steps down by itself.
* Shared cache: the leader writes each materialized value with its token and a sequence
  number; the backend refuses the write unless the token is still the current one (the
  fence) and the (token, sequence) pair is newer than the stored one. So a deposed leader's
  late refresh is never applied, and no refresh is applied twice under one token.
* Messages (JSON): ``changed`` (models / sources, from any worker: the leader refreshes
  dependants, everyone drops parameterized entries), ``pending`` (the leader saw a change: serve
  the value marked stale) and ``refreshed`` (a new shared value: followers load it). A new
  leader refreshes every materialized product, so changes announced while there was no leader
  are not lost.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..webhooks import NonceStore

if TYPE_CHECKING:
    from ..runtime import Fabric

log = logging.getLogger("dataflow.fabric.coordination")


@dataclass
class SharedEntry:
    body: bytes
    computed_at: float
    token: int
    seq: int
    stale: bool
    pending: bool


class Coordinator(abc.ABC):
    """One worker's membership in a coordination scope."""

    kind = "none"

    def __init__(self, *, lease_ttl: float, scope: str) -> None:
        self.lease_ttl = lease_ttl
        self.scope = scope
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.role = "follower"
        self.token: int | None = None
        self.leader_since: float | None = None
        self.elections = 0
        self.last_error: str | None = None
        self.fabric: Fabric | None = None
        self._seq = 0
        self._renewed_at = 0.0
        #: the longest time between the ends of two election attempts as a follower: how long
        #: a free lease can wait for this worker (the lease's own TTL aside) under load
        self.attempt_gap_max = 0.0
        self._attempted_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self.nonces: NonceStore | None = None

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"

    # --- primitives (backends) ----------------------------------------------------------
    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def try_acquire(self) -> int | None:
        """Take the lease if nobody holds it; the new fencing token, or None."""

    @abc.abstractmethod
    async def renew(self) -> bool:
        """Extend our lease; False when it is no longer ours."""

    @abc.abstractmethod
    async def release(self, token: int) -> None:
        """Give up the lease taken with ``token`` (nothing if it is no longer ours)."""

    @abc.abstractmethod
    async def write_entry(self, product: str, tenant: str | None, entry: SharedEntry) -> bool:
        """Store ``entry`` if ``entry.token`` is the current token and (token, seq) is newer."""

    @abc.abstractmethod
    async def mark_pending(self, product: str, tenant: str | None, token: int) -> bool: ...

    @abc.abstractmethod
    async def read_entry(self, product: str, tenant: str | None) -> SharedEntry | None: ...

    @abc.abstractmethod
    async def publish(self, message: dict[str, Any]) -> None: ...

    # --- lifecycle --------------------------------------------------------------------
    async def start(self, fabric: Fabric) -> None:
        self.fabric = fabric
        await self.connect()
        await self._step()  # the first worker up leads at once
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fabric-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.is_leader and self.token is not None:
            await self._release_quietly(self.token)
        self.role, self.token = "follower", None
        await self.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.lease_ttl / (3 if self.is_leader else 10)))
            await self._step()

    async def _step(self) -> None:
        try:
            if self.is_leader:
                if await self.renew():
                    self._renewed_at = time.monotonic()
                else:
                    self._step_down("the lease was taken over")
            else:
                try:
                    token = await self.try_acquire()
                finally:
                    self._attempted()
                if token is not None:
                    self._become_leader(token)
            self.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("coordination (%s) failed: %s", self.kind, self.last_error)
            if self.is_leader and time.monotonic() - self._renewed_at > 0.8 * self.lease_ttl:
                self._step_down("the lease could not be renewed")

    def _attempted(self) -> None:
        now = time.monotonic()
        if self._attempted_at is not None:
            self.attempt_gap_max = max(self.attempt_gap_max, now - self._attempted_at)
        self._attempted_at = now

    def _become_leader(self, token: int) -> None:
        self.role, self.token, self._seq = "leader", token, 0
        self._renewed_at = time.monotonic()
        self.leader_since = time.time()
        self.elections += 1
        log.info("worker %s leads %s with token %d", self.worker, self.scope, token)
        if self.fabric is not None:
            self.fabric.on_leadership(True)

    def _step_down(self, why: str) -> None:
        log.warning("worker %s is no longer the leader (%s)", self.worker, why)
        token = self.token
        self.role, self.token = "follower", None
        self._attempted_at = None  # the gaps of a follower's attempts, not of a leader's renewals
        if token is not None:  # a lease we may still hold (a lock on a live session) goes too
            task = asyncio.get_running_loop().create_task(self._release_quietly(token))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
        if self.fabric is not None:
            self.fabric.on_leadership(False)

    async def _release_quietly(self, token: int) -> None:
        try:
            await self.release(token)
        except Exception as exc:
            log.warning("releasing the lease failed: %s", type(exc).__name__)

    # --- what the runtime calls -------------------------------------------------------
    async def store(self, product: str, tenant: str | None, body: bytes, computed_at: float,
                    stale: bool) -> bool:
        """Share a value the leader computed (fenced); tells the followers."""
        token = self.token
        if token is None:
            return False
        self._seq += 1
        entry = SharedEntry(body, computed_at, token, self._seq, stale, False)
        if not await self.write_entry(product, tenant, entry):
            self._step_down("a shared-cache write was fenced off")
            return False
        await self.publish({"kind": "refreshed", "product": product, "tenant": tenant})
        return True

    async def pending(self, product: str, tenant: str | None) -> None:
        token = self.token
        if token is not None and await self.mark_pending(product, tenant, token):
            await self.publish({"kind": "pending", "product": product, "tenant": tenant})

    async def announce(self, names: frozenset[str]) -> None:
        await self.publish({"kind": "changed", "names": sorted(names)})

    def received(self, raw: str | bytes) -> None:
        """A message from the channel (ours included: they are idempotent)."""
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed coordination message")
            return
        if not isinstance(message, dict) or message.get("from") == self.worker:
            return
        fabric = self.fabric
        if fabric is not None:
            fabric.on_message(message)

    def envelope(self, message: dict[str, Any]) -> str:
        return json.dumps({**message, "from": self.worker})

    def health(self) -> dict[str, Any]:
        return {"kind": self.kind, "scope": self.scope, "worker": self.worker, "role": self.role,
                "token": self.token, "lease_ttl": self.lease_ttl, "elections": self.elections,
                "leader_since": self.leader_since if self.is_leader else None,
                "attempt_gap_max": round(self.attempt_gap_max, 4), "last_error": self.last_error}
