"""The PostgreSQL adapter on asyncpg.

One asyncpg pool per event loop (DataFlow runs on the caller's loop and on the sync
API's background loop; an asyncpg connection belongs to the loop that opened it).
The pool sizes itself from the server through the ``dataflow_pool_size`` hook.
Statements go through asyncpg's prepared-statement cache; bulk writes use the binary
COPY protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar

import asyncpg

from dataflow import plugins
from dataflow.adapter import ColumnInfo, DatabaseURL, SQLAdapter, TableInfo, UpsertOutcome, translating
from dataflow.errors import (
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    UnsupportedError,
)
from dataflow.interrupts import uninterrupted
from dataflow.loops import PerLoop, close_per_loop
from dataflow.migrations import Step
from dataflow.model import LogicalType, ModelSpec
from dataflow.pool import ServerInfo, configured_pool_size, worker_count
from dataflow.query.ast import FALSE, Comparison, Insert, Select, Update, Upsert
from dataflow.sql.compiler import renders_as_base

from .capabilities import PostgresCapabilities
from .dialect import ENUM_COMMENT, PostgresCompiler, logical_type, vector_dimensions

T = TypeVar("T")
P = ParamSpec("P")

#: rows from which bulk_create switches from executemany to binary COPY
COPY_THRESHOLD = 64
#: rows per binary COPY piece built from a frame's columns (db.frames)
FRAME_COPY_CHUNK = 20_000
#: rows from which bulk_upsert stages through COPY into a temporary table
UPSERT_COPY_THRESHOLD = 2_000
#: key of the advisory lock migrations take (fits a bigint)
MIGRATION_LOCK_KEY = zlib.crc32(b"dataflow.migrations")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    OSError,
)
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError,
                  asyncpg.exceptions.InternalClientError, OSError)
#: driver messages of a connection that closed under us (the pool detaches its proxy)
_LOST_MARKERS = re.compile(r"is closed|released back to the pool|connection was closed")
#: errors after which the statement certainly did not commit: safe to run again
_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        # the message names the constraint; ``constraint`` carries it for programs
        return IntegrityError(f"the database refused the write: {exc}.",
                              fix="check unique keys, foreign keys and required fields.",
                              constraint=getattr(exc, "constraint_name", None))
    if isinstance(exc, (asyncpg.exceptions.CharacterNotInRepertoireError,
                        asyncpg.exceptions.UntranslatableCharacterError)) and (
            "0x00" in str(exc) or "\\u0000" in str(exc)):
        return UnsupportedError(
            "PostgreSQL cannot store the NUL character (U+0000) in text or JSON.",
            fix="strip '\\x00' from the value, or store it as bytes elsewhere.")
    if isinstance(exc, _CONNECTION_ERRORS + (asyncpg.exceptions.InternalClientError,)) or (
            isinstance(exc, asyncpg.InterfaceError) and _LOST_MARKERS.search(str(exc))):
        return ConnectionLostError(f"the PostgreSQL connection was lost: {exc}.",
                                   fix="retry; DataFlow reconnects on the next operation.")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(f"PostgreSQL error: {exc}.")
    if isinstance(exc, asyncpg.DataError):  # a value the driver cannot encode
        return DatabaseError(f"PostgreSQL driver refused a value: {exc}.")
    return exc


def _usable(conn: Any) -> bool:
    """Open and still attached: a pool proxy whose connection was terminated after a lost
    connection is detached, and asking it anything raises a bare ``InterfaceError``."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _terminate(conn: Any) -> None:
    try:
        conn.terminate()
    except Exception:  # already detached from its pool: nothing left to close
        pass


#: driver errors become DataFlow errors; a connection found broken is terminated so the
#: pool replaces it
_translating = translating(_DRIVER_ERRORS, _translate, on_lost=_terminate)


#: the protocol's Terminate message: the server ends the session without logging an error
_TERMINATE = b"X\x00\x00\x00\x04"


def _abandon(pool: asyncpg.Pool) -> None:
    """End the sessions of a pool whose event loop is gone, at the socket (its transports
    cannot run any more, so ``terminate()`` would raise "Event loop is closed")."""
    for holder in getattr(pool, "_holders", ()):
        conn = getattr(holder, "_con", None)
        transport: Any = getattr(conn, "_transport", None)
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(_TERMINATE)
            with contextlib.suppress(OSError):
                sock.close()
            transport._sock = None  # closed here; its finaliser would warn and close again
        if conn is not None:
            conn._aborted = True  # closed: its finaliser must not touch the dead loop


