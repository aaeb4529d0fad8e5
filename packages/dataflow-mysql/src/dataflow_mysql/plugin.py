"""dataflow-mysql's hook implementations, loaded through the ``dataflow.plugins`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflow import hookimpl
from dataflow.pool import ServerInfo, default_pool_size


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import MySQLAdapter

    register("mysql", MySQLAdapter)
    register("mariadb", MySQLAdapter)


@hookimpl
def dataflow_dialect_compiler(dialect: str) -> Any:
    if dialect == "mysql":
        from .dialect import MySQLCompiler

        return MySQLCompiler()
    return None


@hookimpl
def dataflow_pool_size(adapter: str, server: ServerInfo, worker_count: int) -> int | None:
    # the PostgreSQL policy: a safe share of max_connections per worker, clamped
    if adapter != "mysql":
        return None
    return default_pool_size(server, worker_count)
