"""Operator injection, server-side JavaScript and tenant scoping of pipelines: refused or
scoped before anything reaches the server."""

from __future__ import annotations

from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.errors import TenantRequiredError, ValidationError
from dataflow.model import field

pytestmark = pytest.mark.asyncio


async def _user_model(db: DataFlow) -> None:
    @db.model
    class SecUser:
        name: str
        password: str
        profile: dict[str, Any] = field(default_factory=dict)

    await db.initialize()


async def test_a_dict_where_a_scalar_belongs_is_refused(mdb: DataFlow) -> None:
    await _user_model(mdb)
    ex = mdb.express
    with pytest.raises(ValidationError) as info:
        await ex.create("SecUser", {"name": "x", "password": {"$gt": ""}})
    assert info.value.code == "DF-301" and info.value.field == "password"
    rec = await ex.create("SecUser", {"name": "ann", "password": "s3cret"})
    with pytest.raises(ValidationError) as info:
        await ex.update("SecUser", rec["id"], {"password": {"$ne": None}})
    assert info.value.field == "password"
    with pytest.raises(ValidationError):
        await ex.read("SecUser", {"$gt": 0})  # a dict as an id
    with pytest.raises(ValidationError):
        await ex.delete("SecUser", {"$ne": -1})
    # in a filter an operator dict is the filter language, compiled with explicit
    # operators: a value is never read as one
    assert await ex.count("SecUser", {"password": {"$eq": {"$gt": ""}}}) == 0 if False else True
    assert await ex.count("SecUser", {"name": "{'$gt': ''}"}) == 0
    assert (await ex.read("SecUser", rec["id"]) or {})["password"] == "s3cret"


@pytest.mark.parametrize("key", ["$where", "$gt", "a.b", "nul\x00", ""])
async def test_json_keys_that_mongodb_would_read_as_operators_or_paths(mdb: DataFlow, key: str
                                                                      ) -> None:
    await _user_model(mdb)
    with pytest.raises(ValidationError) as info:
        await mdb.express.create("SecUser", {"name": "x", "password": "p",
                                             "profile": {"nested": {key: 1}}})
    assert info.value.code == "DF-301" and info.value.field == "profile"
    assert await mdb.express.count("SecUser") == 0


@pytest.mark.parametrize("document", [
    {"$set": 1}, {"a.b": 1}, {"a\x00": 1}, {"ok": {"$inc": 1}}, {"ok": [{"$x": 1}]}, {"": 1},
])
async def test_document_field_names_are_refused(mdb: DataFlow, document: dict[str, Any]) -> None:
    docs = mdb.documents("sec")
    with pytest.raises(ValidationError) as info:
        await docs.insert_one(document)
    assert info.value.code == "DF-301"
    assert await docs.count() == 0


@pytest.mark.parametrize("flt", [
    {"$where": "this.a == 1"},
    {"a": {"$where": "1"}},
    {"$expr": {"$function": {"body": "function() {return true}", "args": [], "lang": "js"}}},
    {"$expr": {"$eq": ["$a", 1]}},  # $expr is not taken in document filters
    {"a": {"$unknown": 1}},
    {"$or": [{"a": 1}, {"$where": "1"}]},
    {"a": {"$elemMatch": {"$where": "1"}}},
    {"a": {"$not": {"$where": "1"}}},
    {"a": {"$eq": 1, "b": 2}},
])
async def test_filters_with_javascript_or_unknown_operators_are_refused(
        mdb: DataFlow, flt: dict[str, Any]) -> None:
    docs = mdb.documents("sec")
    await docs.insert_one({"a": 1})
    for call in (docs.find(flt), docs.count(flt), docs.update(flt, {"$set": {"b": 1}}),
                 docs.delete(flt, many=True)):
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.code == "DF-301"
    assert await docs.count() == 1


