"""``db.frames``: the validated frame pipeline, step by step, on every backend.

Column contract -> row rules -> foreign keys -> propagation -> outcome, then update
(fill from the database, staging merge and direct upsert) and reads (pages, streams,
lazy frames, filters with tenancy and soft delete). Polars is the ``frames`` extra: the
tests need it and say so when it is missing.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from ...errors import (
    ManagedFieldError,
    MissingFieldError,
    RecordDeletedError,
    TenantRequiredError,
    TenantViolationError,
    UnknownFieldError,
    ValidationError,
)
from ...model import field
from ._helpers import MakeDB, as_stored, assert_aware_utc, raises_df

pytestmark = pytest.mark.asyncio


class KitTier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


async def _shop(make_db: MakeDB, **options: Any) -> Any:
    db = make_db(**options)
    # the order -> customer reference is a declared foreign key where the backend enforces
    # one; elsewhere a plain field (the tests of the key itself require the capability)
    reference = (field(foreign_key="KitFrameCustomer")
                 if db.adapter.capabilities.fk_restrict else field())

    @db.model
    class KitFrameCustomer:
        name: str = field(max_length=12)
        email: str = field(unique=True)
        tier: KitTier = KitTier.SILVER

    @db.model
    class KitFrameOrder:
        customer_id: int = reference
        total: Decimal
        placed: _dt.datetime
        ref: uuid.UUID
        paid: bool = False
        qty: int = 1
        weight: float = 0.0
        due: _dt.date | None = None
        meta: dict[str, Any] | None = None

    await db.initialize()
    return db


def _customers(pl: Any, n: int = 3, start: int = 1) -> Any:
    ids = list(range(start, start + n))
    return pl.DataFrame({"id": ids, "name": [f"c{i}" for i in ids],
                         "email": [f"c{i}@x" for i in ids]})


def _orders(pl: Any, customer_ids: list[int]) -> Any:
    n = len(customer_ids)
    return pl.DataFrame({
        "customer_id": customer_ids,
        "total": ["1.50"] * n,
        "placed": ["2024-01-02T03:04:05+02:00"] * n,
        "ref": [str(uuid.uuid4()) for _ in range(n)],
    })


def _errors(res: Any, model: str) -> list[tuple[int, str, str]]:
    return sorted((r["_row"], r["field"], r["code"]) for r in res.errors(model).to_dicts())


async def _count(db: Any, model: str) -> int:
    return int(await db.express.count(model))


@pytest.mark.asyncio
class TestFrames:
    @pytest.fixture
    def pl(self) -> Any:
        return pytest.importorskip("polars", reason="db.frames needs the frames extra (polars)")

    # --- 1. column contract --------------------------------------------------------------
    async def test_contract_unknown_column_fails_fast_or_is_dropped(self, make_db: MakeDB,
                                                                    pl: Any) -> None:
        db = await _shop(make_db)
        frame = _customers(pl).with_columns(pl.lit(1).alias("emial"))
        with raises_df(UnknownFieldError, "DF-302", "emial", "Did you mean 'email'"):
            await db.frames.create("KitFrameCustomer", frame, extra="fail")
        assert await _count(db, "KitFrameCustomer") == 0
        res = await db.frames.create("KitFrameCustomer", frame)  # extra="drop" by default
        assert res.status == "ok" and res.written == {"KitFrameCustomer": 3}
        assert "emial" not in res.valid["KitFrameCustomer"].columns

    async def test_contract_missing_columns_get_defaults_or_fail(self, make_db: MakeDB,
                                                                 pl: Any) -> None:
        db = await _shop(make_db)
        with raises_df(MissingFieldError, "DF-303", "email"):
            await db.frames.create("KitFrameCustomer", pl.DataFrame({"name": ["a"]}))
        with raises_df(MissingFieldError, "DF-303", "tier"):
            await db.frames.create("KitFrameCustomer", _customers(pl), missing="fail")
        res = await db.frames.create("KitFrameCustomer", _customers(pl))
        assert res.status == "ok"
        rows = await db.express.list("KitFrameCustomer", order_by="id")
        assert [r["tier"] for r in rows] == [KitTier.SILVER] * 3

    async def test_contract_dtype_and_managed_columns(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        bad = _customers(pl).with_columns(pl.col("id").cast(pl.Float64))
        with raises_df(ValidationError, "DF-301", "KitFrameCustomer.id", "Float64"):
            await db.frames.create("KitFrameCustomer", bad)
        stamped = _customers(pl).with_columns(pl.lit(None).alias("created_at"))
        with raises_df(ManagedFieldError, "DF-304", "created_at"):
            await db.frames.create("KitFrameCustomer", stamped, extra="fail")
        with raises_df(ValidationError, "DF-301", "DataFrame"):
            await db.frames.create("KitFrameCustomer", [{"name": "a"}])
        assert await _count(db, "KitFrameCustomer") == 0

    # --- 2. row rules --------------------------------------------------------------------
    async def test_coercion_from_text_matches_express_values(self, make_db: MakeDB,
                                                             pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 1))
        ref = uuid.uuid4()
        frame = pl.DataFrame({
            "customer_id": ["1"], "total": [" 12.50 "], "placed": ["2024-01-02T03:04:05+02:00"],
            "ref": ["{" + str(ref).upper() + "}"], "paid": ["TRUE"], "qty": [" 7"],
            "weight": ["2.5"], "due": ["2024-02-29"], "meta": ['{"a": [1, 2]}'],
        })
        res = await db.frames.create("KitFrameOrder", frame)
        assert res.status == "ok", res.invalid["KitFrameOrder"]
        row = (await db.express.list("KitFrameOrder"))[0]
        assert row["total"] == Decimal("12.50") and row["qty"] == 7 and row["paid"] is True
        assert row["ref"] == ref and row["weight"] == 2.5
        assert row["due"] == _dt.date(2024, 2, 29) and row["meta"] == {"a": [1, 2]}
        assert row["placed"] == _dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=_dt.UTC)
        assert_aware_utc(row["created_at"])
        tiers = pl.DataFrame({"id": [2], "name": ["g"], "email": ["g@x"], "tier": ["gold"]})
        await db.frames.create("KitFrameCustomer", tiers)
        assert (await db.express.read("KitFrameCustomer", 2))["tier"] is KitTier.GOLD

    async def test_row_rules_name_field_and_code_and_write_nothing(self, make_db: MakeDB,
                                                                   pl: Any) -> None:
        db = await _shop(make_db)
        customers = pl.DataFrame({
            "id": [1, 2, 3, 4, 5],
            "name": ["ok", "x" * 13, None, "d", "e"],
            "email": ["a@x", "b@x", "c@x", "a@x", "e@x"],
            "tier": ["gold", "silver", "gold", "gold", "bronze"],
        })
        res = await db.frames.create("KitFrameCustomer", customers)
        assert res.status == "fail"
        assert res.written == {"KitFrameCustomer": 0}
        assert _errors(res, "KitFrameCustomer") == [
            (0, "email", "DF-301"), (1, "name", "DF-301"), (2, "name", "DF-301"),
            (3, "email", "DF-301"), (4, "tier", "DF-301")]
        messages = {r["field"]: r["message"] for r in res.errors("KitFrameCustomer").to_dicts()}
        assert "max_length is 12" in messages["name"] or "required" in messages["name"]
        assert "bronze" in messages["tier"]
        assert res.valid["KitFrameCustomer"].height == 0
        assert await _count(db, "KitFrameCustomer") == 0
        await db.frames.create("KitFrameCustomer", _customers(pl, 1))
        orders = pl.DataFrame({
            "customer_id": [1, 1, 1, 1, 1], "total": ["1", "x", "1", "1", "1"],
            "placed": ["2024-01-01", "2024-01-01", "yesterday", "2024-01-01", "2024-01-01"],
            "ref": [str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), "nope",
                    str(uuid.uuid4())],
            "weight": ["1", "1", "1", "1", "inf"], "qty": ["1", "1", "1", "1", "9" * 30],
        })
        res = await db.frames.create("KitFrameOrder", orders, partial=True)
        assert res.status == "partial_ok"
        assert _errors(res, "KitFrameOrder") == [
            (1, "total", "DF-301"), (2, "placed", "DF-301"), (3, "ref", "DF-301"),
            (4, "qty", "DF-301"), (4, "weight", "DF-301")]
        assert res.written == {"KitFrameOrder": 1} and await _count(db, "KitFrameOrder") == 1

    async def test_large_frame_round_trips_every_value(self, make_db: MakeDB, pl: Any) -> None:
        """Enough rows for the adapters' bulk-load paths: every value reads back as written
        (express's values), nulls included, and generated ids continue after explicit ones."""
        db = await _shop(make_db)
        n = 300
        await db.frames.create("KitFrameCustomer", pl.DataFrame({
            "id": list(range(1, n + 1)),
            "name": ["", "é", "日本語", "x" * 12, "a'b\"c"] * (n // 5),
            "email": [f"{i}@x" for i in range(n)],
            "tier": ["gold", "silver"] * (n // 2)}))
        base = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        orders = pl.DataFrame({
            "customer_id": [i % n + 1 for i in range(n)],
            "total": [str(Decimal(i) / 100) for i in range(n)],
            "placed": [base + _dt.timedelta(days=97 * i, microseconds=i) for i in range(n)],
            "ref": [str(uuid.UUID(int=i)) for i in range(n)],
            "paid": [i % 2 == 0 for i in range(n)],
            "qty": [(-1) ** i * i * 10 ** 12 for i in range(n)],
            "weight": [i / 7 for i in range(n)],
            "due": [None if i % 3 == 0 else _dt.date(1999, 12, 31) + _dt.timedelta(days=i)
                    for i in range(n)],
        })
        res = await db.frames.create("KitFrameOrder", orders)
        assert res.status == "ok" and res.written == {"KitFrameOrder": n}
        stored = await db.express.list("KitFrameOrder", order_by="id")
        assert len(stored) == n
        for i, row in enumerate(stored):
            assert row["customer_id"] == i % n + 1 and row["total"] == Decimal(i) / 100
            assert row["placed"] == as_stored(db, base + _dt.timedelta(days=97 * i, microseconds=i))
            assert row["ref"] == uuid.UUID(int=i) and row["paid"] is (i % 2 == 0)
            assert row["qty"] == (-1) ** i * i * 10 ** 12 and row["weight"] == i / 7
            assert row["due"] == orders["due"][i]
        names = [r["name"] for r in await db.express.list("KitFrameCustomer", order_by="id")]
        assert names == ["", "é", "日本語", "x" * 12, "a'b\"c"] * (n // 5)
        new = await db.express.create("KitFrameCustomer", {"name": "next", "email": "next@x"})
        assert new["id"] == n + 1
        frame, _ = await db.frames.read("KitFrameOrder", batch_size=128)
        assert frame["qty"].to_list() == orders["qty"].to_list()
        assert frame["due"].to_list() == orders["due"].to_list()
        # every column of a read frame holds what express reads (canonical frame forms)
        assert frame.schema["placed"] == pl.Datetime("us", "UTC") and frame.schema["due"] == pl.Date
        for got, want in zip(frame.to_dicts(), stored, strict=True):
            assert got["total"] == want["total"] and got["placed"] == want["placed"]
            assert got["ref"] == str(want["ref"]) and got["paid"] is want["paid"]
            assert got["weight"] == want["weight"] and got["created_at"] == want["created_at"]
            assert got["meta"] is None and want["meta"] is None

        @db.model
        class KitFrameEvent:  # no Decimal: a frame every bulk-load path takes whole
            ref: uuid.UUID
            at: _dt.datetime | None
            day: _dt.date
            ok: bool
            label: str | None
            meta: dict[str, Any] | None = None

        events = pl.DataFrame({
            "ref": [str(uuid.UUID(int=(i * 7919) << 64 | i)) for i in range(n)],
            "at": [None if i % 4 == 0 else base - _dt.timedelta(seconds=i * 1234567)
                   for i in range(n)],
            "day": [_dt.date(1, 1, 1) + _dt.timedelta(days=i * 9999) for i in range(n)],
            "ok": [i % 3 == 0 for i in range(n)],
            "label": [None if i % 5 == 0 else f"l{i}" * (i % 4) for i in range(n)]})
        assert (await db.frames.create("KitFrameEvent", events)).status == "ok"
        back = await db.express.list("KitFrameEvent", order_by="id")
        assert [r["ref"] for r in back] == [uuid.UUID(s) for s in events["ref"]]
        assert [r["at"] for r in back] == events["at"].to_list()
        assert [r["day"] for r in back] == events["day"].to_list()
        assert [r["ok"] for r in back] == events["ok"].to_list()
        assert [r["label"] for r in back] == events["label"].to_list()
        assert {r["meta"] for r in back} == {None}
        read, _ = await db.frames.read("KitFrameEvent", batch_size=100)
        assert read["ref"].to_list() == events["ref"].to_list()
        for column in ("at", "day", "ok", "label"):
            assert read[column].to_list() == events[column].to_list()

    async def test_timestamp_text_in_mixed_iso_forms(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 1))
        texts = ["2024-01-02T03:04:05+02:00"] * 9 + [
            "2024-01-02", "2024-01-02 00:00:00.5", " 2024-03-04T05:06:07Z ", "2024-03-04T05:06"]
        frame = _orders(pl, [1] * len(texts)).with_columns(pl.Series("placed", texts))
        res = await db.frames.create("KitFrameOrder", frame)
        assert res.status == "ok", res.invalid["KitFrameOrder"]
        stored = [r["placed"] for r in await db.express.list("KitFrameOrder", order_by="id")]
        expected = []
        for text in texts:
            value = _dt.datetime.fromisoformat(text.strip())
            expected.append(value.replace(tzinfo=_dt.UTC) if value.tzinfo is None
                            else value.astimezone(_dt.UTC))
        assert stored == expected

    async def test_limits_are_express_limits(self, make_db: MakeDB, pl: Any) -> None:
        """Timestamps past year 9999 in UTC, JSON with NaN or nested past the JSON depth
        limit: refused per row by frames exactly where express refuses the value."""
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 1))
        late = _dt.datetime(9999, 12, 31, 23, tzinfo=_dt.timezone(_dt.timedelta(hours=-5)))
        deep = "[" * 40 + "]" * 40
        cases = {"placed": [late.isoformat(), "2024-01-01"],
                 "meta": ['{"a": NaN}', '{"a": 1}', deep]}
        for column, values in cases.items():
            frame = _orders(pl, [1] * len(values)).with_columns(pl.Series(column, values))
            res = await db.frames.create("KitFrameOrder", frame, partial=True)
            bad = {row for row, f, code in _errors(res, "KitFrameOrder") if f == column}
            for i, value in enumerate(values):
                data = {**frame.row(i, named=True), column: value}
                if column == "meta":
                    try:
                        data["meta"] = json.loads(value)
                    except ValueError:
                        assert i in bad
                        continue
                try:
                    await db.express.create("KitFrameOrder", data)
                except ValidationError as exc:
                    assert exc.code == "DF-301" and i in bad, (column, value)
                else:
                    assert i not in bad, (column, value)

    @pytest.mark.unsupported("nul_in_text")
    async def test_nul_in_text_is_refused_per_row(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        res = await db.frames.create("KitFrameCustomer", pl.DataFrame(
            {"id": [1, 2], "name": ["a\x00b", "ok"], "email": ["a@x", "b@x"]}), partial=True)
        assert _errors(res, "KitFrameCustomer") == [(0, "name", "DF-501")]
        assert res.status == "partial_ok" and await _count(db, "KitFrameCustomer") == 1

    @pytest.mark.requires("nul_in_text")
    async def test_nul_in_text_is_stored(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        res = await db.frames.create("KitFrameCustomer", pl.DataFrame(
            {"id": [1], "name": ["a\x00b"], "email": ["a@x"]}))
        assert res.status == "ok"
        assert (await db.express.read("KitFrameCustomer", 1))["name"] == "a\x00b"

    # --- 3. foreign keys -----------------------------------------------------------------
    @pytest.mark.requires("fk_restrict")
    async def test_foreign_keys_against_frames_and_database(self, make_db: MakeDB,
                                                            pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 2, start=1))  # 1, 2 stored
        res = await db.frames.create(
            {"KitFrameOrder": _orders(pl, [1, 3, 99, 2]),  # children first: order is the pipeline's
             "KitFrameCustomer": _customers(pl, 1, start=3)}, partial=True)
        assert _errors(res, "KitFrameOrder") == [(2, "customer_id", "DF-902")]
        assert "fk_kit_frame_order_customer_id" in res.errors("KitFrameOrder")["message"][0]
        assert res.status == "partial_ok"
        assert res.written == {"KitFrameCustomer": 1, "KitFrameOrder": 3}
        assert sorted(r["customer_id"] for r in await db.express.list("KitFrameOrder")) == [1, 2, 3]

    # --- 4. propagation ------------------------------------------------------------------
    @pytest.mark.requires("fk_restrict")
    async def test_child_of_an_invalid_parent_is_invalid(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        customers = _customers(pl, 2).with_columns(
            pl.Series("name", ["ok", "x" * 20]))  # customer 2 is invalid
        res = await db.frames.create({"KitFrameCustomer": customers,
                                      "KitFrameOrder": _orders(pl, [1, 2, 2])}, partial=True)
        assert _errors(res, "KitFrameOrder") == [(1, "customer_id", "DF-310"),
                                                 (2, "customer_id", "DF-310")]
        assert res.status == "partial_ok"
        assert res.written == {"KitFrameCustomer": 1, "KitFrameOrder": 1}

    @pytest.mark.requires("fk_restrict")
    async def test_propagate_both_invalidates_parents_of_invalid_children(
            self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        orders = _orders(pl, [1, 1, 2]).with_columns(pl.Series("total", ["1", "bad", "2"]))
        frames = {"KitFrameCustomer": _customers(pl, 3), "KitFrameOrder": orders}
        res = await db.frames.create(frames, partial=True, propagate="both")
        # order 1 is bad -> customer 1 -> order 0 (its other child); customers 2, 3 stay
        assert _errors(res, "KitFrameCustomer") == [(0, "id", "DF-310")]
        assert _errors(res, "KitFrameOrder") == [(0, "customer_id", "DF-310"),
                                                 (1, "total", "DF-301")]
        assert res.written == {"KitFrameCustomer": 2, "KitFrameOrder": 1}
        ids = {r["customer_id"] for r in await db.express.list("KitFrameOrder")}
        assert ids <= {r["id"] for r in await db.express.list("KitFrameCustomer")}

    @pytest.mark.requires("fk_set_null")
    async def test_self_referencing_frame_writes_parents_first(self, make_db: MakeDB,
                                                               pl: Any) -> None:
        db = make_db()

        @db.model
        class KitFrameCategory:
            name: str = field(max_length=5)
            parent_id: int | None = field(foreign_key="KitFrameCategory", on_delete="set null",
                                          default=None)

        await db.initialize()
        frame = pl.DataFrame({"id": [3, 2, 1, 4, 6, 5],
                              "name": ["c", "b", "a", "d", "too long", "e"],
                              "parent_id": [2, 1, None, 99, None, 6]})
        res = await db.frames.create("KitFrameCategory", frame, partial=True)
        assert _errors(res, "KitFrameCategory") == [
            (3, "parent_id", "DF-902"), (4, "name", "DF-301"), (5, "parent_id", "DF-310")]
        assert res.written == {"KitFrameCategory": 3}
        rows = await db.express.list("KitFrameCategory", order_by="id")
        assert [(r["id"], r["parent_id"]) for r in rows] == [(1, None), (2, 1), (3, 2)]

    # --- 5. outcome ----------------------------------------------------------------------
    async def test_outcomes_ok_partial_and_fail(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        bad = _customers(pl, 2).with_columns(pl.Series("tier", ["gold", "tin"]))
        res = await db.frames.create("KitFrameCustomer", bad)
        assert res.status == "fail" and await _count(db, "KitFrameCustomer") == 0
        assert res.invalid["KitFrameCustomer"]["_errors"].list.len().to_list() == [1]
        all_bad = bad.with_columns(pl.Series("tier", ["tin", "tin"]))
        res = await db.frames.create("KitFrameCustomer", all_bad, partial=True)
        assert res.status == "fail" and await _count(db, "KitFrameCustomer") == 0
        res = await db.frames.create("KitFrameCustomer", bad, partial=True)
        assert res.status == "partial_ok" and await _count(db, "KitFrameCustomer") == 1
        res = await db.frames.create(("KitFrameCustomer", _customers(pl, 2, start=10)))
        assert res.status == "ok" and res.ok and await _count(db, "KitFrameCustomer") == 3

    @pytest.mark.requires("transactions")
    async def test_one_transaction_rolls_back_every_model(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 1))
        # passes the pipeline, then the database refuses the duplicate stored email
        dup = pl.DataFrame({"id": [5], "name": ["dup"], "email": ["c1@x"]})
        from ...errors import IntegrityError

        with pytest.raises(IntegrityError):
            await db.frames.create({"KitFrameCustomer": dup,
                                    "KitFrameOrder": _orders(pl, [1, 1])})
        assert await _count(db, "KitFrameCustomer") == 1
        assert await _count(db, "KitFrameOrder") == 0

    async def test_validate_false_warns_and_writes(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        with pytest.warns(RuntimeWarning, match="validate=False"):
            res = await db.frames.create("KitFrameCustomer", _customers(pl), validate=False)
        assert res.status == "ok" and await _count(db, "KitFrameCustomer") == 3

    # --- 6. update -----------------------------------------------------------------------
    @pytest.mark.parametrize("staging", [True, False])
    async def test_update_fills_from_database_and_merges(self, make_db: MakeDB, pl: Any,
                                                         staging: bool) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 2).with_columns(
            pl.Series("tier", ["gold", "gold"])))
        before = await db.express.read("KitFrameCustomer", 1)
        frame = pl.DataFrame({"id": [1, 7], "name": ["renamed", "new"],
                              "email": [None, "n@x"]}).with_columns(pl.col("email").cast(pl.String))
        res = await db.frames.update("KitFrameCustomer", frame.drop("email"), staging=staging)
        # row 7 is not stored and the frame has no email: required -> DF-303; nothing written
        assert res.status == "fail" and _errors(res, "KitFrameCustomer") == [(1, "email", "DF-303")]
        res = await db.frames.update("KitFrameCustomer", frame.with_columns(
            pl.Series("email", ["c1@x", "n@x"])), staging=staging)
        assert res.status == "ok", res.invalid["KitFrameCustomer"]
        assert (res.updated, res.inserted) == (1, 1)
        one = await db.express.read("KitFrameCustomer", 1)
        assert one["name"] == "renamed" and one["tier"] is KitTier.GOLD  # filled, not defaulted
        assert one["created_at"] == before["created_at"] and one["updated_at"] > before["updated_at"]
        seven = await db.express.read("KitFrameCustomer", 7)
        assert seven["tier"] is KitTier.SILVER and seven["email"] == "n@x"
        assert await _count(db, "KitFrameCustomer") == 3

    @pytest.mark.parametrize("staging", [True, False])
    async def test_update_explicit_ids_then_generated_ones(self, make_db: MakeDB, pl: Any,
                                                           staging: bool) -> None:
        db = await _shop(make_db)
        res = await db.frames.update("KitFrameCustomer", _customers(pl, 100), staging=staging)
        assert res.status == "ok" and res.inserted == 100
        made = await db.express.create("KitFrameCustomer", {"name": "next", "email": "next@x"})
        assert made["id"] == 101

    async def test_update_needs_the_primary_key(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        with raises_df(MissingFieldError, "DF-303", "id"):
            await db.frames.update("KitFrameCustomer", pl.DataFrame({"name": ["x"]}))

    # --- 7. read -------------------------------------------------------------------------
    async def test_read_pages_with_stats(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 25))
        frame, stats = await db.frames.read("KitFrameCustomer", page=2, batch_size=10)
        assert frame["id"].to_list() == list(range(11, 21))
        assert stats == {"mode": "page", "batch_size": 10, "total_count": 25, "total_pages": 3,
                         "current_page": 2, "has_next": True, "has_previous": True}
        frame, stats = await db.frames.read("KitFrameCustomer", {"id": {"$gt": 20}}, page=1)
        assert frame.height == 5 and stats["batch_size"] == 100 and not stats["has_next"]
        with raises_df(ValidationError, "DF-301", "page"):
            await db.frames.read("KitFrameCustomer", page=4, batch_size=10)
        with raises_df(ValidationError, "DF-301", "batch_size"):
            await db.frames.read("KitFrameCustomer", batch_size=-1)

    async def test_read_streams_all_rows_eager_or_lazy(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        await db.frames.create("KitFrameCustomer", _customers(pl, 25))
        await db.frames.create("KitFrameOrder", _orders(pl, [1, 2, 3]))
        frame, stats = await db.frames.read("KitFrameCustomer", batch_size=7)
        assert frame["id"].to_list() == list(range(1, 26))
        assert stats["mode"] == "stream" and stats["total_count"] == 25
        assert stats["total_pages"] == 4 and stats["batch_size"] == 7
        lazy, stats = await db.frames.read("KitFrameCustomer", {"name": {"$like": "c1%"}},
                                           lazy=True)
        assert isinstance(lazy, pl.LazyFrame) and stats["batch_size"] == 1000
        assert stats["total_count"] == 11
        assert sorted(lazy.collect()["name"].to_list()) == sorted(
            ["c1"] + [f"c{i}" for i in range(10, 20)])
        # a lazy stream fetches batch after batch as it is collected; the plan's filter,
        # projection and head apply to the batches
        lazy, stats = await db.frames.read("KitFrameCustomer", batch_size=4, lazy=True)
        assert stats["total_count"] == 25 and stats["total_pages"] == 7
        assert lazy.collect()["id"].to_list() == list(range(1, 26))
        picked = await asyncio.to_thread(
            lambda: lazy.filter(pl.col("id") % 5 == 0).select("id", "email").head(3).collect())
        assert picked.to_dicts() == [{"id": 5, "email": "c5@x"}, {"id": 10, "email": "c10@x"},
                                     {"id": 15, "email": "c15@x"}]
        orders, _ = await db.frames.read("KitFrameOrder")
        assert orders.schema["placed"] == pl.Datetime("us", "UTC")
        assert orders["total"].to_list() == [Decimal("1.50")] * 3
        sizes = [c.height async for c in db.frames.stream("KitFrameCustomer", batch_size=10)]
        assert sizes == [10, 10, 5]
        res = await db.frames.create("KitFrameCustomer", frame.drop("id").with_columns(
            pl.col("email") + "2"), extra="drop")  # a read frame writes back
        assert res.status == "ok" and await _count(db, "KitFrameCustomer") == 50

    async def test_read_applies_soft_delete_and_tenancy(self, make_db: MakeDB, pl: Any) -> None:
        db = make_db(multi_tenant=True)

        @db.model
        class KitFrameNote:
            __dataflow__ = {"soft_delete": True}
            title: str

        await db.initialize()
        with raises_df(TenantRequiredError, "DF-802"):
            await db.frames.read("KitFrameNote")
        notes = pl.DataFrame({"title": ["a", "b", "c"]})
        async with db.tenant("acme"):
            assert (await db.frames.create("KitFrameNote", notes)).status == "ok"
            first = (await db.express.list("KitFrameNote", order_by="id"))[0]
            await db.express.delete("KitFrameNote", first["id"])
            frame, stats = await db.frames.read("KitFrameNote")
            assert frame["title"].to_list() == ["b", "c"] and stats["total_count"] == 2
            assert set(frame["tenant_id"].to_list()) == {"acme"}
            frame, _ = await db.frames.read("KitFrameNote", include_deleted=True)
            assert frame.height == 3
        async with db.tenant("globex"):
            frame, _ = await db.frames.read("KitFrameNote")
            assert frame.height == 0
            # an update cannot reach another tenant's row, even by id: nothing is written
            with raises_df(TenantViolationError, "DF-803"):
                await db.frames.update("KitFrameNote", pl.DataFrame(
                    {"id": [first["id"] + 1], "title": ["stolen"]}))
        async with db.tenant("acme"):
            assert {r["title"] for r in await db.express.list("KitFrameNote")} == {"b", "c"}
            # nor a soft-deleted one (restore it first)
            with raises_df(RecordDeletedError, "DF-405"):
                await db.frames.update("KitFrameNote", pl.DataFrame(
                    {"id": [first["id"]], "title": ["back"]}))
            res = await db.frames.update("KitFrameNote", pl.DataFrame(
                {"id": [first["id"] + 1], "title": ["b2"]}), staging=False)
            assert res.status == "ok" and res.updated == 1
            frame, _ = await db.frames.read("KitFrameNote", {"title": "b2"})
            assert frame.height == 1


def _sync_exercise(db: Any, pl: Any) -> dict[str, Any]:
    """Every ``frames_sync`` method once, blocking; returns what the assertions need."""
    s = db.frames_sync
    out: dict[str, Any] = {}
    orders = _orders(pl, [1, 2, 3]).with_columns(pl.Series("total", ["1.5", "2", "many"]))
    out["create"] = s.create({"KitFrameCustomer": _customers(pl, 5), "KitFrameOrder": orders},
                             partial=True)
    # customer 4 has no orders: updating a referenced parent is its own capability
    out["update"] = s.update("KitFrameCustomer", pl.DataFrame({"id": [4], "name": ["bob"]}),
                             staging=False)
    out["page"] = s.read("KitFrameCustomer", {"id": {"$gte": 2}}, page=2, batch_size=2)
    lazy, _ = s.read("KitFrameCustomer", batch_size=2, lazy=True)
    out["lazy"] = lazy.collect()["id"].to_list()
    out["stream"] = [c["id"].to_list() for c in s.stream("KitFrameCustomer", batch_size=2)]
    for first in s.stream("KitFrameCustomer", batch_size=2):  # left early: the stream closes
        out["first"] = first["id"].to_list()
        break
    out["count"] = s.read("KitFrameCustomer")[1]["total_count"]
    return out


def _sync_check(out: dict[str, Any]) -> None:
    assert out["create"].status == "partial_ok"
    assert out["create"].written == {"KitFrameCustomer": 5, "KitFrameOrder": 2}
    assert (out["update"].status, out["update"].updated) == ("ok", 1)
    page, stats = out["page"]
    assert page["id"].to_list() == [4, 5] and stats["current_page"] == 2
    assert stats["total_count"] == 4 and not stats["has_next"]
    assert out["lazy"] == [1, 2, 3, 4, 5]
    assert out["stream"] == [[1, 2], [3, 4], [5]] and out["first"] == [1, 2]
    assert out["count"] == 5


class TestFramesSync:
    """``db.frames_sync``: ``db.frames`` blocking, with or without a running event loop."""

    @pytest.fixture
    def pl(self) -> Any:
        return pytest.importorskip("polars", reason="db.frames needs the frames extra (polars)")

    async def test_without_a_running_loop(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        out = await asyncio.to_thread(_sync_exercise, db, pl)  # a plain thread: no loop there
        _sync_check(out)
        frame, _ = await db.frames.read("KitFrameCustomer")
        assert frame.filter(pl.col("id") == 4)["name"].to_list() == ["bob"]

    async def test_with_a_running_loop(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        asyncio.get_running_loop()  # inside the test's loop: the calls run on the portal's
        _sync_check(_sync_exercise(db, pl))
        assert await _count(db, "KitFrameOrder") == 2

    async def test_errors_are_the_same_df_errors(self, make_db: MakeDB, pl: Any) -> None:
        db = await _shop(make_db)
        with raises_df(ValidationError, "DF-301", "page"):
            await asyncio.to_thread(db.frames_sync.read, "KitFrameCustomer", page=0)
        with raises_df(UnknownFieldError, "DF-302"):
            await asyncio.to_thread(db.frames_sync.create, "KitFrameCustomer",
                                    _customers(pl).with_columns(pl.lit(1).alias("nope")),
                                    extra="fail")
        assert await _count(db, "KitFrameCustomer") == 0

    @pytest.mark.requires("transactions")
    async def test_a_sync_transaction_block_holds_frame_writes(self, make_db: MakeDB,
                                                               pl: Any) -> None:
        db = await _shop(make_db)

        def block(fail: bool) -> None:
            with db.transaction():
                assert db.frames_sync.create("KitFrameCustomer", _customers(pl)).ok
                assert db.frames_sync.read("KitFrameCustomer")[1]["total_count"] == 3
                if fail:
                    raise RuntimeError("undo the block")

        with pytest.raises(RuntimeError, match="undo the block"):
            await asyncio.to_thread(block, True)
        assert await _count(db, "KitFrameCustomer") == 0
        await asyncio.to_thread(block, False)
        assert await _count(db, "KitFrameCustomer") == 3
