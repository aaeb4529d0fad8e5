"""User.query_builder(): where / order_by / limit / build_select() from the same compiler as
express.list, and running it returns what express.list returns."""

from __future__ import annotations

from dataflow import DataFlow


async def test_query_builder_builds_the_sql_list_runs() -> None:
    db = DataFlow("sqlite://:memory:", multi_tenant=False)

    @db.model
    class Person:
        name: str
        age: int

    try:
        await db.express.bulk_create("Person", [{"name": n, "age": a} for n, a in
                                                [("ann", 30), ("bob", 17), ("cy", 45), ("di", 18)]])
        q = Person.query_builder().where({"age": {"$gte": 18}}).order_by("-age").limit(2)  # type: ignore[attr-defined]
        sql, params = q.build_select()
        assert sql.startswith('SELECT "id", "name", "age"') and '"age" >= ?' in sql
        assert "ORDER BY" in sql and sql.endswith("LIMIT 2")
        assert params == (18,), "values are bound, never inlined"
        assert [r["name"] for r in await q.all()] == ["cy", "ann"]
        assert await q.count() == 3
        narrower = q.where({"name": {"$like": "a%"}})
        assert [r["name"] for r in await narrower.all()] == ["ann"]
        assert [r["name"] for r in await q.all()] == ["cy", "ann"], "each step is a new builder"
        page = Person.query_builder().order_by("age").offset(1).limit(2)  # type: ignore[attr-defined]
        assert await page.all() == await db.express.list("Person", order_by="age", offset=1, limit=2)
    finally:
        await db.close()
