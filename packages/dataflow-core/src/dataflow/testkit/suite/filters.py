"""The MongoDB-style filter language, ordering and paging, against real rows."""

from __future__ import annotations

from typing import Any

import pytest

from ...errors import FilterError, UnknownOperatorError, ValidationError
from ._helpers import MakeDB, names, raises_df

pytestmark = pytest.mark.asyncio

#: name, qty, tag, active
ROWS: list[tuple[str, int | None, str | None, bool]] = [
    ("Apple", 5, "fruit", True),
    ("apricot", 12, "fruit", False),
    ("Banana", 7, None, True),
    ("cherry", None, "berry", True),
    ("Date_1", 20, "fruit", False),
    ("100%", 0, "odd", True),
]
ALL = {r[0] for r in ROWS}


async def _items(make_db: MakeDB) -> Any:
    db = make_db()

    @db.model
    class KitItem:
        name: str
        qty: int | None = None
        tag: str | None = None
        active: bool = True

    result = await db.express.bulk_create(
        "KitItem", [{"name": n, "qty": q, "tag": t, "active": a} for n, q, t, a in ROWS])
    assert result["inserted"] == len(ROWS)
    return db


async def _match(db: Any, flt: dict[str, Any]) -> set[str]:
    rows = await db.express.list("KitItem", flt)
    assert await db.express.count("KitItem", flt) == len(rows)
    return names(rows)


