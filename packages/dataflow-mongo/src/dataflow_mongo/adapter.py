"""The MongoDB adapter on PyMongo's native async API (``pymongo.AsyncMongoClient``).

One client per event loop (a PyMongo async client belongs to the loop that made it),
sized through the ``dataflow_pool_size`` hook. A "connection" is a handle on that
client plus, inside a transaction, a client session: every operation passes it.
Statements arrive as query-AST nodes and are compiled by :mod:`.query`; collection =
the model's table name, ``id`` = ``_id``. Integer ids come from a counters collection,
one ``$inc`` per batch, outside any transaction (like a SQL sequence: never reused).
The model's last applied schema is kept in a metadata collection, so the shared
migration planner can detect type changes and dropped keys as on SQL.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    CollectionInvalid,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from dataflow import plugins
from dataflow.adapter import Adapter, ColumnInfo, DatabaseURL, TableInfo, UpsertOutcome, translating
from dataflow.errors import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseError,
    IntegrityError,
    TransactionConflictError,
    UnsupportedError,
)
from dataflow.loops import PerLoop, close_per_loop
from dataflow.migrations import Plan, Step, plan_migration
from dataflow.model import LogicalType, ModelSpec, constraint_name
from dataflow.pool import ServerInfo, configured_pool_size, worker_count
from dataflow.query.ast import FALSE, Count, Delete, Insert, Select, Update, Upsert

from .capabilities import MongoCapabilities
from .codec import TYPE_REGISTRY, ModelCodec, bson_datetime, field_name, read_datetime
from .query import QueryCompiler

T = TypeVar("T")
P = ParamSpec("P")

#: ids one counter ``$inc`` reserves for single inserts
ID_BLOCK = 64
#: DataFlow's own collections (names no model can take: they start with "__")
COUNTERS = "__dataflow_counters"
SCHEMAS = "__dataflow_schema"
#: a server that reports no connection limit (or 0 available) gets the default policy
_NO_LIMIT = ServerInfo(max_connections=None)
#: server error codes of a transaction that lost a write conflict
_CONFLICT_CODES = {112, 244, 251}
#: every BSON type DataFlow stores except null (partial unique indexes)
_NON_NULL_TYPES = ["string", "int", "long", "double", "decimal", "bool", "binData", "object",
                   "array", "date", "objectId"]


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, DuplicateKeyError) or (
            isinstance(exc, BulkWriteError) and _dup_details(exc) is not None):
        details = exc.details if isinstance(exc, DuplicateKeyError) else _dup_details(exc)
        message = (details or {}).get("errmsg") or str(exc)
        index = _index_name(message)
        return IntegrityError(f"the database refused the write: {message}.",
                              fix="check unique keys and required fields.", constraint=index)
    if isinstance(exc, ConnectionFailure):
        return ConnectionLostError(f"the MongoDB connection was lost: {exc}.",
                                   fix="retry; the client reconnects on the next operation.")
    if isinstance(exc, OperationFailure) and (
            exc.code in _CONFLICT_CODES or exc.has_error_label("TransientTransactionError")):
        return TransactionConflictError(
            f"MongoDB aborted the transaction on a write conflict: {exc}.",
            fix="run the transaction again.")
    if isinstance(exc, PyMongoError):
        return DatabaseError(f"MongoDB error: {exc}.")
    return exc


def _dup_details(exc: BulkWriteError) -> dict[str, Any] | None:
    for err in exc.details.get("writeErrors", []):
        if err.get("code") == 11000:
            return dict(err)
    return None


def _index_name(message: str) -> str | None:
    marker = " index: "
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split(" ", 1)[0]


_translating = translating((PyMongoError,), _translate)


@dataclass(slots=True)
class MongoConn:
    """A handle for one operation or transaction: the loop's client, the database, and
    the session of an open transaction."""

    client: AsyncMongoClient[Any]
    db: AsyncDatabase[Any]
    session: AsyncClientSession | None = None


def unique_groups(model: ModelSpec) -> list[tuple[str, ...]]:
    return [k for k in model.unique_keys() if k != ("id",)]


def index_groups(model: ModelSpec) -> list[tuple[str, ...]]:
    groups = [(n,) for n, f in model.fields.items() if f.index and not f.unique and n != "id"]
    return groups + [tuple(g) for g in model.indexes]


#: the schema record's mark that the collection's datetimes are BSON dates (a record without it
#: was written by a version that stored them as text: a "convert_datetimes" step rewrites them)
DATETIME_STORAGE = ("datetimes", "date")


def datetime_fields(model: ModelSpec) -> list[str]:
    return [n for n, f in model.fields.items() if f.ltype is LogicalType.DATETIME]


def schema_record(model: ModelSpec) -> dict[str, Any]:
    """What the metadata collection keeps of a model: its columns, unique keys, indexes."""
    return {
        "_id": model.table,
        "model": model.name,
        DATETIME_STORAGE[0]: DATETIME_STORAGE[1],
        "columns": {n: {"type": f.ltype.value, "nullable": f.nullable,
                        "primary_key": f.primary_key} for n, f in model.fields.items()},
        "unique": [list(g) for g in unique_groups(model)],
        "indexes": [list(g) for g in index_groups(model)],
    }


class MongoAdapter(Adapter):
    capabilities = MongoCapabilities
    # a write conflict aborts a MongoDB transaction at once (no lock wait): restartable
    # operations are run again with back-off, as the driver's with_transaction does
    conflict_retries = 50
    conflict_backoff = 0.002
    # a failed write aborts the whole MongoDB transaction: partial batches are sorted first
    sorts_partial_batches = True
    # bulk writes take rows validated and encoded straight into BSON-ready tuples
    accepts_encoded_rows = True

    def __init__(self, url: DatabaseURL, *, pool_size: int | None = None, **options: Any) -> None:
        super().__init__(url, pool_size=pool_size, **options)
        if not url.database:
            raise ConfigurationError(
                f"{url.redacted()} names no database.",
                fix="write mongodb://host:port/<database>, e.g. mongodb://localhost:27017/app.")
        self.database = url.database
        self.client_options: dict[str, Any] = dict(options.pop("client_options", {}))
        self._clients: dict[asyncio.AbstractEventLoop, AsyncMongoClient[Any]] = {}
        self._loop_clients: PerLoop[AsyncMongoClient[Any]] = PerLoop(self._new_client, self._clients)
        self._size: int | None = None
        self.server: ServerInfo | None = None
        self._models: dict[int, tuple[ModelSpec, ModelCodec, QueryCompiler]] = {}
        #: per table: ids reserved for single inserts, the next one last
        self._id_blocks: dict[str, list[int]] = {}
        #: collections whose schema record predates BSON dates (seen by introspect)
        self._text_datetimes: set[str] = set()

    # --- clients and pool sizing ------------------------------------------------------
    def _client(self, max_pool: int | None) -> AsyncMongoClient[Any]:
        options: dict[str, Any] = {"uuidRepresentation": "standard", "tz_aware": True,
                                   "tzinfo": _dt.UTC,
                                   "appname": "dataflow", "type_registry": TYPE_REGISTRY,
                                   **self.client_options}
        if max_pool is not None:
            options["maxPoolSize"] = max_pool
        return AsyncMongoClient(self.url.raw, **options)

    async def read_server_info(self) -> ServerInfo:
        """``serverStatus().connections``: current + available; a server that reports no
        available connections (or no such section) leaves sizing to the default policy."""
        probe = self._client(1)
        try:
            status = await probe.admin.command("serverStatus")
        except PyMongoError:
            return _NO_LIMIT  # not allowed to run serverStatus: size without it
        finally:
            await probe.close()
        conns = status.get("connections") or {}
        current = int(conns.get("current") or 0)
        available = int(conns.get("available") or 0)
        if available <= 0:
            return ServerInfo(max_connections=None, current_connections=current)
        return ServerInfo(max_connections=current + available, current_connections=current)

    async def _resolve_size(self) -> int:
        if self._size is None:
            size = configured_pool_size(self.pool_size)
            if size is None:
                self.server = await self.read_server_info()
                size = plugins.pool_size("mongodb", self.server, worker_count())
            self._size = max(1, int(size))
        return self._size

    async def _new_client(self) -> AsyncMongoClient[Any]:
        try:
            size = await self._resolve_size()
        except PyMongoError as exc:
            raise _translate(exc) from exc
        if self._clients:  # a second loop (the sync API's) gets a quarter on top
            size = max(1, size // 4)
        return self._client(size)

    async def client(self) -> AsyncMongoClient[Any]:
        return self._clients.get(asyncio.get_running_loop()) or await self._loop_clients.get()

    def pool_stats(self) -> dict[str, Any]:
        maximum = (self._size or 0) * max(1, len(self._clients))
        return {"active": 0, "idle": 0, "max": maximum, "utilization": 0.0,
                "clients": len(self._clients)}

    # --- connections --------------------------------------------------------------------
    async def acquire(self) -> MongoConn:
        client = await self.client()
        return MongoConn(client, client[self.database])

    async def release(self, conn: MongoConn) -> None:
        session, conn.session = conn.session, None
        if session is not None:
            await session.end_session()

    async def close(self) -> None:
        await close_per_loop(self._clients, lambda client: client.close())

    # --- transactions ---------------------------------------------------------------------
    @_translating
    async def begin(self, conn: MongoConn) -> None:
        session = conn.client.start_session()
        try:
            await session.start_transaction()
        except BaseException:
            await session.end_session()
            raise
        conn.session = session

    @_translating
    async def commit(self, conn: MongoConn) -> None:
        session, conn.session = conn.session, None
        assert session is not None
        try:
            await session.commit_transaction()
        finally:
            await session.end_session()

    @_translating
    async def rollback(self, conn: MongoConn) -> None:
        session, conn.session = conn.session, None
        if session is None:
            return
        try:
            if session.in_transaction:
                await session.abort_transaction()
        finally:
            await session.end_session()

    # --- models ---------------------------------------------------------------------------
    def compiled(self, model: ModelSpec) -> tuple[ModelCodec, QueryCompiler]:
        cached = self._models.get(id(model))
        if cached is None or cached[0] is not model:
            codec = ModelCodec(model)
            cached = (model, codec, QueryCompiler(model, codec))
            self._models[id(model)] = cached
        return cached[1], cached[2]

    def where(self, model: ModelSpec, expr: Any) -> dict[str, Any]:
        return self.compiled(model)[1].filter(expr)

    async def _next_ids(self, conn: MongoConn, table: str, n: int) -> list[int]:
        """``n`` fresh integer ids for ``table``: one ``$inc`` on its counter per batch, outside
        any transaction, so concurrent writers never get the same id (nor conflict on it).
        Single inserts draw from a block of ``ID_BLOCK`` reserved with one ``$inc`` (a cached
        sequence: ids are unique and increase within a process, with gaps across processes)."""
        if n == 1:
            block = self._id_blocks.get(table)
            if block:
                return [block.pop()]
            ids = await self._reserve(conn, table, ID_BLOCK)
            ids.reverse()
            first = ids.pop()
            self._id_blocks[table] = ids
            return [first]
        return await self._reserve(conn, table, n)

    async def _reserve(self, conn: MongoConn, table: str, n: int) -> list[int]:
        doc = await conn.db[COUNTERS].find_one_and_update(
            {"_id": table}, {"$inc": {"seq": n}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        assert doc is not None  # upsert=True with AFTER always returns the counter
        end = int(doc["seq"])
        return list(range(end - n + 1, end + 1))

    async def _advance_counter(self, conn: MongoConn, table: str, given: list[Any]) -> None:
        """Ids the caller chose: later generated ids start above the largest."""
        ints = [g for g in given if isinstance(g, int)]
        if ints:
            top = max(ints)
            block = self._id_blocks.get(table)
            if block and block[-1] <= top:  # the cached ids are no longer above the caller's
                self._id_blocks[table] = []
            await conn.db[COUNTERS].update_one({"_id": table}, {"$max": {"seq": top}},
                                               upsert=True)

    # --- statements -----------------------------------------------------------------------
    @_translating
    async def select(self, conn: MongoConn, stmt: Select) -> list[dict[str, Any]]:
        if stmt.where is FALSE or stmt.limit == 0:
            return []
        if stmt.for_update:
            raise UnsupportedError("MongoDB cannot lock documents on read (for_update=True).",
                                   model=stmt.model.name)
        codec, q = self.compiled(stmt.model)
        cursor = conn.db[stmt.model.table].find(q.filter(stmt.where), session=conn.session)
        if stmt.order_by:
            cursor = cursor.sort(q.sort(stmt.order_by))
        if stmt.offset:
            cursor = cursor.skip(stmt.offset)
        if stmt.limit is not None:
            cursor = cursor.limit(stmt.limit)
        record = codec.record
        return [record(d) async for d in cursor]

    @_translating
    async def read_by_id(self, conn: MongoConn, model: ModelSpec, key: Any) -> dict[str, Any] | None:
        codec, _ = self.compiled(model)
        doc = await conn.db[model.table].find_one({"_id": {"$eq": codec.value("id", key)}},
                                                  session=conn.session)
        return None if doc is None else codec.record(doc)

    @_translating
    async def count(self, conn: MongoConn, stmt: Count) -> int:
        if stmt.where is FALSE:
            return 0
        flt = self.where(stmt.model, stmt.where)
        return int(await conn.db[stmt.model.table].count_documents(flt, session=conn.session))

    @_translating
    async def insert(self, conn: MongoConn, stmt: Insert) -> list[dict[str, Any]]:
        model = stmt.model
        if stmt.encoded is not None:  # rows validated and encoded by value_encoders
            await self.insert_encoded(conn, model, stmt.columns, [stmt.encoded])
            return []
        if not stmt.rows:
            return []
        codec, _ = self.compiled(model)
        rows = stmt.rows
        if model.pk.auto_increment:
            missing = [i for i, r in enumerate(rows) if r.get("id") is None]
            if missing:
                rows = [dict(r) for r in rows]
                for i, new in zip(missing, await self._next_ids(conn, model.table, len(missing)),
                                  strict=True):
                    rows[i]["id"] = new
            if len(missing) < len(rows):
                taken = set(missing)
                await self._advance_counter(conn, model.table,
                                            [r["id"] for i, r in enumerate(rows) if i not in taken])
        docs = [codec.document(r) for r in rows]
        await conn.db[model.table].insert_many(docs, ordered=True, session=conn.session)
        if not stmt.returning:
            return []
        blank = dict.fromkeys(model.fields)
        return [{**blank, **r} for r in rows]

    async def insert_partial(self, conn: MongoConn, stmt: Insert
                             ) -> tuple[int, list[tuple[int, BaseException]]]:
        """``partial=True`` without savepoints: a failed write aborts a MongoDB transaction, so
        the rows that would break a unique key (a key already stored, or repeated earlier
        in the batch) are found first and left out; the rest go in one ``insert_many``."""
        model = stmt.model
        codec, _ = self.compiled(model)
        rows = stmt.rows
        refused: dict[int, BaseException] = {}
        groups = unique_groups(model)
        if any(r.get("id") is not None for r in rows):
            groups = [("id",), *groups]
        coll = conn.db[model.table]
        for group in groups:
            keys: dict[tuple[Any, ...], int] = {}
            for i, r in enumerate(rows):
                key = tuple(r.get(c) for c in group)
                if i in refused or None in key:
                    continue
                if key in keys:
                    refused[i] = self._duplicate(model, group, key, "repeats an earlier row")
                else:
                    keys[key] = i
            names = [field_name(c) for c in group]
            items = list(keys.items())
            for start in range(0, len(items), 500):
                part = items[start:start + 500]
                docs = [{n: codec.value(c, v) for n, c, v in zip(names, group, k, strict=True)}
                        for k, _ in part]
                found = {tuple(d.get(n) for n in names) async for d in coll.find(
                    {"$or": [{n: {"$eq": v} for n, v in d.items()} for d in docs]},
                    dict.fromkeys(names, 1), session=conn.session)}
                for (key, i), doc in zip(part, docs, strict=True):
                    if tuple(doc[n] for n in names) in found:
                        refused[i] = self._duplicate(model, group, key, "is already stored")
        clean = [r for i, r in enumerate(rows) if i not in refused]
        if clean:
            await self.insert(conn, Insert(model, stmt.columns, clean, returning=False))
        return len(clean), sorted(refused.items())

    @staticmethod
    def _duplicate(model: ModelSpec, group: tuple[str, ...], key: tuple[Any, ...],
                   why: str) -> IntegrityError:
        name = "_id_" if group == ("id",) else constraint_name("uq", model.table, group)
        shown = ", ".join(f"{c}={v!r:.40}" for c, v in zip(group, key, strict=True))
        return IntegrityError(f"the database refused the write: duplicate key on unique index "
                              f"{name} ({shown}) that {why}.", model=model.name, field=group[-1],
                              constraint=name, fix="check unique keys.")

    def value_encoders(self, model: ModelSpec, columns: tuple[str, ...]) -> list[Any]:
        """Per column: Python value -> BSON value, or None where it is stored as is (the
        bulk fast path fuses these with validation)."""
        codec, _ = self.compiled(model)
        return [codec.encoders[c] for c in columns]

    @_translating
    async def insert_encoded(self, conn: MongoConn, model: ModelSpec, columns: tuple[str, ...],
                             batches: Iterable[list[tuple[Any, ...]]]) -> None:
        """Insert encoded rows, one ``insert_many`` per batch; generated ids come from one
        counter ``$inc`` per batch."""
        keys = [field_name(c) for c in columns]
        coll = conn.db[model.table]
        generate = model.pk.auto_increment and "id" not in columns
        at = columns.index("id") if model.pk.auto_increment and "id" in columns else None
        for batch in batches:
            if not batch:
                continue
            if generate:
                ids = await self._next_ids(conn, model.table, len(batch))
                docs = []
                for new, t in zip(ids, batch, strict=True):
                    doc = dict(zip(keys, t, strict=True))
                    doc["_id"] = new
                    docs.append(doc)
            else:
                docs = [dict(zip(keys, t, strict=True)) for t in batch]
                if at is not None:
                    await self._advance_counter(conn, model.table, [t[at] for t in batch])
            await coll.insert_many(docs, ordered=True, session=conn.session)

    @_translating
    async def update(self, conn: MongoConn, stmt: Update) -> tuple[int, list[dict[str, Any]]]:
        if stmt.where is FALSE:
            return 0, []
        model = stmt.model
        codec, q = self.compiled(model)
        flt = q.filter(stmt.where)
        change = {"$set": codec.document(stmt.values)}
        coll = conn.db[model.table]
        if not stmt.returning:
            result = await coll.update_many(flt, change, session=conn.session)
            return int(result.matched_count), []
        ids = [d["_id"] async for d in coll.find(flt, {"_id": 1}, session=conn.session)]
        if not ids:
            return 0, []
        if len(ids) == 1:
            doc = await coll.find_one_and_update({"$and": [flt, {"_id": ids[0]}]}, change,
                                                 return_document=ReturnDocument.AFTER,
                                                 session=conn.session)
            return (0, []) if doc is None else (1, [codec.record(doc)])
        result = await coll.update_many({"$and": [flt, {"_id": {"$in": ids}}]}, change,
                                        session=conn.session)
        docs = [codec.record(d) async for d in coll.find({"_id": {"$in": ids}}, session=conn.session)]
        return int(result.matched_count), docs

    @_translating
    async def delete(self, conn: MongoConn, stmt: Delete) -> int:
        if stmt.where is FALSE:
            return 0
        flt = self.where(stmt.model, stmt.where)
        result = await conn.db[stmt.model.table].delete_many(flt, session=conn.session)
        return int(result.deleted_count)

    async def upsert(self, conn: MongoConn, stmt: Upsert) -> UpsertOutcome:
        """One ``UpdateOne(key, {$set, $setOnInsert}, upsert=True)`` per row in one ordered
        bulk write; MongoDB reports exactly how many were inserted and how many matched."""
        try:
            return await self._upsert(conn, stmt)
        except DuplicateKeyError as exc:
            raise self._upsert_race(stmt, dict(exc.details or {})) from exc
        except BulkWriteError as exc:
            dup = _dup_details(exc)
            if dup is not None:
                raise self._upsert_race(stmt, dup) from exc
            raise _translate(exc) from exc
        except PyMongoError as exc:
            raise _translate(exc) from exc

    def _upsert_race(self, stmt: Upsert, details: dict[str, Any]) -> BaseException:
        """A duplicate key on the conflict key itself means a concurrent writer inserted the
        same key between our match and our insert: a conflict to retry (DF-904), as a SQL
        database's own upsert would have waited and updated. Any other key: DF-902."""
        pattern = tuple(details.get("keyPattern") or {})
        if pattern == tuple(field_name(c) for c in stmt.conflict):
            return TransactionConflictError(
                "a concurrent upsert inserted the same key first.", model=stmt.model.name,
                fix="run the upsert again: it will update the record now there.")
        message = details.get("errmsg") or "duplicate key"
        return IntegrityError(f"the database refused the write: {message}.",
                              model=stmt.model.name, constraint=_index_name(message),
                              fix="check unique keys and required fields.")

    async def _upsert(self, conn: MongoConn, stmt: Upsert) -> UpsertOutcome:
        model = stmt.model
        codec, _ = self.compiled(model)
        if stmt.encoded is not None:
            names = [field_name(c) for c in stmt.columns]
            docs = [dict(zip(names, t, strict=True)) for t in stmt.encoded]
        else:
            docs = [codec.document(row) for row in stmt.rows]
        if not docs:
            return UpsertOutcome([], 0, 0)
        keys = [field_name(c) for c in stmt.conflict]
        update = {field_name(c) for c in stmt.update}
        new_ids: list[int] | None = None
        given_ids: list[Any] = []
        if model.pk.auto_increment and "id" not in stmt.columns:
            new_ids = await self._next_ids(conn, model.table, len(docs))
        elif model.pk.auto_increment:
            given_ids = [d.get("_id") for d in docs]
        ops = []
        filters = []
        single = keys[0] if len(keys) == 1 else None
        for i, doc in enumerate(docs):
            if single is not None:
                key = doc.pop(single)
                match = {single: {"$eq": key}}
                filters.append({single: key})
            else:
                values = {k: doc.pop(k) for k in keys}
                match = {k: {"$eq": v} for k, v in values.items()}
                filters.append(values)
            values = {k: v for k, v in doc.items() if k in update}
            on_insert = {k: v for k, v in doc.items() if k not in update}
            if new_ids is not None:
                on_insert["_id"] = new_ids[i]
            change: dict[str, Any] = {}
            if values:
                change["$set"] = values
            if on_insert or not values:
                change["$setOnInsert"] = on_insert
            ops.append(UpdateOne(match, change, upsert=True))
        coll = conn.db[model.table]
        result = await coll.bulk_write(ops, ordered=True, session=conn.session)
        if given_ids:
            await self._advance_counter(conn, model.table, given_ids)
        records: list[dict[str, Any]] = []
        if stmt.returning:
            for start in range(0, len(filters), 500):
                part = filters[start:start + 500]
                records += [codec.record(d) async for d in coll.find({"$or": part},
                                                                     session=conn.session)]
        return UpsertOutcome(records, int(result.upserted_count), int(result.matched_count))

    @_translating
    async def keys_of(self, conn: MongoConn, model: ModelSpec, where: Any) -> list[Any]:
        codec, q = self.compiled(model)
        dec = codec.record
        return [dec(d)["id"] async for d in conn.db[model.table].find(
            q.filter(where), {"_id": 1}, session=conn.session)]

    # --- schema -----------------------------------------------------------------------------
    def plan_migration(self, models: list[ModelSpec], live: dict[str, TableInfo]) -> Plan:
        for model in models:
            if model.foreign_keys:
                fk = model.foreign_keys[0]
                raise UnsupportedError(
                    f"MongoDB has no foreign keys and DataFlow does not emulate on_delete: "
                    f"{model.name}.{fk.column} references {fk.target}; nothing was created.",
                    model=model.name, field=fk.column,
                    fix="store the reference as a plain field (no foreign_key=) and delete "
                    "dependent records yourself, or use a SQL backend.")
        plan = plan_migration(models, live, None)
        for model in models:
            table = live.get(model.table)
            if table is None:
                continue
            if model.table in self._text_datetimes and datetime_fields(model):
                plan.steps.append(Step("convert_datetimes", model, None, reason=(
                    f"datetimes stored as text by an earlier version become BSON dates: "
                    f"{', '.join(datetime_fields(model))}")))
            had = {tuple(i["columns"]): i for i in table.indexes}
            want_unique = set(unique_groups(model))
            want_index = set(index_groups(model))
            for group in sorted(want_unique | want_index):
                old = had.get(group)
                unique = group in want_unique
                if old is None or old["unique"] != unique:
                    plan.steps.append(Step("add_index", model, ",".join(group),
                                           reason=f"{'unique ' if unique else ''}({', '.join(group)})"))
            for group, old in had.items():
                if group in want_unique and old["unique"]:
                    continue
                if group in want_index and not old["unique"]:
                    continue
                plan.steps.append(Step(
                    "drop_index", model, ",".join(group), destructive=bool(old["unique"]),
                    reason=f"{'unique key' if old['unique'] else 'index'} ({', '.join(group)}) "
                    "is no longer declared"))
        return plan

    @_translating
    async def introspect(self, conn: MongoConn, tables: list[str] | None = None) -> dict[str, TableInfo]:
        flt: dict[str, Any] = {} if tables is None else {"_id": {"$in": list(tables)}}
        existing = set(await conn.db.list_collection_names())
        out: dict[str, TableInfo] = {}
        async for rec in conn.db[SCHEMAS].find(flt):
            name = rec["_id"]
            if name not in existing:
                continue
            if rec.get(DATETIME_STORAGE[0]) != DATETIME_STORAGE[1]:
                self._text_datetimes.add(name)
            else:
                self._text_datetimes.discard(name)
            info = TableInfo(name)
            for col, c in rec.get("columns", {}).items():
                ltype = LogicalType(c["type"])
                info.columns[col] = ColumnInfo(col, ltype.value, bool(c["nullable"]),
                                               primary_key=bool(c.get("primary_key")), ltype=ltype)
            info.indexes = [{"name": constraint_name("uq", name, tuple(g)), "columns": list(g),
                             "unique": True} for g in rec.get("unique", [])]
            info.indexes += [{"name": constraint_name("ix", name, tuple(g)), "columns": list(g),
                              "unique": False} for g in rec.get("indexes", [])]
            for idx in info.indexes:
                idx["columns"] = tuple(idx["columns"])
            out[name] = info
        return out

    async def apply_ddl(self, conn: MongoConn, statements: list[str]) -> None:
        if statements:
            raise UnsupportedError("MongoDB takes no SQL DDL.")

    @_translating
    async def apply_step(self, conn: MongoConn, step: Step) -> None:
        model = step.model
        db = conn.db
        coll = db[model.table]
        schemas = db[SCHEMAS]
        if step.kind == "create_table":
            try:
                await db.create_collection(model.table)
            except CollectionInvalid:
                pass  # already there (created by another tool): keep its documents
            for group in unique_groups(model):
                await self._create_index(conn, model, group, unique=True)
            for group in index_groups(model):
                await self._create_index(conn, model, group, unique=False)
            await schemas.replace_one({"_id": model.table}, schema_record(model), upsert=True)
            return
        column = step.column or ""
        if step.kind == "add_column":
            f = model.fields[column]
            fill: Any = None
            if f.managed and not f.tombstone:
                fill = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
            elif f.has_default and f.default is not None:
                fill = self.compiled(model)[0].value(column, f.default)
            if fill is not None:
                await coll.update_many({column: {"$exists": False}}, {"$set": {column: fill}})
            await schemas.update_one({"_id": model.table}, {"$set": {
                f"columns.{column}": schema_record(model)["columns"][column]}})
        elif step.kind == "drop_column":
            await coll.update_many({column: {"$exists": True}}, {"$unset": {column: ""}})
            await schemas.update_one({"_id": model.table}, {"$unset": {f"columns.{column}": ""}})
        elif step.kind == "alter_column":
            f = model.fields[column]
            if not f.nullable and await coll.count_documents({column: None}, limit=1):
                raise DatabaseError(f"{model.table}.{column} holds null values; it cannot become "
                                    "required.", model=model.name, field=column,
                                    fix="fill the field on every record first.")
            await schemas.update_one({"_id": model.table}, {"$set": {
                f"columns.{column}.nullable": f.nullable}})
        elif step.kind == "convert_datetimes":
            await self.convert_text_datetimes(conn, model)
        elif step.kind in ("add_index", "drop_index"):
            group = tuple(column.split(","))
            for unique in (True, False):
                try:
                    await coll.drop_index(constraint_name("uq" if unique else "ix", model.table, group))
                except OperationFailure:
                    pass  # not there
            if step.kind == "add_index":
                await self._create_index(conn, model, group, unique=group in unique_groups(model))
            record = schema_record(model)
            await schemas.update_one({"_id": model.table}, {"$set": {
                "unique": record["unique"], "indexes": record["indexes"]}})
        else:
            raise UnsupportedError(f"MongoDB cannot apply: {step.describe()}.", model=model.name)

    async def convert_text_datetimes(self, conn: MongoConn, model: ModelSpec) -> int:
        """Rewrite the datetimes an earlier version of this adapter stored as fixed-width UTC
        text (``2024-03-01T12:30:15.123456Z``) as BSON dates (truncated to milliseconds), so
        filters and sorts compare them as dates; then mark the schema record. Returns how many
        documents changed. Run by ``initialize()`` once per collection (a non-destructive
        "convert_datetimes" step in the plan)."""
        coll = conn.db[model.table]
        changed = 0
        for name in datetime_fields(model):
            key = field_name(name)
            ops: list[UpdateOne] = []
            async for doc in coll.find({key: {"$type": "string"}}, {key: 1}):
                try:
                    value = read_datetime(doc[key])
                except ValueError:
                    continue  # not text this adapter wrote: left as it is
                ops.append(UpdateOne({"_id": doc["_id"], key: {"$eq": doc[key]}},
                                     {"$set": {key: bson_datetime(value)}}))
                if len(ops) >= 1000:
                    changed += (await coll.bulk_write(ops, ordered=False)).modified_count
                    ops = []
            if ops:
                changed += (await coll.bulk_write(ops, ordered=False)).modified_count
        await conn.db[SCHEMAS].update_one({"_id": model.table}, {"$set": {
            DATETIME_STORAGE[0]: DATETIME_STORAGE[1]}})
        self._text_datetimes.discard(model.table)
        return changed

    async def _create_index(self, conn: MongoConn, model: ModelSpec, group: tuple[str, ...],
                            *, unique: bool) -> None:
        name = constraint_name("uq" if unique else "ix", model.table, group)
        options: dict[str, Any] = {}
        if unique and any(model.fields[c].nullable for c in group):
            # as in SQL, a key with a null part never conflicts: such records stay out of
            # the unique index (MongoDB would otherwise index null as a value)
            options["partialFilterExpression"] = {"$and": [
                {field_name(c): {"$type": _NON_NULL_TYPES}} for c in group]}
        await conn.db[model.table].create_index([(field_name(c), 1) for c in group],
                                                unique=unique, name=name, **options)

    @_translating
    async def drop_table(self, conn: MongoConn, table: str) -> None:
        self._id_blocks.pop(table, None)
        await conn.db.drop_collection(table)
        await conn.db[SCHEMAS].delete_one({"_id": table})
        await conn.db[COUNTERS].delete_one({"_id": table})
