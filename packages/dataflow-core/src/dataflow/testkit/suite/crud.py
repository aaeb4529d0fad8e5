"""Single-record operations: create, read, find_one, list, count, update, delete, upsert."""

from __future__ import annotations

from typing import Any

import pytest

from ...errors import (
    IntegrityError,
    MissingFieldError,
    UnknownFieldError,
    UnknownModelError,
    ValidationError,
)
from ...model import field
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


def _product(db: Any) -> None:
    @db.model
    class KitProduct:
        name: str
        qty: int
        sku: str = field(unique=True, default_factory=lambda: __import__("uuid").uuid4().hex)
        note: str | None = None
        price: float = 1.0


@pytest.mark.asyncio
class TestCrud:
    async def test_create_returns_the_persisted_record(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        rec = await db.express.create("KitProduct", {"name": "pen", "qty": 3, "sku": "P1"})
        assert rec["name"] == "pen" and rec["qty"] == 3 and rec["sku"] == "P1"
        assert rec["note"] is None and rec["price"] == 1.0
        assert set(rec) == {"id", "name", "qty", "sku", "note", "price", "created_at",
                            "updated_at"}
        assert await db.express.read("KitProduct", rec["id"]) == rec

    async def test_read_missing_is_none(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        assert await db.express.read("KitProduct", 987654) is None

    async def test_model_by_class_or_name(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitByClass:
            name: str

        rec = await db.express.create(KitByClass, {"name": "c"})
        assert (await db.express.read("KitByClass", rec["id"]) or {}).get("name") == "c"
        with raises_df(UnknownModelError, "DF-202", "KitByClas", "Did you mean 'KitByClass'"):
            await db.express.count("KitByClas")

    async def test_find_one_list_count(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        for i in range(5):
            await db.express.create("KitProduct", {"name": f"p{i}", "qty": i})
        assert await db.express.count("KitProduct") == 5
        assert await db.express.count("KitProduct", {"qty": {"$gte": 3}}) == 2
        one = await db.express.find_one("KitProduct", {"qty": {"$gt": 1}}, order_by="-qty")
        assert one is not None and one["name"] == "p4"
        assert await db.express.find_one("KitProduct", {"qty": 99}) is None
        rows = await db.express.list("KitProduct", {"qty": {"$lt": 2}}, order_by="qty")
        assert [r["name"] for r in rows] == ["p0", "p1"]
        assert len(await db.express.list("KitProduct")) == 5

    async def test_update_returns_the_record_and_changes_only_given_fields(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        rec = await db.express.create("KitProduct", {"name": "a", "qty": 1, "note": "n"})
        other = await db.express.create("KitProduct", {"name": "b", "qty": 1})
        up = await db.express.update("KitProduct", rec["id"], {"qty": 7, "note": None})
        assert up is not None
        assert up["qty"] == 7 and up["note"] is None and up["name"] == "a"
        assert up["sku"] == rec["sku"] and up["id"] == rec["id"]
        assert await db.express.read("KitProduct", rec["id"]) == up
        assert (await db.express.read("KitProduct", other["id"]) or {}).get("qty") == 1

    async def test_update_missing_is_none_and_writes_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        await db.express.create("KitProduct", {"name": "a", "qty": 1})
        assert await db.express.update("KitProduct", 424242, {"qty": 2}) is None
        assert await db.express.count("KitProduct", {"qty": 2}) == 0
        assert await db.express.count("KitProduct") == 1

    async def test_delete_existing_true_missing_false(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        rec = await db.express.create("KitProduct", {"name": "a", "qty": 1})
        keep = await db.express.create("KitProduct", {"name": "b", "qty": 1})
        assert await db.express.delete("KitProduct", rec["id"]) is True
        assert await db.express.read("KitProduct", rec["id"]) is None
        assert await db.express.delete("KitProduct", rec["id"]) is False
        assert await db.express.count("KitProduct") == 1
        assert await db.express.read("KitProduct", keep["id"]) is not None

    async def test_upsert_inserts_then_updates_by_id(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitKv:
            id: str
            value: int
            label: str = "none"

        first = await db.express.upsert("KitKv", {"id": "k", "value": 1, "label": "x"})
        assert first["id"] == "k" and first["value"] == 1 and first["label"] == "x"
        second = await db.express.upsert("KitKv", {"id": "k", "value": 2})
        assert second["value"] == 2
        assert second["label"] == "x", "an upsert update sets only the given fields"
        assert second["created_at"] == first["created_at"]
        assert second["updated_at"] >= first["updated_at"]
        assert await db.express.count("KitKv") == 1
        assert await db.express.read("KitKv", "k") == second

    async def test_upsert_conflict_on_unique_field(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        a = await db.express.create("KitProduct", {"name": "a", "qty": 1, "sku": "S1"})
        up = await db.express.upsert("KitProduct", {"sku": "S1", "name": "a2", "qty": 5},
                                     conflict_on="sku")
        assert up["id"] == a["id"] and up["name"] == "a2" and up["qty"] == 5
        new = await db.express.upsert("KitProduct", {"sku": "S2", "name": "b", "qty": 1},
                                      conflict_on=["sku"])
        assert new["id"] != a["id"] and new["sku"] == "S2"
        assert await db.express.count("KitProduct") == 2
        only = await db.express.upsert("KitProduct", {"sku": "S1", "name": "zz", "qty": 9},
                                       conflict_on="sku", update_fields=["qty"])
        assert only["qty"] == 9 and only["name"] == "a2"

    async def test_upsert_conflict_on_a_non_unique_field_is_refused(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(ValidationError, "DF-301", "conflict_on", "sku"):
            await db.express.upsert("KitProduct", {"name": "a", "qty": 1}, conflict_on="name")
        assert await db.express.count("KitProduct") == 0

    async def test_unique_field_violation(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        await db.express.create("KitProduct", {"name": "a", "qty": 1, "sku": "DUP"})
        with raises_df(IntegrityError, "DF-902"):
            await db.express.create("KitProduct", {"name": "b", "qty": 2, "sku": "DUP"})
        assert await db.express.count("KitProduct") == 1
        b = await db.express.create("KitProduct", {"name": "b", "qty": 2, "sku": "OTHER"})
        with raises_df(IntegrityError, "DF-902"):
            await db.express.update("KitProduct", b["id"], {"sku": "DUP"})
        assert (await db.express.read("KitProduct", b["id"]) or {}).get("sku") == "OTHER"


@pytest.mark.asyncio
class TestValidation:
    async def test_wrong_type_is_df301_and_nothing_written(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(ValidationError, "DF-301", "KitProduct.qty", "abc", "int"):
            await db.express.create("KitProduct", {"name": "a", "qty": "abc"})
        assert await db.express.count("KitProduct") == 0
        for bad in (1.5, True, None, "3"):
            with raises_df(ValidationError, "DF-301", "qty"):
                await db.express.create("KitProduct", {"name": "a", "qty": bad})
        assert await db.express.count("KitProduct") == 0

    async def test_wrong_type_in_update_changes_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        rec = await db.express.create("KitProduct", {"name": "a", "qty": 1})
        with raises_df(ValidationError, "DF-301", "qty"):
            await db.express.update("KitProduct", rec["id"], {"name": "changed", "qty": "abc"})
        assert await db.express.read("KitProduct", rec["id"]) == rec

    async def test_missing_required_field_is_df303(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(MissingFieldError, "DF-303", "KitProduct.qty"):
            await db.express.create("KitProduct", {"name": "a"})
        assert await db.express.count("KitProduct") == 0

    async def test_unknown_field_is_df302_with_suggestion_and_nothing_written(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(UnknownFieldError, "DF-302", "'qyt'", "Did you mean 'qty'"):
            await db.express.create("KitProduct", {"name": "a", "qty": 1, "qyt": 2})
        assert await db.express.count("KitProduct") == 0
        rec = await db.express.create("KitProduct", {"name": "a", "qty": 1})
        with raises_df(UnknownFieldError, "DF-302", "nmae", "Did you mean 'name'"):
            await db.express.update("KitProduct", rec["id"], {"nmae": "b", "qty": 5})
        assert await db.express.read("KitProduct", rec["id"]) == rec
        with raises_df(UnknownFieldError, "DF-302", "bogus"):
            await db.express.upsert("KitProduct", {"id": rec["id"], "name": "b", "bogus": 1})
        assert await db.express.count("KitProduct") == 1

    async def test_bad_id_type_is_refused(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(ValidationError, "DF-301", "id"):
            await db.express.read("KitProduct", "not-an-int")
        with raises_df(ValidationError, "DF-301", "id"):
            await db.express.delete("KitProduct", "x")

    async def test_limit_offset_must_be_non_negative_ints(self, make_db: MakeDB) -> None:
        db = make_db()
        _product(db)
        with raises_df(ValidationError, "DF-301", "limit"):
            await db.express.list("KitProduct", limit=-1)
        with raises_df(ValidationError, "DF-301", "offset"):
            await db.express.list("KitProduct", offset="2")  # type: ignore[arg-type]
