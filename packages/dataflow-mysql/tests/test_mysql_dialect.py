"""MySQL-specific semantics, checked on the real server: types as stored, collation, LIKE
escaping with ``%s`` parameters, regex flags, upsert SQL that works on MariaDB and MySQL 8."""

from __future__ import annotations

import datetime as _dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import aiomysql
import pytest

from dataflow import DataFlow, field
from dataflow.errors import ValidationError
from dataflow.model import build_model_spec
from dataflow.query.filters import parse_filter
from dataflow_mysql.adapter import MySQLAdapter
from dataflow_mysql.dialect import MySQLCompiler


async def column_types(raw: aiomysql.Connection, table: str) -> dict[str, tuple[str, str | None]]:
    async with raw.cursor() as cur:
        await cur.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        return {r[0]: (r[1].lower(), r[2]) for r in await cur.fetchall()}


async def raw_row(raw: aiomysql.Connection, sql: str) -> tuple[Any, ...]:
    async with raw.cursor() as cur:
        await cur.execute(sql)
        row: tuple[Any, ...] = (await cur.fetchall())[0]
        return row


async def test_column_types_as_stored(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyTyped:
        body: str
        code: str = field(max_length=12)
        email: str = field(unique=True)
        tag: str = field(index=True, default="")
        ratio: float = 0.0
        ok: bool = True
        at: _dt.datetime | None = None
        meta: dict[str, Any] = {}
        price: Decimal = Decimal("0")
        ref: uuid.UUID | None = None

    await db.initialize()
    types = await column_types(raw, "my_typed")
    adapter = db.adapter
    assert isinstance(adapter, MySQLAdapter)
    text_collation = adapter.text_collation()
    assert types["body"] == ("longtext", text_collation)  # unbounded str: TEXT, not VARCHAR(255)
    assert types["code"] == ("varchar(12)", text_collation)  # VARCHAR(n) only with max_length
    assert types["email"][0] == "varchar(255)"  # unique: MySQL cannot index TEXT
    assert types["tag"][0] == "varchar(255)"
    assert types["ratio"][0] == "double"
    assert types["ok"][0] == "tinyint(1)"  # BOOLEAN
    assert types["at"][0] == "datetime(6)"
    assert types["created_at"][0] == "datetime(6)"
    assert types["price"][0] == "decimal(65,30)"
    assert types["ref"][0] == "char(36)"
    assert types["meta"][0] in ("json", "longtext")  # MariaDB's JSON is LONGTEXT + json_valid
    if adapter.is_mariadb:
        assert text_collation == "utf8mb4_nopad_bin"


async def test_long_strings_are_stored_intact(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyNote:
        body: str

    for n in (300, 70_000, 1_000_000):
        text = ("é" + "x" * 9) * (n // 10)
        rec = await db.express.create("MyNote", {"body": text})
        assert rec["body"] == text
        got = await db.express.read("MyNote", rec["id"])
        assert got is not None and got["body"] == text and len(got["body"]) == n


async def test_varchar_max_length_is_enforced_not_truncated(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyCode:
        code: str = field(max_length=5)

    await db.express.create("MyCode", {"code": "abcde"})
    with pytest.raises(ValidationError):
        await db.express.create("MyCode", {"code": "abcdef"})
    assert [r["code"] for r in await db.express.list("MyCode")] == ["abcde"]


async def test_datetime_is_stored_utc_and_returned_aware(make_db: Any, raw: aiomysql.Connection) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyEvent:
        at: _dt.datetime

    plus2 = _dt.timezone(_dt.timedelta(hours=2))
    local = _dt.datetime(2024, 3, 1, 14, 30, 15, 123456, tzinfo=plus2)
    rec = await db.express.create("MyEvent", {"at": local})
    assert rec["at"] == local and rec["at"].tzinfo is not None and rec["at"].utcoffset() == _dt.timedelta(0)
    stored = await raw_row(raw, f"SELECT at FROM my_event WHERE id = {int(rec['id'])}")
    assert stored[0] == _dt.datetime(2024, 3, 1, 12, 30, 15, 123456)  # UTC wall clock, microseconds kept
    got = await db.express.read("MyEvent", rec["id"])
    assert got is not None and got["at"] == local and got["at"].tzinfo == _dt.UTC
    assert await db.express.count("MyEvent", {"at": {"$gt": local - _dt.timedelta(microseconds=1)}}) == 1
    assert await db.express.count("MyEvent", {"at": {"$gt": local}}) == 0


async def test_bool_double_json_decimal_round_trip(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyMixed:
        ok: bool
        ratio: float
        meta: dict[str, Any]
        items: list[Any]
        price: Decimal

    data = {"ok": False, "ratio": 0.1 + 0.2, "meta": {"a": [1, {"b": None}], "é": "ü"},
            "items": [1, "two", 3.5], "price": Decimal("12345678901234567890.123456789")}
    rec = await db.express.create("MyMixed", data)
    got = await db.express.read("MyMixed", rec["id"])
    assert got is not None
    for k, v in data.items():
        assert got[k] == v and type(got[k]) is type(v), k
        assert rec[k] == v and type(rec[k]) is type(v), k
    with pytest.raises(ValidationError):  # more fractional digits than DECIMAL(65, 30) keeps
        await db.express.create("MyMixed", {**data, "price": Decimal("1." + "1" * 31)})


class Tone(enum.Enum):
    LOW = "low"
    HIGH = "high"


async def test_updates_by_id_store_and_return_every_type_the_same_each_time(
        make_db: Any, raw: aiomysql.Connection) -> None:
    """An update by id compiles its statement once per column list and reuses the text:
    the first and every later update of the same columns store and return the same."""
    db: DataFlow = make_db()

    @db.model
    class MyUpdated:
        label: str
        meta: dict[str, Any]
        price: Decimal
        token: uuid.UUID
        at: _dt.datetime
        tone: Tone
        note: str | None = None

    plus2 = _dt.timezone(_dt.timedelta(hours=2))
    first = {"label": "a", "meta": {"k": [1, None]}, "price": Decimal("1.50"),
             "token": uuid.uuid4(), "at": _dt.datetime(2024, 3, 1, 14, 30, tzinfo=plus2),
             "tone": Tone.LOW, "note": None}
    recs = [await db.express.create("MyUpdated", first) for _ in range(3)]
    changes = {"label": "50% 'quoted'", "meta": {"é": "ü", "n": 2.5}, "price": Decimal("-0.001"),
               "token": uuid.uuid4(), "at": _dt.datetime(2024, 3, 1, 23, 0, tzinfo=plus2),
               "tone": Tone.HIGH, "note": "set"}
    stored = []
    for rec in recs:  # the first compiles the statement, the others reuse its text
        got = await db.express.update("MyUpdated", rec["id"], changes)
        assert got is not None and got == await db.express.read("MyUpdated", rec["id"])
        for k, v in changes.items():
            assert got[k] == v and type(got[k]) is type(v), k
        stored.append(await raw_row(raw, "SELECT label, meta, price, token, at, tone, note "
                                         f"FROM my_updated WHERE id = {int(rec['id'])}"))
    assert stored[0] == stored[1] == stored[2]
    assert stored[0][4] == _dt.datetime(2024, 3, 1, 21, 0)  # UTC wall clock
    back = await db.express.update("MyUpdated", recs[1]["id"], {"note": None})
    assert back is not None and back["note"] is None and back["label"] == changes["label"]
    assert await db.express.update("MyUpdated", 10**9, changes) is None


async def test_percent_signs_in_values_and_patterns(make_db: Any) -> None:
    db: DataFlow = make_db()

    @db.model
    class MyPct:
        name: str

    names = ["100% sure", "100 percent", "50%_off", "50x_off", "%s", "%(x)s", "a\\b", "it's"]
    await db.express.bulk_create("MyPct", [{"name": n} for n in names])
    await db.express.create("MyPct", {"name": "%d %s %%"})
    for n in [*names, "%d %s %%"]:
        assert [r["name"] for r in await db.express.list("MyPct", {"name": n})] == [n]

    async def like(p: str) -> set[str]:
        return {r["name"] for r in await db.express.list("MyPct", {"name": {"$like": p}})}

    assert await like("100\\%%") == {"100% sure"}  # escaped % is literal
    assert await like("100%") == {"100% sure", "100 percent"}
    assert await like("50\\%\\_off") == {"50%_off"}
    assert await like("50_\\_off") == {"50%_off", "50x_off"}
    assert await like("\\%s") == {"%s"}
    assert await like("a\\\\b") == {"a\\b"}


async def test_case_sensitivity_under_the_text_collation(make_db: Any) -> None:
    """Documented: $eq / $in / $like are exact (binary, no-pad), $ilike folds Unicode case,
    $regex is case-sensitive unless $options has "i" -- not the server's *_ci default."""
    db: DataFlow = make_db()

    @db.model
    class MyCase:
        name: str
        key: str = field(unique=True, default_factory=lambda: uuid.uuid4().hex)

    await db.express.bulk_create("MyCase", [{"name": n} for n in ["abc", "ABC", "abc ", "Äbc", "äbc"]])

    async def names(flt: dict[str, Any]) -> set[str]:
        return {r["name"] for r in await db.express.list("MyCase", flt)}

    assert await names({"name": "abc"}) == {"abc"}  # not ABC, not "abc " (no padding)
    assert await names({"name": {"$in": ["ABC", "äbc"]}}) == {"ABC", "äbc"}
    assert await names({"name": {"$like": "a%"}}) == {"abc", "abc "}
    assert await names({"name": {"$like": "abc"}}) == {"abc"}
    assert await names({"name": {"$ilike": "abc"}}) == {"abc", "ABC"}
    assert await names({"name": {"$ilike": "äBC"}}) == {"Äbc", "äbc"}  # accents still count
    assert await names({"name": {"$regex": "^a"}}) == {"abc", "abc "}
    assert await names({"name": {"$regex": "^a", "$options": "i"}}) == {"abc", "ABC", "abc "}
    assert await names({"name": {"$regex": "c $"}}) == {"abc "}
    ordered = [r["name"] for r in await db.express.list("MyCase", order_by="name")]
    assert ordered == sorted(ordered)  # code-point order, like the other backends
    # a unique str distinguishes case and trailing spaces too
    await db.express.create("MyCase", {"name": "u1", "key": "K"})
    await db.express.create("MyCase", {"name": "u2", "key": "k"})
    await db.express.create("MyCase", {"name": "u3", "key": "k "})


async def test_regex_flag_wins_over_a_case_insensitive_column(make_db: Any, raw: aiomysql.Connection
                                                              ) -> None:
    """Even on a table DataFlow did not create (server default *_ci collation)."""
    async with raw.cursor() as cur:
        await cur.execute("DROP TABLE IF EXISTS my_legacy")
        await cur.execute("CREATE TABLE my_legacy (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                          "name VARCHAR(50) COLLATE utf8mb4_general_ci NOT NULL)")
        await cur.execute("INSERT INTO my_legacy (name) VALUES ('Apple'), ('apple')")
    try:
        class MyLegacy:
            __tablename__ = "my_legacy"
            name: str

        spec = build_model_spec(MyLegacy)
        c = MySQLCompiler()
        for flt, expected in (({"$regex": "^a"}, ["apple"]),
                              ({"$regex": "^a", "$options": "i"}, ["Apple", "apple"])):
            p = c.params()
            where = c.expr(parse_filter(spec, {"name": flt}), spec, p)
            async with raw.cursor() as cur:
                await cur.execute(f"SELECT name FROM my_legacy WHERE {where} ORDER BY id", tuple(p.values))
                assert [r[0] for r in await cur.fetchall()] == expected
    finally:
        async with raw.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS my_legacy")


def test_upsert_sql_works_on_mariadb_and_mysql8() -> None:
    c = MySQLCompiler()

    class Thing:
        name: str
        qty: int

    spec = build_model_spec(Thing)
    sql = c.upsert_sql(spec, ("id", "name", "qty"), ("id",), ("name", "qty"), 2)
    assert sql.endswith("ON DUPLICATE KEY UPDATE `name` = VALUES(`name`), `qty` = VALUES(`qty`)")
    assert " AS new" not in sql and "RETURNING" not in sql and sql.count("(%s, %s, %s)") == 2
    nothing = c.upsert_sql(spec, ("id", "name"), ("id",), (), 1)
    assert nothing.endswith("ON DUPLICATE KEY UPDATE `id` = `id`")
    assert c.quote("name") == "`name`"
    assert c.limit_offset(None, 5, c.params()) == " LIMIT 18446744073709551615 OFFSET 5"
