"""``db.frames`` on PostgreSQL: the column-wise paths (binary COPY in, typed select out)
store and read exactly what express stores and reads.

Every test runs against the real server of ``DATAFLOW_POSTGRES_URL``.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import polars as pl
import pytest

from dataflow_postgres.adapter import PostgresAdapter

pytestmark = pytest.mark.asyncio

DECIMALS = ["1.50", "-0.001", "123456789012345678.123456789", "0", "+5", ".5", "7.", "-99999999",
            None, "100000000", "0.0000", "-10000.00010"]
JSONS = ['{"a": 1.50, "b": [1, 2]}', '{"x": "v1.2"}', '{"k": 1e16}', '{"z": "é"}', None,
         '{"n": 12345678901234567890}', "{}", '{"q": -0}', '{"s":"\\u00e9"}', '{"a":{"b":1}}',
         '{"f": 2.5E-3}', '{"l": [1.0, 2]}']


def _spy_copy_frame(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record what ``copy_frame`` answered (True: the columnar COPY wrote the frame)."""
    answers: list[bool] = []
    original = PostgresAdapter.copy_frame

    async def spy(self: PostgresAdapter, conn: Any, model: Any, frame: Any) -> bool:
        answer = await original(self, conn, model, frame)
        answers.append(answer)
        return answer

    monkeypatch.setattr(PostgresAdapter, "copy_frame", spy)
    return answers


async def _texts(url: str, table: str, columns: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(f"SELECT {columns} FROM {table} ORDER BY id")]
    finally:
        await conn.close()


