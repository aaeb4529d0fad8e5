"""Multi-worker coordination: ``db.start(coordination="redis" | "postgresql" | URL | None)``.

One leader per scope polls sources and refreshes materialized products; every worker serves
the values the leader shares. See base.py for the protocol, redis.py and postgres.py for the
backends.
"""

from __future__ import annotations

import os

from dataflow.core import DataFlow

from ..errors import FabricConfigError
from .base import Coordinator, SharedEntry

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

__all__ = ["DEFAULT_REDIS_URL", "Coordinator", "SharedEntry", "coordinator_for"]


def coordinator_for(db: DataFlow, coordination: str | None, *, lease_ttl: float,
                    scope: str | None) -> Coordinator | None:
    """The coordinator ``db.start(coordination=...)`` asked for (None: a single process)."""
    if coordination is None:
        return None
    if not isinstance(lease_ttl, (int, float)) or not 0.2 <= lease_ttl <= 3600:
        raise FabricConfigError(f"lease_ttl must be seconds between 0.2 and 3600, got {lease_ttl!r:.40}.",
                                field="lease_ttl")
    name = scope or f"dataflow:fabric:{db.name}"
    if coordination == "redis" or coordination.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisCoordinator

        url = (os.environ.get("DATAFLOW_REDIS_URL") or DEFAULT_REDIS_URL
               if coordination == "redis" else coordination)
        return RedisCoordinator(url, lease_ttl=float(lease_ttl), scope=name)
    if coordination in ("postgresql", "postgres") or coordination.startswith(
            ("postgresql://", "postgres://")):
        from .postgres import PostgresCoordinator

        if coordination in ("postgresql", "postgres"):
            scheme = db.url.scheme.split("+")[0]
            if scheme not in ("postgresql", "postgres"):
                raise FabricConfigError(
                    f"coordination='postgresql' uses the instance's own PostgreSQL, but this "
                    f"instance is on {scheme}.", field="coordination",
                    fix="pass a postgresql:// URL, or coordination='redis'.")
            dsn = "postgresql://" + db.url.raw.split("://", 1)[1].partition("?")[0]
        else:
            dsn = coordination
        return PostgresCoordinator(dsn, lease_ttl=float(lease_ttl), scope=name)
    raise FabricConfigError(f"unknown coordination {coordination!r:.60}.", field="coordination",
                            fix="use 'redis', a redis:// URL, 'postgresql', a postgresql:// URL "
                            "or None.")
