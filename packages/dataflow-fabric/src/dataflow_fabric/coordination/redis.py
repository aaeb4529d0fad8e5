"""Redis coordination (redis-py asyncio): a lease key with a TTL, a fencing-token counter, one
hash per shared value, pub/sub for messages and ``SET NX EX`` for webhook nonces.

Keys under ``<scope>``: ``:lease`` (``worker|token``, PX ttl), ``:token`` (INCR), ``:entry:<product>:
<tenant>`` (body, computed_at, token, seq, stale, pending), ``:applied`` (the last 1000 applied
refreshes, ``product|tenant|token|seq|worker``), ``:nonce:<source>:<nonce>``, channel ``:events``.
Every check-and-write is one Lua script, so it is atomic on the server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import CoordinationError, FabricConfigError
from .base import Coordinator, SharedEntry

log = logging.getLogger("dataflow.fabric.coordination")

ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local t = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. '|' .. t, 'PX', ARGV[2])
return t
"""
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
WRITE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local t = tonumber(redis.call('hget', KEYS[2], 'token') or '0')
local s = tonumber(redis.call('hget', KEYS[2], 'seq') or '0')
local nt = tonumber(ARGV[2])
local ns = tonumber(ARGV[3])
if t > nt or (t == nt and s >= ns) then return 0 end
redis.call('hset', KEYS[2], 'body', ARGV[4], 'computed_at', ARGV[5], 'token', ARGV[2],
           'seq', ARGV[3], 'stale', ARGV[6], 'pending', '0')
redis.call('rpush', KEYS[3], ARGV[7])
redis.call('ltrim', KEYS[3], -1000, -1)
return 1
"""
PENDING = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('exists', KEYS[2]) == 0 then return 0 end
redis.call('hset', KEYS[2], 'pending', '1')
return 1
"""


def tenant_part(tenant: str | None) -> str:
    return "-" if tenant is None else "t:" + tenant


class RedisNonces:
    def __init__(self, coordinator: RedisCoordinator) -> None:
        self.coordinator = coordinator

    async def claim(self, key: str, ttl: float) -> bool:
        client = self.coordinator.client
        name = f"{self.coordinator.scope}:nonce:{key}"
        try:
            return bool(await client.set(name, "1", nx=True, ex=max(1, int(ttl + 0.999))))
        except Exception as exc:
            raise CoordinationError(f"webhook nonces are kept in Redis, which failed "
                                    f"({type(exc).__name__}); the call was not accepted.",
                                    fix="retry the call; check Redis.") from exc


class RedisCoordinator(Coordinator):
    kind = "redis"

    def __init__(self, url: str, *, lease_ttl: float, scope: str) -> None:
        super().__init__(lease_ttl=lease_ttl, scope=scope)
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise FabricConfigError("coordination='redis' needs redis-py, which is not installed.",
                                    field="coordination",
                                    fix="pip install 'dataflow-fabric[redis]'.") from exc
        self.url = url
        self.client: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}
        self.nonces = RedisNonces(self)

    def _key(self, *parts: str) -> str:
        return ":".join((self.scope, *parts))

    @property
    def holder(self) -> str:
        return f"{self.worker}|{self.token}"

    async def connect(self) -> None:
        import redis.asyncio as aioredis

        timeout = max(0.5, self.lease_ttl / 2)
        self.client = aioredis.from_url(self.url, socket_timeout=timeout,
                                        socket_connect_timeout=timeout)
        for name, text in (("acquire", ACQUIRE), ("renew", RENEW), ("release", RELEASE),
                           ("write", WRITE), ("pending", PENDING)):
            self._scripts[name] = self.client.register_script(text)
        await self.client.ping()
        ready = asyncio.Event()
        self._listener = asyncio.get_running_loop().create_task(self._listen(ready),
                                                                name="fabric-redis-listener")
        await asyncio.wait_for(ready.wait(), timeout=max(2.0, self.lease_ttl))

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()

    async def _listen(self, ready: asyncio.Event) -> None:
        """Subscribe (again after every connection loss, then ask the runtime to resync)."""
        import redis.asyncio as aioredis

        delay = 0.1
        first = True
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=max(0.5, self.lease_ttl / 2))
            pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._key("events"))
                ready.set()
                if not first and self.fabric is not None:
                    self.fabric.on_resync()  # messages may have been missed meanwhile
                first, delay = False, 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.received(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"pub/sub: {type(exc).__name__}"
                log.warning("redis pub/sub lost (%s); resubscribing in %.1fs",
                            type(exc).__name__, delay)
            finally:
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def try_acquire(self) -> int | None:
        token = int(await self._scripts["acquire"](
            keys=[self._key("lease"), self._key("token")],
            args=[self.worker, int(self.lease_ttl * 1000)]))
        return token or None

    async def renew(self) -> bool:
        return bool(await self._scripts["renew"](keys=[self._key("lease")],
                                                 args=[self.holder, int(self.lease_ttl * 1000)]))

    async def release(self, token: int) -> None:
        await self._scripts["release"](keys=[self._key("lease")], args=[f"{self.worker}|{token}"])

    async def write_entry(self, product: str, tenant: str | None, entry: SharedEntry) -> bool:
        line = f"{product}|{tenant_part(tenant)}|{entry.token}|{entry.seq}|{self.worker}"
        done = await self._scripts["write"](
            keys=[self._key("lease"), self._key("entry", product, tenant_part(tenant)),
                  self._key("applied")],
            args=[f"{self.worker}|{entry.token}", entry.token, entry.seq, entry.body,
                  repr(entry.computed_at), int(entry.stale), line])
        return bool(done)

    async def mark_pending(self, product: str, tenant: str | None, token: int) -> bool:
        return bool(await self._scripts["pending"](
            keys=[self._key("lease"), self._key("entry", product, tenant_part(tenant))],
            args=[f"{self.worker}|{token}"]))

    async def read_entry(self, product: str, tenant: str | None) -> SharedEntry | None:
        found = await self.client.hgetall(self._key("entry", product, tenant_part(tenant)))
        if not found or b"body" not in found:
            return None
        return SharedEntry(found[b"body"], float(found[b"computed_at"]), int(found[b"token"]),
                           int(found[b"seq"]), found[b"stale"] == b"1", found[b"pending"] == b"1")

    async def publish(self, message: dict[str, Any]) -> None:
        await self.client.publish(self._key("events"), self.envelope(message))

    async def applied(self) -> list[str]:
        """The last applied refreshes, oldest first (``product|tenant|token|seq|worker``)."""
        return [item.decode() for item in await self.client.lrange(self._key("applied"), 0, -1)]