async def test_decimal_and_json_columns_take_the_columnar_copy(
        make_db: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = make_db()

    @db.model
    class PgFrameMoney:
        total: Decimal | None
        price: Decimal = Decimal("0")
        meta: dict[str, Any] | None = None

    @db.model
    class PgFrameMoneyExpress:
        total: Decimal | None
        price: Decimal = Decimal("0")
        meta: dict[str, Any] | None = None

    await db.initialize()
    answers = _spy_copy_frame(monkeypatch)
    n = len(DECIMALS) * 10
    prices = [f"{i}.{i % 7}" for i in range(n)]
    frame = pl.DataFrame({"total": DECIMALS * 10, "price": prices, "meta": JSONS * 10})
    res = await db.frames.create("PgFrameMoney", frame)
    assert res.status == "ok" and answers == [True]
    await db.express.bulk_create("PgFrameMoneyExpress", [
        {"total": None if t is None else Decimal(t), "price": Decimal(p),
         "meta": None if m is None else json.loads(m)}
        for t, p, m in zip(DECIMALS * 10, prices, JSONS * 10, strict=True)])
    columns = "total::text, price::text, meta::text"
    assert (await _texts(pg_url, "pg_frame_money", columns)
            == await _texts(pg_url, "pg_frame_money_express", columns))
    # Decimal columns typed by Polars, and integers, take the same path
    typed = pl.DataFrame({"total": pl.Series([Decimal("1.25"), None, Decimal("-3.5")] * 30,
                                             dtype=pl.Decimal(20, 2)),
                          "price": [1, 2, 3] * 30})
    assert (await db.frames.create("PgFrameMoney", typed)).status == "ok"
    assert answers == [True, True]
    stored = await _texts(pg_url, "pg_frame_money", "total::text, price::text")
    assert stored[-3:] == [("1.25", "1"), (None, "2"), ("-3.50", "3")]


async def test_decimals_the_columns_cannot_write_exactly_go_value_by_value(
        make_db: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = make_db()

    @db.model
    class PgFrameRate:
        rate: Decimal

    await db.initialize()
    answers = _spy_copy_frame(monkeypatch)
    floats = pl.DataFrame({"rate": [0.1, 1e20, 2.5] * 30})
    assert (await db.frames.create("PgFrameRate", floats)).status == "ok"
    exponents = pl.DataFrame({"rate": ["1e3", "2.5E-2", "7"] * 30})
    assert (await db.frames.create("PgFrameRate", exponents)).status == "ok"
    assert answers == [False, False]
    rows = await db.express.list("PgFrameRate", order_by="id")
    assert [r["rate"] for r in rows[:3]] == [Decimal("0.1"), Decimal("1E+20"), Decimal("2.5")]
    assert [r["rate"] for r in rows[90:93]] == [Decimal("1E+3"), Decimal("0.025"), Decimal(7)]


async def test_reads_give_what_express_reads(make_db: Any, pg_url: str) -> None:
    """The typed select list (epoch microseconds, days, text) reads back every value as
    express does, infinities and years 1 and 9999 included."""
    db = make_db()

    @db.model
    class PgFrameRead:
        at: _dt.datetime | None
        day: _dt.date | None
        ref: uuid.UUID | None
        amount: Decimal | None
        ok: bool | None
        label: str | None
        meta: dict[str, Any] | None = None

    await db.initialize()
    base = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    n = 200
    rows = [{"at": None if i % 9 == 0 else base + _dt.timedelta(seconds=i * 9_876_543,
                                                                 microseconds=i),
             "day": None if i % 7 == 0 else _dt.date(1, 1, 1) + _dt.timedelta(days=i * 18_000),
             "ref": None if i % 5 == 0 else uuid.UUID(int=i << 70 | i),
             "amount": None if i % 4 == 0 else Decimal(i) / 1000 - 3,
             "ok": None if i % 6 == 0 else i % 2 == 0,
             "label": None if i % 8 == 0 else f"é{i}",
             "meta": None if i % 3 == 0 else {"i": i, "f": i / 4, "s": ["x", None]}}
            for i in range(n)]
    await db.express.bulk_create("PgFrameRead", rows)
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE pg_frame_read SET at = 'infinity', day = 'infinity' "
                           "WHERE id = 2")
        await conn.execute("UPDATE pg_frame_read SET at = '-infinity', day = '-infinity' "
                           "WHERE id = 3")
        await conn.execute("UPDATE pg_frame_read SET at = '9999-12-31 23:59:59.999999+00', "
                           "day = '9999-12-31' WHERE id = 4")
    finally:
        await conn.close()
    stored = await db.express.list("PgFrameRead", order_by="id")
    for batch in (0, 64):
        frame, _ = await db.frames.read("PgFrameRead", batch_size=batch)
        assert frame.schema["at"] == pl.Datetime("us", "UTC")
        assert frame.schema["day"] == pl.Date
        assert frame.height == n
        for got, want in zip(frame.to_dicts(), stored, strict=True):
            assert got["at"] == want["at"] and got["day"] == want["day"]
            assert got["ref"] == (None if want["ref"] is None else str(want["ref"]))
            assert got["amount"] == want["amount"] and got["ok"] == want["ok"]
            assert got["label"] == want["label"]
            assert (None if got["meta"] is None else json.loads(got["meta"])) == want["meta"]
            assert got["created_at"] == want["created_at"]


async def test_keyset_batches_of_a_read_follow_the_primary_key_index(make_db: Any,
                                                                      pg_url: str) -> None:
    """Each batch of a frames read (``id > last ORDER BY id LIMIT n``) and a list ordered by
    id are served by the primary key's index: with sorting priced out, the plans hold no
    Sort (``id ASC NULLS FIRST`` needed one: a sort of every remaining row per batch)."""
    from dataflow.frames import io
    from dataflow.query.ast import TRUE, Comparison, OrderBy, Select

    db = make_db()

    @db.model
    class PgFrameKeyset:
        label: str
        rank: int | None = None

    await db.initialize()
    frame = pl.DataFrame({"label": [f"l{i}" for i in range(300)],
                          "rank": [None if i % 4 == 0 else i for i in range(300)]})
    assert (await db.frames.create("PgFrameKeyset", frame)).status == "ok"
    spec = db.get_model("PgFrameKeyset")
    compiler = db.adapter.compiler
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SET enable_sort = off")

        async def plan(stmt: Any) -> str:
            compiled = compiler.compile(stmt)
            rows = await conn.fetch("EXPLAIN " + compiled.sql, *compiled.params)
            return "\n".join(r[0] for r in rows)

        assert "Sort" not in await plan(io.by_id(spec, Comparison("id", "gt", 100), 50))
        assert "Sort" not in await plan(Select(spec, TRUE, (OrderBy("id", True),), 5))
        assert "Sort" in await plan(Select(spec, TRUE, (OrderBy("rank"),)))
    finally:
        await conn.close()
    read, _ = await db.frames.read("PgFrameKeyset", batch_size=64)
    assert read["id"].to_list() == list(range(1, 301))
    assert read["rank"].to_list() == frame["rank"].to_list()
    ranks = [r["rank"] for r in await db.express.list("PgFrameKeyset", order_by="rank")]
    assert ranks[:75] == [None] * 75 and ranks[75:] == sorted(ranks[75:])
