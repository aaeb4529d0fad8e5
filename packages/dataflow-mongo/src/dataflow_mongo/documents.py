"""Schemaless documents: ``db.documents("events")`` and the eight document nodes' engine.

Every operation checks its input with :mod:`.security` before anything is sent, runs in
the caller's ``db.transaction()`` when there is one, and, on a ``multi_tenant`` instance,
is scoped to the bound tenant: inserts get ``tenant_id``, every filter, update and
aggregation carries the tenant predicate (a collection belonging to a model declared
``tenant_scoped: False`` is shared).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument  # noqa: F401  (re-exported for callers building options)
from pymongo.errors import PyMongoError

from dataflow.errors import TenantRequiredError, TenantViolationError, ValidationError
from dataflow.model import TENANT_FIELD

from .adapter import COUNTERS, SCHEMAS, MongoConn, _translate
from .security import check_document, check_filter, check_name, check_pipeline, check_update, refuse

if TYPE_CHECKING:
    from dataflow.core import DataFlow

    from .adapter import MongoAdapter

_RESERVED_PREFIXES = ("system.", "__dataflow")


def check_collection(name: Any) -> str:
    if (not isinstance(name, str) or not name or len(name) > 120 or "$" in name or "\x00" in name
            or name.startswith(_RESERVED_PREFIXES) or name in (COUNTERS, SCHEMAS)):
        raise refuse(f"{name!r:.80} is not a collection name DataFlow may use.", field="collection",
                     fix="use letters, digits, '_' and '.', not starting with 'system.' or "
                     "'__dataflow'.")
    return name


def _non_negative(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise refuse(f"{name} must be a non-negative int, got {value!r:.40}.", field=name)
    return value


def _direction_list(value: Any, what: str) -> list[tuple[str, int]]:
    """``[("field", 1 | -1), ...]`` checked."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        raise refuse(f"{what} takes a non-empty list of (field, 1 | -1) pairs, got {value!r:.80}.",
                     field=what, fix=f'e.g. {what}=[("created", -1)].')
    out = []
    for item in value:
        if (not isinstance(item, (list, tuple)) or len(item) != 2 or isinstance(item[1], bool)
                or item[1] not in (1, -1)):
            raise refuse(f"{what}: {item!r:.60} is not a (field, 1 | -1) pair.", field=what)
        out.append((check_name(item[0], what, path=True), int(item[1])))
    return out


