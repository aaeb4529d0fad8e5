"""Coordination backends for the tests: the local Redis and PostgreSQL, each test in a scope
of its own (a unique key prefix / scope row), cleaned up afterwards. Under CI=true a backend
that cannot be reached fails the run; elsewhere its tests are skipped."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dataflow.testkit import servers

REDIS_URL = os.environ.get("DATAFLOW_REDIS_URL") or "redis://127.0.0.1:6379/0"


def postgres_url() -> str:
    return os.environ.get("DATAFLOW_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def unreachable(what: str, exc: BaseException) -> None:
    """Skip locally, fail under CI=true (the kit's rule for every backend)."""
    servers.unreachable(what, f"{type(exc).__name__}: {exc}")


@asynccontextmanager
async def coordination_backend(kind: str) -> AsyncIterator[tuple[str, str]]:
    """``(coordination, scope)`` for ``db.start``; removes the scope's keys / rows after."""
    scope = f"dftest:{uuid.uuid4().hex[:12]}"
    if kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            unreachable(f"Redis at {REDIS_URL}", exc)
        try:
            yield REDIS_URL, scope
        finally:
            keys = [k async for k in client.scan_iter(match=f"{scope}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        return
    import asyncpg

    url = postgres_url()
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    except Exception as exc:
        unreachable(f"PostgreSQL at {url}", exc)
    try:
        yield url, scope
    finally:
        for table in ("lease", "cache", "applied", "nonces"):
            exists = await conn.fetchval("SELECT to_regclass($1)", f"dataflow_fabric_{table}")
            if exists:
                await conn.execute(f"DELETE FROM dataflow_fabric_{table} WHERE scope = $1", scope)
        await conn.close()
