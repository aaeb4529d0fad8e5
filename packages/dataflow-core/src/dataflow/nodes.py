"""Workflow nodes: eleven per model, plus what adapters contribute through the hook.

``UserCreateNode`` (alias ``User_Create``) is resolved by name among the live
DataFlow instances; when two live instances define ``User``, a lookup without
``db_instance`` is ambiguous and raises a DF error naming both.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from .errors import (
    AmbiguousNodeError,
    NodeNotFoundError,
    RecordNotFoundError,
    ValidationError,
    did_you_mean,
)
from .express import DEFAULT_BATCH
from .streaming import DEFAULT_STREAM_BATCH

if TYPE_CHECKING:
    from .core import DataFlow

OPERATIONS = (
    "Create", "Read", "Update", "Delete", "List", "Upsert", "Count",
    "BulkCreate", "BulkUpdate", "BulkDelete", "BulkUpsert",
)
RESERVED = frozenset(["db_instance", "model_name"])
#: parameters each node type takes (besides RESERVED)
READ_PARAMS = frozenset({"id", "raise_on_not_found", "include_deleted"})
UPDATE_PARAMS = frozenset({"id", "filter", "fields"})
DELETE_PARAMS = frozenset({"id", "filter"})
LIST_PARAMS = frozenset({"filter", "order_by", "limit", "offset", "include_deleted", "stream",
                         "batch_size"})
COUNT_PARAMS = frozenset({"filter", "include_deleted"})
UPSERT_PARAMS = frozenset({"data", "conflict_on", "update_fields"})
BULK_CREATE_PARAMS = frozenset({"data", "partial", "batch_size", "conflict_resolution",
                                "conflict_on"})
#: what BulkCreate does with a row whose key already exists
CONFLICT_RESOLUTIONS = ("error", "skip", "update")
BULK_UPDATE_PARAMS = frozenset({"filter", "fields", "data", "confirmed", "partial"})
BULK_DELETE_PARAMS = frozenset({"filter", "confirmed"})
BULK_UPSERT_PARAMS = frozenset({"data", "conflict_on", "update_fields", "partial", "batch_size"})


class Node(Protocol):
    """What the runtime executes: ``await node.run(params)`` returns the output dict.

    A node may also declare, for ``WorkflowBuilder.build()`` to check connections against:
    ``outputs()`` -- output key -> the keys inside it (a record's fields) or None (not
    checked further); ``inputs()`` -- the parameter names it takes, or None for any.
    """

    type_name: str

    async def run(self, params: dict[str, Any]) -> dict[str, Any]: ...


#: What each operation returns, one shape per kind of node (README, "Nodes"):
#:
#: * one record (Create, Read, Update, Delete, Upsert): ``{"record": record or None, <counts>}``
#:   -- ``record`` is the record as stored (Delete: as it was before the delete; None when
#:   there was none), and the counts (ints, 0 or 1) say what happened to it, in the words the
#:   bulk nodes use: ``inserted``, ``found``, ``updated``, ``deleted``, ``skipped``;
#: * many records (List): ``{"records": [...], "count": n}`` (``stream=True``: ``{"stream"}``);
#: * a number (Count): ``{"count": n}``;
#: * bulk writes: their counts, ``failed`` (the rows refused, ``[]`` unless ``partial=True``)
#:   and ``ok`` (no row failed) -- every key present every time.
#:
#: ``"record"`` maps to ``"*"``: its keys are the model's fields (checked by ``build()``).
_OUTPUTS: dict[str, dict[str, str | None]] = {
    "Create": {"record": "*", "inserted": None},
    "Read": {"record": "*", "found": None},
    "Update": {"record": "*", "updated": None},
    "Delete": {"record": "*", "deleted": None},
    "Upsert": {"record": "*", "inserted": None, "updated": None, "skipped": None},
    "List": {"records": None, "count": None},
    "Count": {"count": None},
    "BulkCreate": {"inserted": None, "updated": None, "skipped": None, "failed": None,
                   "ok": None},
    "BulkUpdate": {"updated": None, "failed": None, "ok": None},
    "BulkDelete": {"deleted": None, "failed": None, "ok": None},
    "BulkUpsert": {"inserted": None, "updated": None, "skipped": None, "failed": None,
                   "ok": None},
}
#: List with ``stream=True`` returns this instead (an async iterator of records)
STREAM_OUTPUTS: dict[str, str | None] = {"stream": None}


def _only(params: Mapping[str, Any], allowed: frozenset[str], node: str) -> None:
    for key in params:
        if key not in allowed and key not in RESERVED:
            name = key[:80] if isinstance(key, str) else repr(key)[:80]
            raise ValidationError(
                f"{node} does not take parameter {key!r:.80}.{did_you_mean(name, allowed)}",
                field=name, fix=f"use: {', '.join(sorted(allowed))}.")


class ModelNode:
    """One operation on one model of one DataFlow instance."""

    def __init__(self, db: DataFlow, model: str, op: str) -> None:
        self.db = db
        self.model = model
        self.op = op
        self.type_name = f"{model}{op}Node"
        self._run: Callable[[dict[str, Any]], Any] = getattr(self, f"_{op.lower()}")

    def __repr__(self) -> str:
        return f"<{self.type_name} of {self.db.name}>"

    def outputs(self) -> dict[str, frozenset[str] | None]:
        """Output keys, and for a nested record the model's fields (connection checks)."""
        fields = frozenset(self.db.get_model(self.model).fields)
        shape = dict(_OUTPUTS[self.op])
        if self.op == "List":
            shape.update(STREAM_OUTPUTS)
        return {key: fields if inner == "*" else None for key, inner in shape.items()}

    def inputs(self) -> frozenset[str]:
        """Parameter names this node takes (connection checks)."""
        allowed = _INPUTS[self.op]
        if self.op in ("Create", "Upsert"):  # the record's fields as parameters
            allowed = allowed | frozenset(self.db.get_model(self.model).fields)
        return allowed | RESERVED

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        named = params.get("model_name")
        if named is not None and named != self.model:
            raise ValidationError(
                f"{self.type_name} operates on {self.model}, but model_name is {named!r:.80}.",
                model=self.model, field="model_name",
                fix=f"use {named}{self.op}Node for {named}, or drop model_name (the node's name "
                "already says the model)." if isinstance(named, str) else "drop model_name.")
        observer = self.db._observer
        if observer is not None and observer.tracer is not None:
            with observer.span(f"dataflow.node {self.type_name}", **{
                    "dataflow.model": self.model, "dataflow.operation": self.op}):
                observed: dict[str, Any] = await self._run(params)
            return observed
        result: dict[str, Any] = await self._run(params)
        return result

    def _data(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in RESERVED}

    async def _single_id(self, params: Mapping[str, Any]) -> tuple[bool, Any]:
        """Resolve ``id`` or a ``filter`` matching at most one row."""
        if "id" in params:
            return True, params["id"]
        if "filter" not in params:
            raise ValidationError(f"{self.type_name} needs 'id' or 'filter'.", model=self.model)
        rows = await self.db.express.list(self.model, params["filter"], limit=2)
        if len(rows) > 1:
            op = "BulkUpdate" if self.op == "Update" else "BulkDelete"
            raise ValidationError(
                f"{self.type_name}: the filter matches more than one row.",
                model=self.model, fix=f"narrow the filter, or use {self.model}{op}Node.")
        return bool(rows), rows[0]["id"] if rows else None

    async def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"record": await self.db.express.create(self.model, self._data(params)),
                "inserted": 1}

    async def _read(self, params: dict[str, Any]) -> dict[str, Any]:
        """Not found: ``{"record": None, "found": 0}``, as ``express.read`` returns None;
        ``raise_on_not_found=True`` raises DF-404 instead (stop the workflow there)."""
        _only(params, READ_PARAMS, self.type_name)
        if "id" not in params:
            raise ValidationError(f"{self.type_name} needs 'id'.", model=self.model, field="id")
        strict = params.get("raise_on_not_found", False)
        if not isinstance(strict, bool):
            raise ValidationError(
                f"{self.type_name}: raise_on_not_found must be True or False, got "
                f"{strict!r:.40}.", model=self.model, field="raise_on_not_found",
                fix="pass True (DF-404 when there is no such record) or False (the default).")
        record = await self.db.express.read(self.model, params["id"],
                                            include_deleted=params.get("include_deleted", False))
        if record is None and strict:
            raise RecordNotFoundError(
                f"no record with id {params['id']!r:.80}.", model=self.model, field="id",
                fix='leave out raise_on_not_found to get {"record": None, "found": 0} instead.')
        return {"record": record, "found": 0 if record is None else 1}

    async def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, UPDATE_PARAMS, self.type_name)
        if "fields" not in params:
            raise ValidationError(f"{self.type_name} needs 'fields'.", model=self.model,
                                  fix='pass {"id": ..., "fields": {...}}.')
        found, key = await self._single_id(params)
        record = await self.db.express.update(self.model, key, params["fields"]) if found else None
        return {"record": record, "updated": 0 if record is None else 1}

    async def _delete(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, DELETE_PARAMS, self.type_name)
        found, key = await self._single_id(params)
        record = await self.db.express._delete_returning(self.model, key) if found else None
        return {"record": record, "deleted": 0 if record is None else 1}

    async def _list(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, LIST_PARAMS, self.type_name)
        stream = params.get("stream", False)
        if not isinstance(stream, bool):
            raise ValidationError(f"{self.type_name}: stream must be True or False, got "
                                  f"{stream!r:.40}.", field="stream")
        if stream:
            if params.get("offset"):
                raise ValidationError(f"{self.type_name}: offset does not apply to a stream.",
                                      field="offset", fix="filter on the order key instead.")
            # the records are read as the next node consumes them (async for row in stream)
            return {"stream": self.db.express.stream(
                self.model, params.get("filter"), order_by=params.get("order_by"),
                limit=params.get("limit"), include_deleted=params.get("include_deleted", False),
                batch_size=params.get("batch_size", DEFAULT_STREAM_BATCH))}
        if "batch_size" in params:
            raise ValidationError(f"{self.type_name}: batch_size applies with stream=True only.",
                                  field="batch_size", fix="pass stream=True, or leave it out.")
        records = await self.db.express.list(
            self.model, params.get("filter"), order_by=params.get("order_by"),
            limit=params.get("limit"), offset=params.get("offset"),
            include_deleted=params.get("include_deleted", False))
        return {"records": records, "count": len(records)}

    async def _count(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, COUNT_PARAMS, self.type_name)
        return {"count": await self.db.express.count(
            self.model, params.get("filter"), include_deleted=params.get("include_deleted", False))}

    async def _upsert(self, params: dict[str, Any]) -> dict[str, Any]:
        spec = self.db.get_model(self.model)
        opts = {k: params[k] for k in ("conflict_on", "update_fields") if k in params
                and k not in spec.fields}
        if "data" in params and "data" not in spec.fields:
            _only(params, UPSERT_PARAMS, self.type_name)
            data = params["data"]
        else:
            data = {k: v for k, v in self._data(params).items() if k not in opts}
        record, counts = await self.db.express._upsert_counted(self.model, data, **opts)
        return {"record": record, **counts}

    async def _bulkcreate(self, params: dict[str, Any]) -> dict[str, Any]:
        """``conflict_resolution``: ``"error"`` (default: a row whose key exists fails the
        batch, DF-902), ``"skip"`` (such rows are left as stored and counted in ``skipped``),
        ``"update"`` (they are updated, counted in ``updated``); the key is ``conflict_on``
        (default ``id``)."""
        _only(params, BULK_CREATE_PARAMS, self.type_name)
        mode = params.get("conflict_resolution", "error")
        if mode not in CONFLICT_RESOLUTIONS:
            raise ValidationError(
                f"{self.type_name}: conflict_resolution must be one of "
                f"{', '.join(map(repr, CONFLICT_RESOLUTIONS))}, got {mode!r:.40}.",
                model=self.model, field="conflict_resolution",
                fix='pass "error" (the default), "skip" or "update".')
        partial = params.get("partial", False)
        batch_size = params.get("batch_size", DEFAULT_BATCH)
        if mode == "error":
            if "conflict_on" in params:
                raise ValidationError(
                    f"{self.type_name}: conflict_on applies with conflict_resolution "
                    '"skip" or "update" only.', model=self.model, field="conflict_on",
                    fix='add conflict_resolution="skip" or "update", or drop conflict_on.')
            out = await self.db.express.bulk_create(
                self.model, params.get("data", []), partial=partial, batch_size=batch_size)
            return _bulk_shape(out, "BulkCreate")
        out = await self.db.express.bulk_upsert(
            self.model, params.get("data", []), conflict_on=params.get("conflict_on"),
            update_fields=[] if mode == "skip" else None, partial=partial, batch_size=batch_size)
        return _bulk_shape(out, "BulkCreate")

    async def _bulkupdate(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, BULK_UPDATE_PARAMS, self.type_name)
        if "data" in params:
            return _bulk_shape(await self.db.express.bulk_update(
                self.model, params["data"], partial=params.get("partial", False)), "BulkUpdate")
        return _bulk_shape(await self.db.express.bulk_update(
            self.model, params.get("filter", {}), params.get("fields"),
            confirmed=params.get("confirmed", False)), "BulkUpdate")

    async def _bulkdelete(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, BULK_DELETE_PARAMS, self.type_name)
        return _bulk_shape(await self.db.express.bulk_delete(
            self.model, params.get("filter", {}), confirmed=params.get("confirmed", False)),
            "BulkDelete")

    async def _bulkupsert(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, BULK_UPSERT_PARAMS, self.type_name)
        return _bulk_shape(await self.db.express.bulk_upsert(
            self.model, params.get("data", []), conflict_on=params.get("conflict_on"),
            update_fields=params.get("update_fields"), partial=params.get("partial", False),
            batch_size=params.get("batch_size", DEFAULT_BATCH)), "BulkUpsert")


