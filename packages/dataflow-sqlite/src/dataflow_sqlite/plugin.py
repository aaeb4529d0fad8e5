"""dataflow-sqlite's hook implementations, loaded through the ``dataflow.plugins`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflow import hookimpl
from dataflow.pool import ServerInfo


@hookimpl
def dataflow_register_adapters(register: Callable[[str, Any], None]) -> None:
    from .adapter import SQLiteAdapter

    register("sqlite", SQLiteAdapter)
    register("sqlite3", SQLiteAdapter)


@hookimpl
def dataflow_dialect_compiler(dialect: str) -> Any:
    if dialect == "sqlite":
        from .dialect import SQLiteCompiler

        return SQLiteCompiler()
    return None


@hookimpl
def dataflow_pool_size(adapter: str, server: ServerInfo, worker_count: int) -> int | None:
    # SQLite has one writer: one connection per event loop, whatever the server says
    return 1 if adapter == "sqlite" else None


@hookimpl
def dataflow_source_connectors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Change detection for fabric sources that are sqlite databases (``factory(db, tables)``)."""
    from .changes import SQLiteDataVersion

    register("database:sqlite", SQLiteDataVersion)
    register("database:sqlite3", SQLiteDataVersion)
