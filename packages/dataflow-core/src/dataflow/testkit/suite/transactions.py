"""``async with db.transaction()``: commit, rollback of everything inside, savepoints."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import IntegrityError, TransactionError, UnsupportedError
from ...model import field
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, names, raises_df

pytestmark = pytest.mark.asyncio


class Boom(Exception):
    pass


def _model(db: Any) -> None:
    @db.model
    class KitTxRow:
        name: str
        qty: int = 0


@pytest.mark.asyncio
@pytest.mark.requires("transactions")
class TestTransactions:
    async def test_commit_makes_writes_visible(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        async with db.transaction():
            assert db.in_transaction()
            rec = await db.express.create("KitTxRow", {"name": "a"})
            await db.express.update("KitTxRow", rec["id"], {"qty": 5})
            assert await db.express.count("KitTxRow") == 1  # own writes are visible inside
        assert not db.in_transaction()
        back = await db.express.read("KitTxRow", rec["id"])
        assert back is not None and back["qty"] == 5

    async def test_exception_rolls_back_express_nodes_and_bulk(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        kept = await db.express.create("KitTxRow", {"name": "kept", "qty": 1})
        wf = WorkflowBuilder()
        wf.add_node("KitTxRowCreateNode", "create", {"name": "node", "db_instance": db.name})
        wf.add_node("KitTxRowBulkDeleteNode", "wipe",
                    {"filter": {"name": "kept"}, "db_instance": db.name})
        with pytest.raises(Boom):
            async with db.transaction():
                await db.express.create("KitTxRow", {"name": "express"})
                await db.express.update("KitTxRow", kept["id"], {"qty": 99})
                result = await db.express.bulk_create("KitTxRow", [{"name": f"b{i}"}
                                                                   for i in range(20)])
                assert result["inserted"] == 20
                await db.express.bulk_upsert("KitTxRow", [{"id": kept["id"], "name": "kept",
                                                           "qty": 50}])
                results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
                assert results["wipe"]["deleted"] == 1
                assert await db.express.count("KitTxRow") == 22
                raise Boom
        assert [r["name"] for r in await db.express.list("KitTxRow")] == ["kept"]
        assert await db.express.read("KitTxRow", kept["id"]) == kept

    async def test_a_failing_statement_inside_rolls_back_the_block(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        with pytest.raises(Exception):  # noqa: B017 - any DF validation error
            async with db.transaction():
                await db.express.create("KitTxRow", {"name": "a"})
                await db.express.create("KitTxRow", {"name": "b", "qty": "abc"})
        assert await db.express.count("KitTxRow") == 0

    async def test_workflow_runs_inside_a_transaction(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTxRowCreateNode", "create", {"name": "w", "db_instance": db.name})
        wf.add_node("KitTxRowUpdateNode", "update", {"fields": {"qty": 3}, "db_instance": db.name})
        wf.add_connection("create", "record.id", "update", "id")
        async with db.transaction():
            results, run_id = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert run_id and results["update"]["updated"] == 1
        rec = await db.express.read("KitTxRow", results["create"]["record"]["id"])
        assert rec is not None and rec["qty"] == 3

    async def test_tasks_started_inside_join_the_transaction(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        async with db.transaction():
            await db.express.create("KitTxRow", {"name": "inside"})

            async def probe() -> bool:
                return bool(db.in_transaction())

            # a task started inside copies the context: it joins (documented behaviour)
            assert await asyncio.create_task(probe()) is True
        assert db.in_transaction() is False
        assert await db.express.count("KitTxRow") == 1


@pytest.mark.asyncio
class TestTransactionCapabilities:
    @pytest.mark.requires("savepoints")
    async def test_nested_blocks_are_savepoints(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        async with db.transaction():
            await db.express.create("KitTxRow", {"name": "outer"})
            with pytest.raises(Boom):
                async with db.transaction():
                    await db.express.create("KitTxRow", {"name": "inner-rolled-back"})
                    await db.express.bulk_create("KitTxRow", [{"name": "bulk-rolled-back"}])
                    raise Boom
            async with db.transaction():
                await db.express.create("KitTxRow", {"name": "inner-kept"})
                async with db.transaction():
                    await db.express.create("KitTxRow", {"name": "deep-kept"})
        assert names(await db.express.list("KitTxRow")) == {"outer", "inner-kept", "deep-kept"}

    @pytest.mark.requires("savepoints")
    async def test_outer_rollback_discards_released_savepoints(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        with pytest.raises(Boom):
            async with db.transaction():
                async with db.transaction():
                    await db.express.create("KitTxRow", {"name": "inner"})
                raise Boom
        assert await db.express.count("KitTxRow") == 0

    @pytest.mark.unsupported("savepoints")
    async def test_nested_block_is_refused_without_savepoints(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        if not db.adapter.capabilities.transactions:
            with raises_df(UnsupportedError, "DF-501"):
                async with db.transaction():
                    pass
            return
        with pytest.raises(UnsupportedError) as info:
            async with db.transaction():
                await db.express.create("KitTxRow", {"name": "outer"})
                async with db.transaction():
                    await db.express.create("KitTxRow", {"name": "never"})
        assert info.value.code == "DF-501" and "savepoint" in str(info.value)
        assert await db.express.count("KitTxRow") == 0

    @pytest.mark.unsupported("transactions")
    async def test_transaction_is_refused_without_transactions(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        with raises_df(UnsupportedError, "DF-501", "transactions"):
            async with db.transaction():
                await db.express.create("KitTxRow", {"name": "never"})
        assert await db.express.count("KitTxRow") == 0


def _keyed(db: Any) -> None:
    @db.model
    class KitTxKey:
        code: str = field(unique=True)
        n: int = 0


@pytest.mark.asyncio
@pytest.mark.requires("transactions")
class TestTransactionTrust:
    """What a transaction means when errors are caught, tasks outlive it, or blocks run
    side by side: one meaning on every backend."""

    async def _caught_duplicate(self, db: Any) -> None:
        ex = db.express
        async with db.transaction():
            await ex.create("KitTxKey", {"code": "k1"})
            with raises_df(IntegrityError, "DF-902"):
                await ex.create("KitTxKey", {"code": "k1"})
            # the transaction is still usable after the caught error
            await ex.create("KitTxKey", {"code": "k2"})
            assert await ex.count("KitTxKey") == 2

    @pytest.mark.requires("savepoints")
    async def test_a_caught_error_leaves_the_transaction_usable(self, make_db: MakeDB) -> None:
        db = make_db()
        _keyed(db)
        await self._caught_duplicate(db)
        assert sorted(r["code"] for r in await db.express.list("KitTxKey")) == ["k1", "k2"]

    @pytest.mark.requires("statement_rollback")
    async def test_a_caught_statement_error_is_undone_alone(self, make_db: MakeDB) -> None:
        db = make_db()
        _keyed(db)
        await self._caught_duplicate(db)
        assert sorted(r["code"] for r in await db.express.list("KitTxKey")) == ["k1", "k2"]

    @pytest.mark.unsupported("statement_rollback")
    async def test_a_caught_statement_error_runs_under_its_own_savepoint(
            self, make_db: MakeDB) -> None:
        """Where a failed statement would abort the whole transaction, DataFlow puts each
        statement under a savepoint; without savepoints either, the block refuses to
        commit (DF-801) instead of reporting a silent rollback as success."""
        db = make_db()
        _keyed(db)
        ex = db.express
        if db.adapter.capabilities.savepoints:
            await self._caught_duplicate(db)
            assert sorted(r["code"] for r in await ex.list("KitTxKey")) == ["k1", "k2"]
            return
        with raises_df(TransactionError, "DF-801", "rolled back"):
            async with db.transaction():
                await ex.create("KitTxKey", {"code": "k1"})
                with pytest.raises(IntegrityError):
                    await ex.create("KitTxKey", {"code": "k1"})
        assert await ex.count("KitTxKey") == 0

    @pytest.mark.unsupported("savepoints")
    async def test_a_caught_multi_statement_failure_refuses_to_commit(self,
                                                                       make_db: MakeDB) -> None:
        """Without savepoints a bulk write that failed halfway cannot be undone alone: the
        block must not commit its half (DF-801), never a silent partial commit."""
        db = make_db()
        _keyed(db)
        ex = db.express
        await ex.create("KitTxKey", {"code": "taken"})
        rows = [{"code": f"c{i}"} for i in range(20)] + [{"code": "taken"}]
        with raises_df(TransactionError, "DF-801", "rolled back"):
            async with db.transaction():
                await ex.create("KitTxKey", {"code": "before"})
                with pytest.raises(IntegrityError):
                    await ex.bulk_create("KitTxKey", rows, batch_size=5)
        assert [r["code"] for r in await ex.list("KitTxKey")] == ["taken"]

    async def test_a_task_that_outlives_its_transaction_is_refused(self,
                                                                   make_db: MakeDB) -> None:
        db = make_db()
        _keyed(db)
        ex = db.express
        gate = asyncio.Event()

        async def late(code: str) -> Any:
            await gate.wait()
            return await ex.create("KitTxKey", {"code": code})

        async with db.transaction():
            await ex.create("KitTxKey", {"code": "inside"})
            straggler = asyncio.create_task(late("late"))
        # the block has ended; the task still holds it in its context. Another transaction
        # now holds a connection (on SQLite, the same one): the straggler must not join it
        with pytest.raises(Boom):
            async with db.transaction():
                await ex.create("KitTxKey", {"code": "second"})
                gate.set()
                with raises_df(TransactionError, "DF-801", "ended"):
                    await straggler
                raise Boom
        assert [r["code"] for r in await ex.list("KitTxKey")] == ["inside"]
        assert not db.in_transaction()
        # a task started outside any block runs on its own connection, as always
        assert (await asyncio.create_task(ex.create("KitTxKey", {"code": "own"})))["code"] == "own"

    @pytest.mark.requires("savepoints")
    async def test_concurrent_nested_blocks_never_undo_each_other(self,
                                                                  make_db: MakeDB) -> None:
        db = make_db()
        _keyed(db)
        ex = db.express

        async def child(i: int) -> None:
            async with db.transaction():
                await ex.create("KitTxKey", {"code": f"c{i}a"})
                await asyncio.sleep(0)
                await ex.bulk_create("KitTxKey", [{"code": f"c{i}b"}, {"code": f"c{i}c"}])
                await asyncio.sleep(0)
                if i % 3 == 1:
                    raise Boom

        async with db.transaction():
            await ex.create("KitTxKey", {"code": "outer"})
            outcomes = await asyncio.gather(*(child(i) for i in range(9)),
                                            return_exceptions=True)
            assert [type(o) for o in outcomes] == [Boom if i % 3 == 1 else type(None)
                                                   for i in range(9)]
            await ex.create("KitTxKey", {"code": "outer-after"})
        kept = {f"c{i}{s}" for i in range(9) if i % 3 != 1 for s in "abc"}
        got = {r["code"] for r in await ex.list("KitTxKey")}
        assert got == kept | {"outer", "outer-after"}

    @pytest.mark.requires("savepoints")
    async def test_statements_beside_an_open_nested_block_are_not_swallowed(
            self, make_db: MakeDB) -> None:
        """A statement of the outer block, issued by another task while a nested block is
        open, waits for it: a rollback of the nested block never takes it along."""
        db = make_db()
        _keyed(db)
        ex = db.express
        opened = asyncio.Event()

        async def nested_that_fails() -> None:
            async with db.transaction():
                await ex.create("KitTxKey", {"code": "nested"})
                opened.set()
                for _ in range(5):
                    await asyncio.sleep(0)
                raise Boom

        async def outer_statement() -> None:
            await opened.wait()
            await ex.create("KitTxKey", {"code": "outer"})

        async with db.transaction():
            outcomes = await asyncio.gather(nested_that_fails(), outer_statement(),
                                            return_exceptions=True)
            assert isinstance(outcomes[0], Boom) and outcomes[1] is None
        assert [r["code"] for r in await ex.list("KitTxKey")] == ["outer"]