@pytest.mark.asyncio
class TestFilters:
    async def test_implicit_equality_and_eq_ne(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"name": "Apple"}) == {"Apple"}
        assert await _match(db, {"tag": "fruit", "active": True}) == {"Apple"}
        assert await _match(db, {"qty": {"$eq": 7}}) == {"Banana"}
        assert await _match(db, {"active": False}) == {"apricot", "Date_1"}

    async def test_ne_includes_null_rows(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"tag": {"$ne": "fruit"}}) == {"Banana", "cherry", "100%"}
        assert await _match(db, {"qty": {"$ne": 5}}) == ALL - {"Apple"}

    async def test_none_means_is_null(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"tag": None}) == {"Banana"}
        assert await _match(db, {"tag": {"$eq": None}}) == {"Banana"}
        assert await _match(db, {"tag": {"$ne": None}}) == ALL - {"Banana"}

    async def test_range_operators_exclude_null(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"qty": {"$gt": 5}}) == {"apricot", "Banana", "Date_1"}
        assert await _match(db, {"qty": {"$gte": 5}}) == {"Apple", "apricot", "Banana", "Date_1"}
        assert await _match(db, {"qty": {"$lt": 7}}) == {"Apple", "100%"}
        assert await _match(db, {"qty": {"$lte": 7}}) == {"Apple", "Banana", "100%"}
        assert await _match(db, {"qty": {"$gt": 5, "$lt": 20}}) == {"apricot", "Banana"}
        assert await _match(db, {"name": {"$gte": "a", "$lt": "b"}}) == {"apricot"}

    async def test_in_and_nin(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"qty": {"$in": [5, 7, 99]}}) == {"Apple", "Banana"}
        assert await _match(db, {"tag": {"$in": ["berry", None]}}) == {"cherry", "Banana"}
        assert await _match(db, {"qty": {"$nin": [5, 7]}}) == ALL - {"Apple", "Banana"}
        assert await _match(db, {"tag": {"$nin": ["fruit", None]}}) == {"cherry", "100%"}

    async def test_empty_in_matches_nothing_empty_nin_everything(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"qty": {"$in": []}}) == set()
        assert await _match(db, {"qty": {"$nin": []}}) == ALL
        assert await _match(db, {"$or": [{"qty": {"$in": []}}, {"name": "Apple"}]}) == {"Apple"}
        assert await db.express.bulk_update("KitItem", {"qty": {"$in": []}}, {"qty": 1}) == {
            "updated": 0, "failed": [], "ok": True}
        assert (await db.express.bulk_delete("KitItem", {"qty": {"$in": []}}))["deleted"] == 0
        assert await db.express.count("KitItem") == len(ROWS)

    async def test_like_is_case_sensitive_ilike_is_not(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"name": {"$like": "A%"}}) == {"Apple"}
        assert await _match(db, {"name": {"$like": "%a%"}}) == {"apricot", "Banana", "Date_1"}
        assert await _match(db, {"name": {"$like": "_pple"}}) == {"Apple"}
        assert await _match(db, {"name": {"$ilike": "a%"}}) == {"Apple", "apricot"}
        assert await _match(db, {"name": {"$ilike": "%AN%"}}) == {"Banana"}

    async def test_like_escapes_wildcards(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"name": {"$like": "100\\%"}}) == {"100%"}
        assert await _match(db, {"name": {"$like": "Date\\_%"}}) == {"Date_1"}
        assert await _match(db, {"name": {"$ilike": "date\\_1"}}) == {"Date_1"}

    async def test_exists(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"qty": {"$exists": False}}) == {"cherry"}
        assert await _match(db, {"qty": {"$exists": True}}) == ALL - {"cherry"}

    async def test_or_and_nor(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        assert await _match(db, {"$or": [{"name": "Apple"}, {"qty": {"$gte": 20}}]}) == {
            "Apple", "Date_1"}
        assert await _match(db, {"$and": [{"tag": "fruit"}, {"active": False}]}) == {
            "apricot", "Date_1"}
        assert await _match(db, {"$nor": [{"tag": "fruit"}, {"qty": None}]}) == {"Banana", "100%"}

    async def test_not_has_document_semantics(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        # rows where qty > 5 is not true: NULL qty included
        assert await _match(db, {"qty": {"$not": {"$gt": 5}}}) == {"Apple", "cherry", "100%"}
        assert await _match(db, {"$not": {"tag": "fruit"}}) == {"Banana", "cherry", "100%"}
        assert await _match(db, {"$not": {"qty": {"$in": []}}}) == ALL

    async def test_nested_logic(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        flt = {
            "$or": [
                {"$and": [{"tag": "fruit"}, {"qty": {"$lt": 10}}]},
                {"$and": [{"tag": {"$ne": "fruit"}}, {"$or": [{"qty": None}, {"qty": 0}]}]},
            ],
            "active": True,
        }
        assert await _match(db, flt) == {"Apple", "cherry", "100%"}

    async def test_order_by_limit_offset(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        rows = await db.express.list("KitItem", {"qty": {"$exists": True}}, order_by="-qty")
        assert [r["name"] for r in rows] == ["Date_1", "apricot", "Banana", "Apple", "100%"]
        rows = await db.express.list("KitItem", {"qty": {"$ne": None}}, order_by="qty",
                                     limit=2, offset=1)
        assert [r["name"] for r in rows] == ["Apple", "Banana"]
        rows = await db.express.list("KitItem", {"qty": {"$ne": None}}, order_by="qty", offset=3)
        assert [r["name"] for r in rows] == ["apricot", "Date_1"]
        assert await db.express.list("KitItem", order_by="qty", limit=0) == []
        rows = await db.express.list("KitItem", {"tag": "fruit"}, order_by=["active", "-qty"])
        assert [r["name"] for r in rows] == ["Date_1", "apricot", "Apple"]

    async def test_nulls_sort_first_ascending_last_descending(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        asc = [r["name"] for r in await db.express.list("KitItem", order_by=["qty"])]
        desc = [r["name"] for r in await db.express.list("KitItem", order_by="-qty")]
        assert asc[0] == "cherry" and desc[-1] == "cherry"
        assert asc[1:] == list(reversed(desc[:-1]))

    async def test_values_are_checked_against_the_field_type(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        with raises_df(ValidationError, "DF-301", "qty"):
            await db.express.list("KitItem", {"qty": {"$gt": "abc"}})
        with raises_df(FilterError, "DF-401", "$like"):
            await db.express.list("KitItem", {"qty": {"$like": "1%"}})

    async def test_unknown_field_names_it_with_a_suggestion(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        with raises_df(FilterError, "DF-401", "'nme'", "Did you mean 'name'"):
            await db.express.list("KitItem", {"nme": "Apple"})
        with raises_df(FilterError, "DF-401", "'qyt'", "Did you mean 'qty'"):
            await db.express.count("KitItem", {"$or": [{"qyt": 1}]})
        with raises_df(FilterError, "DF-401", "'nam'", "Did you mean 'name'"):
            await db.express.list("KitItem", order_by="-nam")

    async def test_unknown_operator_names_it_with_a_suggestion(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        with raises_df(UnknownOperatorError, "DF-402", "'$gtt'", "Did you mean '$gt'"):
            await db.express.list("KitItem", {"qty": {"$gtt": 1}})
        with raises_df(UnknownOperatorError, "DF-402", "'$orr'", "Did you mean '$or'"):
            await db.express.list("KitItem", {"$orr": [{"qty": 1}]})

    async def test_identifiers_never_reach_the_database(self, make_db: MakeDB) -> None:
        db = await _items(make_db)
        evil = 'name" = name; DROP TABLE kit_item; --'
        with raises_df(FilterError, "DF-401", "unknown field"):
            await db.express.list("KitItem", {evil: 1})
        with raises_df(FilterError, "DF-401", "unknown field"):
            await db.express.list("KitItem", order_by=evil)
        assert await db.express.count("KitItem", {"name": evil}) == 0
        assert await db.express.count("KitItem") == len(ROWS)
