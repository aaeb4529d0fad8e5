"""PostgreSQL coordination (asyncpg): a session advisory lock held on a dedicated connection,
the fencing token in ``dataflow_fabric_lease``, shared values in ``dataflow_fabric_cache``,
LISTEN/NOTIFY on channel ``dataflow_fabric`` for messages, webhook nonces in a table.

The lock lives as long as the leader's connection: when the leader dies its socket closes,
the server ends the session and the lock is free at once. Each new leader increments the
scope's token under the lock; a shared-cache write is applied only when its token is the
scope's current token and (token, seq) is newer than the stored row's (one statement).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ..errors import CoordinationError, FabricConfigError
from .base import Coordinator, SharedEntry

log = logging.getLogger("dataflow.fabric.coordination")
CHANNEL = "dataflow_fabric"
LOCK_CLASS = 4047  # the advisory lock's first key: the fabric's own namespace

SCHEMA = """
CREATE TABLE IF NOT EXISTS dataflow_fabric_lease (
    scope text PRIMARY KEY, token bigint NOT NULL, holder text NOT NULL);
CREATE TABLE IF NOT EXISTS dataflow_fabric_cache (
    scope text NOT NULL, product text NOT NULL, tenant text NOT NULL, body bytea NOT NULL,
    computed_at double precision NOT NULL, token bigint NOT NULL, seq bigint NOT NULL,
    stale boolean NOT NULL, pending boolean NOT NULL DEFAULT false,
    PRIMARY KEY (scope, product, tenant));
CREATE TABLE IF NOT EXISTS dataflow_fabric_applied (
    id bigserial PRIMARY KEY, scope text NOT NULL, product text NOT NULL, tenant text NOT NULL,
    token bigint NOT NULL, seq bigint NOT NULL, worker text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS dataflow_fabric_nonces (
    scope text NOT NULL, nonce text NOT NULL, expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, nonce));
"""

WRITE = """
WITH fence AS (
    SELECT 1 FROM dataflow_fabric_lease WHERE scope = $1 AND token = $4 AND holder = $7),
stored AS (
    INSERT INTO dataflow_fabric_cache AS c
        (scope, product, tenant, body, computed_at, token, seq, stale, pending)
    SELECT $1, $2, $3, $8, $9, $4, $5, $6, false FROM fence
    ON CONFLICT (scope, product, tenant) DO UPDATE SET
        body = excluded.body, computed_at = excluded.computed_at, token = excluded.token,
        seq = excluded.seq, stale = excluded.stale, pending = false
    WHERE (c.token, c.seq) < (excluded.token, excluded.seq)
    RETURNING 1)
INSERT INTO dataflow_fabric_applied (scope, product, tenant, token, seq, worker)
SELECT $1, $2, $3, $4, $5, $7 FROM stored RETURNING 1
"""

PENDING = """
UPDATE dataflow_fabric_cache SET pending = true
WHERE scope = $1 AND product = $2 AND tenant = $3
  AND EXISTS (SELECT 1 FROM dataflow_fabric_lease WHERE scope = $1 AND token = $4 AND holder = $5)