def _bulk_shape(out: Mapping[str, Any], op: str) -> dict[str, Any]:
    """A bulk node's output: exactly its documented keys, a count the write did not produce
    (``skipped`` without ``update_fields=[]``, ``updated`` without a conflict) being 0."""
    return {key: out.get(key, [] if key == "failed" else 0) for key in _OUTPUTS[op]}


_INPUTS: dict[str, frozenset[str]] = {
    "Create": frozenset(), "Read": READ_PARAMS, "Update": UPDATE_PARAMS, "Delete": DELETE_PARAMS,
    "List": LIST_PARAMS, "Count": COUNT_PARAMS, "Upsert": UPSERT_PARAMS,
    "BulkCreate": BULK_CREATE_PARAMS, "BulkUpdate": BULK_UPDATE_PARAMS,
    "BulkDelete": BULK_DELETE_PARAMS, "BulkUpsert": BULK_UPSERT_PARAMS,
}


# --- lookup -----------------------------------------------------------------------------
_lock = threading.Lock()
#: per instance (weak: a cache entry neither keeps an instance alive nor outlives it)
_extra_cache: weakref.WeakKeyDictionary[DataFlow, dict[str, Callable[..., Any]]] = (
    weakref.WeakKeyDictionary())


def invalidate_node_cache() -> None:
    with _lock:
        _extra_cache.clear()


