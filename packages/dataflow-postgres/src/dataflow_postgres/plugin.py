"""dataflow-postgres's hook implementations, loaded through the ``dataflow.plugins`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflow import hookimpl
from dataflow.pool import ServerInfo, default_pool_size


def pool_size_for(server: ServerInfo, worker_count: int) -> int:
    """Core's policy (a safe share of usable connections per worker, clamped) applied to
    what is really free: PostgreSQL's ``max_connections`` less the reserved slots and
    less the connections other clients hold right now."""
    if server.max_connections is None:
        return default_pool_size(server, worker_count)
    free = max(0, server.max_connections - server.current_connections)
    return default_pool_size(ServerInfo(free, server.reserved_connections, 0), worker_count)


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import PostgresAdapter

    register("postgresql", PostgresAdapter)
    register("postgres", PostgresAdapter)


@hookimpl
def dataflow_dialect_compiler(dialect: str) -> Any:
    if dialect == "postgresql":
        from .dialect import PostgresCompiler

        return PostgresCompiler()
    return None


@hookimpl
def dataflow_pool_size(adapter: str, server: ServerInfo, worker_count: int) -> int | None:
    return pool_size_for(server, worker_count) if adapter == "postgresql" else None


@hookimpl
def dataflow_node_types(db: Any, register: Callable[[str, Callable[..., Any]], None]) -> None:
    from .adapter import PostgresAdapter

    if not isinstance(db.adapter, PostgresAdapter):
        return
    from .vector import VECTOR_NODES

    for type_name, factory in VECTOR_NODES.items():
        register(type_name, factory)


@hookimpl
def dataflow_source_connectors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Change detection for fabric sources that are postgres databases (``factory(db, tables)``)."""
    from .changes import PostgresChangeSignature

    register("database:postgresql", PostgresChangeSignature)
    register("database:postgres", PostgresChangeSignature)
