"""``db.express``: typed CRUD, bulk and query operations on any backend.

Every write validates its input completely before any SQL is sent; bulk writes are
all-or-nothing unless the caller passes ``partial=True``, in which case valid rows
are written and ``failed`` lists each rejected row with its index and reason.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    BulkValidationError,
    ConfirmationRequiredError,
    DataFlowError,
    IntegrityError,
    RecordDeletedError,
    TenantRequiredError,
    TenantViolationError,
    TransactionError,
    UnsupportedError,
    ValidationError,
)
from .model import SOFT_DELETE_FIELD, TENANT_FIELD, LogicalType, ModelSpec
from .query.ast import (
    FALSE,
    TRUE,
    And,
    Comparison,
    Count,
    Delete,
    Expr,
    InList,
    Insert,
    IsNull,
    Or,
    Select,
    Update,
    Upsert,
)
from .query.filters import parse_filter, parse_order_by
from .streaming import DEFAULT_STREAM_BATCH, RowStream
from .values import RowValidator, utcnow

if TYPE_CHECKING:
    from .core import DataFlow

List = list  # the Express class has a method named list, which shadows the builtin

ModelRef = str | type | ModelSpec
Progress = Callable[[int, int], None]
DEFAULT_BATCH = 100_000
#: key types whose checker returns a value of exactly this type unchanged
_EXACT: dict[LogicalType, type] = {LogicalType.INT: int, LogicalType.STR: str,
                                   LogicalType.UUID: uuid.UUID}


class _InvalidBatch(Exception):
    """Internal: a streamed bulk write met a row the fast path declines (rolled back)."""


_T = TypeVar("_T")
_Batch = List[tuple[Any, ...]]


def _encoded_batch_rows(adapter: Any, batch_size: int) -> int:
    """Rows per encoded batch: ``batch_size``, capped by the adapter's ``encoded_batch_rows``
    (an adapter streaming every batch into one statement asks for small ones)."""
    most = getattr(adapter, "encoded_batch_rows", None)
    size = max(1, batch_size)
    return size if most is None else min(size, most)


class _EncodedStream:
    """The encoded batches of one fast-path bulk write, produced while the adapter consumes
    them. ``source()`` starts a fresh pass (a write may run again on a new connection); a
    None in it is a batch the general path must see (a row the fast path declines), which
    ends the pass. ``send`` hands one pass to the adapter and raises ``_InvalidBatch`` when
    the pass ended that way: the caller's transaction then rolls back what was sent."""

    def __init__(self, source: Callable[[], Iterable[_Batch | None]],
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.on_batch = on_batch  # rows sent so far in this pass, after each batch
        self.invalid = False

    def _one_pass(self) -> Iterator[_Batch]:
        self.invalid = False
        done = 0
        for chunk in self.source():
            if chunk is None:
                self.invalid = True
                return
            yield chunk
            done += len(chunk)
            if self.on_batch is not None:
                self.on_batch(done)

    async def send(self, consume: Callable[[Iterator[_Batch]], Awaitable[_T]]) -> _T:
        stream = self._one_pass()
        try:
            result = await consume(stream)
        except DataFlowError:
            for _ in stream:  # a row the general path refuses outranks a database error
                pass
            if self.invalid:
                raise _InvalidBatch from None
            raise
        if self.invalid:
            raise _InvalidBatch
        return result


def _no_op_updates(result: dict[str, Any], update_cols: tuple[str, ...] | None) -> dict[str, Any]:
    """``update_fields=[]``: rows whose key exists are left exactly as they are (not even
    ``updated_at`` moves) and are counted as ``skipped``, never as ``updated``."""
    if update_cols == ():
        result["skipped"] = result["updated"]
        result["updated"] = 0
    return result


def _failure(index: int, exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "error": str(exc)}
    if isinstance(exc, DataFlowError):
        out["code"] = exc.code
        out["field"] = exc.field
    return out


def _names(model: ModelSpec, value: Any, what: str) -> tuple[str, ...]:
    """``"a"`` or ``["a", "b"]`` as a tuple of names; anything else is refused (DF-301)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        names = tuple(value)
        if all(isinstance(n, str) for n in names):
            return names
    raise ValidationError(f"{what} takes a field name or a list of field names, got {value!r:.80}.",
                          model=model.name, fix=f"e.g. {what}=['email'].")


#: the largest limit/offset every backend binds (a signed 64-bit integer)
ROW_COUNT_MAX = 2 ** 63 - 1


def _check_limit(model: ModelSpec, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int)
            or not 0 <= value <= ROW_COUNT_MAX):
        raise ValidationError(f"{name} must be an int from 0 to 2**63 - 1, got {value!r:.40}.",
                              model=model.name, field=name,
                              fix=f"pass {name}=None for no {name}, or a smaller int.")
    return value


def _check_batch_size(model: ModelSpec, op: str, value: Any) -> int:
    """A positive int; anything else is refused before a row is read (DF-301)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{op}: batch_size must be a positive int, got {value!r:.40}; "
                              "nothing was written.", model=model.name, field="batch_size",
                              fix=f"pass batch_size=1 or more (default {DEFAULT_BATCH:,}).")
    return value


def _check_flag(model: ModelSpec, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False, got {value!r:.40}.",
                              model=model.name, field=name)
    return value