def _status_count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool release hook: asyncpg already rolled back any open transaction; DataFlow
    sets no session state, so skip the RESET ALL / UNLISTEN round trip."""


def _as_is(row: Any) -> Any:
    return row


#: (model, INSERT ... RETURNING text, row encoder, row decoder, moves the identity sequence)
_InsertPlan = tuple[ModelSpec, str, Callable[[dict[str, Any]], tuple[Any, ...]],
                    Callable[[Any], dict[str, Any]], bool]


class _Tally:
    """Counts the rows of a stream of encoded batches as they pass, and the highest explicit
    id among them (for the identity sequence's move after the write)."""

    def __init__(self, model: ModelSpec, columns: tuple[str, ...]) -> None:
        self.at = columns.index("id") if "id" in columns and model.pk.auto_increment else None
        self.rows = 0
        self.top: Any = None

    def passing(self, batches: Iterable[list[tuple[Any, ...]]]) -> Iterator[list[tuple[Any, ...]]]:
        at = self.at
        for batch in batches:
            self.rows += len(batch)
            if at is not None and batch:
                high = max([t[at] for t in batch])
                if self.top is None or high > self.top:
                    self.top = high
            yield batch


class PostgresAdapter(SQLAdapter):
    capabilities = PostgresCapabilities
    accepts_encoded_rows = True
    #: one COPY streams every batch: small batches let the server insert one while the
    #: next is validated and encoded (100k rows: ~10-25% faster than one 100k batch)
    encoded_batch_rows = 2_000

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        compiler = plugins.dialect_compiler("postgresql")
        self.compiler = compiler if compiler is not None else PostgresCompiler()
        #: the compiler renders an UPDATE ... WHERE id as the base compiler does
        self._plain_update_text = renders_as_base(
            self.compiler, "compile_update", "where_clause", "visit_comparison", "_encoders",
            "returning_clause", "column_list")
        _scheme, rest = url.raw.split("://", 1)
        self.dsn = "postgresql://" + rest
        self.connect_options: dict[str, Any] = {
            "statement_cache_size": int(options.pop("statement_cache_size", 512)),
            "command_timeout": options.pop("command_timeout", None),
            "server_settings": {"application_name": str(options.pop("application_name", "dataflow")),
                                **options.pop("server_settings", {})},
        }
        self.connect_options.update(options.pop("connect_args", {}))
        self._pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}
        self._loop_pools: PerLoop[asyncpg.Pool] = PerLoop(self._new_pool, self._pools)
        #: per event loop, at most one pooled connection parked after a statement that ended
        #: cleanly (see :meth:`_park`): the next statement takes it without a pool round
        self._hot: dict[asyncio.AbstractEventLoop, Any] = {}
        self._size: int | None = None
        self.server: ServerInfo | None = None
        #: per model: the SELECT by key and the row decoder of read_by_id
        self._read_sql: dict[int, tuple[ModelSpec, str, Callable[[Any], dict[str, Any]]]] = {}
        self._delete_sql: dict[int, tuple[ModelSpec, str]] = {}
        #: (model, updated columns) -> (model, UPDATE ... WHERE id RETURNING text, encoder of
        #: the SET values, row decoder): see :meth:`update`
        self._update_by_id: dict[tuple[int, tuple[str, ...]], tuple[
            ModelSpec, str, Callable[[dict[str, Any]], tuple[Any, ...]],
            Callable[[Any], dict[str, Any]]]] = {}
        #: (model, columns) -> how one row is inserted (see :meth:`_single_insert_plan`)
        self._single_insert: dict[tuple[int, tuple[str, ...]], _InsertPlan] = {}
        #: models whose generated key met a row already there inside a transaction: their
        #: sequence is moved past the table's rows when the connection is released
        #: (after the rollback), see :meth:`_behind_error`
        self._behind: dict[int, ModelSpec] = {}

    # --- pool sizing ------------------------------------------------------------------------
    async def _resolve_size(self) -> int:
        if self._size is not None:
            return self._size
        size = configured_pool_size(self.pool_size)
        if size is None:
            self.server = await self.read_server_info()
            size = plugins.pool_size("postgresql", self.server, worker_count())
        self._size = max(1, int(size))
        return self._size

    @_translating
    async def read_server_info(self) -> ServerInfo:
        """``max_connections`` and the reserved slots (superuser and, on 16+, role-reserved)."""
        conn = await asyncpg.connect(self.dsn, **self._plain_connect_options())
        try:
            rows = await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections', 'superuser_reserved_connections', 'reserved_connections')")
            settings = {r["name"]: int(r["setting"]) for r in rows}
            current = await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE backend_type = 'client backend'")
        finally:
            await conn.close()
        return ServerInfo(
            max_connections=settings.get("max_connections"),
            reserved_connections=settings.get("superuser_reserved_connections", 0)
            + settings.get("reserved_connections", 0),
            current_connections=int(current or 0),
        )

    def _plain_connect_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.connect_options.items() if k != "statement_cache_size"}

    # --- connections --------------------------------------------------------------------------
    async def _pool(self) -> asyncpg.Pool:
        return self._pools.get(asyncio.get_running_loop()) or await self._loop_pools.get()

    async def _new_pool(self) -> asyncpg.Pool:
        self._forget_dead_loops()
        try:
            size = await self._resolve_size()
            if self._pools:
                # a second loop (the sync API's) gets a quarter of the budget on top
                size = max(1, size // 4)
            return await self._create_pool(size)
        except BaseException as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _forget_dead_loops(self) -> None:
        """Close the connections of pools whose event loop has ended (``asyncio.run`` per
        call): the server would keep their sessions open otherwise."""
        for owner in [lp for lp in self._pools if lp.is_closed()]:
            self._hot.pop(owner, None)
            _abandon(self._pools.pop(owner))

    async def _create_pool(self, size: int) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.dsn, min_size=min(1, size), max_size=size, reset=_no_reset,
            max_inactive_connection_lifetime=60.0, init=self._init_connection,
            **self.connect_options)
        return pool

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        """Per-connection setup: text I/O for pgvector's type when the extension exists."""
        oid = await conn.fetchval("SELECT oid FROM pg_type WHERE typname = 'vector'")
        if oid is not None:
            await conn.set_type_codec("vector", schema=await conn.fetchval(
                "SELECT n.nspname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE t.typname = 'vector'"), encoder=str, decoder=str, format="text")

    async def acquire(self) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop) or await self._pool()
        conn = await self._take_hot(loop, pool)
        if conn is not None:
            return conn
        try:
            return await pool.acquire()
        except _DRIVER_ERRORS as exc:
            raise _translate(exc) from exc

    # --- the parked connection --------------------------------------------------------------
    # asyncpg's Pool.release runs the holder's release under asyncio.shield (a task: two more
    # event-loop turns) and its acquire awaits a queue and a holder; a lone caller issuing one
    # statement after another pays that on every statement. So a connection whose statement
    # ended cleanly is parked (still checked out of the pool, counted as idle) and the next
    # statement on that loop takes it synchronously; concurrent callers find the slot empty
    # and use the pool as before. Only :meth:`run`'s success path parks, and only a
    # connection that is open, outside a transaction and not cancelling a statement, so the
    # next caller never meets a connection mid-statement or mid-transaction.

    def _park(self, loop: asyncio.AbstractEventLoop, pool: asyncpg.Pool, conn: Any) -> bool:
        """Keep ``conn`` as ``loop``'s parked connection if it is clean and the slot free."""
        if loop in self._hot or self._pools.get(loop) is not pool:
            return False
        try:
            queue: Any = pool._queue  # type: ignore[union-attr]
            if any(not getter.done() for getter in queue._getters):
                return False  # a caller waits in the pool: it gets this connection
            raw, holder = conn._con, conn._holder
            if (raw is None or holder is None or raw.is_closed() or raw.is_in_transaction()
                    or raw._top_xact is not None or raw._protocol._is_cancelling()
                    # taken before the pool's connections were expired: the pool closes it
                    or holder._generation != getattr(pool, "_generation", None)):
                return False
        except (AttributeError, asyncpg.InterfaceError):
            return False
        self._hot[loop] = conn
        return True

    async def _take_hot(self, loop: asyncio.AbstractEventLoop, pool: asyncpg.Pool) -> Any:
        """``loop``'s parked connection, or None; one found closed is handed back to the
        pool (which replaces it)."""
        conn = self._hot.pop(loop, None)
        if conn is None:
            return None
        if _usable(conn):
            return conn
        await self._release_to(pool, conn)
        return None

    async def _unpark(self, loop: asyncio.AbstractEventLoop, pool: asyncpg.Pool) -> None:
        """Hand the parked connection back to the pool (before expiring or closing it)."""
        conn = self._hot.pop(loop, None)
        if conn is not None:
            await self._release_to(pool, conn)

    async def _expire(self, pool: asyncpg.Pool) -> None:
        """Replace every connection of ``pool`` on next use, the parked one included."""
        await pool.expire_connections()
        await self._unpark(asyncio.get_running_loop(), pool)

    @staticmethod
    async def _release_to(pool: asyncpg.Pool, conn: Any) -> None:
        try:
            await pool.release(conn)
        except _DRIVER_ERRORS:
            pass  # the pool terminated the broken connection; a fresh one replaces it

    async def release(self, conn: Any) -> None:
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is None:
            conn.terminate()
            return
        if self._behind and _usable(conn) and not conn.is_in_transaction():
            await self._catch_up_behind(conn)
        try:
            if conn.is_closed():
                await self._expire(pool)  # its siblings likely went with it
        except asyncpg.InterfaceError:
            await self._expire(pool)  # detached: closed under a transaction
        await self._release_to(pool, conn)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(conn, *args)`` on a pooled connection; once more on a fresh connection when
        the server had dropped the first one before the statement could commit."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop) or await self._pool()
        for attempt in (0, 1):
            conn = self._hot.pop(loop, None)
            if conn is None or not _usable(conn):
                if conn is not None:
                    await self._release_to(pool, conn)
                try:
                    conn = await pool.acquire()
                except _DRIVER_ERRORS as exc:
                    raise _translate(exc) from exc
            try:
                result = await fn(conn, *args)
            except ConnectionLostError as exc:
                # the server dropped one connection, likely all of them (restart,
                # pg_terminate_backend): replace every pooled connection on next acquire
                await self._expire(pool)
                # to its end even when cancelled again meanwhile (the cancellation is raised
                # after it): a release cut short could leave a broken connection unexpired
                await uninterrupted(self.release(conn))
                if attempt or not self._retryable(exc, conn):
                    raise
                continue
            except BaseException:
                await uninterrupted(self.release(conn))
                raise
            if not self._park(loop, pool, conn):
                await uninterrupted(self.release(conn))
            return result
        raise AssertionError("unreachable")

    @staticmethod
    def _retryable(exc: BaseException, conn: Any) -> bool:
        cause = exc.__cause__
        if isinstance(cause, _RETRYABLE) or "administrator command" in str(cause):
            # the server terminated the backend (57P01): whatever was running rolled back
            return True
        # found closed or broken before anything was sent: nothing ran
        return isinstance(cause, asyncpg.exceptions.InternalClientError) or (
            isinstance(cause, asyncpg.InterfaceError)
            and ("is closed" in str(cause) or "released back" in str(cause)))

    async def close(self) -> None:
        await close_per_loop(self._pools, self._close_pool, self._abandon_pool)

    async def _close_pool(self, pool: asyncpg.Pool) -> None:
        """On the pool's own loop: Pool.close waits for every checked-out connection."""
        await self._unpark(asyncio.get_running_loop(), pool)
        await pool.close()

    def _abandon_pool(self, pool: asyncpg.Pool) -> None:
        for owner in [lp for lp in self._hot if lp.is_closed() or not lp.is_running()]:
            self._hot.pop(owner, None)
        _abandon(pool)

    def pool_stats(self) -> dict[str, Any]:
        opened = idle = maximum = 0
        for owner, pool in list(self._pools.items()):
            opened += pool.get_size()
            idle += pool.get_idle_size() + (owner in self._hot)  # parked: idle, not in use
            maximum += pool.get_max_size()
        active = opened - idle
        if not maximum:
            maximum = self._size or 0
        return {"active": active, "idle": idle, "max": maximum,
                "utilization": active / maximum if maximum else 0.0}

    # --- driver primitives --------------------------------------------------------------------
    @_translating
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
        rows: list[Any] = await conn.fetch(sql, *params)
        return rows

    @_translating
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        return _status_count(await conn.execute(sql, *params))

    @_translating
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
        await conn.executemany(sql, rows)
        return len(rows)

    @_translating
    async def copy_records(self, conn: Any, table: str, columns: tuple[str, ...],
                           records: Iterable[tuple[Any, ...]]) -> int:
        status = await conn.copy_records_to_table(table, records=records, columns=list(columns))
        return _status_count(status)

    # --- transactions -----------------------------------------------------------------------
    async def begin(self, conn: Any) -> None:
        await self.execute(conn, "BEGIN", ())

    async def commit(self, conn: Any) -> None:
        await self.execute(conn, "COMMIT", ())

    async def release_and_savepoint(self, conn: Any, release: str, name: str) -> None:
        # no parameters: the simple-query protocol takes both statements in one round trip
        q = self.compiler.quote
        await self.execute(conn, f"RELEASE SAVEPOINT {q(release)}; SAVEPOINT {q(name)}", ())

    async def rollback(self, conn: Any) -> None:
        # sent even when the driver says no transaction is open: after a cancellation it
        # may not have read the server's answer to BEGIN yet (ROLLBACK outside a
        # transaction is only a warning)
        try:
            if conn.is_closed():
                return
        except asyncpg.InterfaceError:
            return  # detached from the pool: the server rolled back when it went away
        try:
            await self.execute(conn, "ROLLBACK", ())
        except ConnectionLostError:
            pass

    # --- streaming reads ------------------------------------------------------------------
    async def stream(self, stmt: Select, batch_size: int, *, conn: Any = None,
                     lock: Any = None) -> AsyncIterator[list[dict[str, Any]]]:
        """A server-side cursor (``FETCH n`` per batch): rows travel as they are consumed.
        On its own connection the cursor lives in a transaction opened for it (rolled back at
        the end: it only reads); in the caller's transaction it uses that one."""
        if stmt.where is FALSE:
            return
        compiled = self.compiler.compile(stmt)
        decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
        own = conn is None
        ahead: asyncio.Future[Any] | None = None
        if own:
            conn = await self.acquire()
        try:
            if own:
                await self.begin(conn)
            try:
                if own:
                    cursor = await conn.cursor(compiled.sql, *compiled.params)
                    # the next batch is fetched while this one is decoded and consumed
                    fetching = ahead = asyncio.ensure_future(cursor.fetch(batch_size))
                    while True:
                        rows = await fetching
                        ahead = None
                        if len(rows) == batch_size:
                            fetching = ahead = asyncio.ensure_future(cursor.fetch(batch_size))
                        if rows:
                            yield [decode(r) for r in rows]
                        if len(rows) < batch_size:
                            break
                else:
                    async with lock:
                        cursor = await conn.cursor(compiled.sql, *compiled.params)
                    while True:
                        async with lock:
                            rows = await cursor.fetch(batch_size)
                        if rows:
                            yield [decode(r) for r in rows]
                        if len(rows) < batch_size:
                            break
            except _DRIVER_ERRORS as exc:
                raise _translate(exc) from exc
            finally:
                if own:
                    if ahead is not None:  # left early: let the fetch in flight finish
                        try:
                            await ahead
                        except BaseException:
                            _terminate(conn)  # state unknown: the pool replaces it
                    if not conn.is_closed():
                        await self.rollback(conn)
        finally:
            if own:
                await self.release(conn)

    # --- fast paths -------------------------------------------------------------------------
    @_translating
    async def read_by_id(self, conn: Any, model: ModelSpec, key: Any) -> dict[str, Any] | None:
        cached = self._read_sql.get(id(model))
        if cached is None or cached[0] is not model:
            c = self.compiler
            sql = f"SELECT {c.column_list(model)} FROM {c.table(model)} WHERE {c.quote('id')} = $1"
            cached = (model, sql, c.row_decoder(model, tuple(model.fields)))
            self._read_sql[id(model)] = cached
        row = await conn.fetchrow(cached[1], key)
        if row is None:
            return None
        return cached[2](row)

    async def delete_by_id(self, conn: Any, model: ModelSpec, key: Any) -> int:
        cached = self._delete_sql.get(id(model))
        if cached is None or cached[0] is not model:
            c = self.compiler
            cached = (model, f"DELETE FROM {c.table(model)} WHERE {c.quote('id')} = $1")
            self._delete_sql[id(model)] = cached
        return await self.execute(conn, cached[1], (self.compiler.encode(model.pk, key),))

    async def update(self, conn: Any, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        """An update by key alone with RETURNING (express.update of an unscoped model) keeps
        its statement text, encoder and decoder per (model, updated columns); anything else
        is compiled as before, and so is everything when a plugin's compiler renders updates,
        comparisons or encodings its own way (the text might then depend on the values)."""
        where = stmt.where
        if not (stmt.returning and type(where) is Comparison and where.field == "id"
                and where.op == "eq" and self._plain_update_text):
            return await super().update(conn, stmt)
        model, columns = stmt.model, tuple(stmt.values)
        plan = self._update_by_id.get((id(model), columns))
        if plan is None or plan[0] is not model:
            c = self.compiler
            if len(self._update_by_id) >= 1024:  # many distinct column sets: start over
                self._update_by_id.clear()
            plan = (model, c.compile(stmt).sql, c.row_encoder(model, columns),
                    c.row_decoder(model, tuple(model.fields)))
            self._update_by_id[(id(model), columns)] = plan
        _, sql, encode, decode = plan
        rows = await self.fetch(conn, sql, (*encode(stmt.values),
                                            self.compiler.encode(model.pk, where.value)))
        return len(rows), [decode(r) for r in rows]

    async def insert(self, conn: Any, stmt: Insert) -> list[dict[str, Any]]:
        model, c = stmt.model, self.compiler
        if stmt.returning and len(stmt.rows) == 1:
            plan = self._single_insert.get((id(model), stmt.columns))
            if plan is None or plan[0] is not model:
                plan = await self._single_insert_plan(conn, model, stmt.columns)
            _, sql, encode, decode, advancing = plan
            if not advancing:
                try:
                    row = await self._fetchrow(conn, sql, encode(stmt.rows[0]))
                except IntegrityError as exc:
                    if conn.is_in_transaction() or not await self._caught_up(conn, model,
                                                                             stmt.columns, exc):
                        raise self._behind_error(conn, model, stmt.columns, exc) from exc.__cause__
                    # its generated key met a row written around the sequence (nothing was
                    # written): the sequence now stands past the rows, send it once more
                    row = await self._fetchrow(conn, sql, encode(stmt.rows[0]))
                return [decode(row)]
            params = encode(stmt.rows[0])
            try:
                row = await self._fetchrow(conn, sql, params)
            except (IntegrityError, ConnectionLostError):
                raise
            except DatabaseError:
                self._single_insert.clear()  # its table may have been rebuilt elsewhere
                if conn.is_in_transaction():
                    raise  # the transaction is aborted: nothing can be retried in it
                # one statement on its own failed whole (nothing written): look the identity
                # sequence up again and send it once more
                plan = await self._single_insert_plan(conn, model, stmt.columns)
                row = await self._fetchrow(conn, plan[1], params)
            return [decode(tuple(row)[:len(model.fields)])]
        elif stmt.returning:
            out = await super().insert(conn, stmt)
        else:
            if stmt.encoded is not None:
                records = stmt.encoded
            else:
                enc = c.row_encoder(model, stmt.columns)
                records = [enc(r) for r in stmt.rows]
            try:
                if len(records) >= COPY_THRESHOLD and self._copyable(model, stmt.columns):
                    await self.copy_records(conn, model.table, stmt.columns, records)
                else:
                    await self.executemany(conn, c.insert_sql(model, stmt.columns, 1), records)
            except IntegrityError as exc:
                raise self._behind_error(conn, model, stmt.columns, exc) from exc.__cause__
            out = []
        await self._advance_identity(conn, model, stmt.columns, stmt.rows, stmt.encoded)
        return out

    async def insert_encoded(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                             batches: Iterable[list[tuple[Any, ...]]]) -> int:
        """Every batch into one binary COPY, encoded as the driver reads it (so
        ``batch_size`` bounds the memory of encoding, not the number of round trips)."""
        stream = iter(batches)
        head = next(stream, None)
        if head is None:
            return 0
        second = next(stream, None) if len(head) < COPY_THRESHOLD else None
        if (second is None and len(head) < COPY_THRESHOLD) or not self._copyable(model, columns):
            # a handful of rows: executemany beats setting up a COPY
            total = 0
            for batch in itertools.chain((head,), () if second is None else (second,), stream):
                await self.insert(conn, Insert(model, columns, [], returning=False, encoded=batch))
                total += len(batch)
            return total
        tally = _Tally(model, columns)
        # the records flattened in C (a generator's ``yield from`` resumes once per record)
        records = itertools.chain.from_iterable(tally.passing(
            itertools.chain((head,), () if second is None else (second,), stream)))
        try:
            await self.copy_records(conn, model.table, columns, records)
        except IntegrityError as exc:
            raise self._behind_error(conn, model, columns, exc) from exc.__cause__
        if tally.top is not None:
            await self._move_identity(conn, model, tally.top)
        return tally.rows

    async def copy_frame(self, conn: Any, model: ModelSpec, frame: Any) -> bool:
        """Binary COPY straight from a Polars frame's columns (``db.frames``): the wire
        form of each column is computed column-wise (``frame_copy``), one COPY statement
        streams the chunks. False, with nothing sent, when a column's live type or dtype has
        no binary mapping there; the caller then writes tuples."""
        from . import frame_copy

        types = await self._live_types(conn, model)
        if any(c not in types for c in frame.columns):
            return False
        replaced = []
        for c in frame.columns:
            f = model.fields[c]
            series = frame.get_column(c)
            if f.ltype is LogicalType.DECIMAL and types[c].startswith("numeric"):
                text = frame_copy.numeric_text(series)
                if text is None:
                    return False
                replaced.append(text.alias(c))
            elif (f.ltype is LogicalType.JSON and f.pydantic_cls is None
                  and types[c] == "jsonb" and frame_copy.is_text(series)):
                encode = self.compiler.encoder(f)
                assert encode is not None
                replaced.append(frame_copy.json_text(series, encode))
        if replaced:
            frame = frame.with_columns(replaced)
        kinds = frame_copy.wire_kinds([types[c] for c in frame.columns], frame.get_columns())
        if kinds is None:
            return False
        await self._copy_stream(conn, model.table, tuple(frame.columns),
                                frame_copy.stream(frame, kinds, FRAME_COPY_CHUNK))
        if "id" in frame.columns and model.pk.auto_increment and frame.height:
            top = frame.get_column("id").max()
            if top is not None:
                await self._advance_identity(conn, model, ("id",), [], [(top,)])
        return True

    async def _live_types(self, conn: Any, model: ModelSpec) -> dict[str, str]:
        """Column name -> ``format_type`` of ``model``'s table as it is in the database."""
        live = await self.fetch(
            conn, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (self.compiler.table(model),))
        return {str(name): str(sql_type) for name, sql_type in live}

    async def frame_read_plan(self, conn: Any, model: ModelSpec) -> Any:
        """How ``db.frames`` reads ``model`` (see ``frame_read``): one look at the live
        column types per call."""
        from . import frame_read

        return frame_read.plan(self.compiler, model, await self._live_types(conn, model))

    async def fetch_frame(self, conn: Any, plan: Any, sql: str, params: tuple[Any, ...]
                          ) -> Any:
        """The rows of ``sql`` (a select of every column of the plan's model) as a Polars
        frame, the select list replaced by the plan's; None when ``sql`` has another
        shape (the caller then reads it row by row)."""
        from . import frame_read

        planned = frame_read.rewrite(plan, sql)
        if planned is None:
            return None
        rows = await self.fetch(conn, planned, params)
        return frame_read.frame(plan, self.compiler, rows)

    async def advance_identity(self, conn: Any, model: ModelSpec, top: Any) -> None:
        """Move ``model``'s identity sequence past ``top`` (explicit ids written by a
        statement that bypassed it, e.g. ``db.frames``' staging merge)."""
        await self._advance_identity(conn, model, ("id",), [], [(top,)])

    @_translating
    async def _copy_stream(self, conn: Any, table: str, columns: tuple[str, ...],
                           pieces: Iterator[bytes]) -> None:
        async def source() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        await conn.copy_to_table(table, source=source(), columns=list(columns), format="binary")

    async def _single_insert_plan(self, conn: Any, model: ModelSpec, columns: tuple[str, ...]
                                  ) -> _InsertPlan:
        """How one row of ``columns`` is inserted, RETURNING the row: the statement, the
        row's encoder and the returned row's decoder, kept per (model, columns).

        With an explicit id for an identity key, the statement returns one more column that
        moves the identity's sequence to that id when it is beyond the sequence's last value
        (one round trip). The sequence is looked up here, once (``pg_get_serial_sequence``
        costs a catalog scan per call), and named in the text as a ``regclass`` literal,
        which the server resolves when it plans the statement (and again when the sequence
        is dropped). Plans are forgotten when this adapter changes the schema, and when such
        a statement fails (a table rebuilt elsewhere with its sequence under another name)."""
        c = self.compiler
        sql = c.insert_sql(model, columns, 1, returning=True)
        advancing = "id" in columns and model.pk.auto_increment
        if advancing:
            seq = await self._fetchrow(conn, "SELECT pg_get_serial_sequence($1, 'id')",
                                       (c.table(model),))
            if seq is None or seq[0] is None:  # no identity behind the key: nothing to move
                advancing = False
            else:
                name = "'" + str(seq[0]).replace("'", "''") + "'::regclass"
                key = c.quote("id")
                sql += (f", CASE WHEN {key} > COALESCE(pg_sequence_last_value({name}), 0) "
                        f"THEN setval({name}, {key}) END")
        plan = (model, sql, c.row_encoder(model, columns),
                c.row_decoder(model, tuple(model.fields)), advancing)
        if len(self._single_insert) >= 1024:  # many distinct column lists: start over
            self._single_insert.clear()
        self._single_insert[(id(model), columns)] = plan
        return plan

    @_translating
    async def _fetchrow(self, conn: Any, sql: str, params: tuple[Any, ...]) -> Any:
        return await conn.fetchrow(sql, *params)

    def _copyable(self, model: ModelSpec, columns: tuple[str, ...]) -> bool:
        """Binary COPY needs a binary codec for every column (pgvector's is text here)."""
        return all(vector_dimensions(model.fields[n]) is None for n in columns)

    @staticmethod
    def _generated_key_met_a_row(model: ModelSpec, columns: tuple[str, ...],
                                 exc: IntegrityError) -> bool:
        """``exc`` is a key the identity sequence generated meeting a row already there: the
        sequence is behind the table (rows written with explicit ids around it -- another
        program, a restore, or two explicit-id creates racing each other)."""
        cause = exc.__cause__
        return ("id" not in columns and model.pk.auto_increment
                and isinstance(cause, asyncpg.UniqueViolationError)
                and str(getattr(cause, "detail", None) or "").startswith("Key (id)="))

    def _behind_error(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                      exc: IntegrityError) -> IntegrityError:
        """``exc``, or for a generated key that met a row: the same error saying so, with
        the sequence's move past the rows due when the connection is released (after the
        rollback: nothing runs in an aborted transaction)."""
        if not self._generated_key_met_a_row(model, columns, exc):
            return exc
        self._behind[id(model)] = model
        return IntegrityError(
            f"{exc.message} The key DataFlow generated for {model.name} was already taken: the "
            f"table's id sequence was behind its rows (rows written with explicit ids around "
            f"it). Nothing was written; the sequence is moved past the rows now.",
            model=model.name, field="id", constraint=exc.details.get("constraint"),
            rerun_safe=True,  # DataFlow's own restartable transactions run it once more
            fix="run the operation again: its next generated key is past every row.")

    async def _caught_up(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                         exc: IntegrityError) -> bool:
        """Outside a transaction: when ``exc`` is a generated key meeting a row, move the
        sequence past the table's rows; True when it moved (running the write again can
        then succeed)."""
        if not self._generated_key_met_a_row(model, columns, exc):
            return False
        return await self._catch_up_identity(conn, model)

    async def _catch_up_identity(self, conn: Any, model: ModelSpec) -> bool:
        """Move ``model``'s key sequence to its table's highest id when it is behind it."""
        table = self.compiler.table(model)
        rows = await self.fetch(
            conn,
            f"SELECT setval(s.seq, t.top) FROM (SELECT pg_get_serial_sequence($1, 'id') AS seq) s, "
            f"(SELECT max({self.compiler.quote('id')}) AS top FROM {table}) t "
            "WHERE s.seq IS NOT NULL AND t.top IS NOT NULL "
            "AND t.top > COALESCE(pg_sequence_last_value(s.seq::regclass), 0)",
            (table,))
        return bool(rows)

    async def _catch_up_behind(self, conn: Any) -> None:
        """The sequence moves that waited for a rollback (see :meth:`_behind_error`)."""
        while self._behind:
            _, model = self._behind.popitem()
            # best effort: a table dropped meanwhile, a connection that cannot take a
            # statement now (the next collision asks again); the release goes on regardless
            with contextlib.suppress(Exception):
                await uninterrupted(self._catch_up_identity(conn, model))

    async def _advance_identity(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                                rows: list[dict[str, Any]],
                                encoded: list[tuple[Any, ...]] | None = None) -> None:
        """Explicit ids written into an identity column: move the sequence past them, so
        the next generated id does not collide."""
        pk = model.pk
        if "id" not in columns or not pk.auto_increment or not (rows or encoded):
            return
        if encoded:
            at = columns.index("id")
            top = max(t[at] for t in encoded)
        else:
            top = max(r["id"] for r in rows)
        await self._move_identity(conn, model, top)

    async def _move_identity(self, conn: Any, model: ModelSpec, top: int) -> None:
        """Move the key's sequence to ``top`` unless it is already there or beyond."""
        await self.fetch(
            conn,
            "SELECT setval(s.seq, $2) FROM (SELECT pg_get_serial_sequence($1, 'id') AS seq) s "
            "WHERE s.seq IS NOT NULL AND $2 > COALESCE((SELECT q.last_value FROM pg_sequences q "
            "WHERE format('%I.%I', q.schemaname, q.sequencename) = s.seq), 0)",
            (self.compiler.table(model), top))

    async def upsert_encoded(self, conn: Any, stmt: Upsert,
                             batches: Iterable[list[tuple[Any, ...]]]) -> UpsertOutcome:
        """Every batch into one staging COPY as it is encoded (the server copies one batch
        while the next is encoded; ``batch_size`` bounds the encoding's memory, not the
        statements), then one INSERT ... SELECT ... ON CONFLICT. Fewer rows in all than a
        staging table pays for: :meth:`upsert`'s INSERT ... ON CONFLICT statements."""
        model, stream = stmt.model, iter(batches)
        head: list[list[tuple[Any, ...]]] = []
        total = 0
        for batch in stream:
            head.append(batch)
            total += len(batch)
            if total >= UPSERT_COPY_THRESHOLD:
                break
        if total < UPSERT_COPY_THRESHOLD or not self._copyable(model, stmt.columns):
            rows = [t for batch in itertools.chain(head, stream) for t in batch]
            return await self.upsert(conn, replace(stmt, rows=[], returning=False, encoded=rows))
        tally = _Tally(model, stmt.columns)
        try:
            inserted, affected = await self._upsert_via_copy(
                conn, stmt, itertools.chain.from_iterable(tally.passing(itertools.chain(head, stream))))
        except IntegrityError as exc:  # a generated key may have met a row written around it
            raise self._behind_error(conn, model, stmt.columns, exc) from exc.__cause__
        if tally.top is not None:
            await self._move_identity(conn, model, tally.top)
        return UpsertOutcome([], inserted,
                             affected - inserted if stmt.update else tally.rows - inserted)

    async def upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        try:
            return await self._upsert(conn, stmt)
        except IntegrityError as exc:  # a generated key may have met a row written around it
            raise self._behind_error(conn, stmt.model, stmt.columns, exc) from exc.__cause__

    async def _upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        model, c = stmt.model, self.compiler
        enc = c.row_encoder(model, stmt.columns)
        rows: list[Any] = stmt.rows
        if stmt.encoded is not None:  # already in driver form, in stmt.columns order
            enc, rows = _as_is, stmt.encoded
        total = len(rows)
        if stmt.returning:
            decode = c.row_decoder(model, tuple(model.fields))
            width = len(model.fields)
            out: list[dict[str, Any]] = []
            inserted = 0
            chunk = self.max_rows_per_statement(len(stmt.columns))
            for start in range(0, total, chunk):
                part = stmt.rows[start:start + chunk]
                sql = c.upsert_sql(model, stmt.columns, stmt.conflict, stmt.update, len(part))
                sql += f" RETURNING {c.column_list(model)}, (xmax = 0)"
                params = [v for r in part for v in enc(r)]
                for row in await self.fetch(conn, sql, tuple(params)):
                    inserted += bool(row[width])
                    out.append(decode(tuple(row)[:width]))
            await self._advance_identity(conn, model, stmt.columns, stmt.rows)
            return UpsertOutcome(out, inserted, len(out) - inserted if stmt.update
                                 else total - inserted)
        if total >= UPSERT_COPY_THRESHOLD and self._copyable(model, stmt.columns):
            records = rows if stmt.encoded is not None else [enc(r) for r in rows]
            inserted, affected = await self._upsert_via_copy(conn, stmt, records)
        else:
            inserted = affected = 0
            chunk = self.max_rows_per_statement(len(stmt.columns))
            for start in range(0, total, chunk):
                part = rows[start:start + chunk]
                sql = self._counting(c.upsert_sql(model, stmt.columns, stmt.conflict, stmt.update,
                                                  len(part)))
                rows = await self.fetch(conn, sql, tuple(v for r in part for v in enc(r)))
                inserted += int(rows[0][0])
                affected += int(rows[0][1])
        await self._advance_identity(conn, model, stmt.columns, stmt.rows, stmt.encoded)
        updated = affected - inserted if stmt.update else total - inserted
        return UpsertOutcome([], inserted, updated)

    @staticmethod
    def _counting(upsert_sql: str) -> str:
        """Wrap an upsert so it answers (inserted, affected) in one row: a row version with
        ``xmax = 0`` was inserted; one ON CONFLICT updated carries the locking xid."""
        return (f"WITH df_up AS ({upsert_sql} RETURNING (xmax = 0) AS ins) "
                "SELECT count(*) FILTER (WHERE ins), count(*) FROM df_up")

    async def _upsert_via_copy(self, conn: Any, stmt: Upsert, records: Iterable[tuple[Any, ...]]
                               ) -> tuple[int, int]:
        """COPY the rows into a temporary table, then one INSERT ... SELECT ... ON CONFLICT.

        The table is dropped after; when the write fails inside a transaction, the rollback
        that must follow removes it (a DROP sent into the aborted transaction would fail
        too, and its error would hide the write's)."""
        c, model = self.compiler, stmt.model
        tmp = f"df_upsert_{uuid.uuid4().hex[:16]}"
        cols = c.column_list(model, stmt.columns)
        alone = not conn.is_in_transaction()
        await self.execute(conn, f"CREATE TEMP TABLE {c.quote(tmp)} AS SELECT {cols} "
                                 f"FROM {c.table(model)} WITH NO DATA", ())
        drop = f"DROP TABLE IF EXISTS {c.quote(tmp)}"
        try:
            await self._copy_temp(conn, tmp, stmt.columns, records)
            target = ", ".join(c.quote(n) for n in stmt.conflict)
            if stmt.update:
                sets = ", ".join(f"{c.quote(n)} = excluded.{c.quote(n)}" for n in stmt.update)
                action = f"DO UPDATE SET {sets}"
            else:
                action = "DO NOTHING"
            sql = self._counting(f"INSERT INTO {c.table(model)} ({cols}) SELECT {cols} FROM "
                                 f"{c.quote(tmp)} ON CONFLICT ({target}) {action}")
            row = await self._fetch_once(conn, sql)
        except BaseException:
            if alone and _usable(conn):  # not after the server dropped it (DF-903 propagates)
                await uninterrupted(self.execute(conn, drop, ()))
            raise
        await self.execute(conn, drop, ())
        return int(row[0]), int(row[1])

    @_translating
    async def _copy_temp(self, conn: Any, tmp: str, columns: tuple[str, ...],
                         records: Iterable[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table(tmp, records=records, columns=list(columns))

    @_translating
    async def _fetch_once(self, conn: Any, sql: str) -> Any:
        """A one-off statement: prepared outside the statement cache."""
        prepared = await conn.prepare(sql)
        return await prepared.fetchrow()

    def max_rows_per_statement(self, ncolumns: int) -> int:
        return max(1, min(1000, 32767 // max(1, ncolumns)))

    # --- schema -----------------------------------------------------------------------------
    async def apply_ddl(self, conn: Any, statements: list[str]) -> None:
        """DDL under a transaction-scoped advisory lock, so processes migrating together
        take turns (the DDL is IF NOT EXISTS, so the second one converges)."""
        self._single_insert.clear()  # a rebuilt table may get another identity sequence
        own = not conn.is_in_transaction()
        if own:
            await self.begin(conn)
        try:
            await self.execute(conn, "SELECT pg_advisory_xact_lock($1)", (MIGRATION_LOCK_KEY,))
            for sql in statements:
                await self.execute(conn, sql, ())
        except BaseException:
            if own:
                await self.rollback(conn)
            raise
        if own:
            await self.commit(conn)
        if any(sql.startswith("CREATE EXTENSION") for sql in statements):
            # connections opened before the extension existed lack its type codec
            await self._init_connection(conn)
            pool = self._pools.get(asyncio.get_running_loop())
            if pool is not None:
                await self._expire(pool)

    async def drop_table(self, conn: Any, table: str) -> None:
        self._single_insert.clear()
        await super().drop_table(conn, table)

    async def apply_step(self, conn: Any, step: Step) -> None:
        """Steps without plain SQL: nullability and column type changes."""
        c, model = self.compiler, step.model
        if step.kind != "alter_column" or step.column is None:
            raise UnsupportedError(f"PostgreSQL cannot apply '{step.describe()}'.",
                                   model=model.name)
        f = model.fields[step.column]
        col = f"ALTER TABLE {c.table(model)} ALTER COLUMN {c.quote(f.name)}"
        if "type" in step.reason:
            new = c.column_type(f)
            sql = [f"{col} TYPE {new} USING {c.quote(f.name)}::{new}"]
        elif f.nullable:
            sql = [f"{col} DROP NOT NULL"]
        else:
            sql = [f"{col} SET NOT NULL"]
        await self.apply_ddl(conn, sql)

    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]:
        names = list(tables) if tables is not None else None
        cols = await self.fetch(conn, """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum),
                   a.attidentity::text, t.typname
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
            WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
              AND ($1::text[] IS NULL OR c.relname = ANY($1::text[]))
            ORDER BY c.relname, a.attnum""", (names,))
        out: dict[str, TableInfo] = {}
        for table, name, sql_type, notnull, default, comment, identity, typname in cols:
            info = out.setdefault(table, TableInfo(table))
            ltype = logical_type(sql_type)
            if ltype is LogicalType.STR and comment == ENUM_COMMENT:
                ltype = LogicalType.ENUM
            if identity in ("a", "d"):
                default = f"generated {'always' if identity == 'a' else 'by default'} as identity"
            col = ColumnInfo(name, sql_type, not notnull, False, default, ltype)
            if typname == "vector":
                col.ltype = None  # pgvector: matched by the model's vector declaration
            info.columns[name] = col
        if not out:
            return out
        present = list(out)
        for table, index, unique, primary, columns, predicate, method in await self.fetch(conn, """
            SELECT c.relname, i.relname, x.indisunique, x.indisprimary,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(num, ord)
                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.num
                         ORDER BY k.ord),
                   pg_get_expr(x.indpred, x.indrelid), am.amname
            FROM pg_index x
            JOIN pg_class c ON c.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_am am ON am.oid = i.relam
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relname = ANY($1::text[])
            ORDER BY c.relname, i.relname""", (present,)):
            info = out[table]
            if primary:
                for col_name in columns:
                    if col_name in info.columns:
                        info.columns[col_name].primary_key = True
                        info.columns[col_name].nullable = False
            info.indexes.append({"name": index, "unique": bool(unique), "primary": bool(primary),
                                 "columns": list(columns), "where": predicate, "method": method})
        for table, name, columns, ref_table, ref_columns, on_delete in await self.fetch(conn, """
            SELECT c.relname, k.conname,
                   ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(num, ord)
                         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num
                         ORDER BY u.ord),
                   r.relname,
                   ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
                         JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num
                         ORDER BY u.ord),
                   k.confdeltype::text
            FROM pg_constraint k
            JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_class r ON r.oid = k.confrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE k.contype = 'f' AND n.nspname = current_schema() AND c.relname = ANY($1::text[])
            ORDER BY c.relname, k.conname""", (present,)):
            actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
                       "d": "SET DEFAULT"}
            out[table].foreign_keys.append({
                "name": name, "columns": list(columns), "table": ref_table,
                "references": list(ref_columns), "on_delete": actions.get(on_delete, on_delete),
                # single-column shape, as other adapters report it
                "column": columns[0] if len(columns) == 1 else None,
            })
        return out


def dsn_from_env(default: str = "postgresql://postgres@127.0.0.1:5432/test") -> str:
    return os.environ.get("DATAFLOW_POSTGRES_URL", default)
