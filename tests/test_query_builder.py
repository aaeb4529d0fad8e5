"""User.query_builder(): where / order_by / limit / build_select() from the same compiler as
express.list, and running it returns what express.list returns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dataflow import DataFlow, field
from dataflow.errors import MigrationRefusedError


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


def _schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                            "ORDER BY name").fetchall()
    return [(str(n), str(s)) for n, s in rows]


async def test_existing_schema_mode_uses_tables_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    maker = DataFlow(f"sqlite:///{path}")

    @maker.model
    class LegacyItem:
        name: str
        qty: int = 0

    try:
        await maker.express.create("LegacyItem", {"name": "old", "qty": 2})
    finally:
        await maker.close()
    before = _schema(path)

    db = DataFlow(f"sqlite:///{path}", existing_schema_mode=True)

    @db.model
    class LegacyItem:  # type: ignore[no-redef]  # noqa: F811
        name: str = field(index=True)  # an index the table lacks is not a mismatch
        qty: int = 0

    try:
        made = await db.express.create("LegacyItem", {"name": "new", "qty": 5})
        assert made["qty"] == 5
        assert [r["name"] for r in await db.express.list("LegacyItem", order_by="id")] == [
            "old", "new"]
    finally:
        await db.close()
    assert _schema(path) == before, "nothing created or altered"

    for extra in ("colour", "table"):
        other = DataFlow(f"sqlite:///{path}", existing_schema_mode=True)
        if extra == "colour":
            @other.model
            class LegacyItem:  # type: ignore[no-redef]
                name: str
                qty: int = 0
                colour: str | None = None  # the table has no such column
        else:
            @other.model
            class LegacyMissing:
                name: str
        try:
            with pytest.raises(MigrationRefusedError) as info:
                await other.initialize()
            text = str(info.value)
            assert "DF-601" in text and "existing_schema_mode=True" in text
            assert ("colour" in text) if extra == "colour" else ("legacy_missing" in text)
            assert "register_schema_as_models" in (info.value.fix or "")
        finally:
            await other.close()
        assert _schema(path) == before, "nothing created or altered"


async def test_ordering_by_the_primary_key_needs_no_sort(tmp_path: Path) -> None:
    """The primary key is never NULL: ordering by it (express lists, frame reads in keyset
    batches) is the plain order its index serves, not a sort of the whole table (SQLite's
    plan has no temporary B-tree for it); other columns keep their NULLs-first order."""
    from dataflow.frames import io
    from dataflow.query.ast import TRUE, Comparison, OrderBy, Select

    path = tmp_path / "order.db"
    db = DataFlow(f"sqlite:///{path}", multi_tenant=False)

    @db.model
    class Ticket:
        title: str
        due: int | None = None

    try:
        await db.initialize()
        await db.express.bulk_create("Ticket", [{"title": f"t{i}", "due": i % 3 or None}
                                                for i in range(50)])
        spec = db.get_model("Ticket")
        compiler = db.adapter.compiler  # type: ignore[attr-defined]
        plain = sqlite3.connect(path)
        try:
            def plan(stmt: Select) -> str:
                compiled = compiler.compile(stmt)
                rows = plain.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.params)
                return " | ".join(str(r[-1]) for r in rows)

            assert "TEMP B-TREE" not in plan(io.by_id(spec, Comparison("id", "gt", 10), 20))
            assert "TEMP B-TREE" not in plan(Select(spec, TRUE, (OrderBy("id", True),), 5))
            assert "TEMP B-TREE" in plan(Select(spec, TRUE, (OrderBy("due"),)))
        finally:
            plain.close()
        listed = await db.express.list("Ticket", order_by="-id", limit=3)
        assert [r["id"] for r in listed] == [50, 49, 48]
        by_due = [r["due"] for r in await db.express.list("Ticket", order_by="due")]
        assert by_due[:17] == [None] * 17 and by_due[17:] == sorted(by_due[17:])
    finally:
        await db.close()
