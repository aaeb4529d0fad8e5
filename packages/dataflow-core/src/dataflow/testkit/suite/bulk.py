"""Bulk operations: validation before writing, all-or-nothing or partial, exact counts."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import pytest

from ...errors import (
    BulkValidationError,
    ConfirmationRequiredError,
    IntegrityError,
    UnsupportedError,
    ValidationError,
)
from ...model import field
from ._helpers import MakeDB, names, raises_df

pytestmark = pytest.mark.asyncio


def _model(db: Any) -> None:
    @db.model
    class KitRow:
        name: str
        qty: int
        code: str | None = field(default=None, unique=True)
        group: str = "a"


@pytest.mark.asyncio
class TestBulk:
    async def test_bulk_create_exact_count(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        result = await db.express.bulk_create("KitRow", [{"name": f"r{i}", "qty": i}
                                                         for i in range(250)])
        assert result["inserted"] == 250 and result["failed"] == [] and result["ok"] is True
        assert await db.express.count("KitRow") == 250
        assert (await db.express.bulk_create("KitRow", []))["inserted"] == 0

    async def test_bulk_create_mixed_columns_and_small_batches(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = [{"name": "a", "qty": 1}, {"name": "b", "qty": 2, "group": "z"},
                {"name": "c", "qty": 3, "code": "C"}, {"name": "d", "qty": 4}]
        seen: list[tuple[int, int]] = []
        result = await db.express.bulk_create("KitRow", rows, batch_size=1,
                                              on_progress=lambda d, t: seen.append((d, t)))
        assert result["inserted"] == 4
        assert seen and all(total == 4 for _, total in seen)
        b = await db.express.find_one("KitRow", {"name": "b"})
        c = await db.express.find_one("KitRow", {"name": "c"})
        assert b is not None and b["group"] == "z" and b["code"] is None
        assert c is not None and c["code"] == "C" and c["group"] == "a"

    async def test_invalid_row_writes_nothing_by_default(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows: list[dict[str, Any]] = [{"name": "ok", "qty": 1}, {"name": "bad", "qty": "abc"},
                                      {"name": "ok2", "qty": 2}, {"qty": 3},
                                      {"name": "x", "qty": 1, "nope": 1}]
        with raises_df(BulkValidationError, "DF-305", "nothing was written", "row 1") as info:
            await db.express.bulk_create("KitRow", rows)
        failures = info.value.failures
        assert [f["index"] for f in failures] == [1, 3, 4]
        assert [f["code"] for f in failures] == ["DF-301", "DF-303", "DF-302"]
        assert failures[0]["field"] == "qty"
        assert await db.express.count("KitRow") == 0

    async def test_partial_writes_valid_rows_and_lists_failures(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows: list[dict[str, Any]] = [{"name": "ok", "qty": 1}, {"name": "bad", "qty": "abc"},
                                      {"name": "ok2", "qty": 2}, {"qty": 3}]
        result = await db.express.bulk_create("KitRow", rows, partial=True)
        assert result["inserted"] == 2 and result["ok"] is False
        assert [(f["index"], f["code"]) for f in result["failed"]] == [(1, "DF-301"), (3, "DF-303")]
        assert all(f["error"] for f in result["failed"])
        assert names(await db.express.list("KitRow")) == {"ok", "ok2"}

    async def test_unique_violation_is_all_or_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.create("KitRow", {"name": "first", "qty": 0, "code": "X"})
        rows = [{"name": f"n{i}", "qty": i, "code": f"C{i}"} for i in range(5)]
        rows.append({"name": "dup", "qty": 9, "code": "X"})
        with raises_df(IntegrityError, "DF-902"):
            await db.express.bulk_create("KitRow", rows)
        assert await db.express.count("KitRow") == 1
        in_batch = [{"name": "a", "qty": 1, "code": "Y"}, {"name": "b", "qty": 1, "code": "Y"}]
        with raises_df(IntegrityError, "DF-902"):
            await db.express.bulk_create("KitRow", in_batch)
        assert await db.express.count("KitRow") == 1

    async def test_unique_violation_with_partial_reports_the_row(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.create("KitRow", {"name": "first", "qty": 0, "code": "X"})
        rows = [{"name": "a", "qty": 1, "code": "A"}, {"name": "dup", "qty": 2, "code": "X"},
                {"name": "b", "qty": 3, "code": "B"}]
        result = await db.express.bulk_create("KitRow", rows, partial=True)
        assert result["inserted"] == 2
        assert [f["index"] for f in result["failed"]] == [1]
        assert result["failed"][0]["code"] == "DF-902"
        assert names(await db.express.list("KitRow")) == {"first", "a", "b"}

    @pytest.mark.requires("transactions", "savepoints")
    async def test_partial_inside_a_transaction_keeps_the_valid_rows(self, make_db: MakeDB
                                                                     ) -> None:
        db = make_db()
        _model(db)
        await db.express.create("KitRow", {"name": "first", "qty": 0, "code": "X"})
        async with db.transaction():
            result = await db.express.bulk_create("KitRow", [
                {"name": "a", "qty": 1, "code": "A"}, {"name": "dup", "qty": 2, "code": "X"}],
                partial=True)
            assert result["inserted"] == 1 and [f["index"] for f in result["failed"]] == [1]
            await db.express.create("KitRow", {"name": "after", "qty": 3})
        assert names(await db.express.list("KitRow")) == {"first", "a", "after"}

    @pytest.mark.requires("transactions")
    @pytest.mark.unsupported("savepoints")
    async def test_partial_inside_a_transaction_is_refused_without_savepoints(
            self, make_db: MakeDB) -> None:
        """Without savepoints a failed row cannot be undone alone inside a caller's
        transaction: refused before writing. Outside one, partial=True commits per batch
        (test_unique_violation_with_partial_reports_the_row runs that path here)."""
        db = make_db()
        _model(db)
        await db.initialize()
        with raises_df(UnsupportedError, "DF-501", "partial=True", "savepoints"):
            async with db.transaction():
                await db.express.bulk_create("KitRow", [{"name": "a", "qty": 1}], partial=True)
        assert await db.express.count("KitRow") == 0

    async def test_bulk_update_by_filter_exact_count(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitRow", [{"name": f"r{i}", "qty": i, "group": "g" if i % 2
                                                 else "h"} for i in range(10)])
        result = await db.express.bulk_update("KitRow", {"group": "g"}, {"qty": 100})
        assert result["updated"] == 5
        assert await db.express.count("KitRow", {"qty": 100}) == 5
        again = await db.express.bulk_update("KitRow", {"group": "g"}, {"qty": 100})
        assert again["updated"] == 5, "matched rows count, even when values are unchanged"
        none = await db.express.bulk_update("KitRow", {"group": "nope"}, {"qty": 1})
        assert none["updated"] == 0

    async def test_bulk_update_validates_fields_and_empty_filter(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitRow", [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}])
        with raises_df(ValidationError, "DF-301", "qty"):
            await db.express.bulk_update("KitRow", {"name": "a"}, {"qty": "abc"})
        with raises_df(ConfirmationRequiredError, "DF-306", "confirmed=True"):
            await db.express.bulk_update("KitRow", {}, {"qty": 0})
        assert await db.express.count("KitRow", {"qty": 0}) == 0
        result = await db.express.bulk_update("KitRow", {}, {"qty": 0}, confirmed=True)
        assert result["updated"] == 2

    async def test_bulk_update_by_rows(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        a = await db.express.create("KitRow", {"name": "a", "qty": 1})
        b = await db.express.create("KitRow", {"name": "b", "qty": 2})
        result = await db.express.bulk_update(
            "KitRow", [{"id": a["id"], "qty": 10}, {"id": b["id"], "name": "bb"},
                       {"id": 999999, "qty": 5}])
        assert result["updated"] == 2
        assert (await db.express.read("KitRow", a["id"]) or {}).get("qty") == 10
        assert (await db.express.read("KitRow", b["id"]) or {}).get("name") == "bb"
        with raises_df(BulkValidationError, "DF-305"):
            await db.express.bulk_update("KitRow", [{"id": a["id"], "qty": 11}, {"qty": 1}])
        assert (await db.express.read("KitRow", a["id"]) or {}).get("qty") == 10
        part = await db.express.bulk_update(
            "KitRow", [{"id": a["id"], "qty": 11}, {"id": b["id"], "qty": "x"}], partial=True)
        assert part["updated"] == 1 and [f["index"] for f in part["failed"]] == [1]
        assert (await db.express.read("KitRow", a["id"]) or {}).get("qty") == 11

    async def test_bulk_delete_exact_count_and_confirmation(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitRow", [{"name": f"r{i}", "qty": i} for i in range(10)])
        result = await db.express.bulk_delete("KitRow", {"qty": {"$lt": 4}})
        assert result["deleted"] == 4
        assert (await db.express.bulk_delete("KitRow", {"qty": {"$lt": 4}}))["deleted"] == 0
        empties: tuple[dict[str, Any] | None, ...] = (None, {})
        for empty in empties:
            with raises_df(ConfirmationRequiredError, "DF-306", "confirmed=True"):
                await db.express.bulk_delete("KitRow", empty)
        assert await db.express.count("KitRow") == 6
        assert (await db.express.bulk_delete("KitRow", {}, confirmed=True))["deleted"] == 6
        assert await db.express.count("KitRow") == 0

    async def test_bulk_upsert_exact_counts(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitStock:
            id: str
            qty: int
            label: str = "-"

        first = await db.express.bulk_upsert("KitStock", [{"id": f"s{i}", "qty": i}
                                                          for i in range(5)])
        assert (first["inserted"], first["updated"]) == (5, 0)
        second = await db.express.bulk_upsert(
            "KitStock", [{"id": "s0", "qty": 100}, {"id": "s1", "qty": 1}, {"id": "s9", "qty": 9}])
        assert (second["inserted"], second["updated"]) == (1, 2)
        assert await db.express.count("KitStock") == 6
        assert (await db.express.read("KitStock", "s0") or {}).get("qty") == 100
        with raises_df(BulkValidationError, "DF-305", "repeats"):
            await db.express.bulk_upsert("KitStock", [{"id": "d", "qty": 1}, {"id": "d", "qty": 2}])
        assert await db.express.read("KitStock", "d") is None

    async def test_bulk_upsert_conflict_on_unique_and_partial(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.create("KitRow", {"name": "a", "qty": 1, "code": "A"})
        result = await db.express.bulk_upsert(
            "KitRow", [{"code": "A", "name": "a2", "qty": 2}, {"code": "B", "name": "b", "qty": 3},
                       {"code": "C", "name": "c", "qty": "bad"}], conflict_on="code", partial=True)
        assert (result["inserted"], result["updated"]) == (1, 1)
        assert [f["index"] for f in result["failed"]] == [2]
        a = await db.express.find_one("KitRow", {"code": "A"})
        assert a is not None and a["name"] == "a2" and a["qty"] == 2
        assert await db.express.count("KitRow") == 2


class KitTone(enum.Enum):
    LOW = "low"
    HIGH = "high"


def _rich_model(db: Any) -> None:
    @db.model
    class KitRichRow:
        sku: str
        price: Decimal
        tone: KitTone
        attrs: dict  # type: ignore[type-arg]
        tags: list  # type: ignore[type-arg]
        day: dt.date
        at: dt.datetime | None = None


@pytest.mark.asyncio
class TestBulkStreamed:
    """Bulk writes of many batches: the rows a batch brings are validated before the write
    commits, whichever batch they are in."""

    async def test_explicit_ids_then_generated_ids_do_not_collide(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = [{"id": 1000 + i, "name": f"r{i}", "qty": i} for i in range(300)]
        assert (await db.express.bulk_create("KitRow", rows, batch_size=70))["inserted"] == 300
        assert (await db.express.read("KitRow", 1299))["name"] == "r299"
        made = await db.express.create("KitRow", {"name": "next", "qty": 0})
        assert made["id"] > 1299
        # an explicit id below the high-water mark is stored as given
        low = await db.express.bulk_create("KitRow", [{"id": 5, "name": "low", "qty": 1}])
        assert low["inserted"] == 1 and (await db.express.read("KitRow", 5))["name"] == "low"
        assert (await db.express.create("KitRow", {"name": "after", "qty": 0}))["id"] > made["id"]

    async def test_invalid_row_in_a_later_batch_writes_nothing(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows: list[dict[str, Any]] = [{"name": f"r{i}", "qty": i} for i in range(300)]
        rows[250] = {"name": "bad", "qty": "abc"}
        with raises_df(BulkValidationError, "DF-305", "nothing was written", "row 250") as info:
            await db.express.bulk_create("KitRow", rows, batch_size=100)
        assert [f["index"] for f in info.value.failures] == [250]
        assert await db.express.count("KitRow") == 0
        # a later invalid row outranks a duplicate key in an earlier batch: validation first
        dup: list[dict[str, Any]] = [{"name": f"d{i}", "qty": i, "code": "same" if i < 2 else None}
                                     for i in range(200)]
        dup[150] = {"name": "bad", "qty": 1, "nope": 2}
        with raises_df(BulkValidationError, "DF-305", "row 150"):
            await db.express.bulk_create("KitRow", dup, batch_size=50)
        assert await db.express.count("KitRow") == 0
        # inside the caller's transaction, the rest of the transaction is kept
        async with db.transaction():
            await db.express.create("KitRow", {"name": "kept", "qty": 1})
            with raises_df(BulkValidationError, "DF-305", "row 250"):
                await db.express.bulk_create("KitRow", rows, batch_size=100)
        assert names(await db.express.list("KitRow")) == {"kept"}

    async def test_upsert_rows_a_later_batch_refuses_write_nothing(self, make_db: MakeDB) -> None:
        """An upsert of many batches (however the adapter groups them: one statement each,
        or all streamed into one) writes nothing when a later batch holds an invalid row or
        repeats a key of an earlier batch, and the error names the row; with every row valid
        the counts are exact."""
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitRow", [{"name": f"o{i}", "qty": 0, "code": f"c{i}"}
                                                for i in range(0, 300, 2)])
        rows: list[dict[str, Any]] = [{"name": f"n{i}", "qty": i, "code": f"c{i}"}
                                      for i in range(300)]
        bad = [dict(r) for r in rows]
        bad[250] = {"name": "bad", "qty": "many", "code": "c250"}
        with raises_df(BulkValidationError, "DF-305", "row 250"):
            await db.express.bulk_upsert("KitRow", bad, conflict_on="code", batch_size=60)
        repeated = [dict(r) for r in rows]
        repeated[250] = {"name": "again", "qty": 1, "code": "c3"}
        with raises_df(BulkValidationError, "DF-305", "repeats"):
            await db.express.bulk_upsert("KitRow", repeated, conflict_on="code", batch_size=60)
        assert await db.express.count("KitRow") == 150
        assert await db.express.count("KitRow", {"qty": {"$gt": 0}}) == 0
        out = await db.express.bulk_upsert("KitRow", rows, conflict_on="code", batch_size=60)
        assert (out["inserted"], out["updated"]) == (150, 150)
        assert await db.express.count("KitRow", {"qty": {"$gt": 0}}) == 299

    async def test_rich_values_round_trip_and_bad_json_is_named(self, make_db: MakeDB) -> None:
        db = make_db()
        _rich_model(db)
        at = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=dt.UTC)
        rows: list[dict[str, Any]] = [
            {"sku": f"s{i}", "price": Decimal(i) / 8, "tone": "high" if i % 2 else "low",
             "attrs": {"k": i, "nested": {"a": [1, 2.5, None, True]}}, "tags": [f"t{i}"],
             "day": dt.date(2026, 1, 1) + dt.timedelta(days=i),
             "at": None if i % 3 == 0 else at} for i in range(150)]
        assert (await db.express.bulk_create("KitRichRow", rows, batch_size=40))["inserted"] == 150
        got = {r["sku"]: r for r in await db.express.list("KitRichRow")}
        for r in rows:
            stored = got[r["sku"]]
            assert stored["price"] == r["price"] and stored["tone"].value == r["tone"]
            assert stored["attrs"] == r["attrs"] and stored["tags"] == r["tags"]
            assert stored["day"] == r["day"] and stored["at"] == r["at"]
        for bad, fragment in ((float("nan"), "JSON"), ({1, 2}, "JSON")):
            late = [dict(r, sku=f"n{i}") for i, r in enumerate(rows)]
            late[120] = dict(late[120], attrs={"x": bad})
            with raises_df(BulkValidationError, "DF-305", "row 120", fragment) as info:
                await db.express.bulk_create("KitRichRow", late, batch_size=40)
            assert info.value.failures[0]["field"] == "attrs"
        assert await db.express.count("KitRichRow") == 150
