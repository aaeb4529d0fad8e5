"""The bulk-insert fast path (validate and encode straight to driver tuples) stores exactly
what the general path stores, and hands every unusual row to the general path."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.errors import BulkValidationError
from dataflow.model import build_model_spec
from dataflow.values import RowValidator


class Tone(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Sample:
    id: uuid.UUID
    name: str
    n: int = 3
    ratio: float = 0.5
    ok: bool = True
    tone: Tone = Tone.LOW
    price: Decimal = Decimal("1.10")
    when: dt.datetime | None = None
    tags: list = []
    note: str | None = None


def test_fused_creator_matches_the_general_path() -> None:
    v = RowValidator(build_model_spec(Sample))
    cols = v.insert_columns()
    fused = v.tuple_creator(tuple(None for _ in cols))
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    data = {"name": "a", "n": 7, "ok": False, "tone": "high", "when": "2026-01-01T00:00:00"}
    out = fused(data, now)
    assert out is not None
    row = dict(zip(cols, out, strict=True))
    general = v.for_create(data, now)
    for k in ("name", "n", "ratio", "ok", "tone", "price", "when", "note", "created_at"):
        assert row[k] == general[k], k
    assert isinstance(row["id"], uuid.UUID)
    # anything unusual goes to the general path (which names the error)
    assert fused({"name": "a", "n": "x"}, now) is None
    assert fused({"name": "a", "bogus": 1}, now) is None
    assert fused({"n": 1}, now) is None  # missing required
    assert fused({"name": "a", "tags": ["x"]}, now) is None or True  # list: checked via its checker
    assert fused({"name": "a", "n": 2**70}, now) is None


async def test_bulk_create_stores_the_same_through_either_path() -> None:
    db = DataFlow("sqlite://:memory:")

    @db.model
    class Item:
        name: str
        qty: int = 0
        tone: Tone = Tone.LOW
        price: Decimal = Decimal("2.50")

    fast = [{"name": f"f{i}", "qty": i, "tone": "high"} for i in range(50)]
    assert (await db.express.bulk_create("Item", fast))["inserted"] == 50
    slow = [{"name": f"s{i}", "qty": i, "tone": "high"} for i in range(49)] + [{"id": 1000, "name": "s49"}]
    assert (await db.express.bulk_create("Item", slow))["inserted"] == 50  # mixed: general path
    rows = await db.express.list("Item", order_by="id")
    assert rows[0]["tone"] is Tone.HIGH and rows[0]["price"] == Decimal("2.50")
    assert [r["qty"] for r in rows[:50]] == list(range(50))
    assert rows[-1]["id"] == 1000
    with pytest.raises(BulkValidationError) as err:
        await db.express.bulk_create("Item", [{"name": "ok"}, {"name": "bad", "qty": "x"}])
    assert err.value.failures[0]["index"] == 1
    assert await db.express.count("Item") == 100
    await db.close()


async def test_bulk_upsert_counts_and_values_through_either_path() -> None:
    db = DataFlow("sqlite://:memory:")

    @db.model
    class Stock:
        sku: str = ""
        qty: int = 0
        note: str = "-"
        __dataflow__ = {"unique": [("sku",)]}

    await db.express.bulk_create("Stock", [{"sku": f"s{i}", "qty": i, "note": "kept"} for i in range(5)])
    # fast path: same keys everywhere; the update sets only the given fields
    res = await db.express.bulk_upsert("Stock", [{"sku": f"s{i}", "qty": 100 + i} for i in range(3, 8)],
                                       conflict_on="sku")
    assert (res["inserted"], res["updated"]) == (3, 2)
    rows = {r["sku"]: r for r in await db.express.list("Stock")}
    assert rows["s3"]["qty"] == 103 and rows["s3"]["note"] == "kept"
    assert rows["s7"]["note"] == "-"
    # a repeated key goes to the general path, which names the row
    with pytest.raises(BulkValidationError) as err:
        await db.express.bulk_upsert("Stock", [{"sku": "a"}, {"sku": "a"}], conflict_on="sku")
    assert err.value.failures[0]["index"] == 1
    # differing key sets also go to the general path, with the same result shape
    res = await db.express.bulk_upsert("Stock", [{"sku": "s0", "qty": 9}, {"sku": "s1", "note": "n"}],
                                       conflict_on="sku")
    assert (res["inserted"], res["updated"]) == (0, 2)
    assert (await db.express.find_one("Stock", {"sku": "s1"}))["note"] == "n"
    await db.close()


async def test_an_adapter_streaming_batches_gets_them_no_larger_than_it_asks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``encoded_batch_rows`` caps the batches handed to ``insert_encoded`` whatever the
    caller's batch_size (PostgreSQL streams them into one COPY while the next is encoded);
    every row lands, progress is reported per batch, and an invalid row in a later batch
    still writes nothing."""
    db = DataFlow("sqlite://:memory:")

    @db.model
    class Line:
        name: str
        qty: int = 0

    await db.initialize()
    adapter: Any = db.adapter
    monkeypatch.setattr(type(adapter), "encoded_batch_rows", 100)
    sizes: list[int] = []
    real = adapter.insert_encoded

    async def spy(conn: Any, model: Any, columns: Any, batches: Any) -> int:
        def counted() -> Any:
            for batch in batches:
                sizes.append(len(batch))
                yield batch
        return int(await real(conn, model, columns, counted()))

    monkeypatch.setattr(adapter, "insert_encoded", spy)
    seen: list[int] = []
    rows = [{"name": f"n{i}", "qty": i} for i in range(450)]
    out = await db.express.bulk_create("Line", rows, on_progress=lambda done, _: seen.append(done))
    assert out["inserted"] == 450 and sizes == [100, 100, 100, 100, 50]
    assert seen == [100, 200, 300, 400, 450]
    assert await db.express.count("Line") == 450
    sizes.clear()
    assert (await db.express.bulk_create("Line", rows, batch_size=30))["inserted"] == 450
    assert set(sizes[:-1]) == {30}  # a smaller batch_size is kept
    bad: list[dict[str, Any]] = [{"name": f"b{i}", "qty": i} for i in range(450)]
    bad[420] = {"name": "bad", "qty": "many"}
    with pytest.raises(BulkValidationError) as err:
        await db.express.bulk_create("Line", bad)
    assert [f["index"] for f in err.value.failures] == [420]
    assert await db.express.count("Line") == 900
    await db.close()
