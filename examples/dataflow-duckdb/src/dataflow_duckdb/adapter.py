"""The DuckDB adapter: the template's driver primitives on the ``duckdb`` module.

``duckdb`` is synchronous: every call runs in a worker thread (``asyncio.to_thread``) on a
cursor of one root connection, one cursor per event loop (``PerLoop``), used by one task at
a time (a lock), as the SQLite adapter does. ``duckdb:///path.db`` or ``duckdb://:memory:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

from dataflow.adapter import ColumnInfo, DatabaseURL, SQLAdapter, TableInfo, translating
from dataflow.errors import DatabaseError, IntegrityError
from dataflow.loops import PerLoop
from dataflow.model import ModelSpec, constraint_name

from .capabilities import DuckDBCapabilities
from .dialect import LOGICAL_OF, DuckDBCompiler, sequence_name

T = TypeVar("T")
_KEYS = re.compile(r'key "([^"]*)"')


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, duckdb.ConstraintException):
        return IntegrityError(f"the database refused the write: {exc}.",
                              fix="check unique keys, required fields and references.")
    if isinstance(exc, duckdb.Error):
        return DatabaseError(f"DuckDB error: {exc}.")
    return exc


_translating = translating((duckdb.Error,), _translate)


def _naming_constraints(fn: Any) -> Any:
    """DuckDB's messages name the key columns, not the constraint: find DataFlow's name."""

    @functools.wraps(fn)
    async def wrapper(self: DuckDBAdapter, conn: Any, stmt: Any) -> Any:
        try:
            return await fn(self, conn, stmt)
        except IntegrityError as exc:
            name = await self._constraint_of(conn, stmt.model, str(exc.__cause__ or exc))
            if name is None:
                raise
            raise IntegrityError(f"the database refused the write: constraint {name!r} failed "
                                 f"({exc.__cause__ or exc}).", fix=exc.fix,
                                 constraint=name) from exc.__cause__

    return wrapper


class _State:
    def __init__(self, cursor: Any) -> None:
        self.cursor, self.lock = cursor, asyncio.Lock()


class DuckDBAdapter(SQLAdapter):
    capabilities = DuckDBCapabilities
    compiler = DuckDBCompiler()

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        location = url.location
        path = location[1:] if location.startswith("/") else location
        self._path = path or ":memory:"
        self._root: Any = None
        self._loops: PerLoop[_State] = PerLoop(self._new_state)

    async def _new_state(self) -> _State:
        if self._root is None:  # first use, or first use after close()
            self._root = duckdb.connect(self._path)
        return _State(self._root.cursor())

    async def _call(self, conn: Any, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread. Cancelled: interrupt the query and wait for the
        thread to let go of the connection before the cancellation goes on."""
        work = asyncio.ensure_future(asyncio.to_thread(fn))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            conn.interrupt()
            with contextlib.suppress(BaseException):
                await work
            raise

    async def acquire(self) -> Any:
        state = await self._loops.get()
        await state.lock.acquire()
        return state.cursor

    async def release(self, conn: Any) -> None:
        state = self._loops.items.get(asyncio.get_running_loop())
        if state is not None and state.cursor is conn:
            state.lock.release()

    async def close(self) -> None:
        states, root, self._root = list(self._loops.items.values()), self._root, None
        self._loops.items.clear()
        for state in states:
            state.cursor.close()
        if root is not None:
            root.close()

    async def begin(self, conn: Any) -> None:
        await self.execute(conn, "BEGIN TRANSACTION", ())

    async def commit(self, conn: Any) -> None:
        await self.execute(conn, "COMMIT", ())

    async def rollback(self, conn: Any) -> None:
        try:
            await self.execute(conn, "ROLLBACK", ())
        except DatabaseError as exc:
            if "no transaction is active" not in str(exc):
                raise

    @_translating
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._call(conn, lambda: conn.execute(sql, params).fetchall())

    @_translating
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        rows = await self._call(conn, lambda: conn.execute(sql, params).fetchall())
        # INSERT / UPDATE / DELETE answer one row holding the affected-row count
        return int(rows[0][0]) if len(rows) == 1 and isinstance(rows[0][0], int) else 0

    @_translating
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
        await self._call(conn, lambda: conn.executemany(sql, rows))
        return len(rows)

    # --- statements: name the constraint a refused write broke ----------------------------
    update = _naming_constraints(SQLAdapter.update)
    delete = _naming_constraints(SQLAdapter.delete)

    @_naming_constraints
    async def insert(self, conn: Any, stmt: Any) -> list[dict[str, Any]]:
        rows = await SQLAdapter.insert(self, conn, stmt)
        await self._past_explicit_ids(conn, stmt)
        return rows

    @_naming_constraints
    async def upsert(self, conn: Any, stmt: Any) -> Any:
        out = await SQLAdapter.upsert(self, conn, stmt)
        await self._past_explicit_ids(conn, stmt)
        return out

    async def _past_explicit_ids(self, conn: Any, stmt: Any) -> None:
        """DuckDB has no setval: after explicit ids, draw the key's sequence past them."""
        if "id" not in stmt.columns or not stmt.model.fields["id"].auto_increment:
            return
        seq, table = sequence_name(stmt.model.table), self.compiler.table(stmt.model)
        behind = await self.fetch(conn, f"SELECT (SELECT max(id) FROM {table}) - coalesce(last_value, 0) "
                                  "FROM duckdb_sequences() WHERE sequence_name = ?", (seq,))
        if behind and behind[0][0] and behind[0][0] > 0:  # no row: a table without a sequence
            await self.fetch(conn, f"SELECT max(nextval('{seq}')) FROM range(?)", (behind[0][0],))

    async def _constraint_of(self, conn: Any, model: ModelSpec, text: str) -> str | None:
        found = _KEYS.search(text)
        if found is None:
            return None
        columns = tuple(part.split(":", 1)[0].strip() for part in found.group(1).split(", "))
        if "violates unique constraint" in text or "violates primary key" in text:
            return constraint_name("uq", model.table, columns) if columns in model.unique_together else None
        if "does not exist in the referenced table" in text:  # a child names a missing parent
            keys = [fk for fk in model.foreign_keys if (fk.target_field,) == columns]
            return keys[0].name if len(keys) == 1 else None
        if "is still referenced" in text:  # deleting a parent: which child's key holds it
            # the catalog is read on a fresh cursor: ``conn``'s transaction may be aborted
            rows = await self.fetch(
                self._root.cursor(), "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = "
                "'FOREIGN KEY' AND referenced_table = ? AND constraint_column_names = ?",
                (model.table, list(columns)))
            return constraint_name("fk", rows[0][0], columns) if len(rows) == 1 else None
        return None

    async def drop_table(self, conn: Any, table: str) -> None:
        await self.execute(conn, self.compiler.drop_table(table), ())
        await self.execute(conn, f"DROP SEQUENCE IF EXISTS {self.compiler.quote(sequence_name(table))}", ())

    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]:
        out: dict[str, TableInfo] = {}
        for table, column, sql_type, nullable, default in await self.fetch(
                conn, "SELECT table_name, column_name, data_type, is_nullable, column_default FROM "
                "information_schema.columns WHERE table_schema = 'main' ORDER BY ordinal_position", ()):
            if tables is not None and table not in tables:
                continue
            info = out.setdefault(table, TableInfo(table))
            info.columns[column] = ColumnInfo(column, sql_type, nullable == "YES", column == "id",
                                              default, LOGICAL_OF.get(sql_type))
        for table, kind, columns, parent, targets in await self.fetch(
                conn, "SELECT table_name, constraint_type, constraint_column_names, referenced_table, "
                "referenced_column_names FROM duckdb_constraints() WHERE constraint_type IN "
                "('FOREIGN KEY', 'UNIQUE')", ()):
            if table not in out:
                continue
            if kind == "FOREIGN KEY":
                out[table].foreign_keys.append({"column": columns[0], "table": parent,
                                                "references": targets[0], "on_delete": "RESTRICT"})
            else:
                out[table].indexes.append({"name": constraint_name("uq", table, columns),
                                           "unique": True, "columns": list(columns)})
        for table, name, sql in await self.fetch(
                conn, "SELECT table_name, index_name, sql FROM duckdb_indexes()", ()):
            if table in out:
                cols = sql[sql.rindex("(") + 1:sql.rindex(")")].split(", ")
                out[table].indexes.append({"name": name, "unique": False,
                                           "columns": [c.strip('"') for c in cols]})
        return out

