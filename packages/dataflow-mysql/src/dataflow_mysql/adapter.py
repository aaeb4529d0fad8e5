"""The MySQL / MariaDB adapter on aiomysql.

* One aiomysql pool per event loop (DataFlow runs on the caller's loop and on the sync
  API's background loop); its size comes from the server's ``max_connections``
  through the ``dataflow_pool_size`` hook, unless ``pool_size=`` or
  ``DATAFLOW_POOL_SIZE`` says otherwise.
* Sessions are pinned: ``autocommit=1``, ``time_zone='+00:00'``, a strict
  ``sql_mode`` without ``NO_BACKSLASH_ESCAPES`` or ``ANSI_QUOTES``, and the
  ``CLIENT_FOUND_ROWS`` flag (UPDATE reports rows matched, not rows changed).
* No RETURNING: a create or update that must return the stored row sends the write
  and a ``SELECT`` by key as one multi-statement round trip, inside a transaction.
* Bulk inserts and upserts are multi-row statements cut to ``max_allowed_packet``;
  upsert counts come from the server's ``Records: N  Duplicates: D`` info line
  (exact with ``CLIENT_FOUND_ROWS``), never from the 1-or-2 affected-rows convention.
* A connection the server killed is dropped by the pool; a read that meets one is
  retried once on a fresh connection; a write reports ``ConnectionLostError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import functools
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from decimal import Decimal
from typing import Any

import aiomysql
import pymysql  # type: ignore[import-untyped]
from pymysql.constants import CLIENT  # type: ignore[import-untyped]
from pymysql.converters import escape_float, escape_item  # type: ignore[import-untyped]

from dataflow import plugins
from dataflow.adapter import ColumnInfo, DatabaseURL, SQLAdapter, TableInfo, UpsertOutcome, translating
from dataflow.errors import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseError,
    FilterError,
    IntegrityError,
    TransactionConflictError,
    UnsupportedError,
    ValidationError,
)
from dataflow.loops import PerLoop, close_per_loop
from dataflow.migrations import Step
from dataflow.model import FieldSpec, LogicalType, ModelSpec
from dataflow.pool import ServerInfo, configured_pool_size, worker_count
from dataflow.query.ast import (
    FALSE,
    And,
    Comparison,
    Delete,
    Expr,
    InList,
    Insert,
    Or,
    Select,
    Update,
    Upsert,
)
from dataflow.sql.compiler import SQLCompiler, renders_as_base
from dataflow.values import json_text, register_json_text

from .capabilities import MySQLCapabilities
from .dialect import COMMENT_PREFIX, MySQLCompiler, _decimal_in

#: errors meaning the connection is gone (client 2006/2013/2055, server kill/shutdown/timeout)
LOST_CODES = frozenset({2003, 2006, 2013, 2055, 1053, 1927, 4031})
#: ER_LOCK_DEADLOCK: the transaction was chosen as a deadlock victim and rolled back
DEADLOCK = 1213
#: ER_NET_PACKET_TOO_LARGE: a statement over max_allowed_packet; the server then closes the
#: connection, yet the client reads the error cleanly and would reuse the dead socket
PACKET_TOO_LARGE = 1153
#: ER_REGEXP_ERROR: REGEXP gave up (PCRE's match or recursion limit) and answered "no match"
#: with only a warning -- a wrong answer, not an error, unless the adapter looks
REGEXP_ERROR = 1139
#: DDL errors meaning another process already did it: duplicate column, no such column
CONVERGED_CODES = frozenset({1060, 1091})
SQL_MODE = ("STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
            "NO_ENGINE_SUBSTITUTION")
INIT_COMMAND = f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}', sql_notes = 0"
#: adapter methods that only read, retried once when they meet a dead connection
READ_ONLY = frozenset({"select", "count", "read_by_id", "introspect", "rows_by_ids"})
_INFO = re.compile(rb"Records:\s*(\d+)\s+Duplicates:\s*(\d+)")
_MYSQL_TYPES = {
    "tinyint": LogicalType.INT, "smallint": LogicalType.INT, "mediumint": LogicalType.INT,
    "int": LogicalType.INT, "integer": LogicalType.INT, "bigint": LogicalType.INT,
    "double": LogicalType.FLOAT, "float": LogicalType.FLOAT, "real": LogicalType.FLOAT,
    "decimal": LogicalType.DECIMAL, "numeric": LogicalType.DECIMAL,
    "datetime": LogicalType.DATETIME, "timestamp": LogicalType.DATETIME,
    "date": LogicalType.DATE, "json": LogicalType.JSON,
    "char": LogicalType.STR, "varchar": LogicalType.STR, "tinytext": LogicalType.STR,
    "text": LogicalType.STR, "mediumtext": LogicalType.STR, "longtext": LogicalType.STR,
    "enum": LogicalType.STR, "set": LogicalType.STR,
}


# --- literals for multi-row statements (the driver's own escaping, without its dispatch) --
_ESCAPES = pymysql.converters._escape_table  # the driver's own escaping table


def _lit_str(v: str) -> str:
    return "'" + v.translate(_ESCAPES) + "'"  # = "'" + escape_string(v) + "'"


def _lit_datetime(v: _dt.datetime) -> str:
    return f"'{v.year:04}-{v.month:02}-{v.day:02} {v.hour:02}:{v.minute:02}:{v.second:02}.{v.microsecond:06}'"


_LITERALS: dict[type, Callable[[Any], str]] = {
    str: _lit_str,
    int: int.__repr__,
    bool: lambda v: "1" if v else "0",
    type(None): lambda v: "NULL",
    _dt.datetime: _lit_datetime,
    Decimal: lambda v: format(v, "f"),
}


def literal(value: Any) -> str:
    """A SQL literal for ``value``, as the driver would write it for ``%s``."""
    fn = _LITERALS.get(type(value))
    if fn is not None:
        return fn(value)
    text: str = escape_item(value, "utf8mb4")
    return text


def _json_literal(v: Any) -> str:
    return _lit_str(json_text(v))


# the bulk fast path checks and serialises a JSON value once, then quotes the text
register_json_text(_json_literal, _lit_str)


def _lit_float(v: float) -> str:
    # + 0.0: -0.0 becomes 0.0 (one key, as the server compares them); the driver's own text
    return escape_float(v + 0.0)  # type: ignore[no-any-return]


def _lit_bool(v: bool) -> str:
    return "1" if v else "0"


def _lit_date(v: _dt.date) -> str:
    return "'" + v.isoformat() + "'"  # dates of years 1..9999: always YYYY-MM-DD


def _lit_utc_datetime(v: _dt.datetime) -> str:
    off = v.utcoffset()
    if off:  # not UTC (naive or UTC: the wall-clock fields are UTC)
        v = v.astimezone(_dt.UTC)
    return _lit_datetime(v)


def _lit_uuid(v: uuid.UUID) -> str:
    return f"'{v}'"


def _literal_encoder(compiler: SQLCompiler, model: ModelSpec, f: FieldSpec) -> Callable[[Any], str]:
    """Canonical Python value -> the SQL literal a multi-row INSERT carries (what
    :func:`literal` writes for the driver value of ``compiler.encode``). Equal values give
    equal text (the bulk upsert's repeated-key check compares the encoded keys)."""
    lt = f.ltype
    if type(compiler).encoder is MySQLCompiler.encoder:  # the dialect's own encodings
        if lt is LogicalType.STR:
            return _lit_str
        if lt is LogicalType.INT:
            return int.__repr__  # the checker gives an exact int
        if lt is LogicalType.FLOAT:
            return _lit_float
        if lt is LogicalType.BOOL:
            return _lit_bool
        if lt is LogicalType.DATETIME:
            return _lit_utc_datetime
        if lt is LogicalType.DATE:
            return _lit_date
        if lt is LogicalType.UUID:
            return _lit_uuid
        if lt is LogicalType.DECIMAL:
            name, model_name = f.name, model.name

            def lit_decimal(v: Decimal) -> str:
                try:
                    _decimal_in(v)
                except ValidationError as exc:  # named, as a per-row error is
                    raise ValidationError(exc.message, model=model_name, field=name,
                                          fix=exc.fix) from None
                text = format(v, "f")
                if "." in text:  # shortest exact text: 1.50 and 1.5 are one key
                    text = text.rstrip("0").rstrip(".")
                return "0" if text == "-0" else text

            return lit_decimal
        if lt is LogicalType.JSON and f.pydantic_cls is None:
            return _json_literal
        if lt is LogicalType.ENUM and f.enum_cls is not None:  # one text per member
            return {m: literal(m.value) for m in f.enum_cls}.__getitem__
    enc = compiler.encoder(f)
    if enc is None:
        return literal
    return lambda v: literal(enc(v))


# --- errors ------------------------------------------------------------------------------
_CONSTRAINT_IN_MESSAGE = re.compile(r"CONSTRAINT `([^`]+)`|for key '(?:[^'.]+\.)?([^']+)'")


def _code(exc: BaseException | None) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _is_lost(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionLostError):
        return True
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and _code(exc) in LOST_CODES


def translate(exc: BaseException) -> BaseException:
    """A driver exception as the DataFlow error it means (or ``exc`` itself)."""
    if _code(exc) == PACKET_TOO_LARGE:
        return DatabaseError(
            "the statement is larger than the server's max_allowed_packet, so the server "
            "refused it and closed the connection (dropped from the pool); nothing was written.",
            fix="store values smaller than max_allowed_packet (SELECT @@max_allowed_packet), or "
            "raise it on the server (SET GLOBAL max_allowed_packet = ...).")
    if _code(exc) == REGEXP_ERROR:  # a write's WHERE: strict mode makes the warning an error
        return _regexp_gave_up(exc.args[1] if len(exc.args) > 1 else exc)
    if _is_lost(exc) or isinstance(exc, (ConnectionError, OSError)):
        return ConnectionLostError(f"the MySQL connection was lost: {exc}.",
                                   fix="retry; the pool has dropped the dead connection.")
    if isinstance(exc, pymysql.err.IntegrityError):
        # 1451/1452 (foreign keys) name the constraint as CONSTRAINT `x`, 1062 as key 'x'
        named = _CONSTRAINT_IN_MESSAGE.search(str(exc))
        return IntegrityError(f"the database refused the write: {exc}.",
                              fix="check unique keys, required fields and foreign keys.",
                              constraint=next((g for g in named.groups() if g), None)
                              if named else None)
    if isinstance(exc, pymysql.err.OperationalError) and _code(exc) == DEADLOCK:
        # InnoDB rolled the whole transaction back to break the deadlock
        return TransactionConflictError(
            f"MySQL aborted the transaction to break a deadlock: {exc}.",
            fix="run the transaction again (it was rolled back entirely).")
    if isinstance(exc, pymysql.err.Error):
        return DatabaseError(f"MySQL error: {exc}.")
    return exc


def _discard(conn: Any) -> None:
    """Close a connection the server has dropped, so the pool never hands it out again
    (aiomysql's pool keeps a released connection unless it is closed)."""
    conn.close()


_translate_errors = translating((pymysql.err.Error, ConnectionError, OSError), translate, _discard)


def _translating(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Driver errors as DataFlow errors; a connection the server closed after an error
    (a lost connection, or a statement over ``max_allowed_packet``) is discarded."""
    translated = _translate_errors(fn)

    @functools.wraps(fn)
    async def wrapper(self: Any, conn: Any, *args: Any) -> Any:
        try:
            return await translated(self, conn, *args)
        except DatabaseError as exc:
            if _code(exc.__cause__) == PACKET_TOO_LARGE:
                _discard(conn)
            raise

    return wrapper


async def _refuse_regexp_give_up(conn: Any, sql: str) -> None:
    """After a statement with warnings: if it holds a REGEXP and the server gave up on it
    (1139, PCRE's match limit), its answer is wrong -- raise instead of returning it."""
    if "REGEXP" not in sql:
        return
    async with conn.cursor() as cur:
        await cur.execute("SHOW WARNINGS")
        warnings = await cur.fetchall()
    for _level, code, message in warnings:
        if int(code) == REGEXP_ERROR:
            raise _regexp_gave_up(message)


def _regexp_gave_up(message: Any) -> FilterError:
    return FilterError(
        f"the server's regular expression engine gave up on the $regex pattern ({message}); "
        "its answer would be wrong, so none is given and nothing was written.",
        fix="simplify the pattern: avoid nested or overlapping repetition such as (a|aa)+ "
        "or (a+)+.")


def _warned(conn: Any) -> bool:
    result = conn._result
    return result is not None and bool(result.warning_count)


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    """Sessions run in strict mode, where data problems are errors; the remaining notes
    (e.g. MySQL 8's deprecation of ``VALUES()``) would each cost a ``SHOW WARNINGS``."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


class _Collect:
    """Counts of one multi-row write."""

    __slots__ = ("collisions", "duplicates", "records")

    def __init__(self) -> None:
        self.records = 0
        self.duplicates = 0
        self.collisions = 0


class MySQLAdapter(SQLAdapter):
    capabilities = MySQLCapabilities
    # bulk writes take rows validated and encoded straight into SQL literal text (see
    # value_encoders): a multi-row INSERT is then joined, with no per-value dispatch left
    accepts_encoded_rows = True

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        compiler = plugins.dialect_compiler("mysql")
        self.compiler = compiler if compiler is not None else MySQLCompiler()
        q = url.query
        self.connect_kwargs: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": url.password or "",
            "db": url.database,
            "charset": "utf8mb4",
            "autocommit": True,
            "client_flag": CLIENT.FOUND_ROWS | CLIENT.MULTI_STATEMENTS,
            "init_command": INIT_COMMAND,
            "cursorclass": _QuietCursor,
            "connect_timeout": float(q.get("connect_timeout", options.get("connect_timeout", 10))),
        }
        if "unix_socket" in q:
            self.connect_kwargs["unix_socket"] = q["unix_socket"]
        if not url.database:
            raise ConfigurationError("a MySQL URL must name a database: mysql://user@host/db.")
        self.pool_recycle = int(q.get("pool_recycle", options.get("pool_recycle", -1)))
        #: bytes (as characters x 4) per multi-row statement; set from max_allowed_packet
        self.statement_chars = int(options.get("statement_chars", 1 << 20))
        self._literal_encoders: dict[tuple[str, str], tuple[FieldSpec, Any, Any]] = {}
        #: SELECT each created row back instead of deriving it (tables with triggers)
        self.read_back = bool(options.get("read_back", False))
        self.migration_lock_timeout = int(options.get("migration_lock_timeout", 60))
        self.server: ServerInfo | None = None
        self.server_version = ""
        self.max_allowed_packet = 4 << 20
        self.max_pool_size = 0
        self._pools: dict[asyncio.AbstractEventLoop, aiomysql.Pool] = {}
        self._loop_pools: PerLoop[aiomysql.Pool] = PerLoop(self._new_pool, self._pools)
        #: per event loop, at most one pooled connection parked after a statement that ended
        #: cleanly (see :meth:`_park`)
        self._hot: dict[asyncio.AbstractEventLoop, Any] = {}
        self._sql_cache: dict[tuple[Any, ...], str] = {}
        self._insert_plans: dict[tuple[int, tuple[str, ...]], tuple[Any, ...]] = {}

    # --- connections ------------------------------------------------------------------------
    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()

    async def _probe(self) -> None:
        """Read the server's limits once: pool size, packet size, collation to use."""
        try:
            conn = await aiomysql.connect(**self.connect_kwargs)
        except (pymysql.err.Error, OSError) as exc:
            raise ConnectionLostError(
                f"cannot connect to MySQL at {self.url.redacted()}: {exc}.",
                fix="check that the server runs and the URL's user, password and database.",
            ) from exc
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT VERSION(), @@max_connections, @@max_allowed_packet")
                version, max_conn, packet = (await cur.fetchall())[0]
                await cur.execute("SHOW STATUS LIKE 'Threads_connected'")
                rows = await cur.fetchall()
        finally:
            conn.close()
        self.server_version = str(version)
        self.max_allowed_packet = int(packet)
        current = int(rows[0][1]) if rows else 0
        self.server = ServerInfo(max_connections=int(max_conn), current_connections=current)
        size = configured_pool_size(self.pool_size)
        if size is None:
            size = plugins.pool_size("mysql", self.server, worker_count())
        self.max_pool_size = max(1, int(size))
        # statements stay under max_allowed_packet even if every character takes 4 bytes
        self.statement_chars = max(1024, min(self.statement_chars, (self.max_allowed_packet - 4096) // 4))
        if isinstance(self.compiler, MySQLCompiler):
            self.compiler.str_collation = self.text_collation()  # type: ignore[misc]

    def text_collation(self) -> str:
        """The binary, no-pad utf8mb4 collation of this server."""
        if self.is_mariadb:
            return "utf8mb4_nopad_bin"
        major = int(re.match(r"(\d+)", self.server_version).group(1))  # type: ignore[union-attr]
        return "utf8mb4_0900_bin" if major >= 8 else "utf8mb4_bin"

    async def _pool(self) -> aiomysql.Pool:
        return self._pools.get(asyncio.get_running_loop()) or await self._loop_pools.get()

    async def _new_pool(self) -> aiomysql.Pool:
        self._forget_dead_loops()
        if self.server is None:
            await self._probe()
        try:
            return await aiomysql.create_pool(minsize=1, maxsize=self.max_pool_size,
                                              pool_recycle=self.pool_recycle, **self.connect_kwargs)
        except (pymysql.err.Error, OSError) as exc:
            raise ConnectionLostError(f"cannot connect to MySQL at {self.url.redacted()}: {exc}.",
                                      fix="check the server and the URL.") from exc

    def _forget_dead_loops(self) -> None:
        """Close the sockets of pools whose event loop has been closed."""
        for owner in [lp for lp in self._pools if lp.is_closed()]:
            self._hot.pop(owner, None)
            _abandon(self._pools.pop(owner))

    # --- the parked connection --------------------------------------------------------------
    # aiomysql's Pool.acquire takes a condition lock and scans the free list; its release
    # starts a task to wake waiters: a lone caller issuing one statement after another pays
    # both on every statement. So a connection whose statement ended cleanly (outside a
    # transaction) stays checked out, parked for the next statement on its loop, which
    # takes it without a pool round; concurrent callers find the slot empty and use the pool.
    # A cancelled or failed statement's connection never parks (a cancelled one is closed).

    def _park(self, loop: asyncio.AbstractEventLoop, pool: aiomysql.Pool, conn: Any) -> bool:
        cond: Any = pool._cond  # type: ignore[union-attr]
        if (loop in self._hot or self._pools.get(loop) is not pool or conn.closed
                or conn.get_transaction_status()
                # a caller is inside the pool's acquire (waiting for a connection): it gets this
                or cond.locked() or cond._waiters):
            return False
        self._hot[loop] = conn
        return True

    def _take_hot(self, loop: asyncio.AbstractEventLoop, pool: aiomysql.Pool) -> Any:
        """``loop``'s parked connection, or None; one the server closed meanwhile (or due
        for ``pool_recycle``) is closed and handed back to the pool, which replaces it."""
        conn = self._hot.pop(loop, None)
        if conn is None:
            return None
        reader = conn._reader
        if (conn.closed or reader is None or reader.at_eof() or reader.exception()
                or getattr(reader, "eof_received", False)
                or (self.pool_recycle > -1 and loop.time() - conn.last_usage > self.pool_recycle)):
            conn.close()
            pool.release(conn)
            return None
        return conn

    def _unpark(self, loop: asyncio.AbstractEventLoop, pool: aiomysql.Pool) -> None:
        conn = self._hot.pop(loop, None)
        if conn is not None:
            pool.release(conn)

    async def acquire(self) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop) or await self._pool()
        conn = self._take_hot(loop, pool)
        if conn is not None:
            return conn
        try:
            return await pool.acquire()
        except (pymysql.err.Error, OSError) as exc:
            raise translate(exc) from exc

    async def release(self, conn: Any) -> None:
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is not None:
            pool.release(conn)
        else:
            conn.close()

    async def run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop) or await self._pool()
        retry = getattr(fn, "__self__", None) is self and getattr(fn, "__name__", "") in READ_ONLY
        while True:
            conn = self._take_hot(loop, pool)
            if conn is None:
                try:
                    conn = await pool.acquire()
                except (pymysql.err.Error, OSError) as exc:
                    raise translate(exc) from exc
            try:
                result = await fn(conn, *args)
            except ConnectionLostError:
                pool.release(conn)
                if not retry:
                    raise
                retry = False  # a read is safe to repeat, once, on a fresh connection
                continue
            except asyncio.CancelledError:
                try:
                    await self.interrupted(conn)
                finally:
                    pool.release(conn)
                raise
            except BaseException:
                pool.release(conn)
                raise
            if not self._park(loop, pool, conn):
                pool.release(conn)
            return result

    async def close(self) -> None:
        await close_per_loop(self._pools, self._close_pool, self._abandon_pool)

    async def _close_pool(self, pool: aiomysql.Pool) -> None:
        """On the pool's own loop: wait_closed waits for every checked-out connection."""
        self._unpark(asyncio.get_running_loop(), pool)
        await _close_pool(pool)

    def _abandon_pool(self, pool: aiomysql.Pool) -> None:
        for owner in [lp for lp in self._hot if lp.is_closed() or not lp.is_running()]:
            self._hot.pop(owner, None)
        _abandon(pool)

    def pool_stats(self) -> dict[str, Any]:
        pools = list(self._pools.items())
        size = sum(p.size for _, p in pools)
        idle = sum(p.freesize + (owner in self._hot) for owner, p in pools)  # parked: idle
        active = size - idle
        per_loop = self.max_pool_size or (configured_pool_size(self.pool_size) or 0)
        limit = per_loop * max(1, len(self._pools))
        return {
            "active": active,
            "idle": idle,
            "max": limit,
            "utilization": active / limit if limit else 0.0,
            "pools": len(self._pools),
            "server_max_connections": self.server.max_connections if self.server else None,
        }

    # --- driver primitives --------------------------------------------------------------------
    @_translating
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with conn.cursor() as cur:
            await cur.execute(sql, params or None)
            rows = list(await cur.fetchall())
        if _warned(conn):
            await _refuse_regexp_give_up(conn, sql)
        return rows

    @_translating
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        async with conn.cursor() as cur:
            await cur.execute(sql, params or None)
            count = int(cur.rowcount)
        if _warned(conn):  # an UPDATE/DELETE by a $regex filter: its caller rolls back
            await _refuse_regexp_give_up(conn, sql)
        return count

    @_translating
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
        total = 0
        async with conn.cursor() as cur:
            for params in rows:
                await cur.execute(sql, params)
                total += int(cur.rowcount)
        return total

    @_translating
    async def script(self, conn: Any, sql: str, params: tuple[Any, ...]
                     ) -> list[tuple[int, list[Any]]]:
        """Run several ``;``-separated statements in one round trip: (rowcount, rows) each."""
        out: list[tuple[int, list[Any]]] = []
        async with conn.cursor() as cur:
            await cur.execute(sql, params or None)
            out.append((int(cur.rowcount), list(await cur.fetchall() or ())))
            while await cur.nextset():
                out.append((int(cur.rowcount), list(await cur.fetchall() or ())))
        result: list[tuple[int, list[Any]]] = out
        return result

    @_translating
    async def _send(self, conn: Any, sql: str) -> tuple[int, bytes]:
        """A statement with literals already inlined: (affected rows, server info line)."""
        async with conn.cursor() as cur:
            await cur.execute(sql)
            result = conn._result
            return int(cur.rowcount), (result.message or b"") if result is not None else b""

    async def begin(self, conn: Any) -> None:
        await self.execute(conn, "START TRANSACTION", ())

    async def commit(self, conn: Any) -> None:
        await self.execute(conn, "COMMIT", ())

    async def rollback(self, conn: Any) -> None:
        try:
            await self.execute(conn, "ROLLBACK", ())
        except ConnectionLostError:
            conn.close()  # the server rolls back a dead session's transaction itself

    async def interrupted(self, conn: Any) -> bool:
        """A cancelled statement may have left its answer unread on the socket: the
        connection cannot be trusted with another one. Closed; the server rolls back the
        session's transaction and the pool drops it."""
        conn.close()
        return False

    @staticmethod
    def in_transaction(conn: Any) -> bool:
        return bool(conn.get_transaction_status())

    # --- reads --------------------------------------------------------------------------------
    async def stream(self, stmt: Select, batch_size: int, *, conn: Any = None,
                     lock: Any = None) -> AsyncIterator[list[dict[str, Any]]]:
        """An unbuffered cursor (``SSCursor``) on a connection of its own: rows are read off
        the socket as they are consumed. A stream left early closes that connection rather
        than read the rest of the answer. In the caller's transaction (one connection, whose
        other statements may run between batches) ordered pages are read instead."""
        if conn is not None:
            async for batch in super().stream(stmt, batch_size, conn=conn, lock=lock):
                yield batch
            return
        if stmt.where is FALSE:
            return
        compiled = self.compiler.compile(stmt)
        decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
        conn = await self.acquire()
        finished = False
        try:
            cursor = await conn.cursor(aiomysql.SSCursor)
            try:
                await cursor.execute(compiled.sql, compiled.params or None)
                while True:
                    rows = await cursor.fetchmany(batch_size)
                    if rows:
                        yield [decode(r) for r in rows]
                    if len(rows) < batch_size:  # the answer's end was read
                        finished = True
                        break
            except (pymysql.err.Error, OSError) as exc:
                raise translate(exc) from exc
            finally:
                if finished:
                    await cursor.close()
        finally:
            if not finished:
                await self.interrupted(conn)  # unread rows on the socket: not reusable
            await self.release(conn)

    def _select_by_id_sql(self, model: ModelSpec, key_sql: str = "%s") -> str:
        ck = ("by_id", id(model), model, key_sql)
        sql = self._sql_cache.get(ck)
        if sql is None:
            c = self.compiler
            sql = f"SELECT {c.column_list(model)} FROM {c.table(model)} WHERE {c.quote('id')} = {key_sql}"
            self._sql_cache[ck] = sql
        return sql

    async def read_by_id(self, conn: Any, model: ModelSpec, key: Any) -> dict[str, Any] | None:
        rows = await self.fetch(conn, self._select_by_id_sql(model), (self.compiler.encode(model.pk, key),))
        if not rows:
            return None
        return self.compiler.row_decoder(model, tuple(model.fields))(rows[0])

    # --- writes -------------------------------------------------------------------------------
    async def _wrapped(self, conn: Any, statements: list[str], params: tuple[Any, ...]
                       ) -> list[tuple[int, list[Any]]]:
        """``statements`` in one round trip, inside a transaction (opened here if none is)."""
        own = not self.in_transaction(conn)
        if own:
            statements = ["START TRANSACTION", *statements, "COMMIT"]
        try:
            results: list[tuple[int, list[Any]]] = await self.script(conn, "; ".join(statements), params)
        except asyncio.CancelledError:
            await self.interrupted(conn)
            raise
        except BaseException:
            if own:
                await self.rollback(conn)
            raise
        return results[1:-1] if own else results

    def value_encoders(self, model: ModelSpec, columns: tuple[str, ...]) -> list[Any]:
        """Per column: canonical value -> its SQL literal text (None stays None: NULL).
        Built once per field, so the bulk path's compiled row encoder is reused."""
        out: list[Any] = []
        cache = self._literal_encoders
        for c in columns:
            f = model.fields[c]
            hit = cache.get((model.table, c))
            if hit is None or hit[0] is not f or hit[1] is not self.compiler:
                hit = cache[(model.table, c)] = (f, self.compiler,
                                                 _literal_encoder(self.compiler, model, f))
            out.append(hit[2])
        return out

    async def insert_encoded(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                             batches: Iterable[list[tuple[Any, ...]]]) -> int:
        """Every batch of literal rows into multi-row INSERTs cut to the packet size (a
        statement spans batches: ``batch_size`` bounds the encoding's memory, not the
        statement count)."""
        counts = await self._write_encoded(conn, model, columns, batches, None)
        return counts.records

    async def insert(self, conn: Any, stmt: Insert) -> list[dict[str, Any]]:
        if stmt.encoded is not None:  # rows of SQL literals from value_encoders
            await self._write_encoded(conn, stmt.model, stmt.columns, (stmt.encoded,), None)
            return []
        if not stmt.rows:
            return []
        if not stmt.returning:
            await self._write_rows(conn, stmt.model, stmt.columns, stmt.rows, None)
            return []
        return [await self._insert_one(conn, stmt.model, stmt.columns, row) for row in stmt.rows]

    async def _insert_one(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                          row: dict[str, Any]) -> dict[str, Any]:
        """INSERT one row and return it as stored.

        The only value the server generates is the AUTO_INCREMENT id: DataFlow computes
        defaults and timestamps itself, and strict mode refuses any value a column cannot
        hold exactly. So the stored row is the written row, decoded as a read decodes it,
        plus ``LAST_INSERT_ID()`` -- no second statement. When a column is left to a server
        default, or with ``read_back=True`` (tables with triggers), the row is SELECTed by
        id in the same round trip and transaction instead.
        """
        c = self.compiler
        plan = self._insert_plans.get((id(model), columns))
        if plan is None or plan[0] is not model or plan[1] is not c:
            plan = self._insert_plan(model, columns)
        encode, sql, at = plan[2], plan[3], plan[5]
        decode: Callable[[Any], dict[str, Any]] = plan[4]
        params = encode(row)
        if at is not None:  # the stored row is the written row plus the generated id
            new_id = await self._insert_id(conn, sql, params)
            return decode(tuple([params[i] if i >= 0 else new_id if i == -1 else None
                                 for i in at]))
        # asked to read back, or a column is left to a server default (discovered tables)
        if "id" in columns:
            select = self._select_by_id_sql(model)
            params += (c.encode(model.pk, row["id"]),)
        else:
            select = self._select_by_id_sql(model, "LAST_INSERT_ID()")
        results = await self._wrapped(conn, [sql, select], params)
        return decode(results[1][1][0])

    def _insert_plan(self, model: ModelSpec, columns: tuple[str, ...]) -> tuple[Any, ...]:
        """What a one-row insert of ``columns`` needs, looked up once per model and column
        list: (model, compiler, row encoder, INSERT text, row decoder, where each field of the
        stored row comes from -- an index into the parameters, -1 for the generated id, -2
        for NULL -- or None when the row is read back instead)."""
        c = self.compiler
        fields = tuple(model.fields)
        at: tuple[int, ...] | None = None
        if not (self.read_back or len(columns) + ("id" not in columns) < len(fields)):
            at = tuple(columns.index(n) if n in columns else -1 if n == "id" else -2
                       for n in fields)
        plan = (model, c, c.row_encoder(model, columns), c.insert_sql(model, columns, 1),
                c.row_decoder(model, fields), at)
        if len(self._insert_plans) >= 4096:  # column lists are few; bound them anyway
            self._insert_plans.clear()
        self._insert_plans[(id(model), columns)] = plan
        return plan

    @_translating
    async def _insert_id(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        async with conn.cursor() as cur:
            await cur.execute(sql, params)
            return int(cur.lastrowid)

    def _head(self, model: ModelSpec, columns: tuple[str, ...]) -> str:
        c = self.compiler
        return f"INSERT INTO {c.table(model)} ({c.column_list(model, columns)}) VALUES "

    async def _write_rows(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                          rows: Iterable[dict[str, Any]], tail: str | None,
                          conflict: tuple[str, ...] | None = None) -> _Collect:
        """Multi-row INSERT (``tail``: ON DUPLICATE KEY ...), cut to the packet size."""
        head = self._head(model, columns)
        tail = tail or ""
        limit = self.statement_chars - len(head) - len(tail)
        enc = self.compiler.row_encoder(model, columns)
        counts = _Collect()
        parts: list[str] = []
        last: dict[str, Any] = {}
        size = 0
        lit = literal
        for row in rows:
            text = "(" + ",".join([lit(v) for v in enc(row)]) + ")"
            if parts and size + len(text) > limit:
                await self._flush(conn, model, head, parts, tail, last, conflict, counts)
                parts, size = [], 0
            parts.append(text)
            last = row
            size += len(text) + 1
        if parts:
            await self._flush(conn, model, head, parts, tail, last, conflict, counts)
        return counts

    async def _write_encoded(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                             batches: Iterable[list[tuple[Any, ...]]], tail: str | None,
                             conflict: tuple[str, ...] | None = None) -> _Collect:
        """:meth:`_write_rows` for rows already encoded as SQL literal text."""
        head = self._head(model, columns)
        tail = tail or ""
        limit = self.statement_chars - len(head) - len(tail)
        counts = _Collect()
        parts: list[str] = []
        last: tuple[Any, ...] = ()
        size = 0
        for batch in batches:
            for t in batch:
                if None in t:
                    text = "(" + ",".join(["NULL" if x is None else x for x in t]) + ")"
                else:
                    text = "(" + ",".join(t) + ")"
                if parts and size + len(text) > limit:
                    await self._flush(conn, model, head, parts, tail, last, conflict, counts,
                                      columns)
                    parts, size = [], 0
                parts.append(text)
                last = t
                size += len(text) + 1
        if parts:
            await self._flush(conn, model, head, parts, tail, last, conflict, counts, columns)
        return counts

    async def _flush(self, conn: Any, model: ModelSpec, head: str, parts: list[str], tail: str,
                     last: Any, conflict: tuple[str, ...] | None, counts: _Collect,
                     encoded_columns: tuple[str, ...] | None = None) -> None:
        existed = 0

        async def present(lock: bool) -> int:
            assert conflict is not None
            if encoded_columns is None:
                return len(await self._existing(conn, model, conflict, [last], lock=lock))
            return len(await self._existing_encoded(conn, model, conflict, encoded_columns,
                                                    [last], lock=lock))

        if conflict is not None and len(parts) == 1:
            # a one-row statement gets no info line, and CLIENT_FOUND_ROWS reports 1 for both
            # an insert and an unchanged update: look first. Without a lock: a locking read
            # of a missing key takes a gap lock, and two callers upserting new keys in one
            # gap then deadlock on their inserts (MariaDB 1213 under concurrent upserts)
            existed = await present(False)
        affected, info = await self._send(conn, head + ",".join(parts) + tail)
        m = _INFO.search(info)
        if m is not None:
            counts.records += int(m.group(1))
            counts.duplicates += int(m.group(2))
        elif len(parts) == 1:
            counts.records += 1
            if conflict is not None and not existed and affected != 1:
                # it updated a row that was not there when we looked: one committed under
                # our conflict key since (a locking read sees it: a duplicate), or a row
                # of another unique key (a collision)
                if await present(True):
                    existed = 1
                else:
                    counts.collisions += 1
            counts.duplicates += existed
        else:  # pragma: no cover - every multi-row INSERT reports Records/Duplicates
            raise DatabaseError(f"MySQL did not report the row counts of a multi-row write ({info!r}).")

    async def upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        """Exact inserted / updated counts from the server's ``Duplicates`` count.

        ``ON DUPLICATE KEY`` fires on *any* unique key; when the model has unique keys
        besides the conflict target, the rows already present are locked and counted
        first, and a row that collided on another key is refused (IntegrityError), as
        ``ON CONFLICT (target)`` would refuse it.
        """
        if stmt.encoded is not None:
            return await self._upsert_encoded(conn, stmt, stmt.encoded)
        if not stmt.rows:
            return UpsertOutcome([], 0, 0)
        model = stmt.model
        c = self.compiler
        assert isinstance(c, MySQLCompiler)
        other_keys = [k for k in model.unique_keys() if set(k) != set(stmt.conflict)]
        expected: int | None = None
        if other_keys and len(stmt.rows) > 1:
            expected = len(await self._existing(conn, model, stmt.conflict, stmt.rows))
        counts = await self._write_rows(conn, model, stmt.columns, stmt.rows,
                                        c.on_duplicate(stmt.conflict, stmt.update), stmt.conflict)
        duplicates = self._checked_duplicates(model, stmt.conflict, counts, expected)
        outcome = UpsertOutcome([], len(stmt.rows) - duplicates, duplicates)
        if stmt.returning:
            found = await self._rows_by_keys(conn, model, stmt.conflict, stmt.rows)
            outcome.rows = [found[tuple(r[k] for k in stmt.conflict)] for r in stmt.rows]
        return outcome

    @staticmethod
    def _checked_duplicates(model: ModelSpec, conflict: tuple[str, ...], counts: _Collect,
                            expected: int | None) -> int:
        """The rows an upsert updated; a row that collided on another unique key (MySQL
        would then have updated a different row) is refused."""
        if counts.collisions or (expected is not None and counts.duplicates != expected):
            raise IntegrityError(
                f"an upserted row collided on a unique key other than {list(conflict)}; "
                "MySQL would have updated a different row.",
                model=model.name, fix="upsert on that key, or remove the duplicate value.")
        return counts.duplicates

    async def _upsert_encoded(self, conn: Any, stmt: Upsert, rows: list[tuple[Any, ...]]
                              ) -> UpsertOutcome:
        """:meth:`upsert` for rows of SQL literals (``returning`` is not offered)."""
        if not rows:
            return UpsertOutcome([], 0, 0)
        if stmt.returning:
            raise UnsupportedError("an upsert of encoded rows returns no rows.")
        model = stmt.model
        c = self.compiler
        assert isinstance(c, MySQLCompiler)
        other_keys = [k for k in model.unique_keys() if set(k) != set(stmt.conflict)]
        expected: int | None = None
        if other_keys and len(rows) > 1:
            expected = len(await self._existing_encoded(conn, model, stmt.conflict, stmt.columns,
                                                        rows))
        counts = await self._write_encoded(conn, model, stmt.columns, (rows,),
                                           c.on_duplicate(stmt.conflict, stmt.update),
                                           stmt.conflict)
        duplicates = self._checked_duplicates(model, stmt.conflict, counts, expected)
        return UpsertOutcome([], len(rows) - duplicates, duplicates)

    async def _existing_encoded(self, conn: Any, model: ModelSpec, conflict: tuple[str, ...],
                                columns: tuple[str, ...], rows: list[tuple[Any, ...]],
                                lock: bool = True) -> list[Any]:
        """:meth:`_existing` for rows of SQL literals (``columns`` their order)."""
        c = self.compiler
        at = [columns.index(k) for k in conflict]
        names = [c.col(model, k) for k in conflict]
        found: list[Any] = []
        for start in range(0, len(rows), 1000):
            chunk = [r for r in rows[start:start + 1000] if all(r[i] is not None for i in at)]
            if not chunk:
                continue
            if len(at) == 1:
                where = f"{names[0]} IN ({', '.join(r[at[0]] for r in chunk)})"
            else:
                where = " OR ".join(
                    "(" + " AND ".join(f"{n} = {r[i]}" for n, i in zip(names, at, strict=True)) + ")"
                    for r in chunk)
            sql = f"SELECT 1 FROM {c.table(model)} WHERE {where}"
            found += await self.fetch(conn, sql + (" FOR UPDATE" if lock else ""), ())
        return found

    def _key_filter(self, conflict: tuple[str, ...], rows: list[dict[str, Any]]) -> Expr:
        if len(conflict) == 1:
            return InList(conflict[0], tuple(r[conflict[0]] for r in rows))
        return Or(tuple(And(tuple(Comparison(k, "eq", r[k]) for k in conflict)) for r in rows))

    async def _existing(self, conn: Any, model: ModelSpec, conflict: tuple[str, ...],
                        rows: list[dict[str, Any]], lock: bool = True) -> list[Any]:
        """Rows whose conflict key is present (``lock``: locked until the transaction ends,
        and read as last committed rather than from the transaction's snapshot)."""
        found: list[Any] = []
        c = self.compiler
        for start in range(0, len(rows), 1000):
            compiled = c.compile(Select(model, self._key_filter(conflict, rows[start:start + 1000])))
            sql = compiled.sql.replace(f"SELECT {c.column_list(model)}", "SELECT 1", 1)
            found += await self.fetch(conn, sql + (" FOR UPDATE" if lock else ""), compiled.params)
        return found

    async def _rows_by_keys(self, conn: Any, model: ModelSpec, conflict: tuple[str, ...],
                            rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for start in range(0, len(rows), 1000):
            where = self._key_filter(conflict, rows[start:start + 1000])
            for r in await self.select(conn, Select(model, where)):
                out[tuple(r[k] for k in conflict)] = r
        return out

    def update_atomic_alone(self, stmt: Update) -> bool:
        """By id: the UPDATE and the SELECT of the row go in one round trip, in a transaction
        opened there (see :meth:`_wrapped`). By any other filter: in a transaction (the
        read-back takes several statements, and a $regex filter the server gave up on is
        only seen after the statement ran)."""
        w = stmt.where
        return isinstance(w, Comparison) and w.field == "id" and w.op == "eq"

    def delete_atomic_alone(self, stmt: Delete) -> bool:
        """In a transaction: a $regex filter the server gave up on is seen after the DELETE
        ran, and the caller rolls it back."""
        return False

    def _update_by_id(self, model: ModelSpec, where: Comparison, values: dict[str, Any]
                      ) -> tuple[str, tuple[Any, ...], Any]:
        """``UPDATE ... WHERE id = %s``, its parameters and the encoded key: the text
        compiled once per model and column list (it depends on no value), the values through
        the cached row encoder -- unless the compiler renders updates, comparisons or
        encodings its own way."""
        c = self.compiler
        names = tuple(values)
        ck = ("update_by_id", id(model), model, names, c)
        sql = self._sql_cache.get(ck)
        key = c.encode(model.pk, where.value)
        if sql is None:
            compiled = c.compile(Update(model, where, values))
            if self._default_update_text():
                if len(self._sql_cache) >= 4096:  # column lists are few; bound them anyway
                    self._sql_cache.clear()
                self._sql_cache[ck] = compiled.sql
            return compiled.sql, compiled.params, key
        return sql, (*c.row_encoder(model, names)(values), key), key

    def _default_update_text(self) -> bool:
        """The compiler renders an UPDATE or DELETE by id as the base compiler does (so its
        text does not depend on the values, and they are encoded as ``row_encoder`` encodes
        them)."""
        return renders_as_base(self.compiler, "compile_update", "compile_delete",
                               "where_clause", "visit_comparison", "_encoders")

    async def delete_by_id(self, conn: Any, model: ModelSpec, key: Any) -> int:
        """The DELETE's text compiled once per model (see :meth:`_update_by_id`)."""
        c = self.compiler
        ck = ("delete_by_id", id(model), model, c)
        sql = self._sql_cache.get(ck)
        if sql is None:
            if not self._default_update_text():
                return await super().delete_by_id(conn, model, key)
            sql = self._sql_cache[ck] = c.compile(Delete(model, Comparison("id", "eq", key))).sql
        count: int = await self.execute(conn, sql, (c.encode(model.pk, key),))
        return count

    async def update(self, conn: Any, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        if stmt.where is FALSE:
            return 0, []
        c = self.compiler
        if not stmt.returning:
            compiled = c.compile(stmt)
            return await self.execute(conn, compiled.sql, compiled.params), []
        model = stmt.model
        w = stmt.where
        if isinstance(w, Comparison) and w.field == "id" and w.op == "eq":
            sql, params, key = self._update_by_id(model, w, stmt.values)
            results = await self._wrapped(conn, [sql, self._select_by_id_sql(model)],
                                          (*params, key))
            matched, rows = results[0][0], results[1][1]
            decode = c.row_decoder(model, tuple(model.fields))
            return matched, [decode(r) for r in rows] if matched else []
        # any other filter: lock the matching keys, update exactly those, read them back
        compiled = c.compile(Select(model, w))
        sql = compiled.sql.replace(f"SELECT {c.column_list(model)}", f"SELECT {c.quote('id')}", 1)
        ids = [r[0] for r in await self.fetch(conn, sql + " FOR UPDATE", compiled.params)]
        if not ids:
            return 0, []
        decode_id = c.decoder(model.pk)
        keys = tuple(decode_id(i) if decode_id else i for i in ids)
        upd = c.compile(Update(model, InList("id", keys), stmt.values))
        matched = await self.execute(conn, upd.sql, upd.params)
        return matched, await self.rows_by_ids(conn, model, list(keys))

    # --- schema -----------------------------------------------------------------------------
    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]:
        where = "TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        params: tuple[Any, ...] = ()
        if tables is not None:
            if not tables:
                return {}
            where += f" AND TABLE_NAME IN ({', '.join(['%s'] * len(tables))})"
            params = tuple(tables)
        names = [r[0] for r in await self.fetch(
            conn, f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE {where} ORDER BY TABLE_NAME",
            params)]
        if not names:
            return {}
        marks = ", ".join(["%s"] * len(names))
        scope = f"TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})"
        out = {n: TableInfo(n) for n in names}
        json_cols = {(r[0], r[1]) for r in await self.fetch(
            conn, "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS "
            f"WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks}) "
            "AND CHECK_CLAUSE LIKE 'json\\_valid(%%'", tuple(names))} if self.is_mariadb else set()
        for (table, col, dtype, ctype, nullable, key, default, comment, extra) in await self.fetch(
                conn, "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, "
                f"COLUMN_DEFAULT, COLUMN_COMMENT, EXTRA FROM information_schema.COLUMNS WHERE {scope} "
                "ORDER BY TABLE_NAME, ORDINAL_POSITION", tuple(names)):
            ltype = _logical_type(str(dtype), str(ctype), str(comment or ""),
                                  (table, col) in json_cols)
            if default == "NULL":  # MariaDB spells "DEFAULT NULL" so; string literals are quoted
                default = None
            if "auto_increment" in str(extra).lower():
                default = "AUTO_INCREMENT"  # the server fills it: discovery makes it auto
            out[table].columns[col] = ColumnInfo(col, str(ctype).upper(), nullable == "YES",
                                                 key == "PRI", default, ltype)
        indexes: dict[tuple[str, str], dict[str, Any]] = {}
        for table, name, non_unique, col in await self.fetch(
                conn, "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME "
                f"FROM information_schema.STATISTICS WHERE {scope} "
                "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", tuple(names)):
            ix = indexes.setdefault((table, name), {"name": name, "unique": not int(non_unique),
                                                    "columns": []})
            ix["columns"].append(col)
        for (table, _), ix in indexes.items():
            if ix["name"] != "PRIMARY":
                out[table].indexes.append(ix)
        for table, col, ref_table, ref_col, on_delete, fk_name in await self.fetch(
                conn, "SELECT k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
                "k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, k.CONSTRAINT_NAME "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
                "ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
                "AND r.TABLE_NAME = k.TABLE_NAME "
                f"WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME IN ({marks}) "
                "AND k.REFERENCED_TABLE_NAME IS NOT NULL", tuple(names)):
            out[table].foreign_keys.append({"column": col, "table": ref_table, "references": ref_col,
                                            "on_delete": on_delete, "name": fk_name})
        return out

    async def drop_table(self, conn: Any, table: str) -> None:
        """DROP TABLE, first dropping other tables' foreign keys that reference it (what
        PostgreSQL's DROP ... CASCADE does; MySQL parses CASCADE and ignores it)."""
        q = self.compiler.quote
        for child, name in await self.fetch(
                conn, "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = %s "
                "AND TABLE_NAME <> %s", (table, table)):
            await self.execute(conn, f"ALTER TABLE {q(child)} DROP FOREIGN KEY {q(name)}", ())
        await self.execute(conn, self.compiler.drop_table(table), ())

    async def discover_schema(self, conn: Any) -> dict[str, TableInfo]:
        """Every base table of the database, from ``information_schema``."""
        return await self.introspect(conn, None)

    async def apply_ddl(self, conn: Any, statements: list[str]) -> None:
        """DDL under ``GET_LOCK``, so processes migrating at once take turns.

        MySQL DDL commits implicitly, so nothing here is transactional: each DataFlow
        step is one statement (indexes are declared inside CREATE TABLE), and core
        reports exactly the statements applied before a failure. A process that waited
        for the lock converges: CREATE TABLE is IF NOT EXISTS, and a column another
        process has just added (1060) or dropped (1091) counts as done.
        """
        async with self.ddl_lock(conn):
            for sql in statements:
                try:
                    await self.execute(conn, sql, ())
                except DatabaseError as exc:
                    if sql.startswith("ALTER TABLE") and _code(exc.__cause__) in CONVERGED_CODES:
                        continue
                    raise

    @contextlib.asynccontextmanager
    async def ddl_lock(self, conn: Any) -> AsyncIterator[None]:
        """Hold the database's migration lock on ``conn`` (re-entrant, session-scoped)."""
        name = self.migration_lock_name
        rows = await self.fetch(conn, "SELECT GET_LOCK(%s, %s)", (name, self.migration_lock_timeout))
        if not rows or rows[0][0] != 1:
            raise DatabaseError(
                f"timed out after {self.migration_lock_timeout}s waiting for the migration lock "
                f"{name!r}.", fix="another process is migrating; retry when it has finished.")
        try:
            yield
        finally:
            with contextlib.suppress(ConnectionLostError):
                await self.fetch(conn, "SELECT RELEASE_LOCK(%s)", (name,))

    @property
    def migration_lock_name(self) -> str:
        return f"dataflow:migrate:{self.url.database}"[:64]

    async def apply_step(self, conn: Any, step: Step) -> None:
        """``alter_column`` (type or nullability) as ALTER TABLE ... MODIFY COLUMN."""
        if step.kind != "alter_column" or step.column is None:
            raise UnsupportedError(f"MySQL cannot apply '{step.describe()}'.", model=step.model.name)
        assert isinstance(self.compiler, MySQLCompiler)
        sql = self.compiler.modify_column(step.model, step.model.fields[step.column])
        await self.execute(conn, sql, ())


def _logical_type(dtype: str, ctype: str, comment: str, json_check: bool) -> LogicalType | None:
    if comment.startswith(COMMENT_PREFIX):
        with contextlib.suppress(ValueError):
            return LogicalType(comment[len(COMMENT_PREFIX):])
    dtype = dtype.lower()
    if json_check or dtype == "json":
        return LogicalType.JSON
    if dtype == "tinyint" and ctype.lower().startswith("tinyint(1)"):
        return LogicalType.BOOL
    if dtype in ("bit", "bool", "boolean"):
        return LogicalType.BOOL
    return _MYSQL_TYPES.get(dtype)


async def _close_pool(pool: aiomysql.Pool) -> None:
    pool.close()
    await pool.wait_closed()


def _abandon(pool: Any) -> None:
    """Close the sockets of a pool whose event loop is gone (its transports cannot run)."""
    for conn in [*pool._free, *pool._used]:
        transport = getattr(getattr(conn, "_writer", None), "transport", None)
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        conn._writer = conn._reader = None  # so the driver's __del__ does not touch the loop
    pool._free.clear()
    pool._used.clear()
