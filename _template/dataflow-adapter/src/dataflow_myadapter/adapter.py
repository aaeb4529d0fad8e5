"""Implement the driver primitives; SQLAdapter builds every operation on them.
The contract of each method is in ARCHITECTURE.md, "Writing an adapter"."""

from __future__ import annotations

from typing import Any

from dataflow.adapter import SQLAdapter, TableInfo

from .capabilities import MyCapabilities
from .dialect import MyCompiler


class MyAdapter(SQLAdapter):
    capabilities = MyCapabilities
    compiler = MyCompiler()

    # a connection per event loop (dataflow.loops.PerLoop), used by one task at a time
    async def acquire(self) -> Any: raise NotImplementedError("per-event-loop pool acquire")
    async def release(self, conn: Any) -> None: raise NotImplementedError
    async def close(self) -> None: raise NotImplementedError
    async def begin(self, conn: Any) -> None: raise NotImplementedError
    async def commit(self, conn: Any) -> None: raise NotImplementedError
    async def rollback(self, conn: Any) -> None: raise NotImplementedError
    # driver errors -> dataflow.errors.IntegrityError(constraint=<the DataFlow name>) /
    # DatabaseError / ConnectionLostError, with dataflow.adapter.translating
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]: raise NotImplementedError
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int: raise NotImplementedError
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int: raise NotImplementedError
    # {table: TableInfo(name, columns={name: ColumnInfo(...)}, indexes=[...], foreign_keys=[...])}
    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]: raise NotImplementedError
