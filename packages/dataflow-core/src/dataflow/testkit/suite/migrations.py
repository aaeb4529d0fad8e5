"""Automatic migrations: additive changes apply; destructive ones are refused with the plan."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ...errors import MigrationRefusedError, UnsupportedError
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


async def _v1(make_db: MakeDB) -> Any:
    db = make_db()

    @db.model
    class KitEvolve:
        name: str
        qty: int

    await db.express.bulk_create("KitEvolve", [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}])
    return db


def _v2(db: Any) -> None:
    @db.model
    class KitEvolve:
        name: str
        qty: int
        note: str | None = None
        level: int = 7
        flag: bool = False


@pytest.mark.asyncio
class TestMigrations:
    async def test_initialize_creates_tables(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitFresh:
            name: str

        plan = await db.initialize()
        assert [s.kind for s in plan.steps] == ["create_table"]
        assert await db.express.count("KitFresh") == 0
        assert not await db.plan(), "after initialize the schema matches the models"

    async def test_additive_columns_apply_automatically(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)
        _v2(db)
        rows = await db.express.list("KitEvolve", order_by="name")
        assert [(r["name"], r["note"], r["level"], r["flag"]) for r in rows] == [
            ("a", None, 7, False), ("b", None, 7, False)]
        assert rows[0]["flag"] is False
        new = await db.express.create("KitEvolve", {"name": "c", "qty": 3, "note": "n"})
        assert new["note"] == "n" and new["level"] == 7
        assert not await db.plan()

    async def test_dropped_column_is_refused_with_the_plan(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str

        with raises_df(MigrationRefusedError, "DF-601", "drop_column", "kit_evolve.qty",
                       "allow_destructive") as info:
            await db.express.count("KitEvolve")
        assert [s.kind for s in info.value.plan.destructive] == ["drop_column"]
        # refused once, clearly: later calls fail the same way, nothing was changed
        with raises_df(MigrationRefusedError, "DF-601", "drop_column"):
            await db.express.list("KitEvolve")
        with raises_df(MigrationRefusedError, "DF-601", "drop_column"):
            await db.initialize()
        _restore = _v1_model(db)
        assert _restore == "KitEvolve"
        await db.initialize()
        assert sorted(r["qty"] for r in await db.express.list("KitEvolve")) == [1, 2]

    async def test_type_change_is_refused_with_the_plan(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str
            qty: str

        with raises_df(MigrationRefusedError, "DF-601", "alter_column", "kit_evolve.qty",
                       "int -> str"):
            await db.initialize()
        _v1_model(db)
        await db.initialize()
        assert await db.express.count("KitEvolve", {"qty": {"$gte": 1}}) == 2

    async def test_required_column_without_default_is_refused(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str
            qty: int
            code: str

        with raises_df(MigrationRefusedError, "DF-601", "add_column", "kit_evolve.code",
                       "without a default"):
            await db.express.count("KitEvolve")
        _v1_model(db)
        assert await db.express.count("KitEvolve") == 2

    @pytest.mark.requires("drop_column")
    async def test_destructive_opt_in_on_the_instance(self, make_db: MakeDB) -> None:
        db = make_db(allow_destructive_migrations=True)
        assert db.allow_destructive_migrations is True
        _opt_in_v1(db)
        await db.express.create("KitOptIn", {"name": "a", "extra": "x"})
        _opt_in_v2(db)
        rows = await db.express.list("KitOptIn")  # applied on first use, no initialize()
        assert [r["name"] for r in rows] == ["a"] and "extra" not in rows[0]


def _opt_in_v1(db: Any) -> None:
    @db.model
    class KitOptIn:
        name: str
        extra: Optional[str] = None  # noqa: UP045 - the Optional spelling is part of the API


def _opt_in_v2(db: Any) -> None:
    @db.model
    class KitOptIn:
        name: str


def _v1_model(db: Any) -> str:
    @db.model
    class KitEvolve:
        name: str
        qty: int

    return KitEvolve.__name__


@pytest.mark.asyncio
class TestMigrationCapabilities:
    @pytest.mark.requires("drop_column")
    async def test_opt_in_drops_a_column(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str

        plan = await db.initialize(allow_destructive=True)
        assert [s.kind for s in plan.steps] == ["drop_column"]
        rows = await db.express.list("KitEvolve", order_by="name")
        assert [r["name"] for r in rows] == ["a", "b"]
        assert "qty" not in rows[0]
        assert not await db.plan()
        live = await db.adapter.run(db.adapter.introspect, ["kit_evolve"])
        assert "qty" not in live["kit_evolve"].columns

    @pytest.mark.unsupported("drop_column")
    async def test_opt_in_drop_is_refused_without_drop_column(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str

        with raises_df(UnsupportedError, "DF-501", "drop_column"):
            await db.initialize(allow_destructive=True)
        _v1_model(db)
        assert sorted(r["qty"] for r in await db.express.list("KitEvolve")) == [1, 2]

    @pytest.mark.requires("alter_column_type")
    async def test_opt_in_changes_a_column_type(self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str
            qty: str

        await db.initialize(allow_destructive=True)
        rows = await db.express.list("KitEvolve", order_by="name")
        assert [r["qty"] for r in rows] == ["1", "2"]
        assert not await db.plan()

    @pytest.mark.unsupported("alter_column_type")
    async def test_opt_in_type_change_is_refused_without_alter_column_type(
            self, make_db: MakeDB) -> None:
        db = await _v1(make_db)

        @db.model
        class KitEvolve:
            name: str
            qty: str

        with raises_df(UnsupportedError, "DF-501", "alter_column", "kit_evolve.qty"):
            await db.initialize(allow_destructive=True)
        _v1_model(db)
        await db.initialize()
        assert sorted(r["qty"] for r in await db.express.list("KitEvolve")) == [1, 2]
