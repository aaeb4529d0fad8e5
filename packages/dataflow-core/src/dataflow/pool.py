"""Pool sizing: read the server's limits, share them among workers, clamp."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .hookspecs import hookimpl


@dataclass(frozen=True)
class ServerInfo:
    """What an adapter learnt from its server for sizing its pool."""

    max_connections: int | None = None
    reserved_connections: int = 0
    current_connections: int = 0


#: share of the server's usable connections DataFlow takes, leaving headroom for others
SAFE_SHARE = 0.8
MIN_POOL = 2
MAX_POOL = 50


def worker_count() -> int:
    """``DATAFLOW_WORKER_COUNT``, else web-server worker variables, else 1."""
    for var in ("DATAFLOW_WORKER_COUNT", "WEB_CONCURRENCY", "GUNICORN_WORKERS", "UVICORN_WORKERS"):
        value = os.environ.get(var)
        if value and value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_pool_size(server: ServerInfo, workers: int) -> int:
    """The default policy: a safe share of usable connections per worker, clamped.

    With no server limit known: ``2 x cores + 1`` (the PostgreSQL wiki's rule of thumb).
    """
    if server.max_connections is None:
        return max(MIN_POOL, min(MAX_POOL, 2 * (os.cpu_count() or 1) + 1))
    usable = max(0, server.max_connections - server.reserved_connections)
    per_worker = int(usable * SAFE_SHARE) // max(1, workers)
    return max(1, min(MAX_POOL, per_worker))


def configured_pool_size(explicit: int | None) -> int | None:
    """``pool_size=`` wins, then ``DATAFLOW_POOL_SIZE``; None means auto-size."""
    if explicit is not None:
        return explicit
    env = os.environ.get("DATAFLOW_POOL_SIZE")
    return int(env) if env and env.isdigit() and int(env) > 0 else None


class DefaultPoolPolicy:
    """Core's answer to ``dataflow_pool_size``, registered as a plugin, asked last."""

    @hookimpl(trylast=True)
    def dataflow_pool_size(self, adapter: str, server: ServerInfo, worker_count: int) -> int:
        return default_pool_size(server, worker_count)
