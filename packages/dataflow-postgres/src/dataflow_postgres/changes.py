"""Change detection for data-fabric database sources on PostgreSQL, without writing to them.

A poll first reads the WAL insert position (one function call): unchanged means nothing in
the cluster was written, so the tables did not change. When it moved, each table's row count
and newest ``xmin`` (the transaction that last inserted or updated a row) say whether *these*
tables changed. No triggers or LISTEN channels are installed: the source stays read-only.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from dataflow.errors import DatabaseError


class PostgresChangeSignature:
    def __init__(self, db: Any, tables: list[str]) -> None:
        self.db = db
        self.tables = tables
        self._lsn: str | None = None
        self._last: Hashable = None
        self.table_scans = 0  # how many polls had to look at the tables

    async def signature(self) -> Hashable:
        adapter = self.db.adapter
        compiler = adapter.compiler

        async def probe(conn: Any) -> Hashable:
            try:
                lsn = str((await adapter.fetch(conn, "SELECT pg_current_wal_insert_lsn()::text", ()))[0][0])
            except DatabaseError:  # a standby in recovery has no insert position
                lsn = None
            if lsn is not None and lsn == self._lsn:
                return self._last
            parts = []
            for table in self.tables:
                rows = await adapter.fetch(
                    conn, f"SELECT count(*), max(xmin::text::bigint) FROM {compiler.quote(table)}", ())
                parts.append((table, int(rows[0][0]), rows[0][1]))
            self.table_scans += 1
            self._lsn, self._last = lsn, tuple(parts)
            return self._last

        result: Hashable = await adapter.run(probe)
        return result