class Express:
    """Async operations on one DataFlow instance's models."""

    def __init__(self, db: DataFlow) -> None:
        self._db = db
        self._validators: dict[int, tuple[ModelSpec, RowValidator]] = {}

    # --- helpers -------------------------------------------------------------------------
    def _model(self, model: ModelRef) -> tuple[ModelSpec, RowValidator]:
        spec = self._db.get_model(model)
        cached = self._validators.get(id(spec))
        if cached is None or cached[0] is not spec:
            caps = self._db.adapter.capabilities
            cached = (spec, RowValidator(spec, nul_in_text=caps.nul_in_text, strict=self._db.strict,
                                         datetime_resolution=caps.datetime_resolution))
            self._validators[id(spec)] = cached
        return cached

    async def _prepare(self, model: ModelRef) -> tuple[ModelSpec, RowValidator]:
        spec, validator = self._model(model)
        db = self._db
        if spec.name not in db._ready_models:
            await db._ensure_ready()
        return spec, validator

    def _where(self, spec: ModelSpec, validator: RowValidator, flt: Any,
               include_deleted: bool = False) -> Expr:
        return self._scoped(spec, parse_filter(spec, flt, validator), include_deleted)

    # --- tenancy: the bound tenant's predicate is added to the AST, never to SQL text -------
    def _tenant(self, spec: ModelSpec) -> str | None:
        """The bound tenant for a tenant-scoped model (None for shared models)."""
        if not spec.tenant_scoped:
            return None
        tenant = self._db._tenant_var.get()
        if tenant is None:
            raise TenantRequiredError(
                "no tenant is bound for a tenant-scoped model; nothing was sent to the database.",
                model=spec.name, fix='wrap the call in: async with db.tenant("<tenant id>"):')
        return tenant

    def _scoped(self, spec: ModelSpec, expr: Expr, include_deleted: bool = False) -> Expr:
        tenant = self._tenant(spec)
        preds: List[Expr] = []
        if tenant is not None:
            preds.append(Comparison(TENANT_FIELD, "eq", tenant))
        # soft delete: tombstoned rows are invisible unless the caller asks for them
        if spec.soft_delete and not include_deleted:
            preds.append(IsNull(SOFT_DELETE_FIELD))
        if not preds or expr is FALSE:
            return expr
        if expr is not TRUE:
            preds.append(expr)
        return preds[0] if len(preds) == 1 else And(tuple(preds))

    def _by_id(self, spec: ModelSpec, key: Any, include_deleted: bool = False) -> Expr:
        return self._scoped(spec, Comparison("id", "eq", key), include_deleted)

    # --- soft delete: the tombstone predicate is added to the AST like the tenant's ---------
    def _tombstoned(self, spec: ModelSpec, expr: Expr) -> Expr:
        """``expr`` narrowed to the (bound tenant's) tombstoned rows."""
        dead = IsNull(SOFT_DELETE_FIELD, negate=True)
        return self._scoped(spec, dead if expr is TRUE else And((dead, expr)), include_deleted=True)

    def _now(self) -> Any:
        """The current time as the backend stores it (its ``datetime_resolution``)."""
        return utcnow(self._db.adapter.capabilities.datetime_resolution)

    def _tombstone(self, spec: ModelSpec, when: Any) -> dict[str, Any]:
        """The SET clause that tombstones (``when`` a datetime) or restores (None) a row."""
        values: dict[str, Any] = {SOFT_DELETE_FIELD: when}
        if "updated_at" in spec.fields:
            values["updated_at"] = self._now() if when is None else when
        return values

    @staticmethod
    def _deleted_error(spec: ModelSpec, op: str, key: Any,
                       conflict: dict[str, Any] | None = None) -> RecordDeletedError:
        """DF-405 naming the field(s) the write matched on (``conflict``: an upsert's
        conflict key, e.g. ``sku``), and the tombstoned record's id."""
        if conflict and tuple(conflict) != ("id",):
            on = ", ".join(f"{c}={v!r:.60}" for c, v in conflict.items())
            return RecordDeletedError(
                f"{op} on {', '.join(conflict)} reaches the soft-deleted record with {on} "
                f"(id {key!r:.80}); nothing was written.",
                model=spec.name, field=", ".join(conflict),
                fix=f"restore it first with express.restore({spec.name!r}, {key!r:.80}), purge "
                "it to reuse the key, or leave the row out.")
        return RecordDeletedError(
            f"{op} reaches the soft-deleted record with id {key!r:.80}; nothing was written.",
            model=spec.name, field="id",
            fix=f"restore it first with express.restore({spec.name!r}, {key!r:.80}), "
            "or leave it out.")

    async def _refuse_tombstoned(self, conn: Any, spec: ModelSpec, columns: tuple[str, ...],
                                 keys: List[tuple[Any, ...]], op: str) -> None:
        """Refuse a write whose keys reach tombstoned rows (checked in its transaction)."""
        keys = [k for k in keys if None not in k]  # NULL never matches a key
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            match: Expr
            if len(columns) == 1:
                match = InList(columns[0], tuple(k[0] for k in chunk))
            else:
                match = Or(tuple(And(tuple(Comparison(c, "eq", val)
                                           for c, val in zip(columns, k, strict=True)))
                                 for k in chunk))
            rows = await self._db.adapter.select(conn, Select(spec, self._tombstoned(spec, match),
                                                              limit=1))
            if rows:
                raise self._deleted_error(spec, op, rows[0]["id"],
                                          {c: rows[0][c] for c in columns})

    @staticmethod
    def _tenant_data(spec: ModelSpec, data: Any, tenant: str | None) -> Any:
        """``data`` with the bound tenant set; a different tenant_id is refused."""
        if tenant is None or not isinstance(data, Mapping):
            return data
        given = data.get(TENANT_FIELD, tenant)
        if given != tenant:
            raise TenantViolationError(
                f"tenant_id {given!r:.60} differs from the bound tenant; nothing was written.",
                model=spec.name, field=TENANT_FIELD,
                fix="omit tenant_id (DataFlow sets it) or bind that tenant with db.tenant(...).")
        return data if TENANT_FIELD in data else {**data, TENANT_FIELD: tenant}

    @staticmethod
    def _no_tenant_change(spec: ModelSpec, fields: Any) -> None:
        if spec.tenant_scoped and isinstance(fields, Mapping) and TENANT_FIELD in fields:
            raise TenantViolationError(
                "tenant_id cannot be changed by an update; nothing was written.",
                model=spec.name, field=TENANT_FIELD, fix="remove tenant_id from the fields.")

    # --- tenancy across foreign keys and auto-increment keys --------------------------------
    def _tenant_refs(self, spec: ModelSpec) -> List[tuple[str, ModelSpec, str, str]]:
        """``(column, target, target field, constraint)`` of each foreign key of a tenant-scoped
        model whose target is tenant-scoped too: a value must name a row of the same tenant."""
        if not spec.tenant_scoped or not spec.foreign_keys:
            return []
        out: List[tuple[str, ModelSpec, str, str]] = []
        for fk in spec.foreign_keys:
            target = self._db.models.get(fk.target)
            if target is not None and target.tenant_scoped:
                out.append((fk.column, target, fk.target_field, fk.name))
        return out

    async def _check_tenant_refs(self, conn: Any, spec: ModelSpec,
                                 rows: Iterable[Mapping[str, Any]], tenant: str) -> None:
        """Refuse references that name no row of ``tenant`` (checked inside the write's own
        transaction or savepoint). The database's foreign key only knows the key, which every
        tenant shares; the parent's tenant never changes, so the check cannot go stale. The
        error is the same whether the key is unused or another tenant's: it reveals nothing."""
        refs = self._tenant_refs(spec)
        if not refs:
            return
        rows = rows if isinstance(rows, list) else List(rows)
        adapter = self._db.adapter
        for column, target, target_field, constraint in refs:
            wanted = List({r[column] for r in rows if r.get(column) is not None})
            for start in range(0, len(wanted), 500):
                chunk = tuple(wanted[start:start + 500])
                where = And((Comparison(TENANT_FIELD, "eq", tenant), InList(target_field, chunk)))
                if await adapter.count(conn, Count(target, where)) != len(chunk):
                    raise IntegrityError(
                        f"'{column}' names no {target.name} record of the bound tenant "
                        f"(foreign key {constraint}); nothing was written.",
                        model=spec.name, field=column,
                        fix=f"reference a {target.name} created under the same tenant.")

    @staticmethod
    def _explicit_auto_id(spec: ModelSpec, data: Any) -> None:
        """Under multi-tenancy an auto-increment key is the database's alone: one tenant's
        ``id = 2**63 - 1`` would use up the sequence every tenant shares."""
        if (spec.tenant_scoped and isinstance(data, Mapping) and "id" in data
                and spec.fields["id"].auto_increment):
            raise ValidationError(
                "an explicit id for the auto-increment key of a tenant-scoped model is refused "
                "(the key sequence is shared by every tenant); nothing was written.",
                model=spec.name, field="id",
                fix="leave out 'id' and let the database assign it, or declare "
                "id: uuid.UUID for keys chosen by the caller.")

    # --- single records ------------------------------------------------------------------
    async def create(self, model: ModelRef, data: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one record; returns it as persisted (id, defaults, timestamps)."""
        spec, v = await self._prepare(model)
        tenant = self._tenant(spec)
        if tenant is not None:
            self._explicit_auto_id(spec, data)
        row = v.for_create(self._tenant_data(spec, data, tenant), self._now())
        stmt = Insert(spec, tuple(row), [row], returning=True)
        adapter = self._db.adapter
        if tenant is not None and self._tenant_refs(spec):
            async def checked_insert(conn: Any) -> List[dict[str, Any]]:
                await self._check_tenant_refs(conn, spec, [row], tenant)
                return await adapter.insert(conn, stmt)

            return (await self._db._run_atomic(checked_insert, restartable=True))[0]
        rows = await self._db._run(adapter.insert, stmt)
        return rows[0]

    async def read(self, model: ModelRef, id: Any, *, for_update: bool = False,
                   include_deleted: bool = False) -> dict[str, Any] | None:
        """The record with primary key ``id``, or None (also for a soft-deleted record,
        unless ``include_deleted=True``).

        ``for_update=True`` (only inside ``db.transaction()``: outside one it is refused,
        DF-801, since the lock would end with the read) keeps the row from changing until
        the transaction ends -- read, compute, ``update`` without losing a concurrent
        update. ``SELECT ... FOR UPDATE`` where the backend locks rows; on SQLite a plain
        read, since its write transactions are serialised. An adapter that does not declare
        ``row_locks`` refuses it (DF-501) before any SQL.
        """
        spec, v = await self._prepare(model)
        key = v.key(id)
        if for_update:
            caps = self._db.adapter.capabilities
            if not caps.row_locks:
                raise UnsupportedError(
                    f"{caps.name} cannot lock rows (for_update=True); nothing was sent.",
                    model=spec.name,
                    fix="read without for_update, or make the update conditional in one "
                    "statement (bulk_update with a filter).")
            if not self._db.in_transaction():
                raise TransactionError(
                    "for_update=True outside a transaction would lock the row only for the "
                    "read itself; nothing was sent.",
                    model=spec.name, fix="read inside 'async with db.transaction():', then "
                    "update in the same block.")
        live_only = not _check_flag(spec, "include_deleted", include_deleted) and spec.soft_delete
        if spec.tenant_scoped or for_update or live_only:
            rows = await self._db._run(self._db.adapter.select,
                                       Select(spec, self._by_id(spec, key, include_deleted), limit=1,
                                              for_update=for_update))
            return rows[0] if rows else None
        return await self._db._run(self._db.adapter.read_by_id, spec, key)

    async def find_one(self, model: ModelRef, filter: Mapping[str, Any] | None = None,
                       *, order_by: Any = None, include_deleted: bool = False
                       ) -> dict[str, Any] | None:
        rows = await self.list(model, filter, order_by=order_by, limit=1,
                               include_deleted=include_deleted)
        return rows[0] if rows else None

    async def list(
        self,
        model: ModelRef,
        filter: Mapping[str, Any] | None = None,
        *,
        order_by: str | Iterable[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include_deleted: bool = False,
    ) -> List[dict[str, Any]]:
        spec, v = await self._prepare(model)
        stmt = Select(
            spec,
            self._where(spec, v, filter, _check_flag(spec, "include_deleted", include_deleted)),
            parse_order_by(spec, order_by),
            _check_limit(spec, "limit", limit),
            _check_limit(spec, "offset", offset),
        )
        return await self._db._run(self._db.adapter.select, stmt)

    def stream(
        self,
        model: ModelRef,
        filter: Mapping[str, Any] | None = None,
        *,
        order_by: str | Iterable[str] | None = None,
        batch_size: int = DEFAULT_STREAM_BATCH,
        limit: int | None = None,
        include_deleted: bool = False,
    ) -> RowStream:
        """The records ``list`` would return, read as they are consumed::

            async with db.express.stream("Order", {"status": "paid"}, order_by="id") as rows:
                async for row in rows:
                    ...

        or ``async for batch in db.express.stream(...).batches()``. PostgreSQL reads through a
        server-side cursor, MySQL through an unbuffered one, SQLite steps one cursor; memory
        holds one batch at a time. The filter, tenant and soft-delete scoping are those of
        ``list``, checked now (the bound tenant is the one bound at this call); the
        connection is taken when iteration starts. Inside ``db.transaction()`` the rows are
        read in that transaction, and other operations may run between batches.
        """
        spec, v = self._model(model)
        size = _check_batch_size(spec, "stream", batch_size)
        stmt = Select(
            spec,
            self._where(spec, v, filter, _check_flag(spec, "include_deleted", include_deleted)),
            parse_order_by(spec, order_by),
            _check_limit(spec, "limit", limit),
        )
        return RowStream(self._stream_batches(spec, stmt, size))

    async def _stream_batches(self, spec: ModelSpec, stmt: Select, batch_size: int
                              ) -> AsyncIterator[List[dict[str, Any]]]:
        db = self._db
        if spec.name not in db._ready_models:
            await db._ensure_ready()
        scope = db._tx_var.get()
        adapter = db.adapter
        if scope is None:
            if db._closed:
                db._reopen()
            source = adapter.stream(stmt, batch_size)
        else:
            scope.check_usable()
            source = adapter.stream(stmt, batch_size, conn=scope.tx.conn, lock=scope.busy)
        try:
            async for batch in source:
                yield batch
        finally:
            await source.aclose()  # type: ignore[attr-defined]

    async def count(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
                    include_deleted: bool = False) -> int:
        spec, v = await self._prepare(model)
        where = self._where(spec, v, filter, _check_flag(spec, "include_deleted", include_deleted))
        return await self._db._run(self._db.adapter.count, Count(spec, where))

    async def update(self, model: ModelRef, id: Any, fields: Mapping[str, Any]
                     ) -> dict[str, Any] | None:
        """Update the record ``id``; returns it as persisted, or None if there is none."""
        spec, v = await self._prepare(model)
        key = v.key(id)
        self._no_tenant_change(spec, fields)
        self._db._refuse_referenced_update(spec, "update")
        values = v.for_update(fields, self._now())
        stmt = Update(spec, self._by_id(spec, key), values, returning=True)
        adapter = self._db.adapter
        tenant = self._tenant(spec)
        if spec.soft_delete or (tenant is not None and self._tenant_refs(spec)):
            dead = Count(spec, self._tombstoned(spec, Comparison("id", "eq", key)))

            async def update_live(conn: Any) -> tuple[int, List[dict[str, Any]]]:
                if tenant is not None:
                    await self._check_tenant_refs(conn, spec, [values], tenant)
                n, rows = await adapter.update(conn, stmt)
                if not n and spec.soft_delete and await adapter.count(conn, dead):
                    raise self._deleted_error(spec, "update", key)
                return n, rows

            _, rows = await self._db._run_atomic(update_live)
        elif adapter.update_atomic_alone(stmt):
            # e.g. one UPDATE ... RETURNING is atomic on its own: no BEGIN/COMMIT around it
            _, rows = await self._db._run(adapter.update, stmt)
        else:
            _, rows = await self._db._run_atomic(adapter.update, stmt)
        return rows[0] if rows else None

    async def delete(self, model: ModelRef, id: Any) -> bool:
        """Delete the record ``id``; True if it existed. A soft-delete model's record is
        tombstoned (``deleted_at`` set) instead, and True only if it was not already."""
        spec, v = await self._prepare(model)
        if spec.soft_delete:
            self._db._refuse_referenced_update(spec, "soft-delete")
        key = v.key(id)
        adapter = self._db.adapter
        if spec.soft_delete:
            stmt = Update(spec, self._by_id(spec, key), self._tombstone(spec, self._now()))
            n, _ = await self._db._run(adapter.update, stmt)
        elif spec.tenant_scoped:
            n = await self._db._run(adapter.delete, Delete(spec, self._by_id(spec, key)))
        else:  # the key alone: the adapter may keep the statement per model
            n = await self._db._run(adapter.delete_by_id, spec, key)
        return n > 0

    async def _delete_returning(self, model: ModelRef, id: Any) -> dict[str, Any] | None:
        """:meth:`delete`, returning the record as it was just before (None if there was
        none to delete): the read and the delete commit together, so the record returned is
        the one deleted. A soft-delete model's record comes back tombstoned (``deleted_at``
        set). The Delete node's output."""
        spec, v = await self._prepare(model)
        if spec.soft_delete:
            self._db._refuse_referenced_update(spec, "soft-delete")
        key = v.key(id)
        adapter = self._db.adapter
        where = self._by_id(spec, key)
        if spec.soft_delete:
            stmt = Update(spec, where, self._tombstone(spec, utcnow()), returning=True)
            if getattr(getattr(adapter, "compiler", None), "supports_returning", False):
                _, rows = await self._db._run(adapter.update, stmt)
            else:
                _, rows = await self._db._run_atomic(adapter.update, stmt)
            return rows[0] if rows else None
        select = Select(spec, where, limit=1, for_update=adapter.capabilities.row_locks)
        delete = Delete(spec, where)

        async def read_then_delete(conn: Any) -> dict[str, Any] | None:
            rows = await adapter.select(conn, select)
            if not rows or not await adapter.delete(conn, delete):
                return None
            return rows[0]

        return await self._db._run_atomic(read_then_delete)

    async def restore(self, model: ModelRef, id: Any) -> dict[str, Any] | None:
        """Bring back the soft-deleted record ``id`` and return it; a live record is returned
        unchanged; None if there is no such record."""
        spec, v = await self._prepare(model)
        if not spec.soft_delete:
            raise ValidationError("restore applies to soft-delete models only.", model=spec.name,
                                  fix='declare __dataflow__ = {"soft_delete": True} on the model.')
        self._db._refuse_referenced_update(spec, "restore")
        key = v.key(id)
        adapter = self._db.adapter
        stmt = Update(spec, self._tombstoned(spec, Comparison("id", "eq", key)),
                      self._tombstone(spec, None), returning=True)
        live = Select(spec, self._by_id(spec, key), limit=1)

        async def run(conn: Any) -> dict[str, Any] | None:
            _, rows = await adapter.update(conn, stmt)
            if not rows:
                rows = await adapter.select(conn, live)
            return rows[0] if rows else None

        return await self._db._run_atomic(run)

    async def purge(self, model: ModelRef, id: Any) -> bool:
        """Remove the record ``id`` for good, live or soft-deleted; True if it existed."""
        spec, v = await self._prepare(model)
        key = v.key(id)
        n = await self._db._run(self._db.adapter.delete,
                                Delete(spec, self._by_id(spec, key, include_deleted=True)))
        return n > 0

    def _conflict(self, spec: ModelSpec, conflict_on: Any, sample: Mapping[str, Any]) -> tuple[str, ...]:
        conflict = ("id",) if conflict_on is None else _names(spec, conflict_on, "conflict_on")
        keys = {tuple(sorted(k)) for k in spec.unique_keys()}
        if tuple(sorted(conflict)) not in keys:
            raise ValidationError(
                f"conflict_on {list(conflict)!r:.120} is not a primary key or unique constraint.",
                model=spec.name,
                fix=f"use one of: {[list(k) for k in spec.unique_keys()]}.",
            )
        return conflict

    async def upsert(self, model: ModelRef, data: Mapping[str, Any], *,
                     conflict_on: str | Iterable[str] | None = None,
                     update_fields: Iterable[str] | None = None) -> dict[str, Any]:
        """Insert ``data``, or update the record it conflicts with; returns the record.

        On a soft-delete model, a conflict key that reaches a tombstoned record is refused
        (DF-405, nothing written): restore it first, or purge it to reuse the key.
        """
        record, _ = await self._upsert_counted(model, data, conflict_on=conflict_on,
                                               update_fields=update_fields)
        return record

    async def _upsert_counted(self, model: ModelRef, data: Mapping[str, Any], *,
                              conflict_on: str | Iterable[str] | None = None,
                              update_fields: Iterable[str] | None = None
                              ) -> tuple[dict[str, Any], dict[str, int]]:
        """:meth:`upsert`, and what happened to the record: ``{"inserted", "updated",
        "skipped"}``, one of them 1 (the Upsert node's output)."""
        try:
            result = await self.bulk_upsert(model, [data], conflict_on=conflict_on,
                                            update_fields=update_fields, _return_rows=True)
        except BulkValidationError as exc:
            # one record: raise its own error (DF-301/302/304...), as create does
            if len(exc.errors) == 1:
                raise exc.errors[0] from None
            raise
        rows: List[dict[str, Any]] = result.pop("records")
        counts = {"inserted": result["inserted"], "updated": result["updated"],
                  "skipped": result.get("skipped", 0)}
        if not rows:  # update_fields=[] met an existing record: it is returned unchanged
            names = ["id"] if conflict_on is None else (
                [conflict_on] if isinstance(conflict_on, str) else list(conflict_on))
            found = await self.find_one(model, {n: data[n] for n in names if n in data})
            if found is not None:
                return found, counts
        return rows[0], counts

    # --- bulk ----------------------------------------------------------------------------
    def _validate_rows(self, spec: ModelSpec, rows: Iterable[Mapping[str, Any]],
                       make: Callable[[Mapping[str, Any]], dict[str, Any]], partial: bool,
                       op: str) -> tuple[List[tuple[int, dict[str, Any]]], List[dict[str, Any]]]:
        if isinstance(rows, (Mapping, str, bytes)) or not isinstance(rows, Iterable):
            raise ValidationError(f"{op} takes a list of dicts, got {type(rows).__name__}.",
                                  model=spec.name)
        good: List[tuple[int, dict[str, Any]]] = []
        failed: List[dict[str, Any]] = []
        errors: List[DataFlowError] = []
        # a tight loop that allocates a dict per row and no cycles: pause the cyclic GC,
        # which would otherwise rescan every live row many times over (no await inside)
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            rows = rows if isinstance(rows, list) else list(rows)
            made: List[dict[str, Any]] = []
            append = made.append
            try:  # the usual case, every row valid: no per-row bookkeeping
                for data in rows:
                    append(make(data))
            except DataFlowError as exc:  # row len(made) failed; go on row by row after it
                start = len(made)
                made.append(None)  # type: ignore[arg-type]  # placeholder for the failed row
                failed.append(_failure(start, exc))
                errors.append(exc)
                for i in range(start + 1, len(rows)):
                    try:
                        made.append(make(rows[i]))
                    except DataFlowError as later:
                        failed.append(_failure(i, later))
                        errors.append(later)
                        made.append(None)  # type: ignore[arg-type]  # placeholder, dropped below
                bad = {f["index"] for f in failed}
                good = [(i, r) for i, r in enumerate(made) if i not in bad]
            else:
                good = list(enumerate(made))
        finally:
            if gc_was_enabled:
                gc.enable()
        if failed and not partial:
            first = failed[0]
            raise BulkValidationError(
                f"{len(failed)} of {len(good) + len(failed)} rows are invalid; nothing was "
                f"written. First: row {first['index']}: {first['error']}",
                failures=failed,
                errors=errors,
                model=spec.name,
                field=first.get("field"),
                fix="correct the rows listed in .failures, or pass partial=True to write the "
                "valid rows only.",
            )
        return good, failed

    async def bulk_create(self, model: ModelRef, rows: Iterable[Mapping[str, Any]], *,
                          partial: bool = False, batch_size: int = DEFAULT_BATCH,
                          on_progress: Progress | None = None) -> dict[str, Any]:
        """Insert many rows: ``{"inserted": n, "failed": [...]}``."""
        spec, v = await self._prepare(model)
        batch_size = _check_batch_size(spec, "bulk_create", batch_size)
        now = self._now()
        tenant = self._tenant(spec)
        adapter = self._db.adapter
        if (not partial and type(rows) is list and getattr(adapter, "accepts_encoded_rows", False)
                and (tenant is None or not self._tenant_refs(spec))):
            result = await self._bulk_create_encoded(spec, v, rows, now, batch_size, on_progress,
                                                     tenant)
            if result is not None:
                return result
        def make_for_tenant(d: Any) -> dict[str, Any]:
            self._explicit_auto_id(spec, d)
            return v.for_create(self._tenant_data(spec, d, tenant), now)

        good, failed = self._validate_rows(
            spec, rows, make_for_tenant if tenant is not None else v.creator(now), partial,
            "bulk_create")
        total = len(good)

        async def write(conn: Any) -> int:
            if tenant is not None:
                await self._check_tenant_refs(conn, spec, [r for _, r in good], tenant)
            done = 0
            groups: dict[tuple[str, ...], List[tuple[int, dict[str, Any]]]] = {}
            for item in good:
                groups.setdefault(tuple(item[1]), []).append(item)
            for columns, items in groups.items():
                for start in range(0, len(items), batch_size):
                    batch = items[start:start + batch_size]
                    done += await self._insert_batch(conn, spec, columns, batch, partial, failed)
                    if on_progress is not None:
                        on_progress(min(start + len(batch), total), total)
            return done

        if partial and good and not adapter.capabilities.savepoints:
            inserted = await self._insert_committing(spec, good, batch_size, failed, on_progress)
        else:
            # restartable unless partial: then ``failed`` collects across the attempt
            inserted = await self._db._run_atomic(write, restartable=not partial) if good else 0
        failed.sort(key=lambda f: f["index"])
        return {"inserted": inserted, "failed": failed, "ok": not failed}

    async def _insert_committing(self, spec: ModelSpec, good: List[tuple[int, dict[str, Any]]],
                                 batch_size: int, failed: List[dict[str, Any]],
                                 on_progress: Progress | None) -> int:
        """``partial=True`` on an adapter without savepoints: each batch is its own
        transaction; a batch the database refuses is rolled back and retried row by row, each
        row in its own transaction, so the valid rows are written and the others listed.
        Inside a caller's transaction there is no way to drop one failed row and keep the rest,
        so that is refused before anything is sent."""
        adapter = self._db.adapter
        if self._db.in_transaction():
            raise UnsupportedError(
                f"{adapter.capabilities.name} has no savepoints: bulk_create(partial=True) cannot "
                "skip failing rows inside a transaction. Nothing was written.",
                model=spec.name,
                fix="call it outside db.transaction() (each batch then commits on its own), or "
                "drop partial=True to keep the transaction all-or-nothing.")
        groups: dict[tuple[str, ...], List[tuple[int, dict[str, Any]]]] = {}
        for item in good:
            groups.setdefault(tuple(item[1]), []).append(item)
        total = len(good)
        written = 0
        for columns, items in groups.items():
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                try:
                    await self._db._run_atomic(
                        adapter.insert, Insert(spec, columns, [r for _, r in batch], returning=False))
                    written += len(batch)
                except IntegrityError:
                    for index, row in batch:
                        try:
                            await self._db._run_atomic(
                                adapter.insert, Insert(spec, columns, [row], returning=False))
                        except IntegrityError as exc:
                            failed.append(_failure(index, exc))
                        else:
                            written += 1
                if on_progress is not None:
                    on_progress(min(start + len(batch), total), total)
        return written

    def _row_encoder(self, spec: ModelSpec, v: RowValidator, columns: tuple[str, ...], now: Any
                     ) -> tuple[Callable[..., tuple[Any, ...] | None], Any]:
        """The fused validate-and-encode function for ``columns`` and the encoded ``now``."""
        encoders = tuple(self._db.adapter.value_encoders(spec, columns))  # type: ignore[attr-defined]
        stamp = encoders[columns.index("created_at")] if "created_at" in columns else None
        return v.tuple_creator(encoders, columns), now if stamp is None else stamp(now)

    @staticmethod
    def _encode_chunk(fused: Callable[..., tuple[Any, ...] | None], rows: List[Any], now: Any,
                      tenant: str | None = None) -> List[tuple[Any, ...]] | None:
        """``rows`` validated and encoded into driver tuples, or None if one needs the
        general path."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # tuples of immutable values: nothing for the cyclic GC to find
        try:
            if tenant is None:
                encoded = [fused(d, now) for d in rows]
            else:
                encoded = [fused(d, now, tenant) for d in rows]
        finally:
            if gc_was_enabled:
                gc.enable()
        if None in encoded:
            return None
        return encoded  # type: ignore[return-value]  # no None left

    def _encode_rows(self, spec: ModelSpec, v: RowValidator, rows: List[Any],
                     columns: tuple[str, ...], now: Any) -> List[tuple[Any, ...]] | None:
        """Every row validated and encoded into a driver tuple of ``columns``, or None as soon
        as one row needs the general path."""
        fused, now_value = self._row_encoder(spec, v, columns, now)
        return self._encode_chunk(fused, rows, now_value)

    async def _bulk_create_encoded(self, spec: ModelSpec, v: RowValidator, rows: List[Any],
                                   now: Any, batch_size: int, on_progress: Progress | None,
                                   tenant: str | None) -> dict[str, Any] | None:
        """The all-valid fast path: validate and encode each row straight into a driver tuple,
        ``batch_size`` rows at a time, and hand the batches to the adapter as they are
        encoded (PostgreSQL streams them all into one COPY), so memory holds one encoded
        batch, not an encoded copy of the whole input.

        Returns None when any row is not a plain valid dict; the general path then validates
        every row and names each error. A batch found invalid after earlier ones were sent
        rolls the write back first: nothing is written, exactly as on the general path.
        """
        adapter = self._db.adapter
        first = rows[0] if rows else None
        # explicit ids into an auto-increment key (every row must then give one)
        # (never under a tenant: such a row goes to the general path, which refuses it)
        with_id = (tenant is None and type(first) is dict and "id" in first
                   and spec.pk.auto_increment)
        columns = v.insert_columns(with_id=with_id)
        fused, now_value = self._row_encoder(spec, v, columns, now)
        total = len(rows)
        if not total:
            return {"inserted": 0, "failed": [], "ok": True}
        size = _encoded_batch_rows(adapter, batch_size)
        head = self._encode_chunk(fused, rows[:size], now_value, tenant)
        if head is None:
            return None  # nothing sent: the general path reports the row

        def encode_batches() -> Iterator[List[tuple[Any, ...]] | None]:
            yield head
            for start in range(size, total, size):
                yield self._encode_chunk(fused, rows[start:start + size], now_value, tenant)

        encoded: List[List[tuple[Any, ...]] | None] | None = None
        if self._db.in_transaction() and not adapter.capabilities.savepoints:
            # nothing could undo the batches sent before an invalid one: encode them all first
            encoded = list(encode_batches())
            if None in encoded:
                return None
        stream = _EncodedStream(lambda: encode_batches() if encoded is None else encoded,
                                None if on_progress is None else lambda done: on_progress(done, total))

        async def write(conn: Any) -> int:
            await stream.send(lambda batches: adapter.insert_encoded(  # type: ignore[attr-defined]
                conn, spec, columns, batches))
            return total

        try:
            inserted = await self._db._run_atomic(write, restartable=True)  # a fresh pass per call
        except _InvalidBatch:
            return None  # rolled back; the general path names the invalid rows
        return {"inserted": inserted, "failed": [], "ok": True}

    async def _bulk_upsert_encoded(self, spec: ModelSpec, v: RowValidator, rows: List[Any],
                                   conflict: tuple[str, ...], update_cols: tuple[str, ...] | None,
                                   now: Any, batch_size: int, tenant: str | None = None
                                   ) -> dict[str, Any] | None:
        """The all-valid fast path of bulk_upsert: every row a plain dict with the same keys,
        each validated and encoded straight into a driver tuple, no key repeated. Returns
        None otherwise; the general path then validates each row and names each error.

        Soft-delete and tenant-scoped models take it too, with the general path's checks in
        the same transaction: no key may reach a tombstoned row, an upsert by id must name
        the bound tenant's own rows (the tenant column is filled in by the encoder, a row
        naming another tenant declines). Models whose foreign keys point at tenant-scoped
        models keep the general path (each reference is checked against the tenant there)."""
        first = rows[0]
        if type(first) is not dict:
            return None
        keys = first.keys()
        for data in rows:
            if type(data) is not dict or data.keys() != keys:
                return None
        if any(c not in keys for c in conflict if not (tenant is not None and c == TENANT_FIELD)):
            return None  # the general path names the row that lacks a conflict field
        if (tenant is not None and "id" not in conflict and "id" in keys
                and spec.fields["id"].auto_increment):
            return None  # refused (an explicit id under a tenant) by the general path
        adapter = self._db.adapter
        columns = v.insert_columns(with_id="id" in first)
        if any(c not in columns for c in conflict):
            return None
        fused, now_value = self._row_encoder(spec, v, columns, now)
        total = len(rows)
        size = _encoded_batch_rows(adapter, batch_size)
        head = self._encode_chunk(fused, rows[:size], now_value, tenant)
        if head is None:
            return None  # nothing sent: the general path reports the row
        at = [columns.index(c) for c in conflict]

        def key_values(chunk: List[tuple[Any, ...]]) -> List[Any]:
            if len(at) == 1:
                i = at[0]
                return [t[i] for t in chunk]
            return [tuple([t[i] for i in at]) for t in chunk]

        head_keys = set(key_values(head))
        if len(head_keys) != len(head):
            return None  # a key repeats: the general path reports which rows

        def encode_batches() -> Iterator[List[tuple[Any, ...]] | None]:
            """The rows encoded ``size`` at a time; None (and the end) at a batch the general
            path must see: a row it cannot encode, or a key met in an earlier row."""
            yield head
            seen = set(head_keys)
            for start in range(size, total, size):
                chunk = self._encode_chunk(fused, rows[start:start + size], now_value, tenant)
                if chunk is None:
                    yield None
                    return
                seen.update(key_values(chunk))
                if len(seen) != start + len(chunk):
                    yield None
                    return
                yield chunk

        # the keys as canonical values, for the checks that read them back (only then; those
        # checks need every row valid first, so such models encode every batch up front, as
        # do adapters that could not undo batches sent before an invalid one)
        checked: List[tuple[Any, ...]] = []
        encoded: List[List[tuple[Any, ...]] | None] | None = None
        checks = spec.soft_delete or (tenant is not None and "id" in conflict)
        if checks or (self._db.in_transaction() and not adapter.capabilities.savepoints):
            encoded = list(encode_batches())
            if None in encoded:
                return None
        if checks:
            columns_values = [
                [tenant] * len(rows) if c == TENANT_FIELD and tenant is not None
                else self._canonical(spec, v, c, [d[c] for d in rows])
                for c in conflict]
            checked = list(zip(*columns_values, strict=True))
        given = tuple(k for k in first if k not in conflict and k != "id" and k != TENANT_FIELD)
        cols = update_cols if update_cols is not None else given
        if "updated_at" in spec.fields and cols:  # update_fields=[]: existing rows untouched
            cols = tuple(dict.fromkeys((*cols, "updated_at")))
        stream = _EncodedStream(lambda: encode_batches() if encoded is None else encoded)
        statement = Upsert(spec, columns, [], conflict, cols, returning=False)

        async def write(conn: Any) -> tuple[int, int]:
            if tenant is not None and "id" in conflict:
                at_id = conflict.index("id")
                await self._refuse_foreign_ids(conn, spec, [k[at_id] for k in checked], tenant)
            if spec.soft_delete:  # a key that reaches a tombstoned row is refused
                await self._refuse_tombstoned(conn, spec, conflict, checked, "upsert")
            out = await stream.send(
                lambda batches: adapter.upsert_encoded(conn, statement, batches))
            return out.inserted, out.updated

        try:
            inserted, updated = await self._db._run_atomic(write, restartable=True)
        except _InvalidBatch:
            return None  # rolled back; the general path names the invalid rows
        return {"inserted": inserted, "updated": updated, "failed": [], "ok": True}

    @staticmethod
    def _canonical(spec: ModelSpec, v: RowValidator, name: str, values: List[Any]) -> List[Any]:
        """Already validated values of one column as the checker returns them (values of
        exactly the stored type are returned as they are)."""
        exact = _EXACT.get(spec.fields[name].ltype)
        check = v.checkers[name]
        return [x if x is None or type(x) is exact else check(x) for x in values]

    async def _insert_batch(self, conn: Any, spec: ModelSpec, columns: tuple[str, ...],
                            batch: List[tuple[int, dict[str, Any]]], partial: bool,
                            failed: List[dict[str, Any]]) -> int:
        adapter = self._db.adapter
        stmt = Insert(spec, columns, [r for _, r in batch], returning=False)
        if not partial:
            await adapter.insert(conn, stmt)
            return len(batch)
        if adapter.sorts_partial_batches:  # no savepoints: the adapter finds the failing rows
            written, errors = await adapter.insert_partial(conn, stmt)
            failed.extend(_failure(batch[pos][0], exc) for pos, exc in errors)
            return written
        # partial: try the batch under a savepoint; on a constraint error, go row by row
        try:
            await adapter.savepoint(conn, "df_batch")
            await adapter.insert(conn, stmt)
            await adapter.release_savepoint(conn, "df_batch")
            return len(batch)
        except IntegrityError:
            await adapter.rollback_to_savepoint(conn, "df_batch")
            await adapter.release_savepoint(conn, "df_batch")
        written = 0
        for index, row in batch:
            await adapter.savepoint(conn, "df_row")
            try:
                await adapter.insert(conn, Insert(spec, columns, [row], returning=False))
            except IntegrityError as exc:
                await adapter.rollback_to_savepoint(conn, "df_row")
                failed.append(_failure(index, exc))
            else:
                written += 1
            await adapter.release_savepoint(conn, "df_row")
        return written

    async def bulk_update(self, model: ModelRef, filter_or_rows: Any,
                          fields: Mapping[str, Any] | None = None, *, confirmed: bool = False,
                          partial: bool = False) -> dict[str, Any]:
        """Update by filter (``bulk_update(M, {"active": False}, {"score": 0})``) or by rows
        with ids (``bulk_update(M, [{"id": 1, "score": 2}, ...])``): ``{"updated": n}``."""
        spec, v = await self._prepare(model)
        self._db._refuse_referenced_update(spec, "update")
        adapter = self._db.adapter
        now = self._now()
        if isinstance(filter_or_rows, Mapping):
            if fields is None:
                raise ValidationError("bulk_update by filter needs fields.", model=spec.name,
                                      fix="call bulk_update(model, filter, fields).")
            if not filter_or_rows and not confirmed:
                raise ConfirmationRequiredError(
                    "bulk_update with an empty filter would change every row.",
                    model=spec.name, fix="pass confirmed=True to update all rows.")
            where = self._where(spec, v, filter_or_rows)
            self._no_tenant_change(spec, fields)
            values = v.for_update(fields, now)
            tenant = self._tenant(spec)

            stmt = Update(spec, where, values)
            if (tenant is None or not self._tenant_refs(spec)) and adapter.update_atomic_alone(stmt):
                # one statement, atomic on its own: no BEGIN/COMMIT round trips around it
                n, _ = await self._db._run(adapter.update, stmt)
                return {"updated": n, "failed": [], "ok": True}

            async def update_where(conn: Any) -> int:
                if tenant is not None:
                    await self._check_tenant_refs(conn, spec, [values], tenant)
                n, _ = await adapter.update(conn, stmt)
                return n

            n = await self._db._run_atomic(update_where)
            return {"updated": n, "failed": [], "ok": True}

        def make(data: Mapping[str, Any]) -> dict[str, Any]:
            if not isinstance(data, Mapping) or "id" not in data:
                raise ValidationError("each row of bulk_update needs an 'id'.", model=spec.name,
                                      field="id", fix="include the primary key in every row.")
            rest = {k: val for k, val in data.items() if k != "id"}
            self._no_tenant_change(spec, rest)
            return {"id": v.key(data["id"]), **v.for_update(rest, now)}

        good, failed = self._validate_rows(spec, filter_or_rows, make, partial, "bulk_update")

        tenant = self._tenant(spec)

        async def write(conn: Any) -> int:
            if tenant is not None:
                await self._check_tenant_refs(conn, spec, [r for _, r in good], tenant)
            if spec.soft_delete:
                await self._refuse_tombstoned(conn, spec, ("id",), [(r["id"],) for _, r in good],
                                              "bulk_update")
            total = 0
            for _, row in good:
                key = row.pop("id")
                n, _ = await adapter.update(conn, Update(spec, self._by_id(spec, key), row))
                total += n
            return total

        updated = await self._db._run_atomic(write) if good else 0
        return {"updated": updated, "failed": failed, "ok": not failed}

    async def bulk_delete(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
                          confirmed: bool = False) -> dict[str, Any]:
        """Delete every row matching ``filter``; an empty filter needs ``confirmed=True``."""
        spec, v = await self._prepare(model)
        if not filter and not confirmed:
            raise ConfirmationRequiredError(
                "bulk_delete with an empty filter would delete every row.",
                model=spec.name, fix="pass confirmed=True to delete all rows.")
        where = self._where(spec, v, filter or {})
        adapter = self._db.adapter
        # one statement atomic on its own runs without BEGIN/COMMIT round trips around it
        if spec.soft_delete:  # tombstone the live rows that match
            self._db._refuse_referenced_update(spec, "soft-delete")
            tombstone = Update(spec, where, self._tombstone(spec, self._now()))
            run = self._db._run if adapter.update_atomic_alone(tombstone) else self._db._run_atomic
            n, _ = await run(adapter.update, tombstone)
        else:
            delete = Delete(spec, where)
            run = self._db._run if adapter.delete_atomic_alone(delete) else self._db._run_atomic
            n = await run(adapter.delete, delete)
        return {"deleted": n, "failed": [], "ok": True}

    async def bulk_upsert(self, model: ModelRef, rows: Iterable[Mapping[str, Any]], *,
                          conflict_on: str | Iterable[str] | None = None,
                          update_fields: Iterable[str] | None = None, partial: bool = False,
                          batch_size: int = DEFAULT_BATCH, _return_rows: bool = False
                          ) -> dict[str, Any]:
        """Insert rows or update those that conflict: ``{"inserted", "updated", "failed"}``."""
        spec, v = await self._prepare(model)
        batch_size = _check_batch_size(spec, "bulk_upsert", batch_size)
        self._db._refuse_referenced_update(spec, "upsert")
        if isinstance(rows, (Mapping, str, bytes)) or not isinstance(rows, Iterable):
            raise ValidationError(f"bulk_upsert takes a list of dicts, got {type(rows).__name__}.",
                                  model=spec.name)
        rows = list(rows)
        tenant = self._tenant(spec)
        if tenant is not None and conflict_on is not None:
            named = (conflict_on,) if isinstance(conflict_on, str) else tuple(conflict_on)
            conflict_on = named if TENANT_FIELD in named or named == ("id",) else (TENANT_FIELD, *named)
        conflict = self._conflict(spec, conflict_on, rows[0] if rows else {})
        now = self._now()
        seen: dict[tuple[Any, ...], int] = {}

        create = v.creator(now)
        single = conflict[0] if len(conflict) == 1 else None

        def lacks(c: str) -> ValidationError:
            return ValidationError(
                f"upsert row lacks conflict field '{c}'.", model=spec.name, field=c,
                fix=f"include {list(conflict)} in every row, or set conflict_on.")

        def make(data: Mapping[str, Any]) -> dict[str, Any]:
            if tenant is not None:
                if "id" not in conflict:  # by another key: the id would be inserted
                    self._explicit_auto_id(spec, data)
                data = self._tenant_data(spec, data, tenant)
            if type(data) is dict or isinstance(data, Mapping):  # skip the ABC check for dicts
                if single is not None:
                    if single not in data:
                        raise lacks(single)
                else:
                    for c in conflict:
                        if c not in data:
                            raise lacks(c)
            row = create(data)
            key = (row[single],) if single is not None else tuple([row[c] for c in conflict])
            if key in seen:
                raise ValidationError(
                    f"conflict key {list(key)!r:.80} repeats row {seen[key]} of this batch.",
                    model=spec.name, field=conflict[0],
                    fix="send each key once per batch.")
            seen[key] = len(seen)
            return row

        if update_fields is None:
            update_cols = None
        else:
            update_cols = _names(spec, update_fields, "update_fields")
            for c in update_cols:
                if c not in spec.writable or c in conflict:
                    raise ValidationError(f"update_fields names {c!r:.80}, which upsert cannot set.",
                                          model=spec.name, field=c[:80])
        adapter = self._db.adapter
        if (not partial and not _return_rows and type(rows) is list and rows
                and getattr(adapter, "accepts_encoded_rows", False)
                and (tenant is None or not self._tenant_refs(spec))):
            fast = await self._bulk_upsert_encoded(spec, v, rows, conflict, update_cols, now,
                                                   batch_size, tenant)
            if fast is not None:
                return _no_op_updates(fast, update_cols)
        good, failed = self._validate_rows(spec, rows, make, partial, "bulk_upsert")

        async def write(conn: Any) -> tuple[int, int, List[dict[str, Any]]]:
            if tenant is not None:
                if "id" in conflict:
                    await self._refuse_foreign_ids(conn, spec, [r["id"] for _, r in good], tenant)
                await self._check_tenant_refs(conn, spec, [r for _, r in good], tenant)
            if spec.soft_delete:  # a key that reaches a tombstoned row is refused
                await self._refuse_tombstoned(conn, spec, conflict,
                                              [tuple(r[c] for c in conflict) for _, r in good],
                                              "upsert")
            inserted = updated = 0
            records: List[dict[str, Any]] = []
            # an update sets only the fields the caller gave (defaults fill inserts only)
            groups: dict[tuple[tuple[str, ...], tuple[str, ...]], List[dict[str, Any]]] = {}
            given_of: dict[tuple[Any, ...], tuple[str, ...]] = {}  # per distinct key list
            for index, row in good:
                keys = tuple(rows[index])
                given = given_of.get(keys)
                if given is None:
                    given = given_of[keys] = tuple(k for k in keys if k not in conflict and k != "id"
                                                   and k != TENANT_FIELD)
                groups.setdefault((tuple(row), given), []).append(row)
            for (columns, given), items in groups.items():
                cols = update_cols if update_cols is not None else given
                if "updated_at" in spec.fields and cols:  # update_fields=[]: rows untouched
                    cols = tuple(dict.fromkeys((*cols, "updated_at")))
                for start in range(0, len(items), batch_size):
                    out = await adapter.upsert(conn, Upsert(spec, columns, items[start:start + batch_size],
                                                            conflict, cols, returning=_return_rows))
                    inserted += out.inserted
                    updated += out.updated
                    records.extend(out.rows)
            return inserted, updated, records

        if not good:
            return _no_op_updates({"inserted": 0, "updated": 0, "failed": failed, "ok": not failed,
                                   **({"records": []} if _return_rows else {})}, update_cols)
        # write keeps no state across calls: a deadlock victim (MySQL's gap locks, when
        # many callers upsert one new key at once) is restarted
        inserted, updated, records = await self._db._run_atomic(write, restartable=True)
        result: dict[str, Any] = {"inserted": inserted, "updated": updated, "failed": failed,
                                  "ok": not failed}
        if _return_rows:
            result["records"] = records
        return _no_op_updates(result, update_cols)

    async def _refuse_foreign_ids(self, conn: Any, spec: ModelSpec, ids: List[Any], tenant: str) -> None:
        """An upsert by id must not reach a row another tenant owns (checked in its transaction).

        With an auto-increment key it must not insert a chosen id either (one tenant could use
        up the shared sequence), so every id must name a record of the bound tenant; the error
        is then the same whether an id is unused or another tenant's, revealing nothing."""
        from .query.ast import Not

        own_only = spec.fields["id"].auto_increment
        for start in range(0, len(ids), 500):
            chunk = tuple(ids[start:start + 500])
            if own_only:
                where: Expr = And((InList("id", chunk), Comparison(TENANT_FIELD, "eq", tenant)))
                refused = await self._db.adapter.count(conn, Count(spec, where)) != len(set(chunk))
            else:
                where = And((InList("id", chunk), Not(Comparison(TENANT_FIELD, "eq", tenant))))
                refused = bool(await self._db.adapter.count(conn, Count(spec, where)))
            if refused:
                raise TenantViolationError(
                    "an upsert by id names ids that are not records of the bound tenant; "
                    "nothing was written.", model=spec.name, field="id",
                    fix="upsert by id updates the bound tenant's own records only: create new "
                    "ones without an id, or upsert on another unique field.")

    # --- by key helpers --------------------------------------------------------------------
    async def read_many(self, model: ModelRef, ids: Iterable[Any], *,
                        include_deleted: bool = False) -> List[dict[str, Any]]:
        """Records whose id is in ``ids`` (missing ids are skipped)."""
        spec, v = await self._prepare(model)
        keys = tuple(v.key(i) for i in ids)
        where = self._scoped(spec, InList("id", keys),
                             _check_flag(spec, "include_deleted", include_deleted))
        return await self._db._run(self._db.adapter.select, Select(spec, where))


