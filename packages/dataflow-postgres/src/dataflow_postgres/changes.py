"""Change detection for data-fabric database sources on PostgreSQL, without writing to them.

A poll first reads the WAL insert position (one function call): unchanged since a poll that
already looked twice at that position means nothing in the cluster was written since, so the
tables did not change. When it moved, each table's row count
and newest ``xmin`` (the transaction that last inserted or updated a row) say whether *these*
tables changed. No triggers are installed: the source stays read-only. When the database
already announces its changes (a trigger calling ``pg_notify``), :meth:`listen` subscribes
to that channel on a connection of its own, so changes arrive without waiting for a poll.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import asyncpg

from dataflow.errors import DatabaseError


class PostgresChangeSignature:
    def __init__(self, db: Any, tables: list[str]) -> None:
        self.db = db
        self.tables = tables
        self._lsn: str | None = None
        self._confirmed = False
        self._last: Hashable = None
        self.table_scans = 0  # how many polls had to look at the tables
        self._listener: Any = None

    async def signature(self) -> Hashable:
        adapter = self.db.adapter
        compiler = adapter.compiler

        async def probe(conn: Any) -> Hashable:
            try:
                lsn = str((await adapter.fetch(conn, "SELECT pg_current_wal_insert_lsn()::text", ()))[0][0])
            except DatabaseError:  # a standby in recovery has no insert position
                lsn = None
            if lsn is not None and lsn == self._lsn and self._confirmed:
                return self._last
            parts = []
            for table in self.tables:
                rows = await adapter.fetch(
                    conn, f"SELECT count(*), max(xmin::text::bigint) FROM {compiler.quote(table)}", ())
                parts.append((table, int(rows[0][0]), rows[0][1]))
            self.table_scans += 1
            # a commit whose WAL record precedes ``lsn`` may become visible a moment later
            # (while it is flushed): trust an unchanged position only after a second look
            self._confirmed = lsn is not None and lsn == self._lsn
            self._lsn, self._last = lsn, tuple(parts)
            return self._last

        result: Hashable = await adapter.run(probe)
        return result

    async def listen(self, channel: str, notified: Callable[[], None]) -> None:
        """``LISTEN channel`` on a dedicated connection; each notification calls ``notified()``."""
        adapter = self.db.adapter
        conn = await asyncpg.connect(adapter.dsn, **adapter._plain_connect_options())
        try:
            await conn.add_listener(channel, lambda *_: notified())
        except BaseException:
            await conn.close()
            raise
        self._listener = conn

    async def close(self) -> None:
        if self._listener is not None:
            conn, self._listener = self._listener, None
            await conn.close()
