"""``db.start()`` / ``db.stop()``: the runtime plus a uvicorn server in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from dataflow.core import DataFlow

from .app import FabricApp, TenantExtractor
from .coordination import coordinator_for
from .errors import FabricConfigError
from .runtime import Fabric, fabric_of


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the application owns the process's signals; db.stop() ends the server
        yield


@dataclass
class FabricServer:
    """What ``await db.start()`` returns: where the fabric is served."""

    host: str
    port: int
    fabric: Fabric
    server: _Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/fabric"


_servers: dict[int, FabricServer] = {}


async def start(db: DataFlow, host: str = "127.0.0.1", port: int = 8000, *, fail_fast: bool = True,
                dev_mode: bool = False, enable_writes: bool = False,
                tenant_extractor: TenantExtractor | None = None, log_level: str = "warning",
                coordination: str | None = None, lease_ttl: float = 10.0,
                coordination_scope: str | None = None, **uvicorn_options: Any) -> FabricServer:
    """Start the fabric of ``db``: open sources, warm materialized products (unless
    ``dev_mode``), then serve ``/fabric/...`` on ``host:port`` (``port=0``: any free port).

    ``coordination``: ``"redis"`` (``$DATAFLOW_REDIS_URL``), a ``redis://`` URL,
    ``"postgresql"`` (this instance's database), a ``postgresql://`` URL, or None (one
    process). Workers sharing ``coordination_scope`` (default: one per ``db.name``) elect one
    leader holding a lease of ``lease_ttl`` seconds; see coordination/base.py."""
    if id(db) in _servers:
        raise FabricConfigError("the fabric of this DataFlow instance is already started.",
                                fix="await db.stop() first.")
    fabric = fabric_of(db)
    application = FabricApp(fabric, enable_writes=enable_writes, tenant_extractor=tenant_extractor)
    coordinator = coordinator_for(db, coordination, lease_ttl=lease_ttl, scope=coordination_scope)
    await fabric.start(dev_mode=dev_mode, fail_fast=fail_fast,
                       tenant_aware=tenant_extractor is not None, coordinator=coordinator)
    config = uvicorn.Config(application.app, host=host, port=port, log_level=log_level,
                            lifespan="off", timeout_graceful_shutdown=2, **uvicorn_options)
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(), name="fabric-server")
    while not server.started:
        if task.done():
            await fabric.stop()
            exc = task.exception()
            raise FabricConfigError(f"the fabric server could not listen on {host}:{port}"
                                    f"{f' ({exc})' if exc else ''}.", field="port") from exc
        await asyncio.sleep(0.01)
    bound = port
    for srv in server.servers:
        for sock in srv.sockets:
            bound = sock.getsockname()[1]
            break
    handle = FabricServer(host, bound, fabric, server, task)
    _servers[id(db)] = handle
    return handle


async def stop(db: DataFlow) -> None:
    """Stop serving and stop the runtime (pollers, watchers, pending refreshes)."""
    handle = _servers.pop(id(db), None)
    fabric = fabric_of(db)
    await fabric.stop()  # ends event streams, so the server's shutdown need not wait for them
    if handle is not None:
        handle.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await handle.task
