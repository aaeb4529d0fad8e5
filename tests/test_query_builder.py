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