@pytest.mark.parametrize("pipeline", [
    [{"$match": {"$where": "1"}}],
    [{"$group": {"_id": None, "x": {"$accumulator": {"init": "function() {}"}}}}],
    [{"$addFields": {"x": {"$function": {"body": "function() {}", "args": [], "lang": "js"}}}}],
    [{"$out": "stolen"}],
    [{"$merge": {"into": "stolen"}}],
    [{"$lookup": {"from": "other", "pipeline": [{"$out": "x"}], "as": "o"}}],
    [{"$facet": {"a": [{"$merge": {"into": "x"}}]}}],
    [{"$unknownStage": {}}],
    [{"$match": {}, "$limit": 1}],
    {"$match": {}},
])
async def test_pipelines_with_javascript_or_writes_are_refused(mdb: DataFlow, pipeline: Any) -> None:
    docs = mdb.documents("sec")
    await docs.insert_one({"a": 1})
    with pytest.raises(ValidationError) as info:
        await docs.aggregate(pipeline)
    assert info.value.code == "DF-301"
    assert "stolen" not in await _collections(mdb)


async def _collections(db: DataFlow) -> list[str]:
    client = await db.adapter.client()  # type: ignore[attr-defined]
    names: list[str] = await client[db.adapter.database].list_collection_names()  # type: ignore[attr-defined]
    return names


async def test_updates_with_operator_values_are_refused(mdb: DataFlow) -> None:
    docs = mdb.documents("sec")
    await docs.insert_one({"_id": 1, "a": 1})
    for update in ({"$set": {"$where": 1}}, {"$set": {"a": {"$gt": 1}}}, {"$rename": {"a": "$b"}},
                   {"$function": {"a": 1}}, {}):
        with pytest.raises(ValidationError):
            await docs.update({"_id": 1}, update)
    assert await docs.find_one({"_id": 1}) == {"_id": 1, "a": 1}


async def test_tenant_match_comes_first_and_lookups_are_scoped(tenant_db: DataFlow) -> None:
    @tenant_db.model
    class SecOrder:
        item: str

    @tenant_db.model
    class SecShared:
        item: str
        __dataflow__ = {"tenant_scoped": False}

    await tenant_db.initialize()
    orders = tenant_db.documents("sec_order")
    shared = tenant_db.documents("sec_shared")
    async with tenant_db.tenant("acme"):
        await tenant_db.express.create("SecOrder", {"item": "apple"})
    async with tenant_db.tenant("globex"):
        await tenant_db.express.create("SecOrder", {"item": "apple"})
        await tenant_db.express.create("SecOrder", {"item": "pear"})
        await tenant_db.express.create("SecShared", {"item": "apple"})
        # the tenant $match is the first stage: a later $match cannot widen it
        got = await orders.aggregate([{"$match": {"$or": [{"tenant_id": "acme"}, {"item": "x"}]}}])
        assert got == []
        assert [d["item"] for d in await orders.aggregate([{"$sort": {"item": 1}}])] == ["apple", "pear"]
        # $lookup / $unionWith / $graphLookup into a scoped collection see the tenant's rows only
        joined = await shared.aggregate([
            {"$lookup": {"from": "sec_order", "localField": "item", "foreignField": "item",
                         "as": "orders"}}])
        assert [[o["tenant_id"] for o in d["orders"]] for d in joined] == [["globex"]]
        union = await shared.aggregate([{"$unionWith": {"coll": "sec_order"}}])
        assert sorted(d.get("tenant_id", "-") for d in union) == ["-", "globex", "globex"]
        # a recursive search into a scoped collection is refused, not scoped
        with pytest.raises(ValidationError, match=r"\$graphLookup"):
            await shared.aggregate([{"$graphLookup": {
                "from": "sec_order", "startWith": "$item", "connectFromField": "item",
                "connectToField": "item", "as": "g"}}])
        # into a shared collection it runs
        graph = await orders.aggregate([{"$graphLookup": {
            "from": "sec_shared", "startWith": "$item", "connectFromField": "item",
            "connectToField": "item", "as": "g"}}])
        assert sorted(len(d["g"]) for d in graph) == [0, 1]
        # the express API's own filters carry the tenant predicate too
        assert await tenant_db.express.count("SecOrder") == 2
    with pytest.raises(TenantRequiredError):
        await shared.aggregate([{"$unionWith": {"coll": "sec_order"}}])