RETURNING 1
"""


def tenant_part(tenant: str | None) -> str:
    return "-" if tenant is None else "t:" + tenant


class PostgresNonces:
    def __init__(self, coordinator: PostgresCoordinator) -> None:
        self.coordinator = coordinator
        self._claims = 0

    async def claim(self, key: str, ttl: float) -> bool:
        try:
            self._claims += 1
            if self._claims % 100 == 0:  # expired nonces are only ever overwritten otherwise
                await self.coordinator.query(
                    "execute", "DELETE FROM dataflow_fabric_nonces WHERE scope = $1 AND "
                    "expires_at < now()", self.coordinator.scope)
            found = await self._claim(key, ttl)
        except Exception as exc:
            raise CoordinationError(f"webhook nonces are kept in PostgreSQL, which failed "
                                    f"({type(exc).__name__}); the call was not accepted.",
                                    fix="retry the call; check the database.") from exc
        return found is not None

    async def _claim(self, key: str, ttl: float) -> Any:
        return await self.coordinator.query(
            "fetchval",
            "INSERT INTO dataflow_fabric_nonces AS n VALUES ($1, $2, now() + make_interval(secs => $3)) "
            "ON CONFLICT (scope, nonce) DO UPDATE SET expires_at = excluded.expires_at "
            "WHERE n.expires_at < now() RETURNING 1", self.coordinator.scope, key, float(ttl))


class PostgresCoordinator(Coordinator):
    kind = "postgresql"

    def __init__(self, dsn: str, *, lease_ttl: float, scope: str) -> None:
        super().__init__(lease_ttl=lease_ttl, scope=scope)
        try:
            import asyncpg  # noqa: F401
        except ImportError as exc:
            raise FabricConfigError("coordination='postgresql' needs asyncpg, which is not installed.",
                                    field="coordination",
                                    fix="pip install 'dataflow-fabric[postgres]'.") from exc
        self.dsn = dsn
        self._lock_conn: Any = None   # holds the advisory lock; fenced writes go through it
        self._conn: Any = None        # LISTEN, reads, NOTIFY
        self._lock_guard = asyncio.Lock()
        self._guard = asyncio.Lock()
        self.nonces = PostgresNonces(self)

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.dsn, timeout=max(1.0, self.lease_ttl),
                                     command_timeout=max(1.0, self.lease_ttl))

    async def connect(self) -> None:
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", LOCK_CLASS)
                await conn.execute(SCHEMA)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        await conn.add_listener(CHANNEL, self._notified)
        self._lock_conn = await self._connect()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received(payload)

    async def close(self) -> None:
        for conn in (self._conn, self._lock_conn):
            if conn is not None and not conn.is_closed():
                try:
                    await asyncio.wait_for(conn.close(), timeout=2)
                except Exception:
                    conn.terminate()
        self._conn = self._lock_conn = None

    async def _ensure_listening(self) -> None:
        if self._conn is None or self._conn.is_closed():
            conn = await self._connect()
            await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn
            if self.fabric is not None:
                self.fabric.on_resync()  # notifications may have been missed meanwhile

    async def query(self, method: str, sql: str, *args: Any) -> Any:
        await self._ensure_listening()
        async with self._guard:
            return await getattr(self._conn, method)(sql, *args)

    async def try_acquire(self) -> int | None:
        await self._ensure_listening()
        async with self._lock_guard:
            if self._lock_conn is None or self._lock_conn.is_closed():
                self._lock_conn = await self._connect()
            conn = self._lock_conn
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))",
                                       LOCK_CLASS, self.scope):
                return None
            token = await conn.fetchval(
                "INSERT INTO dataflow_fabric_lease AS l VALUES ($1, 1, $2) ON CONFLICT (scope) "
                "DO UPDATE SET token = l.token + 1, holder = excluded.holder RETURNING token",
                self.scope, self.worker)
            return int(token)

    async def renew(self) -> bool:
        await self._ensure_listening()
        async with self._lock_guard:
            conn = self._lock_conn
            if conn is None or conn.is_closed():
                return False  # the session that held the lock is gone, and the lock with it
            current = await conn.fetchval("SELECT token FROM dataflow_fabric_lease WHERE scope = $1",
                                          self.scope)
            return bool(current == self.token)

    async def release(self, token: int) -> None:
        async with self._lock_guard:
            conn = self._lock_conn
            if self.is_leader or conn is None or conn.is_closed():
                return  # leading again (a newer token), or the session and its lock are gone
            await conn.execute("SELECT pg_advisory_unlock_all()")  # the session is ours alone

    async def write_entry(self, product: str, tenant: str | None, entry: SharedEntry) -> bool:
        async with self._lock_guard:
            conn = self._lock_conn
            if conn is None or conn.is_closed():
                return False
            done = await conn.fetchval(WRITE, self.scope, product, tenant_part(tenant), entry.token,
                                       entry.seq, entry.stale, self.worker, entry.body,
                                       entry.computed_at)
            return done is not None

    async def mark_pending(self, product: str, tenant: str | None, token: int) -> bool:
        async with self._lock_guard:
            conn = self._lock_conn
            if conn is None or conn.is_closed():
                return False
            done = await conn.fetchval(PENDING, self.scope, product, tenant_part(tenant), token,
                                       self.worker)
            return done is not None

    async def read_entry(self, product: str, tenant: str | None) -> SharedEntry | None:
        row = await self.query(
            "fetchrow", "SELECT body, computed_at, token, seq, stale, pending FROM "
            "dataflow_fabric_cache WHERE scope = $1 AND product = $2 AND tenant = $3",
            self.scope, product, tenant_part(tenant))
        if row is None:
            return None
        return SharedEntry(bytes(row["body"]), row["computed_at"], row["token"], row["seq"],
                           row["stale"], row["pending"])

    async def publish(self, message: dict[str, Any]) -> None:
        await self.query("execute", "SELECT pg_notify($1, $2)", CHANNEL,
                         self.envelope({**message, "scope": self.scope}))

    def received(self, raw: str | bytes) -> None:
        try:
            scope = json.loads(raw).get("scope")
        except (ValueError, AttributeError):
            return
        if scope == self.scope:
            super().received(raw)

    async def applied(self) -> list[str]:
        rows = await self.query(
            "fetch", "SELECT product, tenant, token, seq, worker FROM dataflow_fabric_applied "
            "WHERE scope = $1 ORDER BY id", self.scope)
        return [f"{r['product']}|{r['tenant']}|{r['token']}|{r['seq']}|{r['worker']}" for r in rows]
