"""Workflows that cannot half-happen: connections checked at build time, whole workflows in
one transaction (async and sync runtimes), and ``with db.transaction():`` in sync code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import RecordNotFoundError, WorkflowError
from ...workflow import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, raises_df


class Boom(Exception):
    pass


def _model(db: Any) -> None:
    @db.model
    class KitFlowRow:
        title: str
        points: int = 0


def _failing_at_the_end(db: Any) -> Any:
    """create -> update -> read of a missing id (fails when it runs, not at build)."""
    inst = {"db_instance": db.name}
    wf = WorkflowBuilder()
    wf.add_node("KitFlowRowCreateNode", "c", {"title": "first", **inst})
    wf.add_node("KitFlowRowUpdateNode", "u", {"fields": {"points": 5}, **inst})
    wf.add_connection("c", "record.id", "u", "id")
    wf.add_node("KitFlowRowBulkCreateNode", "b", {"data": [{"title": "b1"}, {"title": "b2"}],
                                                 **inst})
    wf.add_node("KitFlowRowReadNode", "missing", {"id": 987654, **inst})
    wf.add_connection("b", "ok", "missing", "raise_on_not_found")  # True: runs after b
    return wf.build()


class TestWorkflowBuildChecks:
    @pytest.mark.asyncio
    async def test_bad_connections_fail_at_build(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        inst = {"db_instance": db.name}

        def wf() -> WorkflowBuilder:
            b = WorkflowBuilder()
            b.add_node("KitFlowRowCreateNode", "c", {"title": "x", **inst})
            b.add_node("KitFlowRowReadNode", "r", {**inst})
            b.add_node("KitFlowRowUpdateNode", "u", {"fields": {"points": 1}, **inst})
            b.add_node("KitFlowRowListNode", "l", {**inst})
            return b

        cases = [
            (("c", "recrod.id", "r", "id"), "c", "recrod", "'record'"),  # no such output
            (("c", "record.idd", "r", "id"), "c", "idd", "'id'"),  # no such field
            (("c", "id", "r", "id"), "c", "'id'", "'record.id'"),  # fields are under record
            (("c", "record.id", "r", "idd"), "r", "idd", "'id'"),  # no such parameter
            (("c", "record", "u", "fields"), None, None, None),    # fine: a parameter
            (("u", "record.titel", "l", "filter.title"), "u", "titel", "'title'"),
            (("u", "updatd", "l", "limit"), "u", "updatd", "'updated'"),
            (("l", "records", "r", "recordz"), "r", "recordz", None),
        ]
        for (src, out, dst, inp), node, bad, hint in cases:
            builder = wf().add_connection(src, out, dst, inp)
            if node is None or bad is None:
                builder.build()
                continue
            with raises_df(WorkflowError, "DF-703", bad) as info:
                builder.build()
            assert info.value.node_id == node
            if hint is not None:
                assert hint in str(info.value)
        # the whole-output and dotted-path forms stay valid
        ok = wf().add_connection("c", "record.id", "u", "id").add_connection(
            "u", "record.title", "l", "filter.title").add_connection("c", "", "l", "filter")
        ok.build()
        assert await db.express.count("KitFlowRow") == 0  # nothing ran


@pytest.mark.requires("transactions")
class TestWorkflowTransactions:
    @pytest.mark.asyncio
    async def test_async_runtime_runs_a_workflow_in_one_transaction(self, make_db: MakeDB
                                                                    ) -> None:
        db = make_db()
        _model(db)
        wf = _failing_at_the_end(db)
        with raises_df(RecordNotFoundError, "DF-404"):
            await AsyncLocalRuntime().execute(wf, transaction=True)
        assert await db.express.count("KitFlowRow") == 0  # every node's writes rolled back
        # without it, each node commits on its own (the documented default)
        with raises_df(RecordNotFoundError, "DF-404"):
            await AsyncLocalRuntime().execute_workflow_async(wf)
        assert await db.express.count("KitFlowRow") == 3
        # and a successful transactional run commits everything
        ok = WorkflowBuilder()
        ok.add_node("KitFlowRowCreateNode", "c", {"title": "kept", "db_instance": db.name})
        ok.add_node("KitFlowRowUpdateNode", "u", {"fields": {"points": 2},
                                                  "db_instance": db.name})
        ok.add_connection("c", "record.id", "u", "id")
        results, _ = await AsyncLocalRuntime().execute(ok.build(), transaction=True)
        assert results["u"]["record"]["points"] == 2
        assert await db.express.count("KitFlowRow", {"title": "kept", "points": 2}) == 1

    def test_sync_runtime_runs_a_workflow_in_one_transaction(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = _failing_at_the_end(db)
        with raises_df(RecordNotFoundError, "DF-404"):
            LocalRuntime().execute(wf, transaction=True)
        assert db.express_sync.count("KitFlowRow") == 0

    def test_sync_code_has_transactions(self, make_db: MakeDB) -> None:
        """``with db.transaction():`` in sync code: express_sync calls and LocalRuntime runs
        inside join it; an exception rolls all of them back."""
        db = make_db()
        _model(db)
        s = db.express_sync
        with db.transaction():
            rec = s.create("KitFlowRow", {"title": "a"})
            s.update("KitFlowRow", rec["id"], {"points": 7})
            assert s.count("KitFlowRow") == 1
        assert s.read("KitFlowRow", rec["id"])["points"] == 7
        wf = WorkflowBuilder()
        wf.add_node("KitFlowRowCreateNode", "c", {"title": "node", "db_instance": db.name})
        with pytest.raises(Boom), db.transaction():
            s.create("KitFlowRow", {"title": "b"})
            s.bulk_create("KitFlowRow", [{"title": "c"}, {"title": "d"}])
            LocalRuntime().execute(wf.build())
            assert s.count("KitFlowRow") == 5
            raise Boom
        assert [r["title"] for r in s.list("KitFlowRow")] == ["a"]

    @pytest.mark.requires("savepoints")
    def test_sync_transactions_nest(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        s = db.express_sync
        with db.transaction():
            s.create("KitFlowRow", {"title": "outer"})
            with pytest.raises(Boom), db.transaction():
                s.create("KitFlowRow", {"title": "inner"})
                raise Boom
            s.create("KitFlowRow", {"title": "after"})
        assert sorted(r["title"] for r in s.list("KitFlowRow")) == ["after", "outer"]

    @pytest.mark.asyncio
    async def test_sync_transaction_inside_async_code_is_refused_clearly(
            self, make_db: MakeDB) -> None:
        """Inside a running loop's ``async with db.transaction()`` a sync block would wait
        for the connection the async one holds: refused (DF-801)."""
        from ...errors import TransactionError

        db = make_db()
        _model(db)
        async with db.transaction():
            with raises_df(TransactionError, "DF-801"), db.transaction():
                pass
        await asyncio.sleep(0)
