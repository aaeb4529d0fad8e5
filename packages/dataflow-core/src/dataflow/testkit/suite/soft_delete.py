"""Soft delete: ``__dataflow__ = {"soft_delete": True}`` tombstones rows instead of removing them.

The tombstone predicate (``deleted_at IS NULL``) is added to the statement AST next to the
tenant predicate, so every backend hides, counts and refuses exactly the same rows.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from ...errors import (
    BulkValidationError,
    ManagedFieldError,
    ModelDefinitionError,
    RecordDeletedError,
    RecordNotFoundError,
    ValidationError,
)
from ...model import field
from ...workflow import AsyncLocalRuntime, WorkflowBuilder
from ._helpers import MakeDB, assert_aware_utc, raises_df

pytestmark = pytest.mark.asyncio


def _model(db: Any) -> None:
    @db.model
    class KitSoftNote:
        __dataflow__ = {"soft_delete": True}
        title: str
        n: int = 0
        email: str = field(unique=True, default_factory=lambda: uuid.uuid4().hex)


def _title_only(db: Any, *, soft_delete: bool) -> None:
    @db.model
    class KitSoftNote:
        __dataflow__ = {"soft_delete": soft_delete}
        title: str


async def _seed(db: Any, *titles: str) -> dict[str, dict[str, Any]]:
    return {t: await db.express.create("KitSoftNote", {"title": t, "n": i, "email": f"{t}@x"})
            for i, t in enumerate(titles)}


@pytest.mark.asyncio
class TestSoftDelete:
    async def test_delete_tombstones_and_reads_skip_the_row(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = await _seed(db, "a", "b", "c")
        a = rows["a"]
        assert a["deleted_at"] is None
        assert await db.express.delete("KitSoftNote", a["id"]) is True
        assert await db.express.delete("KitSoftNote", a["id"]) is False, "already tombstoned"
        assert await db.express.read("KitSoftNote", a["id"]) is None
        assert await db.express.find_one("KitSoftNote", {"title": "a"}) is None
        assert sorted(r["title"] for r in await db.express.list("KitSoftNote")) == ["b", "c"]
        assert await db.express.count("KitSoftNote") == 2
        assert [r["title"] for r in await db.express.read_many(
            "KitSoftNote", [a["id"], rows["b"]["id"]])] == ["b"]
        # the row is still stored, with an aware UTC tombstone
        dead = await db.express.read("KitSoftNote", a["id"], include_deleted=True)
        assert dead is not None and dead["title"] == "a" and dead["n"] == 0
        assert_aware_utc(dead["deleted_at"])
        assert dead["deleted_at"] >= a["created_at"]
        assert dead["updated_at"] == dead["deleted_at"]
        assert await db.express.count("KitSoftNote", include_deleted=True) == 3
        assert len(await db.express.list("KitSoftNote", include_deleted=True)) == 3
        found = await db.express.find_one("KitSoftNote", {"title": "a"}, include_deleted=True)
        assert found is not None and found["id"] == a["id"]
        assert len(await db.express.read_many("KitSoftNote", [a["id"]], include_deleted=True)) == 1
        # a filter on deleted_at cannot widen the scope; with include_deleted it selects tombstones
        assert await db.express.list("KitSoftNote", {"deleted_at": {"$ne": None}}) == []
        assert await db.express.count("KitSoftNote", {"$or": [{"deleted_at": {"$exists": True}},
                                                               {"title": "a"}]}) == 0
        tombs = await db.express.list("KitSoftNote", {"deleted_at": {"$ne": None}},
                                      include_deleted=True)
        assert [r["id"] for r in tombs] == [a["id"]]
        # live rows are untouched
        b = await db.express.read("KitSoftNote", rows["b"]["id"])
        assert b == rows["b"]

    async def test_bulk_delete_counts_only_rows_not_yet_deleted(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        res = await db.express.bulk_create("KitSoftNote", [{"title": f"t{i}", "n": i}
                                                           for i in range(6)])
        assert res["inserted"] == 6
        first = await db.express.find_one("KitSoftNote", {"n": 0})
        assert first is not None and await db.express.delete("KitSoftNote", first["id"]) is True
        assert (await db.express.bulk_delete("KitSoftNote", {"n": {"$lt": 3}}))["deleted"] == 2
        assert (await db.express.bulk_delete("KitSoftNote", {"n": {"$lt": 3}}))["deleted"] == 0
        assert await db.express.count("KitSoftNote") == 3
        assert (await db.express.bulk_delete("KitSoftNote", {}, confirmed=True))["deleted"] == 3
        assert await db.express.count("KitSoftNote") == 0
        kept = await db.express.list("KitSoftNote", include_deleted=True, order_by="n")
        assert [r["n"] for r in kept] == list(range(6))
        for r in kept:
            assert_aware_utc(r["deleted_at"])

    async def test_updating_a_tombstoned_row_is_refused(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = await _seed(db, "a", "b")
        a, b = rows["a"], rows["b"]
        await db.express.delete("KitSoftNote", a["id"])
        before = await db.express.read("KitSoftNote", a["id"], include_deleted=True)
        with raises_df(RecordDeletedError, "DF-405", "KitSoftNote", "soft-deleted", "restore"):
            await db.express.update("KitSoftNote", a["id"], {"n": 99})
        # by ids in bulk: the whole call is refused, the live row is not changed either
        with raises_df(RecordDeletedError, "DF-405", "restore"):
            await db.express.bulk_update("KitSoftNote", [{"id": b["id"], "n": 5},
                                                         {"id": a["id"], "n": 5}])
        assert await db.express.read("KitSoftNote", a["id"], include_deleted=True) == before
        assert (await db.express.read("KitSoftNote", b["id"]))["n"] == b["n"]
        # a missing id is still "nothing there", not a refusal
        assert await db.express.update("KitSoftNote", 987654, {"n": 1}) is None
        # by filter: tombstoned rows are not matched, and not counted
        res = await db.express.bulk_update("KitSoftNote", {}, {"n": 7}, confirmed=True)
        assert res["updated"] == 1
        assert (await db.express.read("KitSoftNote", a["id"], include_deleted=True))["n"] == 0
        # deleted_at is managed: it cannot be set or cleared by hand
        with raises_df(ManagedFieldError, "DF-304", "deleted_at"):
            await db.express.update("KitSoftNote", b["id"], {"deleted_at": None})
        with raises_df(ManagedFieldError, "DF-304", "deleted_at"):
            await db.express.create("KitSoftNote", {"title": "x", "deleted_at": None})

    async def test_upsert_ignores_live_semantics_and_refuses_tombstones(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = await _seed(db, "a", "b")
        a = rows["a"]
        await db.express.delete("KitSoftNote", a["id"])
        with raises_df(RecordDeletedError, "DF-405", "restore", "email='a@x'") as info:
            await db.express.upsert("KitSoftNote", {"title": "again", "email": "a@x"},
                                    conflict_on="email")
        assert info.value.field == "email", "the error names the field the upsert matched on"
        with raises_df(RecordDeletedError, "DF-405", str(a["id"])):
            await db.express.upsert("KitSoftNote", {"id": a["id"], "title": "again"})
        # a batch with one tombstoned key writes nothing at all
        with raises_df(RecordDeletedError, "DF-405"):
            await db.express.bulk_upsert("KitSoftNote", [
                {"title": "new", "email": "new@x"}, {"title": "b2", "email": "b@x"},
                {"title": "again", "email": "a@x"}], conflict_on="email")
        assert await db.express.count("KitSoftNote", include_deleted=True) == 2
        dead = await db.express.read("KitSoftNote", a["id"], include_deleted=True)
        assert dead is not None and dead["title"] == "a"
        # live keys upsert as usual, with exact counts
        res = await db.express.bulk_upsert("KitSoftNote", [
            {"title": "new", "email": "new@x"}, {"title": "b2", "email": "b@x"}], conflict_on="email")
        assert (res["inserted"], res["updated"]) == (1, 1)
        assert sorted(r["title"] for r in await db.express.list("KitSoftNote")) == ["b2", "new"]
        upserted = await db.express.upsert("KitSoftNote", {"title": "n2", "email": "new@x"},
                                           conflict_on="email")
        assert upserted["title"] == "n2" and upserted["deleted_at"] is None

    async def test_restore_brings_the_row_back(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        a = (await _seed(db, "a"))["a"]
        await db.express.delete("KitSoftNote", a["id"])
        back = await db.express.restore("KitSoftNote", a["id"])
        assert back is not None
        assert back["deleted_at"] is None
        assert {k: back[k] for k in ("id", "title", "n", "email", "created_at")} == {
            k: a[k] for k in ("id", "title", "n", "email", "created_at")}
        assert back["updated_at"] >= a["updated_at"]
        assert await db.express.read("KitSoftNote", a["id"]) == back
        assert await db.express.count("KitSoftNote") == 1
        # live again: it can be updated, and restoring a live row returns it unchanged
        updated = await db.express.update("KitSoftNote", a["id"], {"n": 3})
        assert updated is not None and updated["n"] == 3
        assert await db.express.restore("KitSoftNote", a["id"]) == updated
        assert await db.express.restore("KitSoftNote", 987654) is None

    async def test_restore_needs_a_soft_delete_model(self, make_db: MakeDB) -> None:
        db = make_db()

        @db.model
        class KitHardNote:
            title: str

        row = await db.express.create("KitHardNote", {"title": "x"})
        with raises_df(ValidationError, "DF-301", "soft-delete", "soft_delete"):
            await db.express.restore("KitHardNote", row["id"])
        # a model without soft delete still deletes for good, and has no deleted_at
        assert "deleted_at" not in row
        assert await db.express.delete("KitHardNote", row["id"]) is True
        assert await db.express.read("KitHardNote", row["id"], include_deleted=True) is None

    async def test_purge_removes_the_row_for_good(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = await _seed(db, "a", "b")
        await db.express.delete("KitSoftNote", rows["a"]["id"])
        assert await db.express.purge("KitSoftNote", rows["a"]["id"]) is True
        assert await db.express.read("KitSoftNote", rows["a"]["id"], include_deleted=True) is None
        assert await db.express.purge("KitSoftNote", rows["a"]["id"]) is False
        assert await db.express.purge("KitSoftNote", rows["b"]["id"]) is True, "live rows too"
        assert await db.express.count("KitSoftNote", include_deleted=True) == 0
        # the unique key is free again once the tombstone is purged
        again = await db.express.create("KitSoftNote", {"title": "a", "email": "a@x"})
        assert again["deleted_at"] is None

    async def test_declaration_and_flags_are_checked(self, make_db: MakeDB) -> None:
        db = make_db()
        with raises_df(ModelDefinitionError, "DF-201", "deleted_at"):
            @db.model
            class KitSoftBad:
                __dataflow__ = {"soft_delete": True}
                deleted_at: str | None = None

        with raises_df(ModelDefinitionError, "DF-201", "soft_delete"):
            @db.model
            class KitSoftBad2:
                __dataflow__ = {"soft_delete": "yes"}
                title: str

        _model(db)
        with raises_df(ValidationError, "DF-301", "include_deleted"):
            await db.express.list("KitSoftNote", include_deleted="yes")  # type: ignore[arg-type]
        with raises_df(ValidationError, "DF-301", "include_deleted"):
            await db.express.read("KitSoftNote", 1, include_deleted=1)  # type: ignore[arg-type]
        assert await db.express.count("KitSoftNote", include_deleted=True) == 0

    async def test_turning_soft_delete_on_is_an_additive_migration(self, make_db: MakeDB) -> None:
        db = make_db()
        _title_only(db, soft_delete=False)
        await db.express.bulk_create("KitSoftNote", [{"title": "old1"}, {"title": "old2"}])
        _title_only(db, soft_delete=True)  # the same table, now with soft delete

        plan = await db.plan()
        assert [(s.kind, s.column, s.destructive) for s in plan.steps] == [
            ("add_column", "deleted_at", False)]
        rows = await db.express.list("KitSoftNote", order_by="title")
        assert [(r["title"], r["deleted_at"]) for r in rows] == [("old1", None), ("old2", None)]
        assert await db.express.delete("KitSoftNote", rows[0]["id"]) is True
        assert await db.express.count("KitSoftNote") == 1
        assert not await db.plan()

    async def test_nodes_tombstone_and_take_include_deleted(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        rows = await _seed(db, "a", "b", "c", "d")
        inst = {"db_instance": db.name}
        wf = WorkflowBuilder()
        wf.add_node("KitSoftNoteDeleteNode", "delete", {"id": rows["a"]["id"], **inst})
        wf.add_node("KitSoftNoteBulkDeleteNode", "bulk", {"filter": {"title": {"$in": ["a", "b"]}},
                                                          **inst})
        wf.add_node("KitSoftNoteListNode", "live", {**inst})
        wf.add_node("KitSoftNoteListNode", "all", {"include_deleted": True, "order_by": "title",
                                                   **inst})
        wf.add_node("KitSoftNoteCountNode", "count", {**inst})
        wf.add_node("KitSoftNoteCountNode", "count_all", {"include_deleted": True, **inst})
        wf.add_node("KitSoftNoteReadNode", "read_dead", {"id": rows["a"]["id"],
                                                         "include_deleted": True, **inst})
        # unconnected nodes run one after another, in the order added
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf.build())
        assert results["delete"]["deleted"] == 1
        assert results["delete"]["record"]["id"] == rows["a"]["id"]
        assert_aware_utc(results["delete"]["record"]["deleted_at"])  # returned tombstoned
        assert results["bulk"]["deleted"] == 1, "only b: a was already tombstoned"
        assert sorted(r["title"] for r in results["live"]["records"]) == ["c", "d"]
        assert [r["title"] for r in results["all"]["records"]] == ["a", "b", "c", "d"]
        assert (results["count"]["count"], results["count_all"]["count"]) == (2, 4)
        assert results["read_dead"]["found"] == 1
        assert results["read_dead"]["record"]["id"] == rows["a"]["id"]
        assert_aware_utc(results["read_dead"]["record"]["deleted_at"])
        # a tombstoned row reads as not found; an update through a node is refused
        wf2 = WorkflowBuilder()
        wf2.add_node("KitSoftNoteReadNode", "read", {"id": rows["a"]["id"], **inst})
        results, _ = await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        assert results["read"] == {"record": None, "found": 0}
        wf2.add_node("KitSoftNoteReadNode", "read_or_raise", {"id": rows["a"]["id"],
                                                              "raise_on_not_found": True, **inst})
        with raises_df(RecordNotFoundError, "DF-404"):
            await AsyncLocalRuntime().execute_workflow_async(wf2.build())
        wf3 = WorkflowBuilder()
        wf3.add_node("KitSoftNoteUpdateNode", "update", {"id": rows["b"]["id"],
                                                         "fields": {"n": 1}, **inst})
        with raises_df(RecordDeletedError, "DF-405", "restore"):
            await AsyncLocalRuntime().execute_workflow_async(wf3.build())

    async def test_works_with_multi_tenant(self, make_db: MakeDB) -> None:
        db = make_db(multi_tenant=True)
        _model(db)
        async with db.tenant("acme"):
            a = await db.express.create("KitSoftNote", {"title": "a", "email": "same@x"})
            assert await db.express.delete("KitSoftNote", a["id"]) is True
        async with db.tenant("globex"):
            # the other tenant's tombstone is invisible, even with include_deleted
            assert await db.express.count("KitSoftNote", include_deleted=True) == 0
            assert await db.express.read("KitSoftNote", a["id"], include_deleted=True) is None
            assert await db.express.restore("KitSoftNote", a["id"]) is None
            assert await db.express.purge("KitSoftNote", a["id"]) is False
            assert await db.express.update("KitSoftNote", a["id"], {"n": 1}) is None
            # the same unique email is free in this tenant: acme's tombstone does not block it
            g = await db.express.upsert("KitSoftNote", {"title": "g", "email": "same@x"},
                                        conflict_on="email")
            assert g["tenant_id"] == "globex" and g["deleted_at"] is None
        async with db.tenant("acme"):
            with raises_df(RecordDeletedError, "DF-405"):
                await db.express.upsert("KitSoftNote", {"title": "a2", "email": "same@x"},
                                        conflict_on="email")
            back = await db.express.restore("KitSoftNote", a["id"])
            assert back is not None and back["tenant_id"] == "acme" and back["deleted_at"] is None
            assert [r["title"] for r in await db.express.list("KitSoftNote")] == ["a"]
        async with db.tenant("globex"):
            assert [r["title"] for r in await db.express.list("KitSoftNote")] == ["g"]

    async def test_express_sync(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)

        def run() -> dict[str, Any]:
            s = db.express_sync
            a = s.create("KitSoftNote", {"title": "a"})
            out: dict[str, Any] = {"deleted": s.delete("KitSoftNote", a["id"])}
            out["read"] = s.read("KitSoftNote", a["id"])
            out["read_all"] = s.read("KitSoftNote", a["id"], include_deleted=True)
            out["count"] = (s.count("KitSoftNote"), s.count("KitSoftNote", include_deleted=True))
            out["list"] = len(s.list("KitSoftNote", include_deleted=True))
            out["find"] = s.find_one("KitSoftNote", {"title": "a"}, include_deleted=True)
            out["restored"] = s.restore("KitSoftNote", a["id"])
            out["purged"] = s.purge("KitSoftNote", a["id"])
            out["final"] = s.count("KitSoftNote", include_deleted=True)
            return out

        out = await asyncio.to_thread(run)
        assert out["deleted"] is True and out["read"] is None
        assert out["read_all"] is not None
        assert_aware_utc(out["read_all"]["deleted_at"])
        assert out["count"] == (0, 1) and out["list"] == 1
        assert out["find"]["id"] == out["read_all"]["id"]
        assert out["restored"]["deleted_at"] is None
        assert out["purged"] is True and out["final"] == 0

    async def test_bulk_validation_still_comes_first(self, make_db: MakeDB) -> None:
        db = make_db()
        _model(db)
        a = (await _seed(db, "a"))["a"]
        await db.express.delete("KitSoftNote", a["id"])
        # an invalid row is reported as such (DF-305) before the tombstone check runs
        with raises_df(BulkValidationError, "DF-305", "row 1"):
            await db.express.bulk_update("KitSoftNote", [{"id": a["id"], "n": 1},
                                                         {"id": a["id"], "n": "x"}])