#: the operations that change rows; each announces its model to ``db.on_write`` listeners
WRITE_OPERATIONS = ("create", "update", "delete", "restore", "purge", "upsert",
                    "bulk_create", "bulk_update", "bulk_delete", "bulk_upsert")


#: set while a write operation runs, so writes it makes through other operations stay quiet
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("dataflow_express_writing",
                                                                default=False)


def _announcing(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def write(self: Express, model: ModelRef, *args: Any, **kwargs: Any) -> Any:
        db = self._db
        if not db._write_listeners or _writing.get():
            return await method(self, model, *args, **kwargs)
        token = _writing.set(True)
        try:
            result = await method(self, model, *args, **kwargs)
        finally:
            _writing.reset(token)
        db._wrote(db.get_model(model).name)  # after the statement (or its transaction) committed
        return result

    return write


for _op in WRITE_OPERATIONS:
    setattr(Express, _op, _announcing(getattr(Express, _op)))


class ExpressSync:
    """The same operations, blocking; usable with or without a running event loop.

    Each call runs on DataFlow's background loop (``dataflow.portal``), so no event loop
    is ever nested.
    """

    def __init__(self, db: DataFlow) -> None:
        self._express = db.express

    @staticmethod
    def _call(coro: Any) -> Any:
        from . import portal

        return portal.call(coro)

    def create(self, model: ModelRef, data: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(self._express.create(model, data))  # type: ignore[no-any-return]

    def read(self, model: ModelRef, id: Any, *, for_update: bool = False,
             include_deleted: bool = False) -> dict[str, Any] | None:
        return self._call(self._express.read(  # type: ignore[no-any-return]
            model, id, for_update=for_update, include_deleted=include_deleted))

    def find_one(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
                 order_by: Any = None, include_deleted: bool = False) -> dict[str, Any] | None:
        return self._call(self._express.find_one(  # type: ignore[no-any-return]
            model, filter, order_by=order_by, include_deleted=include_deleted))

    def list(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
             order_by: str | Iterable[str] | None = None, limit: int | None = None,
             offset: int | None = None, include_deleted: bool = False) -> List[dict[str, Any]]:
        return self._call(self._express.list(  # type: ignore[no-any-return]
            model, filter, order_by=order_by, limit=limit, offset=offset,
            include_deleted=include_deleted))

    def count(self, model: ModelRef, filter: Mapping[str, Any] | None = None, *,
              include_deleted: bool = False) -> int:
        return self._call(self._express.count(  # type: ignore[no-any-return]
            model, filter, include_deleted=include_deleted))

    def update(self, model: ModelRef, id: Any, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call(self._express.update(model, id, fields))  # type: ignore[no-any-return]

    def delete(self, model: ModelRef, id: Any) -> bool:
        return self._call(self._express.delete(model, id))  # type: ignore[no-any-return]

    def restore(self, model: ModelRef, id: Any) -> dict[str, Any] | None:
        return self._call(self._express.restore(model, id))  # type: ignore[no-any-return]

    def purge(self, model: ModelRef, id: Any) -> bool:
        return self._call(self._express.purge(model, id))  # type: ignore[no-any-return]

    def upsert(self, model: ModelRef, data: Mapping[str, Any], **options: Any) -> dict[str, Any]:
        return self._call(self._express.upsert(model, data, **options))  # type: ignore[no-any-return]

    def bulk_create(self, model: ModelRef, rows: Iterable[Mapping[str, Any]], **options: Any
                    ) -> dict[str, Any]:
        return self._call(self._express.bulk_create(model, rows, **options))  # type: ignore[no-any-return]

    def bulk_update(self, model: ModelRef, filter_or_rows: Any,
                    fields: Mapping[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        return self._call(self._express.bulk_update(  # type: ignore[no-any-return]
            model, filter_or_rows, fields, **options))

    def bulk_delete(self, model: ModelRef, filter: Mapping[str, Any] | None = None,
                    **options: Any) -> dict[str, Any]:
        return self._call(self._express.bulk_delete(model, filter, **options))  # type: ignore[no-any-return]

    def bulk_upsert(self, model: ModelRef, rows: Iterable[Mapping[str, Any]], **options: Any
                    ) -> dict[str, Any]:
        return self._call(self._express.bulk_upsert(model, rows, **options))  # type: ignore[no-any-return]

    def read_many(self, model: ModelRef, ids: Iterable[Any], *, include_deleted: bool = False
                  ) -> List[dict[str, Any]]:
        return self._call(self._express.read_many(  # type: ignore[no-any-return]
            model, ids, include_deleted=include_deleted))