def _projection(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise refuse(f"projection takes a dict of field: 0 | 1, got {type(value).__name__}.",
                     field="projection")
    out = {}
    for k, v in value.items():
        check_name(k, "projection", path=True)
        if isinstance(v, bool):
            v = int(v)
        if v not in (0, 1):
            raise refuse(f"projection: {k!r:.40} must be 0 or 1 (expressions are not taken).",
                         field="projection")
        out[k] = v
    return out


class DocumentCollection:
    """Async operations on one collection of schemaless documents."""

    def __init__(self, db: DataFlow, adapter: MongoAdapter, name: str) -> None:
        self.db = db
        self.adapter = adapter
        self.name = check_collection(name)

    def __repr__(self) -> str:
        return f"DocumentCollection({self.name!r})"

    # --- tenancy -------------------------------------------------------------------------
    def _scope_of(self, collection: str) -> dict[str, Any] | None:
        """The tenant condition for ``collection``, or None where it is not scoped."""
        if not self.db.multi_tenant:
            return None
        for spec in self.db.models.values():
            if spec.table == collection and not spec.tenant_scoped:
                return None
        tenant = self.db.current_tenant()
        if tenant is None:
            raise TenantRequiredError(
                "no tenant is bound for a tenant-scoped collection; nothing was sent to the "
                "database.", fix='wrap the call in: async with db.tenant("<tenant id>"):')
        return {TENANT_FIELD: {"$eq": tenant}}

    def _scoped(self, flt: dict[str, Any]) -> dict[str, Any]:
        condition = self._scope_of(self.name)
        if condition is None:
            return flt
        return condition if not flt else {"$and": [condition, flt]}

    def _stamp(self, doc: dict[str, Any]) -> dict[str, Any]:
        condition = self._scope_of(self.name)
        if condition is None:
            return doc
        tenant = condition[TENANT_FIELD]["$eq"]
        if doc.get(TENANT_FIELD, tenant) != tenant:
            raise TenantViolationError(
                f"tenant_id {doc.get(TENANT_FIELD)!r:.60} differs from the bound tenant; nothing "
                "was written.", field=TENANT_FIELD, fix="omit tenant_id (DataFlow sets it).")
        return {**doc, TENANT_FIELD: tenant}

    def _no_tenant_change(self, update: dict[str, Any]) -> None:
        if self._scope_of(self.name) is None:
            return
        for fields in update.values():
            for path in fields:
                if path == TENANT_FIELD or path.startswith(TENANT_FIELD + "."):
                    raise TenantViolationError("tenant_id cannot be changed by an update; nothing "
                                               "was written.", field=TENANT_FIELD)

    # --- running -------------------------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        async def call(conn: MongoConn) -> Any:
            try:
                return await fn(conn, conn.db[self.name], *args)
            except PyMongoError as exc:
                raise _translate(exc) from exc

        return await self.db._run(call)

    # --- operations ----------------------------------------------------------------------
    async def insert_one(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one document: ``{"inserted_id": ...}`` (an ObjectId unless ``_id`` is given)."""
        doc = self._stamp(check_document(document, "document"))

        async def run(conn: MongoConn, coll: Any) -> Any:
            return (await coll.insert_one(doc, session=conn.session)).inserted_id

        return {"inserted_id": await self._run(run)}

    async def insert_many(self, documents: Any) -> dict[str, Any]:
        """Insert documents, all or nothing (one transaction where none is open):
        ``{"inserted_ids": [...], "inserted": n}``."""
        if isinstance(documents, (Mapping, str, bytes)) or not isinstance(documents, (list, tuple)):
            raise refuse(f"documents takes a list of dicts, got {type(documents).__name__}.",
                         field="documents")
        docs = []
        for i, d in enumerate(documents):
            try:
                docs.append(self._stamp(check_document(d, f"documents[{i}]")))
            except ValidationError as exc:
                raise type(exc)(f"documents[{i}]: {exc.message}", field=exc.field,
                                fix=exc.fix) from None
        if not docs:
            return {"inserted_ids": [], "inserted": 0}

        async def run(conn: MongoConn) -> list[Any]:
            try:
                result = await conn.db[self.name].insert_many(docs, ordered=True,
                                                              session=conn.session)
            except PyMongoError as exc:
                raise _translate(exc) from exc
            return list(result.inserted_ids)

        ids = await self.db._run_atomic(run)
        return {"inserted_ids": ids, "inserted": len(ids)}

    async def find(self, filter: Mapping[str, Any] | None = None, *, projection: Any = None,
                   sort: Any = None, limit: Any = None, skip: Any = None) -> list[dict[str, Any]]:
        flt = self._scoped(check_filter(filter))
        proj = _projection(projection)
        order = _direction_list(sort, "sort") if sort is not None else None
        lim = _non_negative("limit", limit)
        off = _non_negative("skip", skip)
        if lim == 0:
            return []

        async def run(conn: MongoConn, coll: Any) -> list[dict[str, Any]]:
            cursor = coll.find(flt, proj, session=conn.session)
            if order:
                cursor = cursor.sort(order)
            if off:
                cursor = cursor.skip(off)
            if lim is not None:
                cursor = cursor.limit(lim)
            return [d async for d in cursor]

        result: list[dict[str, Any]] = await self._run(run)
        return result

    async def find_one(self, filter: Mapping[str, Any] | None = None, **options: Any
                       ) -> dict[str, Any] | None:
        found = await self.find(filter, limit=1, **options)
        return found[0] if found else None

    async def update(self, filter: Mapping[str, Any] | None, update: Mapping[str, Any], *,
                     many: bool = False, upsert: bool = False) -> dict[str, Any]:
        """Apply update operators to the first (or, with ``many``, every) matching document:
        ``{"matched": n, "modified": n, "upserted_id": id | None}``."""
        flt = self._scoped(check_filter(filter))
        change = check_update(update)
        self._no_tenant_change(change)
        for name, flag in (("many", many), ("upsert", upsert)):
            if not isinstance(flag, bool):
                raise refuse(f"{name} must be True or False, got {flag!r:.40}.", field=name)
        condition = self._scope_of(self.name)
        if upsert and condition is not None:  # a document the upsert creates is the tenant's
            tenant = condition[TENANT_FIELD]["$eq"]
            change = {**change, "$setOnInsert": {**change.get("$setOnInsert", {}),
                                                 TENANT_FIELD: tenant}}

        async def run(conn: MongoConn, coll: Any) -> dict[str, Any]:
            op = coll.update_many if many else coll.update_one
            result = await op(flt, change, upsert=upsert, session=conn.session)
            return {"matched": result.matched_count, "modified": result.modified_count,
                    "upserted_id": result.upserted_id}

        out: dict[str, Any] = await self._run(run)
        return out

    async def delete(self, filter: Mapping[str, Any] | None, *, many: bool = False) -> dict[str, Any]:
        """Delete the first (or, with ``many``, every) matching document. An empty filter
        with ``many=True`` empties the collection: it must be written as ``{}``."""
        if filter is None:
            raise refuse("delete needs a filter ({} to match every document).", field="filter")
        flt = self._scoped(check_filter(filter))
        if not isinstance(many, bool):
            raise refuse(f"many must be True or False, got {many!r:.40}.", field="many")

        async def run(conn: MongoConn, coll: Any) -> int:
            op = coll.delete_many if many else coll.delete_one
            return int((await op(flt, session=conn.session)).deleted_count)

        return {"deleted": await self._run(run)}

    async def count(self, filter: Mapping[str, Any] | None = None) -> int:
        flt = self._scoped(check_filter(filter))

        async def run(conn: MongoConn, coll: Any) -> int:
            return int(await coll.count_documents(flt, session=conn.session))

        result: int = await self._run(run)
        return result

    async def aggregate(self, pipeline: Any) -> list[dict[str, Any]]:
        """Run an aggregation pipeline (checked: no JavaScript, no $out/$merge, tenant-scoped)."""
        stages = check_pipeline(pipeline, scope=self._scope_of, collection=self.name)

        async def run(conn: MongoConn, coll: Any) -> list[dict[str, Any]]:
            cursor = await coll.aggregate(stages, session=conn.session)
            return [d async for d in cursor]

        result: list[dict[str, Any]] = await self._run(run)
        return result

    async def create_index(self, keys: Any, *, unique: bool = False) -> str:
        """Create an index on ``[("field", 1 | -1), ...]``; returns its name."""
        spec = _direction_list(keys, "keys")
        if not isinstance(unique, bool):
            raise refuse(f"unique must be True or False, got {unique!r:.40}.", field="unique")
        if unique and self._scope_of(self.name) is not None and spec[0][0] != TENANT_FIELD:
            spec = [(TENANT_FIELD, 1), *spec]  # uniqueness holds within a tenant

        async def run(conn: MongoConn, coll: Any) -> str:
            return str(await coll.create_index(spec, unique=unique))

        result: str = await self._run(run)
        return result
