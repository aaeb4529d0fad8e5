"""Atomicity and concurrency under load: what must hold on every backend.

* Atomicity: a transaction that mixes express writes, workflow-node writes and a bulk
  operation that fails part-way leaves nothing behind; a bulk operation in its default
  all-or-nothing mode that meets a constraint error on row 9,999 of 10,000 writes
  nothing (``partial=True`` writes the other 9,999 and reports exactly that row).
* Concurrency: 200 concurrent upserts of one key leave one row, with counts that add
  up (1 inserted + 199 updated); 200 concurrent read-for-update / ``update`` increments
  in transactions lose no update.

The concurrent tests run 200 tasks against a pool of ``POOL`` connections (pooling
adapters), so most tasks wait for a connection: the pool must queue them, not fail them.
Server-side connection kills are adapter tests (they need the server's own commands).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import IntegrityError, TransactionError, UnsupportedError
from ...model import field
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio

#: concurrent tasks in the concurrency tests
TASKS = 200
#: connections per pool for them (ignored by adapters without pools)
POOL = 8
#: rows of the large bulk operations, and the (0-based) index of the failing row: the
#: 9,999th of 10,000
ROWS = 10_000
BAD = 9_998


class Boom(Exception):
    pass


def _ledger(db: Any) -> None:
    @db.model
    class KitLedger:
        name: str
        qty: int = 0
        code: str | None = field(default=None, unique=True)


async def _snapshot(db: Any, model: str) -> list[dict[str, Any]]:
    return sorted(await db.express.list(model), key=lambda r: str(r["id"]))


@pytest.mark.asyncio
class TestAtomicity:
    @pytest.mark.requires("transactions")
    async def test_transaction_with_a_bulk_op_failing_midway_leaves_nothing(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _ledger(db)
        kept = await db.express.create("KitLedger", {"name": "kept", "qty": 1, "code": "TAKEN"})
        before = await _snapshot(db, "KitLedger")
        nodes = WorkflowBuilder()
        nodes.add_node("KitLedgerCreateNode", "create", {"name": "node", "db_instance": db.name})
        nodes.add_node("KitLedgerUpdateNode", "update",
                       {"id": kept["id"], "fields": {"qty": 7}, "db_instance": db.name})
        nodes.add_node("KitLedgerBulkCreateNode", "bulk", {
            "data": [{"name": f"nb{i}", "code": f"NB{i}"} for i in range(40)],
            "batch_size": 7, "db_instance": db.name})
        # rows 0..54 are valid, row 55 repeats a stored unique code: with batches of 10,
        # five batches are written before the sixth fails
        failing = [{"name": f"b{i}", "qty": i, "code": f"B{i}"} for i in range(80)]
        failing[55]["code"] = "TAKEN"
        with pytest.raises(IntegrityError):
            async with db.transaction():
                await db.express.create("KitLedger", {"name": "express", "code": "E1"})
                await db.express.update("KitLedger", kept["id"], {"qty": 99, "name": "changed"})
                await db.express.bulk_update("KitLedger", {"name": "express"}, {"qty": 5})
                await db.express.upsert("KitLedger", {"name": "up", "code": "U1"},
                                        conflict_on="code")
                results, _ = await AsyncLocalRuntime().execute_workflow_async(nodes.build())
                assert results["bulk"]["inserted"] == 40 and results["update"]["updated"] == 1
                assert await db.express.count("KitLedger") == 1 + 1 + 1 + 1 + 40
                await db.express.bulk_create("KitLedger", failing, batch_size=10)
        assert await _snapshot(db, "KitLedger") == before
        # the same through a workflow: the failing bulk op is a node
        wf = WorkflowBuilder()
        wf.add_node("KitLedgerCreateNode", "create", {"name": "node2", "db_instance": db.name})
        wf.add_node("KitLedgerBulkCreateNode", "bulk",
                    {"data": failing, "batch_size": 10, "db_instance": db.name})
        with pytest.raises(IntegrityError):
            async with db.transaction():
                await db.express.create("KitLedger", {"name": "express2"})
                await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert await _snapshot(db, "KitLedger") == before

    @pytest.mark.requires("transactions", "savepoints")
    async def test_a_failed_bulk_op_caught_inside_a_transaction_leaves_no_partial_rows(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _ledger(db)
        await db.express.create("KitLedger", {"name": "kept", "code": "TAKEN"})
        failing = [{"name": f"b{i}", "code": f"B{i}"} for i in range(30)]
        failing[25]["code"] = "TAKEN"
        async with db.transaction():
            await db.express.create("KitLedger", {"name": "before"})
            with raises_df(IntegrityError, "DF-902"):
                await db.express.bulk_create("KitLedger", failing, batch_size=5)
            # the bulk op ran under its own savepoint: its first five batches are gone,
            # the transaction's other writes stay, and it can go on
            assert await db.express.count("KitLedger") == 2
            await db.express.create("KitLedger", {"name": "after"})
        assert {r["name"] for r in await db.express.list("KitLedger")} == {
            "kept", "before", "after"}

    async def test_bulk_create_failing_on_row_9999_of_10000_writes_nothing(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _ledger(db)
        await db.express.create("KitLedger", {"name": "holder", "code": f"C{BAD}"})
        rows = [{"name": f"r{i}", "qty": i, "code": f"C{i}"} for i in range(ROWS)]
        # in batches of 1,000: nine whole batches are written before the tenth fails
        for batch_size in (1_000, ROWS):
            with raises_df(IntegrityError, "DF-902"):
                await db.express.bulk_create("KitLedger", rows, batch_size=batch_size)
            assert await db.express.count("KitLedger") == 1
        # partial=True: the other 9,999 rows are written and exactly row 9,998 (0-based) fails
        result = await db.express.bulk_create("KitLedger", rows, partial=True)
        assert result["inserted"] == ROWS - 1 and result["ok"] is False
        assert [(f["index"], f["code"]) for f in result["failed"]] == [(BAD, "DF-902")]
        assert await db.express.count("KitLedger") == ROWS
        assert await db.express.count("KitLedger", {"name": f"r{BAD}"}) == 0
        assert await db.express.count("KitLedger", {"name": f"r{BAD + 1}"}) == 1

    async def test_bulk_upsert_failing_on_row_9999_of_10000_writes_nothing(
            self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitSku:
            sku: str = field(unique=True)
            slug: str = field(unique=True)
            qty: int = 0

        await db.express.create("KitSku", {"sku": "held", "slug": f"s{BAD}", "qty": -1})
        rows = [{"sku": f"k{i}", "slug": f"s{i}", "qty": i} for i in range(ROWS)]
        # upsert on sku: row 9,998 is new by sku but repeats a stored slug
        with raises_df(IntegrityError, "DF-902"):
            await db.express.bulk_upsert("KitSku", rows, conflict_on="sku", batch_size=1_000)
        assert await db.express.count("KitSku") == 1
        held = await db.express.find_one("KitSku", {"sku": "held"})
        assert held is not None and held["qty"] == -1
        del rows[BAD]
        result = await db.express.bulk_upsert("KitSku", rows, conflict_on="sku")
        assert (result["inserted"], result["updated"]) == (ROWS - 1, 0)
        assert await db.express.count("KitSku") == ROWS


@pytest.mark.asyncio
class TestConcurrency:
    async def test_200_concurrent_upserts_of_one_key_leave_one_row(self, make_db: MakeDB) -> None:
        db = make_db(pool_size=POOL)

        @db.model
        class KitKey:
            code: str = field(unique=True)
            n: int = 0

        await db.initialize()
        results = await asyncio.gather(*(
            db.express.bulk_upsert("KitKey", [{"code": "one", "n": i}], conflict_on="code")
            for i in range(TASKS)))
        assert sum(r["inserted"] for r in results) == 1
        assert sum(r["updated"] for r in results) == TASKS - 1
        assert all(r["inserted"] + r["updated"] == 1 and r["ok"] for r in results)
        rows = await db.express.list("KitKey")
        assert len(rows) == 1 and rows[0]["code"] == "one" and 0 <= rows[0]["n"] < TASKS
        # express.upsert: every caller gets the one record back
        records = await asyncio.gather(*(
            db.express.upsert("KitKey", {"code": "two", "n": i}, conflict_on="code")
            for i in range(TASKS)))
        assert len({r["id"] for r in records}) == 1
        assert {r["n"] for r in records} <= set(range(TASKS))
        assert await db.express.count("KitKey") == 2
        assert db.pool_stats()["active"] == 0

    @pytest.mark.requires("transactions", "row_locks")
    async def test_200_concurrent_increments_lose_no_update(self, make_db: MakeDB) -> None:
        db = make_db(pool_size=POOL)

        @db.model
        class KitCounter:
            name: str
            n: int = 0

        counter = await db.express.create("KitCounter", {"name": "c"})

        async def increment() -> int:
            async with db.transaction():
                row = await db.express.read("KitCounter", counter["id"], for_update=True)
                assert row is not None
                updated = await db.express.update("KitCounter", counter["id"],
                                                  {"n": row["n"] + 1})
                assert updated is not None
                return int(updated["n"])

        seen = await asyncio.gather(*(increment() for _ in range(TASKS)))
        # each transaction saw the previous one's commit: every value 1..200 exactly once
        assert sorted(seen) == list(range(1, TASKS + 1))
        final = await db.express.read("KitCounter", counter["id"])
        assert final is not None and final["n"] == TASKS
        assert db.pool_stats()["active"] == 0

    @pytest.mark.requires("row_locks")
    async def test_read_for_update_returns_the_row(self, make_db: MakeDB) -> None:
        db = make_db()
        _ledger(db)
        rec = await db.express.create("KitLedger", {"name": "a", "qty": 3})
        # outside a transaction the lock would end with the read: refused, not ignored
        with raises_df(TransactionError, "DF-801", "for_update"):
            await db.express.read("KitLedger", rec["id"], for_update=True)
        if db.adapter.capabilities.transactions:
            async with db.transaction():
                assert await db.express.read("KitLedger", rec["id"], for_update=True) == rec
                assert await db.express.read("KitLedger", 987654, for_update=True) is None

    @pytest.mark.unsupported("row_locks")
    async def test_read_for_update_is_refused_without_row_locks(self, make_db: MakeDB) -> None:
        db = make_db()
        _ledger(db)
        rec = await db.express.create("KitLedger", {"name": "a", "qty": 3})
        with raises_df(UnsupportedError, "DF-501", "for_update"):
            await db.express.read("KitLedger", rec["id"], for_update=True)
        assert await db.express.read("KitLedger", rec["id"]) == rec
