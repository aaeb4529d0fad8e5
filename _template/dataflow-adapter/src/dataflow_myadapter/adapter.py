"""Implement the driver primitives; SQLAdapter builds every operation on them."""

from __future__ import annotations

from typing import Any

from dataflow.adapter import SQLAdapter, TableInfo

from .capabilities import MyCapabilities
from .dialect import MyCompiler


class MyAdapter(SQLAdapter):
    capabilities = MyCapabilities
    compiler = MyCompiler()

    async def acquire(self) -> Any: raise NotImplementedError("per-event-loop pool acquire")
    async def release(self, conn: Any) -> None: raise NotImplementedError
    async def close(self) -> None: raise NotImplementedError
    async def begin(self, conn: Any) -> None: raise NotImplementedError
    async def commit(self, conn: Any) -> None: raise NotImplementedError
    async def rollback(self, conn: Any) -> None: raise NotImplementedError
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]: raise NotImplementedError
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int: raise NotImplementedError
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int: raise NotImplementedError
    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]: raise NotImplementedError
