"""Input at the edges of every range: each is a DF error naming the field and the fix,
never a bare Python exception, a driver error or a wrong answer -- and nothing is written.

Batch sizes, ``limit``/``offset``, floats beyond a double, aware datetimes that leave the
calendar once converted to UTC, JSON and filters nested thousands of levels deep, text that
is not valid Unicode in patterns and tenant ids, a table name that is not text; and the
values that must compare and round-trip exactly: JSON numbers keep float vs int, equal
Decimals are one value, ``$in`` with more values than a statement can bind.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any

import pytest

from ...errors import (
    BulkValidationError,
    FilterError,
    IntegrityError,
    ModelDefinitionError,
    UnsupportedError,
    ValidationError,
)
from ...model import field
from ...nodes import resolve_node
from ...query.filters import MAX_FILTER_DEPTH
from ...values import JSON_MAX_DEPTH
from ._helpers import MakeDB, as_stored, raises_df

pytestmark = pytest.mark.asyncio


def _models(db: Any) -> None:
    @db.model
    class KitEdge:
        name: str
        f: float = 0.0
        at: _dt.datetime | None = None
        doc: dict[str, Any] | None = None
        code: str | None = field(default=None, unique=True)


def _nested(depth: int) -> Any:
    """A JSON value whose depth (a scalar is 1) is ``depth``: ``[[...[1]...]]``."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def _and_chain(depth: int) -> dict[str, Any]:
    flt: dict[str, Any] = {"name": "x"}
    for _ in range(depth - 1):
        flt = {"$and": [flt]}
    return flt


