"""pgvector workflow nodes, contributed through the ``dataflow_node_types`` hook.

* ``VectorSearchNode``: ``{"model", "field", "vector", "k", "metric"}`` -> ``{"records",
  "count"}``, the ``k`` nearest records with their ``distance`` (metric ``cosine`` (default),
  ``l2`` or ``inner_product``) -- a list node's shape.
* ``HybridSearchNode``: the same, restricted by a DataFlow ``filter`` on the model.
* ``CreateVectorIndexNode``: ``{"model", "field", "method": "hnsw"|"ivfflat", "metric",
  "lists"?, "m"?, "ef_construction"?}`` -> ``{"index": name}``, an approximate-nearest-neighbour
  index (created if it does not exist yet).

Fields are declared as ``embedding: list[float] = field(vector=1536)`` (a ``vector(1536)``
column); the extension is created by the migration that first needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataflow.errors import ValidationError
from dataflow.model import ModelSpec
from dataflow.query.ast import TRUE
from dataflow.query.filters import parse_filter

from .dialect import vector_dimensions, vector_text

if TYPE_CHECKING:
    from dataflow.core import DataFlow

#: metric -> (distance operator, operator class for indexes)
METRICS = {
    "cosine": ("<=>", "vector_cosine_ops"),
    "l2": ("<->", "vector_l2_ops"),
    "inner_product": ("<#>", "vector_ip_ops"),
}


def _metric(params: dict[str, Any]) -> tuple[str, str]:
    metric = params.get("metric", "cosine")
    if metric not in METRICS:
        raise ValidationError(f"unknown metric {metric!r:.40}.", field="metric",
                              fix=f"use one of: {', '.join(METRICS)}.")
    return METRICS[metric]


def _vector_field(db: DataFlow, params: dict[str, Any]) -> tuple[ModelSpec, str, int]:
    if "model" not in params:
        raise ValidationError("a vector node needs 'model'.", field="model")
    spec = db.get_model(params["model"])
    name = params.get("field")
    vectors = [n for n, f in spec.fields.items() if vector_dimensions(f) is not None]
    if name is None and len(vectors) == 1:
        name = vectors[0]
    if name not in vectors:
        raise ValidationError(
            f"{name!r:.60} is not a vector field of {spec.name}.", model=spec.name, field="field",
            fix=f"declare it as list[float] = field(vector=n); vector fields: {vectors or 'none'}.")
    dims = vector_dimensions(spec.fields[name])
    assert dims is not None
    return spec, name, dims


class _VectorNode:
    type_name = "VectorNode"
    params: frozenset[str] = frozenset({"model", "field", "vector", "k", "metric"})
    output_keys: tuple[str, ...] = ("records", "count")

    def __init__(self, db: DataFlow) -> None:
        self.db = db

    def inputs(self) -> frozenset[str]:
        """Parameter names (what ``db.inspect()`` lists and ``build()`` checks)."""
        return self.params | {"db_instance"}

    def outputs(self) -> dict[str, frozenset[str] | None]:
        return dict.fromkeys(self.output_keys)

    async def _search(self, params: dict[str, Any], flt: Any) -> dict[str, Any]:
        db = self.db
        spec, name, dims = _vector_field(db, params)
        query = params.get("vector")
        if not isinstance(query, (list, tuple)) or len(query) != dims or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in query):
            raise ValidationError(f"'vector' must be a list of {dims} numbers.", model=spec.name,
                                  field="vector")
        k = params.get("k", 10)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValidationError("'k' must be a positive int.", model=spec.name, field="k")
        op, _ = _metric(params)
        await db._ensure_ready()
        adapter: Any = db.adapter
        c = adapter.compiler
        where = parse_filter(spec, flt) if flt else TRUE
        p = c.params()
        vec = p.add(vector_text(query))
        sql = (f"SELECT {c.column_list(spec)}, {c.quote(name)} {op} {vec}::vector AS df_distance "
               f"FROM {c.table(spec)}")
        if where is not TRUE:
            sql += " WHERE " + c.expr(where, spec, p)
        sql += f" ORDER BY {c.quote(name)} {op} {vec}::vector LIMIT {int(k)}"
        decode = c.row_decoder(spec, tuple(spec.fields))
        width = len(spec.fields)
        params_out = tuple(p.values)

        async def run(conn: Any) -> list[Any]:
            rows: list[Any] = await adapter.fetch(conn, sql, params_out)
            return rows

        records = []
        for row in await db._run(run):
            record = decode(tuple(row)[:width])
            distance = float(row[width])
            record["distance"] = -distance if op == "<#>" else distance  # <#> is negated
            records.append(record)
        return {"records": records, "count": len(records)}


class VectorSearchNode(_VectorNode):
    type_name = "VectorSearchNode"

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._search(params, None)


class HybridSearchNode(_VectorNode):
    """Vector similarity among the records a DataFlow filter selects."""

    type_name = "HybridSearchNode"
    params = _VectorNode.params | {"filter"}

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._search(params, params.get("filter") or {})


class CreateVectorIndexNode(_VectorNode):
    type_name = "CreateVectorIndexNode"
    params = frozenset({"model", "field", "method", "metric", "lists", "m", "ef_construction"})
    output_keys = ("index",)

    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        db = self.db
        spec, name, _ = _vector_field(db, params)
        _, opclass = _metric(params)
        method = params.get("method", "hnsw")
        options: dict[str, int] = {}
        if method == "hnsw":
            for key, default in (("m", 16), ("ef_construction", 64)):
                options[key] = params.get(key, default)
        elif method == "ivfflat":
            options["lists"] = params.get("lists", 100)
        else:
            raise ValidationError(f"unknown index method {method!r:.40}.", field="method",
                                  fix="use 'hnsw' or 'ivfflat'.")
        for key, value in options.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"'{key}' must be a positive int.", field=key)
        await db._ensure_ready()
        adapter: Any = db.adapter
        c = adapter.compiler
        index = c.index_name(spec, (name, method, opclass.split("_")[1]))
        with_ = ", ".join(f"{k} = {v}" for k, v in options.items())
        sql = (f"CREATE INDEX IF NOT EXISTS {c.quote(index)} ON {c.table(spec)} "
               f"USING {method} ({c.quote(name)} {opclass}) WITH ({with_})")

        async def run(conn: Any) -> None:
            await adapter.apply_ddl(conn, [sql])

        await db._run(run)
        return {"index": index}


VECTOR_NODES: dict[str, Callable[..., Any]] = {
    "VectorSearchNode": VectorSearchNode,
    "HybridSearchNode": HybridSearchNode,
    "CreateVectorIndexNode": CreateVectorIndexNode,
}
