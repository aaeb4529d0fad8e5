"""Models: declared types round trip with their Python types; ids; managed timestamps."""

from __future__ import annotations

import datetime as _dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Optional

import pydantic
import pytest

from ...errors import ManagedFieldError, ModelDefinitionError, ValidationError
from ...model import field
from ._helpers import (
    NON_UTC_ZONES,
    UTC,
    MakeDB,
    as_stored,
    assert_aware_utc,
    local_timezone,
    raises_df,
)

pytestmark = pytest.mark.asyncio


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    street: str
    number: int
    tags: list[str] = []


def _all_types(db: object) -> type:
    @db.model  # type: ignore[attr-defined]
    class KitAllTypes:
        s: str
        i: int
        f: float
        b: bool
        dt: _dt.datetime
        d: _dt.date
        dec: Decimal
        u: uuid.UUID
        js: dict[str, Any]
        ls: list[Any]
        colour: Colour
        level: Level
        addr: Address
        maybe_s: Optional[str] = None  # noqa: UP045 - both spellings are the API
        maybe_i: int | None = None
        maybe_dt: Optional[_dt.datetime] = None  # noqa: UP045

    return KitAllTypes


@pytest.mark.asyncio
class TestTypes:
    @pytest.mark.parametrize("zone", ["UTC", *NON_UTC_ZONES])
    async def test_every_declared_type_round_trips(self, make_db: MakeDB, zone: str) -> None:
        """The same instant comes back whatever the process's ``TZ`` (a driver or adapter that
        converts through local time passes under UTC only)."""
        with local_timezone(zone):
            await self._round_trip_all_types(make_db)

    async def _round_trip_all_types(self, make_db: MakeDB) -> None:
        db = make_db()
        _all_types(db)
        u = uuid.uuid4()
        plus5 = _dt.timezone(_dt.timedelta(hours=5))
        written = _dt.datetime(2024, 3, 1, 17, 30, 15, 123456, tzinfo=plus5)
        data = {
            "s": "héllo ✓ 'quoted' \"double\"",
            "i": -(2**53) - 7,
            "f": 0.1 + 0.2,
            "b": False,
            "dt": written,
            "d": _dt.date(1999, 12, 31),
            "dec": Decimal("12345678901234.567890123"),
            "u": u,
            "js": {"a": [1, 2, {"b": None}], "c": "ü", "n": 1.5, "t": True},
            "ls": [1, "two", {"three": 3}, None],
            "colour": Colour.BLUE,
            "level": Level.HIGH,
            "addr": Address(street="Main", number=5, tags=["x"]),
        }
        created = await db.express.create("KitAllTypes", data)
        for rec in (created, await db.express.read("KitAllTypes", created["id"])):
            assert rec is not None
            assert rec["s"] == data["s"] and type(rec["s"]) is str
            assert rec["i"] == data["i"] and type(rec["i"]) is int
            assert rec["f"] == 0.30000000000000004 and type(rec["f"]) is float
            assert rec["b"] is False
            assert rec["dt"] == as_stored(db, written)
            assert_aware_utc(rec["dt"])
            assert rec["dt"].hour == 12  # 17:30 at +05:00 is 12:30 UTC
            assert rec["d"] == _dt.date(1999, 12, 31) and type(rec["d"]) is _dt.date
            assert rec["dec"] == data["dec"] and isinstance(rec["dec"], Decimal)
            assert str(rec["dec"]) == "12345678901234.567890123"
            assert rec["u"] == u and isinstance(rec["u"], uuid.UUID)
            assert rec["js"] == data["js"]
            assert rec["ls"] == data["ls"]
            assert rec["colour"] is Colour.BLUE
            assert rec["level"] is Level.HIGH
            assert isinstance(rec["addr"], Address) and rec["addr"] == data["addr"]
            assert rec["maybe_s"] is None and rec["maybe_i"] is None and rec["maybe_dt"] is None

    async def test_bool_true_and_float_precision(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitNum:
            flag: bool
            x: float

        for flag, x in [(True, 1e-300), (False, 123456789.12345679), (True, -2.5e300)]:
            rec = await db.express.create("KitNum", {"flag": flag, "x": x})
            back = await db.express.read("KitNum", rec["id"])
            assert back is not None
            assert back["flag"] is flag
            assert back["x"] == x and type(back["x"]) is float

    async def test_datetimes_keep_the_declared_resolution(self, make_db: MakeDB) -> None:
        """A datetime finer than the backend's ``datetime_resolution`` is truncated to it,
        the same way on write, on the record returned, on read and in filters (so a record
        is found by the value it was written from); strict mode refuses it and writes
        nothing. Ordering and range filters compare instants."""
        db = make_db()
        step = db.adapter.capabilities.datetime_resolution
        assert step >= 1 and 1_000_000 % step == 0, "a divisor of one second"

        @db.model
        class KitStep:
            n: int
            at: _dt.datetime

        base = _dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
        # one microsecond below each whole step, so truncation (not rounding) shows
        fine = [base + _dt.timedelta(microseconds=k * step + step - 1) for k in (3, 0, 2, 1)]
        made = [await db.express.create("KitStep", {"n": i, "at": at}) for i, at in enumerate(fine)]
        for rec, at in zip(made, fine, strict=True):
            assert rec["at"] == as_stored(db, at)
            back = await db.express.read("KitStep", rec["id"])
            assert back is not None and back["at"] == rec["at"]
            assert_aware_utc(back["at"])
            assert [r["id"] for r in await db.express.list("KitStep", {"at": at})] == [rec["id"]]
        assert [r["n"] for r in await db.express.list("KitStep", order_by="at")] == [1, 3, 2, 0]
        between = {"$gt": as_stored(db, fine[1]), "$lte": as_stored(db, fine[2])}
        assert sorted(r["n"] for r in await db.express.list("KitStep", {"at": between})) == [2, 3]
        for rec in made:
            assert rec["created_at"] == as_stored(db, rec["created_at"])

        strict = make_db(strict=True)

        @strict.model
        class KitStrictStep:
            id: int
            at: _dt.datetime

        finest = base + _dt.timedelta(microseconds=step - 1) if step > 1 else None
        if finest is not None:
            with raises_df(ValidationError, "DF-301", "at"):
                await strict.express.create("KitStrictStep", {"id": 1, "at": finest})
            assert await strict.express.count("KitStrictStep") == 0
        kept = await strict.express.create("KitStrictStep", {"id": 2, "at": base})
        assert kept["at"] == base

    @pytest.mark.parametrize("zone", ["UTC", *NON_UTC_ZONES])
    async def test_naive_datetime_is_taken_as_utc(self, make_db: MakeDB, zone: str) -> None:
        db = make_db()

        @db.model
        class KitWhen:
            at: _dt.datetime

        naive = _dt.datetime(2020, 1, 2, 3, 4, 5)
        with local_timezone(zone):
            rec = await db.express.create("KitWhen", {"at": naive})
            back = await db.express.read("KitWhen", rec["id"])
            found = await db.express.list("KitWhen", {"at": {"$gte": naive, "$lte": naive}})
        assert back is not None
        assert back["at"] == naive.replace(tzinfo=UTC)
        assert_aware_utc(back["at"])
        assert [r["id"] for r in found] == [rec["id"]], "a filter on the same instant finds it"

    async def test_defaults_fill_the_returned_record(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitDefaults:
            name: str
            qty: int = 3
            ratio: float = 0.5
            on: bool = True
            colour: Colour = Colour.RED
            meta: dict[str, Any] = {"k": [1]}
            items: list[Any] = []
            note: str | None = None
            tags: list[str] = field(default_factory=lambda: ["a"])

        rec = await db.express.create("KitDefaults", {"name": "x"})
        expected = {"name": "x", "qty": 3, "ratio": 0.5, "on": True, "colour": Colour.RED,
                    "meta": {"k": [1]}, "items": [], "note": None, "tags": ["a"]}
        for key, value in expected.items():
            assert rec[key] == value, key
        assert rec["on"] is True
        assert set(rec) == {"id", *expected, "created_at", "updated_at"}
        back = await db.express.read("KitDefaults", rec["id"])
        assert back == rec
        # mutable defaults are not shared between records
        rec2 = await db.express.create("KitDefaults", {"name": "y"})
        assert rec2["meta"] == {"k": [1]}

    async def test_created_and_updated_at_are_managed_aware_utc(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitStamp:
            name: str

        before = _dt.datetime.now(UTC)
        rec = await db.express.create("KitStamp", {"name": "a"})
        assert_aware_utc(rec["created_at"])
        assert_aware_utc(rec["updated_at"])
        assert before - _dt.timedelta(seconds=5) <= rec["created_at"] <= before + _dt.timedelta(
            seconds=60)
        updated = await db.express.update("KitStamp", rec["id"], {"name": "b"})
        assert updated is not None
        assert updated["created_at"] == rec["created_at"]
        assert updated["updated_at"] >= rec["updated_at"]
        assert_aware_utc(updated["updated_at"])
        for rows in (await db.express.list("KitStamp"), [await db.express.find_one("KitStamp")]):
            assert rows[0] is not None
            assert_aware_utc(rows[0]["created_at"])
            assert_aware_utc(rows[0]["updated_at"])

    async def test_passing_managed_timestamps_is_an_error(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitStamp2:
            name: str

        now = _dt.datetime.now(UTC)
        with raises_df(ManagedFieldError, "DF-304", "created_at", "KitStamp2"):
            await db.express.create("KitStamp2", {"name": "a", "created_at": now})
        assert await db.express.count("KitStamp2") == 0
        rec = await db.express.create("KitStamp2", {"name": "a"})
        with raises_df(ManagedFieldError, "DF-304", "updated_at"):
            await db.express.update("KitStamp2", rec["id"], {"updated_at": now})
        with raises_df(ManagedFieldError, "DF-304", "created_at"):
            await db.express.upsert("KitStamp2", {"id": rec["id"], "name": "z", "created_at": now})
        back = await db.express.read("KitStamp2", rec["id"])
        assert back is not None and back["name"] == "a"

    async def test_declaring_a_managed_field_is_refused(self, make_db: MakeDB) -> None:
        db = make_db()
        with raises_df(ModelDefinitionError, "DF-201", "created_at"):
            @db.model
            class KitBadStamp:
                created_at: _dt.datetime


@pytest.mark.asyncio
class TestIds:
    async def test_no_id_declared_is_auto_increment_int(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitNoId:
            name: str

        a = await db.express.create("KitNoId", {"name": "a"})
        b = await db.express.create("KitNoId", {"name": "b"})
        assert type(a["id"]) is int and type(b["id"]) is int
        assert b["id"] > a["id"]
        back = await db.express.read("KitNoId", b["id"])
        assert back is not None and back["name"] == "b"

    async def test_int_id_auto_increments_or_is_kept(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitIntId:
            id: int
            name: str

        given = await db.express.create("KitIntId", {"id": 1000, "name": "given"})
        assert given["id"] == 1000
        auto = await db.express.create("KitIntId", {"name": "auto"})
        assert type(auto["id"]) is int and auto["id"] != 1000
        assert (await db.express.read("KitIntId", 1000) or {}).get("name") == "given"

    async def test_explicit_ids_then_generated_ones_do_not_collide(self, make_db: MakeDB
                                                                     ) -> None:
        """Rows given ids 1..3 (and one far ahead), then rows without: the generated ids
        skip every id in use (a sequence that ignores explicit ids collides here)."""
        db = make_db()

        @db.model
        class KitMixedId:
            id: int
            name: str

        await db.express.bulk_create("KitMixedId", [{"id": i, "name": f"given{i}"} for i in (1, 2, 3)])
        await db.express.create("KitMixedId", {"id": 50, "name": "ahead"})
        made = [await db.express.create("KitMixedId", {"name": f"auto{i}"}) for i in range(3)]
        more = await db.express.bulk_create("KitMixedId", [{"name": f"bulk{i}"} for i in range(3)])
        assert more["inserted"] == 3
        ids = [r["id"] for r in await db.express.list("KitMixedId", order_by="id")]
        assert len(ids) == len(set(ids)) == 10
        assert {1, 2, 3, 50} <= set(ids)
        assert all(type(r["id"]) is int and r["id"] not in (1, 2, 3, 50) for r in made)
        assert (await db.express.read("KitMixedId", 2) or {}).get("name") == "given2"

    async def test_str_id_is_kept(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitStrId:
            id: str
            name: str

        rec = await db.express.create("KitStrId", {"id": "user-42", "name": "x"})
        assert rec["id"] == "user-42"
        back = await db.express.read("KitStrId", "user-42")
        assert back is not None and back["name"] == "x"
        assert await db.express.read("KitStrId", "user-43") is None

    async def test_uuid_id_is_generated_or_kept(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitUuidId:
            id: uuid.UUID
            name: str

        gen = await db.express.create("KitUuidId", {"name": "gen"})
        assert isinstance(gen["id"], uuid.UUID)
        mine = uuid.uuid4()
        kept = await db.express.create("KitUuidId", {"id": mine, "name": "kept"})
        assert kept["id"] == mine
        for key in (mine, str(mine)):
            back = await db.express.read("KitUuidId", key)
            assert back is not None and back["id"] == mine and back["name"] == "kept"
        assert (await db.express.read("KitUuidId", gen["id"]) or {}).get("name") == "gen"

    async def test_table_name_rule_and_override(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitFlowRun:
            name: str

        @db.model
        class KitRenamed:
            __tablename__ = "kit_custom_table"
            name: str

        assert db.get_model("KitFlowRun").table == "kit_flow_run"
        assert db.get_model("KitRenamed").table == "kit_custom_table"
        await db.initialize()
        await db.express.create("KitRenamed", {"name": "r"})
        live = await db.adapter.run(db.adapter.introspect, ["kit_flow_run", "kit_custom_table"])
        assert set(live) == {"kit_flow_run", "kit_custom_table"}
        assert await db.express.count("KitRenamed") == 1
