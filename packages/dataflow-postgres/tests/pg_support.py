"""Helpers shared by the PostgreSQL tests: statements run as another client would run them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

#: ``rows = await pg_sql("SELECT ... $1", arg)``: one statement on a connection of its own
PgSQL = Callable[..., Awaitable[list[asyncpg.Record]]]


async def run_sql(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """``sql`` on a fresh connection to ``url`` (outside DataFlow's pool), closed after."""
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()
