"""Change detection for data-fabric database sources on SQLite: ``PRAGMA data_version``.

The value changes whenever another connection commits to the database file, so a poll is
one pragma on the source's own (read-only) connection. It covers the whole database, so a
change to any table counts as a change.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


class SQLiteDataVersion:
    def __init__(self, db: Any, tables: list[str]) -> None:
        self.db = db
        self.tables = tables

    async def signature(self) -> Hashable:
        adapter = self.db.adapter

        async def probe(conn: Any) -> Hashable:
            rows = await adapter.fetch(conn, "PRAGMA data_version", ())
            return int(rows[0][0])

        result: Hashable = await adapter.run(probe)
        return result