@pytest.mark.asyncio
class TestInputLimits:
    async def test_batch_size_must_be_a_positive_int(self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        rows = [{"name": f"r{i}", "code": f"c{i}"} for i in range(5)]
        for bad in (-1, 0, -100, 1.5, "10", True, None, 2.0):
            with raises_df(ValidationError, "DF-301", "batch_size", "positive int") as err:
                await db.express.bulk_create("KitEdge", rows, batch_size=bad)
            assert err.value.field == "batch_size"
            with raises_df(ValidationError, "DF-301", "batch_size") as err:
                await db.express.bulk_create("KitEdge", rows, batch_size=bad, partial=True)
            assert err.value.field == "batch_size"
            with raises_df(ValidationError, "DF-301", "batch_size") as err:
                await db.express.bulk_upsert("KitEdge", rows, conflict_on="code", batch_size=bad)
            assert err.value.field == "batch_size"
            with raises_df(ValidationError, "DF-301", "batch_size"):
                await resolve_node("KitEdgeBulkCreateNode", db.name).run(
                    {"data": rows, "batch_size": bad})
            with raises_df(ValidationError, "DF-301", "batch_size"):
                await resolve_node("KitEdgeBulkUpsertNode", db.name).run(
                    {"data": rows, "conflict_on": "code", "batch_size": bad})
            assert await db.express.count("KitEdge") == 0
        # a valid size still writes every row, in as many batches as it takes
        assert (await db.express.bulk_create("KitEdge", rows, batch_size=2))["inserted"] == 5
        res = await db.express.bulk_upsert("KitEdge", rows, conflict_on="code", batch_size=1)
        assert (res["inserted"], res["updated"]) == (0, 5)
        assert await db.express.count("KitEdge") == 5

    async def test_limit_and_offset_outside_64_bits_name_the_field(self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        await db.express.bulk_create("KitEdge", [{"name": "a"}, {"name": "b"}])
        for name, bad in (("limit", 2**63), ("limit", -1), ("offset", 10**20), ("offset", -5),
                          ("limit", 1.0), ("offset", "1")):
            with raises_df(ValidationError, "DF-301", name) as err:
                await db.express.list("KitEdge", **{name: bad})
            assert err.value.field == name
            assert "write" not in str(err.value)
            with raises_df(ValidationError, "DF-301", name):
                await resolve_node("KitEdgeListNode", db.name).run({"filter": {}, name: bad})
        # the largest accepted values are answered by the database
        assert len(await db.express.list("KitEdge", limit=2**63 - 1)) == 2
        assert await db.express.list("KitEdge", offset=2**63 - 1, order_by="id") == []

    async def test_numbers_and_datetimes_beyond_the_range_name_the_field(self, make_db: MakeDB
                                                                         ) -> None:
        db = make_db()
        _models(db)
        plus5 = _dt.timezone(_dt.timedelta(hours=5))
        minus5 = _dt.timezone(_dt.timedelta(hours=-5))
        cases: list[tuple[str, Any]] = [
            ("f", 10**400),
            ("f", -(10**309)),
            ("at", _dt.datetime(1, 1, 1, 2, 0, tzinfo=plus5)),  # year 0 in UTC
            ("at", _dt.datetime(9999, 12, 31, 22, 0, tzinfo=minus5)),  # year 10000 in UTC
            ("at", "0001-01-01T00:00:00+05:00"),
            ("at", "9999-12-31T23:00:00-01:00"),
        ]
        stored = await db.express.create("KitEdge", {"name": "kept"})
        for name, bad in cases:
            with raises_df(ValidationError, "DF-301", name) as err:
                await db.express.create("KitEdge", {"name": "x", name: bad})
            assert err.value.field == name and err.value.fix
            with raises_df(BulkValidationError, "DF-305") as bulk:
                await db.express.bulk_create("KitEdge", [{"name": "y"}, {"name": "x", name: bad}])
            assert bulk.value.failures[0]["index"] == 1
            assert bulk.value.failures[0]["field"] == name
            with raises_df(ValidationError, "DF-301", name):
                await db.express.update("KitEdge", stored["id"], {name: bad})
            with raises_df(ValidationError, "DF-301", name):
                await db.express.count("KitEdge", {name: {"$gt": bad}})
        assert await db.express.count("KitEdge") == 1
        assert await db.express.read("KitEdge", stored["id"]) == stored
        # the first and last instants of the calendar in UTC are stored and read back exactly
        for edge in (_dt.datetime(1, 1, 1, tzinfo=_dt.UTC),
                     _dt.datetime(1, 1, 1, 6, 0, tzinfo=plus5),
                     _dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=_dt.UTC),
                     _dt.datetime(9999, 12, 31, 18, 0, tzinfo=minus5)):
            rec = await db.express.create("KitEdge", {"name": "edge", "at": edge})
            assert (await db.express.read("KitEdge", rec["id"]))["at"] == as_stored(db, edge)
            assert await db.express.count("KitEdge", {"at": edge}) == 1

    async def test_json_nested_too_deep_is_refused_and_the_limit_round_trips(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        for depth in (JSON_MAX_DEPTH + 1, 5_000, 100_000):
            deep = {"k": _nested(depth - 1)}
            with raises_df(ValidationError, "DF-301", "doc", "nested") as err:
                await db.express.create("KitEdge", {"name": "deep", "doc": deep})
            assert err.value.field == "doc"
            with raises_df(BulkValidationError, "DF-305"):
                await db.express.bulk_create("KitEdge", [{"name": "deep", "doc": deep}])
            with raises_df(FilterError, "DF-401", "doc"):
                await db.express.count("KitEdge", {"doc": {"$contains": deep}})
        assert await db.express.count("KitEdge") == 0
        deepest = {"k": _nested(JSON_MAX_DEPTH - 1)}
        rec = await db.express.create("KitEdge", {"name": "deepest", "doc": deepest})
        assert (await db.express.read("KitEdge", rec["id"]))["doc"] == deepest

    async def test_filters_nested_too_deep_are_refused(self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        await db.express.create("KitEdge", {"name": "x"})
        for depth in (MAX_FILTER_DEPTH + 1, 300, 5_000):
            with raises_df(FilterError, "DF-401", "nests", "flatten"):
                await db.express.count("KitEdge", _and_chain(depth))
            with raises_df(FilterError, "DF-401"):
                await db.express.bulk_delete("KitEdge", _and_chain(depth))
            nots: dict[str, Any] = {"$eq": "x"}
            for _ in range(depth):
                nots = {"$not": nots}
            with raises_df(FilterError, "DF-401") as err:
                await db.express.count("KitEdge", {"name": nots})
            assert err.value.field == "name"
        assert await db.express.count("KitEdge", _and_chain(MAX_FILTER_DEPTH)) == 1
        assert await db.express.count("KitEdge") == 1

    async def test_lone_surrogates_in_patterns_and_tenant_ids(self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        await db.express.create("KitEdge", {"name": "x"})
        for op in ("$like", "$ilike", "$regex"):
            with raises_df(FilterError, "DF-401", "surrogate") as err:
                await db.express.list("KitEdge", {"name": {op: "a\ud800%"}})
            assert err.value.field == "name"
        for bad in ("\ud800", "acme\udfff", "a\x00b"):
            with raises_df(ValidationError, "DF-301", "tenant id") as err:
                db.tenant(bad)
            assert err.value.field == "tenant_id"

    async def test_table_name_must_be_text(self, make_db: MakeDB) -> None:
        db = make_db()
        for bad in (123, b"orders", 12.5, ["orders"]):
            with raises_df(ModelDefinitionError, "DF-201", "table name", "KitBadTable"):
                @db.model
                class KitBadTable:
                    __tablename__ = bad
                    name: str
        assert "KitBadTable" not in db.models

    async def test_json_round_trip_keeps_float_and_int(self, make_db: MakeDB) -> None:
        db = make_db()
        _models(db)
        doc = {"f16": 1e16, "f17": 1.5e17, "f300": 1e300, "neg": -2.5e20, "tiny": 1e-7,
               "half": 0.5, "zero": 0.0, "whole": 3.0, "i": 3, "i16": 10**16,
               "i63": 2**63 - 1, "ineg": -(2**63), "i20": 10**20, "i30": -(10**30),
               "fmax": 1.7976931348623157e308, "fmin": 5e-324, "list": [1e16, 10**16, 2.0, 2],
               "nested": {"x": 1e22, "y": 10**18}}
        rec = await db.express.create("KitEdge", {"name": "nums", "doc": doc})
        for got in (rec["doc"], (await db.express.read("KitEdge", rec["id"]))["doc"],
                    (await db.express.list("KitEdge"))[0]["doc"]):
            assert got == doc
            for key, want in doc.items():
                assert type(got[key]) is type(want), (key, got[key])
            assert [type(x) for x in got["list"]] == [float, int, float, int]
            assert type(got["nested"]["x"]) is float and type(got["nested"]["y"]) is int
        await db.express.bulk_create("KitEdge", [{"name": "bulk", "doc": doc}])
        got = (await db.express.find_one("KitEdge", {"name": "bulk"}))["doc"]
        assert got == doc and all(type(got[k]) is type(v) for k, v in doc.items())


@pytest.mark.asyncio
class TestExactComparisons:
    @pytest.mark.requires("regex")
    async def test_regex_answers_exactly_or_refuses(self, make_db: MakeDB) -> None:
        """A pattern that backtracks hard (``(a|aa)+`` over 30 characters) on a row it does
        match (by the ``|!`` branch): the backend answers exactly or raises a DF error --
        a regex engine that gives up at its match limit must not answer "no match"."""
        db = make_db()

        @db.model
        class KitRegexRow:
            text: str
            n: int = 0

        await db.express.create("KitRegexRow", {"text": "a" * 30 + "!"})
        hard = {"text": {"$regex": "^(a|aa)+$|!"}}
        for op in ("count", "bulk_update"):
            try:
                got: Any = await (db.express.count("KitRegexRow", hard) if op == "count" else
                                  db.express.bulk_update("KitRegexRow", hard, {"n": 1}))
            except (FilterError, UnsupportedError) as exc:
                assert str(exc).startswith(("[DF-401]", "[DF-501]")), exc
            else:
                assert got in (1, {"updated": 1, "failed": [], "ok": True}), got
        n = (await db.express.list("KitRegexRow"))[0]["n"]
        assert n in (0, 1)

    async def test_equal_decimals_are_one_value(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitPrice:
            label: str
            amount: Decimal = field(unique=True)

        stored = await db.express.create("KitPrice", {"label": "a", "amount": Decimal("2.50")})
        assert stored["amount"] == Decimal("2.5")
        for same in (Decimal("2.5"), Decimal("2.500"), "2.5000", 2.5, Decimal("25E-1")):
            assert [r["id"] for r in await db.express.list("KitPrice", {"amount": same})] == [
                stored["id"]], same
            assert await db.express.count("KitPrice", {"amount": {"$in": [same, Decimal(7)]}}) == 1
            assert await db.express.count("KitPrice", {"amount": {"$ne": same}}) == 0
            assert await db.express.count("KitPrice", {"amount": {"$nin": [same]}}) == 0
            with raises_df(IntegrityError, "DF-902"):
                await db.express.create("KitPrice", {"label": "b", "amount": same})
        await db.express.create("KitPrice", {"label": "c", "amount": Decimal("100")})
        assert await db.express.count("KitPrice", {"amount": Decimal("1E+2")}) == 1
        assert await db.express.count("KitPrice", {"amount": Decimal("100.00")}) == 1
        await db.express.create("KitPrice", {"label": "z", "amount": Decimal("0.00")})
        assert await db.express.count("KitPrice", {"amount": Decimal("-0")}) == 1
        with raises_df(IntegrityError, "DF-902"):
            await db.express.create("KitPrice", {"label": "z2", "amount": Decimal("-0.0")})
        res = await db.express.bulk_upsert("KitPrice", [{"label": "up", "amount": Decimal("2.5000")}],
                                           conflict_on="amount")
        assert (res["inserted"], res["updated"]) == (0, 1)
        assert await db.express.count("KitPrice") == 3

    async def test_in_with_more_values_than_a_statement_binds(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitMany:
            n: int
            tag: str = "t"

        await db.express.bulk_create("KitMany", [{"n": i} for i in range(50)])
        ids = [r["id"] for r in await db.express.list("KitMany", order_by="id")]
        wanted = ids[::2] + list(range(10**9, 10**9 + 40_000))  # 40,025 values
        assert sorted(r["id"] for r in await db.express.read_many("KitMany", wanted)) == ids[::2]
        assert await db.express.count("KitMany", {"id": {"$in": wanted}}) == 25
        assert await db.express.count("KitMany", {"id": {"$nin": wanted}}) == 25
        tags = [f"t{i}" for i in range(40_000)] + ["t"]
        assert await db.express.count("KitMany", {"tag": {"$in": tags}}) == 50
        res = await db.express.bulk_update("KitMany", {"n": {"$in": list(range(0, 40_000, 2))}},
                                           {"tag": "even"})
        assert res["updated"] == 25
        res = await db.express.bulk_delete("KitMany", {"n": {"$nin": list(range(1, 40_000, 2))}})
        assert res["deleted"] == 25
        assert await db.express.count("KitMany") == 25
