"""The SQLite adapter on aiosqlite.

One connection per event loop, used by one task at a time (SQLite has one writer);
a transaction holds it for its whole block. An in-memory database is a named
shared-cache database, kept alive by a keeper connection, so every connection of
this instance (the async one and the sync API's) sees the same data.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any

import aiosqlite

from dataflow import plugins
from dataflow.adapter import ColumnInfo, DatabaseURL, SQLAdapter, TableInfo, UpsertOutcome, translating
from dataflow.errors import ConnectionLostError, DatabaseError, IntegrityError, UnsupportedError
from dataflow.loops import PerLoop, close_per_loop
from dataflow.migrations import Step
from dataflow.model import ModelSpec, constraint_name
from dataflow.query.ast import FALSE, Delete, Insert, Select, Update, Upsert

from .capabilities import SQLiteCapabilities
from .dialect import LOGICAL_OF, SQLiteCompiler

#: rows per multi-row INSERT, and SQLite's default bound-parameter limit
_INSERT_ROWS = 500
_MAX_VARIABLES = 32766


@lru_cache(maxsize=256)
def _like_regex(pattern: str, ignore_case: bool = True) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%" and out and out[-1] == ".*":
            i += 1  # "%%" matches what "%" does; one ".*" backtracks far less
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _ilike(value: Any, pattern: Any) -> Any:
    if value is None or pattern is None:
        return None
    return 1 if _like_regex(str(pattern)).fullmatch(str(value)) else 0


def _like(value: Any, pattern: Any) -> Any:
    """Case-sensitive LIKE over the whole text: SQLite's own LIKE stops at a NUL character
    (``'a' LIKE 'a' || char(0) || 'b'`` is true) and refuses patterns over 50,000 bytes."""
    if value is None or pattern is None:
        return None
    return 1 if _like_regex(str(pattern), False).fullmatch(str(value)) else 0


@lru_cache(maxsize=256)
def _regex(pattern: str, flags: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if "i" in flags else 0)


def _regexp(value: Any, pattern: Any, flags: Any) -> Any:
    if value is None or pattern is None:
        return None
    return 1 if _regex(str(pattern), str(flags)).search(str(value)) else 0


def _json_equal(a: Any, b: Any) -> bool:
    """JSON scalar equality: true/false are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def json_contains(doc: Any, needle: Any, top: bool = True) -> bool:
    """PostgreSQL's ``jsonb @>``: objects by key, recursively; every element of a needle
    array contained in some element of the document array; a bare scalar at the top level
    also matches a document array that holds it."""
    if isinstance(needle, dict):
        return isinstance(doc, dict) and all(
            k in doc and json_contains(doc[k], v, False) for k, v in needle.items())
    if isinstance(needle, list):
        return isinstance(doc, list) and all(
            any(json_contains(d, n, False) for d in doc) for n in needle)
    if isinstance(doc, list):
        return top and any(not isinstance(d, (dict, list)) and _json_equal(d, needle) for d in doc)
    if isinstance(doc, dict):
        return False
    return _json_equal(doc, needle)


def _json_contains_sql(doc: Any, needle: Any) -> Any:
    if doc is None or needle is None:
        return None
    return 1 if json_contains(json.loads(doc), json.loads(needle)) else 0


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(f"the database refused the write: {exc}.",
                              fix="check unique keys and required fields.")
    if isinstance(exc, (sqlite3.ProgrammingError, ValueError)) and "closed" in str(exc).lower():
        return ConnectionLostError(f"the SQLite connection is closed: {exc}.")
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"SQLite error: {exc}.")
    return exc


_translating = translating((sqlite3.Error, ValueError), _translate)


def _naming_constraints(fn: Any) -> Any:
    """SQLite's constraint errors do not name the constraint ("FOREIGN KEY constraint
    failed"); on one, find which of the statement's constraints it was and say so."""

    @functools.wraps(fn)
    async def wrapper(self: SQLiteAdapter, conn: Any, stmt: Any) -> Any:
        try:
            return await fn(self, conn, stmt)
        except IntegrityError as exc:
            if exc.details.get("constraint") is not None:
                raise
            found = await self._violated_constraint(conn, stmt, str(exc.__cause__ or exc))
            if found is None:
                raise
            name, detail = found
            fix = exc.fix if not name.startswith("fk_") else (
                "reference an existing row; to delete a referenced row, delete or re-point the "
                "rows referencing it first (or declare on_delete='cascade' / 'set null').")
            raise IntegrityError(f"the database refused the write: constraint {name!r} "
                                 f"failed ({detail}).", fix=fix,
                                 constraint=name) from exc.__cause__

    return wrapper


