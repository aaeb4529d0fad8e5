"""The adapter protocol every backend implements, and a driver-free SQL base.

:class:`Adapter` is statement-level (select, count, insert, update, delete, upsert on
AST statements), so a document store can implement it as well as a SQL database.
:class:`SQLAdapter` implements it for SQL on top of four driver primitives
(``fetch``, ``execute``, ``executemany``, connection handling) and a dialect
compiler; SQL adapters subclass it and override fast paths.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from .capabilities import Capabilities
from .errors import ConfigurationError, ConnectionLostError, UnsupportedError
from .model import LogicalType, ModelSpec
from .query.ast import FALSE, Count, Delete, InList, Insert, Select, Update, Upsert
from .sql.compiler import SQLCompiler

if TYPE_CHECKING:
    from .migrations import Plan

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``scheme://user:pass@host:port/database?opt=v`` URL."""

    raw: str
    scheme: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str
    query: dict[str, str]

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        if "://" not in url:
            raise ConfigurationError(
                f"{url!r:.120} is not a database URL.",
                fix="write scheme://..., e.g. sqlite:///app.db or postgresql://host/db.",
            )
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower()
        if scheme.startswith("sqlite") or scheme.endswith("sqlite"):
            path, _, q = rest.partition("?")
            database = path[1:] if path.startswith("/") else path
            return cls(url, scheme, None, None, None, None, database, dict(parse_qsl(q)))
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None  # file-style URLs (sqlite-like schemes an adapter adds) have no port
        return cls(
            url,
            scheme,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            parts.hostname,
            port,
            unquote(parts.path.lstrip("/")),
            dict(parse_qsl(parts.query)),
        )

    @property
    def location(self) -> str:
        """Everything after ``scheme://`` up to the query: a file adapter's path."""
        return self.raw.split("://", 1)[1].partition("?")[0]

    def redacted(self) -> str:
        if self.password:
            return self.raw.replace(self.password, "***", 1)
        return self.raw


@dataclass
class ColumnInfo:
    """A column read from a live database."""

    name: str
    sql_type: str
    nullable: bool
    primary_key: bool = False
    default: str | None = None
    ltype: LogicalType | None = None


@dataclass
class TableInfo:
    name: str
    columns: dict[str, ColumnInfo] = field(default_factory=dict)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    foreign_keys: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class UpsertOutcome:
    rows: list[dict[str, Any]]
    inserted: int
    updated: int


