"""Workflow nodes: eleven per model, both runtimes, aliases, connections, instance lookup."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ...errors import (
    AmbiguousNodeError,
    ConfirmationRequiredError,
    IntegrityError,
    NodeNotFoundError,
    RecordNotFoundError,
    ValidationError,
    WorkflowError,
)
from ...model import field
from ...nodes import OPERATIONS
from ...workflow import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, raises_df

pytestmark = pytest.mark.asyncio


def _model(db: Any) -> None:
    @db.model
    class KitTask:
        title: str
        done: bool = False
        points: int = 1


def _ordered_workflow(db_name: str, alias: bool) -> WorkflowBuilder:
    """All eleven operations; unconnected nodes run in the order they were added."""

    def t(op: str) -> str:
        return f"KitTask_{op}" if alias else f"KitTask{op}Node"

    inst = {"db_instance": db_name}
    wf = WorkflowBuilder()
    wf.add_node(t("Create"), "create", {"title": "write suite", "points": 3, **inst})
    wf.add_node(t("Read"), "read", {**inst})
    wf.add_connection("create", "record.id", "read", "id")
    wf.add_node(t("Update"), "update", {"fields": {"done": True}, **inst})
    wf.add_connection("read", "record.id", "update", "id")
    wf.add_node(t("BulkCreate"), "bulk_create",
                {"data": [{"title": f"t{i}", "points": i} for i in range(4)], **inst})
    wf.add_node(t("BulkUpdate"), "bulk_update",
                {"filter": {"title": {"$in": ["t0", "t1"]}}, "fields": {"points": 10}, **inst})
    wf.add_node(t("Upsert"), "upsert", {"id": 1000, "title": "upserted", **inst})
    wf.add_node(t("BulkUpsert"), "bulk_upsert",
                {"data": [{"id": 1000, "title": "again"}, {"id": 1001, "title": "new"}], **inst})
    wf.add_node(t("Delete"), "delete", {"filter": {"title": "t3"}, **inst})
    wf.add_node(t("BulkDelete"), "bulk_delete", {"filter": {"title": "t2"}, **inst})
    wf.add_node(t("List"), "list", {"filter": {"done": False}, "order_by": ["-points", "title"],
                                    **inst})
    wf.add_node(t("Count"), "count", {**inst})
    return wf


def _check_all_nodes(results: dict[str, dict[str, Any]]) -> None:
    created = results["create"]["record"]
    assert results["create"]["inserted"] == 1 and isinstance(created["id"], int)
    assert created["title"] == "write suite" and created["points"] == 3
    assert results["read"]["found"] == 1 and results["read"]["record"]["id"] == created["id"]
    assert results["update"]["updated"] == 1 and results["update"]["record"]["done"] is True
    assert results["bulk_create"]["inserted"] == 4
    assert results["bulk_update"]["updated"] == 2
    upserted = results["upsert"]
    assert (upserted["inserted"], upserted["updated"], upserted["skipped"]) == (1, 0, 0)
    assert upserted["record"]["id"] == 1000 and upserted["record"]["title"] == "upserted"
    assert (results["bulk_upsert"]["inserted"], results["bulk_upsert"]["updated"]) == (1, 1)
    assert results["delete"]["deleted"] == 1 and results["delete"]["record"]["title"] == "t3"
    assert results["bulk_delete"]["deleted"] == 1
    titles = [r["title"] for r in results["list"]["records"]]
    assert titles == ["t0", "t1", "again", "new"]
    assert results["list"]["count"] == 4
    assert results["count"]["count"] == 5


@pytest.mark.asyncio
class TestWorkflows:
    async def test_model_generates_eleven_nodes(self, make_db: MakeDB) -> None:
        from ...nodes import node_names

        db = make_db()
        _model(db)
        generated = set(node_names(db))
        assert {f"KitTask{op}Node" for op in OPERATIONS} <= generated
        assert len(OPERATIONS) == 11

    async def test_all_nodes_async_runtime(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        results, run_id = await AsyncLocalRuntime().execute_workflow_async(
            _ordered_workflow(db.name, alias=False).build(), inputs={})
        assert isinstance(run_id, str) and run_id
        _check_all_nodes(results)

    async def test_all_nodes_sync_runtime_with_aliases(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        results, run_id = await asyncio.to_thread(
            LocalRuntime().execute, _ordered_workflow(db.name, alias=True).build())
        assert run_id
        _check_all_nodes(results)
        assert await db.express.count("KitTask") == 5

    async def test_sync_runtime_inside_a_running_loop(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTaskCreateNode", "create", {"title": "from loop", "db_instance": db.name})
        results, _ = LocalRuntime().execute(wf.build())
        made = results["create"]["record"]
        assert made["title"] == "from loop"
        assert await db.express.read("KitTask", made["id"]) == made

    async def test_connections_and_inputs(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTaskCreateNode", "create", {"db_instance": db.name})
        wf.add_node("KitTaskUpdateNode", "update", {"db_instance": db.name})
        wf.add_connection("create", "record.id", "update", "id")
        wf.add_connection("create", "record.points", "update", "fields.points")
        wf.add_node("KitTaskListNode", "list", {"db_instance": db.name})
        wf.add_connection("update", "record.title", "list", "filter.title")
        results, _ = await AsyncLocalRuntime().execute_workflow_async(
            wf.build(), inputs={"create": {"title": "in", "points": 7}})
        assert results["create"]["record"]["id"] == results["update"]["record"]["id"]
        assert results["update"]["record"]["points"] == 7
        assert [r["title"] for r in results["list"]["records"]] == ["in"]

    async def test_read_missing_is_none_as_in_express_unless_told_to_raise(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        assert await db.express.read("KitTask", 424242) is None
        wf = WorkflowBuilder()
        wf.add_node("KitTaskReadNode", "read", {"id": 424242, "db_instance": db.name})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["read"] == {"record": None, "found": 0}
        wf2 = WorkflowBuilder()
        wf2.add_node("KitTaskReadNode", "read", {"id": 424242, "raise_on_not_found": True,
                                                 "db_instance": db.name})
        with raises_df(RecordNotFoundError, "DF-404", "424242"):
            await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        wf3 = WorkflowBuilder()
        wf3.add_node("KitTaskReadNode", "read", {"id": 424242, "raise_on_not_found": "yes",
                                                 "db_instance": db.name})
        with raises_df(ValidationError, "DF-301", "raise_on_not_found"):
            await AsyncLocalRuntime().execute_workflow_async(wf3.build())

    async def test_a_connection_through_a_record_that_is_none_names_it(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTaskReadNode", "read", {"id": 424242, "db_instance": db.name})
        wf.add_node("KitTaskUpdateNode", "update", {"fields": {"done": True},
                                                    "db_instance": db.name})
        wf.add_connection("read", "record.id", "update", "id")
        with raises_df(WorkflowError, "DF-703", "'record' is None", "raise_on_not_found=True"):
            await AsyncLocalRuntime().execute_workflow_async(wf.build())

    async def test_update_delete_missing_report_nothing_changed(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTaskUpdateNode", "u", {"id": 99999, "fields": {"done": True},
                                               "db_instance": db.name})
        wf.add_node("KitTaskDeleteNode", "d", {"id": 99999, "db_instance": db.name})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["u"] == {"record": None, "updated": 0}
        assert results["d"] == {"record": None, "deleted": 0}

    async def test_update_and_delete_by_filter(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitTask", [{"title": "a"}, {"title": "b"}, {"title": "c"}])
        wf = WorkflowBuilder()
        wf.add_node("KitTask_Update", "u", {"filter": {"title": "a"}, "fields": {"points": 5},
                                            "db_instance": db.name})
        wf.add_node("KitTask_Delete", "d", {"filter": {"title": "b"}, "db_instance": db.name})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["u"]["updated"] == 1 and results["u"]["record"]["points"] == 5
        assert results["d"]["deleted"] == 1 and results["d"]["record"]["title"] == "b"
        assert sorted(r["title"] for r in await db.express.list("KitTask")) == ["a", "c"]
        wf2 = WorkflowBuilder()
        wf2.add_node("KitTask_Update", "u", {"filter": {"title": {"$in": ["a", "c"]}},
                                             "fields": {"points": 0}, "db_instance": db.name})
        with pytest.raises(ValidationError, match="more than one row"):
            await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        assert (await db.express.find_one("KitTask", {"title": "a"}) or {}).get("points") == 5

    async def test_bulk_delete_node_needs_confirmation(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        await db.express.bulk_create("KitTask", [{"title": "a"}, {"title": "b"}])
        wf = WorkflowBuilder()
        wf.add_node("KitTaskBulkDeleteNode", "wipe", {"filter": {}, "db_instance": db.name})
        with raises_df(ConfirmationRequiredError, "DF-306"):
            await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert await db.express.count("KitTask") == 2
        wf2 = WorkflowBuilder()
        wf2.add_node("KitTaskBulkDeleteNode", "wipe", {"confirmed": True, "db_instance": db.name})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        assert results["wipe"]["deleted"] == 2
        assert await db.express.count("KitTask") == 0

    async def test_two_live_instances_are_ambiguous_without_db_instance(
            self, make_db: MakeDB) -> None:
        db1 = make_db()
        db2 = make_db()
        for db in (db1, db2):
            @db.model
            class KitAmbiguous:
                title: str

        wf = WorkflowBuilder()
        wf.add_node("KitAmbiguousCreateNode", "create", {"title": "x"})
        with raises_df(AmbiguousNodeError, "DF-702", db1.name, db2.name, "db_instance"):
            wf.build()
        wf2 = WorkflowBuilder()
        wf2.add_node("KitAmbiguous_Create", "create", {"title": "x", "db_instance": db2.name})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        assert results["create"]["record"]["title"] == "x"
        assert await db2.express.read("KitAmbiguous", results["create"]["record"]["id"]) is not None
        await db1.close()
        wf3 = WorkflowBuilder()
        wf3.add_node("KitAmbiguousCountNode", "count", {})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf3.build())
        assert results["count"]["count"] >= 1  # only db2 is live now: it resolves

    async def test_unknown_node_names_a_suggestion(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        wf = WorkflowBuilder()
        wf.add_node("KitTaskCreatNode", "create", {"title": "x", "db_instance": db.name})
        with raises_df(NodeNotFoundError, "DF-701", "Did you mean 'KitTaskCreateNode'"):
            wf.build()


def _sku_model(db: Any) -> None:
    @db.model
    class KitSku:
        sku: str = field(unique=True)
        qty: int


@pytest.mark.asyncio
class TestNodeSemantics:
    async def test_bulk_create_conflict_resolution(self, make_db: MakeDB) -> None:
        from ...nodes import resolve_node

        db = make_db()
        _sku_model(db)
        first = await db.express.create("KitSku", {"sku": "a", "qty": 1})
        node = resolve_node("KitSkuBulkCreateNode", db.name)
        rows = [{"sku": "a", "qty": 9}, {"sku": "b", "qty": 2}]
        with raises_df(IntegrityError, "DF-902"):
            await node.run({"data": rows})  # "error", the default
        assert await db.express.count("KitSku") == 1
        out = await node.run({"data": rows, "conflict_resolution": "skip", "conflict_on": "sku"})
        assert (out["inserted"], out["updated"], out["skipped"], out["ok"]) == (1, 0, 1, True)
        kept = await db.express.find_one("KitSku", {"sku": "a"})
        assert kept == first, "a skipped row is left exactly as stored (updated_at too)"
        out = await node.run({"data": [{"sku": "a", "qty": 5}, {"sku": "c", "qty": 3}],
                              "conflict_resolution": "update", "conflict_on": "sku"})
        assert (out["inserted"], out["updated"], out["skipped"]) == (1, 1, 0)
        assert (await db.express.find_one("KitSku", {"sku": "a"}) or {}).get("qty") == 5
        out = await node.run({"data": [{"sku": "d", "qty": 4}]})
        assert (out["inserted"], out["updated"], out["skipped"]) == (1, 0, 0), "one shape"
        with raises_df(ValidationError, "DF-301", "conflict_resolution", "'error', 'skip', 'update'"):
            await node.run({"data": rows, "conflict_resolution": "ignore"})
        with raises_df(ValidationError, "DF-301", "conflict_on applies"):
            await node.run({"data": rows, "conflict_on": "sku"})
        assert await db.express.count("KitSku") == 4

    async def test_model_name_must_name_the_nodes_model(self, make_db: MakeDB) -> None:
        from ...nodes import resolve_node

        db = make_db()
        _sku_model(db)
        node = resolve_node("KitSkuCreateNode", db.name)
        with raises_df(ValidationError, "DF-301", "KitSkuCreateNode", "KitTask", "model_name"):
            await node.run({"model_name": "KitTask", "sku": "x", "qty": 1})
        assert await db.express.count("KitSku") == 0, "nothing written"
        made = await node.run({"model_name": "KitSku", "sku": "x", "qty": 1})
        assert made["record"]["sku"] == "x"

    async def test_upsert_with_no_update_fields_is_a_no_op_that_says_so(self, make_db: MakeDB
                                                                        ) -> None:
        db = make_db()
        _sku_model(db)
        first = await db.express.create("KitSku", {"sku": "a", "qty": 1})
        out = await db.express.bulk_upsert("KitSku", [{"sku": "a", "qty": 7}, {"sku": "b", "qty": 2}],
                                           conflict_on="sku", update_fields=[])
        assert (out["inserted"], out["updated"], out["skipped"]) == (1, 0, 1)
        assert await db.express.find_one("KitSku", {"sku": "a"}) == first, "updated_at unmoved"
        back = await db.express.upsert("KitSku", {"sku": "a", "qty": 8}, conflict_on="sku",
                                       update_fields=[])
        assert back == first, "the stored record, unchanged"
        out = await db.express.bulk_upsert("KitSku", [{"sku": "a", "qty": 7}], conflict_on="sku")
        assert (out["updated"], out.get("skipped", 0)) == (1, 0)


def _keys(out: dict[str, Any]) -> set[str]:
    return set(out)


@pytest.mark.asyncio
class TestResultShapes:
    """One documented shape per kind of node (README, "Nodes"), the same for every model,
    and exactly what the inspector lists as the node's outputs."""

    async def test_every_node_returns_exactly_its_documented_keys(self, make_db: MakeDB
                                                                  ) -> None:
        from ...nodes import resolve_node

        db = make_db()
        _sku_model(db)

        async def run(op: str, params: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = await resolve_node(f"KitSku{op}Node", db.name).run(params)
            listed = set(db.inspect().node(f"KitSku{op}Node").outputs or {})
            assert _keys(out) <= listed, (op, _keys(out) - listed)
            return out

        single = {"record"}
        made = await run("Create", {"sku": "a", "qty": 1})
        assert _keys(made) == single | {"inserted"} and made["inserted"] == 1
        key = made["record"]["id"]
        found = await run("Read", {"id": key})
        assert found == {"record": made["record"], "found": 1}
        changed = await run("Update", {"id": key, "fields": {"qty": 2}})
        assert _keys(changed) == single | {"updated"} and changed["record"]["qty"] == 2
        up = await run("Upsert", {"sku": "a", "qty": 3, "conflict_on": "sku"})
        assert up == {"record": up["record"], "inserted": 0, "updated": 1, "skipped": 0}
        assert up["record"]["id"] == key and up["record"]["qty"] == 3
        same = await run("Upsert", {"sku": "a", "qty": 9, "conflict_on": "sku",
                                    "update_fields": []})
        assert (same["inserted"], same["updated"], same["skipped"]) == (0, 0, 1)
        assert same["record"] == up["record"], "left as stored"
        new = await run("Upsert", {"sku": "n", "qty": 1, "conflict_on": "sku"})
        assert (new["inserted"], new["updated"], new["skipped"]) == (1, 0, 0)
        listed = await run("List", {"order_by": "sku"})
        assert _keys(listed) == {"records", "count"} and listed["count"] == 2
        assert await run("Count", {}) == {"count": 2}
        bulk_keys = {"inserted", "updated", "skipped", "failed", "ok"}
        for params in ({"data": [{"sku": "b", "qty": 1}]},
                       {"data": [{"sku": "b", "qty": 2}], "conflict_resolution": "skip",
                        "conflict_on": "sku"}):
            out = await run("BulkCreate", params)
            assert _keys(out) == bulk_keys and out["failed"] == [] and out["ok"] is True
        out = await run("BulkUpsert", {"data": [{"sku": "c", "qty": 1}], "conflict_on": "sku"})
        assert _keys(out) == bulk_keys and out["skipped"] == 0
        out = await run("BulkUpdate", {"filter": {"sku": "c"}, "fields": {"qty": 4}})
        assert out == {"updated": 1, "failed": [], "ok": True}
        out = await run("BulkUpdate", {"data": [{"id": key, "qty": 5}, {"qty": 1}],
                                       "partial": True})
        assert out["updated"] == 1 and out["ok"] is False and len(out["failed"]) == 1
        assert _keys(out) == {"updated", "failed", "ok"}
        out = await run("BulkDelete", {"filter": {"sku": "c"}})
        assert out == {"deleted": 1, "failed": [], "ok": True}
        gone = await run("Delete", {"id": key})
        assert gone["deleted"] == 1 and gone["record"]["id"] == key
        assert gone["record"]["qty"] == 5, "the record as it was just before the delete"
        assert await db.express.read("KitSku", key) is None
        assert await run("Delete", {"id": key}) == {"record": None, "deleted": 0}
        assert await run("Read", {"id": key}) == {"record": None, "found": 0}

    async def test_the_same_connection_reads_every_single_record_node(
            self, make_db: MakeDB) -> None:
        db = make_db()
        _sku_model(db)
        inst = {"db_instance": db.name}
        wf = WorkflowBuilder()
        wf.add_node("KitSkuCreateNode", "create", {"sku": "a", "qty": 1, **inst})
        wf.add_node("KitSkuUpsertNode", "upsert", {"qty": 2, **inst})
        wf.add_connection("create", "record.id", "upsert", "id")
        wf.add_connection("create", "record.sku", "upsert", "sku")
        wf.add_node("KitSkuUpdateNode", "update", {"fields": {"qty": 3}, **inst})
        wf.add_connection("upsert", "record.id", "update", "id")
        wf.add_node("KitSkuReadNode", "read", inst)
        wf.add_connection("update", "record.id", "read", "id")
        wf.add_node("KitSkuDeleteNode", "delete", inst)
        wf.add_connection("read", "record.id", "delete", "id")
        wf.add_node("KitSkuCountNode", "count", {"filter": {}, **inst})
        wf.add_connection("delete", "record.sku", "count", "filter.sku")
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        ids = {results[n]["record"]["id"] for n in ("create", "upsert", "update", "read",
                                                    "delete")}
        assert len(ids) == 1
        assert results["delete"]["record"]["qty"] == 3 and results["count"]["count"] == 0
        bad = WorkflowBuilder()
        bad.add_node("KitSkuCreateNode", "create", {"sku": "a", "qty": 1, **inst})
        bad.add_node("KitSkuReadNode", "read", inst)
        bad.add_connection("create", "id", "read", "id")  # the pre-shape spelling
        with raises_df(WorkflowError, "DF-703", "no output 'id'", "record"):
            bad.build()
