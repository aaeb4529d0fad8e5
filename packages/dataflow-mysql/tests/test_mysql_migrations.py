"""Migrations on MySQL: GET_LOCK for concurrent starts, exact report of a failure halfway
(DDL is not transactional), and schema discovery from information_schema."""

from __future__ import annotations

import asyncio
import datetime as _dt
import uuid
from decimal import Decimal
from typing import Any

import aiomysql
import pytest

from dataflow import DataFlow, field
from dataflow.errors import MigrationFailedError
from dataflow.model import LogicalType
from dataflow_mysql.adapter import MySQLAdapter


async def test_concurrent_starts_take_turns_under_get_lock(make_db: Any, raw: aiomysql.Connection) -> None:
    dbs = [make_db() for _ in range(4)]
    for db in dbs:
        @db.model
        class MyRace:
            name: str
            code: str = field(unique=True, default="")

    # two rounds: the tables, then an added column, planned by every process at once
    await asyncio.gather(*(db.initialize() for db in dbs))
    assert [await db.express.count("MyRace") for db in dbs] == [0, 0, 0, 0]
    for db in dbs:
        @db.model
        class MyRace:  # type: ignore[no-redef]  # noqa: F811 - the model, changed
            name: str
            code: str = field(unique=True, default="")
            extra: int | None = None

    await asyncio.gather(*(db.initialize() for db in dbs))
    await dbs[0].express.create("MyRace", {"name": "n", "extra": 3})
    assert (await dbs[3].express.find_one("MyRace", {"extra": 3}) or {})["name"] == "n"


async def test_the_lock_is_held_during_ddl(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db()
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)
    await db.initialize()
    conn = await adapter.acquire()
    try:
        async with adapter.ddl_lock(conn):
            async with raw.cursor() as cur:
                await cur.execute("SELECT IS_USED_LOCK(%s)", (adapter.migration_lock_name,))
                assert (await cur.fetchall())[0][0] is not None
        async with raw.cursor() as cur:
            await cur.execute("SELECT IS_USED_LOCK(%s)", (adapter.migration_lock_name,))
            assert (await cur.fetchall())[0][0] is None
    finally:
        await adapter.release(conn)


async def test_failed_migration_reports_exactly_the_applied_steps(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyFirst:
        name: str

    await db.initialize()

    @db.model
    class MyFirst:  # type: ignore[no-redef]  # noqa: F811 - the model, changed
        name: str
        note: str | None = None

    @db.model
    class MySecond:
        name: str

    @db.model
    class MyBroken:
        # VARCHAR(20000) of utf8mb4 is over MySQL's 65,535-byte row limit: CREATE fails
        body: str = field(max_length=20000)

    with pytest.raises(MigrationFailedError) as info:
        await db.initialize()
    text = str(info.value)
    applied = text.split("Applied:", 1)[1]
    assert "ALTER TABLE `my_first` ADD COLUMN `note`" in applied
    assert "CREATE TABLE IF NOT EXISTS `my_second`" in applied
    assert "my_broken" not in applied
    assert "statement 3" in text
    live = await db.adapter.run(db.adapter.introspect, ["my_first", "my_second", "my_broken"])
    assert set(live) == {"my_first", "my_second"} and "note" in live["my_first"].columns
    db._models.pop("MyBroken")


async def test_discover_schema_from_information_schema(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyShape:
        name: str
        code: str = field(max_length=8, unique=True)
        qty: int = 0
        ratio: float | None = None
        ok: bool = True
        at: _dt.datetime | None = None
        day: _dt.date | None = None
        price: Decimal | None = None
        ref: uuid.UUID | None = None
        meta: dict[str, Any] = {}

    await db.initialize()
    async with raw.cursor() as cur:
        await cur.execute("DROP TABLE IF EXISTS my_foreign")
        await cur.execute(
            "CREATE TABLE my_foreign (id INT AUTO_INCREMENT PRIMARY KEY, shape_id BIGINT NOT NULL, "
            "label VARCHAR(20), flag TINYINT(1), data JSON, amount DECIMAL(10,2), "
            "INDEX ix_label (label), FOREIGN KEY (shape_id) REFERENCES my_shape (id) ON DELETE CASCADE)")
    try:
        adapter = db.adapter
        assert isinstance(adapter, MySQLAdapter)
        found = await adapter.run(adapter.discover_schema)
        shape = found["my_shape"]
        types = {n: c.ltype for n, c in shape.columns.items()}
        assert types == {"id": LogicalType.INT, "name": LogicalType.STR, "code": LogicalType.STR,
                         "qty": LogicalType.INT, "ratio": LogicalType.FLOAT, "ok": LogicalType.BOOL,
                         "at": LogicalType.DATETIME, "day": LogicalType.DATE,
                         "price": LogicalType.DECIMAL, "ref": LogicalType.UUID,
                         "meta": LogicalType.JSON, "created_at": LogicalType.DATETIME,
                         "updated_at": LogicalType.DATETIME}
        assert shape.columns["id"].primary_key and not shape.columns["id"].nullable
        assert shape.columns["ratio"].nullable and not shape.columns["name"].nullable
        assert {"name": "code", "unique": True, "columns": ["code"]} in shape.indexes
        other = found["my_foreign"]
        assert {n: c.ltype for n, c in other.columns.items()} == {
            "id": LogicalType.INT, "shape_id": LogicalType.INT, "label": LogicalType.STR,
            "flag": LogicalType.BOOL, "data": LogicalType.JSON, "amount": LogicalType.DECIMAL}
        assert other.foreign_keys == [{"column": "shape_id", "table": "my_shape", "references": "id",
                                       "on_delete": "CASCADE", "name": "my_foreign_ibfk_1"}]
        assert {"name": "ix_label", "unique": False, "columns": ["label"]} in other.indexes
        # the planner sees DataFlow's own tables exactly: nothing to migrate
        assert not (await db.plan())
    finally:
        async with raw.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS my_foreign")


async def test_register_existing_tables_as_models(make_db: Any, raw: aiomysql.Connection) -> None:
    async with raw.cursor() as cur:
        await cur.execute("DROP TABLE IF EXISTS my_legacy_order")
        await cur.execute(
            "CREATE TABLE my_legacy_order (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "customer VARCHAR(40) NOT NULL, total DECIMAL(10,2) NOT NULL, paid TINYINT(1) NOT NULL "
            "DEFAULT 0, note TEXT NULL, placed DATETIME(6) NULL, UNIQUE KEY uq_customer (customer))")
        await cur.execute("INSERT INTO my_legacy_order (customer, total) VALUES ('ann', 12.50)")
    try:
        db: DataFlow = make_db()
        assert await db.register_schema_as_models(["my_legacy_order"]) == ["MyLegacyOrder"]
        spec = db.get_model("MyLegacyOrder")
        assert spec.pk.auto_increment and spec.fields["customer"].unique
        assert not spec.fields["note"].required and not spec.fields["paid"].required
        rows = await db.express.list("MyLegacyOrder")
        assert [(r["customer"], r["total"], r["paid"]) for r in rows] == [("ann", Decimal("12.5"), False)]
        rec = await db.express.create("MyLegacyOrder", {"customer": "bob", "total": Decimal("3")})
        assert rec["id"] == 2 and rec["paid"] is False  # the server's default, read back
        got = await db.express.read("MyLegacyOrder", 2)
        assert got is not None and got["paid"] is False and got["customer"] == "bob"
        assert await db.express.count("MyLegacyOrder", {"total": {"$gt": 5}}) == 1
    finally:
        async with raw.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS my_legacy_order")