class Adapter(ABC):
    """One backend. Instances are created per :class:`~dataflow.DataFlow` by URL scheme."""

    #: the capability declaration shipped with the adapter
    capabilities: ClassVar[type[Capabilities]] = Capabilities
    #: attempts of a restartable operation whose transaction the server aborted on a
    #: conflict (DF-904), and the first back-off between them in seconds (doubling, with
    #: jitter): backends that abort a conflicting transaction at once instead of letting it
    #: wait for the lock (MongoDB) need more than the default
    conflict_retries: ClassVar[int] = 0
    conflict_backoff: ClassVar[float] = 0.0
    #: ``bulk_create(partial=True)`` calls :meth:`insert_partial` instead of trying each
    #: batch, then each row, under a savepoint (backends without savepoints)
    sorts_partial_batches: ClassVar[bool] = False

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        self.url = url
        self.pool_size = pool_size
        self.options = options

    # connections -----------------------------------------------------------------------
    @abstractmethod
    async def acquire(self) -> Any:
        """An exclusive connection for the current event loop (pair with ``release``)."""

    @abstractmethod
    async def release(self, conn: Any) -> None: ...

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call ``fn(conn, *args)`` with a connection acquired for just that call."""
        conn = await self.acquire()
        try:
            return await fn(conn, *args)
        finally:
            await self.release(conn)

    @abstractmethod
    async def close(self) -> None: ...

    def pool_stats(self) -> dict[str, Any]:
        return {"active": 0, "idle": 0, "max": 0, "utilization": 0.0}

    # transactions ----------------------------------------------------------------------
    @abstractmethod
    async def begin(self, conn: Any) -> None: ...

    @abstractmethod
    async def commit(self, conn: Any) -> None: ...

    @abstractmethod
    async def rollback(self, conn: Any) -> None: ...

    async def interrupted(self, conn: Any) -> bool:
        """A cancellation interrupted an operation on ``conn``: make it safe to use again.

        True when the connection can take the next statement (the driver finishes or
        cancels what was in flight before it runs the next one); False when the adapter
        had to close it instead (its transaction, if any, is gone). DataFlow then rolls
        back (a usable connection) and releases it. Must not raise.
        """
        return True

    async def savepoint(self, conn: Any, name: str) -> None:
        raise NotImplementedError

    async def release_savepoint(self, conn: Any, name: str) -> None:
        raise NotImplementedError

    async def release_and_savepoint(self, conn: Any, release: str, name: str) -> None:
        """RELEASE ``release``, then SAVEPOINT ``name`` (one round trip where the driver can
        send both at once)."""
        await self.release_savepoint(conn, release)
        await self.savepoint(conn, name)

    async def rollback_to_savepoint(self, conn: Any, name: str) -> None:
        raise NotImplementedError

    # statements ------------------------------------------------------------------------
    @abstractmethod
    async def select(self, conn: Any, stmt: Select) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def count(self, conn: Any, stmt: Count) -> int: ...

    @abstractmethod
    async def insert(self, conn: Any, stmt: Insert) -> list[dict[str, Any]]:
        """Insert ``stmt.rows``; return the persisted rows when ``stmt.returning``."""

    async def insert_partial(self, conn: Any, stmt: Insert) -> tuple[int, list[tuple[int, BaseException]]]:
        """``bulk_create(..., partial=True)`` where ``sorts_partial_batches``: insert the rows
        that can be inserted; return how many were, and (position in ``stmt.rows``, error) for
        each row refused."""
        raise UnsupportedError(f"{self.capabilities.name} cannot write a partial batch "
                               "(no savepoints).", model=stmt.model.name,
                               fix="call bulk_create without partial=True.")

    @abstractmethod
    async def update(self, conn: Any, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        """Return (rows matched, persisted rows when ``stmt.returning``)."""

    @abstractmethod
    async def delete(self, conn: Any, stmt: Delete) -> int: ...

    @abstractmethod
    async def upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        """Insert or update; counts must be exact. Called inside a transaction."""

    async def upsert_encoded(self, conn: Any, stmt: Upsert,
                             batches: Iterable[list[tuple[Any, ...]]]) -> UpsertOutcome:
        """Upsert batches of encoded rows as they come, in the caller's transaction: ``stmt``
        names the model, columns, conflict and update columns (its rows are not read). One
        :meth:`upsert` per batch here; an adapter that streams every batch into one statement
        (PostgreSQL's staging COPY) overrides it, holding one batch in memory at a time."""
        inserted = updated = 0
        for batch in batches:
            out = await self.upsert(conn, replace(stmt, rows=[], returning=False, encoded=batch))
            inserted += out.inserted
            updated += out.updated
        return UpsertOutcome([], inserted, updated)

    async def stream(self, stmt: Select, batch_size: int, *, conn: Any = None,
                     lock: Any = None) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of ``stmt`` in batches of up to ``batch_size``, read as they are consumed.

        Without ``conn`` the adapter takes a connection for the whole stream and gives it back
        when the stream ends, is closed or is cancelled; with ``conn`` (the caller's
        transaction) each batch is read holding ``lock``, so other statements of that
        transaction may run between batches. This portable version reads ordered pages
        (the statement's order, then the key); adapters override it with a cursor."""
        from .query.ast import OrderBy

        order = stmt.order_by
        if not any(o.field == "id" for o in order):
            order = (*order, OrderBy("id"))
        offset = stmt.offset or 0
        remaining = stmt.limit
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            page = Select(stmt.model, stmt.where, order, size, offset)
            if conn is None:
                rows = await self.run(self.select, page)
            else:
                async with lock:
                    rows = await self.select(conn, page)
            if rows:
                yield rows
            if len(rows) < size:
                return
            offset += len(rows)
            if remaining is not None:
                remaining -= len(rows)

    def update_atomic_alone(self, stmt: Update) -> bool:
        """Whether :meth:`update` of ``stmt`` is atomic without a transaction around it --
        one ``UPDATE ... RETURNING`` where the dialect has it, or an adapter that wraps its
        own statements in one -- so a caller outside a transaction need not pay for BEGIN
        and COMMIT round trips."""
        return bool(stmt.returning
                    and getattr(getattr(self, "compiler", None), "supports_returning", False))

    def delete_atomic_alone(self, stmt: Delete) -> bool:
        """Whether :meth:`delete` of ``stmt`` is atomic without a transaction around it (see
        :meth:`update_atomic_alone`)."""
        return False

    async def read_by_id(self, conn: Any, model: ModelSpec, key: Any) -> dict[str, Any] | None:
        from .query.ast import Comparison

        rows = await self.select(conn, Select(model, Comparison("id", "eq", key), limit=1))
        return rows[0] if rows else None

    async def delete_by_id(self, conn: Any, model: ModelSpec, key: Any) -> int:
        """Delete the row whose primary key is ``key`` (a checked key, no tenant or
        soft-delete predicate: callers that need one use :meth:`delete`); the count
        deleted. Adapters may keep the statement per model."""
        from .query.ast import Comparison

        return await self.delete(conn, Delete(model, Comparison("id", "eq", key)))

    # schema ----------------------------------------------------------------------------
    @abstractmethod
    async def introspect(self, conn: Any, tables: list[str] | None = None) -> dict[str, TableInfo]:
        """Existing tables (all, or only ``tables``) with their columns."""

    @abstractmethod
    async def apply_ddl(self, conn: Any, statements: list[str]) -> None: ...

    @abstractmethod
    async def drop_table(self, conn: Any, table: str) -> None: ...

    def plan_migration(self, models: list[ModelSpec], live: dict[str, TableInfo]) -> Plan:
        """The steps that bring ``live`` in line with ``models`` (the shared planner, with
        the adapter's SQL compiler if it has one). A backend with more to compare (a
        document store keeping its own schema record) extends the plan here."""
        from .migrations import plan_migration

        return plan_migration(models, live, getattr(self, "compiler", None))


class SQLAdapter(Adapter):
    """Statement-level operations for SQL backends, on a dialect compiler."""

    compiler: SQLCompiler
    #: ``insert`` takes ``Insert.encoded`` (rows encoded by :meth:`value_encoders`)
    accepts_encoded_rows: ClassVar[bool] = False
    #: rows per batch handed to :meth:`insert_encoded` / :meth:`upsert_encoded` at most,
    #: whatever the caller's ``batch_size``: an adapter that streams the batches into one
    #: statement while the server works (PostgreSQL's COPY) sets it, so encoding the next
    #: batch overlaps the server's work on the last; None = batches of ``batch_size``
    encoded_batch_rows: ClassVar[int | None] = None

    def value_encoders(self, model: ModelSpec, columns: tuple[str, ...]) -> list[Any]:
        """Per column: Python value -> driver value, or None where the driver takes it as is."""
        return [self.compiler.encoder(model.fields[c]) for c in columns]

    # driver primitives -------------------------------------------------------------------
    @abstractmethod
    async def fetch(self, conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]: ...

    @abstractmethod
    async def execute(self, conn: Any, sql: str, params: tuple[Any, ...]) -> int:
        """Run a statement; return the affected-row count."""

    @abstractmethod
    async def executemany(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> int: ...

    # transactions (SQL) ------------------------------------------------------------------
    # Savepoints follow the declaration: an adapter without ``savepoints`` refuses them
    # (DF-501) before any SQL is sent, whatever its SQL dialect would accept. DataFlow never
    # asks for one then: nested ``db.transaction()`` is refused, a multi-statement operation
    # inside a caller's transaction runs in that transaction, and ``partial=True`` bulk
    # writes commit batch by batch instead (see ``Express._insert_batch``).
    def _savepoints_declared(self, name: str) -> str:
        if not self.capabilities.savepoints:
            raise UnsupportedError(
                f"{self.capabilities.name} declares no savepoints; refusing SAVEPOINT {name}.",
                fix="declare savepoints = True in the adapter's Capabilities if the backend "
                "has them, or do not nest transactions.")
        return self.compiler.quote(name)

    async def savepoint(self, conn: Any, name: str) -> None:
        await self.execute(conn, f"SAVEPOINT {self._savepoints_declared(name)}", ())

    async def release_savepoint(self, conn: Any, name: str) -> None:
        await self.execute(conn, f"RELEASE SAVEPOINT {self._savepoints_declared(name)}", ())

    async def rollback_to_savepoint(self, conn: Any, name: str) -> None:
        await self.execute(conn, f"ROLLBACK TO SAVEPOINT {self._savepoints_declared(name)}", ())

    # statements --------------------------------------------------------------------------
    async def select(self, conn: Any, stmt: Select) -> list[dict[str, Any]]:
        if stmt.where is FALSE:
            return []
        c = self.compiler.compile(stmt)
        decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
        return [decode(r) for r in await self.fetch(conn, c.sql, c.params)]

    async def count(self, conn: Any, stmt: Count) -> int:
        if stmt.where is FALSE:
            return 0
        c = self.compiler.compile(stmt)
        rows = await self.fetch(conn, c.sql, c.params)
        return int(rows[0][0])

    async def insert(self, conn: Any, stmt: Insert) -> list[dict[str, Any]]:
        c = self.compiler.compile(stmt)
        if stmt.returning:
            decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
            return [decode(r) for r in await self.fetch(conn, c.sql, c.params)]
        await self.execute(conn, c.sql, c.params)
        return []

    async def insert_encoded(self, conn: Any, model: ModelSpec, columns: tuple[str, ...],
                             batches: Iterable[list[tuple[Any, ...]]]) -> int:
        """Insert batches of encoded rows (see :meth:`value_encoders`) as they come, in the
        caller's transaction; the batches are produced lazily, so an adapter that streams
        them (PostgreSQL's COPY) holds one batch in memory at a time. Returns the row count."""
        total = 0
        for batch in batches:
            await self.insert(conn, Insert(model, columns, [], returning=False, encoded=batch))
            total += len(batch)
        return total

    def update_atomic_alone(self, stmt: Update) -> bool:
        """:meth:`update` sends one statement: atomic alone without ``returning`` too."""
        return not stmt.returning or super().update_atomic_alone(stmt)

    def delete_atomic_alone(self, stmt: Delete) -> bool:
        """:meth:`delete` sends one statement."""
        return True

    async def update(self, conn: Any, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        if stmt.where is FALSE:
            return 0, []
        c = self.compiler.compile(stmt)
        if stmt.returning:
            decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
            rows = [decode(r) for r in await self.fetch(conn, c.sql, c.params)]
            return len(rows), rows
        return await self.execute(conn, c.sql, c.params), []

    async def delete(self, conn: Any, stmt: Delete) -> int:
        if stmt.where is FALSE:
            return 0
        c = self.compiler.compile(stmt)
        return await self.execute(conn, c.sql, c.params)

    async def existing_keys(self, conn: Any, stmt: Upsert) -> set[tuple[Any, ...]]:
        """Conflict-key tuples of ``stmt.rows`` that already exist (exact upsert counts)."""
        model = stmt.model
        found: set[tuple[Any, ...]] = set()
        cols = stmt.conflict
        if stmt.encoded is not None:
            at = [stmt.columns.index(c) for c in cols]
            keys = [tuple([t[i] for i in at]) for t in stmt.encoded]
        else:
            enc = self.compiler.row_encoder(model, cols)
            keys = [enc(r) for r in stmt.rows]
        q = self.compiler.quote
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            p = self.compiler.params()
            if len(cols) == 1:
                marks = ", ".join(p.add(k[0]) for k in chunk)
                where = f"{q(cols[0])} IN ({marks})"
            else:
                where = " OR ".join(
                    "(" + " AND ".join(f"{q(c)} = {p.add(v)}" for c, v in zip(cols, k, strict=True))
                    + ")"
                    for k in chunk
                )
            sql = f"SELECT {', '.join(q(c) for c in cols)} FROM {q(model.table)} WHERE {where}"
            found.update(tuple(r) for r in await self.fetch(conn, sql, tuple(p.values)))
        return found

    async def upsert(self, conn: Any, stmt: Upsert) -> UpsertOutcome:
        existing = await self.existing_keys(conn, stmt)
        updated = len(existing)
        inserted = len(stmt.rows) - updated
        rows: list[dict[str, Any]] = []
        chunk = self.max_rows_per_statement(len(stmt.columns))
        decode = self.compiler.row_decoder(stmt.model, tuple(stmt.model.fields))
        enc = self.compiler.row_encoder(stmt.model, stmt.columns)
        for start in range(0, len(stmt.rows), chunk):
            part = stmt.rows[start : start + chunk]
            sql = self.compiler.upsert_sql(stmt.model, stmt.columns, stmt.conflict, stmt.update,
                                           len(part), stmt.returning)
            params: list[Any] = []
            for r in part:
                params.extend(enc(r))
            if stmt.returning:
                rows.extend(decode(r) for r in await self.fetch(conn, sql, tuple(params)))
            else:
                await self.execute(conn, sql, tuple(params))
        return UpsertOutcome(rows, inserted, updated)

    def max_rows_per_statement(self, ncolumns: int) -> int:
        """Rows per multi-row statement, bounded by the driver's parameter limit."""
        return max(1, min(1000, 32000 // max(1, ncolumns)))

    async def keys_of(self, conn: Any, model: ModelSpec, where: Any) -> list[Any]:
        rows = await self.select(conn, Select(model, where))
        return [r["id"] for r in rows]

    async def rows_by_ids(self, conn: Any, model: ModelSpec, ids: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            out += await self.select(conn, Select(model, InList("id", tuple(ids[start:start + 500]))))
        return out

    # schema ------------------------------------------------------------------------------
    async def apply_ddl(self, conn: Any, statements: list[str]) -> None:
        for sql in statements:
            await self.execute(conn, sql, ())

    async def drop_table(self, conn: Any, table: str) -> None:
        await self.execute(conn, self.compiler.drop_table(table), ())


def translating(
    catch: tuple[type[BaseException], ...],
    translate: Callable[[BaseException], BaseException],
    on_lost: Callable[[Any], None] | None = None,
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorator for driver primitives: driver exceptions in ``catch`` become the DataFlow
    errors ``translate`` returns (the driver's exception stays as ``__cause__``). When the
    result is a lost connection, ``on_lost(conn)`` (the method's first argument after self)
    lets the adapter discard that connection."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await fn(*args, **kwargs)
            except catch as exc:
                translated = translate(exc)
                if on_lost is not None and isinstance(translated, ConnectionLostError) and len(args) > 1:
                    on_lost(args[1])
                if translated is exc:
                    raise
                raise translated from exc

        return wrapper

    return decorate


@contextlib.asynccontextmanager
async def acquired(adapter: Adapter) -> AsyncIterator[Any]:
    conn = await adapter.acquire()
    try:
        yield conn
    finally:
        await adapter.release(conn)
