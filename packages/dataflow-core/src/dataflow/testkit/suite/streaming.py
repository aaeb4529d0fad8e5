"""Streaming reads: every row once, in order, scoped like ``list``; the connection comes back
when the stream ends, is closed or its task is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import FilterError, ValidationError
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


def _model(db: Any) -> None:
    @db.model
    class KitStreamRow:
        name: str
        qty: int
        group: str = "a"

    @db.model
    class KitStreamNote:
        title: str
        __dataflow__ = {"soft_delete": True}


async def _fill(db: Any, n: int = 250) -> None:
    await db.express.bulk_create("KitStreamRow", [{"name": f"r{i:03d}", "qty": (i * 37) % 101,
                                                   "group": "ab"[i % 2]} for i in range(n)])


async def _active(db: Any) -> int:
    return int(db.pool_stats()["active"])


@pytest.mark.asyncio
class TestStreaming:
    async def test_stream_yields_every_row_in_order(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db)
        expected = await db.express.list("KitStreamRow", order_by=["-qty", "name"])
        got = [r async for r in db.express.stream("KitStreamRow", order_by=["-qty", "name"],
                                                  batch_size=7)]
        assert got == expected and len(got) == 250
        sizes = [len(b) async for b in db.express.stream("KitStreamRow", batch_size=60).batches()]
        assert sizes == [60, 60, 60, 60, 10]
        limited = [r["name"] async for r in db.express.stream("KitStreamRow", order_by="name",
                                                              limit=25, batch_size=10)]
        assert limited == [f"r{i:03d}" for i in range(25)]
        assert [r async for r in db.express.stream("KitStreamRow", {"qty": -1})] == []

    async def test_stream_respects_filter_and_soft_delete(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db)
        rows = [r async for r in db.express.stream("KitStreamRow", {"group": "b", "qty": {"$gte": 50}},
                                                   order_by="id", batch_size=9)]
        assert rows == await db.express.list("KitStreamRow", {"group": "b", "qty": {"$gte": 50}},
                                             order_by="id")
        assert rows and all(r["group"] == "b" and r["qty"] >= 50 for r in rows)
        notes = [await db.express.create("KitStreamNote", {"title": f"n{i}"}) for i in range(5)]
        await db.express.delete("KitStreamNote", notes[1]["id"])
        live = [r["title"] async for r in db.express.stream("KitStreamNote", order_by="id")]
        assert live == ["n0", "n2", "n3", "n4"]
        every = [r["title"] async for r in db.express.stream("KitStreamNote", order_by="id",
                                                             include_deleted=True)]
        assert every == [f"n{i}" for i in range(5)]

    async def test_bad_arguments_fail_before_any_read(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        with raises_df(FilterError, "DF-401", "nope"):
            db.express.stream("KitStreamRow", {"nope": 1})
        with raises_df(ValidationError, "DF-301", "batch_size"):
            db.express.stream("KitStreamRow", batch_size=0)
        stream = db.express.stream("KitStreamRow")
        assert [r async for r in stream] == []
        with raises_df(ValidationError, "DF-301", "once"):
            stream.batches()

    async def test_leaving_or_cancelling_a_stream_gives_the_connection_back(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db)
        async with db.express.stream("KitStreamRow", order_by="id", batch_size=10) as rows:
            async for row in rows:
                if row["name"] == "r015":
                    break
        assert await _active(db) == 0
        started = asyncio.Event()
        seen: list[str] = []

        async def consume() -> None:
            async with db.express.stream("KitStreamRow", order_by="id", batch_size=10) as stream:
                async for row in stream:
                    seen.append(row["name"])
                    started.set()
                    await asyncio.sleep(0.01)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 0 < len(seen) < 250
        assert await _active(db) == 0
        # the connection is usable: nothing waits on a stream that ended
        assert await asyncio.wait_for(db.express.count("KitStreamRow"), 10) == 250

    async def test_other_operations_run_between_batches(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db, 40)
        seen = 0
        async for batch in db.express.stream("KitStreamRow", order_by="id", batch_size=10).batches():
            seen += len(batch)
            assert await db.express.count("KitStreamRow") == 40
        assert seen == 40

    @pytest.mark.requires("transactions")
    async def test_stream_inside_a_transaction_sees_its_writes(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db, 30)
        async with db.transaction():
            await db.express.create("KitStreamRow", {"name": "zz-new", "qty": 1})
            names = []
            async for batch in db.express.stream("KitStreamRow", order_by="name",
                                                 batch_size=8).batches():
                names += [r["name"] for r in batch]
                await db.express.count("KitStreamRow")  # the transaction's other statements
            assert len(names) == 31 and names[-1] == "zz-new"

    async def test_list_node_streams(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await _fill(db, 50)
        wf = WorkflowBuilder().add_node("KitStreamRowListNode", "rows", {
            "filter": {"group": "a"}, "order_by": "id", "stream": True, "batch_size": 8}).build()
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf)
        async with results["rows"]["stream"] as stream:
            got = [r async for r in stream]
        assert got == await db.express.list("KitStreamRow", {"group": "a"}, order_by="id")
        with raises_df(ValidationError, "DF-301", "stream"):
            await AsyncLocalRuntime().execute_workflow_async(WorkflowBuilder().add_node(
                "KitStreamRowListNode", "rows", {"stream": "yes"}).build())