def _extra_nodes(db: DataFlow) -> dict[str, Callable[..., Any]]:
    with _lock:
        cached = _extra_cache.get(db)
    if cached is None:
        from . import plugins

        cached = plugins.node_types(db)
        with _lock:
            _extra_cache[db] = cached
    return cached


_BY_LENGTH = tuple(sorted(OPERATIONS, key=len, reverse=True))


@lru_cache(maxsize=1024)
def _parse_name(type_name: str) -> tuple[str, str] | None:
    if "_" in type_name and not type_name.endswith("Node"):
        model, _, op = type_name.rpartition("_")
        return (model, op) if op in OPERATIONS else None
    if type_name.endswith("Node"):
        stem = type_name[:-4]
        for op in _BY_LENGTH:
            if stem.endswith(op) and len(stem) > len(op):
                return stem[: -len(op)], op
    return None


def node_names(db: DataFlow) -> list[str]:
    names = [f"{m}{op}Node" for m in db.models for op in OPERATIONS]
    return names + list(_extra_nodes(db))


def resolve_node(type_name: str, db_instance: str | None = None) -> Node:
    """The node ``type_name`` names, among live instances (or the one named)."""
    matches = _matches(type_name, db_instance)
    if len(matches) > 1:
        # an instance its program dropped may wait in a reference cycle for the collector:
        # collect it, so that only instances still in use make the lookup ambiguous
        del matches
        gc.collect()
        matches = _matches(type_name, db_instance)
    if len(matches) > 1:
        owners = ", ".join(repr(getattr(m, "db", None) and m.db.name) for m in matches)  # type: ignore[attr-defined]
        raise AmbiguousNodeError(
            f"node type {type_name!r} exists in several live DataFlow instances: {owners}.",
            fix='add "db_instance": <name> to the node parameters.')
    return matches[0]


def _matches(type_name: str, db_instance: str | None) -> list[Node]:
    from .core import live_instances

    instances = live_instances()
    if db_instance is not None:
        instances = [d for d in instances if d.name == db_instance]
        if not instances:
            raise NodeNotFoundError(
                f"no live DataFlow instance named {db_instance!r:.80}."
                f"{did_you_mean(str(db_instance), [d.name for d in live_instances()])}",
                fix="pass the name given as DataFlow(..., name=...).")
    parsed = _parse_name(type_name)
    matches: list[Node] = []
    for db in instances:
        if parsed is not None and parsed[0] in db.models:
            matches.append(ModelNode(db, parsed[0], parsed[1]))
            continue
        factory = _extra_nodes(db).get(type_name)
        if factory is not None:
            matches.append(factory(db))
    if not matches:
        known = [n for d in instances for n in node_names(d)]
        raise NodeNotFoundError(
            f"unknown node type {type_name!r:.80}.{did_you_mean(type_name, known)}",
            fix="declare the model with @db.model on a live DataFlow instance; node names are "
            "{Model}{Op}Node or {Model}_{Op}.")
    return matches