class _LoopState:
    __slots__ = ("busy", "conn", "lock")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()
        self.busy = False


def _as_is(row: Any) -> Any:
    return row


def _changed_rows(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> int:
    """In the connection's thread: run a statement that returns no rows, close its cursor."""
    cursor = conn._conn.execute(sql, params)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


#: how long a connection being opened asks again for a setting the file's lock refused
#: (the busy_timeout it sets, in seconds) and how often
_PRAGMA_PATIENCE, _PRAGMA_RETRY = 10.0, 0.02


async def _settle_pragma(conn: aiosqlite.Connection, sql: str) -> None:
    """Run one connection-setup PRAGMA. Switching a file to WAL while other connections
    open it too can answer "database is locked" at once, without the busy handler: that
    PRAGMA is asked again until the busy timeout has passed.

    Each cursor is exhausted and closed: a PRAGMA that returns a row (busy_timeout) stays
    an active statement otherwise, and SQLite then silently refuses to re-register LIKE for
    case_sensitive_like (functions cannot change while statements are active), leaving
    $like case-insensitive."""
    waited = 0.0
    while True:
        try:
            async with conn.execute(sql) as cur:
                await cur.fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or waited >= _PRAGMA_PATIENCE:
                raise
        await asyncio.sleep(_PRAGMA_RETRY)
        waited += _PRAGMA_RETRY


def _stop_detached(conn: aiosqlite.Connection) -> None:
    """Close a connection whose event loop has ended, waiting for nothing.

    aiosqlite's ``stop()`` binds a future to the loop running now; when that loop ends
    before the worker thread has closed the database (``asyncio.run(...)`` per call), the
    thread dies on "Event loop is closed". Queued without a future, the close needs no loop.
    """
    conn._running = False

    def close_and_stop() -> object:
        raw = conn._connection
        if raw is not None:
            raw.close()
            conn._connection = None
        return aiosqlite.core._STOP_RUNNING_SENTINEL

    conn._tx.put_nowait((None, close_and_stop))


class SQLiteAdapter(SQLAdapter):
    capabilities = SQLiteCapabilities
    accepts_encoded_rows = True

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        compiler = plugins.dialect_compiler("sqlite")
        self.compiler = compiler if compiler is not None else SQLiteCompiler()
        location = url.location  # sqlite:///rel.db -> /rel.db, sqlite:////abs.db -> //abs.db
        database = location[1:] if location.startswith("/") else location
        self.memory = database in ("", ":memory:")
        self._keeper: sqlite3.Connection | None = None
        if self.memory:
            self.target = f"file:dataflow_{uuid.uuid4().hex}?mode=memory&cache=shared"
            self.uri = True
            self._keep_alive()
        else:
            self.target = database
            self.uri = database.startswith("file:")
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._loop_states: PerLoop[_LoopState] = PerLoop(self._new_state, self._states)
        self._read_sql: dict[int, tuple[ModelSpec, str, Any, Any]] = {}

    # --- connections ------------------------------------------------------------------
    def _keep_alive(self) -> None:
        """Keep the shared in-memory database alive while connections come and go (after
        ``close()``, the next connection starts a new, empty one)."""
        if self.memory and self._keeper is None:
            self._keeper = sqlite3.connect(self.target, uri=True, check_same_thread=False)

    async def _open(self) -> aiosqlite.Connection:
        self._keep_alive()
        target, uri = self.target, self.uri

        def connector() -> sqlite3.Connection:
            return sqlite3.connect(target, uri=uri, isolation_level=None,
                                   check_same_thread=False)

        conn = aiosqlite.Connection(connector, 64)
        conn._thread.daemon = True  # a process that never closes DataFlow still exits
        await conn
        await conn.create_function("df_regexp", 3, _regexp, deterministic=True)
        await conn.create_function("df_ilike", 2, _ilike, deterministic=True)
        await conn.create_function("df_like", 2, _like, deterministic=True)
        await conn.create_function("df_json_contains", 2, _json_contains_sql, deterministic=True)
        pragmas = ["PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 10000",
                   "PRAGMA case_sensitive_like = ON"]
        if not self.memory:
            pragmas += ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL"]
        try:
            for sql in pragmas:
                await _settle_pragma(conn, sql)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _state(self) -> _LoopState:
        return self._states.get(asyncio.get_running_loop()) or await self._loop_states.get()

    async def _new_state(self) -> _LoopState:
        for owner in [lp for lp in self._states if lp.is_closed()]:
            _stop_detached(self._states.pop(owner).conn)  # a loop that ended: close its connection
        return _LoopState(await self._open())

    async def acquire(self) -> Any:
        state = self._states.get(asyncio.get_running_loop()) or await self._state()
        await state.lock.acquire()
        state.busy = True
        return state.conn

    async def release(self, conn: Any) -> None:
        state = self._states.get(asyncio.get_running_loop())
        if state is not None and state.conn is conn:
            state.busy = False
            state.lock.release()

    async def run(self, fn: Any, *args: Any) -> Any:
        state = self._states.get(asyncio.get_running_loop()) or await self._state()
        async with state.lock:
            state.busy = True
            try:
                return await fn(state.conn, *args)
            finally:
                state.busy = False

    async def close(self) -> None:
        await close_per_loop(self._states, lambda state: state.conn.close(),
                             lambda state: _stop_detached(state.conn))
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def pool_stats(self) -> dict[str, Any]:
        active = sum(1 for s in self._states.values() if s.busy)
        total = len(self._states)
        return {"active": active, "idle": total - active, "max": max(1, total),
                "utilization": active / max(1, total)}

    # --- driver primitives --------------------------------------------------------------
    @_translating
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return list(await conn.execute_fetchall(sql, params))

    @_translating
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        async with conn.execute(sql, params) as cur:
            return int(cur.rowcount)

    @_translating
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
        async with conn.executemany(sql, rows) as cur:
            return int(cur.rowcount)

    async def stream(self, stmt: Select, batch_size: int, *, conn: Any = None,
                     lock: Any = None) -> AsyncIterator[list[dict[str, Any]]]:
        """One cursor, ``fetchmany`` per batch. The loop's connection is held only while a
        batch is read, so the consumer may run other operations between batches."""
        if stmt.where is FALSE:
            return
        if conn is None:
            state = self._states.get(asyncio.get_running_loop()) or await self._state()
            conn, lock = state.conn, state.lock
        compiled = self.compiler.compile(stmt)
        decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
        try:
            async with lock:
                cursor = await conn.execute(compiled.sql, compiled.params)
            try:
                while True:
                    async with lock:
                        rows = await cursor.fetchmany(batch_size)
                    if rows:
                        yield [decode(r) for r in rows]
                    if len(rows) < batch_size:
                        break
            finally:
                async with lock:
                    await cursor.close()
        except (sqlite3.Error, ValueError) as exc:
            raise _translate(exc) from exc

    async def begin(self, conn: Any) -> None:
        await self.execute(conn, "BEGIN IMMEDIATE", ())

    async def commit(self, conn: Any) -> None:
        await self.execute(conn, "COMMIT", ())

    async def rollback(self, conn: Any) -> None:
        # sent whatever ``conn.in_transaction`` says now: the driver's thread runs requests in
        # order, and a BEGIN that a cancelled task queued may not have run yet
        try:
            await self.execute(conn, "ROLLBACK", ())
        except DatabaseError as exc:
            if "no transaction is active" not in str(exc):
                raise

    # --- naming violated constraints --------------------------------------------------------
    async def _violated_constraint(self, conn: Any, stmt: Any, text: str
                                   ) -> tuple[str, str] | None:
        model: ModelSpec = stmt.model
        c = self.compiler
        if "UNIQUE constraint failed:" in text:
            cols = tuple(part.strip().rsplit(".", 1)[-1].rstrip(".")
                         for part in text.split("UNIQUE constraint failed:", 1)[1].split(","))
            if cols in model.unique_together:
                return constraint_name("uq", model.table, cols), f"unique ({', '.join(cols)})"
            return None
        if "FOREIGN KEY constraint failed" not in text:
            return None
        if isinstance(stmt, Delete):
            return await self._restricting_key(conn, stmt)
        encoded = isinstance(stmt, Insert) and stmt.encoded is not None
        if encoded:  # rows already in driver form, in stmt.columns order
            rows = [dict(zip(stmt.columns, t, strict=True)) for t in stmt.encoded]
        else:
            rows = [stmt.values] if isinstance(stmt, Update) else list(stmt.rows)
        for fk in model.foreign_keys:
            f = model.fields[fk.column]
            values = {r[fk.column] if encoded else c.encode(f, r[fk.column])
                      for r in rows if r.get(fk.column) is not None}
            if not values or fk.target_table is None:
                continue
            p = c.params()
            marks = ", ".join(p.add(v) for v in values)
            present = {r[0] for r in await self.fetch(
                conn, f"SELECT {c.quote(fk.target_field)} FROM {c.quote(fk.target_table)} "
                f"WHERE {c.quote(fk.target_field)} IN ({marks})", tuple(p.values))}
            if values - present:
                return fk.name, (f"{model.table}.{fk.column} references {fk.target_table}."
                                 f"{fk.target_field}, and no such row exists")
        return None

    async def _restricting_key(self, conn: Any, stmt: Delete) -> tuple[str, str] | None:
        """The RESTRICT foreign key that still has rows referencing the rows ``stmt`` deletes."""
        c = self.compiler
        parent = stmt.model.table
        tables = [r[0] for r in await self.fetch(
            conn, "SELECT name FROM sqlite_master WHERE type = 'table'", ())]
        for child in tables:
            for fk in await self.fetch(conn, f"PRAGMA foreign_key_list({c.quote(child)})", ()):
                if fk[2] != parent or str(fk[6]).upper() not in ("RESTRICT", "NO ACTION"):
                    continue
                p = c.params()
                where = c.where_clause(stmt, p)
                hit = await self.fetch(
                    conn, f"SELECT 1 FROM {c.quote(child)} WHERE {c.quote(fk[3])} IN "
                    f"(SELECT {c.quote(fk[4])} FROM {c.quote(parent)}{where}) LIMIT 1",
                    tuple(p.values))
                if hit:
                    return constraint_name("fk", child, (fk[3],)), (
                        f"rows of {child} reference the {parent} rows to delete "
                        f"(ON DELETE {str(fk[6]).upper()})")
        return None

    async def _check_rebuilt_keys(self, conn: Any, model: ModelSpec) -> None:
        bad = await self.fetch(conn, f"PRAGMA foreign_key_check({self.compiler.table(model)})", ())
        if bad:
            by_id = {r[0]: r for r in await self.fetch(
                conn, f"PRAGMA foreign_key_list({self.compiler.table(model)})", ())}
            fk = by_id.get(bad[0][3])
            column = fk[3] if fk is not None else "?"
            name = constraint_name("fk", model.table, (column,))
            raise IntegrityError(
                f"the database refused the migration: constraint {name!r} failed ({len(bad)} "
                f"existing row(s) of {model.table} reference missing {bad[0][2]} rows).",
                model=model.name, field=column, constraint=name,
                fix="delete or correct those rows, then initialize again.")

    @_naming_constraints
    async def update(self, conn: Any, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        if stmt.returning or stmt.where is FALSE:
            return await super().update(conn, stmt)
        compiled = self.compiler.compile(stmt)
        return await self._write(conn, compiled.sql, compiled.params), []

    @_naming_constraints
    async def delete(self, conn: Any, stmt: Delete) -> int:
        if stmt.where is FALSE:
            return 0
        compiled = self.compiler.compile(stmt)
        return await self._write(conn, compiled.sql, compiled.params)

    @_translating
    async def _write(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        """An UPDATE or DELETE in one trip to the connection's thread (``execute`` takes
        two: the statement, then closing its cursor): its changed-row count."""
        return int(await conn._execute(_changed_rows, conn, sql, params))

    # --- fast paths -----------------------------------------------------------------------
    async def read_by_id(self, conn: Any, model: ModelSpec, key: Any) -> dict[str, Any] | None:
        cached = self._read_sql.get(id(model))
        if cached is None or cached[0] is not model:
            c = self.compiler
            sql = (f"SELECT {c.column_list(model)} FROM {c.table(model)} "
                   f"WHERE {c.quote('id')} = ?")
            cached = (model, sql, c.encoder(model.pk), c.row_decoder(model, tuple(model.fields)))
            self._read_sql[id(model)] = cached
        _, sql, enc, decode = cached
        rows = await self.fetch(conn, sql, (key if enc is None or key is None else enc(key),))
        if not rows:
            return None
        return decode(rows[0])

    @_naming_constraints
    async def insert(self, conn: Any, stmt: Insert) -> list[dict[str, Any]]:
        if stmt.returning and len(stmt.rows) == 1:
            c = self.compiler
            sql = c.insert_sql(stmt.model, stmt.columns, 1, returning=True)
            params = c.row_encoder(stmt.model, stmt.columns)(stmt.rows[0])
            fetched = await self.fetch(conn, sql, params)
            return [c.row_decoder(stmt.model, tuple(stmt.model.fields))(fetched[0])]
        if stmt.returning:
            return await super().insert(conn, stmt)
        # multi-row INSERT statements: far fewer VDBE resets and driver round trips than
        # executemany's one step per row (a failing row fails its whole statement, and every
        # caller runs bulk writes in a transaction or savepoint)
        c = self.compiler
        enc = c.row_encoder(stmt.model, stmt.columns)
        rows: list[Any] = stmt.rows if stmt.encoded is None else stmt.encoded
        if stmt.encoded is not None:
            enc = _as_is
        await self._multi_row(conn, len(stmt.columns), rows, enc,
                              lambda n: c.insert_sql(stmt.model, stmt.columns, n))
        return []

    async def _multi_row(self, conn: Any, width: int, rows: list[Any], enc: Callable[[Any], Any],
                         sql_for: Callable[[int], str]) -> None:
        """Run ``rows`` (``width`` columns each) as ``sql_for(n)`` statements of ``n`` rows, as
        many rows a statement as SQLite's limit on bound variables allows (at most _INSERT_ROWS)."""
        per = max(1, min(_INSERT_ROWS, _MAX_VARIABLES // max(1, width)))
        gc_was_enabled = gc.isenabled()
        for start in range(0, len(rows), per):
            part = rows[start:start + per]
            sql = sql_for(len(part))
            gc.disable()  # flat parameter lists of immutable values: nothing for the GC to find
            try:
                if enc is _as_is:  # driver tuples already: flattened in C
                    params = tuple(itertools.chain.from_iterable(part))
                else:
                    params = tuple([v for r in part for v in enc(r)])
            finally:
                if gc_was_enabled:
                    gc.enable()
            await self.execute(conn, sql, params)

    @_naming_constraints
    async def upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        if stmt.returning:
            return await super().upsert(conn, stmt)
        n_existing = await self._count_existing(conn, stmt)
        c = self.compiler
        enc = c.row_encoder(stmt.model, stmt.columns)
        rows: list[Any] = stmt.rows
        if stmt.encoded is not None:
            enc, rows = _as_is, stmt.encoded
        # multi-row statements, as in insert (callers run upserts in a transaction)
        await self._multi_row(conn, len(stmt.columns), rows, enc,
                              lambda n: c.upsert_sql(stmt.model, stmt.columns, stmt.conflict, stmt.update, n))
        return UpsertOutcome([], len(rows) - n_existing, n_existing)

    async def _count_existing(self, conn: Any, stmt: Upsert) -> int:
        """How many of ``stmt.rows`` already exist (exact upsert counts), in one statement when
        the conflict key is one int or text column: the keys travel as one JSON array."""
        if len(stmt.conflict) == 1:
            c = self.compiler
            if stmt.encoded is not None:
                at = stmt.columns.index(stmt.conflict[0])
                keys = [t[at] for t in stmt.encoded]
            else:
                keys = [k for (k,) in map(c.row_encoder(stmt.model, stmt.conflict), stmt.rows)]
            if all(type(k) is int or type(k) is str for k in keys):
                sql = (f"SELECT COUNT(*) FROM {c.table(stmt.model)} WHERE {c.quote(stmt.conflict[0])} "
                       "IN (SELECT value FROM json_each(?))")
                rows = await self.fetch(conn, sql, (json.dumps(keys),))
                return int(rows[0][0])
        return len(await self.existing_keys(conn, stmt))

    def max_rows_per_statement(self, ncolumns: int) -> int:
        return max(1, min(500, 32766 // max(1, ncolumns)))

    # --- schema ---------------------------------------------------------------------------
    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]:
        names = [r[0] for r in await self.fetch(
            conn, "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", ())]
        if tables is not None:
            names = [n for n in names if n in tables]
        out: dict[str, TableInfo] = {}
        for name in names:
            info = TableInfo(name)
            for _cid, col, ctype, notnull, default, pk in await self.fetch(
                    conn, f"PRAGMA table_info({self.compiler.quote(name)})", ()):
                declared = str(ctype).upper()
                ltype = LOGICAL_OF.get(declared)
                if ltype is None and declared.startswith("VARCHAR"):
                    ltype = LOGICAL_OF["TEXT"]
                info.columns[col] = ColumnInfo(col, declared, not notnull and not pk, bool(pk),
                                               default, ltype)
            for fk in await self.fetch(conn, f"PRAGMA foreign_key_list({self.compiler.quote(name)})", ()):
                info.foreign_keys.append({"column": fk[3], "table": fk[2], "references": fk[4],
                                          "on_delete": fk[6]})
            for idx in await self.fetch(conn, f"PRAGMA index_list({self.compiler.quote(name)})", ()):
                cols = [r[2] for r in await self.fetch(
                    conn, f"PRAGMA index_info({self.compiler.quote(idx[1])})", ())]
                info.indexes.append({"name": idx[1], "unique": bool(idx[2]), "columns": cols})
            out[name] = info
        return out

    async def apply_step(self, conn: Any, step: Step) -> None:
        """Steps SQLite has no ALTER for, by rebuilding the table: relaxing NOT NULL, and
        adding or changing a foreign key (the copied rows must satisfy it, or nothing
        changes: DF-902)."""
        fk_step = step.kind in ("add_foreign_key", "alter_foreign_key")
        if not fk_step and (step.kind != "alter_column"
                            or (step.destructive and "type" in step.reason)):
            raise UnsupportedError(
                f"SQLite cannot apply '{step.describe()}' in place.",
                model=step.model.name, field=step.column,
                fix="export the data, drop the table and let DataFlow recreate it.")
        model = step.model
        c = self.compiler
        live = (await self.introspect(conn, [model.table]))[model.table]
        common = [n for n in model.fields if n in live.columns]
        tmp = f"{model.table}__df_rebuild"
        create = c.create_table(model)[0].replace(
            f"CREATE TABLE {c.table(model)}", f"CREATE TABLE {c.quote(tmp)}", 1)
        cols = ", ".join(c.quote(n) for n in common)
        await self.execute(conn, "PRAGMA foreign_keys = OFF", ())
        try:
            await self.execute(conn, "BEGIN IMMEDIATE", ())
            try:
                await self.execute(conn, create, ())
                await self.execute(conn, f"INSERT INTO {c.quote(tmp)} ({cols}) "
                                         f"SELECT {cols} FROM {c.table(model)}", ())
                await self.execute(conn, f"DROP TABLE {c.table(model)}", ())
                await self.execute(conn, f"ALTER TABLE {c.quote(tmp)} RENAME TO {c.table(model)}", ())
                for sql in c.create_indexes(model):
                    await self.execute(conn, sql, ())
                if fk_step:
                    await self._check_rebuilt_keys(conn, model)
                await self.execute(conn, "COMMIT", ())
            except BaseException:
                await self.rollback(conn)
                raise
        finally:
            await self.execute(conn, "PRAGMA foreign_keys = ON", ())
