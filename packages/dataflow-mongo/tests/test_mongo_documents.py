"""Schemaless documents: ``db.documents(name)`` and the eight document nodes."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.errors import IntegrityError, TenantRequiredError, TenantViolationError, ValidationError
from dataflow.inspector import inspect_node
from dataflow.workflow import AsyncLocalRuntime, WorkflowBuilder

pytestmark = pytest.mark.asyncio


async def _people(db: DataFlow) -> Any:
    docs = db.documents("people")
    await docs.insert_many([
        {"_id": 1, "name": "ann", "age": 31, "tags": ["a", "b"], "address": {"city": "Oslo"}},
        {"_id": 2, "name": "bob", "age": 25, "tags": ["b"], "address": {"city": "Rome"}},
        {"_id": 3, "name": "cid", "age": 40, "tags": [], "address": {"city": "Oslo"}},
    ])
    return docs


async def test_insert_find_sort_limit_skip_projection(mdb: DataFlow) -> None:
    docs = await _people(mdb)
    out = await docs.insert_one({"name": "dee", "age": 19, "at": _dt.datetime(2024, 1, 2, tzinfo=_dt.UTC)})
    assert out["inserted_id"] is not None
    found = await docs.find({"age": {"$gte": 25}}, sort=[("age", -1)], limit=2, skip=0,
                            projection={"name": 1, "_id": 0})
    assert found == [{"name": "cid"}, {"name": "ann"}]
    assert [d["name"] for d in await docs.find({}, sort=[("age", 1)], skip=1, limit=2)] == ["bob", "ann"]
    assert [d["_id"] for d in await docs.find({"address.city": "Oslo"}, sort=[("_id", 1)])] == [1, 3]
    assert [d["_id"] for d in await docs.find({"tags": {"$all": ["a", "b"]}})] == [1]
    dee = await docs.find_one({"name": "dee"})
    assert dee is not None and dee["at"] == _dt.datetime(2024, 1, 2, tzinfo=_dt.UTC)
    assert await docs.count() == 4 and await docs.count({"age": {"$lt": 30}}) == 2
    assert await docs.find({}, limit=0) == []


async def test_update_delete_upsert(mdb: DataFlow) -> None:
    docs = await _people(mdb)
    one = await docs.update({"address.city": "Oslo"}, {"$inc": {"age": 1}})
    assert (one["matched"], one["modified"], one["upserted_id"]) == (1, 1, None)
    many = await docs.update({"address.city": "Oslo"}, {"$set": {"seen": True}}, many=True)
    assert many["matched"] == 2
    up = await docs.update({"_id": 9}, {"$set": {"name": "new"}}, upsert=True)
    assert up["upserted_id"] == 9 and (await docs.find_one({"_id": 9}) or {})["name"] == "new"
    assert (await docs.delete({"seen": True}))["deleted"] == 1
    assert (await docs.delete({"seen": True}, many=True))["deleted"] == 1
    assert await docs.count() == 2
    with pytest.raises(ValidationError):
        await docs.update({"_id": 1}, {"name": "replacement"})  # not an update operator
    with pytest.raises(ValidationError):
        await docs.delete(None)  # {} must be written to match everything


async def test_aggregate_and_indexes(mdb: DataFlow) -> None:
    docs = await _people(mdb)
    out = await docs.aggregate([{"$group": {"_id": "$address.city", "n": {"$sum": 1}}},
                                {"$sort": {"_id": 1}}])
    assert out == [{"_id": "Oslo", "n": 2}, {"_id": "Rome", "n": 1}]
    name = await docs.create_index([("name", 1)], unique=True)
    assert name == "name_1"
    with pytest.raises(IntegrityError) as info:
        await docs.insert_one({"name": "ann"})
    assert info.value.code == "DF-902"


async def test_insert_many_is_all_or_nothing(mdb: DataFlow) -> None:
    docs = mdb.documents("things")
    await docs.create_index([("k", 1)], unique=True)
    with pytest.raises(IntegrityError):
        await docs.insert_many([{"k": 1}, {"k": 2}, {"k": 1}])
    assert await docs.count() == 0
    with pytest.raises(ValidationError, match=r"documents\[1\]"):
        await docs.insert_many([{"k": 1}, {"$k": 2}])
    assert await docs.count() == 0


async def test_transaction_covers_documents(mdb: DataFlow) -> None:
    docs = mdb.documents("ledger")
    with pytest.raises(RuntimeError):
        async with mdb.transaction():
            await docs.insert_one({"v": 1})
            assert await docs.count() == 1  # visible inside
            raise RuntimeError("roll back")
    assert await docs.count() == 0


async def _node(node: str, params: dict[str, Any]) -> dict[str, Any]:
    wf = WorkflowBuilder()
    wf.add_node(node, "op", params)
    built = wf.build()
    results, _ = await AsyncLocalRuntime().execute_workflow_async(built)
    out: dict[str, Any] = results["op"]
    # the node returns exactly the outputs the inspector lists (and build() checks)
    declared = inspect_node(built.nodes["op"]).outputs
    assert declared is not None and set(out) == set(declared), (node, out, declared)
    return out


async def test_the_eight_nodes_in_workflows(mdb: DataFlow) -> None:
    index = await _node("CreateIndexNode", {"collection": "users", "keys": [("email", 1)],
                                            "unique": True})
    assert index["index"] == "email_1"
    one = await _node("DocumentInsertNode", {"collection": "users", "document": {"email": "a@x", "n": 1}})
    assert one["inserted_id"] is not None and one["inserted"] == 1
    many = await _node("BulkDocumentInsertNode", {"collection": "users", "documents": [
        {"email": "b@x", "n": 2}, {"email": "c@x", "n": 3}]})
    assert many["inserted"] == 2 and len(many["inserted_ids"]) == 2
    update = await _node("DocumentUpdateNode", {"collection": "users", "filter": {"n": {"$gte": 2}},
                                                "update": {"$inc": {"n": 10}}, "many": True,
                                                "upsert": False})
    assert update == {"matched": 2, "updated": 2, "inserted": 0, "inserted_id": None}
    upserted = await _node("DocumentUpdateNode", {"collection": "users", "filter": {"n": 99},
                                                  "update": {"$set": {"email": "u@x"}},
                                                  "upsert": True})
    assert (upserted["matched"], upserted["updated"], upserted["inserted"]) == (0, 0, 1)
    assert upserted["inserted_id"] is not None
    await _node("DocumentDeleteNode", {"collection": "users", "filter": {"n": 99}})
    find = await _node("DocumentFindNode", {"collection": "users", "filter": {},
                                            "projection": {"_id": 0, "email": 1},
                                            "sort": [("n", -1)], "limit": 2, "skip": 0})
    assert find == {"records": [{"email": "c@x"}, {"email": "b@x"}], "count": 2}
    assert (await _node("DocumentCountNode", {"collection": "users", "filter": {"n": {"$gt": 1}}}))[
        "count"] == 2
    total = await _node("AggregateNode", {"collection": "users", "pipeline": [
        {"$group": {"_id": None, "sum": {"$sum": "$n"}}}]})
    assert total == {"records": [{"_id": None, "sum": 26}], "count": 1}
    deleted = await _node("DocumentDeleteNode", {"collection": "users", "filter": {"n": 1},
                                                 "many": False})
    assert deleted == {"deleted": 1}
    with pytest.raises(IntegrityError):
        await _node("DocumentInsertNode", {"collection": "users", "document": {"email": "b@x"}})


async def test_node_parameters_are_checked(mdb: DataFlow) -> None:
    from dataflow.nodes import resolve_node

    node = resolve_node("DocumentFindNode", mdb.name)
    with pytest.raises(ValidationError, match="does not take parameter"):
        await node.run({"collection": "users", "order": [("a", 1)]})
    with pytest.raises(ValidationError, match="needs 'collection'"):
        await node.run({"filter": {}})
    with pytest.raises(ValidationError, match="sort"):
        await node.run({"collection": "users", "sort": {"a": 1}})
    with pytest.raises(ValidationError, match="collection"):
        await node.run({"collection": "system.users"})


async def test_documents_on_another_backend_is_refused() -> None:
    from dataflow.errors import UnsupportedError

    db = DataFlow("sqlite://:memory:")
    try:
        with pytest.raises(UnsupportedError) as info:
            db.documents("x")
        assert info.value.code == "DF-501"
    finally:
        await db.close()


async def test_tenancy_scopes_documents(tenant_db: DataFlow) -> None:
    docs = tenant_db.documents("notes")
    with pytest.raises(TenantRequiredError):
        await docs.insert_one({"text": "nobody"})
    async with tenant_db.tenant("acme"):
        await docs.insert_many([{"text": "a1"}, {"text": "a2"}])
        await docs.update({"text": "zz"}, {"$set": {"x": 1}}, upsert=True)
        with pytest.raises(TenantViolationError):
            await docs.insert_one({"text": "x", "tenant_id": "globex"})
        with pytest.raises(TenantViolationError):
            await docs.update({}, {"$set": {"tenant_id": "globex"}}, many=True)
    async with tenant_db.tenant("globex"):
        await docs.insert_one({"text": "g1"})
        assert [d["text"] for d in await docs.find({})] == ["g1"]
        assert await docs.count() == 1
        assert (await docs.delete({}, many=True))["deleted"] == 1
        agg = await docs.aggregate([{"$count": "n"}])
        assert agg in ([], [{"n": 0}])  # MongoDB gives no document; the test server {"n": 0}
    async with tenant_db.tenant("acme"):
        texts = sorted(d["text"] for d in await docs.find({}))
        assert texts == ["a1", "a2", "zz"]
        assert all(d["tenant_id"] == "acme" for d in await docs.find({}))
        assert await docs.aggregate([{"$count": "n"}]) == [{"n": 3}]


async def test_nodes_apply_the_same_security_checks(mdb: DataFlow) -> None:
    await _node("DocumentInsertNode", {"collection": "logs", "document": {"a": 1}})
    for node, params in [
        ("AggregateNode", {"collection": "logs", "pipeline": [{"$match": {"$where": "1"}}]}),
        ("AggregateNode", {"collection": "logs", "pipeline": [{"$out": "copy"}]}),
        ("DocumentFindNode", {"collection": "logs", "filter": {"a": {"$function": {}}}}),
        ("DocumentUpdateNode", {"collection": "logs", "filter": {}, "update": {"$set": {"$x": 1}}}),
        ("DocumentInsertNode", {"collection": "logs", "document": {"pw": {"$gt": ""}}}),
    ]:
        with pytest.raises(Exception) as info:
            await _node(node, params)
        assert "DF-301" in str(info.value), (node, str(info.value))
    assert (await _node("DocumentCountNode", {"collection": "logs"}))["count"] == 1
